"""The AU rig: FACS action-unit intensities → expression-shape weights → mesh.

    rig = AURig(FaceModel.load())
    verts = rig.vertices(identity, [{"AU4": 3, "AU7": 2}, {"AU43": 1}])   # (2, V, 3)

Three steps, each a small piece below:
1. `AU_SHAPES`: which ICT shapes (and how much of each) make one AU at full intensity. It follows upstream
   ICT-FaceKit's FACS table (see factory/assets and ../shared/assets/ict-facekit/NOTICE.md), plus two documented
   additions: AU6 also uses `cheekRaiser`, the shape named for it, and AU25/AU26 are built from partial
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
     together, just enough; a closing lid stops column by column where it meets the lower lid (`stop_blinks`);
   - a closed lid pushes its eyeball back behind the socket (`retract_eyeballs`), so no eye white shows through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from factory.face.model import FaceModel
from factory.face.topology import find_margins
from factory.spec.labels import RIG_AUS, validate_aus

AU_SHAPES: dict[str, dict[str, float]] = {
    "AU1": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0},
    "AU2": {"browOuterUp_L": 1.0, "browOuterUp_R": 1.0},
    "AU4": {"browDown_L": 1.0, "browDown_R": 1.0},
    "AU5": {"eyeWide_L": 1.0, "eyeWide_R": 1.0},
    "AU6": {"cheekSquint_L": 1.0, "cheekSquint_R": 1.0, "cheekRaiser_L": 0.7, "cheekRaiser_R": 0.7},
    "AU7": {"eyeSquint_L": 1.0, "eyeSquint_R": 1.0},
    "AU9": {"noseSneer_L": 1.0, "noseSneer_R": 1.0},
    "AU10": {"mouthShrugUpper": 1.0},
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


def au_weight(au: str, intensity: int) -> float:
    return float(intensity) if au == "AU43" else INTENSITY_WEIGHT[intensity]


class AURig:
    def __init__(self, model: FaceModel):
        self.model = model
        names = model.expression_names
        self.au_matrix = torch.zeros(len(RIG_AUS), len(names))  # (A, E): shape weights of each AU at full intensity
        for a, au in enumerate(RIG_AUS):
            for shape, amount in AU_SHAPES[au].items():
                self.au_matrix[a, model.expression_index(shape)] = amount
        self.margins = find_margins(model)
        # Gap change of every margin pair per unit weight of every shape (E, P), and the lowest change that any
        # single AU at its maximum makes (P,): how far the shapes themselves take a pair.
        self.gap_rates = [margin.gaps(model.neutral + model.expression_basis) - margin.gaps(model.neutral)
                          for margin in self.margins]
        self.lowest_au_change = [(self.au_matrix @ rates).amin(dim=0) for rates in self.gap_rates]
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
        return (au_weights @ self.au_matrix).clamp(0.0, 1.0)

    def gap_floors(self, rest_verts: torch.Tensor) -> list[torch.Tensor]:
        """Per margin, (B, P) the lowest allowed gap change from this identity's expressionless face: closing
        until the margins meet (gap 0), or further where a single AU at its maximum goes further."""
        return [torch.minimum(-margin.gaps(rest_verts), lowest) for margin, lowest in zip(self.margins, self.lowest_au_change)]

    def vertices(self, identity: torch.Tensor, aus_list: Sequence[Mapping[str, int]]) -> torch.Tensor:
        """(B, V, 3) meshes. `identity` is (I,) for one person in every expression, or (B, I)."""
        weights = self.expression_weights(aus_list).to(self.model.neutral)
        identity = torch.as_tensor(identity, dtype=torch.float32)
        if identity.ndim == 1:
            identity = identity.expand(len(aus_list), -1)
        floors = self.gap_floors(self.model.vertices(identity, torch.zeros_like(weights)))
        weights = self.guard(weights, floors)
        verts = self.model.vertices(identity, weights)
        verts = self.stop_blinks(verts, weights, floors)
        return self.retract_eyeballs(verts, weights)

    def guard(self, weights: torch.Tensor, floors: list[torch.Tensor]) -> torch.Tensor:
        """Scale down the eye-open shapes (brows, cheeks, squint, lips) that would push a margin pair below its
        floor, together and just enough. The eye-closing shapes are left to `stop_blinks`."""
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

    def stop_blinks(self, verts: torch.Tensor, weights: torch.Tensor, floors: list[torch.Tensor]) -> torch.Tensor:
        """Let each column of a closing lid stop where it meets the lower lid.

        When squint and cheek raiser have already lifted the lower lid, a full blink would push the upper lid
        through it. One factor for the whole blink would stop it at the first column that meets and leave the
        rest of the eye open; instead a factor is found for every margin pair and interpolated along x over the
        vertices the blink moves, so the eye closes everywhere and crosses nowhere.
        """
        verts = verts.clone()
        zero = torch.zeros_like(weights)
        for margin, rates, floor in zip(self.margins, self.gap_rates, floors):
            if margin.region not in BLINK_OF_EYE:
                continue
            blink = self.model.expression_index(BLINK_OF_EYE[margin.region])
            moving = weights[:, blink, None] * rates[blink]  # (B, P)
            rest = torch.where(self.eye_closing, zero, weights) @ rates
            limit = crossing_limit(rest, moving, floor)
            if bool((limit >= 1).all()):
                continue
            pair_x = self.model.neutral[margin.upper, 0]
            order = torch.argsort(pair_x)
            moved = self.blink_support[blink]
            column = interpolate(self.model.neutral[moved, 0], pair_x[order], limit[:, order])  # (B, M)
            undo = (1 - column) * weights[:, blink, None]
            verts[:, moved] -= undo[..., None] * self.model.expression_basis[blink, moved]
        return verts

    def retract_eyeballs(self, verts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Push each eyeball back, behind its socket, as its lid closes (EYEBALL_RETRACTION_CM at a full blink).

        The published blink leaves a thin slit between the lid margins of some identities, and identity modes can
        bulge an eyeball up to 0.8 mm past the closed lid: both showed the white of the eye or a pupil dot through
        a closed eye. Behind the socket, the slit shows the socket's shadowed skin, like a lash line. With the eye
        open the shift is zero (AU43 is binary), and a closed lid hides where the eyeball went."""
        verts = verts.clone()
        for shape, eyeball in EYEBALL_OF_BLINK.items():
            closing = weights[:, self.model.expression_index(shape)]
            verts[:, getattr(self.model.layout, eyeball), 2] -= EYEBALL_RETRACTION_CM * closing[:, None]
        return verts


def crossing_limit(rest: torch.Tensor, moving: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Per pair, the largest s in [0, 1] with rest + s * moving >= floor (1 where the pair does not cross)."""
    crossing = (rest + moving < floor) & (moving < 0)
    limit = torch.where(crossing, (floor - rest) / moving.clamp(max=-1e-12), torch.ones_like(moving))
    return limit.clamp(0.0, 1.0)


def interpolate(x: torch.Tensor, known_x: torch.Tensor, known_y: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of (B, K) values at sorted `known_x` onto `x` (M,), constant beyond the ends."""
    right = torch.searchsorted(known_x, x).clamp(1, len(known_x) - 1)
    left = right - 1
    t = ((x - known_x[left]) / (known_x[right] - known_x[left]).clamp(min=1e-9)).clamp(0.0, 1.0)
    return known_y[:, left] * (1 - t) + known_y[:, right] * t
