"""Seeded identity plans: who each synthetic person is, and what they are asked to do.

A plan is a pure function of (seed, index, PlanConfig). Identity k's plan never depends on how many
identities a run asks for, so a larger run extends a smaller one and any worker can plan any identity.

Demographic balance: identities are dealt out in blocks of S = |age bands| × |genders| × |ethnicities|
strata (5 × 2 × 6 = 60 by default); each block is a seeded order of all strata. Any prefix of N identities therefore holds each stratum
either floor(N/S) or ceil(N/S) times, and N = S gives one identity per stratum. Within a block the order also
balances each factor on its own (`windowed_order`): any prefix of N identities holds each gender, age band and
ethnicity floor(N/k) or ceil(N/k) times for a factor of k levels (N = 4: two women, two men, four ethnicities).
The default age bands reach 90 and hold two of 60 and older (60-74, 75-90), for the older adults with dementia that
clinical pain assessment is most needed for; before they were four bands up to 80 (18-29 … 60-80, S = 48), so
plans of existing seeds changed with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from factory.options import ConfigError, build
from factory.spec.bedside import CLINICAL_OCCLUDED_SHARE, SCENARIOS, Bed, Occluder, clinical_plan, draw_occluder
from factory.spec.expressions import Expression, ExpressionConfig, sample_expressions
from factory.spec.hair import Hair, draw_hair, elder_factor
from factory.spec.sampling import pick
from factory.spec.scene import LIGHT_FAMILIES, Background, Light, draw_light, draw_room

__all__ = ["Background", "Demographics", "Hair", "IdentitySpec", "Light", "PlanConfig", "Skin", "View",
           "plan_identities", "plan_identity"]

AgeBand = tuple[int, int]
MAX_IDENTITY_MODES = 300  # FLAME's identity components; a face model with fewer refuses more (run/config.py, FaceModel.vertices)
MAX_VIEWS = 32  # cameras per identity; each costs every expression a render


@dataclass(frozen=True)
class PlanConfig:
    """What the planner draws from. Every field has a default that reproduces 3DPain's design."""

    age_bands: tuple[AgeBand, ...] = ((18, 29), (30, 44), (45, 59), (60, 74), (75, 90))  # older adults: the clinical population
    genders: tuple[str, ...] = ("female", "male")
    ethnicities: tuple[str, ...] = ("white", "black", "east_asian", "south_asian", "hispanic_latino", "middle_eastern")
    identity_modes: int = 100  # how many of the face model's identity modes get a coefficient (ICT has 100, FLAME 300)
    identity_clip: float = 3.0  # coefficients are N(0, 1) clipped to ±this, so no face is a caricature
    expressions: ExpressionConfig = field(default_factory=ExpressionConfig)
    view_yaws: tuple[float, ...] = (0.0, -35.0, 35.0)  # degrees; 0 is frontal, negative puts the camera on the face's right (right cheek seen)
    view_jitter_deg: float = 3.0  # uniform ± on yaw and pitch, half of it on roll
    distance_jitter: float = 0.05  # relative ± on camera distance
    # Camera realism, drawn per view within these ranges (see View): lens, framing, focus, sensor and compression.
    focal_mm: tuple[float, float] = (45.0, 100.0)  # 35 mm-style focal length on a 24 mm square sensor
    framing_shift: float = 0.03  # the head's centre moves up to this share of the image off the centre
    f_number: tuple[float, float] = (2.0, 8.0)  # aperture: how blurred the room behind is
    defocus_px: tuple[float, float] = (0.0, 0.7)  # a slight blur of the whole image (sigma, pixels at any size)
    sensor_noise: tuple[float, float] = (0.004, 0.025)  # noise sigma on a mid-grey pixel (sRGB 0..1)
    jpeg_quality: tuple[int, int] = (72, 95)
    light_families: tuple[str, ...] = tuple(LIGHT_FAMILIES)  # light setups to draw from (factory/spec/scene.py)
    facial_hair_rate: float = 0.4  # share of men with facial hair
    # The bedside (factory/spec/bedside.py): "default" (upright portraits) or "clinical" (a patient lying on a pillow,
    # ward cameras and light), and the share of identities with a medical occluder (None: 0 for the default
    # scenario, CLINICAL_OCCLUDED_SHARE for the clinical one). Left at their defaults, they are left out of to_dict().
    scenario: str = "default"
    occluded_share: float | None = None

    def __post_init__(self) -> None:
        if not self.age_bands or any(lo < 0 or hi < lo for lo, hi in self.age_bands):
            raise ConfigError(f"age_bands must be (low, high) pairs with 0 <= low <= high, got {self.age_bands}")
        for name in ("genders", "ethnicities", "view_yaws"):
            if not getattr(self, name):
                raise ConfigError(f"{name} must not be empty")
        if len(self.view_yaws) > MAX_VIEWS:
            raise ConfigError(f"view_yaws holds {len(self.view_yaws)} views; at most {MAX_VIEWS}")
        if not 1 <= self.identity_modes <= MAX_IDENTITY_MODES:
            raise ConfigError(f"identity_modes must be 1..{MAX_IDENTITY_MODES}, got {self.identity_modes}")
        if self.identity_clip <= 0 or self.view_jitter_deg < 0 or not 0 <= self.distance_jitter < 0.5:
            raise ConfigError("identity_clip must be > 0, view_jitter_deg >= 0 and distance_jitter in [0, 0.5)")
        for name, lowest, highest in CAMERA_RANGES:
            low, high = getattr(self, name)
            if not lowest <= low <= high <= highest:
                raise ConfigError(f"{name} must be a range (low, high) within {lowest}..{highest}, got {(low, high)}")
        if not 0 <= self.framing_shift <= 0.1 or not 0 <= self.facial_hair_rate <= 1:
            raise ConfigError(f"framing_shift must be in 0..0.1 and facial_hair_rate in 0..1, got "
                              f"{self.framing_shift} and {self.facial_hair_rate}")
        unknown = sorted(set(self.light_families) - set(LIGHT_FAMILIES))
        if unknown or not self.light_families:
            raise ConfigError(f"light_families must name some of {', '.join(LIGHT_FAMILIES)}, got {list(self.light_families)}")
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        if self.occluded_share is not None and not 0 <= self.occluded_share <= 1:
            raise ConfigError(f"occluded_share must be in 0..1 (or unset: the scenario's default), got {self.occluded_share}")

    @property
    def occluder_share(self) -> float:
        """The share of identities with an occluder: as set, else the scenario's default."""
        if self.occluded_share is not None:
            return self.occluded_share
        return CLINICAL_OCCLUDED_SHARE if self.scenario == "clinical" else 0.0

    def to_dict(self) -> dict:
        """The fields as plain values; the bedside keys only where they are not their defaults, so a default plan
        config (and the manifest that records it) reads as it did before they existed."""
        data = asdict(self)
        for name, default in BEDSIDE_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        return data

    @property
    def strata(self) -> list[tuple[AgeBand, str, str]]:
        return [(band, gender, ethnicity) for band in self.age_bands for gender in self.genders for ethnicity in self.ethnicities]

    @classmethod
    def from_dict(cls, data: dict, where: str = "plan") -> "PlanConfig":
        """From a YAML mapping: every key's type checked and named (factory.options.build), then the ranges."""
        return build(cls, data, where)


BEDSIDE_DEFAULTS = {"scenario": "default", "occluded_share": None}  # PlanConfig keys to_dict() leaves out at these values
# PlanConfig's camera ranges and the limits a range must stay within.
CAMERA_RANGES = (("focal_mm", 20.0, 300.0), ("f_number", 1.0, 32.0), ("defocus_px", 0.0, 0.8),
                 ("sensor_noise", 0.0, 0.1), ("jpeg_quality", 30, 100))

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
    hair: str  # scalp, brow and lash colour: "black", "dark_brown", "brown", "blond", "red", "gray", "white"
    texture_seed: int  # seeds the texturer's noise
    shine: float = 1.0  # 0.6..1.5: how oily (glossy) the skin is, on top of its regional shine (T-zone, cheeks)


@dataclass(frozen=True)
class View:
    """One camera around the head: angles in degrees, distance as a factor of the renderer's framing distance, and
    what makes a photograph imperfect: the lens, the framing, the focus, the sensor and the JPEG compression."""

    name: str  # "v0", "v1", …
    yaw: float
    pitch: float
    roll: float
    distance_scale: float
    focal_mm: float  # focal length on a 24 mm square sensor: 45 mm sees 30°, 100 mm sees 14°
    shift_x: float  # the head's centre moved right (+) or left of the image centre, as a share of the image side
    shift_y: float  # … and down (+) or up
    f_number: float  # aperture, with the focus on the face: sets the blur of the room behind
    defocus_px: float  # sigma of a slight blur of the whole image, in pixels
    sensor_noise: float  # noise sigma on a mid-grey pixel, sRGB 0..1
    jpeg_quality: int
    sensor_seed: int  # which noise


@dataclass(frozen=True)
class Gaze:
    """Where both eyes look: near the frontal (first) view's camera. Seen from the midpoint of the eyes, the target
    lies `yaw` degrees toward the face's left (+x) and `pitch` degrees up from the camera, at `distance_scale` times
    the camera's distance; the renderer places it once it knows where that camera stands (meta.json's gaze adds
    the `target` point and its `distance` in cm)."""

    yaw: float
    pitch: float
    distance_scale: float


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
    hair: Hair
    gaze: Gaze
    scenario: str = "default"  # factory/spec/bedside.py SCENARIOS
    occluder: Occluder | None = None  # a medical occluder on the face, or none
    bed: Bed | None = None  # the clinical scenario: the head's pose on its pillow and the bedding

    def to_dict(self) -> dict:
        """The plan as plain values; the bedside fields only where set, so a default plan reads as it always did."""
        data = asdict(self)
        for name in ("occluder", "bed"):
            if data[name] is None:
                del data[name]
        if data["scenario"] == "default":
            del data["scenario"]
        return data

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
            background=Background.from_dict(data["background"]),
            hair=Hair(**data["hair"]),
            gaze=Gaze(**data["gaze"]),
            scenario=data.get("scenario", "default"),
            occluder=Occluder(**{**data["occluder"], "colour": tuple(data["occluder"]["colour"])}) if data.get("occluder") else None,
            bed=Bed(**{**data["bed"], "pillow": tuple(data["bed"]["pillow"]), "sheet": tuple(data["bed"]["sheet"])}) if data.get("bed") else None,
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


GREY_SHARE = (0.5, 0.45)  # share of people over 60 with grey or white hair: 50 % at 60, 95 % at 90
WHITE_SHARE = 0.6  # … of whom white: 0 at 60, 60 % at 90 (× the elder factor squared)


def stratum_of(index: int, seed: int, config: PlanConfig) -> tuple[AgeBand, str, str]:
    strata = config.strata
    block, position = divmod(index, len(strata))
    levels = (len(config.age_bands), len(config.genders), len(config.ethnicities))
    return strata[block_order(levels, seed, block)[position]]


BALANCE_SEARCH_STEPS = 20_000  # search steps before a block falls back to the greedy order (never needed by the defaults)


@lru_cache(maxsize=256)
def block_order(levels: tuple[int, ...], seed: int, block: int) -> tuple[int, ...]:
    """The order in which one block deals its strata (indices into `PlanConfig.strata`, whose factors vary as
    `levels` says, the last fastest): every stratum once, and every factor balanced in every prefix (see
    `windowed_order`). Seeded per block, so identity k's stratum never depends on the run size."""
    priority = np.random.default_rng([seed, block, 0x5157]).permutation(int(np.prod(levels))).tolist()
    return windowed_order(levels, priority) or greedy_order(levels, priority)


def windowed_order(levels: tuple[int, ...], priority: list[int]) -> tuple[int, ...] | None:
    """An order of all strata in which each factor with k levels shows all k levels in every aligned window of k
    positions (0..k-1, k..2k-1, …), found by depth-first search trying strata in `priority` order; None when the
    search runs out of steps (some custom strata have no such order).

    Windows make every prefix fair: after N identities each level of a k-level factor has been dealt floor(N/k)
    or ceil(N/k) times, so N = 4 of the default strata hold 2 + 2 genders and 4 ethnicities, N = 8 hold 4 + 4
    genders and 2 of each age band, and the block as a whole still holds every stratum exactly once.
    """
    coords = np.stack(np.unravel_index(np.arange(len(priority)), levels), axis=1).tolist()
    order: list[int] = []
    used = [False] * len(priority)
    cursor = [0]  # per position of `order`: where in `priority` to try next
    for _ in range(BALANCE_SEARCH_STEPS):
        position = len(order)
        if position == len(priority):
            return tuple(order)
        taken = [{coords[s][f] for s in order[position - position % k:]} for f, k in enumerate(levels)]
        start = cursor[position]
        nxt = next((i for i in range(start, len(priority)) if not used[priority[i]]
                    and all(coords[priority[i]][f] not in taken[f] for f in range(len(levels)))), None)
        if nxt is not None:
            cursor[position] = nxt + 1
            order.append(priority[nxt])
            used[priority[nxt]] = True
            cursor.append(0)
        elif order:  # dead end: undo the last choice and try its next candidate
            cursor.pop()
            used[order.pop()] = False
        else:
            return None
    return None


def greedy_order(levels: tuple[int, ...], priority: list[int]) -> tuple[int, ...]:
    """Fallback order for strata that admit no windowed one: at each position, the unused stratum whose levels are
    furthest behind their fair share (ties broken by `priority`)."""
    coords = np.stack(np.unravel_index(np.arange(len(priority)), levels), axis=1).tolist()
    counts = [[0] * k for k in levels]
    order: list[int] = []
    remaining = list(priority)
    for position in range(len(priority)):
        def excess(stratum: int) -> float:
            return max(counts[f][coords[stratum][f]] + 1 - (position + 1) / k for f, k in enumerate(levels))
        chosen = min(remaining, key=excess)  # min keeps the first of equals: priority order
        remaining.remove(chosen)
        order.append(chosen)
        for f in range(len(levels)):
            counts[f][coords[chosen][f]] += 1
    return tuple(order)


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
    room = draw_room(rng)
    light = draw_light(rng, room.kind, config.light_families)
    base = rng.uniform(0.15, 0.85, size=3)
    background = Background(
        top=tuple(round(float(c), 4) for c in np.clip(base + 0.12, 0, 1)),
        bottom=tuple(round(float(c), 4) for c in np.clip(base - 0.12, 0, 1)),
        room=room,
    )
    hair = draw_hair(rng, gender, demographics.age, config.facial_hair_rate)
    spec = IdentitySpec(
        id=identity_id(index), index=index, seed=seed, demographics=demographics,
        identity=tuple(round(float(x), 6) for x in identity), skin=skin, expressions=expressions,
        views=views, light=light, background=background, hair=hair, gaze=draw_gaze(seed, index),
        occluder=draw_occluder(seed, index, config.occluder_share) if config.occluder_share > 0 else None,
    )
    # The bedside draws from streams of its own, after everything else: the default plan is untouched by it.
    return clinical_plan(spec, config) if config.scenario == "clinical" else spec


def draw_skin(rng: np.random.Generator, ethnicity: str, age: int) -> Skin:
    low, high = TONE_RANGE.get(ethnicity, (0.0, 1.0))
    tone = float(rng.uniform(low, high))
    iris_odds = IRIS_ODDS.get(ethnicity, IRIS_ODDS["default"])
    hair_odds = HAIR_ODDS.get(ethnicity, HAIR_ODDS["default"])
    hair = pick(rng, hair_odds)
    if age >= 60:  # grey, then white, more often with age: one draw decides both
        draw = rng.random()
        if draw < GREY_SHARE[0] + GREY_SHARE[1] * elder_factor(age):
            hair = "white" if draw < WHITE_SHARE * elder_factor(age) ** 2 else "gray"
    return Skin(
        tone=round(tone, 4),
        fitzpatrick=min(6, 1 + int(tone * 6)),
        undertone=round(float(rng.uniform(-1, 1)), 4),
        redness=round(float(rng.uniform(0, 1)), 4),
        freckles=round(float(rng.uniform(0, 1) ** 3 if tone < 0.4 else 0.0), 4),
        iris=pick(rng, iris_odds),
        hair=hair,
        texture_seed=int(rng.integers(0, 2**31 - 1)),
        shine=round(float(rng.uniform(0.6, 1.5)), 4),
    )


GAZE_STREAM = 0x6A2E  # the gaze has its own random stream: adding it changed no other draw of existing plans
GAZE_YAW_DEG, GAZE_PITCH_DEG, GAZE_DISTANCE_SCALE = (-5.0, 5.0), (-5.0, 2.0), (0.85, 1.15)


def draw_gaze(seed: int, index: int) -> Gaze:
    """A target around the frontal camera: within a few degrees of it (more often a little below: the lens, a
    screen or a face beside it), at about the camera's distance."""
    rng = np.random.default_rng([seed, index, GAZE_STREAM])
    return Gaze(yaw=round(float(rng.uniform(*GAZE_YAW_DEG)), 3), pitch=round(float(rng.uniform(*GAZE_PITCH_DEG)), 3),
                distance_scale=round(float(rng.uniform(*GAZE_DISTANCE_SCALE)), 4))


def draw_view(rng: np.random.Generator, name: str, yaw: float, config: PlanConfig) -> View:
    jitter = config.view_jitter_deg
    return View(
        name=name,
        yaw=round(yaw + float(rng.uniform(-jitter, jitter)), 3),
        pitch=round(float(rng.uniform(-jitter, jitter)), 3),
        roll=round(float(rng.uniform(-jitter / 2, jitter / 2)), 3),
        distance_scale=round(1.0 + float(rng.uniform(-config.distance_jitter, config.distance_jitter)), 4),
        focal_mm=round(float(rng.uniform(*config.focal_mm)), 2),
        shift_x=round(float(rng.uniform(-config.framing_shift, config.framing_shift)), 4),
        shift_y=round(float(rng.uniform(-config.framing_shift, config.framing_shift)), 4),
        f_number=round(float(np.exp(rng.uniform(*np.log(config.f_number)))), 2),  # even in stops
        defocus_px=round(float(rng.uniform(*config.defocus_px)), 3),
        sensor_noise=round(float(rng.uniform(*config.sensor_noise)), 4),
        jpeg_quality=int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)),
        sensor_seed=int(rng.integers(0, 2**31 - 1)),
    )


def frontal_view(name: str = "v0") -> View:
    """A straight-on view through a clean camera (a middle focal length, centred, sharp, no noise, JPEG 95): for
    figures and checks that compare renders with each other, not for datasets."""
    return View(name, yaw=0.0, pitch=0.0, roll=0.0, distance_scale=1.0, focal_mm=70.0, shift_x=0.0, shift_y=0.0,
                f_number=8.0, defocus_px=0.0, sensor_noise=0.0, jpeg_quality=95, sensor_seed=0)


def plan_identities(count: int, seed: int, config: PlanConfig | None = None, start: int = 0) -> Iterator[IdentitySpec]:
    if count < 1:
        raise ValueError(f"the number of identities must be >= 1, got {count}")
    for index in range(start, start + count):
        yield plan_identity(index, seed, config)
