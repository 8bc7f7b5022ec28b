"""ViT backbones from timm: built by name, from scratch or from local weights, optionally LoRA-adapted.

Weights are never downloaded here. `pretrained` is either a path to a weight file (.safetensors, .pth, .bin, as
timm's `load_state_dict` reads them, pickles through torch's weights-only unpickler) or "hub", which looks the
weights up in the Hugging Face cache (no network; `trainer fetch-backbone NAME` puts them there, see hub.py) and
fails with a clear error when they are not cached. `check_backbone` runs those checks on the driver, before any
worker starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from trainer.models.hub import cached_hub_weights

# LoRA goes on the attention projections only (the official ViTPain's choice). A regex, because peft's plain
# suffix match on "proj" would also catch the patch embedding's convolution.
LORA_TARGETS = r".*\.attn\.(qkv|proj)"


@dataclass(frozen=True)
class BackboneConfig:
    """Which timm ViT to build and how. `name` may carry timm's pretrained tag (`vit_large_patch16_dinov3.sat493m`).
    `overrides` are timm kwargs (depth, embed_dim, num_heads, patch_size, …) for the tiny models CPU runs need."""

    name: str = "vit_small_patch16_224"
    image_size: int = 224
    pretrained: str | None = None  # None: from scratch; "hub": the HF cache, offline; else a local weight file
    lora_rank: int = 0  # 0: no LoRA, the whole backbone trains; > 0: backbone frozen, LoRA adapters train
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        patch = self.patch_size
        if self.image_size < patch or (patch and self.image_size % patch):
            raise ValueError(f"image_size must be a positive multiple of the patch size {patch} of {self.name}, got {self.image_size}")
        if self.lora_rank < 0 or self.lora_alpha < 1:
            raise ValueError(f"lora_rank must be >= 0 and lora_alpha >= 1, got {self.lora_rank} and {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")

    @property
    def patch_size(self) -> int:
        """From the overrides, else from the timm name ("…_patch14_…"); 0 when neither says."""
        if "patch_size" in self.overrides:
            return int(self.overrides["patch_size"])
        found = re.search(r"patch(\d+)", self.name)
        return int(found.group(1)) if found else 0

    def to_dict(self) -> dict:
        return {"name": self.name, "image_size": self.image_size, "pretrained": self.pretrained,
                "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout,
                "overrides": dict(self.overrides)}


def check_backbone(config: BackboneConfig) -> str | None:
    """Fail with a clear message unless timm knows the name and the pretrained weights are on this machine;
    returns the weight file to load (None from scratch)."""
    check_backbone_name(config.name)
    if config.pretrained is None:
        return None
    if config.pretrained == "hub":
        return cached_hub_weights(config.name)
    if not Path(config.pretrained).is_file():
        raise FileNotFoundError(
            f"pretrained backbone weights not found: {config.pretrained} "
            "(give a local .safetensors/.pth file, 'hub' for the Hugging Face cache, or nothing to train from scratch)"
        )
    return str(config.pretrained)


def check_backbone_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown timm backbone {name!r} (see timm.list_models('vit_*'))")


def create_backbone(config: BackboneConfig) -> nn.Module:
    """A timm ViT without classifier (`forward_features` gives [B, prefix + patches, D] tokens)."""
    import timm

    weights = check_backbone(config)
    kwargs = dict(num_classes=0, img_size=config.image_size, **config.overrides)
    if weights is None:
        model = timm.create_model(config.name, pretrained=False, **kwargs)
    else:
        model = timm.create_model(config.name, pretrained=True, pretrained_cfg_overlay={"file": weights}, **kwargs)
    if config.lora_rank:
        model = add_lora(model, config.lora_rank, config.lora_alpha, config.lora_dropout)
    return model


def add_lora(model: nn.Module, rank: int, alpha: int, dropout: float) -> nn.Module:
    """Inject LoRA adapters into the attention projections and freeze everything else of the backbone."""
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS)
    model = inject_adapter_in_model(lora, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "lora_" in name
    return model


def patch_tokens(backbone: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The patch tokens of `forward_features` output, without CLS and register tokens."""
    return tokens[:, backbone.num_prefix_tokens:]


def input_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the backbone's weights were trained with (timm's pretrained config for that name)."""
    import timm

    cfg = timm.get_pretrained_cfg(name)
    return (tuple(cfg.mean), tuple(cfg.std)) if cfg else ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
