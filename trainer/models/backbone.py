"""ViT backbones from timm: built by name, from scratch or from local weights, optionally LoRA-adapted.

Weights are never downloaded. `pretrained` is either a path to a weight file (.safetensors, .pth, .bin, as
timm's `load_state_dict` reads them, pickles through torch's weights-only unpickler) or "hub", which looks the
weights up in the Hugging Face cache (no network) and fails with a clear error when the weights are not cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

# LoRA goes on the attention projections only (the official ViTPain's choice). A regex, because peft's plain
# suffix match on "proj" would also catch the patch embedding's convolution.
LORA_TARGETS = r".*\.attn\.(qkv|proj)"


@dataclass(frozen=True)
class BackboneConfig:
    """Which timm ViT to build and how. `overrides` are timm kwargs (depth, embed_dim, num_heads, …)
    for the tiny models CPU tests need."""

    name: str = "vit_small_patch16_224"
    image_size: int = 224
    pretrained: str | None = None  # None: from scratch; "hub": the HF cache, offline; else a local weight file
    lora_rank: int = 0  # 0: no LoRA, the whole backbone trains; > 0: backbone frozen, LoRA adapters train
    lora_alpha: int = 16
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        patch = self.patch_size
        if self.image_size < patch or (patch and self.image_size % patch):
            raise ValueError(f"image_size must be a positive multiple of the patch size {patch} of {self.name}, got {self.image_size}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if self.pretrained not in (None, "hub") and not Path(self.pretrained).is_file():
            raise FileNotFoundError(
                f"pretrained backbone weights not found: {self.pretrained} "
                "(give a local .safetensors/.pth file, 'hub' for the Hugging Face cache, or nothing to train from scratch)"
            )

    @property
    def patch_size(self) -> int:
        """From the overrides, else from the timm name ("…_patch14_…"); 0 when neither says."""
        if "patch_size" in self.overrides:
            return int(self.overrides["patch_size"])
        found = re.search(r"patch(\d+)", self.name)
        return int(found.group(1)) if found else 0

    def to_dict(self) -> dict:
        return {"name": self.name, "image_size": self.image_size, "pretrained": self.pretrained,
                "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha, "overrides": dict(self.overrides)}


def create_backbone(config: BackboneConfig) -> nn.Module:
    """A timm ViT without classifier (`forward_features` gives [B, prefix + patches, D] tokens)."""
    import timm

    if config.name not in timm.list_models():
        raise ValueError(f"unknown timm backbone {config.name!r} (see timm.list_models('vit_*'))")
    kwargs = dict(num_classes=0, img_size=config.image_size, **config.overrides)
    if config.pretrained is None:
        model = timm.create_model(config.name, pretrained=False, **kwargs)
    else:
        weights = cached_hub_weights(config.name) if config.pretrained == "hub" else str(config.pretrained)
        model = timm.create_model(config.name, pretrained=True, pretrained_cfg_overlay={"file": weights}, **kwargs)
    if config.lora_rank:
        model = add_lora(model, config.lora_rank, config.lora_alpha)
    return model


def cached_hub_weights(name: str) -> str:
    """The local path of `name`'s weights in the Hugging Face cache, looked up without any network access."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.get_pretrained_cfg(name)
    repo = cfg.hf_hub_id if cfg else None
    if not repo:
        raise FileNotFoundError(f"timm has no Hugging Face weights for {name!r}; pass a local weight file instead")
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        path = try_to_load_from_cache(repo, filename)
        if isinstance(path, str):
            return path
    raise FileNotFoundError(
        f"pretrained weights for {name!r} ({repo}) are not in the Hugging Face cache; "
        "download them once elsewhere, or pass a local weight file"
    )


def add_lora(model: nn.Module, rank: int, alpha: int) -> nn.Module:
    """Inject LoRA adapters into the attention projections and freeze everything else of the backbone."""
    from peft import LoraConfig, inject_adapter_in_model

    model = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=LORA_TARGETS), model)
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
