"""The bedside (issue 15, items 1 and 2): medical occluders carried by the face, their segmentation class and the
per-AU visibility they leave, and the clinical scenario; the default scenario stays as it was."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch

from factory.face.occluders import OccluderMesh, build_occluder
from factory.face.rig import AURig
from factory.options import ConfigError
from factory.run.bedside import OCCLUDER_PART, bedding_of
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.bedside import OCCLUDER_KINDS, Occluder, lying_rotation
from factory.spec.labels import PSPI_AUS
from factory.spec.plan import IdentitySpec, PlanConfig, frontal_view, plan_identity

AU4, AU10 = PSPI_AUS.index("AU4"), PSPI_AUS.index("AU10")


def occluder(kind: str, side: int = 1) -> Occluder:
    colour = (-1.0, -1.0, -1.0) if kind == "hand" else (0.6, 0.78, 0.9)
    return Occluder(kind=kind, side=side, size=1.0, standoff_cm=0.25, colour=colour, seed=3)


@pytest.fixture(scope="module")
def renderer() -> IdentityRenderer:
    return IdentityRenderer(RenderConfig(image_size=96, texture_size=128, device="cpu"))


def two_expressions(spec: IdentitySpec, **changes) -> IdentitySpec:
    """The neutral and one pain expression, seen from the front: small and quick to render."""
    return dataclasses.replace(spec, expressions=spec.expressions[:2], views=(frontal_view(),), **changes)


@pytest.mark.parametrize("kind", OCCLUDER_KINDS)
def test_every_occluder_is_a_well_formed_mesh_resting_on_the_face(renderer, kind):
    rest = renderer.rig.rest_vertices(torch.tensor(plan_identity(2, 0).identity))
    mesh = build_occluder(occluder(kind), rest, renderer.model, torch.tensor([0.7, 0.5, 0.4]))
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.verts) and torch.isfinite(mesh.verts).all()
    assert ((mesh.albedo >= 0) & (mesh.albedo <= 1)).all() and torch.allclose(mesh.weights.sum(1), torch.ones(len(mesh.verts)))
    nearest = torch.cdist(mesh.verts, rest).min(1).values
    assert float(nearest.min()) < 1.0 and float(nearest.median()) < 5.0  # on the face (tubing hangs off it), not in the room


def test_a_mask_follows_the_jaw_and_stays_on_the_nose(renderer):
    """An open jaw (AU27) carries the surgical mask's lower edge down with the chin; its top edge on the nose stays."""
    rig: AURig = renderer.rig
    identity = torch.tensor(plan_identity(5, 0).identity)
    rest = rig.rest_vertices(identity)
    closed, open_jaw = rig.vertices(identity, [{}, {"AU27": 5}])
    mesh: OccluderMesh = build_occluder(occluder("surgical_mask"), rest, renderer.model, torch.ones(3))
    posed = mesh.pose(rest, torch.stack([closed, open_jaw]))
    chin = int(renderer.model.landmarks[8])
    chin_drop = float(closed[chin, 1] - open_jaw[chin, 1])
    assert chin_drop > 1.0  # the rig opens the jaw by centimetres
    lowest = mesh.verts[:, 1] < mesh.verts[:, 1].min() + 1.0
    highest = mesh.verts[:, 1] > mesh.verts[:, 1].max() - 0.5
    drop = posed[0, :, 1] - posed[1, :, 1]
    assert float(drop[lowest].mean()) > 0.5 * chin_drop
    assert float(drop[highest].abs().mean()) < 0.2 * chin_drop
    assert torch.allclose(posed[0], mesh.verts, atol=1e-4)  # the expressionless face leaves it where it was fitted


def test_the_occluder_class_is_where_the_mask_is_and_lowers_the_covered_aus(renderer):
    spec = plan_identity(5, 0)
    masked = renderer.render(two_expressions(spec, occluder=occluder("surgical_mask")))
    bare = renderer.render(two_expressions(spec, scenario="clinical"))  # marked: visibility measured, no occluder
    part = renderer.part_names.index(OCCLUDER_PART)
    seg = masked["segmentation"][:, 0]
    assert (seg == part).sum(axis=(1, 2)).min() > 0.05 * seg[0].size and not (bare["segmentation"] == part).any()
    # Where the class is, the rendered colour changed; the mouth's landmarks fall on it, the brows' do not.
    points = masked["landmarks_2d"][0, 0].round().astype(int)
    on_mask = seg[0][points[:, 1], points[:, 0]] == part
    assert on_mask[48:68].mean() > 0.9 and not on_mask[17:27].any()
    for layers in (masked, bare):
        assert layers["au_visibility"].shape == (2, 1, len(PSPI_AUS))
        assert ((layers["au_visibility"] >= 0) & (layers["au_visibility"] <= 1)).all()
    lowered = bare["au_visibility"] - masked["au_visibility"]
    assert (lowered[:, 0, AU10] > 0.6).all() and (np.abs(lowered[:, 0, AU4]) < 0.05).all()
    assert (bare["au_visibility"][:, 0] > 0.7).all()  # a bare frontal face shows every AU's region


def test_meta_carries_the_scenario_occluder_and_visibility_the_trainer_groups_by(renderer):
    from trainer.data import pair_group

    spec = plan_identity(1, 0, PlanConfig(scenario="clinical", occluded_share=1.0))
    spec = dataclasses.replace(spec, expressions=spec.expressions[:2], views=spec.views[:1])
    layers = renderer.render(spec)
    meta = json.loads(renderer.encode_sample(spec, layers)["meta.json"])
    assert meta["scenario"] == "clinical" and meta["parts"][-1] == OCCLUDER_PART and meta["bed"]["pillow_cm"] > 0
    view = meta["views"][0]
    assert view["occluder"] == spec.occluder.kind
    assert set(view["au_visibility"]) == {e.name for e in spec.expressions}
    assert all(set(shares) == set(PSPI_AUS) for shares in view["au_visibility"].values())
    assert pair_group(meta, view)["scenario"] == "clinical" and pair_group(meta, view)["occluder"] == spec.occluder.kind
    assert IdentitySpec.from_dict(spec.to_dict()) == spec


def test_the_clinical_head_lies_on_its_pillow_and_the_pillow_hides_its_back(renderer):
    spec = plan_identity(3, 0, PlanConfig(scenario="clinical"))
    spec = dataclasses.replace(spec, expressions=spec.expressions[:1])
    layers = renderer.render(spec)
    rotation = lying_rotation(spec.bed)
    assert rotation @ np.array([0.0, 0.0, 1.0]) @ np.array([0.0, 1.0, 0.0]) > 0.5  # the face looks up, more or less
    rest = renderer.rig.rest_vertices(torch.tensor(spec.identity))
    bedding = bedding_of(spec, renderer.model, rest, rest.mean(0), torch.tensor([0.0, 1.0, 0.0]))
    assert bedding.mattress < bedding.back[1] < bedding.mattress + bedding.pillow_cm  # the head's back is in the pillow
    rgb, seg = layers["rgb"][0], layers["segmentation"][0]
    for view in range(len(spec.views)):
        face = seg[view] > 0
        assert 0.05 < face.mean() < 0.9
        assert rgb[view][~face].std() > 5  # bedding and a room behind the head, not a flat fill


def test_plan_keys_are_checked_and_the_cli_flag_sets_the_scenario(tmp_path):
    from factory.run.config import load_generate_config

    with pytest.raises(ConfigError, match="scenario must be one of default, clinical"):
        PlanConfig.from_dict({"scenario": "icu"})
    with pytest.raises(ConfigError, match="occluded_share"):
        PlanConfig.from_dict({"occluded_share": 1.5})
    config = load_generate_config(identities=2, out=str(tmp_path / "d"), scenario="clinical")
    assert config.plan.scenario == "clinical" and config.plan.occluder_share == 0.75
    assert config.to_dict()["plan"]["scenario"] == "clinical"
    assert "scenario" not in load_generate_config(identities=2, out=str(tmp_path / "d")).to_dict()["plan"]


def test_the_default_scenario_is_unchanged():
    """Default plans hold no bedside field, draw nothing from its streams, and a clinical plan keeps the person."""
    default = plan_identity(7, 0)
    assert default.occluder is None and default.bed is None
    assert not {"scenario", "occluder", "bed"} & set(json.loads(default.to_json()))
    assert not {"scenario", "occluded_share"} & set(PlanConfig().to_dict())
    assert plan_identity(7, 0, PlanConfig(occluded_share=0.0)) == default
    clinical = plan_identity(7, 0, PlanConfig(scenario="clinical"))
    for name in ("demographics", "identity", "skin", "expressions", "hair", "gaze"):
        assert getattr(clinical, name) == getattr(default, name)
    assert clinical.views != default.views and clinical.light.family.startswith(("ward", "night", "monitor"))
    shares = [plan_identity(k, 0, PlanConfig(scenario="clinical")).occluder is not None for k in range(40)]
    assert 0.5 < np.mean(shares) < 0.95


def test_default_meta_has_no_bedside_labels(renderer):
    spec = two_expressions(plan_identity(0, 0))
    layers = renderer.render(spec)
    meta = json.loads(renderer.encode_sample(spec, layers)["meta.json"])
    assert "au_visibility" not in layers and OCCLUDER_PART not in meta["parts"] and "scenario" not in meta
    assert not {"occluder", "au_visibility"} & set(meta["views"][0])


def test_a_tiny_clinical_dataset_verifies(tmp_path, ray_local):
    from PIL import Image

    from factory.format.dataset import open_dataset
    from factory.format.members import IMAGES, LAYERS
    from factory.qa.verify import verify_dataset
    from factory.run.config import load_generate_config
    from factory.run.generate import generate

    (tmp_path / "c.yaml").write_text("plan: {expressions: {pain_expressions: 1}, occluded_share: 1.0}\n"
                                     "render: {texture_size: 128}\nworkers: 1\n")
    config = load_generate_config(tmp_path / "c.yaml", identities=2, out=str(tmp_path / "ds"), image_size=48, scenario="clinical")
    generate(config, progress=False)
    report = verify_dataset(str(tmp_path / "ds"))  # raises, naming the problem, on anything wrong
    assert report.identities == 2
    for _, members in open_dataset(str(tmp_path / "ds")).samples(sets=(IMAGES, LAYERS)):  # segmentation is a layer
        meta = json.loads(members["meta.json"])
        assert meta["scenario"] == "clinical" and "occluder" in meta
        part = meta["parts"].index(OCCLUDER_PART)
        seg = [np.asarray(Image.open(io.BytesIO(members[f"{e['name']}.{v['name']}.seg.png"]))) for e in meta["expressions"]
               for v in meta["views"]]
        assert any((s == part).any() for s in seg)  # the shards' segmentation holds the occluder class
