"""`factory verify` and `factory inspect` on a real generated dataset, intact and damaged in several ways.

Damage that keeps the manifest's size and sha256 consistent (the shard is rewritten and re-listed) proves
that the deeper checks (member decoding, PSPI formula, sample order) work on their own."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factory.cli import app
from factory.format.manifest import Manifest
from factory.format.shards import read_shard, write_shard
from factory.run.config import GenerateConfig
from factory.run.generate import generate
from factory.run.identity import RenderConfig


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, ray_local) -> Path:
    out = tmp_path_factory.mktemp("verify") / "ds"
    generate(GenerateConfig(identities=3, out=str(out), identities_per_shard=2, workers=2,
                            render=RenderConfig(image_size=64, texture_size=128)), progress=False)
    return out


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    """A private copy each test may damage."""
    return Path(shutil.copytree(pristine, tmp_path / "ds"))


def verify(root: Path):
    return CliRunner().invoke(app, ["verify", str(root), "--no-progress"])


def rewrite_shard(root: Path, number: int, change, set_name: str = "images") -> None:
    """Apply change(key, members) to every sample of a shard's `set_name` file, write it back and list its new size
    and sha256."""
    manifest = Manifest.from_json((root / "manifest.json").read_bytes())
    record = manifest.shards[number]
    entry = record.file(set_name)
    with open(root / entry.path, "rb") as handle:
        samples = list(read_shard(handle))
    for key, members in samples:
        change(key, members)
    buffer = io.BytesIO()
    write_shard(buffer, samples)
    (root / entry.path).write_bytes(buffer.getvalue())
    listed = dataclasses.replace(entry, bytes=len(buffer.getvalue()), sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    manifest.add(dataclasses.replace(record, files={**record.files, set_name: listed}))
    (root / "manifest.json").write_bytes(manifest.to_json())


def test_an_intact_dataset_passes(dataset):
    result = verify(dataset)
    assert result.exit_code == 0, result.output
    assert "OK, 2 shards × 3 sets (images, layers, assets), 3 identities" in result.output


def test_one_changed_byte_fails_naming_the_shard(dataset):
    shard = dataset / "images/shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01
    shard.write_bytes(bytes(data))
    result = verify(dataset)
    assert result.exit_code == 1
    assert "FAILED: images/shard-000001.tar: " in result.output and "bytes with sha256" in result.output and "the manifest lists" in result.output


def test_a_missing_or_truncated_shard_fails(dataset):
    shard = dataset / "images/shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-512])
    assert "images/shard-000000.tar:" in verify(dataset).output and "bytes with sha256" in verify(dataset).output
    shard.unlink()
    result = verify(dataset)
    assert result.exit_code == 1 and "images/shard-000000.tar: missing" in result.output


def test_a_pspi_that_disagrees_with_its_aus_fails_naming_sample_and_expression(dataset):
    def raise_pspi(key, members):
        meta = json.loads(members["meta.json"])
        meta["expressions"][2]["pspi"] = (meta["expressions"][2]["pspi"] + 1) % 17
        members["meta.json"] = json.dumps(meta).encode()

    rewrite_shard(dataset, 0, raise_pspi)
    result = verify(dataset)
    assert result.exit_code == 1
    assert "images/shard-000000.tar: id-0000000: meta.json expression pain01: pspi" in result.output
    assert "differs from the PSPI of its AUs" in result.output


def test_an_undecodable_image_member_fails_naming_it(dataset):
    def break_image(key, members):
        members["pain03.v1.jpg"] = b"\xff\xd8 not really a jpeg"

    rewrite_shard(dataset, 1, break_image)
    result = verify(dataset)
    assert result.exit_code == 1 and "images/shard-000001.tar: id-0000002.pain03.v1.jpg: unreadable" in result.output


@pytest.mark.parametrize("set_name, member, damaged, message", [
    ("images", "pain03.v1.jpg", b"\xff\xd8 not really a jpeg", "images/shard-000001.tar: id-0000002.pain03.v1.jpg: unreadable"),
    ("layers", "neutral.v0.depth.png", b"\x89PNG\r\n\x1a\n cut", "layers/shard-000001.tar: id-0000002.neutral.v0.depth.png: unreadable"),
    ("layers", "pain00.v2.seg.png", b"", "layers/shard-000001.tar: id-0000002.pain00.v2.seg.png: unreadable"),
    ("assets", "mesh.glb", b"glTF\x02\0\0\0 not a mesh", "assets/shard-000001.tar: id-0000002.mesh.glb: mesh.glb is not a textured GLB"),
])
def test_a_corrupted_member_of_each_set_is_named_with_its_file(dataset, set_name, member, damaged, message):
    def corrupt(key, members):
        assert member in members
        members[member] = damaged

    rewrite_shard(dataset, 1, corrupt, set_name)
    result = verify(dataset)
    assert result.exit_code == 1 and message in result.output, result.output


def test_a_glb_whose_texture_is_damaged_fails(dataset):
    def swap_texture(key, members):  # same length, so the GLB's structure holds: only the JPEG inside breaks
        glb = members["mesh.glb"]
        start = glb.index(b"\xff\xd8\xff")
        members["mesh.glb"] = glb[:start] + b"\0" * 64 + glb[start + 64:]

    rewrite_shard(dataset, 0, swap_texture, "assets")
    result = verify(dataset)
    assert result.exit_code == 1 and "assets/shard-000000.tar: id-0000000.mesh.glb texture: unreadable" in result.output, result.output


def test_a_missing_set_file_and_a_member_in_the_wrong_set_are_named(dataset):
    (dataset / "layers/shard-000000.tar").unlink()
    result = verify(dataset)
    assert result.exit_code == 1 and "layers/shard-000000.tar: missing" in result.output
    listed = Manifest.from_json((dataset / "manifest.json").read_bytes())
    assert "layers/shard-000000.tar: missing" in run_reader_of_all_sets(dataset, listed)

    shutil.copy(dataset / "layers/shard-000001.tar", dataset / "layers/shard-000000.tar")  # another shard's file: its record says so
    assert "layers/shard-000000.tar: " in verify(dataset).output and "the manifest lists" in verify(dataset).output


def test_a_missing_depth_map_and_a_missing_mesh_are_named_with_their_files(dataset):
    rewrite_shard(dataset, 1, lambda key, members: members.pop("pain01.v2.depth.png"), "layers")
    assert "layers/shard-000001.tar: id-0000002: pain01.v2.depth.png missing" in verify(dataset).output

    rewrite_shard(dataset, 1, lambda key, members: members.update({"pain01.v2.depth.png": members["pain00.v2.depth.png"]}), "layers")
    rewrite_shard(dataset, 0, lambda key, members: members.update({"mesh.obj": members.pop("mesh.glb")}), "assets")
    result = verify(dataset)
    assert result.exit_code == 1 and "assets/shard-000000.tar: id-0000000: no mesh (mesh.glb, or mesh.obj and texture.png)" in result.output


def test_a_member_in_the_wrong_set_is_refused(dataset):
    """An assets file cannot bring a meta.json of its own (it would override the images set's)."""
    rewrite_shard(dataset, 1, lambda key, members: members.update({"meta.json": b"{}"}), "assets")
    result = verify(dataset)
    assert result.exit_code == 1 and "assets/shard-000001.tar: id-0000002.meta.json belongs in the images set, not in assets" in result.output


def run_reader_of_all_sets(root: Path, manifest: Manifest) -> str:
    from factory.format.dataset import open_dataset
    from factory.format.shards import ShardError

    dataset = open_dataset(str(root))
    try:
        list(dataset.shard_samples(manifest.shards[0], manifest.sets))
    except ShardError as error:
        return str(error)
    return "ok"


def test_a_missing_view_and_a_manifest_gap_fail(dataset):
    rewrite_shard(dataset, 1, lambda key, members: members.pop("neutral.v2.jpg"))
    assert "id-0000002: neutral.v2.jpg missing" in verify(dataset).output

    manifest = Manifest.from_json((dataset / "manifest.json").read_bytes())
    manifest.shards = manifest.shards[1:]
    (dataset / "manifest.json").write_bytes(manifest.to_json())
    assert "starts at identity 2, expected 0" in verify(dataset).output

    (dataset / "manifest.json").write_text("{not json")
    result = verify(dataset)
    assert result.exit_code == 1 and "manifest.json" in result.output and "not valid JSON" in result.output


def test_inspect_prints_counts_pspi_histogram_and_demographics(pristine):
    result = CliRunner().invoke(app, ["inspect", str(pristine)])
    assert result.exit_code == 0, result.output
    assert f"{pristine}: 3 identities," in result.output
    assert "PSPI   expressions" in result.output and "\n   0        3  " in result.output  # one neutral per identity
    assert "gender:" in result.output and "age_band:" in result.output and "ethnicity:" in result.output


def test_preview_draws_a_contact_sheet_from_a_dataset(pristine, tmp_path):
    from PIL import Image

    result = CliRunner().invoke(app, ["preview", str(pristine), "--out", str(tmp_path / "sheet.png"), "--max-identities", "2", "--thumb", "32"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.height > 2 * 11 * 32  # two identities, eleven expression rows each
