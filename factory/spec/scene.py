"""Planned surroundings of a face: the room behind it and the light on it.

    room = draw_room(rng)                      # a clinic or a home: walls, floor, fixtures, all in muted colours
    light = draw_light(rng, room.kind, families=LIGHT_FAMILIES)    # a setup from one family, e.g. window light
    background = Background(top=…, bottom=…, room=room)           # the gradient is kept as render.background: gradient

Light families (ranges below): "window" (a large soft source from one side, daylight, dim bounce fill), "clinical"
(an overhead panel, cool, a higher ambient share), "studio" (a soft key with a fill from the other side), "lamp" (a
warm, smaller source; 3100-3900 K rather than a bulb's 2700 K, as a camera's white balance leaves it) and "flash"
(a hard light from beside the camera). Clinics draw mostly clinical and window
light, homes mostly window and lamp light.

Rooms: a box around the head (the camera sees its back and side walls through a narrow portrait lens), painted in
a clinic's or a home's palette (never saturated), with a few fixtures where the cameras look: doors, windows,
pictures, cabinets, rails, clinical headwall panels, curtains, shelves. Colours are sRGB in 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory.spec.sampling import pick

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Light:
    family: str  # one of LIGHT_FAMILIES
    azimuth: float  # degrees, 0 = from the camera side of the face, positive = from the face's left
    elevation: float  # degrees above the horizon
    intensity: float
    color_temperature: float  # kelvin
    ambient: float  # share of ambient light
    softness: float  # degrees: the key light's angular radius (0 = hard shadows)
    fill_azimuth: float
    fill_elevation: float
    fill_intensity: float
    fill_color_temperature: float
    sky: float  # how much more ambient light comes from above than from below, 0..1


# Per family: (low, high) of each parameter; the key's azimuth side (left or right) is drawn separately, and the fill
# comes from the other side.
LIGHT_FAMILIES = {
    "window": {"azimuth": (40, 85), "elevation": (0, 25), "kelvin": (5200, 6800), "intensity": (0.95, 1.25),
               "ambient": (0.22, 0.36), "softness": (8, 16), "fill": (0.05, 0.2), "fill_kelvin": (6000, 7500),
               "sky": (0.15, 0.35)},
    "clinical": {"azimuth": (0, 25), "elevation": (50, 72), "kelvin": (3800, 5000), "intensity": (0.95, 1.2),
                 "ambient": (0.3, 0.45), "softness": (10, 20), "fill": (0.15, 0.3), "fill_kelvin": (4000, 5000),
                 "sky": (0.2, 0.4)},
    "studio": {"azimuth": (25, 55), "elevation": (15, 40), "kelvin": (4800, 5800), "intensity": (0.9, 1.15),
               "ambient": (0.18, 0.3), "softness": (5, 12), "fill": (0.25, 0.45), "fill_kelvin": (4800, 5800),
               "sky": (0.05, 0.2)},
    "lamp": {"azimuth": (30, 75), "elevation": (5, 35), "kelvin": (3100, 3900), "intensity": (0.85, 1.1),
             "ambient": (0.2, 0.34), "softness": (3, 8), "fill": (0.05, 0.2), "fill_kelvin": (4500, 6500),
             "sky": (0.05, 0.2)},
    "flash": {"azimuth": (0, 12), "elevation": (0, 12), "kelvin": (5400, 6000), "intensity": (1.0, 1.2),
              "ambient": (0.15, 0.28), "softness": (1, 3), "fill": (0.0, 0.1), "fill_kelvin": (5000, 6000),
              "sky": (0.0, 0.15)},
}
FAMILY_ODDS_BY_ROOM = {"clinic": {"clinical": 4, "window": 2, "studio": 1, "flash": 1},
                       "home": {"window": 3, "lamp": 3, "studio": 1, "flash": 1}}


def draw_light(rng: np.random.Generator, room_kind: str, families: tuple[str, ...]) -> Light:
    """A light setup from one of `families`, weighted by what suits the room."""
    odds = {name: weight for name, weight in FAMILY_ODDS_BY_ROOM[room_kind].items() if name in families}
    family = pick(rng, odds or {name: 1.0 for name in families})
    ranges = LIGHT_FAMILIES[family]
    side = 1.0 if rng.random() < 0.5 else -1.0

    def draw(name: str) -> float:
        return float(rng.uniform(*ranges[name]))

    return Light(
        family=family, azimuth=round(side * draw("azimuth"), 3), elevation=round(draw("elevation"), 3),
        intensity=round(draw("intensity"), 4), color_temperature=round(draw("kelvin"), 1),
        ambient=round(draw("ambient"), 4), softness=round(draw("softness"), 3),
        fill_azimuth=round(-side * float(rng.uniform(20, 60)), 3), fill_elevation=round(float(rng.uniform(0, 20)), 3),
        fill_intensity=round(draw("fill"), 4), fill_color_temperature=round(draw("fill_kelvin"), 1),
        sky=round(draw("sky"), 4),
    )


@dataclass(frozen=True)
class Fixture:
    kind: str  # "door", "window", "picture", "cabinet", "rail", "panel", "curtain", "shelf"
    wall: str  # "back", "left", "right"
    u: float  # cm along the wall of its left edge (0 is straight behind / beside the head)
    v: float  # cm above the floor of its bottom edge
    width: float
    height: float
    colour: Colour
    trim: Colour


@dataclass(frozen=True)
class Room:
    kind: str  # "clinic" or "home"
    yaw_deg: float  # the room turned about the head
    left_cm: float  # distance from the head's centre to each wall
    right_cm: float
    back_cm: float
    front_cm: float
    floor_cm: float
    ceiling_cm: float
    wall: Colour
    floor: Colour
    ceiling: Colour
    trim: Colour
    fixtures: tuple[Fixture, ...]
    light_side: float  # -1 … 1: which side of the room is brighter
    seed: int

    @classmethod
    def from_dict(cls, data: dict) -> "Room":
        colours = {name: tuple(data[name]) for name in ("wall", "floor", "ceiling", "trim")}
        fixtures = tuple(Fixture(**{**f, "colour": tuple(f["colour"]), "trim": tuple(f["trim"])}) for f in data["fixtures"])
        return cls(**{**data, **colours, "fixtures": fixtures})


@dataclass(frozen=True)
class Background:
    top: Colour  # `render.background: gradient`: a vertical gradient from top to bottom
    bottom: Colour
    room: Room  # `render.background: scene` (the default): this room, seen through each camera

    @classmethod
    def from_dict(cls, data: dict) -> "Background":
        return cls(top=tuple(data["top"]), bottom=tuple(data["bottom"]), room=Room.from_dict(data["room"]))


WALL_PAINT = {
    "clinic": [(0.80, 0.87, 0.82), (0.80, 0.85, 0.89), (0.90, 0.89, 0.86), (0.82, 0.82, 0.80), (0.90, 0.88, 0.77),
               (0.86, 0.84, 0.80)],
    "home": [(0.85, 0.78, 0.67), (0.92, 0.88, 0.78), (0.70, 0.64, 0.58), (0.70, 0.75, 0.66), (0.63, 0.70, 0.76),
             (0.80, 0.63, 0.53), (0.91, 0.90, 0.87), (0.75, 0.75, 0.74)],
}
FLOORS = {"clinic": [(0.62, 0.62, 0.60), (0.70, 0.66, 0.58), (0.55, 0.60, 0.62)],
          "home": [(0.52, 0.38, 0.26), (0.64, 0.50, 0.36), (0.45, 0.42, 0.40)]}
TRIMS = [(0.92, 0.91, 0.88), (0.86, 0.85, 0.82), (0.56, 0.42, 0.30)]
DOORS = {"clinic": [(0.62, 0.48, 0.33), (0.66, 0.67, 0.67), (0.70, 0.78, 0.84)],
         "home": [(0.90, 0.89, 0.86), (0.45, 0.32, 0.22), (0.62, 0.47, 0.32)]}
ACCENTS = [(0.55, 0.35, 0.30), (0.35, 0.45, 0.55), (0.45, 0.55, 0.40), (0.70, 0.60, 0.35), (0.50, 0.40, 0.55),
           (0.30, 0.35, 0.40)]  # pictures, books, curtains: stronger than walls, still muted
CURTAINS = [(0.70, 0.80, 0.85), (0.75, 0.85, 0.78), (0.88, 0.84, 0.74)]
# Fixture kinds by room, with odds, and their size (width, height) and height above the floor of the bottom edge.
FIXTURE_ODDS = {"clinic": {"door": 3, "panel": 3, "curtain": 2, "cabinet": 2, "window": 2, "picture": 1, "rail": 2},
                "home": {"door": 3, "window": 3, "picture": 3, "shelf": 2, "cabinet": 1, "curtain": 1}}
FIXTURE_SHAPE = {"door": ((85, 100), (200, 215), (0, 0)), "window": ((90, 160), (100, 140), (80, 100)),
                 "picture": ((35, 90), (30, 70), (120, 150)), "cabinet": ((60, 120), (75, 95), (0, 0)),
                 "rail": ((250, 400), (8, 14), (85, 100)), "panel": ((120, 220), (22, 30), (130, 150)),
                 "curtain": ((100, 200), (190, 215), (40, 55)), "shelf": ((60, 120), (30, 35), (130, 165))}


def draw_room(rng: np.random.Generator, kind: str | None = None) -> Room:
    """A room of `kind` ("clinic" or "home"), or of either, drawn."""
    kind = kind or ("clinic" if rng.random() < 0.5 else "home")
    fixtures = []
    for wall in ("back", "left", "right"):
        for _ in range(int(rng.integers(1, 4))):
            fixtures.append(draw_fixture(rng, kind, wall))
    return Room(
        kind=kind, yaw_deg=round(float(rng.uniform(-25, 25)), 2),
        left_cm=round(float(rng.uniform(120, 260)), 1), right_cm=round(float(rng.uniform(120, 260)), 1),
        back_cm=round(float(rng.uniform(140, 380)), 1), front_cm=round(float(rng.uniform(180, 320)), 1),
        floor_cm=round(float(rng.uniform(95, 150)), 1), ceiling_cm=round(float(rng.uniform(100, 150)), 1),
        wall=vary(rng, WALL_PAINT[kind]), floor=vary(rng, FLOORS[kind]), ceiling=vary(rng, [(0.93, 0.93, 0.91)]),
        trim=vary(rng, TRIMS), fixtures=tuple(fixtures), light_side=round(float(rng.uniform(-1, 1)), 3),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def draw_fixture(rng: np.random.Generator, kind_of_room: str, wall: str) -> Fixture:
    kind = pick(rng, FIXTURE_ODDS[kind_of_room])
    (w_low, w_high), (h_low, h_high), (v_low, v_high) = FIXTURE_SHAPE[kind]
    width, height = float(rng.uniform(w_low, w_high)), float(rng.uniform(h_low, h_high))
    colour = {"door": lambda: vary(rng, DOORS[kind_of_room]), "curtain": lambda: vary(rng, CURTAINS),
              "window": lambda: vary(rng, TRIMS + [(0.85, 0.84, 0.80)]),
              "panel": lambda: vary(rng, [(0.88, 0.88, 0.86), (0.80, 0.82, 0.84)]),
              "rail": lambda: vary(rng, [(0.72, 0.72, 0.72), (0.56, 0.42, 0.30)]),
              "cabinet": lambda: vary(rng, [(0.90, 0.90, 0.88), (0.60, 0.46, 0.32), (0.75, 0.77, 0.78)])}
    main = colour.get(kind, lambda: vary(rng, ACCENTS))()
    trim = vary(rng, TRIMS if kind in ("door", "window", "curtain") else ACCENTS + TRIMS)
    if kind == "window" and rng.random() < 0.5:
        main = trim  # a window's colour is its blinds' (render/room.py): the same as its frame means none
    return Fixture(kind=kind, wall=wall, u=round(float(rng.uniform(-260, 260)) - width / 2, 1),
                   v=round(float(rng.uniform(v_low, v_high)), 1), width=round(width, 1), height=round(height, 1),
                   colour=main, trim=trim)


def vary(rng: np.random.Generator, choices: list[Colour]) -> Colour:
    """One of `choices`, its brightness varied by ±5 % and each channel by ±2 %."""
    base = np.array(choices[int(rng.integers(len(choices)))])
    varied = base * rng.uniform(0.95, 1.05) * rng.uniform(0.98, 1.02, size=3)
    return tuple(round(float(c), 4) for c in np.clip(varied, 0, 1))
