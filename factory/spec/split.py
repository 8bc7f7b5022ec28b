"""The identity-disjoint train/val/test split: which split an identity belongs to, from a seeded hash of its id.

One function for everyone who splits a dataset: the trainer (which pairs it trains and evaluates on) and
`factory export` (the splits.csv of the official ViTPain layout, the Hugging Face splits), so an exported split is
exactly the split the trainer uses. It depends on nothing but the identity id, so it is independent of shard
layout, worker count and dataset size (70/20/10 by default, the paper's proportions).

    SplitConfig(seed=0).split_of("id-0000123")   → "train", "val" or "test"
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0 or not math.isclose(sum(self.fractions), 1.0):
            raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {self.fractions}")

    def split_of(self, identity: str) -> str:
        """'train', 'val' or 'test' for an identity id, from a seeded hash: stable across runs and machines."""
        digest = hashlib.sha256(f"{self.seed}:{identity}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        train, val, _ = self.fractions
        return "train" if position < train else "val" if position < train + val else "test"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split
