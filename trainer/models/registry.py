"""Model registry, timm-style: each model file registers its class under a short name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainer.models.backbone import BackboneConfig

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def decorate(cls):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = cls
        return cls
    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, backbone: BackboneConfig, fusion_heads: int) -> nn.Module:
    """Build a registered pain model ('vitpain', 'vit', 'vit-diff') on the given backbone. `fusion_heads` is the
    number of attention heads of the reference fusion and the AU pooling (TrainConfig.fusion_heads)."""
    check_model_name(name)
    return _MODELS[name](backbone, fusion_heads=fusion_heads)


def check_model_name(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")


def is_backbone_parameter(name: str) -> bool:
    """Backbone parameters (or their LoRA adapters) get the backbone learning rate; the rest the heads'."""
    return name.startswith(("encoder.", "reference_encoder."))
