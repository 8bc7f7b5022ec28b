"""Surface detail finer than the mesh, applied by the shader to the albedo and normals of the covered pixels.

    detail = SurfaceDetail(relief=relief, depth=depth, edge_gap=gap)
    albedo, normal = detail.apply(pixels, uv, albedo, normal)

Two kinds, both per mesh of a batch (one face in N expressions), so they can change with the expression:
- a **relief map** in UV space (darkening of the albedo at full depth and a world-space normal tilt per texel:
  creases, whose walls catch or lose the light), shown at each vertex by `depth` (0 none, 1 full; more is
  allowed). The renderer knows nothing of what made it: factory/face/wrinkles.py turns an expression's
  compression of the skin into `depth`.
- a **shadow below an edge**: `edge_gap` is each vertex's distance (cm) below an occluding edge (an upper eyelid
  over its eyeball); the albedo darkens by EDGE_SHADOW at the edge, fading over EDGE_SOFTNESS_CM. Per-vertex
  distances interpolate exactly enough on coarse triangles where a per-vertex shadow would be blocky.

Only the pixels whose triangle has some detail are touched, so a neutral face costs almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factory.render.pixels import CoveredPixels, sample_texture

EDGE_SHADOW = 0.7  # share of the albedo lost right under the edge
EDGE_SOFTNESS_CM = 0.15  # the shadow fades by 1/e over this distance below the edge
NO_EDGE_CM = 10.0  # edge_gap of vertices with no edge above them: far outside any shadow


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class SurfaceDetail:
    relief: torch.Tensor  # (S, S, 4): albedo darkening at full depth, then the normal tilt (3), row 0 = v 1
    depth: torch.Tensor  # (N, V) how much of the relief each mesh shows at each vertex
    edge_gap: torch.Tensor | None = None  # (N, V) cm below an occluding edge; NO_EDGE_CM where there is none

    def to(self, device: torch.device) -> "SurfaceDetail":
        gap = None if self.edge_gap is None else self.edge_gap.to(device)
        return SurfaceDetail(self.relief.to(device), self.depth.to(device), gap)

    def vertex_has_detail(self) -> torch.Tensor:
        """(N·V,) flattened like `CoveredPixels.corner_rows` index it: whether each vertex of each mesh shows
        relief or lies in an edge's shadow."""
        active = self.depth > 0
        if self.edge_gap is not None:
            active = active | (self.edge_gap < 6 * EDGE_SOFTNESS_CM)
        return active.reshape(-1)

    def apply(self, pixels: CoveredPixels, uv: torch.Tensor, albedo: torch.Tensor,
              normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 3) albedo and unit normals with the detail applied, IN PLACE (the shader's own fresh tensors);
        `uv` (P, 2) are the pixels' texture coordinates. Only pixels with a detailed corner are computed."""
        active = self.vertex_has_detail()
        rows = pixels.corner_rows
        touched = active.index_select(0, rows[0]) | active.index_select(0, rows[1]) | active.index_select(0, rows[2])
        chosen = torch.nonzero(touched).squeeze(1)
        if chosen.numel() == 0:
            return albedo, normal
        rows, bary = rows[:, chosen], pixels.bary[:, chosen]
        depth = interpolate_rows(self.depth, rows, bary)
        relief = sample_texture(self.relief, uv.index_select(0, chosen)) * depth[:, None]
        shade = 1 - relief[:, 0]
        if self.edge_gap is not None:
            gap = interpolate_rows(self.edge_gap, rows, bary).clamp(min=0)
            shade = shade * (1 - EDGE_SHADOW * torch.exp(-gap / EDGE_SOFTNESS_CM))
        albedo.index_copy_(0, chosen, albedo.index_select(0, chosen) * shade.clamp(min=0)[:, None])
        normal.index_copy_(0, chosen, F.normalize(normal.index_select(0, chosen) - relief[:, 1:], dim=-1))
        return albedo, normal


def interpolate_rows(values: torch.Tensor, rows: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """(N, V) per-vertex values → (K,) at pixels given by their corner rows (3, K) into the flattened values and
    barycentrics (3, K)."""
    flat = values.reshape(-1)
    return sum(flat.index_select(0, rows[k]) * bary[k] for k in range(3))
