"""Baseline: the reference enters as a feature difference. One shared encoder sees both faces; each token
becomes a projection of [pain token, pain token − neutral token], so the heads see what changed."""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.backbone import BackboneConfig, create_backbone, patch_tokens
from trainer.models.heads import PainHeads
from trainer.models.registry import register_model


@register_model("vit-diff")
class FeatureDifferenceViT(nn.Module):
    def __init__(self, backbone: BackboneConfig, fusion_heads: int):
        super().__init__()
        self.encoder = create_backbone(backbone)
        dim = self.encoder.embed_dim
        self.merge = nn.Sequential(nn.Linear(2 * dim, dim), nn.LayerNorm(dim))
        self.heads = PainHeads(dim, fusion_heads)

    def forward(self, pain: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        pain_tokens = self.encoder.forward_features(pain)
        reference_tokens = self.encoder.forward_features(reference)
        tokens = self.merge(torch.cat([pain_tokens, pain_tokens - reference_tokens], dim=-1))
        return self.heads(tokens[:, 0], patch_tokens(self.encoder, tokens))
