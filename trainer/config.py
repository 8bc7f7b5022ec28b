"""The `trainer fit` configuration: `TrainConfig`, one frozen dataclass holding every hyper-parameter of a training
recipe, read from a YAML file and command-line flags (a flag wins over the file) and validated here, at the edge.

The recipe is what is trained and how; every checkpoint records it (checkpoint.json, "config"). Where it runs is
not part of it and is given per command: the data (--data or --unbc with --fold/--folds/--protocol), the run folder
(--out), --workers, --gpu and --max-failures. So one recipe trains on a laptop or on eight GPUs; `batch_size` is per
worker, as the official 48 is per GPU.

YAML layout (every key optional; a missing one keeps TrainConfig's default):

```yaml
model: vitpain                 # registry name: vitpain | vit | vit-diff
fusion_heads: 4                # attention heads of the reference cross-attention and of the AU pooling
backbone:                      # BackboneConfig, trainer/models/backbone.py
  name: vit_small_patch16_224  # a timm name, optionally with its pretrained tag (….sat493m)
  image_size: 224
  pretrained: null             # null: from scratch; hub: the Hugging Face cache (trainer fetch-backbone); or a file
  lora_rank: 0                 # > 0: backbone frozen, LoRA adapters on attn.qkv and attn.proj
  lora_alpha: 16
  lora_dropout: 0.0
  overrides: {}                # timm kwargs for tiny models: depth, embed_dim, num_heads, patch_size
loss: {pspi: 1.0, thresholds: 0.5, aus: 0.5}                  # LossWeights, trainer/models/heads.py
optimizer: {lr: 1.0e-4, backbone_lr: 1.0e-5, weight_decay: 0.1}
schedule: {epochs: 150, min_lr: 0.0}
batch_size: 48
augmentation: {flip: 0.5, rotate_deg: 5.0, translate: 0.05, scale: 0.05, brightness: 0.2, contrast: 0.2,
               saturation: 0.2, hue: 0.0, blur: 0.2}          # Augmentation, trainer/data.py; null: none
split: {seed: 0, fractions: [0.7, 0.2, 0.1]}                  # SplitConfig, factory/spec/split.py
shuffle_buffer: 256
seed: 0
init_checkpoint: null          # a checkpoint to start from; its model, backbone and fusion heads are used
```

Shipped recipes live in trainer/configs/ (the repository's configs/ points there): `vitpain` (the official ViTPain)
and `vitpain-cpu-tiny` (a laptop run). `--config` takes a file path or one of those names.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from factory.options import ConfigError, build, read_yaml
from trainer.data import Augmentation, SplitConfig
from trainer.models.backbone import BackboneConfig, input_normalization
from trainer.models.heads import LossWeights
from trainer.models.registry import check_model_name

SHIPPED_CONFIGS = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with two learning rates: the heads and fusion fast, the backbone (or its LoRA adapters) slow."""

    lr: float = 1e-4
    backbone_lr: float = 1e-5  # 0 freezes the backbone
    weight_decay: float = 0.1

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.backbone_lr < 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0, backbone_lr and weight_decay >= 0, got {self.lr}, {self.backbone_lr}, {self.weight_decay}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Cosine annealing, stepped per epoch, from each learning rate down to `min_lr` at the last epoch."""

    epochs: int = 150  # in total: a resumed run continues up to this number
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.min_lr < 0:
            raise ValueError(f"epochs must be >= 1 and min_lr >= 0, got {self.epochs} and {self.min_lr}")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe. Defaults: the official optimiser, schedule length and batch with a ViT-S/16 from scratch;
    the complete official recipe (DINOv3 ViT-L/16 from the HF cache, LoRA, its loss weights, fusion heads and
    augmentations) is configs/vitpain.yaml."""

    model: str = "vitpain"
    fusion_heads: int = 4
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch_size: int = 48  # pairs per batch per worker
    augmentation: Augmentation | None = field(default_factory=Augmentation)  # None: no augmentation
    split: SplitConfig = field(default_factory=SplitConfig)  # the data source's split (the CLI builds it from this)
    shuffle_buffer: int = 256  # pairs held by the streaming shuffle
    seed: int = 0  # initialisation, shuffling and augmentation (the split has its own seed)
    init_checkpoint: str | None = None  # a checkpoint folder URL to start from (fine-tuning)

    def __post_init__(self) -> None:
        check_model_name(self.model)
        if self.fusion_heads < 1 or self.batch_size < 1 or self.shuffle_buffer < 1:
            raise ValueError(f"fusion_heads, batch_size and shuffle_buffer must be >= 1, got {self.fusion_heads}, "
                             f"{self.batch_size}, {self.shuffle_buffer}")
        if self.schedule.min_lr > self.optimizer.lr:
            raise ValueError(f"schedule.min_lr {self.schedule.min_lr} exceeds optimizer.lr {self.optimizer.lr}")

    def model_info(self) -> dict:
        """What a checkpoint needs to rebuild the model and feed it: name, backbone, fusion heads, input normalisation."""
        mean, std = input_normalization(self.backbone.name)
        return {"model": self.model, "backbone": self.backbone.to_dict(), "fusion_heads": self.fusion_heads,
                "mean": list(mean), "std": list(std)}

    def to_dict(self) -> dict:
        """Plain JSON/YAML values, in the layout `from_dict` reads."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping) -> "TrainConfig":
        return build(cls, data)


# --------------------------------------------------------------------------------------- file, flags, checks


def load_train_config(config: str | None = None, flags: Mapping[str, object] | None = None,
                      augment: bool | None = None) -> TrainConfig:
    """TrainConfig from an optional YAML file (a path or a shipped config's name), then the flags that were given.

    `flags` maps dotted keys ("optimizer.lr", "backbone.overrides.depth") to values, None meaning not given.
    `augment` False turns augmentation off; True turns it on (the file's values, else the defaults).
    """
    data = read_yaml(config_path(config)) if config else {}
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    if augment is False:
        data["augmentation"] = None
    elif augment and data.get("augmentation") is None:
        data["augmentation"] = {}
    return TrainConfig.from_dict(data)


def config_path(given: str) -> Path:
    """A config file: the path given, else the shipped config of that name (`vitpain`, `vitpain-cpu-tiny.yaml`)."""
    path = Path(given)
    if path.is_file():
        return path
    shipped = SHIPPED_CONFIGS / f"{given.removesuffix('.yaml')}.yaml"
    if "/" not in given and shipped.is_file():
        return shipped
    raise ConfigError(f"config file {given} not found (shipped configs: {', '.join(shipped_config_names())})")


def shipped_config_names() -> list[str]:
    return sorted(path.stem for path in SHIPPED_CONFIGS.glob("*.yaml"))


def set_dotted(data: dict, key: str, value) -> None:
    """data["a"]["b"] = value for key "a.b", creating the sections on the way."""
    *sections, last = key.split(".")
    node = data
    for position, section in enumerate(sections):
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(sections[:position + 1])} must be a mapping, got {node!r}")
    node[last] = value


def scratch_warning(config: TrainConfig) -> str | None:
    """The one-line warning for ViTPain without pretrained weights, or None."""
    if config.model != "vitpain" or config.backbone.pretrained is not None or config.init_checkpoint:
        return None
    official = read_yaml(config_path("vitpain"))["backbone"]["name"]
    return ("warning: ViTPain from scratch needs far more data than a small dataset (on 48 identities it stays at the "
            f"mean, see the README's Measured section); fetch a pretrained backbone with `trainer fetch-backbone {official}` "
            "and train with --config configs/vitpain.yaml (pretrained: hub)")
