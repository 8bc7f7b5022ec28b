"""End to end: `factory generate` writes a tiny dataset to S3 (moto on loopback) → `trainer fit` with 2 Ray Train
workers streams it and checkpoints to S3 → killed after its first checkpoint → the same command resumes →
`trainer evaluate --json`. And a learning test that can fail: ViTPain must beat the training-mean predictor."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.trainer_shards import write_dataset

PYTHON = sys.executable
TINY = ["--backbone", "vit_tiny_patch16_224", "--depth", "2", "--embed-dim", "64", "--num-heads", "2", "--image-size", "64"]
METRIC_KEYS = {"mae", "rmse", "pcc", "icc", "auroc_ge1", "auroc_ge2", "auroc_ge3", "f1_ge1", "f1_ge2", "f1_ge3", "n"}


def run(args, **kwargs):
    return subprocess.run([PYTHON, "-m", *args], capture_output=True, text=True, timeout=300, **kwargs)


def last_json_line(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_generate_fit_on_s3_kill_resume_evaluate(s3, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("plan: {view_yaws: [0], expressions: {pain_expressions: 3}}\n")
    data, out = f"s3://{s3.bucket}/datasets/tiny", f"s3://{s3.bucket}/runs/vitpain-tiny"
    generated = run(["factory", "generate", "--identities", "12", "--out", data, "--image-size", "64", "--config", str(config),
                     "--identities-per-shard", "2", "--workers", "2", "--no-progress"])
    assert generated.returncode == 0, generated.stderr[-3000:]

    fit = ["trainer", "fit", "--data", data, "--out", out, "--model", "vitpain", *TINY, "--epochs", "4", "--workers", "2",
           "--batch-size", "4", "--lr", "1e-3", "--split-fractions", "0.5", "0.25", "0.25"]
    fs = s3.filesystem()
    run_path = f"{s3.bucket}/runs/vitpain-tiny"

    def first_checkpoint_registered():
        fs.invalidate_cache()
        snapshot = f"{run_path}/checkpoint_manager_snapshot.json"
        return fs.exists(snapshot) and "checkpoint_epoch0000" in fs.cat(snapshot).decode()

    # Its own session, so the kill takes the driver and the Ray cluster it started, like a crashed machine.
    first = subprocess.Popen([PYTHON, "-m", *fit], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(first_checkpoint_registered, 240, "the first checkpoint")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    fs.invalidate_cache()
    assert not fs.exists(f"{run_path}/checkpoint_epoch0003"), "the first run finished before it could be killed"

    resumed = run(fit)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    final = last_json_line(resumed.stdout)
    assert final["epoch"] == 3 and final["checkpoint"] == f"{out}/checkpoint_epoch0003"
    assert 1 <= final["started_at_epoch"] <= 3  # it went on from a checkpoint instead of starting again at epoch 0

    evaluated = run(["trainer", "evaluate", "--checkpoint", out, "--data", data, "--split", "test", "--json"])
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(evaluated.stdout)
    assert METRIC_KEYS <= set(metrics) and metrics["n"] > 0 and metrics["epoch"] == 3
    assert 0 <= metrics["mae"] <= 16 and metrics["rmse"] >= metrics["mae"]


def test_vitpain_beats_the_training_mean(tmp_path, ray_local):
    """On drawn faces whose brow band grows with PSPI (tests/trainer_shards.py), a tiny ViTPain trained for a few
    epochs must predict test PSPI far better than the constant training mean does (measured here: MAE 2.1 against
    4.3, Pearson 0.88), and its predictions must follow the labels.

    Why not `factory generate` faces: at a CPU test's size (40 identities, 64 px, a 2-block ViT from scratch,
    16 epochs) the rendered AU changes are too subtle to learn; measured: test MAE 4.29 against the mean's 4.30."""
    from trainer.config import OptimizerConfig, ScheduleConfig, TrainConfig
    from trainer.data import ShardPairs, SplitConfig
    from trainer.evaluate import evaluate
    from trainer.models import BackboneConfig
    from trainer.train import fit

    data = tmp_path / "faces"
    write_dataset(str(data), identities=40, image_size=64, pain_expressions=4, per_shard=4)
    source = ShardPairs(str(data), SplitConfig(seed=1, fractions=(0.6, 0.2, 0.2)))  # seed 1: 24/6/10 identities
    backbone = BackboneConfig(name="vit_tiny_patch16_224", image_size=64, overrides={"depth": 2, "embed_dim": 64, "num_heads": 2})
    config = TrainConfig(model="vitpain", backbone=backbone, fusion_heads=2, schedule=ScheduleConfig(epochs=10), batch_size=16,
                         optimizer=OptimizerConfig(lr=1e-3, backbone_lr=1e-3, weight_decay=0.01))
    result = fit(source, config, str(tmp_path / "run"), workers=1)
    assert result.error is None

    metrics = evaluate(str(tmp_path / "run"), source, "test")
    train_mean = np.mean([pair.pspi for pair in source.pairs("train")])
    test_targets = np.array([pair.pspi for pair in source.pairs("test")])
    mean_predictor_mae = float(np.mean(np.abs(test_targets - train_mean)))
    assert metrics["n"] == len(test_targets) >= 30
    print(f"test MAE {metrics['mae']:.3f} vs training-mean MAE {mean_predictor_mae:.3f}, PCC {metrics['pcc']:.3f}")
    assert metrics["mae"] < 0.7 * mean_predictor_mae, (metrics["mae"], mean_predictor_mae)
    assert metrics["pcc"] > 0.7


def test_faces_from_factory_generate_carry_a_learnable_pspi_signal(tmp_path, ray_local):
    """Learning on real `factory generate` output (48 identities, frontal view, 96 px).

    1. The labels match the pixels: a ridge regression on |pain − neutral| pixels predicts PSPI of unseen
       identities (measured: r 0.94, MAE 1.2 against the mean's 4.4). Scrambled labels or an AU rig that does not
       move the face would fail here.
    2. A model learns it end to end through `trainer`'s streaming, Ray Train and evaluation: the reference-by-
       feature-difference ViT, from scratch, beats the training mean (measured on the faces of 2026-11-24, with
       ages to 90, beards and rooms: MAE 3.5 against 4.5, Pearson 0.65; on the plainer faces before: 2.4 against
       4.4, 0.78; 60 epochs overfit, MAE 4.0). Training is seeded, so the figure is the same run to run. ViTPain itself reads PSPI from the pain image's CLS token, which sees the reference only
       through one cross-attention layer; with random backbone weights and 29 training identities it stays at
       the mean (measured), which is why the official model starts from a frozen pretrained backbone.
    """
    import io

    from PIL import Image

    from trainer.config import OptimizerConfig, ScheduleConfig, TrainConfig
    from trainer.data import ShardPairs, SplitConfig
    from trainer.evaluate import evaluate
    from trainer.models import BackboneConfig
    from trainer.train import fit

    data = tmp_path / "generated"
    config = tmp_path / "frontal.yaml"
    config.write_text("plan: {view_yaws: [0.0]}\nrender: {texture_size: 256}\n")
    generated = run(["factory", "generate", "--identities", "48", "--out", str(data), "--image-size", "96", "--config",
                     str(config), "--identities-per-shard", "4", "--workers", "2", "--no-progress"])
    assert generated.returncode == 0, generated.stderr[-3000:]
    source = ShardPairs(str(data), SplitConfig(seed=1, fractions=(0.6, 0.2, 0.2)))

    def difference_features(split):
        features, targets = [], []
        for pair in source.pairs(split):
            pain, neutral = (np.asarray(Image.open(io.BytesIO(b)).convert("L").resize((48, 48)), float) / 255
                             for b in (pair.pain, pair.reference))
            features.append(np.abs(pain - neutral).ravel())
            targets.append(pair.pspi)
        return np.c_[np.array(features), np.ones(len(features))], np.array(targets)

    train_x, train_y = difference_features("train")
    test_x, test_y = difference_features("test")
    weights = np.linalg.solve(train_x.T @ train_x + np.eye(train_x.shape[1]), train_x.T @ train_y)
    ridge = test_x @ weights
    mean_predictor_mae = float(np.mean(np.abs(test_y - train_y.mean())))
    assert np.corrcoef(ridge, test_y)[0, 1] > 0.85
    assert np.mean(np.abs(ridge - test_y)) < 0.5 * mean_predictor_mae

    backbone = BackboneConfig(name="vit_tiny_patch16_224", image_size=96,
                              overrides={"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8})
    train_config = TrainConfig(model="vit-diff", backbone=backbone, fusion_heads=2, schedule=ScheduleConfig(epochs=30), batch_size=16,
                               optimizer=OptimizerConfig(lr=1e-3, backbone_lr=1e-3, weight_decay=0.01), augmentation=None)
    result = fit(source, train_config, str(tmp_path / "run"), workers=1)
    assert result.error is None
    metrics = evaluate(str(tmp_path / "run"), source, "test")
    print(f"vit-diff on generated faces: test MAE {metrics['mae']:.3f} vs training-mean MAE {mean_predictor_mae:.3f}, "
          f"PCC {metrics['pcc']:.3f}")
    assert metrics["mae"] < 0.85 * mean_predictor_mae
    assert metrics["pcc"] > 0.5
