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
    return rasterize_screens(list(screen), [faces] * screen.shape[0], image_size, cull_backfaces)


def rasterize_screens(screens: list[torch.Tensor], faces: list[torch.Tensor], image_size: int, cull_backfaces: bool):
    """Meshes of different sizes in one call (factory/render/raster_batch.py): screens[n] (V_n, 3) with faces[n]
    (F_n, 3) → pix_to_face (per-mesh face ids), zbuf (N, S, S), bary (N, S, S, 3). pytorch3d rasterizes each mesh of
    a batch on its own (its bins are per mesh), so a mesh's fragments do not depend on the others in the call."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    ndc = [torch.stack([1 - (2 * s[:, 0] + 1) / image_size, 1 - (2 * s[:, 1] + 1) / image_size, s[:, 2]], dim=-1).float()
           for s in screens]
    meshes = Meshes(verts=ndc, faces=faces)
    pix_to_face, zbuf, bary, _ = rasterize_meshes(
        meshes,
        image_size=image_size,
        blur_radius=0.0,
        faces_per_pixel=1,
        bin_size=None if meshes.device.type == "cuda" else 0,  # coarse-to-fine is CUDA only
        # On CUDA a bin may hold most faces of a dense region (the ICT mouth interior); an overflowing bin drops
        # faces silently but for a warning, so allow all of them (N × bins × F int32: ~50 MB per 512 px mesh).
        max_faces_per_bin=max(len(f) for f in faces),
        perspective_correct=True,
        cull_backfaces=cull_backfaces,
    )
    first_face = meshes.mesh_to_faces_packed_first_idx().view(-1, 1, 1)
    pix_to_face = pix_to_face[..., 0]
    pix_to_face = torch.where(pix_to_face >= 0, pix_to_face - first_face, pix_to_face)
    return pix_to_face, zbuf[..., 0], bary[..., 0, :]
