"""One FLAME identity rendered end to end (64 px): the layers, the textures on transferred and on FLAME's own UVs,
what meta.json records, and the render options refused by name."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from factory.options import ConfigError
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.expressions import Expression
from factory.spec.labels import PSPI_AUS, pspi
from factory.spec.plan import plan_identity
from tests.flame_files import write_uv_obj

SIZE = 64


def expression(name: str, **aus: int) -> Expression:
    full = {au: 0 for au in PSPI_AUS} | aus
    return Expression(name=name, aus=full, pspi=pspi(full))


@pytest.fixture(scope="module")
def spec():
    planned = plan_identity(3, seed=0)
    return dataclasses.replace(planned, expressions=(expression("neutral"), expression("pain00", AU4=5, AU6=4, AU9=4, AU43=1)))


@pytest.fixture(scope="module")
def renderer(flame_2020) -> IdentityRenderer:
    return IdentityRenderer(RenderConfig(image_size=SIZE, texture_size=256, backend="torch", face_model="flame",
                                         flame_path=str(flame_2020.path)))


def test_a_flame_identity_renders_with_every_layer(renderer, spec, flame_2020):
    layers = renderer.render(spec)
    assert layers["rgb"].shape == (2, 3, SIZE, SIZE, 3) and layers["landmarks_2d"].shape == (2, 3, 68, 2)
    mask = layers["mask"][0, 0]
    assert 0.15 < mask.mean() < 0.8  # the head fills the frame without leaving it
    points = layers["landmarks_2d"][0, 0]
    assert (points > 0).all() and (points < SIZE).all() and layers["landmarks_visible"][0, 0][30]  # nose tip seen
    changed = np.abs(layers["rgb"][1, 0].astype(int) - layers["rgb"][0, 0].astype(int)).sum(-1) > 30
    assert changed[mask].mean() > 0.02 and layers["heatmap"][1].max() > 0  # the pain expression shows
    members = renderer.encode_sample(spec, layers)
    meta = json.loads(members["meta.json"])
    files = meta["generator"]["face_model_files"]
    assert meta["generator"]["face_model"] == "flame" and files["sha256"] == hashlib.sha256(flame_2020.path.read_bytes()).hexdigest()
    assert files["uv"]["from"] == "transferred from ICT" and files["landmarks"]["from"] == "transferred from ICT"
    obj = members["mesh.obj"].decode()
    assert obj.count("\nv ") + obj.startswith("v ") == len(flame_2020.source_vertex)
    texture = np.asarray(Image.open(io.BytesIO(members["texture.png"])))
    assert texture.shape == (256, 256, 3) and texture.std() > 10


def test_flames_own_uvs_when_given(flame_2020, spec, tmp_path):
    write_uv_obj(tmp_path / "head_template.obj", flame_2020)
    renderer = IdentityRenderer(RenderConfig(image_size=SIZE, texture_size=256, backend="torch", face_model="flame",
                                             flame_path=str(flame_2020.path), flame_uv=str(tmp_path / "head_template.obj")))
    atlas = renderer.texturer.atlas
    assert len(renderer.model.layout.cells) == 1 and len(atlas.face_index) == len(flame_2020.faces)
    assert renderer.texturer.regions.eyeball.sum() > 100  # the eyeballs' own corner squares are painted as eyes
    layers = renderer.render(dataclasses.replace(spec, expressions=spec.expressions[:1]))
    assert layers["rgb"][0, 0][layers["mask"][0, 0]].std() > 5
    assert renderer.face.record["uv"]["from"] == "uv file"


def test_render_options_for_flame_are_checked_at_the_edge(flame_2020, tmp_path):
    with pytest.raises(ConfigError, match="face_model flame needs flame_path"):
        RenderConfig(face_model="flame")
    with pytest.raises(ConfigError, match="flame_path only apply with face_model: flame"):
        RenderConfig(flame_path=str(flame_2020.path))
    with pytest.raises(ConfigError, match="flame_path: no such file"):
        RenderConfig(face_model="flame", flame_path=str(tmp_path / "absent.pkl"))
    with pytest.raises(ConfigError, match="face_model must be one of ict, flame"):
        RenderConfig(face_model="bfm")
    with pytest.raises(ConfigError, match="not the flame_sha256"):
        RenderConfig(face_model="flame", flame_path=str(flame_2020.path), flame_sha256="0" * 64)
    config = RenderConfig(face_model="flame", flame_path=str(flame_2020.path))
    assert config.flame_sha256 == hashlib.sha256(flame_2020.path.read_bytes()).hexdigest()
    assert RenderConfig.from_dict(config.to_dict()) == config  # what the manifest stores reads back
