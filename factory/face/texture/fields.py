"""Scalar fields over the template face (cm) and over texture space, from which texture regions are made."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class ValueNoise:
    """Smooth 3D value noise over a box: random values on a lattice of `cell_cm` cells, interpolated.

    Evaluated at the template point of each texel, it runs across UV seams without a visible cut."""

    def __init__(self, rng: np.random.Generator, low: torch.Tensor, high: torch.Tensor, cell_cm: float):
        self.low, self.span = low, (high - low)
        counts = [int(math.ceil(float(s) / cell_cm)) + 2 for s in self.span]
        lattice = rng.random((counts[2], counts[1], counts[0]), dtype=np.float32) * 2 - 1  # z, y, x
        self.lattice = torch.from_numpy(lattice)[None, None]

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) cm → (...,) values in -1..1."""
        grid = (points - self.low) / self.span * 2 - 1
        sampled = F.grid_sample(self.lattice, grid.reshape(1, 1, 1, -1, 3), mode="bilinear", align_corners=True)
        return sampled.reshape(points.shape[:-1])


def gaussian(points: torch.Tensor, centre, sigma) -> torch.Tensor:
    """Anisotropic Gaussian bump (peak 1) around `centre`; sigma per axis in cm."""
    d = (points - torch.as_tensor(centre, dtype=points.dtype)) / torch.as_tensor(sigma, dtype=points.dtype)
    return torch.exp(-0.5 * (d * d).sum(dim=-1))


def segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(P,) distance of each point to the segment from `a` to `b`."""
    return segment_projection(points, a, b)[0]


def segment_projection(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) distance of each point to the segment from `a` to `b`, and (P,) where its nearest point lies on it (0 at
    `a`, 1 at `b`)."""
    ab = b - a
    t = (((points - a) * ab).sum(-1) / (ab * ab).sum()).clamp(0, 1)
    return (points - (a + t[..., None] * ab)).norm(dim=-1), t


def blur(mask: torch.Tensor, sigma_texels: float) -> torch.Tensor:
    """Separable Gaussian blur of a (S, S) map: soft region edges in texture space."""
    radius = max(1, int(3 * sigma_texels))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma_texels) ** 2)
    kernel = kernel / kernel.sum()
    image = mask[None, None].float()
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    image = F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return image[0, 0]
