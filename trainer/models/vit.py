"""Baseline: a single-image ViT that never sees the neutral reference."""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.backbone import BackboneConfig, create_backbone, patch_tokens
from trainer.models.heads import PainHeads
from trainer.models.registry import register_model


@register_model("vit")
class SingleImageViT(nn.Module):
    def __init__(self, backbone: BackboneConfig, fusion_heads: int):
        super().__init__()
        self.encoder = create_backbone(backbone)
        self.heads = PainHeads(self.encoder.embed_dim, fusion_heads)

    def forward(self, pain: torch.Tensor, reference: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens = self.encoder.forward_features(pain)
        return self.heads(tokens[:, 0], patch_tokens(self.encoder, tokens))
