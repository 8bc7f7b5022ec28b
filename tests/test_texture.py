"""The procedural texturer and its UV atlas: tones in the right direction, age lines, eye colours, determinism."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from factory.face.model import FaceModel
from factory.spec.plan import Demographics, Skin
from factory.face.texture import ATLAS_CELLS, TEXTURERS, ProceduralTexturer, make_texturer

LUMA = torch.tensor([0.2126, 0.7152, 0.0722])
SKIN = Skin(tone=0.3, fitzpatrick=2, undertone=0.0, redness=0.5, freckles=0.0, iris="brown", hair="brown", texture_seed=11)
ADULT = Demographics(age=30, age_band="30-44", gender="female", ethnicity="white")


@pytest.fixture(scope="module")
def texturer() -> ProceduralTexturer:
    return make_texturer("procedural", FaceModel.load(), texture_size=256)


def mean_luminance(image: torch.Tensor, where: torch.Tensor) -> float:
    return float((image[where] @ LUMA).mean())


def test_registry_names_the_known_texturers(texturer):
    assert TEXTURERS["procedural"] is ProceduralTexturer
    with pytest.raises(ValueError, match="unknown texturer 'stable'; known: procedural"):
        make_texturer("stable", texturer.model)


def test_atlas_cells_hold_their_triangles_apart(texturer):
    atlas = texturer.atlas
    uv = atlas.corner_uvs
    assert uv.min() >= 0 and uv.max() <= 1
    # Every rendered triangle lies inside exactly one cell: no two charts share texels.
    inside = []
    for x, y, side in ATLAS_CELLS.values():
        u, v = uv[..., 0], 1 - uv[..., 1]
        inside.append(((u >= x) & (u <= x + side) & (v >= y) & (v <= y + side)).all(dim=1))
    assert (torch.stack(inside).sum(dim=0) == 1).all()
    assert (atlas.texel_face >= 0).float().mean() > 0.4  # the charts fill a good part of the square


def test_fitzpatrick_one_is_lighter_than_six(texturer):
    light = texturer.texture(dataclasses.replace(SKIN, tone=0.0, fitzpatrick=1), ADULT).image
    dark = texturer.texture(dataclasses.replace(SKIN, tone=1.0, fitzpatrick=6), ADULT).image
    middle = texturer.texture(dataclasses.replace(SKIN, tone=0.5, fitzpatrick=4), ADULT).image
    skin = texturer.skin
    assert mean_luminance(light, skin) > mean_luminance(middle, skin) > mean_luminance(dark, skin)
    assert mean_luminance(light, skin) > 2.5 * mean_luminance(dark, skin)
    # The eyes keep their white whatever the skin.
    sclera = texturer.eyeball & (texturer.eye_geometry[0] > 2) & (texturer.eye_geometry[0] < 9)
    assert abs(mean_luminance(light, sclera) - mean_luminance(dark, sclera)) < 0.05


def test_age_deepens_the_lines(texturer):
    lines = torch.zeros(texturer.skin.shape)
    lines.view(-1)[texturer.skin_index] = texturer.wrinkles
    where = lines > 0.05
    assert where.sum() > 100
    young = texturer.texture(SKIN, dataclasses.replace(ADULT, age=20)).image
    old = texturer.texture(SKIN, dataclasses.replace(ADULT, age=80)).image
    assert mean_luminance(old, where) < mean_luminance(young, where) - 0.02
    elsewhere = ~where & texturer.skin
    assert (old[elsewhere] - young[elsewhere]).abs().mean() < 0.005


def test_iris_colour_follows_the_skin_plan(texturer):
    iris = (texturer.eye_geometry[0] > 0.5) & (texturer.eye_geometry[0] < 0.9) & texturer.eyeball
    blue = texturer.texture(dataclasses.replace(SKIN, iris="blue"), ADULT).image[iris].mean(dim=0)
    brown = texturer.texture(dataclasses.replace(SKIN, iris="dark_brown"), ADULT).image[iris].mean(dim=0)
    assert blue[2] > blue[0] and brown[0] > brown[2]


def test_same_seed_same_texture(texturer):
    first = texturer.texture(SKIN, ADULT)
    assert torch.equal(first.image, texturer.texture(SKIN, ADULT).image)
    reseeded = texturer.texture(dataclasses.replace(SKIN, texture_seed=12), ADULT)
    assert not torch.equal(first.image, reseeded.image)
    assert first.parameters["name"] == "procedural" and first.parameters["texture_size"] == 256
