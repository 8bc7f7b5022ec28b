"""ViTPain: the pain face and its neutral reference through two ViT encoders, fused by cross-attention."""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.backbone import BackboneConfig, create_backbone, patch_tokens
from trainer.models.heads import PainHeads, ReferenceCrossAttention
from trainer.models.registry import register_model


@register_model("vitpain")
class ViTPain(nn.Module):
    def __init__(self, backbone: BackboneConfig, fusion_heads: int):
        super().__init__()
        self.encoder = create_backbone(backbone)
        self.reference_encoder = create_backbone(backbone)
        dim = self.encoder.embed_dim
        self.fusion = ReferenceCrossAttention(dim, fusion_heads)
        self.heads = PainHeads(dim, fusion_heads)

    def forward(self, pain: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.fusion(self.encoder.forward_features(pain), self.reference_encoder.forward_features(reference))
        return self.heads(tokens[:, 0], patch_tokens(self.encoder, tokens))
