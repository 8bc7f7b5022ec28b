"""Evaluate a checkpoint on one split: every metric of trainer.metrics, with F1 thresholds calibrated on the
validation split's predictions (the training split's when validation is empty) and applied to this split.
`evaluation_predictions` is the part `trainer report` shares: the split's predictions and those thresholds."""

from __future__ import annotations

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
                           storage_options: Mapping | None = None) -> EvaluationPredictions:
    check_split(split)
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
    thresholds = calibrate_thresholds(np.asarray(calibration["pred"]), np.asarray(calibration["target"]))
    return EvaluationPredictions(checkpoint, split, result, thresholds, calibration_split, info)


def evaluation_metrics(found: EvaluationPredictions) -> dict:
    """`trainer evaluate`'s numbers: every pain metric of the split, MAE per group, and where they come from."""
    result = found.prediction
    metrics = pain_metrics(result["pred"], result["target"], found.thresholds)
    metrics["mae_by_group"] = mae_by_group(result["pred"], result["target"], result["groups"])
    metrics.update(split=found.split, calibrated_on=found.calibrated_on, epoch=found.info["epoch"], model=found.info["model"])
    return metrics


def evaluate(checkpoint: str, source, split: str = "test", batch_size: int = 32, storage_options: Mapping | None = None) -> dict:
    return evaluation_metrics(evaluation_predictions(checkpoint, source, split, batch_size, storage_options))
