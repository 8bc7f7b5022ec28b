"""The AU rig moves the right parts of the face, and its guard keeps lids and lips from crossing."""

import numpy as np
import pytest
import torch

from factory.face.model import FaceModel
from factory.face.rig import INTENSITY_WEIGHT, AURig
from factory.spec.labels import RIG_AUS, max_intensity


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


def test_au4_draws_the_inner_brows_together_and_down(rig):
    """A FACS coder scores AU4 from brows drawn down AND together: the inner brow landmarks (21, 22) come closer at
    every level and sink."""
    verts = rig.vertices(torch.zeros(100), [{"AU4": level} for level in range(6)])
    inner = landmarks(rig, verts)[:, [21, 22]]
    apart = inner[:, 1, 0] - inner[:, 0, 0]
    assert all(a > b for a, b in zip(apart.tolist(), apart[1:].tolist())), apart
    assert apart[5] < apart[0] - 0.6  # more than 6 mm closer at maximum (3 mm per brow)
    assert (inner[5, :, 1] < inner[0, :, 1] - 0.3).all()  # and more than 3 mm lower


def test_au43_closes_the_eyes(rig):
    verts = rig.vertices(torch.zeros(100), [{}, {"AU43": 1}])
    lms = landmarks(rig, verts)
    # Upper lid landmarks 37, 38 (and 43, 44) over lower lid 41, 40 (and 47, 46).
    opening = lms[:, [37, 38, 43, 44], 1] - lms[:, [41, 40, 47, 46], 1]
    assert (opening[0] > 0.3).all()
    assert (opening[1].abs() < 0.2).all(), opening[1]  # lid-surface landmarks, not the margins: they meet within 2 mm


def test_au12_and_au15_move_lip_corners_opposite_ways(rig):
    verts = rig.vertices(torch.zeros(100), [{}, {"AU12": 5}, {"AU15": 5}])
    corners_y = landmarks(rig, verts)[:, [48, 54], 1].mean(dim=1)
    assert corners_y[1] > corners_y[0] > corners_y[2]


def test_closed_eyes_cancel_the_upper_lid_raiser(rig):
    weights = rig.expression_weights([{"AU43": 1, "AU5": 5}])
    assert weights[0, rig.model.expression_index("eyeWide_L")] == 0


def test_guard_keeps_lids_and_lips_from_crossing_over_many_expressions(rig):
    """Over many sampled expressions and identities, no margin pair's gap drops below its floor: the margins
    meet but do not cross, unless a single AU at its maximum already goes further. The same expressions without
    the guard do cross (checked too, so the sample exercises the guard)."""
    rng = np.random.default_rng(7)
    aus_list = [{au: int(rng.integers(0, max_intensity(au) + 1)) for au in RIG_AUS} for _ in range(400)]
    identity = torch.as_tensor(np.clip(rng.standard_normal((400, 100)), -3, 3), dtype=torch.float32)
    guarded = rig.vertices(identity, aus_list)
    no_expression = rig.model.vertices(identity, torch.zeros(400, rig.model.num_expressions))
    unguarded = rig.model.vertices(identity, rig.expression_weights(aus_list))
    floors = rig.gap_floors(no_expression)
    crossed_without_guard = False
    for margin, floor in zip(rig.margins, floors):
        rest = margin.gaps(no_expression)
        worst = float((margin.gaps(guarded) - rest - floor).min())
        assert worst > -0.002, f"{margin.region}: crossed {worst:.4f} cm past the floor"
        crossed_without_guard |= bool((margin.gaps(unguarded) - rest - floor).min() < -0.1)
    assert crossed_without_guard, "the sample never exercised the guard"


def test_closed_eyes_keep_the_other_eye_region_aus(rig):
    """AU43 closes the eye without erasing brow lowering, cheek raising or lid tightening."""
    verts = rig.vertices(torch.zeros(100), [{}, {"AU4": 5}, {"AU4": 5, "AU43": 1}, {"AU6": 5, "AU7": 5}, {"AU6": 5, "AU7": 5, "AU43": 1}])
    lms = landmarks(rig, verts)
    brow_drop = lms[0, 17:27, 1].mean() - lms[:, 17:27, 1].mean(dim=1)
    assert brow_drop[2] > 0.9 * brow_drop[1]
    moved = (verts[4] - verts[0]).norm(dim=-1)
    assert moved.max() > 0.9 * (verts[3] - verts[0]).norm(dim=-1).max()
    opening = lms[:, [37, 38, 43, 44], 1] - lms[:, [41, 40, 47, 46], 1]
    assert (opening[4] < 0.1).all(), opening[4]  # closed: the upper-lid landmarks come down to the lower ones


def test_closed_lids_hide_the_eyeballs(rig):
    """With AU43 the eyeballs sit behind the closed lids for varied identities: the nearest eyeball vertex to the
    camera is pushed back by more than the socket's depth, so no eye white shows through the lid slit."""
    rng = np.random.default_rng(3)
    identity = torch.as_tensor(np.clip(rng.standard_normal((20, 100)), -3, 3), dtype=torch.float32)
    closed = rig.vertices(identity, [{"AU43": 1}] * 20)
    opened = rig.vertices(identity, [{}] * 20)
    eyeballs = slice(21451, 24591)
    assert (closed[:, eyeballs, 2].amax(dim=1) < opened[:, eyeballs, 2].amax(dim=1) - 2.5).all()


def test_margins_found_for_both_eyes_and_the_lips(rig):
    assert [m.region for m in rig.margins] == ["eye_left", "eye_right", "lips"]
    for margin in rig.margins:
        assert len(margin.upper) >= 8
        assert (margin.gaps(rig.model.neutral) > 0).all()


def test_unknown_au_is_refused(rig):
    with pytest.raises(ValueError, match="unknown action unit"):
        rig.expression_weights([{"AU99": 1}])
