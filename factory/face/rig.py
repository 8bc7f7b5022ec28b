"""The AU rig: FACS action-unit intensities → expression-shape weights → mesh.

    rig = AURig(FaceModel.load())
    verts = rig.vertices(identity, [{"AU4": 3, "AU7": 2}, {"AU43": 1}])   # (2, V, 3)

Three steps, each a small piece below:
1. `AU_SHAPES`: which ICT shapes (and how much of each) make one AU at full intensity. It follows upstream
   ICT-FaceKit's FACS table (see factory/assets and ../shared/assets/ict-facekit/NOTICE.md), plus documented
   additions: AU4 also uses `browKnit` (factory/face/shapes.py: the brows drawn together, which ICT's browDown
   hardly does), AU6 also uses `cheekRaiser`, the shape named for it, and AU25/AU26 are built from partial
   `mouthLowerDown`/`jawOpen`, for which upstream has no entry.
2. `INTENSITY_WEIGHT`: FACS intensity 0 (absent), 1..5 (A trace … E maximum) → a weight in [0, 1]. FACS's bands are
   unequal (A and E narrow, C widest); the curve places each band where a coder would see it and keeps A visible:
   0, 0.15, 0.35, 0.6, 0.8, 1.0. AU43 (eyes closed) is binary: 0 or 1.
3. Guards, because the published shapes are not orthogonal and can push lids or lips through each other:
   - eyes closed (AU43) cancels the upper-lid raiser (AU5): a closed eye has no raised upper lid;
   - a geometric guard on the lid and lip margins (the borders of the eye and mouth holes in the face surface).
     The vertical gap between each upper-margin vertex and the lower margin below it is linear in the shape
     weights. Each pair gets a floor: the margins may meet but not cross, unless a single AU at its maximum
     already takes that pair lower (then that is the floor). Eye-open shapes that would cross are scaled down
     together, just enough; a closing lid closes column by column as far as the opening there needs (`close_blinks`);
   - a closed lid pushes its eyeball back behind the socket (`retract_eyeballs`), so no eye white shows through it.
4. Gaze: given a target point, both eyeballs turn about their centres to look at it (factory/face/eyes.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from factory.face.eyes import EyeRig
from factory.face.geometry import interpolate
from factory.face.model import FaceModel
from factory.face.topology import find_margins
from factory.spec.labels import RIG_AUS, max_intensity, validate_aus

AU_SHAPES: dict[str, dict[str, float]] = {
    "AU1": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0},
    "AU2": {"browOuterUp_L": 1.0, "browOuterUp_R": 1.0},
    "AU4": {"browDown_L": 1.0, "browDown_R": 1.0, "browKnit_L": 1.0, "browKnit_R": 1.0},
    "AU5": {"eyeWide_L": 1.0, "eyeWide_R": 1.0},
    "AU6": {"cheekSquint_L": 1.0, "cheekSquint_R": 1.0, "cheekRaiser_L": 0.7, "cheekRaiser_R": 0.7},
    "AU7": {"eyeSquint_L": 1.5, "eyeSquint_R": 1.5},
    "AU9": {"noseSneer_L": 1.0, "noseSneer_R": 1.0},
    "AU10": {"mouthShrugUpper": 1.0, "mouthUpperUp_L": 0.5, "mouthUpperUp_R": 0.5},
    "AU12": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0},
    "AU15": {"mouthFrown_L": 1.0, "mouthFrown_R": 1.0},
    "AU17": {"mouthShrugLower": 1.0},
    "AU20": {"mouthStretch_L": 1.0, "mouthStretch_R": 1.0},
    "AU25": {"mouthLowerDown_L": 0.7, "mouthLowerDown_R": 0.7, "jawOpen": 0.08},
    "AU26": {"jawOpen": 0.45},
    "AU27": {"jawOpen": 1.0},
    "AU43": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}
INTENSITY_WEIGHT = (0.0, 0.15, 0.35, 0.6, 0.8, 1.0)
EYE_CLOSING_SHAPES = ("eyeBlink_L", "eyeBlink_R")
BLINK_OF_EYE = {"eye_left": "eyeBlink_L", "eye_right": "eyeBlink_R"}
# The eyeball each blink closes over (a FaceLayout field), and how far a closed lid pushes it back.
EYEBALL_OF_BLINK = {"eyeBlink_L": "eyeball_left", "eyeBlink_R": "eyeball_right"}
EYEBALL_RETRACTION_CM = 3.0  # deeper than the eye socket (about 2.5 cm)
BLINK_CLOSURE = 1.25  # the share of the published blink that closes the template's eye without a slit …
MAX_BLINK_REACH = 1.6  # … and the most any lid column gets, for the tallest eye openings
RETRACTION_FROM = 0.8  # a closing lid pushes the eyeball back from this share of its closure on (`retract_eyeballs`)


def au_weight(au: str, intensity: int) -> float:
    return float(intensity) if au == "AU43" else INTENSITY_WEIGHT[intensity]


def fractional_weight(au: str, intensity: float) -> float:
    """The weight of a fractional intensity: linear between the integer intensities' (AU43: the closure 0..1)."""
    if not math.isfinite(intensity) or not 0 <= intensity <= max_intensity(au):
        raise ValueError(f"{au} intensity must be from 0 to {max_intensity(au)}, got {intensity!r}")
    if au == "AU43":
        return float(intensity)
    return float(np.interp(intensity, range(len(INTENSITY_WEIGHT)), INTENSITY_WEIGHT))


class AURig:
    def __init__(self, model: FaceModel):
        self.model = model
        names = model.expression_names
        self.au_matrix = torch.zeros(len(RIG_AUS), len(names))  # (A, E): shape weights of each AU at full intensity
        for a, au in enumerate(RIG_AUS):
            for shape, amount in AU_SHAPES[au].items():
                self.au_matrix[a, model.expression_index(shape)] = amount
        # A shape never goes past what one AU at its maximum asks of it (nor past 1, the published range, where
        # every AU asks less): AUs sharing a shape (AU26, AU27: jawOpen) do not add up beyond it.
        self.shape_ceiling = self.au_matrix.amax(dim=0).clamp(min=1.0)
        self.margins = find_margins(model)
        self.eyes = EyeRig(model)
        # Gap change of every margin pair per unit weight of every shape (E, P), and the lowest change that any
        # single AU at its maximum makes (P,): how far the shapes themselves take a pair.
        self.gap_rates = [margin.gaps(model.neutral + model.expression_basis) - margin.gaps(model.neutral)
                          for margin in self.margins]
        self.lowest_au_change = [(self.au_matrix @ rates).amin(dim=0) for rates in self.gap_rates]
        self.template_openings = [margin.gaps(model.neutral) for margin in self.margins]  # (P,) each
        self.eye_closing = torch.tensor([n in EYE_CLOSING_SHAPES for n in names])
        self.blink_support = {  # the vertices each blink shape moves
            index: torch.nonzero(model.expression_basis[index].abs().amax(dim=1) > 0)[:, 0]
            for index in (model.expression_index(shape) for shape in EYE_CLOSING_SHAPES)
        }

    def expression_weights(self, aus_list: Sequence[Mapping[str, int]]) -> torch.Tensor:
        """(B, E) shape weights for a batch of AU intensity mappings (absent AUs are 0), before the margin guard."""
        au_weights = torch.zeros(len(aus_list), len(RIG_AUS))
        for b, aus in enumerate(aus_list):
            aus = validate_aus(aus)
            if aus.get("AU43", 0):
                aus["AU5"] = 0  # a closed eye has no raised upper lid
            for au, intensity in aus.items():
                au_weights[b, RIG_AUS.index(au)] = au_weight(au, intensity)
        return torch.minimum((au_weights @ self.au_matrix).clamp(min=0.0), self.shape_ceiling)

    def fractional_weights(self, intensities_list: Sequence[Mapping[str, float]]) -> torch.Tensor:
        """(B, E) shape weights for fractional intensities (a pain sequence's frames: factory/spec/sequence.py),
        each between the integer intensities' weights (`fractional_weight`); a closing lid lowers AU5 as it closes."""
        au_weights = torch.zeros(len(intensities_list), len(RIG_AUS))
        for b, intensities in enumerate(intensities_list):
            closed = min(1.0, max(0.0, float(intensities.get("AU43", 0.0))))
            for au, intensity in intensities.items():
                if au not in RIG_AUS:
                    raise ValueError(f"unknown action unit {au!r}; known: {', '.join(RIG_AUS)}")
                scale = 1 - closed if au == "AU5" else 1.0
                au_weights[b, RIG_AUS.index(au)] = fractional_weight(au, intensity) * scale
        return torch.minimum((au_weights @ self.au_matrix).clamp(min=0.0), self.shape_ceiling)

    def gap_floors(self, rest_verts: torch.Tensor) -> list[torch.Tensor]:
        """Per margin, (B, P) the lowest allowed gap change from this identity's expressionless face: closing
        until the margins meet (gap 0), or further where a single AU at its maximum goes further."""
        return [torch.minimum(-margin.gaps(rest_verts), lowest) for margin, lowest in zip(self.margins, self.lowest_au_change)]

    def rest_vertices(self, identity: torch.Tensor) -> torch.Tensor:
        """(V, 3) the expressionless mesh of identity coefficients (I,): what expressions are measured against."""
        identity = torch.as_tensor(identity, dtype=torch.float32)[None]
        return self.model.vertices(identity, torch.zeros(1, self.model.num_expressions))[0]

    def vertices(self, identity: torch.Tensor, aus_list: Sequence[Mapping[str, int]],
                 gaze_target: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) meshes. `identity` is (I,) for one person in every expression, or (B, I); with a
        `gaze_target` (3,) world point, both eyes look at it (`EyeRig.aim`), else straight ahead as modelled."""
        return self.posed(identity, self.expression_weights(aus_list), gaze_target)

    def posed(self, identity: torch.Tensor, weights: torch.Tensor, gaze_target: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) meshes from (B, E) shape weights (`expression_weights`, `fractional_weights`): guarded, lids
        closed to fit, eyes aimed; `identity` (I,) or (B, I) as for `vertices`."""
        weights = weights.to(self.model.neutral)
        identity = torch.as_tensor(identity, dtype=torch.float32)
        if identity.ndim == 1:
            identity = identity.expand(len(weights), -1)
        rest = self.model.vertices(identity, torch.zeros_like(weights))
        weights = self.guard(weights, self.gap_floors(rest))
        verts = self.model.vertices(identity, weights)
        verts = self.close_blinks(verts, weights, rest)
        if gaze_target is not None:
            verts = self.eyes.aim(verts, gaze_target)
        return self.retract_eyeballs(verts, weights)

    def guard(self, weights: torch.Tensor, floors: list[torch.Tensor]) -> torch.Tensor:
        """Scale down the eye-open shapes (brows, cheeks, squint, lips) that would push a margin pair below its
        floor, together and just enough. The eye-closing shapes are left to `close_blinks`."""
        weights = weights.clone()
        zero = torch.zeros_like(weights)
        for rates, floor in zip(self.gap_rates, floors):
            # Shapes that can close this margin by more than 0.1 mm; the rest are left alone (a lid guard must
            # not shut the jaw), which leaves at most a few hundredths of a millimetre of slack.
            group = (rates.amin(dim=1) < -0.01) & ~self.eye_closing
            moving = torch.where(group, weights, zero) @ rates  # (B, P)
            rest = torch.where(~group & ~self.eye_closing, weights, zero) @ rates
            weights = torch.where(group, weights * crossing_limit(rest, moving, floor).amin(dim=1, keepdim=True), weights)
        return weights

    def close_blinks(self, verts: torch.Tensor, weights: torch.Tensor, rest_verts: torch.Tensor) -> torch.Tensor:
        """Scale each column of a closing lid to the opening it has to close.

        The published blink closes the template's eye, barely (a slit stays at full weight; BLINK_CLOSURE of it
        closes). An identity whose eye opening is taller needs more of it, and where squint and cheek raiser have
        already lifted the lower lid, a full blink would push the upper lid through it. So every margin pair gets
        its own share of the blink, BLINK_CLOSURE times the opening left there (this identity's, after the other
        shapes) over the template's opening, at most MAX_BLINK_REACH; the shares are interpolated along x over the
        vertices the blink moves, so the eye closes everywhere and crosses nowhere. (The margins are the holes of
        the face surface: a blink rolls the lid down over the eyeball, so their vertical gap never reaches 0.)
        """
        verts = verts.clone()
        zero = torch.zeros_like(weights)
        for margin, rates, template_opening in zip(self.margins, self.gap_rates, self.template_openings):
            if margin.region not in BLINK_OF_EYE:
                continue
            blink = self.model.expression_index(BLINK_OF_EYE[margin.region])
            if not bool((weights[:, blink] > 0).any()):
                continue
            opening = margin.gaps(rest_verts) + torch.where(self.eye_closing, zero, weights) @ rates  # (B, P)
            share = (BLINK_CLOSURE * opening / template_opening).clamp(0.0, MAX_BLINK_REACH)
            pair_x = self.model.neutral[margin.upper, 0]
            order = torch.argsort(pair_x)
            moved = self.blink_support[blink]
            column = interpolate(self.model.neutral[moved, 0], pair_x[order], share[:, order])  # (B, M)
            extra = (column - 1) * weights[:, blink, None]
            verts[:, moved] += extra[..., None] * self.model.expression_basis[blink, moved]
        return verts

    def retract_eyeballs(self, verts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Push each eyeball back, behind its socket, as its lid closes (EYEBALL_RETRACTION_CM at a full blink).

        The published blink leaves a thin slit between the lid margins of some identities, and identity modes can
        bulge an eyeball up to 0.8 mm past the closed lid: both showed the white of the eye or a pupil dot through
        a closed eye. Behind the socket, the slit shows the socket's shadowed skin, like a lash line. With the eye
        open the shift is zero, and a closed lid hides where the eyeball went. A lid on its way (a blink in a
        sequence) pushes it back only from RETRACTION_FROM of its closure on, when the lid covers most of it."""
        verts = verts.clone()
        for shape, eyeball in EYEBALL_OF_BLINK.items():
            weight = weights[:, self.model.expression_index(shape)]
            closing = torch.where(weight >= 1, 1.0, ((weight - RETRACTION_FROM) / (1 - RETRACTION_FROM)).clamp(min=0.0))
            verts[:, getattr(self.model.layout, eyeball), 2] -= EYEBALL_RETRACTION_CM * closing[:, None]
        return verts


def crossing_limit(rest: torch.Tensor, moving: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Per pair, the largest s in [0, 1] with rest + s * moving >= floor (1 where the pair does not cross)."""
    crossing = (rest + moving < floor) & (moving < 0)
    limit = torch.where(crossing, (floor - rest) / moving.clamp(max=-1e-12), torch.ones_like(moving))
    return limit.clamp(0.0, 1.0)
