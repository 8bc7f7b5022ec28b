"""Seeded identity plans: who each synthetic person is, and what they are asked to do.

A plan is a pure function of (seed, index, PlanConfig). Identity k's plan never depends on how many
identities a run asks for, so a larger run extends a smaller one and any worker can plan any identity.

Demographic balance: identities are dealt out in blocks of S = |age bands| × |genders| × |ethnicities|
strata; each block is a seeded permutation of all strata. Any prefix of N identities therefore holds
each stratum either floor(N/S) or ceil(N/S) times, and N = S gives one identity per stratum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from factory.options import ConfigError, reject_unknown_keys
from factory.spec.expressions import Expression, ExpressionConfig, sample_expressions

AgeBand = tuple[int, int]
MAX_IDENTITY_MODES = 300  # FLAME's identity components; a face model with fewer refuses more (run/config.py, FaceModel.vertices)


@dataclass(frozen=True)
class PlanConfig:
    """What the planner draws from. Every field has a default that reproduces 3DPain's design."""

    age_bands: tuple[AgeBand, ...] = ((18, 29), (30, 44), (45, 59), (60, 80))
    genders: tuple[str, ...] = ("female", "male")
    ethnicities: tuple[str, ...] = ("white", "black", "east_asian", "south_asian", "hispanic_latino", "middle_eastern")
    identity_modes: int = 100  # how many of the face model's identity modes get a coefficient (ICT has 100, FLAME 300)
    identity_clip: float = 3.0  # coefficients are N(0, 1) clipped to ±this, so no face is a caricature
    expressions: ExpressionConfig = field(default_factory=ExpressionConfig)
    view_yaws: tuple[float, ...] = (0.0, -35.0, 35.0)  # degrees; 0 is frontal, negative puts the camera on the face's right (right cheek seen)
    view_jitter_deg: float = 3.0  # uniform ± on yaw and pitch, half of it on roll
    distance_jitter: float = 0.05  # relative ± on camera distance

    def __post_init__(self) -> None:
        if not self.age_bands or any(lo < 0 or hi < lo for lo, hi in self.age_bands):
            raise ConfigError(f"age_bands must be (low, high) pairs with 0 <= low <= high, got {self.age_bands}")
        for name in ("genders", "ethnicities", "view_yaws"):
            if not getattr(self, name):
                raise ConfigError(f"{name} must not be empty")
        if not 1 <= self.identity_modes <= MAX_IDENTITY_MODES:
            raise ConfigError(f"identity_modes must be 1..{MAX_IDENTITY_MODES}, got {self.identity_modes}")
        if self.identity_clip <= 0 or self.view_jitter_deg < 0 or not 0 <= self.distance_jitter < 0.5:
            raise ConfigError("identity_clip must be > 0, view_jitter_deg >= 0 and distance_jitter in [0, 0.5)")

    @property
    def strata(self) -> list[tuple[AgeBand, str, str]]:
        return [(band, gender, ethnicity) for band in self.age_bands for gender in self.genders for ethnicity in self.ethnicities]

    @classmethod
    def from_dict(cls, data: dict) -> "PlanConfig":
        reject_unknown_keys(cls, data, "plan option")
        data = dict(data)
        if "age_bands" in data:
            data["age_bands"] = tuple(tuple(band) for band in data["age_bands"])
        for name in ("genders", "ethnicities", "view_yaws"):
            if name in data:
                data[name] = tuple(data[name])
        if "expressions" in data:
            data["expressions"] = ExpressionConfig.from_dict(data["expressions"])
        return cls(**data)


DEMOGRAPHIC_FIELDS = ("age_band", "gender", "ethnicity")  # the strata: what balance reports and metrics break down by


@dataclass(frozen=True)
class Demographics:
    age: int
    age_band: str  # "30-44"
    gender: str
    ethnicity: str


@dataclass(frozen=True)
class Skin:
    """Inputs of the texturer. `tone` runs continuously from 0 (Fitzpatrick I) to 1 (Fitzpatrick VI)."""

    tone: float
    fitzpatrick: int  # 1..6, derived from tone, for captions and balance reports
    undertone: float  # -1 cool (pink) … +1 warm (yellow/olive)
    redness: float  # 0..1, cheeks and lips
    freckles: float  # 0..1 density
    iris: str  # "dark_brown", "brown", "hazel", "green", "blue", "gray"
    hair: str  # brow and lash colour: "black", "dark_brown", "brown", "blond", "red", "gray"
    texture_seed: int  # seeds the texturer's noise


@dataclass(frozen=True)
class View:
    """One camera around the head: angles in degrees, distance as a factor of the renderer's framing distance."""

    name: str  # "v0", "v1", …
    yaw: float
    pitch: float
    roll: float
    distance_scale: float


@dataclass(frozen=True)
class Light:
    azimuth: float  # degrees, 0 = from the camera side of the face, positive = from the face's left
    elevation: float  # degrees above the horizon
    intensity: float
    color_temperature: float  # kelvin
    ambient: float  # share of ambient light


@dataclass(frozen=True)
class Background:
    top: tuple[float, float, float]  # RGB in 0..1, a vertical gradient from top to bottom
    bottom: tuple[float, float, float]


@dataclass(frozen=True)
class IdentitySpec:
    id: str  # "id-0000123"
    index: int
    seed: int  # the dataset seed it was planned from
    demographics: Demographics
    identity: tuple[float, ...]  # face model identity coefficients
    skin: Skin
    expressions: tuple[Expression, ...]  # the neutral first, then the pain expressions
    views: tuple[View, ...]
    light: Light
    background: Background

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> "IdentitySpec":
        return cls(
            id=data["id"],
            index=data["index"],
            seed=data["seed"],
            demographics=Demographics(**data["demographics"]),
            identity=tuple(data["identity"]),
            skin=Skin(**data["skin"]),
            expressions=tuple(Expression.from_dict(e) for e in data["expressions"]),
            views=tuple(View(**v) for v in data["views"]),
            light=Light(**data["light"]),
            background=Background(**{k: tuple(v) for k, v in data["background"].items()}),
        )


def identity_id(index: int) -> str:
    return f"id-{index:07d}"


# Skin tone ranges (0 = Fitzpatrick I … 1 = VI) and eye/hair colour odds by ethnicity group. They are broad
# on purpose: the aim is coverage of every tone, not a stereotype per group.
TONE_RANGE = {
    "white": (0.0, 0.45), "black": (0.55, 1.0), "east_asian": (0.15, 0.55), "south_asian": (0.35, 0.85),
    "hispanic_latino": (0.2, 0.7), "middle_eastern": (0.2, 0.65),
}
IRIS_ODDS = {
    "white": {"blue": 3, "gray": 1, "green": 2, "hazel": 2, "brown": 3, "dark_brown": 1},
    "default": {"dark_brown": 6, "brown": 3, "hazel": 1},
}
HAIR_ODDS = {
    "white": {"blond": 2, "brown": 3, "dark_brown": 3, "red": 1, "black": 1},
    "default": {"black": 5, "dark_brown": 3, "brown": 1},
}


def stratum_of(index: int, seed: int, config: PlanConfig) -> tuple[AgeBand, str, str]:
    strata = config.strata
    block, position = divmod(index, len(strata))
    order = np.random.default_rng([seed, block, 0x5157]).permutation(len(strata))
    return strata[order[position]]


def plan_identity(index: int, seed: int, config: PlanConfig | None = None) -> IdentitySpec:
    """The full plan of identity `index` in a dataset seeded with `seed`."""
    config = config or PlanConfig()
    if index < 0:
        raise ValueError(f"identity index must be >= 0, got {index}")
    (age_low, age_high), gender, ethnicity = stratum_of(index, seed, config)
    # One independent stream per identity: SeedSequence mixes (seed, index) so seed 0 is a seed like any other.
    rng = np.random.default_rng([seed, index])

    demographics = Demographics(
        age=int(rng.integers(age_low, age_high + 1)), age_band=f"{age_low}-{age_high}", gender=gender, ethnicity=ethnicity
    )
    identity = np.clip(rng.standard_normal(config.identity_modes), -config.identity_clip, config.identity_clip)
    skin = draw_skin(rng, ethnicity, demographics.age)
    expressions = sample_expressions(rng, config.expressions)
    views = tuple(draw_view(rng, f"v{k}", yaw, config) for k, yaw in enumerate(config.view_yaws))
    light = Light(
        azimuth=round(float(rng.uniform(-60, 60)), 3),
        elevation=round(float(rng.uniform(5, 50)), 3),
        intensity=round(float(rng.uniform(0.75, 1.15)), 4),
        color_temperature=round(float(rng.uniform(3200, 6800)), 1),
        ambient=round(float(rng.uniform(0.25, 0.45)), 4),
    )
    base = rng.uniform(0.15, 0.85, size=3)
    background = Background(
        top=tuple(round(float(c), 4) for c in np.clip(base + 0.12, 0, 1)),
        bottom=tuple(round(float(c), 4) for c in np.clip(base - 0.12, 0, 1)),
    )
    return IdentitySpec(
        id=identity_id(index), index=index, seed=seed, demographics=demographics,
        identity=tuple(round(float(x), 6) for x in identity), skin=skin, expressions=expressions,
        views=views, light=light, background=background,
    )


def draw_skin(rng: np.random.Generator, ethnicity: str, age: int) -> Skin:
    low, high = TONE_RANGE.get(ethnicity, (0.0, 1.0))
    tone = float(rng.uniform(low, high))
    iris_odds = IRIS_ODDS.get(ethnicity, IRIS_ODDS["default"])
    hair_odds = HAIR_ODDS.get(ethnicity, HAIR_ODDS["default"])
    hair = pick(rng, hair_odds)
    if age >= 60 and rng.random() < 0.6:
        hair = "gray"
    return Skin(
        tone=round(tone, 4),
        fitzpatrick=min(6, 1 + int(tone * 6)),
        undertone=round(float(rng.uniform(-1, 1)), 4),
        redness=round(float(rng.uniform(0, 1)), 4),
        freckles=round(float(rng.uniform(0, 1) ** 3 if tone < 0.4 else 0.0), 4),
        iris=pick(rng, iris_odds),
        hair=hair,
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def draw_view(rng: np.random.Generator, name: str, yaw: float, config: PlanConfig) -> View:
    jitter = config.view_jitter_deg
    return View(
        name=name,
        yaw=round(yaw + float(rng.uniform(-jitter, jitter)), 3),
        pitch=round(float(rng.uniform(-jitter, jitter)), 3),
        roll=round(float(rng.uniform(-jitter / 2, jitter / 2)), 3),
        distance_scale=round(1.0 + float(rng.uniform(-config.distance_jitter, config.distance_jitter)), 4),
    )


def pick(rng: np.random.Generator, odds: dict[str, float]) -> str:
    names = sorted(odds)
    weights = np.array([odds[n] for n in names], float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def plan_identities(count: int, seed: int, config: PlanConfig | None = None, start: int = 0) -> Iterator[IdentitySpec]:
    if count < 1:
        raise ValueError(f"the number of identities must be >= 1, got {count}")
    for index in range(start, start + count):
        yield plan_identity(index, seed, config)
