"""Reference colours of the procedural texturer (sRGB in 0..1), and the two that depend on the identity."""

from __future__ import annotations

import math

import numpy as np
import torch

# sRGB skin references along the Fitzpatrick scale, I to VI (forehead/cheek averages of measured skin, rounded);
# Skin.tone runs 0..1 through them.
FITZPATRICK_SRGB = np.array([
    [241, 211, 190], [228, 188, 158], [210, 161, 124], [176, 124, 88], [124, 83, 56], [78, 52, 38],
]) / 255.0
HAIR_SRGB = {
    "black": (0.06, 0.05, 0.05), "dark_brown": (0.17, 0.11, 0.08), "brown": (0.32, 0.21, 0.13),
    "blond": (0.66, 0.53, 0.33), "red": (0.55, 0.24, 0.12), "gray": (0.55, 0.54, 0.53), "white": (0.80, 0.79, 0.76),
}
GREYING = ("gray", "white")  # hair that has lost its pigment: as light on dark skin as on fair
IRIS_SRGB = {
    "dark_brown": (0.18, 0.10, 0.05), "brown": (0.35, 0.20, 0.09), "hazel": (0.45, 0.35, 0.16),
    "green": (0.30, 0.45, 0.28), "blue": (0.33, 0.48, 0.66), "gray": (0.50, 0.55, 0.58),
}
SCLERA_SRGB = (0.92, 0.89, 0.86)
PUPIL_SRGB = (0.02, 0.02, 0.025)
TEETH_SRGB = (0.93, 0.89, 0.80)
GUMS_SRGB = (0.78, 0.40, 0.42)
MOUTH_SRGB = (0.30, 0.08, 0.09)
# Undertone shifts per unit of |undertone|, relative to the colour's mean: warm toward yellow/olive, cool toward pink.
WARM_SHIFT = np.array([0.01, 0.015, -0.035])
COOL_SHIFT = np.array([0.02, -0.02, 0.0])
LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 luminance weights
HAIR_LUMA_CEILING = 0.4  # hair is never lighter than this share of the skin's luminance


def skin_base_srgb(tone: float, undertone: float) -> np.ndarray:
    """Base skin colour: piecewise-linear in tone through the Fitzpatrick references, then the undertone shifts
    toward yellow/olive (warm, +1) or pink (cool, -1)."""
    position = float(np.clip(tone, 0, 1)) * (len(FITZPATRICK_SRGB) - 1)
    low = int(min(math.floor(position), len(FITZPATRICK_SRGB) - 2))
    colour = FITZPATRICK_SRGB[low] + (position - low) * (FITZPATRICK_SRGB[low + 1] - FITZPATRICK_SRGB[low])
    shift = WARM_SHIFT if undertone >= 0 else COOL_SHIFT
    return np.clip(colour * (1 + abs(undertone) * shift / colour.mean()), 0, 1)


def hair_srgb(name: str, skin_srgb: np.ndarray) -> torch.Tensor:
    """Brow, lash and scalp hair colour: the named colour, darkened where needed so that hair is never lighter
    than 40 % of the skin's luminance (light-brown brows on very dark skin read as pale patches); grey and white hair
    has no pigment left and stays as light as named."""
    hair = np.array(HAIR_SRGB[name])
    if name in GREYING:
        return torch.tensor(hair, dtype=torch.float32)
    ceiling = HAIR_LUMA_CEILING * float(skin_srgb @ LUMA)
    return torch.tensor(hair * min(1.0, ceiling / float(hair @ LUMA)), dtype=torch.float32)
