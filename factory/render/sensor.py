"""What the camera's sensor and lens do to a rendered image: a slight defocus and sensor noise.

    images = expose(images, Sensor(defocus_px=0.5, noise=0.012, seed=42))   # (N, H, W, 3) sRGB in 0..1

Real photographs are never pixel-clean: the face is a little soft (focus, motion, the lens) and every pixel carries
noise, stronger in the shadows' relative terms and partly coloured. Both are cheap here:
- defocus is a separable 3-tap binomial-like blur whose variance is defocus_px² (small blurs only, up to about
  0.8 px: a soft image, not a blurred one), done with shifted adds over the whole batch;
- noise comes from one fixed tile of Gaussian noise per image size (drawn once per process from a fixed seed) read
  at a seeded offset per image, so each image gets different noise without drawing millions of normals per image.
  Most of it is luminance noise (the same on R, G and B), the rest chroma noise.
The offsets are drawn from (seed, image index), so the same sensor gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from factory.render import compiled

TILE_MARGIN = 128  # the noise tile is this much larger than the image: offsets in 0..TILE_MARGIN-1 on each axis
NOISE_TILE_SEED = 0x5E5
LUMA_SHARE, CHROMA_SHARE = 0.85, 0.35  # how the noise splits between grey and coloured
MAX_DEFOCUS_PX = 0.8
MIN_DEFOCUS_PX = 0.25


@dataclass(frozen=True)
class Sensor:
    defocus_px: float  # Gaussian sigma of the whole image's blur, in pixels (0 … MAX_DEFOCUS_PX)
    noise: float  # standard deviation of the noise on a mid-grey pixel, in sRGB units (0..1)
    seed: int  # chooses each image's noise

    def __post_init__(self) -> None:
        if not 0 <= self.defocus_px <= MAX_DEFOCUS_PX or not 0 <= self.noise < 0.2:
            raise ValueError(f"Sensor needs defocus_px in 0..{MAX_DEFOCUS_PX} and noise in [0, 0.2), got "
                             f"{self.defocus_px} and {self.noise}")


def expose(images: torch.Tensor, sensor: Sensor) -> torch.Tensor:
    """(N, H, W, 3) sRGB images in 0..1 → the same with the sensor's defocus and noise, clamped to 0..1. On a CPU in
    one compiled pass (factory/render/loops.py), with the same results as the steps below."""
    if compiled.runs_on(images):
        return expose_compiled(images, sensor)
    images = defocus(images, sensor.defocus_px)
    if sensor.noise > 0:
        images = add_sensor_noise(images, sensor)
    return images.clamp(0, 1)


def expose_compiled(images: torch.Tensor, sensor: Sensor) -> torch.Tensor:
    loops = compiled.loops()
    count, height, width, _ = images.shape
    add_noise = sensor.noise > 0
    tile = noise_tile(max(height, width)) if add_noise else torch.zeros(1, 1, 3)
    weight = blur_weight(sensor.defocus_px)  # Python floats, as the torch steps take them; the loop's are float32
    slope, floor, cap = noise_level(sensor)
    out = torch.empty(images.shape, dtype=torch.float32)
    loops.expose(images.float().contiguous().numpy(), sensor.defocus_px >= MIN_DEFOCUS_PX, np.float32(1 - 2 * weight),
                 np.float32(weight), add_noise, tile.numpy(), noise_offsets(sensor, count), np.float32(slope),
                 np.float32(floor), np.float32(cap), out.numpy())
    return out


def blur_weight(sigma: float) -> float:
    """w of the defocus kernel (w, 1 - 2w, w) whose variance is sigma² per axis."""
    return sigma * sigma / 2


def noise_level(sensor: Sensor) -> tuple[float, float, float]:
    """The noise's strength over a pixel's mean value m: min(slope·m + floor, cap), stronger in the mid-tones than
    at black (a sensor's shot noise, after the camera's tone curve)."""
    return 1.3 * sensor.noise, 0.35 * sensor.noise, sensor.noise


def defocus(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur along x then y with the kernel (w, 1 - 2w, w), w = sigma² / 2: its variance is sigma² per axis (edge
    pixels count themselves as their missing neighbour). Below MIN_DEFOCUS_PX a blur would not show: none is done."""
    if sigma < MIN_DEFOCUS_PX:
        return images
    weight = blur_weight(sigma)
    for axis in (2, 1):
        size = images.shape[axis]
        out = images * (1 - 2 * weight)
        out.narrow(axis, 1, size - 1).add_(images.narrow(axis, 0, size - 1), alpha=weight)
        out.narrow(axis, 0, size - 1).add_(images.narrow(axis, 1, size - 1), alpha=weight)
        out.narrow(axis, 0, 1).add_(images.narrow(axis, 0, 1), alpha=weight)
        out.narrow(axis, size - 1, 1).add_(images.narrow(axis, size - 1, 1), alpha=weight)
        images = out
    return images


@lru_cache(maxsize=4)
def noise_tile(size: int) -> torch.Tensor:
    """(size + TILE_MARGIN, size + TILE_MARGIN, 3) sensor noise of unit strength, the same in every process: standard
    normal noise mixed into a luminance part (the same on R, G and B) and a chroma part."""
    side = size + TILE_MARGIN
    noise = torch.from_numpy(np.random.default_rng(NOISE_TILE_SEED).standard_normal((side, side, 3), dtype=np.float32))
    grey = noise.mean(dim=-1, keepdim=True) * (3 ** 0.5)
    return LUMA_SHARE * grey + CHROMA_SHARE * noise


def noise_offsets(sensor: Sensor, count: int) -> np.ndarray:
    """(count, 2) row and column of each image's noise in the tile, drawn from the sensor's seed."""
    return np.random.default_rng([sensor.seed, 0x7011]).integers(0, TILE_MARGIN, size=(count, 2))


def add_sensor_noise(images: torch.Tensor, sensor: Sensor) -> torch.Tensor:
    """(N, H, W, 3) images plus each one's noise: the tile at a seeded offset, times `noise_level`. One fused
    multiply-add per image."""
    count, height, width, _ = images.shape
    tile = noise_tile(max(height, width)).to(images.device)
    offsets = noise_offsets(sensor, count)
    slope, floor, cap = noise_level(sensor)
    level = images.mean(dim=-1, keepdim=True).mul_(slope).add_(floor).clamp_(max=cap)
    noisy = torch.empty_like(images)
    for image, (row, column) in enumerate(offsets.tolist()):
        torch.addcmul(images[image], tile[row:row + height, column:column + width], level[image], out=noisy[image])
    return noisy
