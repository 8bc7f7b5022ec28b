"""The `trainer` command line: help; bad input answered by a one-line error (exit 2) before any Ray work; a recipe
from --config with flags over it; a real run of the laptop recipe; fetch-backbone and the Hugging Face cache."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from typer.testing import CliRunner

from tests.trainer_shards import write_dataset
from trainer.checkpoint import read_info
from trainer.cli import app
from trainer.config import load_train_config
from trainer.models import create_model

ROOT = Path(__file__).parents[1]
runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and all(name in result.output for name in ("fit", "evaluate", "models", "fetch-backbone"))
    assert runner.invoke(app, ["models"]).output.split() == ["vit", "vit-diff", "vitpain"]


def test_fit_needs_exactly_one_data_source(tmp_path):
    result = runner.invoke(app, ["fit", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "exactly one of --data" in result.output
    result = runner.invoke(app, ["fit", "--out", str(tmp_path / "run"), "--data", str(tmp_path), "--unbc", str(tmp_path)])
    assert result.exit_code == 2


def test_fit_names_bad_options(tmp_path):
    base = ["fit", "--out", str(tmp_path / "run"), "--data", str(tmp_path)]
    assert "unknown model 'vitpian'" in runner.invoke(app, base + ["--model", "vitpian"]).output
    assert "pretrained backbone weights not found" in runner.invoke(app, base + ["--pretrained", str(tmp_path / "none.pth")]).output
    assert "summing to 1" in runner.invoke(app, base + ["--split-fractions", "0.5", "0.5", "0.5"]).output
    assert "multiple of the patch size 16" in runner.invoke(app, base + ["--image-size", "50"]).output
    assert "manifest.json not found: not a painfactory dataset" in runner.invoke(app, base).output  # checked before Ray starts
    assert not (tmp_path / "run").exists()  # nothing was started or written


def test_evaluate_without_a_checkpoint(tmp_path):
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nothing"), "--data", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "no checkpoint at" in result.output


def test_fit_reads_a_config_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    by_path = runner.invoke(app, ["fit", "--config", "configs/vitpain-cpu-tiny.yaml", "--print-config"])
    assert by_path.exit_code == 0, by_path.output
    recipe = yaml.safe_load(by_path.stdout)
    assert recipe["backbone"]["overrides"] == {"depth": 2, "embed_dim": 64, "num_heads": 2} and recipe["schedule"]["epochs"] == 2
    overridden = runner.invoke(app, ["fit", "--config", "vitpain-cpu-tiny", "--print-config", "--epochs", "1", "--lr", "0.01",
                                     "--depth", "3", "--fusion-heads", "2", "--loss-aus", "0", "--weight-decay", "0.5",
                                     "--shuffle-buffer", "16", "--no-augment", "--split-fractions", "0.6", "0.2", "0.2"])
    assert overridden.exit_code == 0, overridden.output
    expected = {**recipe, "fusion_heads": 2, "schedule": {"epochs": 1, "min_lr": 0.0}, "shuffle_buffer": 16, "augmentation": None,
                "optimizer": {"lr": 0.01, "backbone_lr": 0.001, "weight_decay": 0.5}, "loss": {**recipe["loss"], "aus": 0.0},
                "backbone": {**recipe["backbone"], "overrides": {"depth": 3, "embed_dim": 64, "num_heads": 2}},
                "split": {"seed": 0, "fractions": [0.6, 0.2, 0.2]}}
    assert yaml.safe_load(overridden.stdout) == expected


def test_fit_refuses_a_bad_config_in_one_line(tmp_path):
    base = ["fit", "--out", str(tmp_path / "run"), "--data", str(tmp_path)]
    (tmp_path / "typo.yaml").write_text("optimizer: {lr: 1.0e-4, wieght_decay: 0.1}\n")
    (tmp_path / "type.yaml").write_text("batch_size: forty-eight\n")
    (tmp_path / "broken.yaml").write_text("optimizer: {lr: 1.0e-4\nbatch_size: 4\n")
    for name, message in (("typo.yaml", "error: unknown optimizer key(s) wieght_decay; known: lr, backbone_lr, weight_decay\n"),
                          ("type.yaml", "error: batch_size must be an integer, got 'forty-eight'\n"),
                          ("broken.yaml", f"error: config file {tmp_path / 'broken.yaml'} is not valid YAML: "),
                          ("absent.yaml", "error: config file " + str(tmp_path / "absent.yaml") + " not found")):
        result = runner.invoke(app, base + ["--config", str(tmp_path / name)])
        assert result.exit_code == 2 and result.output.startswith(message), result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_fit_with_the_tiny_config_trains_and_warns_once(tmp_path, ray_local, monkeypatch):
    """The README's laptop command, from the repository root with relative paths (Ray Train workers run in a folder
    of their own), on a small dataset of drawn faces and one epoch; ViTPain from scratch is warned about once, on
    stderr, in one line."""
    monkeypatch.chdir(ROOT)
    write_dataset(str(tmp_path / "data"), identities=8, image_size=32, pain_expressions=3, per_shard=4)
    result = runner.invoke(app, ["fit", "--config", "configs/vitpain-cpu-tiny.yaml", "--data", os.path.relpath(tmp_path / "data"),
                                 "--out", os.path.relpath(tmp_path / "run"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "ViTPain from scratch" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "trainer fetch-backbone" in warnings[0]
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["checkpoint"] == os.path.join(os.path.relpath(tmp_path / "run"), "checkpoint_epoch0000") and final["steps"] >= 1
    info = read_info(tmp_path / "run" / "checkpoint_epoch0000")
    assert info["config"] == {**load_train_config("configs/vitpain-cpu-tiny.yaml").to_dict(), "schedule": {"epochs": 1, "min_lr": 0.0}}
    assert info["backbone"]["overrides"] == {"depth": 2, "embed_dim": 64, "num_heads": 2} and info["backbone"]["image_size"] == 64


def fetch(args, env_extra, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | env_extra
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "trainer", "fetch-backbone", *args], capture_output=True, text=True,
                            env=env, timeout=timeout)
    return result, time.monotonic() - started


def test_fetch_backbone_offline_fails_in_one_clear_line(tmp_path):
    result, _ = fetch(["vit_tiny_patch16_224", "--cache-dir", str(tmp_path / "hf")], {"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the Hugging Face Hub (HF_HUB_OFFLINE is set)")
    assert "copy its cache folder to " + str(tmp_path / "hf") in line and "--pretrained FILE" in line
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


def test_fetch_backbone_gives_up_quickly_on_a_hub_that_does_not_answer(tmp_path):
    """A Hub address that accepts connections and never answers (a firewall that swallows them) costs one short
    probe, not huggingface_hub's minutes of retries; nothing leaves this machine."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nobody reads or answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result, seconds = fetch(["vit_tiny_patch16_224", "--cache-dir", str(tmp_path / "hf"), "--timeout", "1"],
                                {"HF_ENDPOINT": endpoint})
    assert result.returncode == 2 and seconds < 30
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the Hugging Face Hub ({endpoint}: ") and "ReadTimeout" in line


def test_fetch_backbone_and_pretrained_hub_agree_on_the_cache(tmp_path, monkeypatch):
    """Weights stored where huggingface_hub stores them (models--org--name/refs/main → snapshots/<rev>/file) are
    what fetch-backbone reports as fetched (offline: found in the cache) and what `pretrained: hub` loads."""
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    from trainer.models.hub import hub_source

    name = "vit_tiny_patch16_224"
    source = hub_source(name)
    snapshot = tmp_path / "hf" / f"models--{source.repo.replace('/', '--')}" / "snapshots" / "5eed"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("5eed")
    torch.manual_seed(3)
    tiny = {"depth": 2, "embed_dim": 64, "num_heads": 2}
    random_weights = timm.create_model(name, pretrained=False, num_classes=0, img_size=64, **tiny).state_dict()
    save_file(random_weights, str(snapshot / source.filenames[0]))

    result, _ = fetch([name, "--cache-dir", str(tmp_path / "hf")], {"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{name}: {snapshot / source.filenames[0]}"
    assert f"HF_HUB_CACHE={tmp_path / 'hf'}" in result.stdout

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    recipe = tmp_path / "hub.yaml"
    recipe.write_text(f"backbone: {{name: {name}, image_size: 64, pretrained: hub, overrides: {json.dumps(tiny)}}}\n")
    config = load_train_config(str(recipe))
    model = create_model(config.model, config.backbone, config.fusion_heads)
    for encoder in (model.encoder, model.reference_encoder):
        for key, tensor in random_weights.items():
            assert torch.equal(encoder.state_dict()[key], tensor), key
