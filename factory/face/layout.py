"""What each vertex and triangle of a face model is: the per-model description that generic code reads.

The rig, the texturer, the UV atlas and the cameras need to know a few parts of a mesh (the eyeballs, the surface
whose holes are the lid and lip margins, what to frame, what not to render, where the mouth interior is) and how
its UV charts pack into one texture. Each face model provides a `FaceLayout`; nothing outside the model's own
module knows its vertex numbering. ICT's comes from its vertex ranges (`ict_layout`, from `face/ict.py`); FLAME's is
worked out from its skinning weights and its correspondence with ICT (`face/flame/model.py`).

    layout.eyeball_left            # (V,) bool: the face's left (+x) eyeball
    layout.face_cell               # (F,) atlas cell of each triangle, -1 for triangles that are not rendered
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch

from factory.face import ict


class AtlasCell(NamedTuple):
    """Where one UV chart goes in the square texture: its square (x, y, side as fractions of the texture side, y
    down) and the u offset of the chart in the model's UVs (its UDIM tile: UVs u - tile_u in 0..1 fill the cell)."""

    x: float
    y: float
    side: float
    tile_u: float


@dataclass(frozen=True, eq=False)
class FaceLayout:
    skin: torch.Tensor  # (V,) bool: face, scalp and neck surface, what the correspondence between models maps
    margin_surface: torch.Tensor  # (V,) bool: the surface whose eye and mouth holes are bordered by the lid and lip margins
    framed: torch.Tensor  # (V,) bool: what the cameras frame from the chin up (face, forehead, temples, ears)
    eyeball_left: torch.Tensor  # (V,) bool: the face's left eyeball (+x)
    eyeball_right: torch.Tensor  # (V,) bool
    pupils: tuple[int, int]  # (left, right) vertex at the centre of each pupil, the front of the eye's optical axis
    mouth_socket: torch.Tensor  # (V,) bool, all False where the model has no mouth interior
    gums: torch.Tensor  # (V,) bool: gums and tongue
    teeth: torch.Tensor  # (V,) bool
    eye_sockets: torch.Tensor  # (V,) bool: the skin inside the eye sockets, behind the lids
    face_cell: torch.Tensor  # (F,) int64 atlas cell of each triangle, -1 where it is not rendered
    cells: tuple[AtlasCell, ...]

    @property
    def eyeballs(self) -> torch.Tensor:
        return self.eyeball_left | self.eyeball_right

    @property
    def mouth(self) -> torch.Tensor:
        """(V,) bool: the whole mouth interior (socket, gums, tongue, teeth)."""
        return self.mouth_socket | self.gums | self.teeth

    def to(self, device: str | torch.device) -> "FaceLayout":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return FaceLayout(**{name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in moved.items()})


# ICT's atlas: UV tile → cell. The face gets most of the texels; the eyeballs get their own cells because they overlap
# the face in tile 0. Each eyeball is two nested spheres (sclera, then an inner iris shell) whose UV maps differ, and
# the two eyes share one UV layout, mirrored; overlapping UVs cannot hold different colours, so each shell of each
# eye gets a cell of its own. Tiles 4–6 (eye shells, lashes) are not rendered (see texture/atlas.py).
ICT_TILE_CELLS = {
    0: AtlasCell(0.0, 0.0, 0.625, 0.0),  # tile 0 without the eyeballs: face, brows, lips
    1: AtlasCell(0.625, 0.0, 0.375, 1.0),  # head and neck, mouth socket, eye sockets
    3: AtlasCell(0.0, 0.625, 0.375, 3.0),  # teeth
    2: AtlasCell(0.375, 0.625, 0.375, 2.0),  # gums and tongue
}
ICT_EYE_CELLS = (  # vertex range → its cell (the eyeballs' UVs lie in tile 0)
    (ict.SCLERA_LEFT, AtlasCell(0.625, 0.375, 0.1875, 0.0)),
    (ict.SCLERA_RIGHT, AtlasCell(0.8125, 0.375, 0.1875, 0.0)),
    (ict.IRIS_LEFT, AtlasCell(0.75, 0.5625, 0.125, 0.0)),
    (ict.IRIS_RIGHT, AtlasCell(0.875, 0.5625, 0.125, 0.0)),
)


def ict_layout(neutral: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor, face_uvs: torch.Tensor) -> FaceLayout:
    """The ICT Face Model Light's layout, from its vertex ranges (face/ict.py) and UDIM tiles."""
    count = neutral.shape[0]
    ids = torch.arange(count)

    def mask(*spans: ict.VertexRange) -> torch.Tensor:
        return torch.stack([span.contains(ids) for span in spans]).any(dim=0)

    first = faces[:, 0]
    tile = torch.floor(uvs[face_uvs][..., 0].mean(dim=1)).long()
    cells = tuple(ICT_TILE_CELLS.values()) + tuple(cell for _, cell in ICT_EYE_CELLS)
    face_cell = torch.full((faces.shape[0],), -1, dtype=torch.int64)
    for index, number in enumerate(ICT_TILE_CELLS):
        face_cell[(tile == number) & ~ict.EYEBALLS.contains(first)] = index
    for index, (span, _) in enumerate(ICT_EYE_CELLS, start=len(ICT_TILE_CELLS)):
        face_cell[span.contains(first)] = index
    face_cell[ict.EYE_SHELLS.contains(first) | ict.LASH_CARDS.contains(first)] = -1

    def front(span: ict.VertexRange) -> int:
        return span.first + int(neutral[span.slice, 2].argmax())  # the apex of the iris shell

    return FaceLayout(
        skin=mask(ict.FACE, ict.HEAD_NECK), margin_surface=mask(ict.FACE), framed=mask(ict.FACE),
        eyeball_left=mask(ict.EYEBALL_LEFT), eyeball_right=mask(ict.EYEBALL_RIGHT),
        pupils=(front(ict.IRIS_LEFT), front(ict.IRIS_RIGHT)), mouth_socket=mask(ict.MOUTH_SOCKET),
        gums=mask(ict.GUMS_TONGUE), teeth=mask(ict.TEETH), eye_sockets=mask(ict.EYE_SOCKETS), face_cell=face_cell, cells=cells,
    )
