"""Pain-estimation metrics in plain numpy: regression (MAE, RMSE, Pearson, ICC(3,1)), detection at PSPI ≥ k
(AUROC, F1 at a threshold calibrated on other predictions) and the grouping every per-group figure uses.

The score for detection is the predicted PSPI itself, so every model (with or without binary heads) is judged
the same way, as UNBC-McMaster papers threshold predicted PSPI.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from factory.spec.labels import PSPI_THRESHOLDS


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - target)))


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - target) ** 2)))


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson's r; NaN when either side is constant (r is undefined there, not 0)."""
    dp, dt = pred - pred.mean(), target - target.mean()
    denominator = math.sqrt(float(np.sum(dp**2) * np.sum(dt**2)))
    return float(np.sum(dp * dt) / denominator) if denominator > 0 else math.nan


def icc_3_1(pred: np.ndarray, target: np.ndarray) -> float:
    """ICC(3,1), Shrout & Fleiss: two-way mixed, consistency, single rater; the two 'raters' are model and label.
    ICC = (MS_rows − MS_error) / (MS_rows + (k − 1) MS_error) with k = 2 raters and n targets (rows)."""
    ratings = np.stack([pred, target], axis=1).astype(float)
    n, k = ratings.shape
    grand = ratings.mean()
    ss_rows = k * np.sum((ratings.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((ratings.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((ratings - grand) ** 2) - ss_rows - ss_cols
    ms_rows, ms_error = ss_rows / (n - 1), ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error
    return float((ms_rows - ms_error) / denominator) if denominator > 0 else math.nan


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    _, position, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # the distinct values' last ranks; tied values share (first + last) / 2
    return ((ends - counts + 1 + ends) / 2)[position]


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve via the Mann–Whitney U statistic (ties count one half); NaN with one class only."""
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    u = average_ranks(score)[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def f1(predicted: np.ndarray, positive: np.ndarray) -> float:
    predicted, positive = predicted.astype(bool), positive.astype(bool)
    tp = int(np.sum(predicted & positive))
    fp, fn = int(np.sum(predicted & ~positive)), int(np.sum(~predicted & positive))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan


def best_f1_threshold(score: np.ndarray, positive: np.ndarray) -> float:
    """The score threshold (predict positive when score ≥ t) that maximises F1 on these predictions;
    candidates are the midpoints between distinct scores, plus one below all of them."""
    distinct = np.unique(score)
    candidates = np.concatenate([[distinct[0] - 1.0], (distinct[:-1] + distinct[1:]) / 2]) if len(distinct) else np.array([0.5])
    scores = [f1(score >= t, positive) for t in candidates]
    scores = [-1.0 if math.isnan(s) else s for s in scores]
    return float(candidates[int(np.argmax(scores))])


def calibrate_thresholds(pred: np.ndarray, target: np.ndarray) -> dict[int, float]:
    """F1-optimal PSPI-score thresholds for PSPI ≥ 1, 2, 3, chosen on training/validation predictions."""
    return {k: best_f1_threshold(pred, target >= k) for k in PSPI_THRESHOLDS}


def pain_metrics(pred: Sequence[float], target: Sequence[float], thresholds: Mapping[int, float]) -> dict[str, float]:
    """Every metric of one split. `thresholds` come from `calibrate_thresholds` on another split."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if len(pred) != len(target) or len(pred) < 2:
        raise ValueError(f"need at least 2 predictions with as many targets, got {len(pred)} and {len(target)}")
    metrics = {"n": len(pred), "mae": mae(pred, target), "rmse": rmse(pred, target),
               "pcc": pearson(pred, target), "icc": icc_3_1(pred, target)}
    for k in PSPI_THRESHOLDS:
        metrics[f"auroc_ge{k}"] = auroc(pred, target >= k)
        metrics[f"f1_ge{k}"] = f1(pred >= thresholds[k], target >= k)
        metrics[f"threshold_ge{k}"] = thresholds[k]
    return metrics


def group_members(groups: Sequence[Mapping[str, object]]) -> dict[str, dict[str, np.ndarray]]:
    """Which predictions fall in each group: {attribute: {value as text: their indices}}, from each prediction's
    group ({"gender": "female", "fitzpatrick": 4, …}). Attributes sorted by name, values in their natural order
    (numbers as numbers). Every per-group figure (evaluate's MAE per group, `trainer report`) groups through here."""
    members: dict[str, dict[object, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, group in enumerate(groups):
        for attribute, value in group.items():
            members[attribute][value].append(index)

    def natural(value) -> tuple:
        return (0, float(value), "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0.0, str(value))

    return {attribute: {str(value): np.asarray(members[attribute][value]) for value in sorted(values, key=natural)}
            for attribute, values in sorted(members.items())}


def mae_by_group(pred: Sequence[float], target: Sequence[float], groups: Sequence[Mapping[str, str]]) -> dict[str, dict[str, float]]:
    """MAE per value of each group attribute: {"gender": {"female": 1.2, …}, "age_band": {…}, …}."""
    errors = np.abs(np.asarray(pred, float) - np.asarray(target, float))
    return {attribute: {value: float(np.mean(errors[indices])) for value, indices in values.items()}
            for attribute, values in group_members(groups).items()}
