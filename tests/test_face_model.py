"""The bundled compact face model: size, fidelity to the source, and the batched API."""

from pathlib import Path

import numpy as np
import pytest
import torch

from factory.face.model import FaceModel
from factory.face.shapes import DERIVED_SHAPES

ASSET = Path(__file__).parents[1] / "factory" / "assets" / "ict_face_light.npz"
SOURCE = Path(__file__).parents[2] / "shared" / "assets" / "ict-facekit" / "shapes.npz"


def test_shipped_asset_is_small_and_licensed():
    assert ASSET.stat().st_size < 25 * 2**20
    assert (ASSET.parent / "LICENSE-ICT-FaceKit").read_text().startswith("MIT License") or "MIT" in (
        ASSET.parent / "LICENSE-ICT-FaceKit").read_text()


@pytest.mark.skipif(not SOURCE.exists(), reason="needs ../shared/assets/ict-facekit (present in CI)")
def test_every_shape_matches_the_float32_source_within_a_hundredth_of_a_millimetre():
    model = FaceModel.load()
    source = np.load(SOURCE)
    neutral = source["neutral"]
    worst = float(np.abs(model.neutral.numpy() - neutral).max())
    for k in range(model.num_identity):
        reconstructed = model.neutral.numpy() + model.identity_basis[k].numpy()
        worst = max(worst, float(np.abs(reconstructed - source[f"identity{k:03d}"]).max()))
    published = [name for name in model.expression_names if name in source]
    assert len(published) == 57 and model.expression_names[57:] == DERIVED_SHAPES  # derived shapes come last
    for name in published:
        reconstructed = model.neutral.numpy() + model.expression_basis[model.expression_index(name)].numpy()
        worst = max(worst, float(np.abs(reconstructed - source[name]).max()))
    print(f"largest vertex error against the float32 source: {worst:.2e} cm")
    assert worst < 1e-3  # the product promises 0.01 cm; int16 quantisation gives far less


def test_topology_parts_and_landmarks():
    model = FaceModel.load()
    assert model.num_vertices == 26719 and model.num_identity == 100 and model.num_expressions == 57 + len(DERIVED_SHAPES)
    assert model.faces.shape[1] == 3 and int(model.faces.max()) < model.num_vertices
    assert model.face_uvs.shape == model.faces.shape
    # UDIM layout: the integer part of u is the tile (face and head 0-1, mouth 1-3, eye shells 4-5, lashes 6).
    assert float(model.uvs.min()) >= 0 and float(model.uvs[:, 0].max()) < 7 and float(model.uvs[:, 1].max()) <= 1
    assert model.landmarks.shape == (68,)
    counts = torch.bincount(model.vertex_part, minlength=len(model.part_names))
    for part in ("skin", "brows", "eyes", "lips", "mouth_interior", "lashes"):
        assert counts[model.part_names.index(part)] > 50, part
    # Brows sit above the eyes, lips below the nose tip (landmark 30).
    brows = model.neutral[model.vertex_part == model.part_names.index("brows")]
    lips = model.neutral[model.vertex_part == model.part_names.index("lips")]
    eye_landmarks = model.neutral[model.landmarks[36:48]]
    assert brows[:, 1].mean() > eye_landmarks[:, 1].max()
    assert lips[:, 1].mean() < model.neutral[model.landmarks[30], 1]


def test_vertices_are_batched_and_linear():
    model = FaceModel.load()
    identity = torch.randn(3, 100)
    expression = torch.rand(3, model.num_expressions)
    verts = model.vertices(identity, expression)
    assert verts.shape == (3, model.num_vertices, 3)
    zero = model.vertices(torch.zeros(1, 100), torch.zeros(1, model.num_expressions))
    assert torch.equal(zero[0], model.neutral)
    doubled = model.vertices(2 * identity, 2 * expression) - model.neutral
    assert torch.allclose(doubled, 2 * (verts - model.neutral), atol=1e-4)
    # Fewer identity coefficients than modes: the rest count as zero.
    short = model.vertices(identity[:, :10], expression)
    padded = model.vertices(torch.cat([identity[:, :10], torch.zeros(3, 90)], dim=1), expression)
    assert torch.allclose(short, padded, atol=1e-5)


def test_shape_mismatch_is_a_clear_error():
    model = FaceModel.load()
    with pytest.raises(ValueError, match="expression shapes"):
        model.vertices(torch.zeros(1, 100), torch.zeros(1, 3))
    with pytest.raises(KeyError, match="unknown expression shape"):
        model.expression_index("smirk")
