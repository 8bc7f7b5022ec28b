"""What crosses between the render workers and the diffusion models: small, picklable jobs and their images.

    PortraitJob(prompt, negative_prompt, seed, depth)      → (S, S, 3) uint8 portrait   (the `diffusion` texturer)
    InpaintJob(prompt, negative_prompt, seed, image, mask)  → (S, S, 3) uint8 image      (the `inpaint` background)

A job holds everything its image depends on, so any diffusion actor (or an in-process `DiffusionModels`) can make
it, in any batch: each job has its own seeded generator, so the same job gives the same starting latents whatever
else shares its batch. `DiffusionOutputs` is what one identity's render gets back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare as one boolean
class PortraitJob:
    prompt: str
    negative_prompt: str
    seed: int
    depth: np.ndarray  # (S, S) uint8 ControlNet depth: near is bright, the background 0

    def __post_init__(self) -> None:
        if self.depth.ndim != 2 or self.depth.dtype != np.uint8:
            raise ValueError(f"a portrait job's depth must be a (S, S) uint8 image, got {self.depth.dtype} {self.depth.shape}")


@dataclass(frozen=True, eq=False)
class InpaintJob:
    prompt: str
    negative_prompt: str
    seed: int
    image: np.ndarray  # (S, S, 3) uint8: what is kept (the head) and what the model sees around the hole
    mask: np.ndarray  # (S, S) bool: True where the model paints

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.dtype != np.uint8 or self.mask.shape != self.image.shape[:2] or self.mask.dtype != bool:
            raise ValueError(f"an inpaint job needs a (S, S, 3) uint8 image and a (S, S) bool mask, got "
                             f"{self.image.dtype} {self.image.shape} and {self.mask.dtype} {self.mask.shape}")


@dataclass(frozen=True)
class DiffusionOutputs:
    """What the diffusion stage made for one identity, in the order the renderer asks for them."""

    portraits: tuple[np.ndarray, ...] = ()  # one (S, S, 3) uint8 per texture view yaw
    backgrounds: tuple[np.ndarray, ...] = ()  # one (H, W, 3) uint8 per planned view, at the render's image size
    background_parameters: dict = field(default_factory=dict)  # what made the backgrounds, for meta.json


def job_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (dataset seed, identity index, stream, view …) by NumPy's SeedSequence,
    so neighbouring identities and views get unrelated noise."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))
