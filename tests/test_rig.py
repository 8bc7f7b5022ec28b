"""The AU rig moves the right parts of the face, and its guard keeps lids and lips from crossing."""

import numpy as np
import pytest
import torch

from factory.facemodel import FaceModel
from factory.labels import RIG_AUS, max_intensity
from factory.rig import AURig, INTENSITY_WEIGHT


@pytest.fixture(scope="module")
def rig():
    return AURig(FaceModel.load())


def landmarks(rig, verts):
    return verts[:, rig.model.landmarks]


def test_intensity_curve_is_monotonic_from_zero_to_one():
    assert INTENSITY_WEIGHT[0] == 0.0 and INTENSITY_WEIGHT[-1] == 1.0
    assert all(a < b for a, b in zip(INTENSITY_WEIGHT, INTENSITY_WEIGHT[1:]))


def test_every_rig_au_moves_the_mesh_more_with_intensity(rig):
    identity = torch.zeros(100)
    for au in RIG_AUS:
        levels = range(max_intensity(au) + 1)
        verts = rig.vertices(identity, [{au: level} for level in levels])
        motion = (verts - verts[0]).norm(dim=-1).amax(dim=-1)
        assert motion[-1] > 0.1, f"{au} moves less than 1 mm at maximum"
        assert all(a < b for a, b in zip(motion.tolist(), motion[1:].tolist())), au


def test_au4_lowers_the_brows_toward_the_eyes(rig):
    verts = rig.vertices(torch.zeros(100), [{}, {"AU4": 5}])
    brows, eyes = landmarks(rig, verts)[:, 17:27], landmarks(rig, verts)[:, 36:48]
    gap = brows[:, :, 1].mean(dim=1) - eyes[:, :, 1].mean(dim=1)
    assert gap[1] < gap[0] - 0.2  # at least 2 mm closer


def test_au43_closes_the_eyes(rig):
    verts = rig.vertices(torch.zeros(100), [{}, {"AU43": 1}])
    lms = landmarks(rig, verts)
    # Upper lid landmarks 37, 38 (and 43, 44) over lower lid 41, 40 (and 47, 46).
    opening = lms[:, [37, 38, 43, 44], 1] - lms[:, [41, 40, 47, 46], 1]
    assert (opening[0] > 0.3).all()
    assert (opening[1].abs() < 0.08).all(), opening[1]


def test_au12_and_au15_move_lip_corners_opposite_ways(rig):
    verts = rig.vertices(torch.zeros(100), [{}, {"AU12": 5}, {"AU15": 5}])
    corners_y = landmarks(rig, verts)[:, [48, 54], 1].mean(dim=1)
    assert corners_y[1] > corners_y[0] > corners_y[2]


def test_closed_eyes_cancel_the_upper_lid_raiser(rig):
    weights = rig.expression_weights([{"AU43": 1, "AU5": 5}])
    assert weights[0, rig.model.expression_index("eyeWide_L")] == 0


def test_guard_keeps_lids_and_lips_from_crossing_over_many_expressions(rig):
    """Over many sampled expressions and identities, no margin pair's gap drops below the lowest gap that any
    single AU reaches at its maximum. Without the guard, the same expressions do cross (checked too)."""
    rng = np.random.default_rng(7)
    aus_list = [{au: int(rng.integers(0, max_intensity(au) + 1)) for au in RIG_AUS} for _ in range(400)]
    identity = torch.as_tensor(np.clip(rng.standard_normal((400, 100)), -3, 3), dtype=torch.float32)
    guarded = rig.model.vertices(identity, rig.expression_weights(aus_list))
    no_expression = rig.model.vertices(identity, torch.zeros(400, rig.model.num_expressions))
    unguarded_weights = torch.stack([
        sum((torch.zeros(rig.model.num_expressions),) + tuple(
            rig.au_matrix[RIG_AUS.index(au)] * (float(v) if au == "AU43" else INTENSITY_WEIGHT[v]) for au, v in aus.items()
        )).clamp(0, 1) for aus in aus_list
    ])
    unguarded = rig.model.vertices(identity, unguarded_weights)
    crossed_without_guard = False
    for margin, floor in zip(rig.margins, rig.gap_floors):
        change = margin.gaps(guarded) - margin.gaps(no_expression)
        worst = float((change - floor).min())
        assert worst > -0.002, f"{margin.region}: crossed {worst:.4f} cm past the floor"
        crossed_without_guard |= bool(((margin.gaps(unguarded) - margin.gaps(no_expression)) - floor).min() < -0.1)
    assert crossed_without_guard, "the sample never exercised the guard"


def test_margins_found_for_both_eyes_and_the_lips(rig):
    assert [m.region for m in rig.margins] == ["eye_left", "eye_right", "lips"]
    for margin in rig.margins:
        assert len(margin.upper) >= 8
        assert (margin.gaps(rig.model.neutral) > 0).all()


def test_unknown_au_is_refused(rig):
    with pytest.raises(ValueError, match="unknown action unit"):
        rig.expression_weights([{"AU99": 1}])
