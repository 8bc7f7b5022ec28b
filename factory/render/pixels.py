"""The covered pixels of a batch of Fragments, packed flat: what shaders and heatmaps interpolate over.

    pixels = CoveredPixels(fragments, meshes)
    normal = pixels.interpolate_vertex(meshes.vertex_normals)     # (P, 3) at the P covered pixels
    image = pixels.scatter(colour, fill=background)               # (N, H, W, 3)

A 512 px head covers about a third of the frame, so shading only the covered pixels does a third of the work.
One is built per view (11 meshes) and shared by everything that reads that view (shading, heatmaps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from factory.render import compiled
from factory.render.camera import Camera
from factory.render.mesh import Meshes
from factory.render.raster import Fragments


class CoveredPixels:
    """Where the covered pixels are, which triangle each shows, with which barycentrics. Attributes are
    interpolated at these pixels only. On a CPU, packing and interpolating run as compiled loops
    (factory/render/loops.py, several times faster); elsewhere as the torch code here, with the same results."""

    def __init__(self, fragments: Fragments, meshes: Meshes):
        pix_to_face = fragments.pix_to_face[..., 0]  # (N, H, W)
        self.shape = pix_to_face.shape
        self.mask = pix_to_face >= 0
        self.faces = meshes.faces
        image_pixels = self.shape[1] * self.shape[2]
        if compiled.runs_on(pix_to_face):
            self._pack_compiled(pix_to_face, fragments.bary_coords, meshes.num_vertices, int(self.mask.sum()))
        else:
            self.flat_index = torch.nonzero(self.mask.reshape(-1)).squeeze(1)  # (P,) into N·H·W
            self.face = pix_to_face.reshape(-1).index_select(0, self.flat_index)  # (P,)
            self.bary = fragments.bary_coords.reshape(-1, 3).index_select(0, self.flat_index).T.contiguous()  # (3, P)
            # (3, P) row of each corner's vertex in a batch of per-vertex values flattened to (N·V, C)
            # (Gathered from the faces' columns: index_select on (3, F) then an in-place add is 2× faster than
            # gathering (P, 3) rows, adding a broadcast column and transposing.)
            first_vertex = self.flat_index // image_pixels * meshes.num_vertices
            self.corner_rows = meshes.faces.T.contiguous().index_select(1, self.face).add_(first_vertex)
        self.batch = self.flat_index // image_pixels  # (P,) the image
        self.image_pixel = self.flat_index - self.batch * image_pixels  # (P,) into H·W (no 2nd division)

    def _pack_compiled(self, pix_to_face: torch.Tensor, bary: torch.Tensor, num_vertices: int, covered: int) -> None:
        """flat_index, face, bary and corner_rows as the torch code makes them, in one pass (loops.py)."""
        self.flat_index, self.face = torch.empty(covered, dtype=torch.int64), torch.empty(covered, dtype=pix_to_face.dtype)
        self.bary = torch.empty(3, covered, dtype=bary.dtype)
        self.corner_rows = torch.empty(3, covered, dtype=self.faces.dtype)
        compiled.loops().pack_covered_pixels(pix_to_face.reshape(-1).contiguous().numpy(), bary.reshape(-1, 3).contiguous().numpy(),
                                             self.faces.contiguous().numpy(), num_vertices, self.shape[1] * self.shape[2],
                                             self.flat_index.numpy(), self.face.numpy(), self.bary.numpy(), self.corner_rows.numpy())

    def blend(self, values: torch.Tensor, rows: torch.Tensor, bary: torch.Tensor | None = None) -> torch.Tensor:
        """(C, Q): each channel of (M, C) `values` at Q pixels, from the rows (3, Q) of each pixel's three corners in
        `values`, weighted by their barycentrics (3, Q) (default: every covered pixel's): v0·b0, then + v1·b1 and
        + v2·b2 (addcmul, fused)."""
        bary = self.bary if bary is None else bary
        if compiled.runs_on(values):
            out = torch.empty(values.shape[1], rows.shape[1], dtype=values.dtype)
            compiled.loops().blend_rows(values.contiguous().numpy(), rows.contiguous().numpy(), bary.contiguous().numpy(), out.numpy())
            return out
        out = torch.empty(values.shape[1], rows.shape[1], dtype=values.dtype, device=values.device)
        for channel, column in zip(out, values.T.contiguous()):  # one channel at a time: contiguous gathers
            torch.mul(column.take(rows[0]), bary[0], out=channel)
            channel.addcmul_(column.take(rows[1]), bary[1])
            channel.addcmul_(column.take(rows[2]), bary[2])
        return out

    def interpolate_vertex(self, values: torch.Tensor) -> torch.Tensor:
        """(N, V, C) per-vertex values → (P, C) at the covered pixels."""
        return self.blend(values.reshape(-1, values.shape[-1]), self.corner_rows).T

    def interpolate_vertex_channels(self, values: torch.Tensor) -> list[torch.Tensor]:
        """(N, V, C) per-vertex values → C contiguous tensors (P,), one per channel: interpolate_vertex's numbers,
        cheaper to read one channel at a time."""
        return list(self.blend(values.reshape(-1, values.shape[-1]), self.corner_rows))

    def interpolate_shared(self, values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """(V, C) per-vertex values shared by every mesh of the batch → (Q, C) at the covered pixels `where` (Q,)."""
        corners = self.faces.index_select(0, self.face.index_select(0, where)).T
        return self.blend(values, corners, self.bary[:, where]).T

    def interpolate_corner(self, values: torch.Tensor) -> torch.Tensor:
        """(F, 3, C) per-triangle-corner values (UVs) → (P, C)."""
        rows = self.face * 3 + torch.arange(3, device=self.face.device)[:, None]  # (3, P) rows of (F·3, C)
        return self.blend(values.reshape(-1, values.shape[-1]), rows).T

    def image_rays(self, camera: Camera) -> torch.Tensor:
        """(H·W, 3) world-space unit vectors toward the camera through every pixel centre of the image: minus the
        rays. What depends on the pixel alone is computed on these, once per image, then gathered (at_image_pixels)."""
        height, width = self.shape[1:]
        row, column = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=self.flat_index.device),
                                     torch.arange(width, dtype=torch.float32, device=self.flat_index.device), indexing="ij")
        pixel = torch.stack([column, row, torch.ones_like(row)], dim=-1).reshape(-1, 3)
        K, R = camera.K.to(pixel), camera.R.to(pixel)
        return -F.normalize(pixel @ torch.linalg.inv(K).T @ R, dim=-1)  # camera → world: Rᵀ K⁻¹ p, for rows

    def at_image_pixels(self, values: torch.Tensor) -> torch.Tensor:
        """(H·W, C) values per image pixel → (P, C) at the covered pixels (of every image of the batch)."""
        return values.index_select(0, self.image_pixel)

    def scatter(self, values: torch.Tensor, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(P, C) → (N, H, W, C) images, `fill` (a value or an (H, W, C) image) elsewhere."""
        fill = torch.as_tensor(fill, dtype=values.dtype)
        image = fill.expand(*self.shape, values.shape[-1]).clone()
        image.view(-1, values.shape[-1]).index_copy_(0, self.flat_index, values)
        return image


def sample_texture(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a square (S, S, C) texture (row 0 = v 1, the top of the image) at (P, 2) UVs → (P, C)."""
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], dim=-1).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[0, :, 0].T
