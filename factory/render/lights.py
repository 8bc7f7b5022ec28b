"""The light of a render: one directional key light, coloured by its colour temperature, plus an ambient share.

    light = Light.from_angles(azimuth_deg=-30, elevation_deg=20, kelvin=5500, intensity=1.0, ambient=0.3)

Angles are in world space (the face model's: +y up, the face looks toward +z): azimuth 0 lights the face from
the front, positive azimuth from the face's left (+x); elevation is above the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

GAMMA = 2.2  # sRGB ↔ linear light, as a plain power law
LUMA = torch.tensor([0.2126, 0.7152, 0.0722])  # Rec. 709 luminance of linear RGB


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Light:
    direction: torch.Tensor  # (3,) world-space unit vector toward the light
    colour: torch.Tensor  # (3,) linear RGB of the key light; its luminance is the light's intensity
    ambient: float  # share of the albedo lit whatever the surface's direction, 0..1

    @classmethod
    def from_angles(cls, azimuth_deg: float, elevation_deg: float, kelvin: float, intensity: float, ambient: float) -> "Light":
        return cls(direction=direction_toward(azimuth_deg, elevation_deg), colour=kelvin_to_rgb(kelvin) * intensity,
                   ambient=ambient)


def direction_toward(azimuth_deg: float, elevation_deg: float) -> torch.Tensor:
    """World-space unit vector toward a light at these angles (see the module docstring)."""
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    return torch.tensor([math.sin(azimuth) * math.cos(elevation), math.sin(elevation), math.cos(azimuth) * math.cos(elevation)])


def kelvin_to_rgb(kelvin: float) -> torch.Tensor:
    """Linear RGB of a black body at `kelvin`, scaled to unit luminance (Tanner Helland's fit of the CIE table)."""
    t = kelvin / 100.0
    red = 1.0 if t <= 66 else min(1.0, 1.292936186 * (t - 60) ** -0.1332047592)
    green = 0.390081579 * math.log(t) - 0.631841444 if t <= 66 else 1.129890861 * (t - 60) ** -0.0755148492
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.543206789 * math.log(t - 10) - 1.196254089)
    srgb = torch.tensor([red, min(max(green, 0.0), 1.0), min(max(blue, 0.0), 1.0)])
    linear = srgb ** GAMMA
    return linear / (linear @ LUMA)
