"""Where things are on the template face, texel by texel: computed once per texturer, the same for every identity.

Textures are looked up through UVs, which do not change with the identity's shape, so everything placed on the
neutral template sits right on every face. Regions (cheeks, under-eyes, brows, lips, wrinkle lines, hairline) are
placed relative to the template's 68 landmarks (Multi-PIE numbering, below); all distances are in cm.

    regions = TexelRegions.of(atlas)                         # (S, S) masks: skin, eyeball, teeth, gums, mouth
    eyes = eye_geometry(model, atlas)                        # (S, S) coordinates around each eye's optical axis
    skin = SkinMaps.build(model, atlas, regions.skin, box)   # per skin texel: the weight of every painted region
    mouth = MouthMaps.build(model, atlas, regions)           # per mouth texel: teeth, gums, depth shading
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from factory.face.geometry import interpolate
from factory.face.model import FaceModel
from factory.face.texture.atlas import UVAtlas
from factory.face.texture.fields import ValueNoise, blur, gaussian, segment_distance, segment_projection
from factory.face.topology import find_margins
from factory.spec.plan import Hair

# Multi-PIE 68-point landmark numbers (0-based). "Right" is the face's own right (world -x).
JAW_TOP_RIGHT = 0  # where the jaw line meets the right ear
RIGHT_BROW, LEFT_BROW, BROWS = slice(17, 22), slice(22, 27), slice(17, 27)  # each brow from its tail inward
RIGHT_BROW_TAIL, RIGHT_BROW_MIDDLE, LEFT_BROW_TAIL = 17, 19, 26
NOSE_BRIDGE_LOW, NOSE_TIP, RIGHT_NOSE_WING, LEFT_NOSE_WING = 29, 30, 31, 35
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45
RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER, UPPER_LIP_INNER = 48, 54, 62

NOISE_BOX_MARGIN_CM = 1.0  # noise lattices span the template's bounding box grown by this


class Box(NamedTuple):
    low: torch.Tensor  # (3,)
    high: torch.Tensor  # (3,)


def noise_box(model: FaceModel) -> Box:
    """The box that value noise over the template spans: its bounding box with a margin."""
    return Box(model.neutral.min(dim=0).values - NOISE_BOX_MARGIN_CM, model.neutral.max(dim=0).values + NOISE_BOX_MARGIN_CM)


@dataclass(frozen=True)
class TexelRegions:
    """(S, S) bool masks: which sub-mesh each texel of the atlas shows."""

    covered: torch.Tensor  # any rendered triangle (the rest are gutters)
    eyeball: torch.Tensor
    teeth: torch.Tensor
    gums: torch.Tensor  # gums and tongue
    mouth: torch.Tensor  # mouth socket, gums, tongue and teeth
    skin: torch.Tensor  # everything else: face, lids, brows, lips, eye sockets, head and neck

    @classmethod
    def of(cls, model: FaceModel, atlas: UVAtlas) -> "TexelRegions":
        layout = model.layout
        covered = atlas.texel_face >= 0
        eyeball = atlas.shows(layout.eyeballs)
        teeth = atlas.shows(layout.teeth)
        gums = atlas.shows(layout.gums)
        mouth = atlas.shows(layout.mouth)
        return cls(covered=covered, eyeball=eyeball, teeth=teeth, gums=gums, mouth=mouth, skin=covered & ~eyeball & ~mouth)


# --- eyes ---------------------------------------------------------------------------------------------------------
IRIS_RADIUS = 0.4  # of the eyeball radius (its half-width, 1.5 cm on the template): a 12 mm iris
BEHIND_THE_IRIS = 9.0  # `radial` of the eyeball's back half: far outside the iris, painted as sclera


class EyeGeometry(NamedTuple):
    """(S, S) coordinates of each eyeball texel around its eye's optical axis (other texels: radial 9, angle 0)."""

    radial: torch.Tensor  # distance from the axis as a share of the iris radius (< 1 on the iris)
    angle: torch.Tensor  # radians around the axis


def eye_geometry(model: FaceModel, atlas: UVAtlas) -> EyeGeometry:
    """Radial distance and angle of each eyeball texel around its eye's optical axis. The axis runs along +z through
    the model's pupil vertex (ICT: the apex of the iris shell; the eyes of the template do not look exactly straight
    ahead, so the sphere's centre would put the pupil off)."""
    neutral, layout = model.neutral, model.layout
    radial = torch.full((atlas.size, atlas.size), BEHIND_THE_IRIS)
    angle = torch.zeros(atlas.size, atlas.size)
    for eyeball, pupil in ((layout.eyeball_left, layout.pupils[0]), (layout.eyeball_right, layout.pupils[1])):
        vertices = neutral[eyeball]
        apex = neutral[pupil]
        centre_z = float((vertices[:, 2].min() + vertices[:, 2].max()) / 2)
        eye_radius = float((vertices.max(0).values - vertices.min(0).values)[:2].max() / 2)
        texels = atlas.shows(eyeball)
        offset = atlas.texel_position - apex
        front = atlas.texel_position[..., 2] > centre_z
        r = offset[..., :2].norm(dim=-1) / (IRIS_RADIUS * eye_radius)
        radial = torch.where(texels & front, r, radial)
        angle = torch.where(texels, torch.atan2(offset[..., 1], offset[..., 0]), angle)
    return EyeGeometry(radial, angle)


# --- mouth --------------------------------------------------------------------------------------------------------
MOUTH_SHADE_DEPTH_CM = 4.0  # the mouth interior darkens linearly over this depth behind the inner lip line …
MOUTH_DARKEST = 0.25  # … down to this share of its colour


@dataclass(frozen=True)
class MouthMaps:
    """Per mouth texel (in the order of `TexelRegions.mouth`'s True entries): what it shows and how deep it is."""

    points: torch.Tensor  # (M, 3) template point
    teeth: torch.Tensor  # (M, 1) bool
    gums: torch.Tensor  # (M, 1) bool: gums and tongue
    shade: torch.Tensor  # (M, 1) MOUTH_DARKEST..1, darker deeper in

    @classmethod
    def build(cls, model: FaceModel, atlas: UVAtlas, regions: TexelRegions) -> "MouthMaps":
        mouth = regions.mouth.reshape(-1)
        points = atlas.texel_position.reshape(-1, 3)[mouth]
        inner_lip_z = float(model.landmark_points(model.neutral)[UPPER_LIP_INNER, 2])
        shade = ((points[:, 2:] - inner_lip_z) / MOUTH_SHADE_DEPTH_CM + 1).clamp(MOUTH_DARKEST, 1)
        return cls(points=points, teeth=regions.teeth.reshape(-1)[mouth][:, None],
                   gums=regions.gums.reshape(-1)[mouth][:, None], shade=shade)


# --- skin ---------------------------------------------------------------------------------------------------------
LIP_EDGE_DIVISOR = 160  # the lip region's edge is blurred by (texture side / this) texels: 6.4 at 1024


@dataclass(frozen=True)
class SkinMaps:
    """Per skin texel, in the order of `texels`: where it is, and the weight there of every region the skin steps
    paint (0..1 unless said otherwise)."""

    texels: torch.Tensor  # (P,) flat indices of the skin texels in the (S, S) atlas
    points: torch.Tensor  # (P, 3) the template point each shows
    cheeks: torch.Tensor  # flush of both cheeks (Gaussian bumps)
    nose_tip: torch.Tensor
    under_eyes: torch.Tensor  # shadow below both eyes
    freckle_zone: torch.Tensor  # nose bridge and the cheeks beside it
    eye_sockets: torch.Tensor  # 1 inside the eye sockets
    lips: torch.Tensor  # the lip part, soft-edged
    brows: torch.Tensor  # brow density
    brow_place: torch.Tensor  # (P, 2) cm along each brow from its inner end, and above its line
    lash_line: torch.Tensor  # 0..0.9 darkening along the lid margins
    age_lines: torch.Tensor  # darkening of the age lines at full age
    above_hairline: torch.Tensor  # cm above the hairline (negative below)
    scalp: ScalpFrame  # what planned scalp hair is placed by (`scalp_density`)
    box: Box  # the box the template's noise spans

    @classmethod
    def build(cls, model: FaceModel, atlas: UVAtlas, skin: torch.Tensor, box: Box) -> "SkinMaps":
        texels = torch.nonzero(skin.reshape(-1)).squeeze(1)
        p = atlas.texel_position.reshape(-1, 3)[texels]
        lm = model.landmark_points(model.neutral)  # (68, 3)
        lips = blur(atlas.texel_part == model.part_names.index("lips"), atlas.size / LIP_EDGE_DIVISOR)
        brows, brow_place = brow_density(p, lm)
        return cls(
            texels=texels, points=p, cheeks=cheek_flush(p, lm), nose_tip=gaussian(p, lm[NOSE_TIP], NOSE_TIP_SIGMA_CM),
            under_eyes=under_eye_shadow(p, lm), freckle_zone=freckle_zone(p, lm),
            eye_sockets=atlas.shows(model.layout.eye_sockets).float().reshape(-1)[texels], lips=lips.reshape(-1)[texels],
            brows=brows, brow_place=brow_place, lash_line=lash_line(p, lm, model), age_lines=age_lines(p, lm, box),
            above_hairline=height_above_hairline(p, lm, box), scalp=ScalpFrame.of(model.neutral, lm), box=box,
        )


# Blood, shadow and freckle regions: Gaussian bumps around landmark-placed centres, sigma per axis.
CHEEK_OUTWARD_CM = 1.2  # cheek centre: halfway between the eye's centre and the mouth corner, moved outward
CHEEK_SIGMA_CM = (1.6, 1.3, 2.5)
NOSE_TIP_SIGMA_CM = (0.9, 0.8, 1.5)
UNDER_EYE_OFFSET_CM = (0.0, -1.0, 0.2)  # from the eye's centre: below it, slightly forward
UNDER_EYE_SIGMA_CM = (1.1, 0.45, 1.5)
FRECKLE_ZONE_OFFSET_CM = (0.0, 0.5, -1.0)  # from the nose tip: up the bridge, back toward the cheeks
FRECKLE_ZONE_SIGMA_CM = (3.2, 2.2, 3.0)


def cheek_flush(p: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    eye_right, eye_left = lm[RIGHT_EYE].mean(0), lm[LEFT_EYE].mean(0)
    sides = ((eye_right, lm[RIGHT_MOUTH_CORNER], -1), (eye_left, lm[LEFT_MOUTH_CORNER], 1))
    return sum(gaussian(p, (eye + mouth) / 2 + torch.tensor([side * CHEEK_OUTWARD_CM, 0.0, 0.0]), CHEEK_SIGMA_CM)
               for eye, mouth, side in sides)


def under_eye_shadow(p: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    eyes = (lm[RIGHT_EYE].mean(0), lm[LEFT_EYE].mean(0))
    return sum(gaussian(p, eye + torch.tensor(UNDER_EYE_OFFSET_CM), UNDER_EYE_SIGMA_CM) for eye in eyes)


def freckle_zone(p: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    return gaussian(p, lm[NOSE_TIP] + torch.tensor(FRECKLE_ZONE_OFFSET_CM), FRECKLE_ZONE_SIGMA_CM)


BROW_TAIL_HALF_HEIGHT_CM = 0.22  # the brow band's half height at its tail …
BROW_INNER_EXTRA_CM = 0.25  # … growing by this much toward its inner end
BROW_EDGE_CM = 0.2  # soft edge of the band, where its hairs thin out
BROW_DEPTH_CM = 1.5  # only texels at most this far behind the brow's rearmost landmark: the front of the face


def brow_density(p: torch.Tensor, lm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) 0..1 brow coverage: a band around each brow's landmark line (17–21, 22–26), thick at the inner
    end and thin at the tail, soft at its edges, on the front of the face only; and (P, 2) where each texel lies in
    its brow, in cm: from the inner end along the line, and above the line (0, 0 away from the brows), which the
    brow hair's strokes are laid out by."""
    density, place = torch.zeros(p.shape[0]), torch.zeros(p.shape[0], 2)
    for line in (lm[RIGHT_BROW], lm[LEFT_BROW].flip(0)):  # each from the tail to the inner end
        distance, along = nearest_on_polyline(p[:, :2], line[:, :2])
        half_height = BROW_TAIL_HALF_HEIGHT_CM + BROW_INNER_EXTRA_CM * along
        front = (p[:, 2] > float(line[:, 2].min()) - BROW_DEPTH_CM).float()
        brow = front * (1 - ((distance - half_height) / BROW_EDGE_CM).clamp(0, 1))
        length = float((line[1:, :2] - line[:-1, :2]).norm(dim=-1).sum())
        height = p[:, 1] - interpolate(along, torch.linspace(0, 1, len(line)), line[None, :, 1])[0]  # above the line
        place = torch.where((brow > 0)[:, None], torch.stack([(1 - along) * length, height], dim=1), place)
        density = density + brow
    return density.clamp(0, 1), place


def nearest_on_polyline(points: torch.Tensor, line: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) distance of each 2D point to a polyline (K, 2), and (P,) how far along it its nearest point lies (0 at
    the first landmark, 1 at the last, evenly per segment: continuous, so what grows along the line has no steps)."""
    distance = torch.full((points.shape[0],), 1e3)
    along = torch.zeros(points.shape[0])
    for k, (a, b) in enumerate(zip(line[:-1], line[1:])):
        d, t = segment_projection(points, a, b)
        closer = d < distance
        distance, along = torch.where(closer, d, distance), torch.where(closer, (k + t) / (len(line) - 1), along)
    return distance, along


LASH_WIDTH_CM = {"upper": 0.16, "lower": 0.06}  # lashes grow thicker along the upper lid
LASH_DARKNESS = 0.9


def lash_line(p: torch.Tensor, lm: torch.Tensor, model: FaceModel) -> torch.Tensor:
    """(P,) 0..LASH_DARKNESS darkening along the lid margins where the lashes grow: wider on the upper lid."""
    near_eyes = (p[:, 1] > float(lm[NOSE_BRIDGE_LOW, 1])) & (p[:, 1] < float(lm[RIGHT_BROW_MIDDLE, 1]))
    points = p[near_eyes]
    line = torch.zeros(points.shape[0])
    for margin in find_margins(model):
        if not margin.region.startswith("eye"):
            continue
        for vertices, width in ((margin.upper, LASH_WIDTH_CM["upper"]), (margin.lower, LASH_WIDTH_CM["lower"])):
            distance = torch.cdist(points, model.neutral[vertices]).min(dim=1).values
            line = torch.maximum(line, 1 - (distance / width).clamp(0, 1) ** 2)
    result = torch.zeros(p.shape[0])
    result[near_eyes] = line * LASH_DARKNESS
    return result


class ScalpFrame(NamedTuple):
    """What the scalp's hair is placed by, on the template."""

    landmarks: torch.Tensor  # (68, 3)
    centre: torch.Tensor  # (3,) the skull's centre, from which strands' directions are measured
    top_y: float  # the top of the head

    @classmethod
    def of(cls, neutral: torch.Tensor, landmarks: torch.Tensor) -> "ScalpFrame":
        """The centre lies mid-way between the face's front and the back of the head, at brow height."""
        brow_top = float(landmarks[BROWS, 1].max())
        upper = neutral[neutral[:, 1] > brow_top]
        middle = (upper.amin(0) + upper.amax(0)) / 2
        return cls(landmarks, torch.tensor([0.0, brow_top, float(middle[2])]), float(neutral[:, 1].max()))


HAIRLINE_ABOVE_BROWS_CM = 3.6  # over the forehead
HAIRLINE_ABOVE_JAW_TOP_CM = 4.0  # at the temples, just above the ears
NAPE_BELOW_JAW_TOP_CM = 3.0  # at the back
TEMPLE_START_BEHIND_BROWS_CM = 2.5  # the hairline starts to drop toward the ear this far behind the brows …
TEMPLE_END_BEFORE_EAR_CM = 1.0  # … and reaches ear height this far in front of the jaw top


def height_above_hairline(p: torch.Tensor, lm: torch.Tensor, box: Box) -> torch.Tensor:
    """(P,) cm above the hairline (negative below): the hairline runs 3.6 cm above the brows over the forehead,
    down to just above the ears at the temples and to the nape at the back."""
    front_y = float(lm[BROWS, 1].max()) + HAIRLINE_ABOVE_BROWS_CM
    ear_y = float(lm[JAW_TOP_RIGHT, 1]) + HAIRLINE_ABOVE_JAW_TOP_CM
    nape_y = float(lm[JAW_TOP_RIGHT, 1]) - NAPE_BELOW_JAW_TOP_CM
    forehead_z = float(lm[BROWS, 2].min()) - TEMPLE_START_BEHIND_BROWS_CM
    ear_z = float(lm[JAW_TOP_RIGHT, 2]) - TEMPLE_END_BEFORE_EAR_CM
    back_z = float(box.low[2]) + 1
    z = p[:, 2]
    temple = ((forehead_z - z) / (forehead_z - ear_z)).clamp(0, 1)
    back = ((ear_z - z) / (ear_z - back_z)).clamp(0, 1)
    hairline = front_y + temple * (ear_y - front_y) + back * (nape_y - ear_y)
    return p[:, 1] - hairline


# --- planned scalp hair: the same functions place it per texel (texture) and per vertex (hair shells) -------------
HAIRLINE_SOFT_CM = 0.9  # hair thickens from none to full over this height above the hairline
TEMPLE_RECESSION = 0.7  # a receding hairline goes this much further back at the temples (the "M")
TEMPLE_SIGMA_CM = 2.2
CROWN_SIGMA_CM = (5.0, 3.5, 5.5)
CROWN_PLATEAU = 1.6  # the crown mask is 1 over its middle (a bald crown is bare), falling off beyond


def crown_mask(points: torch.Tensor, frame: ScalpFrame) -> torch.Tensor:
    """(P,) 1 on the crown (the top and back of the head, where hair thins first), falling off toward the sides."""
    crown = torch.tensor([0.0, frame.top_y - 1.5, float(frame.centre[2]) - 1.5])
    return (CROWN_PLATEAU * gaussian(points, crown, CROWN_SIGMA_CM)).clamp(max=1)


def receding_hairline_cm(points: torch.Tensor, landmarks: torch.Tensor, hair: Hair) -> torch.Tensor:
    """(P,) how far above the template's hairline this identity's runs: the plan's offset over the forehead, fading
    out toward the ears (a hairline recedes at the front); when it recedes, further at the temples (the "M")."""
    forehead_z = float(landmarks[BROWS, 2].min()) - TEMPLE_START_BEHIND_BROWS_CM
    ear_z = float(landmarks[JAW_TOP_RIGHT, 2]) - TEMPLE_END_BEFORE_EAR_CM
    front = ((points[:, 2] - ear_z) / (forehead_z - ear_z)).clamp(0, 1)
    if hair.hairline_cm <= 0:
        return hair.hairline_cm * front
    temple_x = float(landmarks[BROWS, 0].abs().max()) - 1.0
    temples = sum(gaussian(points[:, :1], torch.tensor([side * temple_x]), torch.tensor([TEMPLE_SIGMA_CM]))
                  for side in (-1, 1))
    return hair.hairline_cm * front * (1 + TEMPLE_RECESSION * temples)


def scalp_height(points: torch.Tensor, height: torch.Tensor, frame: ScalpFrame, hair: Hair,
                 wander: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(P,) cm above the identity's hairline of template points `height` cm above the template's: moved by the plan's
    receding hairline and by `wander` (cm, a noise that makes it irregular)."""
    return height - receding_hairline_cm(points, frame.landmarks, hair) + wander


def scalp_density(points: torch.Tensor, height: torch.Tensor, frame: ScalpFrame, hair: Hair,
                  wander: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(P,) 0..1 scalp hair at template points `height` cm above the template's hairline: from the identity's
    hairline (`scalp_height`) up, less on a thinning crown; none when shaved."""
    if hair.style == "shaved":
        return torch.zeros_like(points[:, 0])
    density = smoothstep(scalp_height(points, height, frame, hair, wander) / HAIRLINE_SOFT_CM)
    return density * (1 - hair.thinning * crown_mask(points, frame))


HAIRLINE_WANDER_CM = 0.35  # the hairline wanders by about this much …
HAIRLINE_WANDER_CELL_CM = 1.2  # … over about this distance


def hairline_wander(points: torch.Tensor, hair: Hair, box: Box) -> torch.Tensor:
    """(P,) cm the identity's hairline moves up or down at each point: seeded by the plan's hair, so the texture's
    painted roots and the hair shells agree."""
    noise = ValueNoise(np.random.default_rng([hair.seed, 0x4A18]), box.low, box.high, HAIRLINE_WANDER_CELL_CM)
    return HAIRLINE_WANDER_CM * noise(points)


def where_hair_grows(hair: Hair) -> Hair:
    """The same hair before any is lost or shaved: what stubble on a shaved head, or the sparse strands left on a
    thinned crown, follow."""
    return dataclasses.replace(hair, style="short" if hair.style == "shaved" else hair.style, thinning=0.0)


def smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


# Age lines: darkening at full age of each family of lines (scaled per identity by its age).
FOREHEAD_LINES, CROWS_FEET, NASOLABIAL_FOLDS = 0.12, 0.08, 0.14
LINE_WOBBLE_SEED = 0x3121  # one fixed noise bends every face's lines: faces differ only through their shape
LINE_WOBBLE_CM = 0.25
FOREHEAD_BAND_CM = (0.8, 4.0)  # between these heights above the brows' top
FOREHEAD_LINE_SPACING_CM = 1.1
CROWS_FEET_RAYS = 9  # ray frequency around the eye's outer corner
CROWS_FEET_RADIUS_CM, CROWS_FEET_SPREAD_CM = 1.2, 0.6  # the fan's distance from the corner, and its width
FOLD_START_CM = (0.9, 0.2)  # outward and up from the nose wing
FOLD_END_CM = (0.6, -0.3)  # outward and down from the mouth corner
FOLD_WIDTH_CM = 0.2
LINE_SHARPNESS = 6  # lines are a cosine raised to this power: thin dark lines, wide gaps


def age_lines(p: torch.Tensor, lm: torch.Tensor, box: Box) -> torch.Tensor:
    """(P,) darkening of the age lines at full age: forehead lines, crow's feet, nasolabial folds."""
    wobble = LINE_WOBBLE_CM * ValueNoise(np.random.default_rng(LINE_WOBBLE_SEED), box.low, box.high, 1.0)(p)
    forehead = forehead_lines(p, lm, wobble)
    crows = crows_feet(p, lm, wobble)
    folds = nasolabial_folds(p, lm)
    return FOREHEAD_LINES * forehead + CROWS_FEET * crows + NASOLABIAL_FOLDS * folds


def forehead_lines(p: torch.Tensor, lm: torch.Tensor, wobble: torch.Tensor) -> torch.Tensor:
    """Horizontal lines between the brows and the hairline, on the front of the head only (the scalp stays smooth)."""
    x, y = p[:, 0], p[:, 1]
    brow_top = float(lm[BROWS, 1].max())
    width = float(lm[LEFT_BROW_TAIL, 0] - lm[RIGHT_BROW_TAIL, 0]) / 2
    front = (p[:, 2] > float(lm[BROWS, 2].min()) - 1.0).float()
    low, high = FOREHEAD_BAND_CM
    band = ((y > brow_top + low) & (y < brow_top + high)).float() * torch.exp(-0.5 * (x / width) ** 4) * front
    return band * torch.cos(2 * math.pi * (y + wobble) / FOREHEAD_LINE_SPACING_CM).clamp(min=0) ** LINE_SHARPNESS


def crows_feet(p: torch.Tensor, lm: torch.Tensor, wobble: torch.Tensor) -> torch.Tensor:
    """Rays fanning out from each eye's outer corner, on its outer side."""
    crows = torch.zeros_like(p[:, 0])
    for corner, side in ((lm[RIGHT_EYE_OUTER], -1), (lm[LEFT_EYE_OUTER], 1)):
        offset = p - corner
        distance = offset[:, :2].norm(dim=-1)
        lateral = (side * offset[:, 0] > 0.2).float()
        fan = torch.cos(CROWS_FEET_RAYS * torch.atan2(offset[:, 1], side * offset[:, 0]) + wobble).clamp(min=0) ** LINE_SHARPNESS
        crows = crows + lateral * fan * torch.exp(-0.5 * ((distance - CROWS_FEET_RADIUS_CM) / CROWS_FEET_SPREAD_CM) ** 2)
    return crows


def nasolabial_folds(p: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    """A line from beside each nose wing to just outside and below the mouth corner."""
    folds = torch.zeros_like(p[:, 0])
    for wing, corner, side in ((lm[RIGHT_NOSE_WING], lm[RIGHT_MOUTH_CORNER], -1), (lm[LEFT_NOSE_WING], lm[LEFT_MOUTH_CORNER], 1)):
        start = wing + torch.tensor([side * FOLD_START_CM[0], FOLD_START_CM[1], 0.0])
        end = corner + torch.tensor([side * FOLD_END_CM[0], FOLD_END_CM[1], 0.0])
        d = segment_distance(p[:, :2], start[:2], end[:2])
        folds = folds + torch.exp(-0.5 * (d / FOLD_WIDTH_CM) ** 2) * (p[:, 2] > float(end[2]) - 2.0).float()
    return folds
