"""Small seeded draws shared by the planners."""

from __future__ import annotations

import numpy as np


def pick(rng: np.random.Generator, odds: dict[str, float]) -> str:
    """One name of `odds`, drawn with probability proportional to its weight (names in sorted order, so the draw does
    not depend on the dict's order)."""
    names = sorted(odds)
    weights = np.array([odds[n] for n in names], float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]
