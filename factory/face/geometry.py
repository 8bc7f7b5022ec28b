"""Small numeric helpers over the template face that the face modules share: windows and 1D interpolation."""

from __future__ import annotations

import torch


def smoothstep(edge0: float, edge1: float, x: torch.Tensor) -> torch.Tensor:
    """0 below edge0, 1 above edge1, a smooth cubic between (edge1 < edge0 gives the falling step)."""
    t = ((x - edge0) / (edge1 - edge0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def window(x: torch.Tensor, low: float, high: float, soft: float) -> torch.Tensor:
    """1 between `low` and `high`, falling smoothly to 0 over `soft` outside them."""
    return smoothstep(low - soft, low, x) * smoothstep(high + soft, high, x)


def interpolate(x: torch.Tensor, known_x: torch.Tensor, known_y: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of values at sorted `known_x` onto `x`, constant beyond the ends.

    `known_x` (K,) with `known_y` (B, K) and `x` (M,) give (B, M); batched `known_x` (B, K), `known_y` (B, K) and
    `x` (B, M) give (B, M) too, each row with its own knots."""
    x = x.contiguous()
    right = torch.searchsorted(known_x.contiguous(), x).clamp(1, known_x.shape[-1] - 1)
    left = right - 1
    if known_x.ndim == 1:
        x0, x1, y0, y1 = known_x[left], known_x[right], known_y[:, left], known_y[:, right]
    else:
        x0, x1 = known_x.gather(-1, left), known_x.gather(-1, right)
        y0, y1 = known_y.gather(-1, left), known_y.gather(-1, right)
    t = ((x - x0) / (x1 - x0).clamp(min=1e-9)).clamp(0.0, 1.0)
    return y0 * (1 - t) + y1 * t
