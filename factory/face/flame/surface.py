"""Geometry for matching two face meshes: closest points on a triangle mesh, vertex normals, similarity fits.

    hits = closest_points(points, verts, MeshIndex.of(faces, len(verts)), normals=point_normals)   # SurfacePoints
    scale, rotation, translation = similarity(source_points, target_points)

`closest_points` tests only the triangles around each point's nearest mesh vertices (exact for the meshes here,
whose triangles are small next to the distances searched), in chunks, so a 5,000-point query against a 20,000-triangle
mesh takes a fraction of a second. With `normals`, a triangle whose normal turns away from the point's normal by more
than `max_angle_deg` is skipped: the lower lip's upper surface is never matched to the upper lip's lower surface.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

CHUNK = 1024  # points per batch of the brute-force part of the search


class SurfacePoints(NamedTuple):
    faces: torch.Tensor  # (P,) int64 triangle holding each closest point
    bary: torch.Tensor  # (P, 3) its barycentric weights
    distance: torch.Tensor  # (P,) distance from the query point

    def points(self, verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """(P, 3) the closest points on `verts` (or (..., P, 3) on a batch of meshes with the same triangles)."""
        return (self.bary[..., None] * verts[..., faces[self.faces], :]).sum(dim=-2)


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F, 3) unit normals (counter-clockwise corners face outward)."""
    a, b, c = verts[faces].unbind(1)
    return torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=-1)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) unit normals: the area-weighted sum of the incident triangles' normals."""
    a, b, c = verts[faces].unbind(1)
    weighted = torch.linalg.cross(b - a, c - a)
    normals = torch.zeros_like(verts).index_add_(0, faces.reshape(-1), weighted.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(normals, dim=-1)


def incident_faces(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """(V, D) ids of the triangles around each vertex, padded with -1."""
    corners = faces.reshape(-1)
    order = torch.argsort(corners, stable=True)
    counts = torch.bincount(corners, minlength=num_vertices)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(corners)) - starts[corners[order]]
    table = torch.full((num_vertices, int(counts.max())), -1, dtype=torch.int64)
    table[corners[order], slot] = order // 3
    return table


class MeshIndex(NamedTuple):
    """What the closest-point search needs of a mesh's triangles that does not change as its vertices move."""

    faces: torch.Tensor  # (F, 3)
    used: torch.Tensor  # (U,) the vertices some triangle uses
    around: torch.Tensor  # (V, D) triangles around each vertex, -1 padded

    @classmethod
    def of(cls, faces: torch.Tensor, num_vertices: int) -> "MeshIndex":
        return cls(faces, torch.unique(faces), incident_faces(faces, num_vertices))


def closest_points(points: torch.Tensor, verts: torch.Tensor, mesh: MeshIndex, *, normals: torch.Tensor | None = None,
                   max_angle_deg: float = 75.0, neighbours: int = 8, exact_tests: int = 24) -> SurfacePoints:
    """For each point (P, 3), the closest point on the mesh (verts, mesh.faces) among the triangles around its
    `neighbours` nearest vertices; with `normals` (P, 3), only among triangles facing within `max_angle_deg` (falling
    back to any triangle where none does). Of those, the `exact_tests` with the smallest lower bound on their distance
    (to the centroid, less the farthest corner) are tested exactly. Works in float32; returns float32."""
    points, verts = points.float(), verts.float()
    corners = verts[mesh.faces]
    centroids = corners.mean(dim=1)
    radii = (corners - centroids[:, None]).norm(dim=-1).amax(dim=1)
    shape = (verts, face_normals(verts, mesh.faces), centroids, radii)
    min_cos = math.cos(math.radians(max_angle_deg))
    results = [closest_in_chunk(points[i:i + CHUNK], None if normals is None else normals[i:i + CHUNK].float(), mesh, shape,
                                min_cos, neighbours, exact_tests)
               for i in range(0, points.shape[0], CHUNK)]
    return SurfacePoints(*(torch.cat(parts) for parts in zip(*results)))


def closest_in_chunk(points, normals, mesh: MeshIndex, shape, min_cos, neighbours, exact_tests) -> tuple:
    verts, triangle_normals, centroids, radii = shape
    faces, used, around = mesh
    nearest = used[torch.cdist(points, verts[used]).topk(min(neighbours, len(used)), largest=False).indices]  # (P, K)
    candidates = around[nearest].reshape(points.shape[0], -1)  # (P, K·D), -1 padded
    safe = candidates.clamp(min=0)
    bound = ((centroids[safe] - points[:, None]).norm(dim=-1) - radii[safe]).masked_fill(candidates < 0, torch.inf)
    if normals is not None:
        facing = (triangle_normals[safe] * normals[:, None]).sum(-1) >= min_cos
        any_facing = (facing & (candidates >= 0)).any(dim=1, keepdim=True)
        bound = torch.where(facing | ~any_facing, bound, torch.inf)
    order = bound.topk(min(exact_tests, bound.shape[1]), largest=False).indices
    candidates, bound = candidates.gather(1, order), bound.gather(1, order)
    corners = verts[faces[candidates.clamp(min=0)]]  # (P, C, 3, 3)
    bary = closest_barycentrics(points[:, None].expand(-1, candidates.shape[1], -1), corners)
    distance = ((bary[..., None] * corners).sum(-2) - points[:, None]).norm(dim=-1)
    distance = torch.where(torch.isfinite(bound), distance, torch.inf)
    best = distance.argmin(dim=1)
    rows = torch.arange(points.shape[0])
    return candidates[rows, best], bary[rows, best], distance[rows, best]


def component_labels(faces: torch.Tensor, count: int) -> torch.Tensor:
    """(V,) for each vertex the smallest vertex id of its connected piece of the mesh (unused vertices: their own id)."""
    label = torch.arange(count)
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.cat([edges, edges.flip(1)])
    while True:
        spread = label.scatter_reduce(0, edges[:, 0], label[edges[:, 1]], reduce="amin")
        if torch.equal(spread, label):
            return label
        label = spread


def closest_barycentrics(p: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """(..., 3) barycentric weights of the point of each triangle (..., 3, 3) closest to p (..., 3): the Voronoi
    regions of the triangle's corners, edges and face (Ericson, Real-Time Collision Detection, 5.1.5)."""
    a, b, c = corners.unbind(-2)
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    tiny = 1e-20
    # Inside the face: the projection's own weights.
    denom = (va + vb + vc).clamp(min=tiny)
    v, w = vb / denom, vc / denom
    result = torch.stack([1 - v - w, v, w], dim=-1)

    def put(condition, u0, u1, u2):
        nonlocal result
        result = torch.where(condition[..., None], torch.stack([u0, u1, u2], dim=-1), result)

    zero, one = torch.zeros_like(d1), torch.ones_like(d1)
    # Later assignments win: edges, then corners, in the reverse of Ericson's order of tests (A, B, AB, C, AC, BC).
    t_bc = ((d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp(min=tiny)).clamp(0, 1)
    put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), zero, 1 - t_bc, t_bc)
    t_ac = (d2 / (d2 - d6).clamp(min=tiny)).clamp(0, 1)
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), 1 - t_ac, zero, t_ac)
    put((d6 >= 0) & (d5 <= d6), zero, zero, one)
    t_ab = (d1 / (d1 - d3).clamp(min=tiny)).clamp(0, 1)
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), 1 - t_ab, t_ab, zero)
    put((d3 >= 0) & (d4 <= d3), zero, one, zero)
    put((d1 <= 0) & (d2 <= 0), one, zero, zero)
    return result


def similarity(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(scale, rotation (3, 3), translation (3,)) minimising Σ w |s R source + t - target|² (Umeyama 1991)."""
    w = torch.ones(source.shape[0], dtype=source.dtype) if weights is None else weights.to(source.dtype)
    w = w / w.sum()
    mean_s, mean_t = (w[:, None] * source).sum(0), (w[:, None] * target).sum(0)
    xs, xt = source - mean_s, target - mean_t
    covariance = (w[:, None] * xt).T @ xs
    u, sigma, vt = torch.linalg.svd(covariance)
    sign = torch.ones(3, dtype=source.dtype)
    sign[2] = torch.sign(torch.det(u @ vt))
    rotation = u @ torch.diag(sign) @ vt
    scale = float((sigma * sign).sum() / (w * (xs * xs).sum(1)).sum())
    return scale, rotation, mean_t - scale * rotation @ mean_s
