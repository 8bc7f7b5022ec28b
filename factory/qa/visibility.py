"""How visible each PSPI action unit is at each intensity, measured on renders.

For one identity, `au_sweep` renders its neutral face and every PSPI AU alone at every level (AU4, AU6, AU7, AU9,
AU10 at 1…5, AU43 at 1) in all its planned views, and compares each with the neutral render of the same view:
- **landmark motion**: the mean 2D displacement (px) of the landmarks that AU moves (`AU_LANDMARKS`, factory/spec/au_regions.py);
- **pixel change**: the mean absolute RGB change (0–255) inside the AU's region, the box around its landmarks
  (`AU_REGIONS`) in the neutral render, padded by REGION_PAD of the box's size. Creases, shading and shadows
  count here, motion too.
A coder sees an AU's intensity grow when both grow with every level; bench/bench_au_visibility.py sweeps 20
identities × 3 views and tests/test_au_visibility.py checks the order on two.

    sweep = au_sweep(renderer, plan_identity(3, seed=0))
    sweep.pixel_change["AU4"]      # (levels, views) mean |Δ RGB| in AU4's region, levels 1…5
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from factory.run.identity import IdentityRenderer
from factory.spec.au_regions import AU_LANDMARKS, AU_REGIONS, REGION_PAD
from factory.spec.expressions import Expression
from factory.spec.labels import PSPI_AUS, max_intensity, pspi
from factory.spec.plan import IdentitySpec


class Sweep(NamedTuple):
    """Per AU, (levels, views) arrays: row k is level k + 1 against the neutral face."""

    landmark_motion: dict[str, np.ndarray]  # px at the render's size
    pixel_change: dict[str, np.ndarray]  # mean |Δ RGB| (0..255) in the AU's region


def sweep_expressions() -> tuple[Expression, ...]:
    """The neutral face, then each PSPI AU alone at each of its levels, named "AU4_1" …"""
    neutral = {au: 0 for au in PSPI_AUS}
    expressions = [Expression(name="neutral", aus=neutral, pspi=0)]
    for au in PSPI_AUS:
        for level in range(1, max_intensity(au) + 1):
            aus = neutral | {au: level}
            expressions.append(Expression(name=f"{au}_{level}", aus=aus, pspi=pspi(aus)))
    return tuple(expressions)


def au_sweep(renderer: IdentityRenderer, spec: IdentitySpec) -> Sweep:
    """Render `spec`'s identity in `sweep_expressions()` from its planned views and measure every AU and level."""
    expressions = sweep_expressions()
    layers = renderer.render(dataclasses.replace(spec, expressions=expressions))
    rgb = layers["rgb"].astype(np.float32)  # (X, V, H, W, 3)
    points = layers["landmarks_2d"]  # (X, V, 68, 2)
    names = [e.name for e in expressions]
    motion, change = {}, {}
    for au in PSPI_AUS:
        rows = [names.index(f"{au}_{level}") for level in range(1, max_intensity(au) + 1)]
        moved = np.linalg.norm(points[rows][:, :, AU_LANDMARKS[au]] - points[0][None, :, AU_LANDMARKS[au]], axis=-1)
        motion[au] = moved.mean(axis=-1)
        boxes = [region_box(points[0, v, AU_REGIONS[au]], rgb.shape[2]) for v in range(rgb.shape[1])]
        change[au] = np.array([[np.abs(rgb[x, v, top:bottom, left:right] - rgb[0, v, top:bottom, left:right]).mean()
                                for v, (top, bottom, left, right) in enumerate(boxes)] for x in rows])
    return Sweep(motion, change)


def region_box(points: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel bounds of the box around 2D points (K, 2), padded by REGION_PAD."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = REGION_PAD * (high - low)
    (left, top), (right, bottom) = np.floor(low - pad).astype(int), np.ceil(high + pad).astype(int) + 1
    return max(top, 0), min(bottom, size), max(left, 0), min(right, size)
