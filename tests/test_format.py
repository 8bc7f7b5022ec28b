"""The dataset contract has one owner, factory/format: member names, the storage-option merge, and the trainer
reading datasets only through it."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from factory.cli import app
from factory.format.encoders import DEPTH_UNIT_CM, encode_depth, encode_png
from factory.format.members import heatmap_member, is_image, view_member
from factory.format.storage import resolve_storage_options
from tests.trainer_shards import write_dataset
from trainer.data import scaled_aus

REPO = Path(__file__).resolve().parents[1]
# What the trainer may import from the factory: the dataset contract, the labels and plans, and the shared
# vocabulary of user-facing errors and typed configs. Nothing of how datasets are made.
TRAINER_MAY_IMPORT = ("factory.format", "factory.spec", "factory.errors", "factory.options")


def factory_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names if node.module == "factory"}
    return {m for m in modules if m == "factory" or m.startswith("factory.")}


def test_the_trainer_imports_only_the_dataset_contract_from_the_factory():
    found = {str(path.relative_to(REPO)): sorted(factory_imports(path)) for path in sorted((REPO / "trainer").rglob("*.py"))}
    assert any(found.values()), "the trainer reads datasets through factory.format: the scan found no imports at all"
    outside = {path: [m for m in modules if not m.startswith(TRAINER_MAY_IMPORT)] for path, modules in found.items()}
    assert not {path: modules for path, modules in outside.items() if modules}, outside


def test_the_import_scan_sees_every_form_of_import(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("import factory.run.generate\nfrom factory.qa import verify\nfrom factory import cli\n"
                      "def f():\n    from factory.format.dataset import open_dataset\n")
    assert factory_imports(source) == {"factory.run.generate", "factory.qa", "factory", "factory.cli", "factory.format.dataset"}


def test_member_names_are_the_documented_ones():
    assert view_member("pain03", "v1") == "pain03.v1.jpg"
    assert view_member("pain03", "v1", "segmentation") == "pain03.v1.seg.png"
    assert view_member("neutral", "v0", "depth") == "neutral.v0.depth.png"
    assert heatmap_member("pain03") == "pain03.heat.png"
    assert is_image("pain03.heat.png") and is_image("neutral.v0.jpg") and not is_image("meta.json")
    with pytest.raises(ValueError, match="unknown view layer 'normals'"):
        view_member("neutral", "v0", "normals")
    assert scaled_aus({"AU4": 5, "AU6": 1, "AU43": 1, "AU12": 3}) == (1.0, 0.2, 0.0, 0.0, 0.0, 1.0)


def test_flags_merge_into_the_environment_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    region = {"client_kwargs": {"region_name": "eu-west-1"}}
    assert resolve_storage_options("s3://b/ds", region) == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}}
    # A config file's options, then the flags', each merged key by key; a flag wins over the file.
    file_options = {"client_kwargs": {"region_name": "us-east-2"}, "anon": False}
    assert resolve_storage_options("s3://b/ds", file_options, region) == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}, "anon": False}
    assert resolve_storage_options("./local", region) == region  # no S3 defaults for a folder


@pytest.mark.parametrize("command", ["verify", "inspect", "preview"])
def test_every_reader_keeps_the_endpoint_when_a_flag_sets_the_region(s3, monkeypatch, tmp_path, command):
    url = f"s3://{s3.bucket}/ds"
    write_dataset(url, identities=2, image_size=32, pain_expressions=1)
    # botocore would otherwise read AWS_ENDPOINT_URL by itself and hide a dropped endpoint.
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    flags = ["--storage-option", "client_kwargs.region_name=eu-west-1", "--storage-option", "config_kwargs.retries.max_attempts=1"]
    extra = {"verify": ["--no-progress"], "inspect": [], "preview": ["--out", str(tmp_path / "sheet.png")]}[command]
    result = CliRunner().invoke(app, [command, url, *flags, *extra])
    assert result.exit_code == 0, result.output
    if command != "preview":
        assert "2 identities" in result.output, result.output


@pytest.mark.parametrize("image", [
    np.random.default_rng(1).integers(0, 256, (37, 53), dtype=np.uint8),  # segmentation: 8-bit grey
    np.random.default_rng(2).integers(0, 65536, (31, 17), dtype=np.uint16),  # depth: 16-bit grey
    np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8),  # heatmaps, texture: RGB
    np.zeros((1, 1), dtype=np.uint8),
])
def test_png_encoder_round_trips_through_pillow(image):
    png = encode_png(image)
    assert png == encode_png(image.copy())  # the same pixels, the same bytes
    decoded = Image.open(io.BytesIO(png))
    decoded.load()  # checks the chunks' CRCs and the zlib stream
    assert np.array_equal(np.asarray(decoded), image) and np.asarray(decoded).dtype == image.dtype


def test_depth_png_holds_depth_in_its_unit_and_background_as_zero():
    depth = np.array([[0.0, 12.345], [650.0, 700.0]], dtype=np.float32)
    decoded = np.asarray(Image.open(io.BytesIO(encode_depth(depth))))
    assert decoded.tolist() == [[0, round(12.345 / DEPTH_UNIT_CM)], [65000, 65535]]


@pytest.mark.parametrize("image", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4, 4), np.uint8)])
def test_png_encoder_refuses_what_it_cannot_write(image):
    with pytest.raises(ValueError, match="encode_png takes 8- or 16-bit grey"):
        encode_png(image)
