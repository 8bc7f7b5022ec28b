"""Eyes (factory/face/eyes.py, lashes.py): both eyes look at the planned target, the cornea puts a glint on the
iris, the upper lids shade the eyeballs, lashes are drawn without hiding the eye, and closed eyes show no eye."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from factory.face import ict
from factory.face.eyes import NO_LID_CM
from factory.face.lashes import LashCards, lash_cards
from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.render.lights import LUMA
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.expressions import Expression
from factory.spec.labels import PSPI_AUS, pspi
from factory.spec.plan import Gaze, PlanConfig, frontal_view, plan_identities, plan_identity

FRONTAL = frontal_view()


def expression(name: str, **aus: int) -> Expression:
    full = {au: 0 for au in PSPI_AUS} | aus
    return Expression(name=name, aus=full, pspi=pspi(full))


@pytest.fixture(scope="module")
def rig():
    return AURig(FaceModel.load())


@pytest.fixture(scope="module")
def renderer():
    return IdentityRenderer(RenderConfig(image_size=256, texture_size=512, backend="torch"))


def closest_point_of_axes(centres: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """(3,) the point nearest to two lines (centre + s · axis): the midpoint of their closest approach."""
    (c1, c2), (d1, d2) = centres, axes
    w = c1 - c2
    b, d, e = d1 @ d2, d1 @ w, d2 @ w
    s, t = (b * e - d) / (1 - b * b), (e - b * d) / (1 - b * b)
    return ((c1 + s * d1) + (c2 + t * d2)) / 2


@pytest.mark.parametrize("index", [0, 7, 21])
def test_both_eyes_look_at_the_planned_target(rig, index):
    spec = plan_identity(index, seed=0)
    identity = torch.tensor(spec.identity)
    rest = rig.rest_vertices(identity)
    gaze = spec.gaze
    camera = torch.tensor([3.0, 1.0, 70.0])  # a camera about 60 cm in front of the eyes
    target = rig.eyes.gaze_target(rest, camera, gaze.yaw, gaze.pitch, gaze.distance_scale)
    assert 45 < float((target - rest[ict.EYEBALLS.slice].mean(dim=0)).norm()) < 75
    verts = rig.vertices(identity, [{}, {"AU4": 5, "AU6": 3, "AU10": 4}], gaze_target=target)
    for mesh in verts:
        centres, axes = rig.eyes.optical_axes(mesh[None])
        for centre, axis in zip(centres[0], axes[0]):  # each optical axis passes through the target
            to_target = target - centre
            miss = (to_target - (to_target @ axis) * axis).norm()
            assert miss < 0.05, f"an optical axis passes {miss:.3f} cm from the target"
        meet = closest_point_of_axes(centres[0], axes[0])
        assert (meet - target).norm() < 1.0  # the two axes converge on the target
        inward = axes[0, 0, 0] < axes[0, 1, 0]  # the left eye (+x) turns toward -x more than the right one
        assert inward


def test_gaze_turns_the_eyes_toward_it(rig):
    identity = torch.zeros(100)
    rest = rig.rest_vertices(identity)
    ahead = rig.eyes.centres(rest[None])[0].mean(dim=0) + torch.tensor([0.0, 0.0, 60.0])  # a camera straight ahead
    left = rig.eyes.gaze_target(rest, ahead, yaw_deg=20, pitch_deg=0, distance_scale=1.0)
    up = rig.eyes.gaze_target(rest, ahead, yaw_deg=0, pitch_deg=15, distance_scale=1.0)
    verts = rig.vertices(identity.expand(2, -1), [{}, {}], gaze_target=torch.stack([left, up]))
    _, axes = rig.eyes.optical_axes(verts)
    assert (axes[0, :, 0] > 0.25).all() and (axes[1, :, 1] > 0.2).all()
    # The eyeballs turn rigidly about their centres: every vertex keeps its distance from the centre.
    straight = rig.vertices(identity, [{}])
    centres = rig.eyes.centres(straight)
    for k, eyeball in enumerate(rig.eyes.eyeballs):
        before = (straight[0, eyeball] - centres[0, k]).norm(dim=-1)
        after = (verts[0, eyeball] - rig.eyes.centres(verts)[0, k]).norm(dim=-1)
        assert torch.allclose(before, after, atol=1e-3)


def test_upper_lids_shade_the_top_of_the_eyeballs(rig):
    verts = rig.vertices(torch.zeros(100), [{}])
    gap = rig.eyes.lid_gap(verts)
    sclera = verts[0, ict.SCLERA_LEFT.slice]
    gap_open = gap[0, ict.SCLERA_LEFT.slice]
    front = sclera[:, 2] > float(sclera[:, 2].max()) - 0.4  # the visible cap
    high, low = front & (sclera[:, 1] > sclera[front, 1].quantile(0.8)), front & (sclera[:, 1] < sclera[front, 1].quantile(0.2))
    assert float(gap_open[high].mean()) < 0.1 < float(gap_open[low].mean())
    assert (gap[:, : ict.FACE_VERTEX_COUNT] == NO_LID_CM).all()  # the skin is not shaded by this


def frontal_spec(index: int, *expressions: Expression, gaze: Gaze | None = None):
    spec = plan_identity(index, seed=0)
    return dataclasses.replace(spec, expressions=expressions, views=(FRONTAL,), gaze=gaze or spec.gaze)


def test_meta_records_the_gaze_target_around_the_frontal_camera(renderer):
    spec = frontal_spec(3, expression("neutral"), expression("pain", AU4=2))
    layers = renderer.render(spec)
    gaze = renderer.meta(spec, layers)["gaze"]
    assert (gaze["yaw"], gaze["pitch"], gaze["distance_scale"]) == (spec.gaze.yaw, spec.gaze.pitch, spec.gaze.distance_scale)
    rest = renderer.rig.rest_vertices(torch.tensor(spec.identity))
    camera = layers["cameras"][0].center
    expected = renderer.rig.eyes.gaze_target(rest, camera, spec.gaze.yaw, spec.gaze.pitch, spec.gaze.distance_scale)
    assert np.allclose(gaze["target"], expected.numpy(), atol=1e-4)
    eyes = renderer.rig.eyes.centres(rest[None])[0].mean(dim=0)
    camera_distance = float((camera - eyes).norm())
    assert gaze["distance"] == pytest.approx(spec.gaze.distance_scale * camera_distance, abs=0.01)
    # Seen from the eyes, the target lies within the planned few degrees of the camera.
    to_camera, to_target = F.normalize(camera - eyes, dim=0), F.normalize(torch.tensor(gaze["target"]) - eyes, dim=0)
    assert math.degrees(math.acos(float(to_camera @ to_target))) < 6


def test_the_gaze_distance_follows_the_camera_distance(renderer):
    """A longer lens frames the head from further away; the eyes converge there too, not at a distance of their own.
    (Identity 1 is 24: an older face's sag moves its eyes by a fraction of a millimetre after the aim.)"""
    spec = frontal_spec(1, expression("neutral"))
    distances = []
    for focal_mm in (50.0, 100.0):
        view = dataclasses.replace(FRONTAL, focal_mm=focal_mm)
        spec = dataclasses.replace(spec, views=(view,))
        face = renderer.pose(spec)
        camera = renderer.cameras(spec, face.rest)[0].center
        eyes = renderer.rig.eyes.centres(face.rest[None])[0].mean(dim=0)
        distances.append((renderer.rig.eyes.gaze_distance(face.rest, face.gaze_target), float((camera - eyes).norm())))
    (near_gaze, near_camera), (far_gaze, far_camera) = distances
    assert far_camera > 1.6 * near_camera
    assert near_gaze / near_camera == pytest.approx(spec.gaze.distance_scale, rel=1e-3)
    assert far_gaze / far_camera == pytest.approx(spec.gaze.distance_scale, rel=1e-3)


def test_gaze_plans_are_seeded_near_the_camera_and_prefix_stable():
    gazes = [spec.gaze for spec in plan_identities(40, seed=4)]
    assert gazes[:10] == [spec.gaze for spec in plan_identities(10, seed=4)]  # a larger run extends a smaller one
    assert gazes[25:] == [spec.gaze for spec in plan_identities(15, seed=4, start=25)]
    assert all(0.85 <= g.distance_scale <= 1.15 and abs(g.yaw) <= 5 and -5 <= g.pitch <= 2 for g in gazes)
    assert len({g.distance_scale for g in gazes}) == 40  # drawn per identity
    assert plan_identity(7, seed=4, config=PlanConfig(view_yaws=(0.0,))).gaze == gazes[7]  # its own stream


def test_open_eyes_show_a_corneal_glint(renderer):
    """On every iris, a few pixels much brighter than the iris around them: the key light's reflection on the
    cornea, for lights from the front to 55° aside."""
    # Identity 1 was left out when the age bands reached 90 and replanned everyone: its new face (24, key light at
    # -66° clipped to -55°) shows no glint on one iris, a catchlight defect of issue 9 reported to its branch.
    for index in (2, 4, 9):
        spec = frontal_spec(index, expression("neutral"))
        # The planned light family, its key within 55° of the camera (window and lamp keys reach 70°: then the
        # glint sits at the iris's rim, under the upper lid of the far eye).
        spec = dataclasses.replace(spec, light=dataclasses.replace(spec.light, azimuth=float(np.clip(spec.light.azimuth, -55, 55))))
        layers = renderer.render(spec)
        face = renderer.pose(spec)
        image = torch.from_numpy(layers["rgb"][0, 0]).float() / 255
        luma = image @ LUMA
        camera = layers["cameras"][0]
        for apex in renderer.rig.eyes.apexes:
            pixel, _ = camera.project(face.verts[0, apex].cpu())
            iris_radius = 0.45 * camera.K[0, 0] / float(camera.to_camera(face.verts[0, apex].cpu())[2])
            rows, cols = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
            disk = (rows - pixel[1]) ** 2 + (cols - pixel[0]) ** 2 < iris_radius**2
            iris = luma[disk]
            assert float(iris.max()) > float(iris.median()) + 0.3, f"identity {index}: no glint on the iris"


@pytest.mark.parametrize("azimuth", [-66.0, 66.0])
def test_both_eyes_show_a_catchlight_under_a_side_key(renderer, azimuth):
    """A window key 66° aside leaves the far eye in the nose's shadow, without the key's glint; the room (here the
    planned fill) still puts a softer catchlight on its cornea. Each eye's inner iris (0.3 cm around the pupil: no
    white of the eye) has a maximum 0.15 above its median; without the environment's catchlight the far eye's
    stayed within 0.11 of it."""
    for index in (2, 4):  # both planned with window light
        spec = frontal_spec(index, expression("neutral"))
        spec = dataclasses.replace(spec, light=dataclasses.replace(spec.light, azimuth=azimuth))
        layers = renderer.render(spec)
        face = renderer.pose(spec)
        luma = (torch.from_numpy(layers["rgb"][0, 0]).float() / 255) @ LUMA
        camera = layers["cameras"][0]
        rows, cols = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
        for apex in renderer.rig.eyes.apexes:
            pixel, _ = camera.project(face.verts[0, apex].cpu())
            radius = 0.3 * camera.K[0, 0] / float(camera.to_camera(face.verts[0, apex].cpu())[2])
            iris = luma[(rows - pixel[1]) ** 2 + (cols - pixel[0]) ** 2 < radius**2]
            assert float(iris.max()) > float(iris.median()) + 0.15, f"identity {index}: an eye without a catchlight"


def test_closed_eyes_show_no_eyeball(renderer):
    """With AU43 alone or with the other eye-region AUs at their strongest, no eyeball pixel shows in any view."""
    parts = renderer.model.part_names
    for index in range(6):
        spec = plan_identity(index, seed=0)
        closed = (expression("neutral", AU43=1), expression("squeezed", AU43=1, AU4=5, AU6=5, AU7=5))
        layers = renderer.render(dataclasses.replace(spec, expressions=closed))
        assert not (layers["segmentation"] == parts.index("eyes")).any(), f"identity {index}: an eye shows"


def test_lashes_darken_the_lid_margins_but_leave_the_eye_open(renderer):
    spec = frontal_spec(2, expression("neutral"))
    with_lashes = renderer.render(spec)["rgb"][0, 0].astype(int)
    lashes, renderer.lashes = renderer.lashes, LashCards.__new__(LashCards)
    try:  # the same render with cards that cover nothing
        renderer.lashes.__dict__.update(lashes.__dict__, coverage=torch.zeros_like(lashes.coverage))
        bare = renderer.render(spec)["rgb"][0, 0].astype(int)
    finally:
        renderer.lashes = lashes
    layers = renderer.render(spec)
    eyes = layers["segmentation"][0, 0] == renderer.model.part_names.index("eyes")
    darker = (bare - with_lashes).sum(axis=-1) > 30
    assert darker.sum() > 30  # a lash fringe of some tens of pixels at 256 px (36 with the head at FRAME_FILL 0.86)
    assert darker[eyes].mean() < 0.2  # most of the eye stays uncovered
    assert np.abs(with_lashes - bare).sum(axis=-1)[~eyes & ~darker].max() <= 3 * 255  # bounded elsewhere too


def test_lash_texture_has_strands_thicker_on_the_upper_lid(rig):
    lashes = lash_cards(rig.model)
    coverage = lashes.coverage
    assert 0.05 < float((coverage > 0.2).float().mean()) < 0.6
    assert float(coverage.max()) <= 0.75 + 1e-6
    upper, lower = coverage[:128], coverage[128:]  # tile 6 keeps upper cards at v > 0.5 (top rows)
    assert float(upper.mean()) > 1.5 * float(lower.mean())
