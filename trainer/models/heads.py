"""The parts every pain model shares: the output heads, the neutral-reference fusion, and the loss.

Outputs are a dict of named tensors so losses, metrics and the evaluator never depend on which model made them:
  "pspi"      [B]     predicted PSPI in 0..16 (sigmoid × 16 on the CLS token)
  "ge_logits" [B, 3]  logits of PSPI ≥ 1, ≥ 2, ≥ 3
  "aus"       [B, 6]  the six PSPI AUs, each scaled to 0..1 (intensity / its maximum)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from factory.spec.labels import MAX_PSPI, PSPI_AUS, PSPI_THRESHOLDS

AU_COUNT = len(PSPI_AUS)  # one output per PSPI AU, in PSPI_AUS order


class PainHeads(nn.Module):
    """PSPI regression and binary heads from CLS; the AU head pools patch tokens with 6 learned queries."""

    def __init__(self, dim: int, num_heads: int, hidden: int = 256):
        super().__init__()
        self.pspi = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.thresholds = nn.Linear(dim, len(PSPI_THRESHOLDS))
        self.au_queries = nn.Parameter(torch.randn(1, AU_COUNT, dim) * 0.02)
        self.au_pool = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.au_out = nn.Linear(dim, 1)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        queries = self.au_queries.expand(cls.shape[0], -1, -1)
        pooled, _ = self.au_pool(queries, patches, patches, need_weights=False)
        return {
            "pspi": torch.sigmoid(self.pspi(cls).squeeze(-1)) * MAX_PSPI,
            "ge_logits": self.thresholds(cls),
            "aus": torch.sigmoid(self.au_out(pooled).squeeze(-1)),
        }


class ReferenceCrossAttention(nn.Module):
    """One multi-head cross-attention layer: pain tokens ask, neutral tokens answer; residual, then LayerNorm."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, pain_tokens: torch.Tensor, reference_tokens: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(pain_tokens, reference_tokens, reference_tokens, need_weights=False)
        return self.norm(pain_tokens + attended)


@dataclass(frozen=True)
class LossWeights:
    pspi: float = 1.0
    thresholds: float = 0.5
    aus: float = 0.5

    def __post_init__(self) -> None:
        if min(self.pspi, self.thresholds, self.aus) < 0:
            raise ValueError(f"loss weights must be >= 0, got {self}")


def pain_loss(outputs: dict[str, torch.Tensor], pspi: torch.Tensor, aus: torch.Tensor, weights: LossWeights) -> dict[str, torch.Tensor]:
    """MSE on PSPI/16, BCE on PSPI ≥ 1, 2, 3, MSE on the scaled AUs; 'loss' is their weighted sum."""
    targets_ge = torch.stack([(pspi >= k).float() for k in PSPI_THRESHOLDS], dim=1)
    parts = {
        "loss_pspi": F.mse_loss(outputs["pspi"] / MAX_PSPI, pspi / MAX_PSPI),
        "loss_thresholds": F.binary_cross_entropy_with_logits(outputs["ge_logits"], targets_ge),
        "loss_aus": F.mse_loss(outputs["aus"], aus),
    }
    parts["loss"] = weights.pspi * parts["loss_pspi"] + weights.thresholds * parts["loss_thresholds"] + weights.aus * parts["loss_aus"]
    return parts
