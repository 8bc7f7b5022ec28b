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


def rewrite_shard(root: Path, number: int, change) -> None:
    """Apply change(key, members) to every sample of a shard, write it back and list its new size and sha256."""
    manifest = Manifest.from_json((root / "manifest.json").read_bytes())
    record = manifest.shards[number]
    with open(root / record.path, "rb") as handle:
        samples = list(read_shard(handle))
    for key, members in samples:
        change(key, members)
    buffer = io.BytesIO()
    write_shard(buffer, samples)
    (root / record.path).write_bytes(buffer.getvalue())
    manifest.add(dataclasses.replace(record, bytes=len(buffer.getvalue()), sha256=hashlib.sha256(buffer.getvalue()).hexdigest()))
    (root / "manifest.json").write_bytes(manifest.to_json())


def test_an_intact_dataset_passes(dataset):
    result = verify(dataset)
    assert result.exit_code == 0, result.output
    assert "OK, 2 shards, 3 identities" in result.output


def test_one_changed_byte_fails_naming_the_shard(dataset):
    shard = dataset / "shards/shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01
    shard.write_bytes(bytes(data))
    result = verify(dataset)
    assert result.exit_code == 1
    assert "FAILED: shards/shard-000001.tar: " in result.output and "bytes with sha256" in result.output and "the manifest lists" in result.output


def test_a_missing_or_truncated_shard_fails(dataset):
    shard = dataset / "shards/shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:-512])
    assert "shards/shard-000000.tar:" in verify(dataset).output and "bytes with sha256" in verify(dataset).output
    shard.unlink()
    result = verify(dataset)
    assert result.exit_code == 1 and "shards/shard-000000.tar: missing" in result.output


def test_a_pspi_that_disagrees_with_its_aus_fails_naming_sample_and_expression(dataset):
    def raise_pspi(key, members):
        meta = json.loads(members["meta.json"])
        meta["expressions"][2]["pspi"] = (meta["expressions"][2]["pspi"] + 1) % 17
        members["meta.json"] = json.dumps(meta).encode()

    rewrite_shard(dataset, 0, raise_pspi)
    result = verify(dataset)
    assert result.exit_code == 1
    assert "shards/shard-000000.tar: id-0000000: meta.json expression pain01: pspi" in result.output
    assert "differs from the PSPI of its AUs" in result.output


def test_an_undecodable_image_member_fails_naming_it(dataset):
    def break_image(key, members):
        members["pain03.v1.jpg"] = b"\xff\xd8 not really a jpeg"

    rewrite_shard(dataset, 1, break_image)
    result = verify(dataset)
    assert result.exit_code == 1 and "shards/shard-000001.tar: id-0000002.pain03.v1.jpg: unreadable" in result.output


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
