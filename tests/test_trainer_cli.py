"""The `trainer` command line: help, and bad input answered by a one-line error (exit 2), before any Ray work."""

from typer.testing import CliRunner

from trainer.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and all(name in result.output for name in ("fit", "evaluate", "models"))
    assert runner.invoke(app, ["models"]).output.split() == ["vit", "vit-diff", "vitpain"]


def test_fit_needs_exactly_one_data_source(tmp_path):
    result = runner.invoke(app, ["fit", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "exactly one of --data" in result.output
    result = runner.invoke(app, ["fit", "--out", str(tmp_path / "run"), "--data", str(tmp_path), "--unbc", str(tmp_path)])
    assert result.exit_code == 2


def test_fit_names_bad_options(tmp_path):
    base = ["fit", "--out", str(tmp_path / "run"), "--data", str(tmp_path)]
    assert "unknown --model 'vitpian'" in runner.invoke(app, base + ["--model", "vitpian"]).output
    assert "pretrained backbone weights not found" in runner.invoke(app, base + ["--pretrained", str(tmp_path / "none.pth")]).output
    assert "summing to 1" in runner.invoke(app, base + ["--split-fractions", "0.5", "0.5", "0.5"]).output
    assert "multiple of the patch size 16" in runner.invoke(app, base + ["--image-size", "50"]).output
    assert "manifest.json not found: not a painfactory dataset" in runner.invoke(app, base).output  # checked before Ray starts
    assert not (tmp_path / "run").exists()  # nothing was started or written


def test_evaluate_without_a_checkpoint(tmp_path):
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nothing"), "--data", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "no checkpoint at" in result.output
