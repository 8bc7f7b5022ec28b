"""`factory generate --face-model flame` end to end on the local Ray cluster: `factory verify` passes, the manifest and
meta.json record the FLAME file's sha256, a resume reads the same file from anywhere and refuses a different one."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile

from typer.testing import CliRunner

from factory.cli import app
from factory.format.manifest import Manifest
from tests.flame_files import write_flame

runner = CliRunner()


def generate(*args: str):
    return runner.invoke(app, ["generate", "--no-progress", "--workers", "1", *args])


def test_generate_flame_dataset_verify_and_resume(tmp_path, flame_2020, ray_local):
    out = tmp_path / "ds"
    config = tmp_path / "flame.yaml"  # the YAML keys of the flags
    config.write_text(f"identities_per_shard: 1\nrender: {{texture_size: 128, face_model: flame, flame_path: '{flame_2020.path}'}}\n")
    result = generate("--config", str(config), "--identities", "2", "--image-size", "64", "--out", str(out))
    assert result.exit_code == 0, result.output
    verified = runner.invoke(app, ["verify", str(out), "--no-progress"])
    assert verified.exit_code == 0, verified.output

    digest = hashlib.sha256(flame_2020.path.read_bytes()).hexdigest()
    manifest = Manifest.from_json((out / "manifest.json").read_bytes())
    assert manifest.config["render"]["face_model"] == "flame" and manifest.config["render"]["flame_sha256"] == digest
    with tarfile.open(out / manifest.shards[0].path) as tar:
        meta = json.load(tar.extractfile("id-0000000.meta.json"))
    assert meta["generator"]["face_model"] == "flame" and meta["generator"]["face_model_files"]["sha256"] == digest
    assert len(meta["expressions"][0]["landmarks_3d"]) == 68

    moved = tmp_path / "elsewhere" / "generic_model.pkl"  # the same file at another path, now given by flags
    moved.parent.mkdir()
    shutil.copy(flame_2020.path, moved)
    (tmp_path / "texture.yaml").write_text("render: {texture_size: 128}\n")
    again = generate("--face-model", "flame", "--flame-path", str(moved), "--identities", "2", "--identities-per-shard", "1",
                     "--image-size", "64", "--config", str(tmp_path / "texture.yaml"), "--out", str(out))
    assert again.exit_code == 0 and "already complete" in again.output, again.output

    other = write_flame(tmp_path / "other.pkl", "2020", seed=1)
    refused = generate("--face-model", "flame", "--flame-path", str(other.path), "--identities", "2", "--identities-per-shard", "1",
                       "--image-size", "64", "--config", str(tmp_path / "texture.yaml"), "--out", str(out))
    assert refused.exit_code == 2 and "render.flame_sha256" in refused.output, refused.output
    assert Manifest.from_json((out / "manifest.json").read_bytes()).shards == manifest.shards  # nothing was touched
