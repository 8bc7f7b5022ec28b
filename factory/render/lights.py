"""The light of a render: a coloured key light that casts soft shadows, an optional fill light, and an ambient share
that is brighter from above than from below (sky and floor).

    light = Light.from_angles(azimuth_deg=-30, elevation_deg=20, kelvin=5500, intensity=1.0, ambient=0.3)
    light = Light.from_angles(..., softness_deg=8, fill=Lamp.from_angles(40, 10, kelvin=6500, intensity=0.3),
                              sky=0.25)

Angles are in world space (the face model's: +y up, the face looks toward +z): azimuth 0 lights the face from
the front, positive azimuth from the face's left (+x); elevation is above the horizon.

The shader splits the light a surface gets into `ambient` (scaled by the surface's ambient occlusion and by
1 + sky · n_y, so undersides such as the neck below the chin get less of it) and `1 - ambient` of direct light:
the key (scaled by its shadow visibility) plus the fill (a broad source: scaled by occlusion, casts no shadow).
`softness_deg` is the key light's angular radius: 0 is a point light (hard shadows), a window is 10° or more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

GAMMA = 2.2  # sRGB ↔ linear light, as a plain power law
LUMA = torch.tensor([0.2126, 0.7152, 0.0722])  # Rec. 709 luminance of linear RGB


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Lamp:
    """A directional light without shadows (the fill)."""

    direction: torch.Tensor  # (3,) world-space unit vector toward the light
    colour: torch.Tensor  # (3,) linear RGB; its luminance is the lamp's intensity

    @classmethod
    def from_angles(cls, azimuth_deg: float, elevation_deg: float, kelvin: float, intensity: float) -> "Lamp":
        return cls(direction=direction_toward(azimuth_deg, elevation_deg), colour=kelvin_to_rgb(kelvin) * intensity)


NO_FILL = Lamp(direction=torch.tensor([0.0, 0.0, 1.0]), colour=torch.zeros(3))


@dataclass(frozen=True, eq=False)
class Light:
    direction: torch.Tensor  # (3,) world-space unit vector toward the key light
    colour: torch.Tensor  # (3,) linear RGB of the key light; its luminance is the light's intensity
    ambient: float  # share of the albedo lit whatever the surface's direction, 0..1
    softness_deg: float = 0.0  # the key light's angular radius: how soft its shadows are
    fill: Lamp = field(default=NO_FILL)
    sky: float = 0.0  # ambient on surfaces facing up is 1 + sky times that on vertical ones, facing down 1 - sky

    def __post_init__(self) -> None:
        if not 0 <= self.ambient <= 1 or not 0 <= self.sky < 1 or not 0 <= self.softness_deg < 45:
            raise ValueError(f"Light needs ambient in 0..1, sky in [0, 1) and softness_deg in [0, 45), got "
                             f"{self.ambient}, {self.sky}, {self.softness_deg}")

    @classmethod
    def from_angles(cls, azimuth_deg: float, elevation_deg: float, kelvin: float, intensity: float, ambient: float,
                    softness_deg: float = 0.0, fill: Lamp = NO_FILL, sky: float = 0.0) -> "Light":
        return cls(direction=direction_toward(azimuth_deg, elevation_deg), colour=kelvin_to_rgb(kelvin) * intensity,
                   ambient=ambient, softness_deg=softness_deg, fill=fill, sky=sky)


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
