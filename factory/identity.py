"""THROWAWAY stand-in for the `look` branch's renderer, deleted when look is merged (same interface)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 512
    texturer: str = "procedural"
    texture_size: int = 1024
    backend: str = "auto"
    jpeg_quality: int = 92
    device: str = "auto"

    def __post_init__(self):
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.texturer not in ("procedural", "diffusion"):
            raise ValueError(f"unknown texturer {self.texturer!r}")

    @classmethod
    def from_dict(cls, data):
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown render option(s): {', '.join(sorted(unknown))}")
        return cls(**data)


class IdentityRenderer:
    def __init__(self, config: RenderConfig):
        self.config = config

    def render(self, spec):
        rng = np.random.default_rng([spec.seed, spec.index, 7])
        size = self.config.image_size
        layers = {}
        for expression in spec.expressions:
            for view in spec.views:
                layers[f"{expression.name}.{view.name}.jpg"] = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        return layers

    def encode_sample(self, spec, layers):
        members = {"meta.json": json.dumps({**spec.to_dict(), "image_size": self.config.image_size}, sort_keys=True).encode()}
        for name, pixels in layers.items():
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=self.config.jpeg_quality)
            members[name] = buffer.getvalue()
        return members
