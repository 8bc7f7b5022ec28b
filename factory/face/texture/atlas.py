"""The UV atlas: every rendered triangle of the face model packed into one square texture, and what each texel shows.

A model's UVs may use several charts that overlap in UV space (ICT keeps each sub-mesh in its own UDIM tile, and its
eyeballs overlap the face in tile 0); one texture needs one layout. The model's `FaceLayout` says which cell of the
square each triangle's chart goes to (`face_cell`, `cells`); the atlas packs them and rasterizes the UV triangles
once, so each texel knows its triangle and the point of the neutral template it shows. The atlas API is the same for
every model: `corner_uvs` per rendered triangle, `texel_face`, `texel_position`.

Triangles whose cell is -1 are left out of the rendered mesh. ICT's eye shells (lacrimal fluid, eye blend, occlusion)
and eyelash cards only look right through transparency, which a single-layer rasterizer cannot do: the shells would
hide the eyes, and the lash cards, drawn opaque, become dark goggles. The texturer paints a lash line on the lid
margins instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from factory.face.layout import AtlasCell
from factory.face.model import FaceModel
from factory.render.camera import Camera
from factory.render.raster import rasterize

CELL_MARGIN = 2.0 / 1024  # inset of each cell (2 texels at 1024), so bilinear lookups never reach a neighbour


@dataclass(frozen=True)
class UVAtlas:
    """The rendered triangles with UVs packed into one square texture, and what each texel shows."""

    face_index: torch.Tensor  # (Fr,) ids of the rendered triangles among the model's faces
    faces: torch.Tensor  # (Fr, 3) their vertex ids
    face_part: torch.Tensor  # (Fr,) their part ids
    corner_uvs: torch.Tensor  # (Fr, 3, 2) atlas UV of each corner, in 0..1 with v up (OBJ convention)
    size: int
    texel_face: torch.Tensor  # (S, S) rendered-triangle id shown by each texel, -1 in gutters (row 0 = top, v = 1)
    texel_position: torch.Tensor  # (S, S, 3) the neutral template point each texel shows (cm)

    @classmethod
    def build(cls, model: FaceModel, size: int) -> "UVAtlas":
        cell = model.layout.face_cell
        face_index = torch.nonzero(cell >= 0).squeeze(1)
        faces = model.faces[face_index]
        corner_uvs = pack_cells(model.uvs[model.face_uvs[face_index]], cell[face_index], model.layout.cells)
        texel_face, texel_position = rasterize_uv(corner_uvs, faces, model.neutral, size)
        return cls(face_index=face_index, faces=faces, face_part=model.face_part[face_index], corner_uvs=corner_uvs,
                   size=size, texel_face=texel_face, texel_position=texel_position)

    @cached_property
    def texel_vertex(self) -> torch.Tensor:
        """(S, S) first vertex id of the triangle each texel shows (-1 in gutters): tells sub-meshes apart."""
        return torch.where(self.texel_face >= 0, self.faces[self.texel_face.clamp(min=0), 0], -1)

    @cached_property
    def texel_part(self) -> torch.Tensor:
        return torch.where(self.texel_face >= 0, self.face_part[self.texel_face.clamp(min=0)], 0)

    def shows(self, vertices: torch.Tensor) -> torch.Tensor:
        """(S, S) whether each texel shows a triangle of the sub-mesh whose vertices are marked in `vertices` (V,) bool."""
        return (self.texel_vertex >= 0) & vertices[self.texel_vertex.clamp(min=0)]


def pack_cells(uvs: torch.Tensor, face_cell: torch.Tensor, cells: tuple[AtlasCell, ...]) -> torch.Tensor:
    """(F, 3, 2) model UVs of the rendered triangles → their atlas UVs, each chart in its cell of the square."""
    corner_uvs = torch.zeros_like(uvs)
    margin = CELL_MARGIN
    for index, (x, y, side, tile_u) in enumerate(cells):
        chosen = face_cell == index
        local = uvs[chosen] - torch.tensor([float(tile_u), 0.0])
        inner = side - 2 * margin
        u = x + margin + local[..., 0] * inner
        v = 1.0 - (y + margin + (1.0 - local[..., 1]) * inner)
        corner_uvs[chosen] = torch.stack([u, v], dim=-1)
    return corner_uvs


def rasterize_uv(corner_uvs: torch.Tensor, faces: torch.Tensor, neutral: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which triangle covers each texel, and the template point there: the UV layout drawn as a flat mesh.

    An identity camera (K = I, R = I, t = 0) maps (x·z, y·z, z) to pixel (x, y) at depth z. Where UV charts overlap
    (the back of an eyeball shares UVs with its front), the texel should show what a camera in front of the face
    sees, so each triangle is placed at a depth that falls as its template point moves forward (+z); a triangle's
    three corners share that depth, so its barycentrics stay affine in UV space."""
    texel_xy = torch.stack([corner_uvs[..., 0] * size - 0.5, (1.0 - corner_uvs[..., 1]) * size - 0.5], dim=-1)
    forward = neutral[faces][..., 2].mean(dim=1)  # (Fr,) template depth of each triangle
    depth = 1.0 + 0.5 * (forward.max() - forward) / (forward.max() - forward.min())
    depth = depth[:, None, None].expand(-1, 3, 1)
    flat = torch.cat([texel_xy * depth, depth], dim=-1).reshape(1, -1, 3)
    corner_faces = torch.arange(flat.shape[1]).reshape(-1, 3)
    camera = Camera(K=torch.eye(3), R=torch.eye(3), t=torch.zeros(3), image_size=size)
    fragments = rasterize(flat, corner_faces, camera, backend="torch")
    texel_face = fragments.pix_to_face[0, ..., 0]
    bary = fragments.bary_coords[0, :, :, 0].clamp(min=0)  # (S, S, 3)
    corners = neutral[faces[texel_face.clamp(min=0)]]  # (S, S, 3 corners, 3)
    position = (bary.unsqueeze(-1) * corners).sum(dim=2)
    return texel_face, torch.where(texel_face[..., None] >= 0, position, torch.zeros_like(position))


def gutter_sources(covered: torch.Tensor, steps: int) -> torch.Tensor:
    """(S·S,) for each texel, the flat index of the texel whose colour it takes: itself when covered, else a covered
    texel up to `steps` away (grown one ring at a time), else itself. Filling the gutters around every chart this
    way keeps bilinear lookups at chart borders from mixing in the empty gutter colour."""
    size = covered.shape[0]
    source = torch.where(covered.reshape(-1), torch.arange(size * size, dtype=torch.float64), -1.0).view(1, 1, size, size)
    for _ in range(steps):
        grown = F.max_pool2d(source, 3, stride=1, padding=1)
        source = torch.where(source >= 0, source, grown)
    source = source.reshape(-1).long()
    return torch.where(source >= 0, source, torch.arange(size * size))
