"""Pain-region heatmaps: where the face moved from the neutral, drawn on the frontal view of the pain face.

Per vertex, heat = |pain − neutral| (cm) / NORMALISATION_CM, clipped to [0, 1], interpolated over the covered pixels
of the pain mesh in the frontal view (the renderer's `RenderedView.pixels`: no extra raster pass) and drawn with the
'hot' colormap on black. The constant is FIXED, so heat is comparable across identities and datasets: a pixel at
1.0 moved NORMALISATION_CM or more.
"""

from __future__ import annotations

import numpy as np
import torch

from factory.render.pixels import CoveredPixels

# 1.0 ≈ a strong AU. Measured on the template with factory.face.rig.AURig, each PSPI AU alone at maximum intensity moves
# its top 1 % of face vertices by at least: AU4 0.47 cm, AU6 0.75, AU7 0.27, AU9 0.88, AU10 0.42, AU43 1.03 (peaks
# 0.37–1.78 cm). 1 cm therefore saturates only where a maximal AU moves most, and an AU at intensity 1–2 stays in
# the dark-red third of the scale.
NORMALISATION_CM = 1.0


def vertex_heat(pain: torch.Tensor, neutral: torch.Tensor) -> torch.Tensor:
    """(..., V) heat in [0, 1] of each vertex of `pain` (..., V, 3) against `neutral` (V, 3)."""
    return ((pain - neutral).norm(dim=-1) / NORMALISATION_CM).clamp(0, 1)


def hot_colormap(values: torch.Tensor) -> torch.Tensor:
    """matplotlib's 'hot': black → red → yellow → white as values go 0 → 1; (...,) → (..., 3) in 0..1."""
    return torch.stack([(3 * values).clamp(0, 1), (3 * values - 1).clamp(0, 1), (3 * values - 2).clamp(0, 1)], dim=-1)


def heatmap_layer(pixels: CoveredPixels, heat: torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) uint8 heatmaps from per-vertex heat (N, V) and the covered pixels of the pain meshes."""
    values = pixels.interpolate_vertex(heat[..., None])[:, 0]
    image = pixels.scatter(hot_colormap(values), fill=0.0)
    return (image * 255).round().to(torch.uint8).cpu().numpy()
