"""The covered pixels of a batch of Fragments, packed flat: what shaders and heatmaps interpolate over.

    pixels = CoveredPixels(fragments, meshes)
    normal = pixels.interpolate_vertex(meshes.vertex_normals)     # (P, 3) at the P covered pixels
    image = pixels.scatter(colour, fill=background)               # (N, H, W, 3)

A 512 px head covers about a third of the frame, so shading only the covered pixels does a third of the work.
Building this costs about 0.1 s for 11 meshes at 512 px on one CPU core, so one is built per view and shared by
everything that reads that view (shading, heatmaps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from factory.render.camera import Camera
from factory.render.mesh import Meshes
from factory.render.raster import Fragments


class CoveredPixels:
    """Where the covered pixels are, which triangle each shows, with which barycentrics. Attributes are
    interpolated at these pixels only, corner by corner (three gathers and two fused multiply-adds), which is
    several times faster than gathering (P, 3, C) blocks and summing them."""

    def __init__(self, fragments: Fragments, meshes: Meshes):
        pix_to_face = fragments.pix_to_face[..., 0]  # (N, H, W)
        self.shape = pix_to_face.shape
        self.mask = pix_to_face >= 0
        self.flat_index = torch.nonzero(self.mask.reshape(-1)).squeeze(1)  # (P,) into N·H·W
        self.batch = self.flat_index // (self.shape[1] * self.shape[2])  # (P,) the image
        self.image_pixel = self.flat_index - self.batch * (self.shape[1] * self.shape[2])  # (P,) into H·W (no 2nd division)
        self.face = pix_to_face.reshape(-1).index_select(0, self.flat_index)  # (P,)
        self.bary = fragments.bary_coords.reshape(-1, 3).index_select(0, self.flat_index).T.contiguous()  # (3, P)
        # (3, P) row of each corner's vertex in a batch of per-vertex values flattened to (N·V, C)
        # (Gathered from the faces' columns: index_select on (3, F) then an in-place add is 2× faster than gathering
        # (P, 3) rows, adding a broadcast column and transposing.)
        self.corner_rows = meshes.faces.T.contiguous().index_select(1, self.face).add_(self.batch * meshes.num_vertices)
        self.corner_faces = self.face * 3
        self.faces = meshes.faces

    def _blend(self, corners: list[torch.Tensor]) -> torch.Tensor:
        out = corners[0] * self.bary[0, :, None]
        out.addcmul_(corners[1], self.bary[1, :, None])
        return out.addcmul_(corners[2], self.bary[2, :, None])

    def interpolate_vertex(self, values: torch.Tensor) -> torch.Tensor:
        """(N, V, C) per-vertex values → (P, C) at the covered pixels."""
        flat = values.reshape(-1, values.shape[-1])
        return self._blend([flat.index_select(0, rows) for rows in self.corner_rows])

    def interpolate_vertex_channels(self, values: torch.Tensor) -> list[torch.Tensor]:
        """(N, V, C) per-vertex values → C tensors (P,), one per channel: the same numbers as interpolate_vertex,
        gathered channel by channel from a (C, N·V) copy, which is faster for a few channels read one by one."""
        channels = []
        for channel in values.reshape(-1, values.shape[-1]).T.contiguous():
            out = channel.take(self.corner_rows[0]) * self.bary[0]
            out.addcmul_(channel.take(self.corner_rows[1]), self.bary[1])
            channels.append(out.addcmul_(channel.take(self.corner_rows[2]), self.bary[2]))
        return channels

    def interpolate_shared(self, values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """(V, C) per-vertex values shared by every mesh of the batch → (Q, C) at the covered pixels `where` (Q,)."""
        corners = self.faces.index_select(0, self.face.index_select(0, where)).T
        bary = self.bary[:, where]
        out = values.index_select(0, corners[0]) * bary[0, :, None]
        out.addcmul_(values.index_select(0, corners[1]), bary[1, :, None])
        return out.addcmul_(values.index_select(0, corners[2]), bary[2, :, None])

    def interpolate_corner(self, values: torch.Tensor) -> torch.Tensor:
        """(F, 3, C) per-triangle-corner values (UVs) → (P, C)."""
        flat = values.reshape(-1, values.shape[-1])
        return self._blend([flat.index_select(0, self.corner_faces + k) for k in range(3)])

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
