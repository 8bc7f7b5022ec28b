"""What every texturer is: it owns the UV atlas of its face model and turns a planned skin into a `Texture`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from factory.face.model import FaceModel
from factory.face.texture.atlas import UVAtlas
from factory.spec.plan import Demographics, Hair, Skin


@dataclass(frozen=True)
class Texture:
    image: torch.Tensor  # (S, S, 3) float32 sRGB in 0..1, row 0 = v 1 (top of the image)
    parameters: dict  # what made it, for meta.json


class Texturer:
    """A texturer owns the UV atlas of its face model and turns (skin plan, demographics) into a Texture; given the
    planned hair, it paints the scalp to match (hairline, thinning crown, shaved), else a generic short crop."""

    name: str = ""

    def __init__(self, model: FaceModel, texture_size: int = 1024):
        if not 64 <= texture_size <= 8192:
            raise ValueError(f"texture_size must be 64..8192, got {texture_size}")
        self.model = model
        self.texture_size = texture_size
        self.atlas = UVAtlas.build(model, texture_size)

    def texture(self, plan: Skin, demographics: Demographics, hair: Hair | None = None) -> Texture:
        raise NotImplementedError
