"""Mesh topology of the face surface: the lid and lip margins, found from the mesh itself.

A face model's margin surface (`FaceLayout.margin_surface`: ICT's face area, FLAME's whole head) has a hole for
each eye and one for the mouth; their borders are the lid and lip margins. Each hole is the border loop nearest its
landmarks (the eye's six, the inner lip's eight), so other borders (ICT's face edge, FLAME's neck) are never taken
for one. The rig keeps those margins from crossing; the texturer paints a lash line along the lid margins.

    margins = find_margins(model)      # [MarginPairs("eye_left", …), MarginPairs("eye_right", …), MarginPairs("lips", …)]
    margins[0].gaps(verts)             # (..., P) vertical gap of each upper-margin vertex above the lower margin
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from factory.face.model import FaceModel

# Multi-PIE landmarks around each hole; "left" is the face's left (+x): points 42–47.
HOLE_LANDMARKS = {"eye_left": slice(42, 48), "eye_right": slice(36, 42), "lips": slice(60, 68)}


@dataclass(frozen=True)
class MarginPairs:
    """Upper-margin vertices and, below each, a point on the lower margin (two vertices and a blend)."""

    region: str  # "eye_left", "eye_right", "lips"
    upper: torch.Tensor  # (P,) vertex ids
    lower_a: torch.Tensor  # (P,)
    lower_b: torch.Tensor  # (P,)
    blend: torch.Tensor  # (P,) weight of lower_a

    def gaps(self, verts: torch.Tensor) -> torch.Tensor:
        """(..., P) vertical gap upper − lower in cm; negative means the margins crossed."""
        lower_y = self.blend * verts[..., self.lower_a, 1] + (1 - self.blend) * verts[..., self.lower_b, 1]
        return verts[..., self.upper, 1] - lower_y

    @property
    def lower(self) -> torch.Tensor:
        """(L,) every lower-margin vertex that some upper vertex is paired with, once each."""
        return torch.cat([self.lower_a, self.lower_b]).unique()


def find_margins(model: FaceModel) -> list[MarginPairs]:
    """Lid and lip margins: the borders of the three holes (two eyes, mouth) in the margin surface."""
    neutral = model.neutral.numpy()
    loops = hole_loops(model.faces.numpy(), model.layout.margin_surface.numpy(), neutral,
                       model.landmark_points(model.neutral).numpy())
    return [pair_margin(region, loop, neutral) for region, loop in sorted(loops.items())]


def hole_loops(faces: np.ndarray, surface: np.ndarray, verts: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """region → the border loop of that hole (vertex ids in order around it) of the surface made by the triangles
    whose vertices are all in `surface` (V,) bool; `landmarks` (68, 3) say where each hole is."""
    faces = faces[surface[faces].all(axis=1)]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    loops = border_loops(unique[counts == 1])
    holes = {}
    for region, numbers in HOLE_LANDMARKS.items():
        centre = landmarks[numbers].mean(axis=0)
        holes[region] = min(loops, key=lambda loop: float(np.linalg.norm(verts[loop].mean(axis=0) - centre)))
    return holes


def face_surface(model: FaceModel) -> torch.Tensor:
    """(F, 3) the triangles of the margin surface (`FaceLayout.margin_surface`: ICT's face, FLAME's head without
    its eyeballs): skin, brows, lips and lids, no eyes or mouth interior."""
    return model.faces[model.layout.margin_surface[model.faces].all(dim=1)]


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """(E, 2) every edge of a triangle list (F, 3) once, lower vertex id first."""
    return torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values.unique(dim=0)


def connected_components(edges: np.ndarray) -> list[list[int]]:
    """The vertex sets of the connected components of an edge list (E, 2)."""
    neighbours = neighbour_lists(edges)
    seen: set[int] = set()
    components = []
    for start in neighbours:
        if start in seen:
            continue
        stack, component = [start], []
        while stack:
            vertex = stack.pop()
            if vertex not in seen:
                seen.add(vertex)
                component.append(vertex)
                stack.extend(neighbours[vertex])
        components.append(component)
    return components


def neighbour_lists(edges: np.ndarray) -> dict[int, list[int]]:
    """vertex id → the vertex ids it shares an edge with, for an edge list (E, 2)."""
    neighbours: dict[int, list[int]] = {}
    for u, v in edges:
        neighbours.setdefault(int(u), []).append(int(v))
        neighbours.setdefault(int(v), []).append(int(u))
    return neighbours


def border_loops(edges: np.ndarray) -> list[np.ndarray]:
    """The closed loops (vertex ids in walking order) that border edges (E, 2) form; on a manifold surface every
    border vertex has two border neighbours."""
    neighbours = neighbour_lists(edges)
    seen: set[int] = set()
    loops = []
    for start in neighbours:
        if start in seen:
            continue
        loop, previous, vertex = [start], None, start
        seen.add(start)
        while True:
            following = [n for n in neighbours[vertex] if n != previous and n not in seen]
            if not following:
                break
            previous, vertex = vertex, following[0]
            seen.add(vertex)
            loop.append(vertex)
        loops.append(np.asarray(loop))
    return loops


def pair_margin(region: str, loop: np.ndarray, neutral: np.ndarray) -> MarginPairs:
    """Split a hole's border at its leftmost and rightmost corners into upper and lower margins, and pair each
    inner upper vertex with the point of the lower margin at the same x (linear blend of its two neighbours)."""
    x, y = neutral[loop, 0], neutral[loop, 1]
    left, right = x.min(), x.max()
    span = right - left
    mid_y = np.interp(x, [left, right], [y[x.argmin()], y[x.argmax()]])
    inner = (x > left + 0.08 * span) & (x < right - 0.08 * span)  # skip the corners, where the margins meet anyway
    upper = loop[inner & (y > mid_y)]
    lower = loop[y <= mid_y]
    lower = lower[np.argsort(neutral[lower, 0])]
    lower_x = neutral[lower, 0]
    position = np.clip(np.searchsorted(lower_x, neutral[upper, 0]), 1, len(lower) - 1)
    a, b = lower[position - 1], lower[position]
    xa, xb = neutral[a, 0], neutral[b, 0]
    blend = np.where(xb > xa, (xb - neutral[upper, 0]) / np.maximum(xb - xa, 1e-9), 0.5).clip(0, 1)
    as_long = lambda values: torch.as_tensor(values, dtype=torch.int64)  # noqa: E731
    return MarginPairs(region, as_long(upper), as_long(a), as_long(b), torch.as_tensor(blend, dtype=torch.float32))
