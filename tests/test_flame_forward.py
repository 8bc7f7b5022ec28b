"""The torch FLAME forward pass against a direct numpy evaluation of FLAME's formulas, on a synthetic file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factory.face.flame.files import read_flame
from factory.face.flame.forward import FlameLayer


def rotation(axis_angle: np.ndarray) -> np.ndarray:
    """exp of the skew matrix, summed as a power series: independent of the Rodrigues formula the code uses."""
    x, y, z = axis_angle
    skew = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    result, term = np.eye(3), np.eye(3)
    for k in range(1, 30):
        term = term @ skew / k
        result = result + term
    return result


def numpy_flame(flame, shape, expression, poses, translation) -> np.ndarray:
    """One mesh, vertex by vertex through the kinematic tree: FLAME as its paper writes it."""
    shaped = flame.v_template + flame.shapedirs[..., : len(shape)] @ shape + flame.exprdirs[..., : len(expression)] @ expression
    joints = flame.j_regressor @ shaped
    rotations = [rotation(p) for p in poses]
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rotations[1:]])
    posed = shaped + flame.posedirs @ feature
    world = []
    for j, parent in enumerate(flame.parents):
        local = np.eye(4)
        local[:3, :3] = rotations[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    skinning = []
    for j, transform in enumerate(world):
        undo_rest = np.eye(4)
        undo_rest[:3, 3] = -joints[j]
        skinning.append(transform @ undo_rest)
    out = np.empty_like(posed)
    for v in range(len(posed)):
        blended = sum(flame.weights[v, j] * skinning[j] for j in range(len(world)))
        out[v] = (blended @ np.append(posed[v], 1.0))[:3]
    return out + translation


@pytest.fixture(scope="module")
def flame(flame_2020):
    return read_flame(flame_2020.path)


def test_forward_matches_the_direct_evaluation_batched(flame):
    rng = np.random.default_rng(0)
    batch = 3
    shape, expression = rng.normal(0, 1, (batch, 300)), rng.normal(0, 1, (batch, 50))
    poses = rng.normal(0, 0.25, (batch, 5, 3))  # global, neck, jaw, left eye, right eye
    translation = rng.normal(0, 0.05, (batch, 3))
    layer = FlameLayer.from_file(flame, dtype=torch.float64)
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    got = layer(t(shape), t(expression), global_pose=t(poses[:, 0]), neck=t(poses[:, 1]), jaw=t(poses[:, 2]),
                eyes=t(poses[:, 3:].reshape(batch, 6)), translation=t(translation)).numpy()
    for b in range(batch):
        expected = numpy_flame(flame, shape[b], expression[b], poses[b], translation[b])
        assert np.abs(got[b] - expected).max() < 1e-10, b  # metres
    # The poses did something: every joint moved vertices, the jaw and eyes their own more than the rest.
    rest = layer(t(shape)).numpy()
    assert np.abs(got - rest).max() > 0.01


def test_rest_pose_is_the_template_and_each_joint_moves_its_own_vertices(flame):
    layer = FlameLayer.from_file(flame, dtype=torch.float64)
    zero = layer(torch.zeros(1, 300))
    assert float((zero[0] - layer.template).abs().max()) < 1e-12  # to rounding: the skinning sums rest transforms
    jaw = layer(torch.zeros(1, 300), jaw=torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64))[0] - layer.template
    eyes = layer(torch.zeros(1, 300), eyes=torch.tensor([[0.0, 0.4, 0.0, 0.0, 0.4, 0.0]], dtype=torch.float64))[0] - layer.template
    moved_by_jaw = jaw.norm(dim=1) > 1e-3
    assert (torch.as_tensor(flame.weights[:, 2])[moved_by_jaw] > 0).all()  # only what the jaw carries (and its correctives)
    eyeball = torch.as_tensor(flame.weights[:, 3:].sum(axis=1) > 0.5)
    assert eyes[eyeball].norm(dim=1).min() > 1e-4 and eyes[~eyeball].norm(dim=1).max() < 2e-3  # correctives only, elsewhere
    assert float(jaw[:, 1][moved_by_jaw].mean()) < 0  # an opening jaw moves down


def test_float32_layer_and_bad_sizes(flame):
    layer = FlameLayer.from_file(flame)
    out = layer(torch.randn(2, 100), torch.randn(2, 10), jaw=torch.full((2, 3), 0.1))
    assert out.shape == (2, flame.num_vertices, 3) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="300 shape and 100 expression components"):
        layer(torch.zeros(1, 301))
