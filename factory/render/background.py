"""What a render shows behind the head: a description that draws itself at the image size.

A background is anything with `image(size) -> (size, size, 3)` sRGB in 0..1; the factory's default is a vertical
gradient. (A photograph or an inpainted room would be one more class with the same method.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


class Background(Protocol):
    def image(self, size: int) -> torch.Tensor:
        """(size, size, 3) sRGB in 0..1."""
        ...


@dataclass(frozen=True)
class GradientBackground:
    top: tuple[float, float, float]  # sRGB in 0..1 at the top row …
    bottom: tuple[float, float, float]  # … blending linearly to this at the bottom row

    def image(self, size: int) -> torch.Tensor:
        """(H, W, 3) sRGB vertical gradient from `top` to `bottom`."""
        blend = torch.linspace(0, 1, size)[:, None, None]
        top, bottom = torch.tensor(self.top), torch.tensor(self.bottom)
        return (top + blend * (bottom - top)).expand(size, size, 3)
