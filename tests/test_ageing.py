"""Older adults: age bands to 90, and visible ageing driven by age (skin laxity in the shape, deeper creases and age
lines, age spots, sparser brows, thinner and greyer hair), none of it before 60."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from factory.face.ageing import skin_laxity
from factory.face.model import FaceModel
from factory.face.texture import make_texturer
from factory.face.wrinkles import age_depth
from factory.spec.hair import draw_hair, elder_factor
from factory.spec.plan import draw_skin, plan_identities, plan_identity

JAW_RIGHT, MOUTH_RIGHT = 5, 48


@pytest.fixture(scope="module")
def model():
    return FaceModel.load()


def test_the_default_bands_reach_90_and_old_plans_are_older():
    ages = [spec.demographics.age for spec in plan_identities(120, 0)]
    assert max(ages) <= 90 and sum(a >= 75 for a in ages) == 24 and sum(a >= 60 for a in ages) == 48  # 2 of 5 bands


def test_elder_factor_runs_from_60_to_90():
    assert [elder_factor(a) for a in (18, 59, 60, 75, 90, 99)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert age_depth(85) > age_depth(80) > age_depth(60) > age_depth(30)


def test_laxity_sags_the_lower_face_with_age_and_leaves_the_eyes(model):
    rest = model.neutral
    assert skin_laxity(model, rest, 59) is None  # no change at all before 60
    sixty_five, eighty_five = skin_laxity(model, rest, 65), skin_laxity(model, rest, 85)
    jowl = model.landmarks[JAW_RIGHT]
    assert float(eighty_five[jowl, 1]) < float(sixty_five[jowl, 1]) < 0  # the jaw line drops, more with age
    assert float(eighty_five.norm(dim=1).max()) < 1.0  # millimetres, not a caricature
    assert float(eighty_five[model.layout.eyeballs | model.layout.mouth].abs().max()) == 0.0


def test_hair_greys_and_thins_with_age():
    def share_grey(age):
        return np.mean([draw_skin(np.random.default_rng([k]), "white", age).hair in ("gray", "white") for k in range(400)])

    def white(age):
        return np.mean([draw_skin(np.random.default_rng([k]), "black", age).hair == "white" for k in range(400)])

    assert share_grey(40) == 0 and 0.35 < share_grey(62) < share_grey(88) and share_grey(88) > 0.8
    assert white(62) < 0.05 < white(88)

    def thinning(gender, age):
        return np.mean([draw_hair(np.random.default_rng([k]), gender, age, 0.4).thinning for k in range(300)])

    for gender in ("female", "male"):
        assert thinning(gender, 59) < thinning(gender, 88)


def test_age_spots_and_sparser_brows_appear_after_60_only():
    texturer = make_texturer("procedural", FaceModel.load(), 256)
    spec = plan_identity(4, 0)

    def texture(age):
        return texturer.texture(spec.skin, dataclasses.replace(spec.demographics, age=age), spec.hair).image

    assert torch.equal(texture(30), texture(30))
    young, old = texture(59), texture(88)
    darker = (old.mean(dim=-1) < young.mean(dim=-1) - 0.05).float().mean()
    assert float(darker) > 0.002  # spots, lines and sparser brows darken or change parts of the skin
    assert not torch.equal(texture(60), texture(88))


def test_under_60_faces_render_as_before_the_ageing(model):
    """A plan under 60 gets no laxity and no elder texture steps: its identity is posed exactly as without them."""
    from factory.run.identity import IdentityRenderer, RenderConfig

    renderer = IdentityRenderer(RenderConfig(image_size=32, texture_size=64))
    spec = next(s for s in plan_identities(20, 0) if s.demographics.age < 60)
    face = renderer.pose(spec)
    assert face.laxity is None
    old = renderer.pose(dataclasses.replace(spec, demographics=dataclasses.replace(spec.demographics, age=85)))
    assert old.laxity is not None and float(old.laxity.abs().max()) > 0.3
    assert torch.allclose(old.verts - old.laxity, face.verts, atol=1e-5)  # the same expressions, sagged
