"""Meshes: a batch of meshes that share one triangle list, the unit the rasterizer and the shaders take.

    meshes = Meshes(verts, faces, corner_uvs, face_part)     # verts (N, V, 3): one face in N expressions
    meshes.vertex_normals                                    # (N, V, 3), computed on first use and kept
    Meshes(verts, faces, corner_uvs, face_part, normals)     # normals given: shading uses them as they are

In the factory a batch is one identity in all its expressions, so every view rasterizes all of them in one pass
and the vertex normals are computed once per expression, whatever the number of views.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Meshes:
    verts: torch.Tensor  # (N, V, 3) world space (cm)
    faces: torch.Tensor  # (F, 3) int64 vertex ids, shared by every mesh of the batch
    corner_uvs: torch.Tensor  # (F, 3, 2) texture coordinate of each triangle corner, in 0..1 with v up
    face_part: torch.Tensor  # (F,) part id of each triangle: segmentation, and per-part material
    normals: torch.Tensor | None = None  # (N, V, 3) unit normals to shade with, when not the geometry's own
    # (V, 4) per vertex: a plain material's linear albedo and how much it replaces the texture (1 on an occluder's
    # vertices, 0 on the textured face); None: the texture everywhere
    albedo: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_mesh(self.verts, self.faces)
        if self.normals is not None and self.normals.shape != self.verts.shape:
            raise ValueError(f"normals must be shaped like verts {tuple(self.verts.shape)}, got {tuple(self.normals.shape)}")
        if self.albedo is not None and self.albedo.shape != (self.verts.shape[1], 4):
            raise ValueError(f"albedo must be (V, 4) for {self.verts.shape[1]} vertices, got {tuple(self.albedo.shape)}")
        if self.corner_uvs.shape != (len(self.faces), 3, 2) or self.face_part.shape != (len(self.faces),):
            raise ValueError(f"Meshes with {len(self.faces)} faces need corner_uvs (F, 3, 2) and face_part (F,), got "
                             f"{tuple(self.corner_uvs.shape)} and {tuple(self.face_part.shape)}")

    def __len__(self) -> int:
        return self.verts.shape[0]

    @property
    def num_vertices(self) -> int:
        return self.verts.shape[1]

    @cached_property
    def vertex_normals(self) -> torch.Tensor:
        """(N, V, 3) unit normals: the given ones, or the area-weighted sum of the normals of the triangles around
        each vertex."""
        return self.normals if self.normals is not None else vertex_normals(self.verts, self.faces)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(N, V, 3) unit normals of meshes (N, V, 3) sharing `faces` (F, 3)."""
    corners = verts[:, faces]  # (N, F, 3, 3)
    face_normals = torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals.index_add_(1, faces[:, k], face_normals)
    return F.normalize(normals, dim=-1, eps=1e-12)


def check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    """A clear error for vertices that are not (N, V, 3) or faces that are not integer (F, 3) ids into them."""
    if verts.ndim != 3 or verts.shape[-1] != 3 or verts.shape[0] == 0:
        raise ValueError(f"verts must be (N, V, 3) with N >= 1, got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an integer (F, 3) tensor, got {faces.dtype} {tuple(faces.shape)}")
    if faces.numel() and (faces.min() < 0 or faces.max() >= verts.shape[1]):
        raise ValueError(f"faces index vertices 0..{verts.shape[1] - 1}, got indices {int(faces.min())}..{int(faces.max())}")
