"""The UV atlas: every rendered triangle of the face model packed into one square texture, and what each texel shows.

The ICT model keeps each sub-mesh's UVs in its own unit tile (UDIM style: face in tile 0, head and neck in tile 1,
gums 2, teeth 3, eye shells 4–5, lashes 6), and the eyeballs overlap the face in tile 0. One texture needs one
layout, so the atlas packs every rendered tile into its own cell of one square and rasterizes the UV triangles
once, so each texel knows its triangle and the point of the neutral template it shows.

Two sub-meshes are left out of the rendered mesh because they only look right through transparency, which a
single-layer rasterizer cannot do: the eye shells (lacrimal fluid, eye blend, occlusion) would hide the eyes, and
the eyelash cards, drawn opaque, become dark goggles. The texturer paints a lash line on the lid margins instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from factory.face import ict
from factory.face.model import FaceModel
from factory.render.camera import Camera
from factory.render.raster import rasterize

# Atlas cells: UV tile → (x, y, size) of its square in the texture, as fractions of the side (y down).
# The face gets most of the texels; the eyeballs get their own cells because they overlap the face in tile 0.
# Each eyeball is two nested spheres (sclera, then an inner iris shell) whose UV maps differ, and the two eyes
# share one UV layout, mirrored; overlapping UVs cannot hold different colours, so each shell of each eye gets a
# cell of its own.
EYE_CELLS = {"sclera_left": ict.SCLERA_LEFT, "iris_left": ict.IRIS_LEFT,
             "sclera_right": ict.SCLERA_RIGHT, "iris_right": ict.IRIS_RIGHT}  # cell name → vertex range
ATLAS_CELLS = {
    0: (0.0, 0.0, 0.625),  # tile 0 without the eyeballs: face, brows, lips
    1: (0.625, 0.0, 0.375),  # head and neck, mouth socket, eye sockets
    "sclera_left": (0.625, 0.375, 0.1875),
    "sclera_right": (0.8125, 0.375, 0.1875),
    "iris_left": (0.75, 0.5625, 0.125),
    "iris_right": (0.875, 0.5625, 0.125),
    3: (0.0, 0.625, 0.375),  # teeth
    2: (0.375, 0.625, 0.375),  # gums and tongue
}
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
        if model.num_vertices != ict.VERTEX_COUNT:
            raise ValueError(f"the UV atlas knows the ICT face model's layout ({ict.VERTEX_COUNT} vertices); "
                             f"this model has {model.num_vertices}")
        first_vertex = model.faces[:, 0]
        keep = ~ict.EYE_SHELLS.contains(first_vertex) & ~ict.LASH_CARDS.contains(first_vertex)
        face_index = torch.nonzero(keep).squeeze(1)
        faces = model.faces[face_index]
        corner_uvs = pack_cells(model.uvs[model.face_uvs[face_index]], faces)
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

    def in_range(self, span: ict.VertexRange) -> torch.Tensor:
        """(S, S) whether each texel shows a triangle of the sub-mesh `span`."""
        return span.contains(self.texel_vertex)


def pack_cells(uvs: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F, 3, 2) model UVs (UDIM tiles) of the rendered triangles → their atlas UVs, each tile in its ATLAS_CELLS cell."""
    tile = torch.floor(uvs[..., 0].mean(dim=1)).long()
    eyeball = ict.EYEBALLS.contains(faces[:, 0])
    corner_uvs = torch.zeros_like(uvs)
    margin = CELL_MARGIN
    for cell, (x, y, side) in ATLAS_CELLS.items():
        if cell in EYE_CELLS:
            chosen, tile_u = EYE_CELLS[cell].contains(faces[:, 0]), 0
        else:
            chosen, tile_u = (tile == cell) & ~eyeball, cell
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
