"""Mesh topology of the face surface: the lid and lip margins, found from the mesh itself.

The face surface (`ict.FACE`) has three holes, two eyes and the mouth; their borders are the lid and lip margins.
The rig keeps those margins from crossing; the texturer paints a lash line along the lid margins.

    margins = find_margins(model)      # [MarginPairs("eye_left", …), MarginPairs("eye_right", …), MarginPairs("lips", …)]
    margins[0].gaps(verts)             # (..., P) vertical gap of each upper-margin vertex above the lower margin
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from factory.face import ict
from factory.face.model import FaceModel


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
    """Lid and lip margins: the borders of the three holes (two eyes, mouth) in the face surface."""
    faces = model.faces.numpy()
    faces = faces[(faces < ict.FACE_VERTEX_COUNT).all(axis=1)]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    border = unique[counts == 1]
    neutral = model.neutral.numpy()
    loops = connected_components(border)
    # The outer border of the face region is the largest loop; the holes sit high (eyes) and low (mouth) on the front.
    holes = sorted(loops, key=len)[:-1]
    margins = []
    for loop in holes:
        centre = neutral[loop].mean(axis=0)
        region = "lips" if centre[1] < 0 else ("eye_left" if centre[0] > 0 else "eye_right")
        margins.append(pair_margin(region, np.asarray(loop), neutral))
    return sorted(margins, key=lambda m: m.region)


def face_surface(model: FaceModel) -> torch.Tensor:
    """(F, 3) the triangles of the face surface (`ict.FACE`): skin, brows, lips and lids, no eyes or mouth."""
    return model.faces[(model.faces < ict.FACE_VERTEX_COUNT).all(dim=1)]


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """(E, 2) every edge of a triangle list (F, 3) once, lower vertex id first."""
    return torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values.unique(dim=0)


def connected_components(edges: np.ndarray) -> list[list[int]]:
    """The vertex sets of the connected components of an edge list (E, 2)."""
    neighbours: dict[int, list[int]] = {}
    for u, v in edges:
        neighbours.setdefault(int(u), []).append(int(v))
        neighbours.setdefault(int(v), []).append(int(u))
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
