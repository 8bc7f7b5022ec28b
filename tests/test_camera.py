"""Cameras: the OpenCV convention, the orbit framing and the sign of each view angle, on the real ICT head."""

from __future__ import annotations

import json

import pytest
import torch

from factory.face.model import FaceModel
from factory.render.camera import Camera, Orbit, head_camera, head_sphere, intrinsics
from factory.run.identity import orbit_of
from factory.spec.plan import PlanConfig, plan_identity

# Multi-PIE landmark numbers: 30 nose tip, 36/45 outer corners of the right/left eye, 2/14 right/left cheek
# contour; the person's right side is at world -x.
NOSE_TIP, RIGHT_EYE, LEFT_EYE, RIGHT_CHEEK, LEFT_CHEEK, CHIN = 30, 36, 45, 2, 14, 8
SIZE = 128


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.load()


def camera_for(model: FaceModel, **angles) -> Camera:
    center, radius = head_sphere(model.neutral, int(model.landmarks[CHIN]))
    return head_camera(Orbit(**angles), SIZE, center, radius)


def landmark(model: FaceModel, camera: Camera, number: int) -> tuple[torch.Tensor, float]:
    pixel, depth = camera.project(model.neutral[model.landmarks[number]])
    return pixel, float(depth)


def test_project_unproject_round_trip(model):
    camera = camera_for(model, yaw=-20.0, pitch=7.0, roll=3.0)
    points = model.neutral[::97]
    pixels, depth = camera.project(points)
    assert torch.allclose(camera.unproject(pixels, depth), points, atol=1e-3)
    assert (depth > 0).all()


def test_rotation_is_orthonormal_and_centre_is_on_the_orbit(model):
    camera = camera_for(model, yaw=35.0, pitch=-3.0, roll=1.5)
    assert torch.allclose(camera.R @ camera.R.T, torch.eye(3), atol=1e-5)
    assert torch.linalg.det(camera.R) == pytest.approx(1.0, abs=1e-5)
    center, _ = head_sphere(model.neutral, int(model.landmarks[CHIN]))
    pixel, _ = camera.project(center)  # the orbit looks at the head centre: it lands mid-image
    assert torch.allclose(pixel, torch.full((2,), (SIZE - 1) / 2), atol=1e-3)


def test_intrinsics_put_the_principal_point_between_the_middle_pixels():
    K = intrinsics(256, fov_deg=30.0)
    assert K[0, 2] == K[1, 2] == 127.5
    # A ray at half the field of view reaches the image edge, half a pixel beyond the last pixel centre.
    edge = K[0, 0] * torch.tan(torch.deg2rad(torch.tensor(15.0, dtype=torch.float64))) + K[0, 2]
    assert float(edge) == pytest.approx(255.5)


def test_frontal_camera_sees_the_nose_tip_nearer_than_the_ears(model):
    camera = camera_for(model)
    _, nose = landmark(model, camera, NOSE_TIP)
    ears = model.neutral[torch.stack([model.neutral[:, 0].argmin(), model.neutral[:, 0].argmax()])]  # the widest points
    _, ear_depths = camera.project(ears)
    assert nose < float(ear_depths.min()) - 5.0  # centimetres
    # Image x runs to the person's left: their right eye is on the image's left.
    assert landmark(model, camera, RIGHT_EYE)[0][0] < (SIZE - 1) / 2 < landmark(model, camera, LEFT_EYE)[0][0]


@pytest.mark.parametrize("yaw", [-35.0, 35.0])
def test_negative_yaw_shows_the_right_cheek(model, yaw):
    camera = camera_for(model, yaw=yaw)
    _, right = landmark(model, camera, RIGHT_CHEEK)
    _, left = landmark(model, camera, LEFT_CHEEK)
    nose_x = landmark(model, camera, NOSE_TIP)[0][0]
    if yaw < 0:  # camera on the person's right: their right cheek faces it, the nose points to the image's right
        assert right < left and nose_x > (SIZE - 1) / 2
    else:
        assert left < right and nose_x < (SIZE - 1) / 2
    assert float(camera.center[0]) * yaw > 0  # negative yaw puts the camera at world -x, the person's right


def test_positive_pitch_looks_down_and_positive_roll_turns_the_head_counter_clockwise(model):
    level = camera_for(model)
    above = camera_for(model, pitch=10.0)
    assert float(above.center[1]) > float(level.center[1])
    chin_drop = landmark(model, above, CHIN)[0][1] - landmark(model, above, NOSE_TIP)[0][1]
    assert chin_drop < landmark(model, level, CHIN)[0][1] - landmark(model, level, NOSE_TIP)[0][1]  # foreshortened

    rolled = camera_for(model, roll=10.0)
    eye_line = landmark(model, rolled, LEFT_EYE)[0] - landmark(model, rolled, RIGHT_EYE)[0]
    # Counter-clockwise on screen (y down): the eye on the image's right rises, by the roll angle.
    assert float(torch.rad2deg(torch.atan2(-eye_line[1], eye_line[0]))) == pytest.approx(10.0, abs=0.5)


def test_distance_scale_moves_the_camera_out(model):
    near, far = camera_for(model), camera_for(model, distance_scale=1.1)
    center, _ = head_sphere(model.neutral, int(model.landmarks[CHIN]))
    assert float((far.center - center).norm()) == pytest.approx(1.1 * float((near.center - center).norm()), rel=1e-5)


def test_head_fits_the_frame_for_the_default_views_with_jitter(model):
    """Planned identities (varied shapes, jittered default views 0, ±35): the head from the chin up stays inside
    the image, and fills it well (not a speck in the middle)."""
    config = PlanConfig()
    assert config.view_yaws == (0.0, -35.0, 35.0)
    jaw_open = torch.zeros(1, model.num_expressions)
    jaw_open[0, model.expression_index("jawOpen")] = 1.0
    for index in range(4):
        spec = plan_identity(index, seed=0, config=config)
        identity = torch.tensor([spec.identity])
        neutral = model.vertices(identity, torch.zeros(1, model.num_expressions))[0]
        expressive = model.vertices(identity, jaw_open)[0]
        center, radius = head_sphere(neutral, int(model.landmarks[CHIN]))
        head = neutral[:, 1] >= neutral[model.landmarks[CHIN], 1]
        for planned in spec.views:
            camera = head_camera(orbit_of(planned), SIZE, center, radius)
            for verts in (neutral, expressive):
                pixels, depth = camera.project(verts[head])
                assert (depth > 0).all()
                assert (pixels >= 0).all() and (pixels <= SIZE - 1).all(), f"{spec.id} {planned} leaves the frame"
            pixels, _ = camera.project(neutral[head])
            height = float(pixels[:, 1].max() - pixels[:, 1].min())
            assert height > 0.6 * SIZE, f"{spec.id} {planned}: the head spans only {height:.0f} of {SIZE} px"


def test_to_dict_is_json_and_rebuilds_the_camera(model):
    camera = camera_for(model, yaw=12.0)
    data = json.loads(json.dumps(camera.to_dict()))
    assert set(data) == {"K", "R", "t"}
    rebuilt = Camera(torch.tensor(data["K"]), torch.tensor(data["R"]), torch.tensor(data["t"]), SIZE)
    points = model.neutral[:50]
    assert torch.allclose(rebuilt.project(points)[0], camera.project(points)[0], atol=1e-4)


def test_bad_cameras_are_refused():
    with pytest.raises(ValueError, match="head_radius"):
        head_camera(Orbit(), SIZE, torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="fov_deg"):
        intrinsics(SIZE, 180.0)
    with pytest.raises(ValueError, match="Camera needs"):
        Camera(torch.eye(3), torch.eye(3), torch.zeros(4), SIZE)
