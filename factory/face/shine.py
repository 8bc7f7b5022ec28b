"""How glossy the skin is, region by region: an oily T-zone (forehead, nose) and chin, matte cheeks.

    shine = skin_shine(model.neutral, model.neutral[model.landmarks])   # (V,) multiplier of the skin's specular

Placed by the 68 landmarks (Multi-PIE numbering) as smooth Gaussian regions, so it works on any face model that has
them; the identity's own oiliness (`Skin.shine`) scales the whole map. 1 is the skin's plain sheen.
"""

from __future__ import annotations

import torch

from factory.face.texture.fields import gaussian
from factory.face.texture.template import BROWS, LEFT_EYE, NOSE_TIP, RIGHT_EYE

CHIN = 8
NOSE_BRIDGE_TOP = 27
BASE_SHINE = 0.85  # away from the regions below
FOREHEAD_SHINE, NOSE_SHINE, CHIN_SHINE, CHEEK_SHINE = 0.75, 1.0, 0.35, -0.25  # added in each region


def skin_shine(points: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(P,) specular multiplier at template points: highest on the nose and the middle of the forehead."""
    lm = landmarks
    brow_top = float(lm[BROWS, 1].max())
    forehead = gaussian(points, torch.tensor([0.0, brow_top + 2.2, float(lm[NOSE_BRIDGE_TOP, 2]) - 0.5]), (2.8, 1.8, 3.0))
    nose = gaussian(points, (lm[NOSE_BRIDGE_TOP] + 2 * lm[NOSE_TIP]) / 3, (0.9, 2.0, 2.0))
    chin = gaussian(points, lm[CHIN] + torch.tensor([0.0, 0.9, 0.0]), (1.8, 1.0, 2.0))
    cheeks = sum(gaussian(points, lm[eye].mean(0) + torch.tensor([0.0, -2.5, -0.5]), (1.8, 1.5, 2.5))
                 for eye in (RIGHT_EYE, LEFT_EYE))
    return (BASE_SHINE + FOREHEAD_SHINE * forehead + NOSE_SHINE * nose + CHIN_SHINE * chin + CHEEK_SHINE * cheeks).clamp(min=0.3)
