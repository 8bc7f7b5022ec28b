"""pytorch3d's rasterizer (CUDA: coarse-to-fine, fast and differentiable; CPU: naive, slow) behind the same
screen-space interface as `raster_torch.rasterize_screen`.

pytorch3d wants vertices in its NDC: +X left, +Y up, pixel centres at ±(1 - (2i + 1) / S) for a square image,
and z the camera depth (as its MeshRasterizer passes it, so that perspective correction is exact). Its
pix_to_face indexes packed faces (mesh n's faces start at n·F); we return per-mesh indices.
"""

from __future__ import annotations

import torch

NAME = "pytorch3d"  # the backend's name in RenderConfig.backend and meta.json


def available() -> bool:
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_screen(screen: torch.Tensor, faces: torch.Tensor, image_size: int, cull_backfaces: bool):
    """screen (N, V, 3): pixel x, pixel y, depth z; faces (F, 3) → pix_to_face, zbuf (N, S, S), bary (N, S, S, 3)."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    batch, num_faces = screen.shape[0], faces.shape[0]
    ndc = torch.stack([1 - (2 * screen[..., 0] + 1) / image_size, 1 - (2 * screen[..., 1] + 1) / image_size, screen[..., 2]], dim=-1)
    meshes = Meshes(verts=ndc.float(), faces=faces.expand(batch, -1, -1))
    pix_to_face, zbuf, bary, _ = rasterize_meshes(
        meshes,
        image_size=image_size,
        blur_radius=0.0,
        faces_per_pixel=1,
        bin_size=None if screen.is_cuda else 0,  # coarse-to-fine is CUDA only
        # On CUDA a bin may hold most faces of a dense region (the ICT mouth interior); an overflowing bin drops
        # faces silently but for a warning, so allow all of them (N × bins × F int32: ~50 MB per 512 px mesh).
        max_faces_per_bin=num_faces,
        perspective_correct=True,
        cull_backfaces=cull_backfaces,
    )
    first_face = (torch.arange(batch, device=screen.device) * num_faces).view(batch, 1, 1)
    pix_to_face = pix_to_face[..., 0]
    pix_to_face = torch.where(pix_to_face >= 0, pix_to_face - first_face, pix_to_face)
    return pix_to_face, zbuf[..., 0], bary[..., 0, :]
