"""Where an identity's facial hair grows, and how its strands flow (the scalp's density is placed with the other
template maps, in factory/face/texture/template.py, because the texturer paints the scalp by it too).

Everything here is a function of template points (cm, the face model's neutral) and its 68 landmarks, so it works
on any face model with Multi-PIE landmarks:

    facial = facial_density(points, landmarks, "beard")         # (P,) 0..1 over the beard region
    flow = strand_flow(points, frame.centre, scalp_pole(hair))  # tangent, across and along coordinates

Strands flow away from a pole: a whorl at the crown for short styles, a side parting for medium ones, the forehead
for hair pulled back into a bun, the top of the head for facial hair (which therefore runs downward).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from factory.face.texture.template import JAW_TOP_RIGHT, smoothstep
from factory.face.wrinkles import nasolabial_distance
from factory.spec.plan import Hair

CHIN, NOSE_BASE, UPPER_LIP_TOP, LOWER_LIP_BOTTOM = 8, 33, 51, 57
RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER, RIGHT_NOSE_WING, LEFT_NOSE_WING = 48, 54, 31, 35
# What facial hair leaves bare for AU9 and AU10 (`au_evidence_clearance`): a gap under the nostrils, the nose wings,
# and sparse hair along the nasolabial folds.
NOSTRIL_GAP_CM = 0.15  # the moustache starts this far below the nose's base (full NOSTRIL_GAP_CM + 0.3 below it)
WING_CLEAR_CM = 0.3  # no hair this close to a nose wing's base (landmarks 31, 35), fading in over 0.35 cm
FOLD_HALF_WIDTH_CM, FOLD_COVER = 0.3, 0.4  # within this of the fold: this share of the full coverage (0.3 cm to full)
FLOW_RADIUS_CM = 10.0
SIDEBURN_ABOVE_JAW_TOP_CM = 1.0
CHEEK_LINE_POWER = 2.5  # strand coordinates are angles on the head scaled to cm at this radius


def facial_density(points: torch.Tensor, landmarks: torch.Tensor, style: str) -> torch.Tensor:
    """(P,) 0..1 facial hair of `style` ("none", "stubble", "moustache", "goatee", "beard") at template points:
    beard and stubble below a line from the sideburns across the cheeks to the nose's base and above a neckline
    under the jaw; a moustache between the nose and the upper lip; a goatee adds the chin. Lips stay bare (the
    caller masks the lip and mouth parts), and every style leaves the evidence of AU9 and AU10 visible
    (`au_evidence_clearance`)."""
    if style == "none":
        return torch.zeros_like(points[:, 0])
    x, y, z = points.unbind(-1)
    lm = landmarks
    front = smoothstep((z - float(lm[JAW_TOP_RIGHT, 2]) + 1.0) / 1.0)
    mouth_half = float(lm[RIGHT_MOUTH_CORNER, 0].abs())
    below_nose = smoothstep((float(lm[NOSE_BASE, 1]) - NOSTRIL_GAP_CM - y) / 0.3)
    moustache = below_nose * smoothstep((mouth_half + 0.1 - x.abs()) / 0.4) * smoothstep((y - float(lm[UPPER_LIP_TOP, 1]) + 0.1) / 0.2)
    front = front * au_evidence_clearance(points, lm)
    if style == "moustache":
        return moustache * front
    chin = (smoothstep((mouth_half + 0.4 - x.abs()) / 0.5) * smoothstep((float(lm[LOWER_LIP_BOTTOM, 1]) - 0.15 - y) / 0.3)
            * smoothstep((y - float(lm[CHIN, 1]) + 1.8) / 0.6))
    if style == "goatee":
        return torch.maximum(moustache, chin) * front
    return torch.maximum(moustache, beard_region(points, lm)) * front


def au_evidence_clearance(points: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    """(P,) how much facial hair may grow at template points, 0..1: none on the nose wings (AU9 raises and flares
    them) and FOLD_COVER along the nasolabial folds down to the mouth corners (AU9 and AU10 deepen them), where the
    strands are sparse enough to show the crease between them, as the sparse hair along a real fold does; 1
    elsewhere (below the mouth corners the beard closes again)."""
    wing_x, wing_y = float(lm[LEFT_NOSE_WING, 0]), float(lm[LEFT_NOSE_WING, 1])
    to_wing = torch.stack([points[:, 0].abs() - wing_x, points[:, 1] - wing_y], dim=-1).norm(dim=-1)
    off_wing = smoothstep((to_wing - WING_CLEAR_CM) / 0.35)
    above_corner = smoothstep((points[:, 1] - float(lm[LEFT_MOUTH_CORNER, 1]) + 0.3) / 0.5)  # the fold AU10 deepens
    on_fold = smoothstep((FOLD_HALF_WIDTH_CM + 0.3 - nasolabial_distance(points, lm)) / 0.3) * above_corner
    return off_wing * (1 - (1 - FOLD_COVER) * on_fold)


def beard_region(points: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    """(P,) 0..1 below the cheek line and above the neckline. The cheek line runs level from the nose's base to
    beside the nose wing, then curves up to the sideburn in front of the ear (a power curve: it stays low across
    the cheek and rises steeply near the ear)."""
    x, y = points[:, 0].abs(), points[:, 1]
    ear_x, ear_y = float(lm[JAW_TOP_RIGHT, 0].abs()), float(lm[JAW_TOP_RIGHT, 1]) + SIDEBURN_ABOVE_JAW_TOP_CM
    wing_x, base_y = float(lm[RIGHT_NOSE_WING, 0].abs()) + 1.4, float(lm[NOSE_BASE, 1]) - 0.6
    rise = ((x - wing_x) / (ear_x - wing_x)).clamp(0, 1.2) ** CHEEK_LINE_POWER
    cheek_line = base_y + rise * (ear_y - base_y)
    neckline = float(lm[CHIN, 1]) - 3.5 + (x / ear_x).clamp(max=1) ** 2 * (ear_y - 2.5 - float(lm[CHIN, 1]) + 3.5)
    return smoothstep((cheek_line - y) / 0.8) * smoothstep((y - neckline) / 1.0)


class Flow(NamedTuple):
    """Per point: the strands' direction and the coordinates the shader draws them in."""

    tangent: torch.Tensor  # (P, 3) unit, along the strands away from the pole
    across: torch.Tensor  # (P,) cm across the strands (an angle around the pole, scaled)
    along: torch.Tensor  # (P,) cm along the strands from the pole


def strand_flow(points: torch.Tensor, centre: torch.Tensor, pole: torch.Tensor) -> Flow:
    """Strands that run away from `pole` (a unit direction from `centre`) like meridians from a pole; the seam of the
    `across` angle lies opposite the face (toward -z), where no camera of the default views looks."""
    direction = F.normalize(points - centre, dim=-1)
    pole = F.normalize(pole, dim=0)
    forward = torch.tensor([0.0, 0.0, 1.0]) if abs(float(pole[2])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    first = F.normalize(forward - (forward @ pole) * pole, dim=0)
    second = torch.linalg.cross(pole, first)
    cosine = (direction @ pole).clamp(-1, 1)
    tangent = F.normalize(cosine[:, None] * direction - pole, dim=-1, eps=1e-6)  # away from the pole, on the sphere
    angle = torch.atan2(direction @ second, direction @ first)
    return Flow(tangent, angle * FLOW_RADIUS_CM, torch.acos(cosine) * FLOW_RADIUS_CM)


def scalp_pole(hair: Hair) -> torch.Tensor:
    """(3,) where the scalp's strands start: a crown whorl, a side parting (medium, long) or the forehead (tied back)."""
    if hair.style in ("medium", "long"):
        return F.normalize(torch.tensor([0.45 * math.copysign(1.0, hair.parting), 0.85, 0.3]), dim=0)
    if hair.style == "long_tied":
        return F.normalize(torch.tensor([0.0, 0.35, 1.0]), dim=0)
    return F.normalize(torch.tensor([0.15 * hair.parting, 0.75, -0.65]), dim=0)


FACIAL_POLE = torch.tensor([0.0, 1.0, 0.0])  # facial hair grows downward
