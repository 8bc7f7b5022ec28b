"""Laying ICT's head onto a FLAME template: similarity, ICT identity fit, then a smooth non-rigid refinement.

    registered = register(ict, target)          # (V_ict, 3): ICT's vertices lying on FLAME's surface, in FLAME's frame

1. Alignment start: a similarity from the eyeball centres (scale from the distance between the eyes; both models are
   y-up and face +z), refined on the landmarks when FLAME's embedding is known (points 17–67: the jaw line is drawn
   differently by different landmark conventions).
2. Model fit: iterative closest points in which ICT deforms through its own 100 identity modes. Each round matches
   FLAME skin vertices to the closest point of the current ICT skin (facing the same way, within 75°), drops the
   farthest 5 %, and fits the similarity (Umeyama) and the identity coefficients (ridge least squares) to the rest.
3. Refinement: what the identity modes cannot make (a few millimetres) is closed by a smooth displacement of ICT's
   skin: the solution of min Σ_edges |f_i - f_j|² · stiffness + Σ_i w_i |f_i - a_i|², where the anchors a are
   (a) the lid and lip margins: each ICT margin vertex goes to the point of FLAME's matching margin at the same
   arc length (upper and lower margin apart, from corner to corner), with a large weight, and (b) every other ICT
   skin vertex to its closest FLAME point (the first round leaves out those near a margin, where closest points may
   jump between the lips). Three rounds, each stiffness lower, each from fresh closest points. Smoothing along mesh
   edges, not through space, keeps the upper and lower lips (millimetres apart in space) independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from factory.face.flame.surface import MeshIndex, SurfacePoints, closest_points, similarity, vertex_normals
from factory.face.model import FaceModel
from factory.face.topology import hole_loops

FIT_ROUNDS = 10
FIT_STRIDE = 2  # every second FLAME skin vertex takes part in the model fit: plenty, and twice as fast
KEPT_MATCHES = 0.95  # the nearest share of matches each fit round uses
IDENTITY_RIDGE = 1.0  # ridge weight on the ICT identity coefficients (each mode is one standard deviation)
IDENTITY_LIMIT = 4.0  # … and their bound, in standard deviations
INNER_LANDMARKS = slice(17, 68)  # brows, nose, eyes, mouth: placed alike by every 68-point convention
REFINE_STIFFNESS = (30.0, 10.0, 3.0)  # one refinement round each
MARGIN_WEIGHT = 50.0
MARGIN_ZONE_CM = 0.6  # the first refinement round takes no closest-point anchors this near a margin
ANCHOR_LIMIT_CM = 1.5  # farther closest points are no anchors (FLAME has nothing there: cut-off neck, other ears)


class Target(NamedTuple):
    """The FLAME side: its neutral template (cm) and which vertices are skin or eyeballs."""

    verts: torch.Tensor  # (V, 3) float64
    faces: torch.Tensor  # (F, 3)
    eyeball_left: torch.Tensor  # (V,) bool
    eyeball_right: torch.Tensor  # (V,) bool
    landmarks: torch.Tensor | None  # (68, 3) landmark points when FLAME's embedding is known (NaN rows where unknown)

    @property
    def skin(self) -> torch.Tensor:
        return ~(self.eyeball_left | self.eyeball_right)


@dataclass
class Alignment:
    """ICT's fitted head in FLAME's frame: scale · rotation · (neutral + identity modes) + translation."""

    scale: float
    rotation: torch.Tensor
    translation: torch.Tensor
    identity: torch.Tensor

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        return self.scale * points @ self.rotation.T + self.translation

    def head(self, source: FaceModel) -> torch.Tensor:
        """(V_ict, 3) ICT's neutral with the fitted identity, in ICT's frame (cm)."""
        return source.neutral.double() + torch.einsum("i,ivc->vc", self.identity, source.identity_basis.double())


def register(source: FaceModel, target: Target) -> tuple[Alignment, torch.Tensor]:
    """The alignment (steps 1–2) and ICT's vertices after the refinement (step 3), in FLAME's frame."""
    alignment = fit_model(source, target)
    return alignment, refine(source, target, alignment.apply(alignment.head(source)))


def fit_model(source: FaceModel, target: Target) -> Alignment:
    alignment = initial_alignment(source, target)
    mesh = MeshIndex.of(source.faces[source.layout.skin[source.faces].all(dim=1)], source.num_vertices)
    skin = torch.nonzero(target.skin).squeeze(1)[::FIT_STRIDE]
    points, normals = target.verts[skin], vertex_normals(target.verts, target.faces)[skin]
    rest, basis = source.neutral.double(), source.identity_basis.double()
    for _ in range(FIT_ROUNDS):
        head = alignment.head(source)
        hits = closest_points(points, alignment.apply(head), mesh, normals=normals)
        kept = hits.distance <= torch.quantile(hits.distance, KEPT_MATCHES)
        matched = SurfacePoints(hits.faces[kept], hits.bary[kept].double(), hits.distance[kept])
        scale, rotation, translation = similarity(matched.points(head, mesh.faces), points[kept])
        alignment = Alignment(scale, rotation, translation, alignment.identity)
        alignment.identity = fit_identity(matched.points(rest, mesh.faces), matched.points(basis, mesh.faces), alignment, points[kept])
    return alignment


def initial_alignment(source: FaceModel, target: Target) -> Alignment:
    """Step 1: eyes, then landmarks when the target has them."""
    identity = torch.zeros(source.num_identity, dtype=torch.float64)
    neutral = source.neutral.double()
    source_eyes = torch.stack([neutral[source.layout.eyeball_left].mean(0), neutral[source.layout.eyeball_right].mean(0)])
    target_eyes = torch.stack([target.verts[target.eyeball_left].mean(0), target.verts[target.eyeball_right].mean(0)])
    source_axis, target_axis = source_eyes[0] - source_eyes[1], target_eyes[0] - target_eyes[1]
    scale = float(target_axis.norm() / source_axis.norm())
    rotation = rotation_between(source_axis, target_axis)
    translation = target_eyes.mean(0) - scale * rotation @ source_eyes.mean(0)
    if target.landmarks is not None:
        known = ~torch.isnan(target.landmarks[INNER_LANDMARKS, 0])
        inner = source.landmark_points(neutral)[INNER_LANDMARKS][known]
        scale, rotation, translation = similarity(inner, target.landmarks[INNER_LANDMARKS][known])
    return Alignment(scale, rotation, translation, identity)


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotation taking direction a to direction b (3, 3)."""
    a, b = a / a.norm(), b / b.norm()
    axis, cos = torch.linalg.cross(a, b), float(a @ b)
    if axis.norm() < 1e-12:
        return torch.eye(3, dtype=a.dtype)
    cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=a.dtype)
    return torch.eye(3, dtype=a.dtype) + cross + cross @ cross / (1 + cos)


def fit_identity(rest: torch.Tensor, modes: torch.Tensor, alignment: Alignment, targets: torch.Tensor) -> torch.Tensor:
    """Identity coefficients c minimising |rest + modes·c - back(targets)|² + IDENTITY_RIDGE |c|², where back() takes
    FLAME points into ICT's frame through the current similarity; rest (P, 3) and modes (I, P, 3) at the matches."""
    back = (targets - alignment.translation) @ alignment.rotation / alignment.scale
    design = modes.reshape(modes.shape[0], -1)  # (I, 3P)
    normal = design @ design.T + IDENTITY_RIDGE * torch.eye(design.shape[0], dtype=design.dtype)
    coefficients = torch.linalg.solve(normal, design @ (back - rest).reshape(-1))
    return coefficients.clamp(-IDENTITY_LIMIT, IDENTITY_LIMIT)


class MarginMatch(NamedTuple):
    """Each vertex of one mesh's margin loop as a point of the other mesh's loop: between `a` and `b`, weight `blend` on a."""

    vertices: np.ndarray  # (M,) the loop's vertices
    a: np.ndarray  # (M,)
    b: np.ndarray  # (M,)
    blend: np.ndarray  # (M,)


def margin_matches(source_loops: dict, source_verts: np.ndarray, target_loops: dict, target_verts: np.ndarray) -> list[MarginMatch]:
    """Every source margin vertex matched to the point of the target's loop of the same hole at the same arc length,
    upper margins to upper and lower to lower (see `loop_parameters`)."""
    matches = []
    for region, loop in source_loops.items():
        source_loop, source_t = loop_parameters(loop, source_verts)
        target_loop, target_t = loop_parameters(target_loops[region], target_verts)
        closed_t = np.append(target_t, 2.0)
        closed_loop = np.append(target_loop, target_loop[0])
        right = np.clip(np.searchsorted(closed_t, source_t, side="right"), 1, len(closed_t) - 1)
        left = right - 1
        span = closed_t[right] - closed_t[left]
        blend = np.where(span > 0, (closed_t[right] - source_t) / np.maximum(span, 1e-12), 1.0)
        matches.append(MarginMatch(source_loop, closed_loop[left], closed_loop[right], blend))
    return matches


def loop_parameters(loop: np.ndarray, verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The loop re-ordered to start at its +x corner and run over the upper margin first, and each vertex's parameter:
    0..1 by arc length along the upper margin to the -x corner, 1..2 back along the lower one."""
    loop = np.roll(loop, -int(np.argmax(verts[loop, 0])))
    other = int(np.argmin(verts[loop, 0]))
    if verts[loop[1:other], 1].mean() < verts[loop[other + 1:], 1].mean():  # walking the lower margin first: turn round
        loop = np.roll(loop[::-1], 1)
        other = int(np.argmin(verts[loop, 0]))
    step = np.linalg.norm(np.diff(verts[np.append(loop, loop[0])], axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(step)[:-1]])
    upper_length, total = along[other], along[-1] + step[-1]
    parameter = np.where(np.arange(len(loop)) <= other, along / upper_length, 1 + (along - upper_length) / (total - upper_length))
    return loop, parameter


def refine(source: FaceModel, target: Target, registered: torch.Tensor) -> torch.Tensor:
    """Step 3: ICT's skin moved onto FLAME's by the smooth field that best meets the margin and closest-point anchors."""
    skin = source.layout.skin
    source_mesh = MeshIndex.of(source.faces[skin[source.faces].all(dim=1)], source.num_vertices)
    target_mesh = MeshIndex.of(target.faces[target.skin[target.faces].all(dim=1)], len(target.verts))
    landmarks = source.landmark_points(registered).numpy()
    source_loops = hole_loops(source.faces.numpy(), source.layout.margin_surface.numpy(), registered.numpy(), landmarks)
    target_loops = hole_loops(target.faces.numpy(), target.skin.numpy(), target.verts.numpy(), landmarks)
    matches = margin_matches(source_loops, registered.numpy(), target_loops, target.verts.numpy())
    margin = torch.as_tensor(np.concatenate([m.vertices for m in matches]))
    near_margin = torch.cdist(registered.float(), registered[margin].float()).amin(dim=1) < MARGIN_ZONE_CM
    ids = torch.nonzero(skin).squeeze(1)
    local = torch.full((source.num_vertices,), -1, dtype=torch.int64)
    local[ids] = torch.arange(len(ids))
    edges = local[mesh_edges(source_mesh.faces)]  # over the skin vertices' own numbering
    registered = registered.clone()
    sampled = ids[::FIT_STRIDE]  # closest-point anchors on every second skin vertex; the field fills in between
    for round_, stiffness in enumerate(REFINE_STIFFNESS):
        normals = vertex_normals(registered, source_mesh.faces)[sampled]
        hits = closest_points(registered[sampled], target.verts, target_mesh, normals=normals)
        anchors = torch.zeros_like(registered)
        anchors[sampled] = hits.points(target.verts, target_mesh.faces).double() - registered[sampled]
        weights = torch.zeros(len(registered), dtype=torch.float64)
        weights[sampled] = (hits.distance < ANCHOR_LIMIT_CM).double()
        if round_ == 0:
            weights[near_margin] = 0.0
        for match in matches:
            goal = (match.blend[:, None] * target.verts[match.a].numpy() + (1 - match.blend[:, None]) * target.verts[match.b].numpy())
            anchors[match.vertices] = torch.as_tensor(goal) - registered[match.vertices]
            weights[match.vertices] = MARGIN_WEIGHT
        registered[ids] += smooth_field(edges, len(ids), anchors[ids], weights[ids], stiffness)
    return registered


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """(E, 2) the unique edges of the triangles."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    return torch.unique(edges, dim=0)


def smooth_field(edges: torch.Tensor, count: int, anchors: torch.Tensor, weights: torch.Tensor, stiffness: float,
                 tolerance: float = 1e-8, iterations: int = 500) -> torch.Tensor:
    """(V, 3) f minimising stiffness Σ_edges |f_i - f_j|² + Σ_i w_i |f_i - a_i|²: conjugate gradients (Jacobi
    preconditioned) on the normal equations (stiffness·L + W) f = W a, L the graph Laplacian of `edges`."""
    neighbours = neighbour_table(edges, count)  # (V, D), padded with `count`: a zero row
    degree = (neighbours < count).sum(dim=1).to(anchors.dtype)
    diagonal = (stiffness * degree + weights + 1e-9)[:, None]

    def apply(f: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([f, f.new_zeros(1, f.shape[1])])
        return diagonal * f - stiffness * padded[neighbours].sum(dim=1)

    b = weights[:, None] * anchors
    f = b / diagonal
    residual = b - apply(f)
    z = residual / diagonal
    direction, rz = z, (residual * z).sum(0)
    scale = float((b * b).sum()) + 1e-30
    for _ in range(iterations):
        step = apply(direction)
        alpha = rz / (direction * step).sum(0).clamp(min=1e-30)
        f = f + alpha * direction
        residual = residual - alpha * step
        if float((residual * residual).sum()) < tolerance * scale:
            break
        z = residual / diagonal
        rz_next = (residual * z).sum(0)
        direction = z + (rz_next / rz.clamp(min=1e-30)) * direction
        rz = rz_next
    return f


def neighbour_table(edges: torch.Tensor, count: int) -> torch.Tensor:
    """(V, D) the neighbours of each vertex along `edges`, padded with `count`."""
    ends = torch.cat([edges, edges.flip(1)])
    order = torch.argsort(ends[:, 0], stable=True)
    ends = ends[order]
    counts = torch.bincount(ends[:, 0], minlength=count)
    slot = torch.arange(len(ends)) - (torch.cumsum(counts, 0) - counts)[ends[:, 0]]
    table = torch.full((count, int(counts.max())), count, dtype=torch.int64)
    table[ends[:, 0], slot] = ends[:, 1]
    return table
