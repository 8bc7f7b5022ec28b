"""Expression shapes that the published model lacks, built from its own neutral mesh when the model loads.

ICT's `browDown_L/R` lowers the brows but hardly brings them together: the inner brow head (landmark 22) moves
1.7 mm toward the midline while the middle of the brow moves 4.6 mm, so the brow shortens instead of sliding
toward the nose. A FACS coder scores AU4 (brow lowerer: corrugator, depressor supercilii, procerus) from the brows
drawn down AND together, which bunches the skin between them into vertical furrows. `browKnit_L/R` add that pull.

Each derived shape is a displacement field over the neutral mesh, stored beside the published shapes in
`FaceModel.expression_basis` under its own name, so the rig drives it like any other shape and a transfer to
another face model (FLAME, through a correspondence) carries it the same way. Fields are smooth products of
windows placed by the 68 landmarks (Multi-PIE numbering), on the face surface only, in centimetres.

    extra = derived_shapes(neutral, landmarks, movable)     # {"browKnit_L": (V, 3), "browKnit_R": (V, 3)}
"""

from __future__ import annotations

import torch

from factory.face.geometry import interpolate, smoothstep

# Multi-PIE landmark numbers used here (0-based): each brow from its tail inward, and the nose bridge top.
RIGHT_BROW, LEFT_BROW = slice(17, 22), slice(22, 27)
NASION = 27

# browKnit at full weight: the inner brow head slides this far toward the midline, and down and forward.
KNIT_MEDIAL_CM = 0.42
KNIT_DOWN_CM = 0.22
KNIT_FORWARD_CM = 0.08  # the bunched brow head bulges a little
KNIT_PEAK_X_CM = 1.6  # distance from the midline where the pull is strongest (just outside the brow head) …
KNIT_REACH_X_CM = 5.0  # … fading to nothing at the brow tail
KNIT_BELOW_BROW_CM = 1.1  # vertical extent of the pulled skin under the brow line (stops above the upper lid) …
KNIT_ABOVE_BROW_CM = 2.2  # … and above it
KNIT_DEPTH_CM = 2.5  # only vertices at most this far behind the brow heads: the front of the face

DERIVED_SHAPES = ("browKnit_L", "browKnit_R")


def brow_knit(neutral: torch.Tensor, landmarks: torch.Tensor, movable: torch.Tensor, side: int) -> torch.Tensor:
    """(V, 3) the corrugator's pull on one side (`side` +1: the face's left, +x; -1: its right).

    Along x the pull rises from zero at the midline to its peak just outside the brow head and fades toward the
    brow tail, so the skin between the brow heads is compressed (where the glabellar furrows form) while the
    brow itself slides as a whole. Across it, a window around the brow line that stops above the upper lid."""
    lm = neutral[landmarks]
    brow = lm[LEFT_BROW] if side > 0 else lm[RIGHT_BROW]
    x = neutral[:, 0] * side  # distance from the midline toward this side
    rise = smoothstep(0.0, KNIT_PEAK_X_CM, x)
    fade = 1 - smoothstep(KNIT_PEAK_X_CM, KNIT_REACH_X_CM, x)
    along = rise * fade
    order = torch.argsort(brow[:, 0])
    height = neutral[:, 1] - interpolate(neutral[:, 0], brow[order, 0], brow[order, 1][None])[0]
    across = smoothstep(-KNIT_BELOW_BROW_CM, -0.2, height) * (1 - smoothstep(0.6, KNIT_ABOVE_BROW_CM, height))
    front = smoothstep(float(lm[NASION, 2]) - KNIT_DEPTH_CM, float(lm[NASION, 2]) - KNIT_DEPTH_CM + 0.8, neutral[:, 2])
    weight = along * across * front * movable.float()
    bulge = (1 - smoothstep(0.0, 2.0 * KNIT_PEAK_X_CM, (x - KNIT_PEAK_X_CM * 0.7).abs())) * across * front * movable.float()
    return torch.stack([-side * KNIT_MEDIAL_CM * weight, -KNIT_DOWN_CM * weight, KNIT_FORWARD_CM * bulge], dim=-1)


def derived_shapes(neutral: torch.Tensor, landmarks: torch.Tensor, movable: torch.Tensor) -> dict[str, torch.Tensor]:
    """DERIVED_SHAPES as (V, 3) displacement fields of a neutral mesh (V, 3) with its 68 `landmarks` (vertex ids);
    `movable` (V,) bool marks the face-surface vertices a shape may move (not eyeballs, teeth, lashes)."""
    return {"browKnit_L": brow_knit(neutral, landmarks, movable, +1),
            "browKnit_R": brow_knit(neutral, landmarks, movable, -1)}
