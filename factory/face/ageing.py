"""Skin laxity of older faces, in the shape: what gravity and lost elasticity do to a face after 60.

    offsets = skin_laxity(model, rest, age=85)     # (V, 3) cm, or None under ELDER_FROM years
    verts = verts + offsets                         # the same offsets on every expression of the identity

Neither bundled face model has an age mode (ICT's and FLAME's identity modes mix age with everything else), so the
laxity is a few smooth displacements placed by the identity's own landmarks on its expressionless face, each a
Gaussian bump on the skin (never the eyeballs, teeth or mouth interior), scaled by `elder_factor` (0 at 60 years,
1 at 90): jowls (the lower cheeks hang over the jaw line beside the chin), the malar fat pad sliding down the cheek,
bags under the eyes, the lateral brows and the nose tip drooping. The sizes are those of published age
morphometry, rounded: jowls and cheeks descend by several millimetres between 60 and 90, lower-lid bags bulge by
a few; faces under 60 get no offsets at all (None), so their meshes are exactly as before.
"""

from __future__ import annotations

import torch

from factory.face.model import FaceModel
from factory.spec.hair import ELDER_FROM, elder_factor

__all__ = ["ELDER_FROM", "elder_factor", "skin_laxity"]


# Bumps: (landmarks whose mean is the centre, offset of the centre (cm), sigma (cm), displacement at full age (cm)).
# Multi-PIE 68-point numbering: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
BUMPS = (
    ((5, 48), (0.0, 0.3, 0.0), 1.6, (-0.2, -0.8, 0.1)),  # jowl, the face's right (-x): beside the chin, over the jaw
    ((11, 54), (0.0, 0.3, 0.0), 1.6, (0.2, -0.8, 0.1)),  # jowl, left
    ((2, 31), (0.0, -0.4, 0.0), 1.7, (0.0, -0.5, 0.0)),  # malar fat pad, right
    ((14, 35), (0.0, -0.4, 0.0), 1.7, (0.0, -0.5, 0.0)),  # malar fat pad, left
    ((41, 40), (0.0, -0.85, 0.0), 0.55, (0.0, -0.1, 0.25)),  # bag under the right eye
    ((46, 47), (0.0, -0.85, 0.0), 0.55, (0.0, -0.1, 0.25)),  # left
    ((17, 18), (0.0, 0.0, 0.0), 1.0, (0.0, -0.2, 0.0)),  # lateral brow, right
    ((25, 26), (0.0, 0.0, 0.0), 1.0, (0.0, -0.2, 0.0)),  # lateral brow, left
    ((30,), (0.0, 0.0, 0.0), 0.7, (0.0, -0.12, -0.03)),  # nose tip
)


def skin_laxity(model: FaceModel, rest: torch.Tensor, age: float) -> torch.Tensor | None:
    """(V, 3) offsets (cm) of the skin of an identity's expressionless mesh `rest` at `age`; None under ELDER_FROM."""
    elder = elder_factor(age)
    if elder <= 0:
        return None
    landmarks = model.landmark_points(rest)
    movable = (model.layout.skin & ~model.layout.eyeballs & ~model.layout.mouth).float()[:, None]
    offsets = torch.zeros_like(rest)
    for ids, shift, sigma, displacement in BUMPS:
        centre = landmarks[list(ids)].mean(dim=0) + torch.tensor(shift)
        weight = torch.exp(-0.5 * ((rest - centre) ** 2).sum(dim=1) / sigma**2)
        offsets += weight[:, None] * torch.tensor(displacement)
    return offsets * movable * elder
