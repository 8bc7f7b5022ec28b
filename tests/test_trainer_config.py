"""TrainConfig: YAML file, flags over the file, unknown keys and wrong types refused by name, the dataclasses' own
checks, the two shipped recipes, and the warning for ViTPain without pretrained weights."""

import tomllib
from pathlib import Path

import pytest
import torch
import yaml

from trainer.config import (
    SHIPPED_CONFIGS,
    ConfigError,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
    config_path,
    load_train_config,
    scratch_warning,
)
from trainer.data import Augmentation, SplitConfig
from trainer.models import BackboneConfig, LossWeights, create_model
from trainer.models.backbone import check_backbone_name
from trainer.models.hub import hub_source

ROOT = Path(__file__).parents[1]


def write(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_every_key_round_trips_through_yaml():
    config = TrainConfig(model="vit-diff", fusion_heads=2, loss=LossWeights(aus=0.25),
                         backbone=BackboneConfig(name="vit_tiny_patch16_224", image_size=32, lora_rank=4, overrides={"depth": 1}),
                         optimizer=OptimizerConfig(lr=3e-4), schedule=ScheduleConfig(epochs=7, min_lr=1e-6),
                         augmentation=Augmentation(hue=0.05), split=SplitConfig(seed=3, fractions=(0.6, 0.3, 0.1)),
                         batch_size=5, shuffle_buffer=9, seed=11, init_checkpoint="s3://bucket/run")
    text = yaml.safe_dump(config.to_dict())
    assert TrainConfig.from_dict(yaml.safe_load(text)) == config
    assert TrainConfig.from_dict({}) == TrainConfig()
    assert set(config.to_dict()) == {"model", "fusion_heads", "backbone", "loss", "optimizer", "schedule", "batch_size",
                                     "augmentation", "split", "shuffle_buffer", "seed", "init_checkpoint"}


def test_flags_win_over_the_file_section_by_section(tmp_path):
    path = write(tmp_path, "model: vit\nbatch_size: 12\n"
                           "backbone: {name: vit_tiny_patch16_224, image_size: 32, overrides: {depth: 1, num_heads: 2}}\n"
                           "optimizer: {lr: 2.0e-4, weight_decay: 0.05}\nsplit: {fractions: [0.5, 0.25, 0.25]}\n")
    config = load_train_config(path, {"optimizer.lr": 1e-3, "backbone.overrides.depth": 3, "schedule.epochs": 1,
                                      "batch_size": None, "split.seed": 4})
    assert config.optimizer == OptimizerConfig(lr=1e-3, backbone_lr=1e-5, weight_decay=0.05)  # the file's weight decay stays
    assert config.backbone.overrides == {"depth": 3, "num_heads": 2}  # one override replaced, the other kept
    assert config.batch_size == 12  # None means the flag was not given
    assert config.schedule == ScheduleConfig(epochs=1) and config.model == "vit"
    assert config.split == SplitConfig(seed=4, fractions=(0.5, 0.25, 0.25))


def test_augmentation_flag_turns_it_off_or_on(tmp_path):
    assert load_train_config(None, {}, augment=False).augmentation is None
    assert load_train_config(write(tmp_path, "augmentation: null\n")).augmentation is None
    assert load_train_config(write(tmp_path, "augmentation: null\n"), augment=True).augmentation == Augmentation()
    assert load_train_config(write(tmp_path, "augmentation: {flip: 0.0}\n"), augment=True).augmentation == Augmentation(flip=0.0)


@pytest.mark.parametrize("text, message", [
    ("modle: vit\n", "unknown config key(s) modle; known: model, fusion_heads, backbone, loss, optimizer, schedule"),
    ("optimizer: {lr: 1.0e-3, lrr: 1.0e-3}\n", "unknown optimizer key(s) lrr; known: lr, backbone_lr, weight_decay"),
    ("backbone: {name: vit_tiny_patch16_224, lora_ranks: 8}\n", "unknown backbone key(s) lora_ranks; known: name, image_size, pretrained"),
    ("augmentation: {flip: 0.5, mixup: 0.2}\n", "unknown augmentation key(s) mixup; known: flip, rotate_deg"),
])
def test_unknown_keys_are_refused_by_name(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_train_config(write(tmp_path, text))
    assert message in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("batch_size: 4.5\n", "batch_size must be an integer, got 4.5"),
    ("batch_size: true\n", "batch_size must be an integer, got True"),
    ("optimizer: {lr: fast}\n", "optimizer.lr must be a number, got 'fast'"),
    ("optimizer: {lr: 1e-4}\n", "optimizer.lr must be a number, got '1e-4' (YAML reads 1e-4 as text"),
    ("backbone: {pretrained: 5}\n", "backbone.pretrained must be a string (or null), got 5"),
    ("backbone: {overrides: [depth, 2]}\n", "backbone.overrides must be a mapping, got ['depth', 2]"),
    ("split: {fractions: [0.5, 0.5]}\n", "split.fractions must be a list of 3 values, got [0.5, 0.5]"),
    ("split: {fractions: [0.5, a, 0.2]}\n", "split.fractions[1] must be a number, got 'a'"),
    ("augmentation: yes\n", "augmentation must be a mapping of keys (or null), got True"),
    ("schedule: 150\n", "schedule must be a mapping of keys, got 150"),
    ("model: 3\n", "model must be a string, got 3"),
])
def test_wrong_types_are_refused_with_key_and_type(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_train_config(write(tmp_path, text))
    assert message in str(error.value)


@pytest.mark.parametrize("data, message", [
    ({"model": "vitpian"}, "unknown model 'vitpian'; known: vit, vit-diff, vitpain"),
    ({"fusion_heads": 0}, "fusion_heads, batch_size and shuffle_buffer must be >= 1"),
    ({"backbone": {"image_size": 50}}, "backbone: image_size must be a positive multiple of the patch size 16"),
    ({"augmentation": {"flip": 2}}, "augmentation: flip is a probability in [0, 1], got 2"),
    ({"augmentation": {"brightness": 1.5}}, "augmentation: brightness must be in [0, 1)"),
    ({"split": {"fractions": [0.5, 0.5, 0.5]}}, "split: split fractions must be three non-negative numbers summing to 1"),
    ({"loss": {"aus": -1}}, "loss: loss weights must be >= 0"),
    ({"optimizer": {"lr": 0}}, "optimizer: lr must be > 0"),
    ({"schedule": {"epochs": 0}}, "schedule: epochs must be >= 1"),
    ({"schedule": {"min_lr": 1.0e-3}}, "schedule.min_lr 0.001 exceeds optimizer.lr 0.0001"),
])
def test_values_are_checked_by_their_dataclasses(data, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict(data)
    assert message in str(error.value)


def test_config_files_are_found_by_path_or_shipped_name(tmp_path):
    assert config_path("vitpain") == config_path("vitpain.yaml") == SHIPPED_CONFIGS / "vitpain.yaml"
    assert (ROOT / "configs" / "vitpain-cpu-tiny.yaml").resolve() == (SHIPPED_CONFIGS / "vitpain-cpu-tiny.yaml").resolve()
    with pytest.raises(ConfigError, match="config file vitpian not found .shipped configs: vitpain, vitpain-cpu-tiny"):
        config_path("vitpian")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_train_config(write(tmp_path, "model: [vit\n"))
    with pytest.raises(ConfigError, match="must hold a mapping of keys, got list"):
        load_train_config(write(tmp_path, "- model\n"))
    # Installed without the repository (the Docker image), the recipes come with the package.
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["trainer"]
    assert "configs/*.yaml" in package_data and sorted(SHIPPED_CONFIGS.glob("*.yaml"))


def test_the_official_recipe(monkeypatch):
    monkeypatch.chdir(ROOT)  # as the README runs it, from the repository root
    config = load_train_config("configs/vitpain.yaml")
    backbone = config.backbone
    assert backbone.name == "vit_large_patch16_dinov3.sat493m" and backbone.image_size == 224 and backbone.pretrained == "hub"
    assert (backbone.lora_rank, backbone.lora_alpha, backbone.lora_dropout) == (8, 16, 0.1)
    assert config.optimizer == OptimizerConfig(lr=1e-4, backbone_lr=1e-5, weight_decay=0.1)
    assert config.schedule == ScheduleConfig(epochs=150, min_lr=1e-6) and config.batch_size == 48
    assert config.model == "vitpain" and config.fusion_heads == 8 and config.loss == LossWeights(1.0, 1.0, 1.0)
    assert config.augmentation == Augmentation(flip=0.3, rotate_deg=5.0, translate=0.1, scale=0.1, brightness=0.3,
                                               contrast=0.3, saturation=0.2, hue=0.1, blur=1.0)
    check_backbone_name(backbone.name)  # the installed timm has it, with its tag
    assert hub_source(backbone.name).repo == "timm/vit_large_patch16_dinov3.sat493m"
    assert config.model_info()["mean"] == [0.43, 0.411, 0.296]  # the normalisation of those weights, not ImageNet's
    assert scratch_warning(config) is None


def test_the_tiny_recipe_builds_a_model_that_runs():
    config = load_train_config("vitpain-cpu-tiny")
    assert config.backbone.image_size == 64 and config.backbone.pretrained is None and config.schedule.epochs == 2
    assert config.batch_size == 8 and config.optimizer.lr == 1e-3
    torch.manual_seed(0)
    model = create_model(config.model, config.backbone, config.fusion_heads).eval()
    assert sum(p.numel() for p in model.parameters()) < 500_000  # tiny: two 2-block, 64-wide encoders
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert outputs["pspi"].shape == (2,) and outputs["aus"].shape == (2, 6)


def test_the_scratch_warning_is_for_vitpain_without_weights_only(tmp_path):
    scratch = TrainConfig(model="vitpain")
    warning = scratch_warning(scratch)
    assert "\n" not in warning and "trainer fetch-backbone vit_large_patch16_dinov3.sat493m" in warning
    assert "configs/vitpain.yaml" in warning and "stays at the mean" in warning
    assert scratch_warning(TrainConfig(model="vit-diff")) is None
    weights = tmp_path / "weights.safetensors"
    assert scratch_warning(TrainConfig(backbone=BackboneConfig(pretrained=str(weights)))) is None
    assert scratch_warning(TrainConfig(init_checkpoint="runs/synthetic")) is None  # weights come from the checkpoint
