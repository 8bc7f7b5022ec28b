"""The expression sampler: an identity's neutral face and its pain expressions, as AU intensities.

A pain expression is drawn in two steps, so that one PSPI comes with many AU patterns:
1. its PSPI from the requested distribution (default: uniform over 1..16);
2. one decomposition PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, uniformly among all that exist,
   then which AU of each max-pair carries the maximum and how strong the other one is.
Optional extras (lip stretcher, lips part, jaw drop) make faces varied without changing the PSPI, and optional
hard negatives are PSPI-0 expressions made of non-PSPI AUs only (brow raise, smile, frown, …).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory.options import ConfigError, build
from factory.spec.labels import MAX_INTENSITY, MAX_PSPI, PSPI_AUS, pspi, validate_aus

# AUs added for realism to pain faces (each independently with probability `extra_au_rate`).
REALISM_AUS = ("AU20", "AU25", "AU26")
# AUs that hard negatives are made of: strong facial motion that is not pain.
HARD_NEGATIVE_AUS = ("AU1", "AU2", "AU5", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26", "AU27")


NEUTRAL = "neutral"  # the name of every identity's reference expression
MAX_EXPRESSIONS = 100  # pain and hard-negative expressions per identity: two-digit names, pain00 … pain99


@dataclass(frozen=True)
class Expression:
    name: str  # "neutral", "pain00" … "pain09", "neg00" …
    aus: dict[str, int]  # every AU that was set; the six PSPI AUs are always listed, zeros included
    pspi: int
    hard_negative: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> "Expression":
        aus = validate_aus(data["aus"])
        if pspi(aus) != data["pspi"]:
            raise ValueError(f"expression {data['name']!r}: pspi {data['pspi']} disagrees with its AUs (formula gives {pspi(aus)})")
        return cls(name=data["name"], aus=aus, pspi=data["pspi"], hard_negative=bool(data.get("hard_negative", False)))


@dataclass(frozen=True)
class ExpressionConfig:
    pain_expressions: int = 10
    hard_negatives: int = 0  # extra PSPI-0 expressions per identity, marked hard_negative
    pspi_weights: tuple[float, ...] = (0.0,) + (1.0,) * MAX_PSPI  # index = PSPI 0..16
    extra_au_rate: float = 0.25

    def __post_init__(self) -> None:
        if self.pain_expressions < 0 or self.hard_negatives < 0 or self.pain_expressions + self.hard_negatives == 0:
            raise ConfigError("pain_expressions and hard_negatives must be >= 0 and not both 0")
        if self.pain_expressions + self.hard_negatives > MAX_EXPRESSIONS:
            raise ConfigError(f"pain_expressions + hard_negatives must be <= {MAX_EXPRESSIONS} (names pain00…pain99), "
                              f"got {self.pain_expressions + self.hard_negatives}")
        if len(self.pspi_weights) != MAX_PSPI + 1 or min(self.pspi_weights) < 0 or sum(self.pspi_weights) <= 0:
            raise ConfigError(f"pspi_weights needs {MAX_PSPI + 1} non-negative weights (PSPI 0..{MAX_PSPI}) with a positive sum")
        if not 0 <= self.extra_au_rate <= 1:
            raise ConfigError(f"extra_au_rate must be in [0, 1], got {self.extra_au_rate}")

    @classmethod
    def from_dict(cls, data: dict, where: str = "expressions") -> "ExpressionConfig":
        """From a YAML mapping (types checked and named by factory.options.build); `pspi_weights` may also be a
        mapping {pspi: weight}, PSPI values not named getting weight 0."""
        data = dict(data)
        weights = data.get("pspi_weights")
        if isinstance(weights, dict):
            bad = [k for k in weights if not str(k).isdigit() or not 0 <= int(k) <= MAX_PSPI]  # "AU4" is not a PSPI value
            if bad:
                raise ConfigError(f"{where}.pspi_weights keys must be PSPI values 0..{MAX_PSPI}, got {bad}")
            data["pspi_weights"] = [weights.get(p, weights.get(str(p), 0.0)) for p in range(MAX_PSPI + 1)]
        return build(cls, data, where)


def neutral_expression() -> Expression:
    return Expression(name=NEUTRAL, aus={au: 0 for au in PSPI_AUS}, pspi=0)


def decompositions(target: int) -> list[tuple[int, int, int, int]]:
    """Every (AU4, max(AU6, AU7), max(AU9, AU10), AU43) whose PSPI is `target`."""
    levels = range(MAX_INTENSITY + 1)
    return [(a4, m67, m910, a43) for a4 in levels for m67 in levels for m910 in levels for a43 in (0, 1)
            if a4 + m67 + m910 + a43 == target]


def pain_aus(rng: np.random.Generator, target: int, extra_au_rate: float) -> dict[str, int]:
    options = decompositions(target)
    a4, m67, m910, a43 = options[int(rng.integers(len(options)))]
    aus = {"AU4": a4, "AU43": a43}
    for pair, peak in ((("AU6", "AU7"), m67), (("AU9", "AU10"), m910)):
        strong = int(rng.integers(2))
        aus[pair[strong]] = peak
        aus[pair[1 - strong]] = int(rng.integers(peak + 1))
    for au in REALISM_AUS:
        if rng.random() < extra_au_rate:
            aus[au] = int(rng.integers(1, 4))
    return aus


def hard_negative_aus(rng: np.random.Generator) -> dict[str, int]:
    chosen = rng.choice(len(HARD_NEGATIVE_AUS), size=int(rng.integers(1, 4)), replace=False)
    aus = {au: 0 for au in PSPI_AUS}
    for k in sorted(chosen):
        aus[HARD_NEGATIVE_AUS[k]] = int(rng.integers(2, MAX_INTENSITY + 1))
    return aus


def sample_expressions(rng: np.random.Generator, config: ExpressionConfig) -> tuple[Expression, ...]:
    weights = np.asarray(config.pspi_weights, float)
    expressions = [neutral_expression()]
    for k in range(config.pain_expressions):
        target = int(rng.choice(len(weights), p=weights / weights.sum()))
        aus = validate_aus(pain_aus(rng, target, config.extra_au_rate))
        expressions.append(Expression(name=f"pain{k:02d}", aus=dict(sorted(aus.items(), key=_au_order)), pspi=pspi(aus)))
    for k in range(config.hard_negatives):
        aus = validate_aus(hard_negative_aus(rng))
        expressions.append(Expression(name=f"neg{k:02d}", aus=dict(sorted(aus.items(), key=_au_order)), pspi=0, hard_negative=True))
    return tuple(expressions)


def _au_order(item: tuple[str, int]) -> int:
    return int(item[0][2:])
