"""Expression creases (factory/face/wrinkles.py) and the shapes derived from the model (factory/face/shapes.py):
creases are absent at neutral, deepen with intensity and age in the family each AU folds, and the relief map
darkens and tilts only along crease lines."""

from __future__ import annotations

import pytest
import torch

from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.face.shapes import DERIVED_SHAPES
from factory.face.texture.atlas import UVAtlas
from factory.face.wrinkles import CREASE_FAMILIES, CreaseModel, age_depth

# The crease family each PSPI AU folds most, as a FACS coder would look for it.
FAMILY_OF_AU = {"AU4": "glabella", "AU6": "crows_feet", "AU7": "lower_lid", "AU9": "nose_root",
                "AU10": "nasolabial", "AU43": "upper_lid"}


@pytest.fixture(scope="module")
def model():
    return FaceModel.load()


@pytest.fixture(scope="module")
def rig(model):
    return AURig(model)


@pytest.fixture(scope="module")
def creases(model):
    return CreaseModel(model, UVAtlas.build(model, 256))


def family_depth(creases, depth, family):
    """(N,) the deepest crease of each mesh inside one family's region (where its weight is over a half)."""
    k = [f.name for f in CREASE_FAMILIES].index(family)
    inside = creases.regions[k] > 0.5
    return depth[:, creases.surface][:, inside].amax(dim=1)


def test_no_creases_on_the_expressionless_face(rig, creases):
    identity = torch.randn(100).clamp(-3, 3)
    rest = rig.rest_vertices(identity)
    verts = rig.vertices(identity, [{}, {}])
    assert torch.equal(creases.depth(verts, rest, age=70), torch.zeros(2, rig.model.num_vertices))


@pytest.mark.parametrize("au", sorted(FAMILY_OF_AU))
def test_creases_deepen_with_every_level_of_their_au(rig, creases, au):
    identity = torch.zeros(100)
    levels = range(1, 2 if au == "AU43" else 6)
    verts = rig.vertices(identity, [{}] + [{au: level} for level in levels])
    depth = family_depth(creases, creases.depth(verts, rig.rest_vertices(identity), age=45), FAMILY_OF_AU[au])
    assert depth[0] == 0 and depth[1] > 0.05, depth
    assert all(a < b for a, b in zip(depth.tolist(), depth[1:].tolist())), depth
    assert depth[-1] > 0.5, f"{au} at its maximum barely creases its {FAMILY_OF_AU[au]} family: {depth[-1]:.2f}"


def test_older_faces_crease_more(rig, creases):
    identity = torch.zeros(100)
    verts = rig.vertices(identity, [{"AU4": 3, "AU6": 3, "AU9": 3}])
    rest = rig.rest_vertices(identity)
    young, old = creases.depth(verts, rest, age=22), creases.depth(verts, rest, age=75)
    assert young.max() > 0.2
    assert torch.allclose(old, young * age_depth(75) / age_depth(22)) and age_depth(75) > 1.5 * age_depth(22)


def test_relief_darkens_and_tilts_along_crease_lines_only(model, creases):
    relief = creases.relief
    darkening, tilt = relief[..., 0], relief[..., 1:]
    assert 0 <= float(darkening.min()) and float(darkening.max()) <= 0.8
    creased = darkening > 0.05
    assert 0.001 < float(creased.float().mean()) < 0.1  # thin lines over a small part of the texture
    assert float(tilt.norm(dim=-1).max()) > 0.3  # crease walls tilt the normal visibly
    assert float(tilt[darkening == 0].abs().max()) == 0  # and nothing else does


def test_brow_knit_pulls_the_brow_heads_toward_the_midline_and_nothing_else(model):
    assert DERIVED_SHAPES == ("browKnit_L", "browKnit_R")
    left, right = (model.expression_basis[model.expression_index(name)] for name in DERIVED_SHAPES)
    moved = left.norm(dim=-1) > 0
    assert moved.any() and not moved[~model.layout.margin_surface].any()  # the face surface only
    brow_head = model.landmarks[22]  # the left brow's inner end
    assert left[brow_head, 0] < -0.2 and left[brow_head, 1] < 0  # toward the midline, and down
    assert float(left[model.neutral[:, 0] <= 0, 0].abs().max()) == 0  # the left pull stays on the left …
    assert torch.allclose(right[model.landmarks[21]] * torch.tensor([-1.0, 1.0, 1.0]), left[brow_head], atol=1e-5)  # … mirrored
