"""The identity renderer end to end, on small images: the expressions show, the layers agree with each other, the
sample members follow docs/DATA.md, and the same spec gives the same bytes."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from factory.format.encoders import DEPTH_UNIT_CM
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.expressions import Expression
from factory.spec.labels import PSPI_AUS, pspi
from factory.spec.plan import plan_identity

SIZE = 96
BROWS, EYES = slice(17, 27), slice(36, 48)
UPPER_LIDS, LOWER_LIDS = [37, 38, 43, 44], [41, 40, 47, 46]  # Multi-PIE: each upper lid point and the one below it


def expression(name: str, **aus: int) -> Expression:
    full = {au: 0 for au in PSPI_AUS} | aus
    return Expression(name=name, aus=full, pspi=pspi(full))


@pytest.fixture(scope="module")
def renderer() -> IdentityRenderer:
    return IdentityRenderer(RenderConfig(image_size=SIZE, texture_size=256, backend="torch"))


@pytest.fixture(scope="module")
def spec():
    planned = plan_identity(3, seed=0)
    expressions = (
        expression("neutral"),
        expression("pain00", AU4=5),
        expression("pain01", AU43=1),
        expression("pain02", AU4=5, AU6=5, AU9=5, AU10=5, AU25=3),
    )
    # No beard: identity 3 became a bearded man when the age bands reached 90, and a beard rightly hides lower-lip
    # landmarks that the visibility test expects to see from the front.
    return dataclasses.replace(planned, expressions=expressions, hair=dataclasses.replace(planned.hair, facial="none", facial_length_cm=0.0))


@pytest.fixture(scope="module")
def layers(renderer, spec):
    return renderer.render(spec)


def test_layer_shapes(layers, spec):
    expressions, views = len(spec.expressions), len(spec.views)
    assert layers["rgb"].shape == (expressions, views, SIZE, SIZE, 3) and layers["rgb"].dtype == np.uint8
    assert layers["segmentation"].shape == (expressions, views, SIZE, SIZE)
    assert layers["depth"].shape == (expressions, views, SIZE, SIZE)
    assert layers["landmarks_2d"].shape == (expressions, views, 68, 2)
    assert layers["heatmap"].shape == (expressions, SIZE, SIZE, 3)


def test_brow_lowerer_moves_brows_down_toward_the_eyes(layers):
    frontal = layers["landmarks_2d"][:, 0]  # image y grows downward
    neutral, lowered = frontal[0], frontal[1]
    assert lowered[BROWS, 1].mean() > neutral[BROWS, 1].mean() + 0.5  # pixels
    gap = lambda points: points[EYES, 1].mean() - points[BROWS, 1].mean()  # noqa: E731
    assert gap(lowered) < gap(neutral) - 0.5


def test_eyes_closed_brings_the_lids_together(layers):
    frontal = layers["landmarks_2d"][:, 0]
    lid_gap = lambda points: np.abs(points[LOWER_LIDS, 1] - points[UPPER_LIDS, 1]).mean()  # noqa: E731
    assert lid_gap(frontal[0]) > 2.0
    assert lid_gap(frontal[2]) < 0.25 * lid_gap(frontal[0])


def test_heatmaps_black_for_neutral_bright_for_strong_pain(layers):
    heat = layers["heatmap"]
    assert heat[0].max() == 0
    assert heat[2].max() > 0  # eyes closing moves the lids
    strong = heat[3].astype(int)
    assert (strong[..., 0] > 200).mean() > 0.02  # a sizeable hot region
    assert strong.sum() > heat[1].astype(int).sum()  # four AUs at 5 move more than one


def test_masks_cover_the_face_and_not_the_background(layers, spec):
    mask = layers["mask"][0, 0]
    centre = mask[SIZE // 3 : 2 * SIZE // 3, SIZE // 3 : 2 * SIZE // 3]
    assert centre.all()
    corners = np.concatenate([mask[:4, :4].ravel(), mask[:4, -4:].ravel()])
    assert not corners.any()
    assert 0.2 < mask.mean() < 0.9
    # Background pixels show the planned room (not one flat colour); depth is 0 exactly there.
    background = layers["rgb"][0, 0][~mask].astype(float)
    assert background.std(axis=0).max() > 2
    assert (layers["depth"][0, 0][~mask] == 0).all() and (layers["depth"][0, 0][mask] > 0).all()


def test_the_gradient_background_is_still_a_choice(spec):
    """render.background: gradient draws the planned gradient (the sensor's noise averages out over a block)."""
    renderer = IdentityRenderer(RenderConfig(image_size=SIZE, texture_size=256, backend="torch", background="gradient"))
    rgb = renderer.render(dataclasses.replace(spec, expressions=spec.expressions[:1]))["rgb"][0, 0]
    top = np.array(spec.background.top) * 255
    assert np.abs(rgb[:4, :4].reshape(-1, 3).astype(float).mean(axis=0) - top).max() < 3


def test_segmentation_finds_the_face_parts(layers, renderer, spec):
    parts = renderer.part_names
    assert parts[: len(renderer.model.part_names)] == renderer.model.part_names  # hair parts come after the face's
    seen = {parts[k] for k in np.unique(layers["segmentation"][0, 0])}
    assert spec.hair.style != "shaved"
    assert {"background", "skin", "brows", "eyes", "lips", "hair"} <= seen


def test_far_side_landmarks_are_hidden_in_side_views(layers, spec):
    visible = layers["landmarks_visible"][0]  # neutral, (views, 68)
    assert visible[0, 27:60].all()  # frontal: nose, eyes and outer lips (inner-lip points may hide behind a lip)
    for view in range(1, len(spec.views)):
        assert visible[view].sum() < visible[0].sum()


def test_sample_members_follow_the_data_contract(renderer, spec, layers):
    members = renderer.encode_sample(spec, layers)
    expected = {"meta.json", "mesh.obj", "texture.png"}
    for e in spec.expressions:
        for v in spec.views:
            expected |= {f"{e.name}.{v.name}.jpg", f"{e.name}.{v.name}.seg.png", f"{e.name}.{v.name}.depth.png"}
        if e.name != "neutral":
            expected.add(f"{e.name}.heat.png")
    assert set(members) == expected

    meta = json.loads(members["meta.json"])
    assert meta["id"] == spec.id and meta["image_size"] == SIZE and meta["depth_unit_cm"] == DEPTH_UNIT_CM
    assert [e["pspi"] for e in meta["expressions"]] == [e.pspi for e in spec.expressions]
    assert len(meta["expressions"][1]["landmarks_3d"]) == 68
    view = meta["views"][0]
    assert np.array(view["K"]).shape == (3, 3) and len(view["landmarks_2d"]["pain01"]) == 68
    assert meta["heatmap"]["normalisation_cm"] > 0 and meta["texture"]["name"] == "procedural"

    seg = np.array(Image.open(io.BytesIO(members["pain02.v1.seg.png"])))
    assert (seg == layers["segmentation"][3, 1]).all()
    depth = np.array(Image.open(io.BytesIO(members["neutral.v0.depth.png"])))
    assert depth.dtype == np.uint16
    assert np.abs(depth * DEPTH_UNIT_CM - layers["depth"][0, 0]).max() <= DEPTH_UNIT_CM
    rgb = np.array(Image.open(io.BytesIO(members["pain00.v0.jpg"])))
    assert rgb.shape == (SIZE, SIZE, 3) and np.abs(rgb.astype(int) - layers["rgb"][1, 0]).mean() < 4
    obj = members["mesh.obj"].decode()
    assert obj.count("\nv ") == renderer.model.num_vertices and obj.count("\nf ") == len(renderer.faces)


def test_same_spec_same_bytes(renderer, spec, layers):
    first = renderer.encode_sample(spec, layers)
    again = renderer.encode_sample(spec, renderer.render(spec))
    assert first == again
    other = renderer.render(plan_identity(4, seed=0))
    assert not np.array_equal(other["rgb"][0, 0], layers["rgb"][0, 0])


def test_render_config_is_validated():
    with pytest.raises(ValueError, match="unknown render key"):
        RenderConfig.from_dict({"image_size": 64, "colour": "red"})
    with pytest.raises(ValueError, match="unknown texturer 'airbrush'.*diffusion, procedural"):
        RenderConfig(texturer="airbrush")
    with pytest.raises(ValueError, match="image_size"):
        RenderConfig(image_size=8)
    with pytest.raises(ValueError, match="backend"):
        RenderConfig(backend="opengl")
    assert RenderConfig.from_dict({"image_size": 64}).image_size == 64
