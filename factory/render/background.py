"""What a render shows behind the head: a description that draws itself for a camera.

A background is anything with `image(camera) -> (size, size, 3)` sRGB in 0..1. Three kinds live in the render
package: `GradientBackground` (a vertical gradient, the same for every camera), `ImageBackground` (a given picture:
an inpainted room, a photograph) and `RoomBackground` (factory/render/room.py: a procedural room around the head, seen
through each camera with depth of field). Which one a dataset uses is `render.background` (factory/run/backgrounds.py
registers the choices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from factory.render.camera import Camera


class Background(Protocol):
    def image(self, camera: Camera) -> torch.Tensor:
        """(size, size, 3) sRGB in 0..1, for a camera of that image size."""
        ...


@dataclass(frozen=True)
class GradientBackground:
    top: tuple[float, float, float]  # sRGB in 0..1 at the top row …
    bottom: tuple[float, float, float]  # … blending linearly to this at the bottom row

    def image(self, camera: Camera) -> torch.Tensor:
        """(H, W, 3) sRGB vertical gradient from `top` to `bottom`, whatever the camera looks at."""
        size = camera.image_size
        blend = torch.linspace(0, 1, size)[:, None, None]
        top, bottom = torch.tensor(self.top), torch.tensor(self.bottom)
        return (top + blend * (bottom - top)).expand(size, size, 3)


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class ImageBackground:
    picture: torch.Tensor  # (H, W, 3) sRGB in 0..1

    def image(self, camera: Camera) -> torch.Tensor:
        """The picture at the camera's image size, whatever the camera looks at (it was made for this view)."""
        return resize_image(self.picture, camera.image_size)


def resize_image(picture: torch.Tensor, size: int) -> torch.Tensor:
    """(H, W, 3) → (size, size, 3), bilinear with antialiasing; the picture itself when it already has that size."""
    if tuple(picture.shape[:2]) == (size, size):
        return picture
    resized = torch.nn.functional.interpolate(picture.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                                              align_corners=False, antialias=True)
    return resized[0].permute(1, 2, 0).clamp(0, 1)
