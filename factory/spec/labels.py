"""Facial action units and the Prkachin–Solomon Pain Intensity (PSPI).

PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, from 0 to 16. AU4, AU6, AU7, AU9 and AU10 are FACS
intensities 0 (absent) … 5 (maximum, the A–E scale plus one); AU43 (eyes closed) is 0 or 1.
Other AUs make faces varied and serve as hard negatives; they never change the PSPI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

PSPI_AUS = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")
# Every AU the rig can drive, in numeric order. The PSPI ones are among them.
RIG_AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26", "AU27", "AU43")
NON_PSPI_AUS = tuple(au for au in RIG_AUS if au not in PSPI_AUS)
BINARY_AUS = ("AU43",)
MAX_INTENSITY = 5
MAX_PSPI = 16
PSPI_THRESHOLDS = (1, 2, 3)  # the binary pain levels the paper reports and ViTPain predicts: PSPI ≥ 1, ≥ 2, ≥ 3
AU_NAMES = {
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer", "AU5": "upper lid raiser",
    "AU6": "cheek raiser", "AU7": "lid tightener", "AU9": "nose wrinkler", "AU10": "upper lip raiser",
    "AU12": "lip corner puller", "AU15": "lip corner depressor", "AU17": "chin raiser", "AU20": "lip stretcher",
    "AU25": "lips part", "AU26": "jaw drop", "AU27": "mouth stretch", "AU43": "eyes closed",
}


def max_intensity(au: str) -> int:
    return 1 if au in BINARY_AUS else MAX_INTENSITY


def validate_aus(aus: Mapping[str, int]) -> dict[str, int]:
    """The same mapping with every value an int in range; a clear error naming the first bad entry, whatever
    the value (labels also come from datasets' meta.json: NaN, infinities, strings, null)."""
    checked = {}
    for au, value in aus.items():
        if au not in RIG_AUS:
            raise ValueError(f"unknown action unit {au!r}; known: {', '.join(RIG_AUS)}")
        is_number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
        if not is_number or int(value) != value or not 0 <= value <= max_intensity(au):
            raise ValueError(f"{au} must be an integer from 0 to {max_intensity(au)}, got {value!r}")
        checked[au] = int(value)
    return checked


def pspi(aus: Mapping[str, int]) -> int:
    """PSPI of an AU mapping; AUs that are absent count as 0."""
    aus = validate_aus(aus)
    get = lambda au: aus.get(au, 0)  # noqa: E731
    return get("AU4") + max(get("AU6"), get("AU7")) + max(get("AU9"), get("AU10")) + get("AU43")
