"""One small function per named output layer of a rendered view (Kubric-style): rgb, segmentation, depth,
landmarks. Each takes what the renderer made (its image or Fragments) and returns plain arrays."""

from __future__ import annotations

import numpy as np
import torch

from factory.render.camera import Camera
from factory.render.raster import Fragments

# How far behind the visible surface (cm) a landmark may lie and still count as visible: covers the depth change
# across one pixel on steep surfaces (jaw line, nose sides) at 64–512 px.
LANDMARK_DEPTH_TOLERANCE_CM = 0.35


def rgb_layer(image: torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) uint8 of a rendered (N, H, W, 3) sRGB image in 0..1."""
    return (image * 255).add_(0.5).to(torch.uint8).cpu().numpy()  # values are in 0..1: +0.5 then truncation rounds


def segmentation_layer(fragments: Fragments, face_part: torch.Tensor) -> np.ndarray:
    """(N, H, W) uint8 part ids (0 = background) from the part of the visible triangle."""
    pix_to_face = fragments.pix_to_face[..., 0]
    # Part ids as uint8 first (they are < 256), gathered by index_select: both cheaper over N·H·W pixels.
    parts = face_part.to(torch.uint8).index_select(0, pix_to_face.clamp(min=0).reshape(-1)).view(pix_to_face.shape)
    return torch.where(pix_to_face >= 0, parts, 0).cpu().numpy()


def depth_layer(fragments: Fragments) -> np.ndarray:
    """(N, H, W) float32 depth along the camera axis in cm, 0 on the background."""
    zbuf = fragments.zbuf[..., 0]
    return torch.where(fragments.pix_to_face[..., 0] >= 0, zbuf, 0.0).cpu().numpy().astype(np.float32)


def landmarks_layer(points: torch.Tensor, camera: Camera, fragments: Fragments) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) pixel positions of 3D landmarks (N, 68, 3) and (N, 68) visibility: a landmark is visible when it
    falls inside the frame and no surface lies in front of it (z-buffer test)."""
    pixel, depth = camera.project(points)
    size = fragments.zbuf.shape[1]
    column = pixel[..., 0].round().long()
    row = pixel[..., 1].round().long()
    inside = (column >= 0) & (column < size) & (row >= 0) & (row < size)
    batch = torch.arange(points.shape[0], device=points.device)[:, None].expand_as(column)
    surface = fragments.zbuf[batch, row.clamp(0, size - 1), column.clamp(0, size - 1), 0]
    covered = fragments.pix_to_face[batch, row.clamp(0, size - 1), column.clamp(0, size - 1), 0] >= 0
    visible = inside & covered & (depth <= surface + LANDMARK_DEPTH_TOLERANCE_CM)
    return pixel.cpu().numpy().astype(np.float32), visible.cpu().numpy()
