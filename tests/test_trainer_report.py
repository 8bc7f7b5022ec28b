"""`trainer report` (issue 15, item 5): a fairness report of a checkpoint on a split, every metric per group with
bootstrap intervals over identities. A tiny random-weight ViT on drawn faces: the numbers need not be good, only
right, so each is checked against a direct computation from the same predictions `trainer evaluate` makes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from factory.spec.labels import PSPI_AUS
from tests.trainer_shards import write_dataset
from trainer.checkpoint import save_checkpoint
from trainer.cli import app
from trainer.config import TrainConfig
from trainer.data import ShardPairs, SplitConfig
from trainer.evaluate import evaluation_metrics, evaluation_predictions
from trainer.models import BackboneConfig, create_model
from trainer.report import ReportConfig, fairness_report

runner = CliRunner()
TINY = BackboneConfig(name="vit_tiny_patch16_224", image_size=32, overrides={"depth": 1, "embed_dim": 32, "num_heads": 2})
FRACTIONS = [0.25, 0.25, 0.5]  # a large test split: groups with enough identities and groups with too few


def tiny_checkpoint(folder: Path, fractions=FRACTIONS) -> Path:
    """An untrained tiny model saved as `trainer fit` saves it, trained (it says) on a split with `fractions`."""
    config = TrainConfig(model="vit", backbone=TINY, fusion_heads=2)
    torch.manual_seed(0)
    folder.mkdir(parents=True)
    save_checkpoint(folder, create_model(config.model, config.backbone, config.fusion_heads),
                    {**config.model_info(), "epoch": 3, "source": {"split_seed": 0, "fractions": fractions}})
    return folder


def bedside(meta: dict) -> None:
    """Fields a later dataset may carry (issue 15): a scenario per identity and an occluder per view."""
    meta["scenario"] = "clinical" if meta["index"] % 2 else "default"
    for view, occluder in zip(meta["views"], ("none", "nasal_cannula")):
        view["occluder"] = occluder


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A dataset of 40 identities seen from two views, a checkpoint, the report `trainer report` wrote, and the
    test split's predictions as trainer.evaluate makes them."""
    root = tmp_path_factory.mktemp("report")
    write_dataset(str(root / "data"), identities=40, image_size=32, pain_expressions=2, views=(0.0, 30.0), per_shard=8, edit_meta=bedside)
    checkpoint = tiny_checkpoint(root / "ckpt")
    result = runner.invoke(app, ["report", "--checkpoint", str(checkpoint), "--data", str(root / "data"), "--out", str(root / "report"),
                                 "--resamples", "200", "--seed", "7", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    source = ShardPairs(str(root / "data"), SplitConfig(seed=0, fractions=tuple(FRACTIONS)))
    return root, checkpoint, evaluation_predictions(str(checkpoint), source, "test", batch_size=16)


def test_the_report_files_are_written(made):
    root, _, _ = made
    report = json.loads((root / "report" / "report.json").read_text())
    assert set(report["groups"]) == {"age_band", "ethnicity", "fitzpatrick", "gender", "scenario", "occluder"}
    assert set(report["groups"]["occluder"]) == {"nasal_cannula", "none"}  # per view: each identity in both groups
    assert report["groups"]["occluder"]["none"]["identities"] == report["overall"]["identities"]
    for attribute in report["groups"]:
        for kind in ("pspi", "aus"):
            png = root / "report" / "plots" / f"{attribute}_{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
            assert f"](plots/{attribute}_{kind}.png)" in (root / "report" / "report.md").read_text()
    page = (root / "report" / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 2 * len(report["groups"]) and "plots/" not in page  # self-contained


def rows_where(prediction: dict, attribute: str, value: str) -> np.ndarray:
    return np.array([str(group.get(attribute)) == value for group in prediction["groups"]])


def test_the_numbers_are_those_of_the_predictions(made):
    """Every group's MAE, RMSE and AU MAE equal numpy on the rows of that group; the split's PSPI metrics and MAE per
    group equal `trainer evaluate`'s; the Markdown table shows the same numbers."""
    root, checkpoint, found = made
    report = json.loads((root / "report" / "report.json").read_text())
    prediction = found.prediction
    pred, target = np.array(prediction["pred"]), np.array(prediction["target"])
    au_error = np.abs(np.array(prediction["aus_pred"]) - np.array(prediction["aus_target"])) * [5, 5, 5, 5, 5, 1]
    evaluated = evaluation_metrics(found)
    assert report["overall"]["pairs"] == len(pred) and report["overall"]["identities"] == len(set(prediction["identities"]))
    for metric in ("mae", "rmse", "pcc", "icc", "auroc_ge1", "f1_ge2"):
        assert report["overall"]["metrics"]["PSPI"][metric]["value"] == pytest.approx(evaluated[metric], rel=1e-9)
    markdown = (root / "report" / "report.md").read_text()
    for attribute, entries in report["groups"].items():
        assert set(entries) == set(evaluated["mae_by_group"][attribute])
        for value, entry in entries.items():
            rows = rows_where(prediction, attribute, value)
            assert entry["pairs"] == rows.sum() and entry["identities"] == len(set(np.array(prediction["identities"])[rows]))
            mae = np.mean(np.abs(pred[rows] - target[rows]))
            assert entry["metrics"]["PSPI"]["mae"]["value"] == pytest.approx(mae, rel=1e-9)
            assert evaluated["mae_by_group"][attribute][value] == pytest.approx(mae, rel=1e-9)
            assert entry["metrics"]["PSPI"]["rmse"]["value"] == pytest.approx(np.sqrt(np.mean((pred[rows] - target[rows]) ** 2)), rel=1e-9)
            for column, au in enumerate(PSPI_AUS):
                assert entry["metrics"][au]["mae"]["value"] == pytest.approx(au_error[rows, column].mean(), rel=1e-6, abs=1e-9)
            assert f"| {value} | {entry['identities']} | {entry['pairs']} | {mae:.3f} " in markdown


def test_intervals_hold_the_estimate_and_repeat_with_the_seed(made):
    """Intervals for groups with enough identities; the same seed gives the same intervals (the CLI's report was made
    with seed 7), another seed others; groups with too few identities have none and are marked in the table."""
    root, _, found = made
    written = json.loads((root / "report" / "report.json").read_text())
    config = ReportConfig(resamples=200, seed=7)
    again = json.loads(json.dumps(fairness_report(found, config)))
    assert again["groups"] == written["groups"] and again["overall"] == written["overall"]
    other = fairness_report(found, ReportConfig(resamples=200, seed=8))
    assert other["overall"]["metrics"]["PSPI"]["mae"]["low"] != written["overall"]["metrics"]["PSPI"]["mae"]["low"]
    entries = [written["overall"], *(e for values in written["groups"].values() for e in values.values())]
    enough = [e for e in entries if e["enough_identities"]]
    few = [e for e in entries if not e["enough_identities"]]
    assert len(enough) >= 4 and few, "the test dataset should give both kinds of group"
    for entry in enough:
        assert entry["identities"] >= config.min_identities
        for name, metrics in entry["metrics"].items():
            for metric in ("mae", "rmse"):  # means over identities: the point estimate lies inside its percentile interval
                found_metric = metrics[metric]
                assert found_metric["low"] <= found_metric["value"] <= found_metric["high"], (name, metric, found_metric)
            for metric, found_metric in metrics.items():  # every other defined metric has an interval, low ≤ high
                assert found_metric["value"] is None or found_metric["low"] <= found_metric["high"], (name, metric)
    assert all(e["identities"] < config.min_identities and e["metrics"]["PSPI"]["mae"]["low"] is None for e in few)
    assert "(few ids)" in (root / "report" / "report.md").read_text()


def one_line_error(result) -> str:
    """The one error line of a failed command (a progress bar of the predictions may come before it)."""
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert result.output.rstrip().endswith(errors[0]), result.output
    return errors[0]


def test_bad_input_is_one_line(made, tmp_path):
    root, checkpoint, _ = made
    base = ["report", "--data", str(root / "data"), "--out", str(tmp_path / "out")]
    assert one_line_error(runner.invoke(app, base + ["--checkpoint", str(tmp_path / "none")])) == f"error: no checkpoint at {tmp_path / 'none'}"
    everything_in_train = tiny_checkpoint(tmp_path / "train-only", fractions=[1.0, 0.0, 0.0])
    assert one_line_error(runner.invoke(app, base + ["--checkpoint", str(everything_in_train)])) == \
        "error: the test split has 0 pairs; at least 2 are needed to evaluate"
    assert "--resamples must be at least 20" in one_line_error(runner.invoke(app, base + ["--checkpoint", str(checkpoint), "--resamples", "5"]))
    assert "--min-identities must be at least 2" in one_line_error(runner.invoke(app, base + ["--checkpoint", str(checkpoint), "--min-identities", "1"]))
    (tmp_path / "file").write_text("keep me")
    assert one_line_error(runner.invoke(app, ["report", "--data", str(root / "data"), "--out", str(tmp_path / "file"),
                                              "--checkpoint", str(checkpoint)])) == f"error: --out {tmp_path / 'file'} is a file, not a folder"
    assert (tmp_path / "file").read_text() == "keep me" and not (tmp_path / "out").exists()
