"""Evaluate a checkpoint on one split: every metric of trainer.metrics, with F1 thresholds calibrated on the
validation split's predictions (the training split's when validation is empty) and applied to this split.
`evaluation_predictions` is the part `trainer report` shares: the split's predictions and those thresholds. On a
sequence dataset, `smooth_frames` averages each sequence's frame predictions over a moving window (`smoothed`)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from trainer.checkpoint import load_checkpoint
from trainer.data import PairTransform, check_split
from trainer.metrics import calibrate_thresholds, mae_by_group, pain_metrics
from trainer.train import predict


@dataclass(frozen=True)
class EvaluationPredictions:
    """The predictions of `checkpoint` (its URL as given) on one split (trainer.train.predict's dict), the F1
    thresholds calibrated on `calibrated_on`, and the checkpoint's checkpoint.json."""

    checkpoint: str
    split: str
    prediction: dict
    thresholds: dict[int, float]
    calibrated_on: str
    info: dict


def evaluation_predictions(checkpoint: str, source, split: str = "test", batch_size: int = 32,
                           storage_options: Mapping | None = None, smooth_frames: int = 1) -> EvaluationPredictions:
    """`smooth_frames` > 1: each sequence's frame predictions averaged over that many frames (`smoothed`), on the
    split and on the calibration split alike."""
    check_split(split)
    if isinstance(smooth_frames, bool) or not isinstance(smooth_frames, int) or smooth_frames < 1:
        raise ValueError(f"smooth_frames must be an integer >= 1 (1: no smoothing), got {smooth_frames!r}")
    model, info = load_checkpoint(checkpoint, storage_options)
    transform = PairTransform(info["backbone"]["image_size"], tuple(info["mean"]), tuple(info["std"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    result = predict(model, source, split, transform, batch_size, device, show_progress=True)
    if len(result["pred"]) < 2:
        raise ValueError(f"the {split} split has {len(result['pred'])} pairs; at least 2 are needed to evaluate")
    calibration_split = "val" if split != "val" else "train"
    calibration = predict(model, source, calibration_split, transform, batch_size, device, show_progress=True)
    if len(calibration["pred"]) < 2 and calibration_split == "val":
        calibration_split = "train"
        calibration = predict(model, source, calibration_split, transform, batch_size, device, show_progress=True)
    for prediction in (result, calibration):
        prediction["pred"] = smoothed(prediction["pred"], prediction["keys"], smooth_frames)
    thresholds = calibrate_thresholds(np.asarray(calibration["pred"]), np.asarray(calibration["target"]))
    return EvaluationPredictions(checkpoint, split, result, thresholds, calibration_split, info)


# A pair of a sequence's frame (trainer/data.py identity_pairs): "id-0000123/pain03f05.v1".
FRAME_KEY = re.compile(r"^(?P<identity>[^/]+)/(?P<expression>pain\d{2})f(?P<frame>\d{2})\.(?P<view>v\d{1,2})$")


def smoothed(pred: list[float], keys: list[str], frames: int) -> list[float]:
    """`pred` with every sequence frame's prediction replaced by the mean over the `frames` frames centred on it
    (fewer at a sequence's ends) of the same sequence: identity, expression and view. Stills stay as they are.
    Temporal smoothing as a video model's output would be; the labels stay each frame's own."""
    if frames <= 1:
        return list(pred)
    sequences: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for position, key in enumerate(keys):
        match = FRAME_KEY.match(key)
        if match:
            sequences[match["identity"], match["expression"], match["view"]].append((int(match["frame"]), position))
    out = list(pred)
    before, after = (frames - 1) // 2, frames // 2
    for members in sequences.values():
        positions = [position for _, position in sorted(members)]
        values = np.asarray([pred[position] for position in positions], dtype=np.float64)
        for k, position in enumerate(positions):
            out[position] = float(values[max(0, k - before):k + after + 1].mean())
    return out


def evaluation_metrics(found: EvaluationPredictions) -> dict:
    """`trainer evaluate`'s numbers: every pain metric of the split, MAE per group, and where they come from."""
    result = found.prediction
    metrics = pain_metrics(result["pred"], result["target"], found.thresholds)
    metrics["mae_by_group"] = mae_by_group(result["pred"], result["target"], result["groups"])
    metrics.update(split=found.split, calibrated_on=found.calibrated_on, epoch=found.info["epoch"], model=found.info["model"])
    return metrics


def evaluate(checkpoint: str, source, split: str = "test", batch_size: int = 32, storage_options: Mapping | None = None,
             smooth_frames: int = 1) -> dict:
    return evaluation_metrics(evaluation_predictions(checkpoint, source, split, batch_size, storage_options, smooth_frames))
