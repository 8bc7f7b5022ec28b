"""The metric functions against values worked out by hand on small arrays."""

import math

import numpy as np
import pytest

from trainer.metrics import (
    auroc,
    average_ranks,
    best_f1_threshold,
    calibrate_thresholds,
    f1,
    icc_3_1,
    mae,
    mae_by_group,
    pain_metrics,
    pearson,
    rmse,
)


def test_mae_rmse():
    pred, target = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 1.0])
    assert mae(pred, target) == pytest.approx(4 / 3)
    assert rmse(pred, target) == pytest.approx(math.sqrt(10 / 3))


def test_pearson_by_hand_and_undefined_when_constant():
    # x = 1,2,3; y = 2,4,5: dx = -1,0,1; dy = -5/3,1/3,4/3; Σdxdy = 3; Σdx² = 2; Σdy² = 42/9
    assert pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 5])) == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert math.isnan(pearson(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])))


def test_icc_3_1_by_hand():
    # ratings (pred, target): (1,2), (2,3), (4,4). Grand mean 8/3. Row means 1.5, 2.5, 4: SS_rows = 2·Σ(r−8/3)² = 2·(49/36+1/36+16/9) = 6.333…
    # Column means 7/3, 3: SS_cols = 3·((1/3)²+(1/3)²) = 2/3. SS_total = Σ(x−8/3)² = 25/9+4/9+4/9+1/9+16/9+16/9 = 66/9.
    # SS_err = 66/9 − 57/9 − 6/9 = 1/3; MS_rows = (57/9)/2; MS_err = (1/3)/2. ICC = (MSR − MSE)/(MSR + MSE).
    msr, mse = 57 / 18, 1 / 6
    assert icc_3_1(np.array([1.0, 2, 4]), np.array([2.0, 3, 4])) == pytest.approx((msr - mse) / (msr + mse))
    # Consistency ignores a constant offset: a prediction that is the target + 1 agrees perfectly.
    assert icc_3_1(np.array([2.0, 4, 7]), np.array([1.0, 3, 6])) == pytest.approx(1.0)


def test_average_ranks_share_ties():
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_auroc_counts_pairs_and_ties():
    score, positive = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    assert auroc(score, positive) == pytest.approx(0.75)  # of the 4 (pos, neg) pairs, 3 are ordered right
    assert auroc(np.array([1.0, 1.0]), np.array([0, 1])) == pytest.approx(0.5)
    assert math.isnan(auroc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_f1_and_calibration_applied_elsewhere():
    assert f1(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    # Calibration predictions: positives score 3 and 4, negatives 1 and 2: the best threshold lies between 2 and 3.
    threshold = best_f1_threshold(np.array([1.0, 2, 3, 4]), np.array([0, 0, 1, 1]))
    assert threshold == pytest.approx(2.5)
    thresholds = calibrate_thresholds(np.array([0.0, 0.5, 1.5, 2.5, 3.5]), np.array([0.0, 0, 2, 3, 4]))
    assert thresholds[1] == pytest.approx(1.0) and thresholds[3] == pytest.approx(2.0)
    # Applied to a test split: scores 2.6 and 0.9 with labels 3 and 0 at the ≥3 threshold of 2.0.
    metrics = pain_metrics([2.6, 0.9], [3.0, 0.0], thresholds)
    assert metrics["f1_ge3"] == pytest.approx(1.0) and metrics["n"] == 2 and metrics["auroc_ge3"] == pytest.approx(1.0)


def test_pain_metrics_rejects_bad_lengths():
    with pytest.raises(ValueError, match="at least 2"):
        pain_metrics([1.0], [1.0], {1: 0.5, 2: 1.5, 3: 2.5})


def test_mae_by_group():
    groups = [{"gender": "female", "age_band": "18-29"}, {"gender": "male", "age_band": "18-29"}, {"gender": "female", "age_band": "60-80"}]
    result = mae_by_group([1.0, 2.0, 5.0], [0.0, 2.0, 2.0], groups)
    assert result == {"age_band": {"18-29": 0.5, "60-80": 3.0}, "gender": {"female": 2.0, "male": 0.0}}
