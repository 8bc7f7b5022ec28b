"""Contact sheets from a folder written by `factory render-identity`."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from factory.cli import app
from factory.qa.preview import CAPTION_WIDTH, HEADER_HEIGHT, contact_sheet, identity_caption, read_sample_folders, sheet_size


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("identity")
    result = CliRunner().invoke(app, ["render-identity", "--seed", "0", "--index", "5", "--out", str(out),
                                      "--image-size", "64", "--texture-size", "256"])
    assert result.exit_code == 0, result.output
    return out


def test_render_identity_writes_the_members_as_files(sample_folder):
    meta = json.loads((sample_folder / "meta.json").read_text())
    assert meta["id"] == "id-0000005" and meta["image_size"] == 64
    assert (sample_folder / "neutral.v0.jpg").is_file() and (sample_folder / "pain09.heat.png").is_file()
    assert not list(sample_folder.glob(".*.partial"))


def test_preview_grid_has_a_row_per_expression_and_a_column_per_view_plus_heatmap(sample_folder, tmp_path):
    sheet_path = tmp_path / "sheet.png"
    result = CliRunner().invoke(app, ["preview", str(sample_folder), "--out", str(sheet_path), "--thumb", "48"])
    assert result.exit_code == 0, result.output
    sheet = Image.open(sheet_path)
    assert sheet.size == (CAPTION_WIDTH + (3 + 1) * 48, HEADER_HEIGHT + 11 * 48)
    # The neutral row's heatmap cell stays the sheet's background; the first view cell shows the render.
    pixels = sheet.convert("RGB")
    assert pixels.getpixel((CAPTION_WIDTH + 2, HEADER_HEIGHT + 2)) != pixels.getpixel((CAPTION_WIDTH + 3 * 48 + 24, HEADER_HEIGHT + 24))


def test_the_caption_names_the_texturer_and_background(sample_folder):
    meta = json.loads((sample_folder / "meta.json").read_text())
    assert identity_caption(meta).startswith("id-0000005  [procedural texture, scene background]  ")


def test_max_identities_limits_the_sheet(sample_folder, tmp_path):
    for name in ("a", "b", "c"):  # a folder of three sample folders
        (tmp_path / name).symlink_to(sample_folder, target_is_directory=True)
    sheet = contact_sheet(read_sample_folders(tmp_path), max_identities=2, thumb=32)
    assert sheet.size == sheet_size([(11, 3), (11, 3)], 32)


def test_preview_of_an_empty_folder_fails_clearly(tmp_path):
    result = CliRunner().invoke(app, ["preview", str(tmp_path), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "no meta.json" in result.output


def test_render_identity_rejects_bad_options_clearly(tmp_path):
    result = CliRunner().invoke(app, ["render-identity", "--out", str(tmp_path / "x"), "--image-size", "8"])
    assert result.exit_code == 2 and "image_size must be 32..4096" in result.output
    result = CliRunner().invoke(app, ["render-identity", "--out", str(tmp_path / "x"), "--texturer", "paint"])
    assert result.exit_code == 2 and "known: diffusion, procedural" in result.output
    assert not (tmp_path / "x").exists()
