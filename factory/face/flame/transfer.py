"""A dense correspondence from a FLAME template to the ICT face, and ICT's expression shapes carried through it.

    correspondence = correspondence_for(ict, target, key)      # computed once per FLAME file, then read from the cache
    basis = correspondence.transfer(ict, ict.expression_basis) # (E, V_flame, 3): ICT's shapes on FLAME's vertices

ICT is first laid onto the FLAME template (`registration.py`: similarity, ICT identity fit, smooth refinement that
brings the lid and lip margins onto FLAME's). Then every FLAME vertex gets a point of the registered ICT surface, as
(ICT triangle, barycentric weights): margin vertices the point of ICT's matching margin at the same arc length
(upper to upper, lower to lower), skin vertices the closest point of ICT's skin facing the same way, and each eyeball
the closest point of the same eyeball. A displacement field of ICT (an expression shape) then moves FLAME vertex v
by s·R·Σ_k bary_vk d(corner_k): the field at v's point, rotated and scaled by the alignment. ICT's landmarks go the
other way: each registered ICT landmark to the closest point of FLAME's skin.

The known-answer test (tests/test_flame_transfer.py) measures the error of this on an ICT head re-meshed,
re-ordered, re-shaped and warped into a FLAME file, against ICT's own displacements.

The correspondence depends only on the FLAME file, the landmark embedding used and the ICT asset, so it is cached
under `cache_dir()` (`$PAINFACTORY_CACHE`, default `~/.cache/painfactory`) by the sha256 of all of them and
TRANSFER_VERSION; a cache file is written whole and renamed into place, so concurrent workers never read half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from factory.face.flame.registration import Target, margin_matches, register
from factory.face.flame.surface import MeshIndex, SurfacePoints, closest_points, component_labels, vertex_normals
from factory.face.model import FaceModel
from factory.face.topology import hole_loops

TRANSFER_VERSION = 1  # raise when the algorithm changes: old cache files are then ignored


@dataclass(frozen=True, eq=False)
class Correspondence:
    """Each FLAME vertex as a point of ICT (registered), the alignment, and ICT's landmarks as points of FLAME."""

    source_faces: torch.Tensor  # (V,) int64 ICT triangle of each FLAME vertex
    source_bary: torch.Tensor  # (V, 3) float32 barycentric weights in it
    scale: torch.Tensor  # () ICT → FLAME scale
    rotation: torch.Tensor  # (3, 3) ICT → FLAME rotation
    registered: torch.Tensor  # (V_ict, 3) ICT's vertices laid onto FLAME's template, in FLAME's frame (cm)
    landmark_faces: torch.Tensor  # (68,) int64 FLAME triangle nearest each registered ICT landmark
    landmark_bary: torch.Tensor  # (68, 3) float32
    distance: torch.Tensor  # (V,) cm from each FLAME vertex to its matched point: how far the surfaces still differ

    def transfer(self, source: FaceModel, displacements: torch.Tensor) -> torch.Tensor:
        """(E, V_flame, 3) displacement fields (E, V_ict, 3) of ICT carried to FLAME's vertices."""
        corners = displacements[:, source.faces[self.source_faces]]  # (E, V, 3 corners, 3)
        at_points = (self.source_bary[None, ..., None] * corners).sum(dim=2)
        return self.scale * at_points @ self.rotation.T

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as handle:
            np.savez(handle, version=TRANSFER_VERSION, **{f.name: getattr(self, f.name).numpy() for f in fields(self)})
        os.replace(handle.name, path)

    @classmethod
    def load(cls, path: Path) -> "Correspondence | None":
        """The cached correspondence, or None when there is none of this TRANSFER_VERSION (or it cannot be read)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["version"]) != TRANSFER_VERSION:
                    return None
                return cls(**{f.name: torch.from_numpy(data[f.name]) for f in fields(cls)})
        except (OSError, KeyError, ValueError):
            return None


def cache_dir() -> Path:
    return Path(os.environ.get("PAINFACTORY_CACHE") or Path.home() / ".cache" / "painfactory")


def cache_key(*digests: str) -> str:
    """One name for a correspondence from the digests of everything it depends on."""
    return hashlib.sha256(("\n".join(digests) + f"\ntransfer v{TRANSFER_VERSION}").encode()).hexdigest()


def correspondence_for(source: FaceModel, target: Target, key: str) -> Correspondence:
    """The cached correspondence named `key`, computed and cached first if need be."""
    path = cache_dir() / "flame-correspondence" / f"{key}.npz"
    cached = Correspondence.load(path)
    if cached is None:
        with one_thread():
            cached = compute_correspondence(source, target)
        cached.save(path)
    return cached


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: the registration is thousands of small tensor operations, for which a second thread
    only adds synchronisation (measured on a shared 2-core machine: a smoothing solve 0.46 s on one thread, 8.2 s on
    two). Ray workers run on one thread already."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def compute_correspondence(source: FaceModel, target: Target) -> Correspondence:
    alignment, registered = register(source, target)
    count = target.verts.shape[0]
    faces, bary, distance = torch.zeros(count, dtype=torch.int64), torch.zeros(count, 3), torch.zeros(count)
    layout = source.layout
    normals = vertex_normals(target.verts, target.faces)
    for target_mask, source_mask in ((target.skin, layout.skin), (target.eyeball_left, outer_shell(source, layout.eyeball_left)),
                                     (target.eyeball_right, outer_shell(source, layout.eyeball_right))):
        source_faces = torch.nonzero(source_mask[source.faces].all(dim=1)).squeeze(1)
        ids = torch.nonzero(target_mask).squeeze(1)
        hits = closest_points(target.verts[ids], registered, MeshIndex.of(source.faces[source_faces], source.num_vertices),
                              normals=normals[ids])
        faces[ids], bary[ids], distance[ids] = source_faces[hits.faces], hits.bary, hits.distance
    on_margins = margin_points(source, target, registered)
    faces[on_margins.vertices], bary[on_margins.vertices] = on_margins.faces, on_margins.bary
    distance[on_margins.vertices] = (on_margins.points(registered) - target.verts[on_margins.vertices]).norm(dim=1).float()
    landmarks = landmarks_on_target(source, target, registered)
    return Correspondence(source_faces=faces, source_bary=bary, scale=torch.tensor(alignment.scale, dtype=torch.float32),
                          rotation=alignment.rotation.float(), registered=registered.float(), landmark_faces=landmarks.faces,
                          landmark_bary=landmarks.bary, distance=distance)


def outer_shell(model: FaceModel, eyeball: torch.Tensor) -> torch.Tensor:
    """(V,) the connected piece of an eyeball that reaches farthest forward: ICT's sclera sphere, not the iris shell
    nested inside it (what a FLAME eyeball, one sphere, corresponds to)."""
    ids = torch.nonzero(eyeball).squeeze(1)
    labels = component_labels(model.faces[eyeball[model.faces].all(dim=1)], model.num_vertices)[ids]
    foremost = labels[model.neutral[ids, 2].argmax()]
    shell = torch.zeros_like(eyeball)
    shell[ids[labels == foremost]] = True
    return shell


@dataclass(frozen=True)
class MarginPoints:
    """FLAME margin vertices as points on ICT's margin edges, written as (ICT triangle, barycentrics)."""

    vertices: torch.Tensor  # (M,) FLAME vertex ids
    faces: torch.Tensor  # (M,) ICT triangles holding the matched border edges
    bary: torch.Tensor  # (M, 3)
    source_faces: torch.Tensor  # (F_ict, 3)

    def points(self, verts: torch.Tensor) -> torch.Tensor:
        return (self.bary[..., None].double() * verts[self.source_faces[self.faces]].double()).sum(1)


def margin_points(source: FaceModel, target: Target, registered: torch.Tensor) -> MarginPoints:
    """Each FLAME lid and lip margin vertex matched to ICT's margin of the same hole at the same arc length."""
    landmarks = source.landmark_points(registered).numpy()
    surface = source.layout.margin_surface
    source_loops = hole_loops(source.faces.numpy(), surface.numpy(), registered.numpy(), landmarks)
    target_loops = hole_loops(target.faces.numpy(), target.skin.numpy(), target.verts.numpy(), landmarks)
    matches = margin_matches(target_loops, target.verts.numpy(), source_loops, registered.numpy())
    vertices = torch.as_tensor(np.concatenate([m.vertices for m in matches]))
    a = torch.as_tensor(np.concatenate([m.a for m in matches]))
    b = torch.as_tensor(np.concatenate([m.b for m in matches]))
    blend = torch.as_tensor(np.concatenate([m.blend for m in matches]), dtype=torch.float32)
    # The margin-surface triangle holding each border edge (a, b): the one triangle with both corners.
    margin_faces = source.faces[surface[source.faces].all(dim=1)]
    holds_a = (margin_faces[None] == a[:, None, None]).any(dim=2)
    holds_b = (margin_faces[None] == b[:, None, None]).any(dim=2)
    triangle = (holds_a & holds_b).float().argmax(dim=1)
    corners = margin_faces[triangle]
    bary = blend[:, None] * (corners == a[:, None]).float() + (1 - blend[:, None]) * (corners == b[:, None]).float()
    face_ids = torch.nonzero(surface[source.faces].all(dim=1)).squeeze(1)[triangle]
    return MarginPoints(vertices, face_ids, bary, source.faces)


def landmarks_on_target(source: FaceModel, target: Target, registered: torch.Tensor) -> SurfacePoints:
    """ICT's 68 landmarks on the registered head, each moved to the closest point of FLAME's skin."""
    skin_faces = torch.nonzero(target.skin[target.faces].all(dim=1)).squeeze(1)
    hits = closest_points(source.landmark_points(registered), target.verts, MeshIndex.of(target.faces[skin_faces], len(target.verts)))
    return SurfacePoints(skin_faces[hits.faces], hits.bary, hits.distance)
