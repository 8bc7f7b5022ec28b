"""The bedside: medical occluders on the face and the `clinical` scenario (a patient lying on a pillow, seen and lit
as on a ward). Planned here, as plain seeded dataclasses; built into geometry by factory/face/occluders.py and drawn
by factory/render/bedding.py.

    occluder = draw_occluder(seed, index, share=0.7)     # Occluder("nasal_cannula", side=-1, …) or None
    spec = clinical_plan(spec, config)                   # lying pose, ward cameras, ward light, a ward room

Scenarios: "default" (3DPain's upright portraits; nothing here is drawn, so its plans and bytes are today's) and
"clinical". Occluders (OCCLUDER_KINDS): an oxygen face mask, a nasal cannula, an endotracheal tube with tape, a
surgical mask, an eye patch and a hand near the face; a share of identities (`PlanConfig.occluded_share`, default
0 for the default scenario and CLINICAL_OCCLUDED_SHARE for the clinical one) gets one.

The lying pose (`Bed`) is the head's rotation from its own frame (the face model's: +y up, the face toward +z) into
the bed's frame (+y toward the ceiling, +z toward the foot of the bed, +x the patient's left): lying face up, then
bent forward by the pillow (`flexion`), turned to one side about its long axis (`turn`) and tilted toward a shoulder
(`tilt`). The face mesh stays in its own frame: cameras, lights and the ward are turned into it instead, so every
label (landmarks, cameras, mesh) keeps the meaning it has in the default scenario.

Ward cameras (`WARD_CAMERAS`): above the bed (a ceiling camera looking down on the face), at the bedside (a carer
beside the bed, looking down at 25-55°) and oblique (from a corner at the foot end). Ward light (`WARD_LIGHT_FAMILIES`):
overhead fluorescent, a dim night light, the glow of a bedside monitor, and a window beside the bed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from factory.spec.sampling import pick
from factory.spec.scene import Background, Light, draw_room, vary

SCENARIOS = ("default", "clinical")
OCCLUDER_KINDS = ("oxygen_mask", "nasal_cannula", "endotracheal_tube", "surgical_mask", "eye_patch", "hand")
NO_OCCLUDER = "none"  # a view's `occluder` in meta.json when the identity has none
CLINICAL_OCCLUDED_SHARE = 0.75  # the clinical scenario's default share of identities with an occluder
OCCLUDER_ODDS = {"oxygen_mask": 3, "nasal_cannula": 3, "endotracheal_tube": 2, "surgical_mask": 2, "eye_patch": 1, "hand": 1}
OCCLUDER_STREAM, BED_STREAM = 0x0CC1, 0xBED5  # own random streams: the default plan's draws are untouched
Colour = tuple[float, float, float]

# sRGB material colours per kind: clear medical plastics are drawn as tinted frosted plastic (the renderer keeps one
# surface per pixel), masks and tape as fabric, the hand as skin (its colour comes from the identity) or a glove.
MATERIALS: dict[str, list[Colour]] = {
    "oxygen_mask": [(0.80, 0.90, 0.86), (0.86, 0.90, 0.92), (0.78, 0.88, 0.80)],
    "nasal_cannula": [(0.78, 0.90, 0.84), (0.88, 0.92, 0.92)],
    "endotracheal_tube": [(0.90, 0.92, 0.90), (0.86, 0.90, 0.92)],
    "surgical_mask": [(0.62, 0.78, 0.90), (0.92, 0.93, 0.93), (0.60, 0.80, 0.74), (0.35, 0.50, 0.75)],
    "eye_patch": [(0.94, 0.94, 0.92), (0.92, 0.88, 0.80)],
    "hand": [(-1.0, -1.0, -1.0), (-1.0, -1.0, -1.0), (0.45, 0.45, 0.80), (0.35, 0.55, 0.85)],  # -1: the patient's skin
}


@dataclass(frozen=True)
class Occluder:
    """One medical occluder on the face, fitted to the head by factory/face/occluders.py."""

    kind: str  # one of OCCLUDER_KINDS
    side: int  # -1 the face's right, +1 its left: the eye a patch covers, the side a tube leaves or a hand comes from
    size: float  # scale of its outline around the landmarks it is fitted to, 0.9..1.1
    standoff_cm: float  # how far its surface stands off the skin where it rests on it
    colour: Colour  # sRGB; (-1, -1, -1) for a hand: the identity's own skin
    seed: int  # pleats, tape strips, finger pose


@dataclass(frozen=True)
class Bed:
    """A patient's head on a pillow: its pose in the bed (module docstring) and the bedding's look."""

    flexion: float  # degrees, the head bent forward (chin toward the chest) by the pillow
    turn: float  # degrees, the head turned about its long axis toward its left (+) or right (-)
    tilt: float  # degrees, the head tilted toward its left shoulder (+) or right
    sink_cm: float  # how deep the back of the head sinks into the pillow
    pillow_cm: float  # the pillow's height above the mattress where the head does not press it
    pillow: Colour  # sRGB of the pillowcase
    sheet: Colour  # … and of the sheet over the body
    seed: int  # creases of the pillowcase and folds of the sheet


def draw_occluder(seed: int, index: int, share: float) -> Occluder | None:
    """Identity `index`'s occluder, drawn with probability `share` from its own stream (so the share may change
    without changing anything else of the plan)."""
    rng = np.random.default_rng([seed, index, OCCLUDER_STREAM])
    if rng.random() >= share:
        return None
    kind = pick(rng, OCCLUDER_ODDS)
    colour = MATERIALS[kind][int(rng.integers(len(MATERIALS[kind])))]
    return Occluder(kind=kind, side=1 if rng.random() < 0.5 else -1, size=round(float(rng.uniform(0.92, 1.08)), 4),
                    standoff_cm=round(float(rng.uniform(0.15, 0.35)), 4),
                    colour=colour if colour[0] < 0 else vary(rng, [colour]), seed=int(rng.integers(0, 2**31 - 1)))


# ------------------------------------------------------------------------------------------------- the lying pose


def draw_bed(rng: np.random.Generator) -> Bed:
    return Bed(flexion=round(float(rng.uniform(0, 22)), 3), turn=round(float(rng.uniform(-32, 32)), 3),
               tilt=round(float(rng.uniform(-8, 8)), 3), sink_cm=round(float(rng.uniform(2.0, 4.0)), 3),
               pillow_cm=round(float(rng.uniform(9, 14)), 3),
               pillow=vary(rng, [(0.93, 0.93, 0.91), (0.86, 0.90, 0.94), (0.90, 0.93, 0.88)]),
               sheet=vary(rng, [(0.92, 0.92, 0.90), (0.70, 0.80, 0.90), (0.75, 0.86, 0.80), (0.88, 0.86, 0.80)]),
               seed=int(rng.integers(0, 2**31 - 1)))


def axis_rotation(axis: int, degrees: float) -> np.ndarray:
    """(3, 3) right-handed rotation by `degrees` about the x (0), y (1) or z (2) axis."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


# The head's own axes in the bed's frame when it lies face up, straight: x stays, the top of the head (+y) points to
# the head of the bed (-z), the face (+z) to the ceiling (+y).
FACE_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def lying_rotation(bed: Bed) -> np.ndarray:
    """(3, 3) head frame → bed frame: x_bed = R @ x_head (both about the head's centre)."""
    return FACE_UP @ axis_rotation(0, bed.flexion) @ axis_rotation(1, bed.turn) @ axis_rotation(2, bed.tilt)


def angles_in_head(direction: np.ndarray) -> tuple[float, float]:
    """(azimuth/yaw, elevation/pitch) degrees of a unit head-frame direction, as Orbit and Light angles measure them."""
    x, y, z = direction / np.linalg.norm(direction)
    return math.degrees(math.atan2(x, z)), math.degrees(math.asin(max(-1.0, min(1.0, y))))


# ------------------------------------------------------------------------------------------------- ward cameras

WARD_CAMERAS = ("overhead", "bedside", "oblique")
MIN_FACING = math.cos(math.radians(72))  # a camera sees the face at most this far round its side


def ward_camera_direction(rng: np.random.Generator, placement: str) -> tuple[np.ndarray, np.ndarray]:
    """(unit direction from the head toward the camera, the image's up) in the bed's frame."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    if placement == "overhead":  # a ceiling camera straight above the pillow, image up toward the head of the bed
        elevation, azimuth = math.radians(rng.uniform(68, 88)), math.radians(rng.uniform(0, 360))
        up = np.array([0.0, 0.0, -1.0])
    elif placement == "bedside":  # a carer standing beside the bed, level with the head or a little toward the feet
        elevation, along = math.radians(rng.uniform(25, 55)), math.radians(rng.uniform(-15, 35))
        azimuth = math.atan2(math.sin(along), side * math.cos(along))
        up = mix_up(rng)
    else:  # oblique: from a corner at the foot end
        elevation, off_axis = math.radians(rng.uniform(25, 45)), math.radians(rng.uniform(25, 55))
        azimuth = math.atan2(math.cos(off_axis), side * math.sin(off_axis))
        up = mix_up(rng)
    horizontal = math.cos(elevation)
    direction = np.array([horizontal * math.cos(azimuth), math.sin(elevation), horizontal * math.sin(azimuth)])
    return direction, up


def mix_up(rng: np.random.Generator) -> np.ndarray:
    """A hand-held or wall camera's up: between the room's vertical and the head of the bed."""
    weight = rng.uniform(0.35, 1.0)
    return weight * np.array([0.0, 0.0, -1.0]) + (1 - weight) * np.array([0.0, 1.0, 0.0])


def head_view_angles(direction_bed: np.ndarray, up_bed: np.ndarray, rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of an orbit camera (factory/render/camera.py) at `direction_bed` from the head whose image up
    is as near `up_bed` as its direction allows. A direction too far round the side of the face is turned toward it."""
    direction = rotation.T @ direction_bed
    face = np.array([0.0, 0.0, 1.0])
    while direction @ face < MIN_FACING:
        direction = direction + 0.25 * face
        direction = direction / np.linalg.norm(direction)
    yaw, pitch = angles_in_head(direction)
    forward = -direction  # look_at's frame for this direction, before its roll
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    up = rotation.T @ up_bed
    target_down = -(up - (up @ forward) * forward)
    roll = math.degrees(math.atan2(-(right @ target_down), down @ target_down))
    return yaw, pitch, roll


# ------------------------------------------------------------------------------------------------- ward light

# Per family, in the bed's frame: (low, high) of the key light's elevation above the bed and azimuth about the
# vertical (0: beside the patient's left, 90: toward the foot), colour temperature, intensity, ambient share,
# softness and fill, as factory/spec/scene.py's LIGHT_FAMILIES.
WARD_LIGHT_FAMILIES = {
    "ward_overhead": {"elevation": (62, 88), "azimuth": (0, 360), "kelvin": (3900, 5200), "intensity": (0.95, 1.2),
                      "ambient": (0.34, 0.48), "softness": (14, 24), "fill": (0.15, 0.3), "fill_kelvin": (4200, 5200)},
    "night": {"elevation": (10, 40), "azimuth": (-60, 60), "kelvin": (2600, 3300), "intensity": (0.38, 0.55),
              "ambient": (0.18, 0.3), "softness": (5, 12), "fill": (0.02, 0.08), "fill_kelvin": (6500, 9000)},
    "monitor": {"elevation": (0, 20), "azimuth": (-40, 40), "kelvin": (7500, 11000), "intensity": (0.5, 0.75),
                "ambient": (0.15, 0.26), "softness": (10, 18), "fill": (0.04, 0.12), "fill_kelvin": (3000, 4000)},
    "ward_window": {"elevation": (5, 30), "azimuth": (-50, 50), "kelvin": (5200, 6800), "intensity": (0.95, 1.2),
                    "ambient": (0.25, 0.38), "softness": (9, 16), "fill": (0.08, 0.2), "fill_kelvin": (4000, 5000)},
}
WARD_LIGHT_ODDS = {"ward_overhead": 4, "night": 2, "monitor": 2, "ward_window": 2}


def draw_ward_light(rng: np.random.Generator, rotation: np.ndarray) -> Light:
    """A ward light, its direction drawn in the bed's frame and stored as head-frame angles (what the renderer reads)."""
    family = pick(rng, WARD_LIGHT_ODDS)
    ranges = WARD_LIGHT_FAMILIES[family]
    side = 1.0 if rng.random() < 0.5 else -1.0

    def draw(name: str) -> float:
        return float(rng.uniform(*ranges[name]))

    def head_angles(elevation: float, azimuth: float) -> tuple[float, float]:
        e, a = math.radians(elevation), math.radians(azimuth)
        bed = np.array([side * math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a)])
        return angles_in_head(rotation.T @ bed)

    azimuth, elevation = head_angles(draw("elevation"), draw("azimuth"))
    fill_azimuth, fill_elevation = head_angles(float(rng.uniform(20, 60)), float(rng.uniform(120, 240)))
    return Light(family=family, azimuth=round(azimuth, 3), elevation=round(elevation, 3),
                 intensity=round(draw("intensity"), 4), color_temperature=round(draw("kelvin"), 1),
                 ambient=round(draw("ambient"), 4), softness=round(draw("softness"), 3),
                 fill_azimuth=round(fill_azimuth, 3), fill_elevation=round(fill_elevation, 3),
                 fill_intensity=round(draw("fill"), 4), fill_color_temperature=round(draw("kelvin" if family == "night" else "fill_kelvin"), 1),
                 sky=0.0)  # the renderer's sky brightens the head's up, which lies along the bed here


def clinical_plan(spec, config):
    """`spec` (an IdentitySpec) as a patient in bed: lying pose, ward cameras and light, a clinic's room. Drawn from
    the identity's own bedside stream; demographics, face, skin, expressions and hair stay as planned."""
    from factory.spec.plan import draw_view  # the plan imports this module

    rng = np.random.default_rng([spec.seed, spec.index, BED_STREAM])
    bed = draw_bed(rng)
    rotation = lying_rotation(bed)
    views = []
    for k, view in enumerate(spec.views):
        placement = WARD_CAMERAS[k % len(WARD_CAMERAS)]
        yaw, pitch, roll = head_view_angles(*ward_camera_direction(rng, placement), rotation)
        drawn = draw_view(rng, view.name, 0.0, config)
        views.append(dataclasses.replace(drawn, yaw=round(yaw, 3), pitch=round(pitch, 3), roll=round(roll, 3),
                                         distance_scale=round(float(rng.uniform(1.15, 1.5)), 4)))
    room = draw_room(rng, kind="clinic")
    background = Background(top=spec.background.top, bottom=spec.background.bottom, room=room)
    return dataclasses.replace(spec, scenario="clinical", bed=bed, views=tuple(views),
                               light=draw_ward_light(rng, rotation), background=background)
