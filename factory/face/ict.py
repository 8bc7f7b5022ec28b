"""The ICT Face Model Light's layout: which vertices make which sub-mesh, in one place.

The model is one mesh of 26,719 vertices in which every sub-mesh (face, head, mouth, teeth, eyeballs, lashes …)
is a contiguous run of vertex ids, as listed in ../shared/assets/ict-facekit/NOTICE.md. The rig, the texturer,
the identity renderer and tools/build_face_asset.py all read those runs from here.

    from factory.face import ict
    ict.TEETH.contains(faces[:, 0])        # which triangles belong to the teeth
    verts[:, ict.EYEBALL_LEFT.slice]        # the left eyeball's vertices

Pure Python (no torch, no numpy), so the asset builder can import it without the package's dependencies.
"""

from __future__ import annotations

from typing import NamedTuple


class VertexRange(NamedTuple):
    """A run of vertex ids, first to last inclusive (as NOTICE.md writes them)."""

    first: int
    last: int

    @property
    def stop(self) -> int:
        """One past the last vertex: the `stop` of a slice, or the count of vertices up to the run's end."""
        return self.last + 1

    @property
    def slice(self) -> slice:
        return slice(self.first, self.stop)

    def contains(self, ids):
        """Elementwise: whether each id (a tensor or array) lies in the run."""
        return (ids >= self.first) & (ids <= self.last)


VERTEX_COUNT = 26719

FACE = VertexRange(0, 9408)  # the face surface: the lid and lip margins are the borders of its three holes
HEAD_NECK = VertexRange(9409, 11247)
MOUTH_SOCKET = VertexRange(11248, 13293)
EYE_SOCKETS = VertexRange(13294, 14061)
GUMS_TONGUE = VertexRange(14062, 17038)
TEETH = VertexRange(17039, 21450)
# Each eyeball is a sclera sphere followed by an inner iris shell; "left" is the face's left (+x), ICT's "_L".
EYEBALLS = VertexRange(21451, 24590)
EYEBALL_LEFT, EYEBALL_RIGHT = VertexRange(21451, 23020), VertexRange(23021, 24590)
SCLERA_LEFT, IRIS_LEFT = VertexRange(21451, 22220), VertexRange(22221, 23020)
SCLERA_RIGHT, IRIS_RIGHT = VertexRange(23021, 23790), VertexRange(23791, 24590)
EYE_SHELLS = VertexRange(24591, 25350)  # lacrimal fluid, eye blend and eye occlusion: transparent layers
LASH_CARDS = VertexRange(25351, 26718)  # eyelash cards, cut out through an alpha map

FACE_VERTEX_COUNT = FACE.stop  # 9409
