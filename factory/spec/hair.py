"""Planned hair: the style of an identity's scalp hair and its facial hair (the colour is `Skin.hair`).

    hair = draw_hair(rng, demographics, facial_hair_rate=0.4)
    hair.style          # "buzz", "short", "medium", "long", "long_tied", "bald_pattern" or "shaved"
    hair.facial         # "none", "stubble", "moustache", "goatee" or "beard" (men only)

Styles by gender, and men's hair thinning with age: the share of men with a bald pattern (a receding hairline at the
temples and a thin crown, short at the sides) rises from 5 % under 30 to half over 60, and every man's hairline
recedes a little with age; after 60 everyone's crown thins further (`elder_factor`). A share `facial_hair_rate` of
men have facial hair (default 40 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory.spec.sampling import pick

SCALP_STYLES = ("buzz", "short", "medium", "long", "long_tied", "bald_pattern", "shaved")
FACIAL_STYLES = ("none", "stubble", "moustache", "goatee", "beard")
STYLE_ODDS = {
    "female": {"buzz": 0.2, "short": 2.0, "medium": 2.5, "long": 4.0, "long_tied": 3.0},
    "male": {"buzz": 2.5, "short": 5.0, "medium": 2.0, "long": 0.2, "long_tied": 0.2, "shaved": 0.3},
}
BALD_PATTERN_SHARE = ((30, 0.05), (45, 0.15), (60, 0.35), (200, 0.5))  # men younger than … : share with a bald pattern
ELDER_THINNING = (0.3, 0.45)  # men's, women's: how much more of the crown's hair may be gone at 90 than at 60
FACIAL_ODDS = {"stubble": 4.0, "beard": 3.0, "moustache": 1.5, "goatee": 1.5}
# Thickness of the hair over the crown (cm) per style, and of the facial hair per facial style.
LENGTH_CM = {"buzz": (0.12, 0.3), "short": (0.6, 1.3), "medium": (1.5, 2.8), "long": (0.8, 1.4),
             "long_tied": (0.5, 0.9), "bald_pattern": (0.3, 0.8), "shaved": (0.0, 0.0)}
DROP_CM = (14.0, 26.0)  # how far long hair falls below the temples
FACIAL_LENGTH_CM = {"none": (0.0, 0.0), "stubble": (0.0, 0.0), "moustache": (0.3, 0.7), "goatee": (0.4, 1.0),
                    "beard": (0.3, 1.0)}


@dataclass(frozen=True)
class Hair:
    style: str  # one of SCALP_STYLES
    length_cm: float  # thickness of the hair over the crown
    drop_cm: float  # how far long hair falls below the temples (0 for the other styles)
    hairline_cm: float  # how far the hairline sits above the face model's (negative: lower); receding with age
    thinning: float  # 0..1, how much of the crown's hair is gone
    parting: float  # -1..1: where the strands part, from the face's right to its left; 0 = a whorl at the crown
    facial: str  # one of FACIAL_STYLES
    facial_length_cm: float  # thickness of a beard, moustache or goatee (stubble has none)
    seed: int  # the strands' pattern


ELDER_FROM, ELDER_FULL = 60, 90  # years: the changes of old age start, and are full


def elder_factor(age: float) -> float:
    """0 up to ELDER_FROM years, 1 at ELDER_FULL: how far the changes of old age have gone (thinning and greying
    hair, skin laxity in factory/face/ageing.py, age spots in the procedural texture)."""
    return min(1.0, max(0.0, (age - ELDER_FROM) / (ELDER_FULL - ELDER_FROM)))


def draw_hair(rng: np.random.Generator, gender: str, age: int, facial_hair_rate: float) -> Hair:
    """One identity's hair, from its own stream (see plan_identity for the order of draws)."""
    male = gender == "male"
    aging, elder = float(np.clip((age - 25) / 55, 0, 1)), elder_factor(age)
    bald_share = next(share for below, share in BALD_PATTERN_SHARE if age < below)
    if male and rng.random() < bald_share:
        style = "bald_pattern"
    else:
        style = pick(rng, STYLE_ODDS.get(gender, STYLE_ODDS["female"]))
    low, high = LENGTH_CM[style]
    if style == "bald_pattern":
        hairline, thinning = rng.uniform(1.5, 3.5), rng.uniform(0.6, 1.0)
    elif male:
        hairline, thinning = rng.uniform(-0.2, 0.4) + 1.2 * aging * rng.random(), (0.4 * aging + ELDER_THINNING[0] * elder) * rng.random()
    else:
        hairline, thinning = rng.uniform(-0.4, 0.3), (0.1 * aging + ELDER_THINNING[1] * elder) * rng.random()
    facial = "none"
    if male and rng.random() < facial_hair_rate:
        facial = pick(rng, FACIAL_ODDS)
    facial_low, facial_high = FACIAL_LENGTH_CM[facial]
    drop = float(rng.uniform(*DROP_CM)) if style == "long" else 0.0
    return Hair(style=style, length_cm=round(float(rng.uniform(low, high)), 3), drop_cm=round(drop, 2),
                hairline_cm=round(float(hairline), 3),
                thinning=round(float(thinning), 3), parting=round(float(rng.uniform(-1, 1)), 3), facial=facial,
                facial_length_cm=round(float(rng.uniform(facial_low, facial_high)), 3),
                seed=int(rng.integers(0, 2**31 - 1)))
