"""Synthetic FLAME-format files built from the ICT head, for the FLAME tests (real FLAME files cannot be shipped).

The template is ICT's skin (face, scalp and neck) and its two sclera spheres, re-meshed to FLAME's size (half-edge
collapses that keep every remaining vertex an original ICT vertex: about 3,900 skin and 546 vertices per eyeball,
5,000 in all), re-ordered by a seeded permutation and deformed: ICT identity modes, a smooth warp no identity mode
can make, then a similarity (scale, rotation, translation) and metres. So every vertex's true ICT counterpart is known,
and an ICT expression shape's true displacement there is scale · R · (ICT's displacement of that vertex).

The files have FLAME's keys, shapes and dtypes: `v_template` (V, 3) float64, `shapedirs` (V, 3, 400) (300 identity
then 100 expression components), `posedirs` (V, 3, 36), `J_regressor` (5, V) sparse, `weights` (V, 5),
`kintree_table` (2, 5) with root parent 2**32 - 1, `J` (5, 3), `f` (F, 3) uint32, and 2020's `bs_style`/`bs_type`.
Variants: "2020" (protocol-2 pickle with chumpy `Ch` objects and a `scipy.sparse.csc.csc_matrix`, as FLAME 2020's
generic_model.pkl), "2023" (plain arrays and a `scipy.sparse._csc.csc_matrix`, protocol 4), "npz" (dense J_regressor).
chumpy and scipy are not installed: the writer pickles look-alike classes registered under those module names for the
length of the write, which makes exactly the global references and state dictionaries the real classes make.
"""

from __future__ import annotations

import contextlib
import heapq
import pickle
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from factory.face import ict
from factory.face.model import FaceModel
from factory.face.shapes import DERIVED_SHAPES

SKIN_VERTICES, EYEBALL_VERTICES = 3900, 546
SCALE, ROTATION_DEG, TRANSLATION_M = 0.93, (3.0, -5.0, 1.5), (0.004, -0.02, 0.03)
WARP_CM, WARP_WAVELENGTH_CM = 0.25, 18.0
MIN_NORMAL_COS, SLIVER = 0.95, 0.25  # what a collapse may do to a triangle (see decimate)
KINTREE = np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)


@dataclass(frozen=True)
class SyntheticFlame:
    path: Path
    source_vertex: np.ndarray  # (V,) the ICT vertex each FLAME vertex is
    rotation: np.ndarray  # (3, 3) ICT → FLAME
    scale: float
    faces: np.ndarray  # (F, 3)
    landmark_vertices: np.ndarray  # (68,) FLAME vertex at each ICT landmark


def rotation_matrix(degrees) -> np.ndarray:
    rx, ry, rz = np.radians(degrees)
    x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return z @ y @ x


@lru_cache(maxsize=1)
def remeshed_ict() -> tuple[np.ndarray, np.ndarray]:
    """(ICT vertex of each new vertex (V,), faces (F, 3) over new ids): skin first, then the left and right eyeballs,
    then shuffled by a seeded permutation."""
    model = FaceModel.load()
    neutral, faces = model.neutral.numpy().astype(np.float64), model.faces.numpy()
    protected = np.zeros(len(neutral), bool)
    protected[model.landmarks.numpy()] = True
    parts = []
    for span, keep in (((ict.FACE, ict.HEAD_NECK), SKIN_VERTICES), ((ict.SCLERA_LEFT,), EYEBALL_VERTICES),
                       ((ict.SCLERA_RIGHT,), EYEBALL_VERTICES)):
        member = np.zeros(len(neutral), bool)
        for s in span:
            member[s.slice] = True
        parts.append(decimate(neutral, faces[member[faces].all(axis=1)], keep, protected))
    kept = np.concatenate([ids for ids, _ in parts])
    order = np.random.default_rng(12).permutation(len(kept))  # new vertex k is kept[order[k]]
    new_id = np.full(len(neutral), -1)
    new_id[kept[order]] = np.arange(len(kept))
    return kept[order], new_id[np.concatenate([f for _, f in parts])]


def decimate(verts: np.ndarray, faces: np.ndarray, keep_count: int, protected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-edge collapses, shortest edge first, until `keep_count` vertices remain, each an original vertex at its
    original place. Border and protected vertices stay; a collapse that would change the topology (the link condition),
    tilt a triangle by more than about 18° or leave a sliver is skipped. Returns (kept vertex ids, faces over original ids)."""
    faces = faces.copy()
    alive_face = np.ones(len(faces), bool)
    vertex_faces = [set() for _ in range(len(verts))]
    for f, triangle in enumerate(faces):
        for v in triangle:
            vertex_faces[v].add(f)
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0, return_counts=True)
    fixed = protected.copy()
    fixed[edges[0][edges[1] == 1].ravel()] = True
    alive = np.zeros(len(verts), bool)
    alive[faces.ravel()] = True
    remaining = int(alive.sum())
    heap = [(float(np.linalg.norm(verts[a] - verts[b])), int(a), int(b)) for a, b in edges[0]]
    heapq.heapify(heap)

    def neighbours(v: int) -> set[int]:
        return {int(u) for f in vertex_faces[v] for u in faces[f]} - {v}

    def normal(triangle) -> np.ndarray:
        a, b, c = verts[triangle]
        n = np.cross(b - a, c - a)
        return n / (np.linalg.norm(n) + 1e-30)

    def sliver(triangle) -> bool:  # twice the area over the longest edge squared: 0.87 equilateral, 0 degenerate
        a, b, c = verts[triangle]
        longest = max(np.sum((b - a) ** 2), np.sum((c - b) ** 2), np.sum((a - c) ** 2))
        return np.linalg.norm(np.cross(b - a, c - a)) < SLIVER * longest

    def acceptable(old, new) -> bool:
        return np.dot(normal(old), normal(new)) >= MIN_NORMAL_COS and not sliver(new)

    while heap and remaining > keep_count:
        _, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        for gone, stay in ((b, a), (a, b)):
            shared = vertex_faces[gone] & vertex_faces[stay]
            opposite = {int(u) for f in shared for u in faces[f]} - {gone, stay}
            if fixed[gone] or len(shared) != 2 or neighbours(gone) & neighbours(stay) != opposite:
                continue
            moved = vertex_faces[gone] - shared
            if not all(acceptable(faces[f], np.where(faces[f] == gone, stay, faces[f])) for f in moved):
                continue
            for f in shared:
                alive_face[f] = False
                for u in faces[f]:
                    vertex_faces[u].discard(f)
            for f in moved:
                faces[f][faces[f] == gone] = stay
                vertex_faces[stay].add(f)
            vertex_faces[gone], alive[gone] = set(), False
            remaining -= 1
            for u in neighbours(stay):
                heapq.heappush(heap, (float(np.linalg.norm(verts[u] - verts[stay])), min(u, stay), max(u, stay)))
            break
    return np.nonzero(alive)[0], faces[alive_face]


def arrays(seed: int = 0) -> tuple[dict, SyntheticFlame]:
    """The FLAME arrays (metres) of the synthetic head, and what is known about it (a fresh dict each call)."""
    data, truth = cached_arrays(seed)
    return dict(data), truth


@lru_cache(maxsize=2)
def cached_arrays(seed: int) -> tuple[dict, SyntheticFlame]:
    model = FaceModel.load()
    source, faces = remeshed_ict()
    rng = np.random.default_rng(seed)
    neutral = model.neutral.numpy().astype(np.float64)
    identity = np.zeros(model.num_identity)
    identity[:30] = rng.normal(0, 0.8, 30)
    head = neutral[source] + np.tensordot(identity, model.identity_basis.numpy()[:, source].astype(np.float64), axes=1)
    head = head + warp(neutral[source])
    rotation = rotation_matrix(ROTATION_DEG)
    to_flame = lambda cm: SCALE * cm @ rotation.T / 100.0  # noqa: E731  (ICT cm → FLAME m, no translation)
    template = to_flame(head) + np.array(TRANSLATION_M)
    weights = skinning_weights(model, source)
    j_regressor = joint_regressor(model, source, template)
    shapedirs = directions(model, source, rng, to_flame)
    posedirs = 2e-4 * np.sin(template[:, :, None] * rng.uniform(20, 60, (1, 3, 36)) + rng.uniform(0, 6, (1, 3, 36)))
    data = {"v_template": template, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": j_regressor,
            "weights": weights, "kintree_table": KINTREE.copy(), "J": j_regressor @ template, "f": faces.astype(np.uint32)}
    new_id = np.full(model.num_vertices, -1)
    new_id[source] = np.arange(len(source))
    truth = SyntheticFlame(path=Path(), source_vertex=source, rotation=rotation, scale=SCALE, faces=faces,
                           landmark_vertices=new_id[model.landmarks.numpy()])
    return data, truth


def warp(points: np.ndarray) -> np.ndarray:
    """A smooth displacement (cm) that no ICT identity mode makes: sines of the position along three directions."""
    k = 2 * np.pi / WARP_WAVELENGTH_CM
    return WARP_CM * np.stack([np.sin(k * points[:, 1] + 0.3), np.sin(k * points[:, 2] + 1.1), np.sin(k * points[:, 0] + 2.0)], axis=1)


def skinning_weights(model: FaceModel, source: np.ndarray) -> np.ndarray:
    """(V, 5): eyeballs follow their eye joint (3 is the face's left, +x); the jaw carries what ICT's jawOpen moves, in
    proportion; the neck's lower part follows the root; the rest the neck joint (the head)."""
    weights = np.zeros((len(source), 5))
    left, right = ict.SCLERA_LEFT.contains(source), ict.SCLERA_RIGHT.contains(source)
    jaw_move = np.linalg.norm(model.expression_basis[model.expression_index("jawOpen")].numpy()[source].astype(np.float64), axis=1)
    jaw = np.clip(jaw_move / (0.5 * jaw_move.max()), 0, 1)
    y = model.neutral.numpy()[source, 1].astype(np.float64)
    chin_y = float(model.neutral[model.landmarks[8], 1])
    root = np.clip((chin_y - 4.0 - y) / 5.0, 0, 1) * (1 - jaw)
    weights[:, 0], weights[:, 2], weights[:, 1] = root, jaw, 1 - root - jaw
    weights[left | right] = 0
    weights[left, 3] = weights[right, 4] = 1
    return weights / weights.sum(axis=1, keepdims=True)  # rows sum to 1 to float64 precision, as FLAME's do


def joint_regressor(model: FaceModel, source: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(5, V), rows summing to 1: root under the neck, neck joint at the neck's middle, jaw between the jaw's tops
    (landmarks 0 and 16), each eye at its eyeball's centre."""
    regressor = np.zeros((5, len(source)))
    neutral = model.neutral.numpy()[source]
    skin = ~(ict.SCLERA_LEFT.contains(source) | ict.SCLERA_RIGHT.contains(source))
    lowest = np.argsort(np.where(skin, neutral[:, 1], np.inf))[:30]
    regressor[0, lowest] = 1 / 30
    chin_y = float(model.neutral[model.landmarks[8], 1])
    band = np.nonzero(skin & (np.abs(neutral[:, 1] - (chin_y - 3.0)) < 1.0))[0]
    regressor[1, band] = 1 / len(band)
    for number in (0, 16):
        near = np.argsort(np.linalg.norm(neutral - model.neutral[model.landmarks[number]].numpy(), axis=1))[:8]
        regressor[2, near] += 1 / 16
    for row, span in ((3, ict.SCLERA_LEFT), (4, ict.SCLERA_RIGHT)):
        member = span.contains(source)
        regressor[row, member] = 1 / member.sum()
    return regressor


def directions(model: FaceModel, source: np.ndarray, rng: np.random.Generator, to_flame) -> np.ndarray:
    """(V, 3, 400): ICT's 100 identity modes, 200 smaller mixtures of them, ICT's 57 published expression shapes (not
    the derived browKnit) and 43 mixtures, all carried into the FLAME frame (metres)."""
    identity = model.identity_basis.numpy().astype(np.float64)[:, source]
    published = [k for k, name in enumerate(model.expression_names) if name not in DERIVED_SHAPES]  # ICT's own 57
    expression = model.expression_basis.numpy().astype(np.float64)[published][:, source]
    mixed_identity = np.tensordot(rng.normal(0, 0.03, (200, len(identity))), identity, axes=1)
    mixed_expression = np.tensordot(rng.normal(0, 0.1, (100 - len(expression), len(expression))), expression, axes=1)
    components = np.concatenate([identity, mixed_identity, expression, mixed_expression])
    return to_flame(components).transpose(1, 2, 0)


@contextlib.contextmanager
def look_alike_modules(names: dict[str, dict[str, type]]):
    """Register stand-in modules (name → {class name: class}) for pickling, and remove them afterwards."""
    added = []
    for module_name, classes in names.items():
        assert module_name not in sys.modules, f"{module_name} is installed; the look-alike would shadow it"
        module = types.ModuleType(module_name)
        for class_name, cls in classes.items():
            cls.__module__, cls.__qualname__, cls.__name__ = module_name, class_name, class_name
            setattr(module, class_name, cls)
        sys.modules[module_name] = module
        added.append(module_name)
    try:
        yield
    finally:
        for module_name in added:
            del sys.modules[module_name]


def chumpy_array(value: np.ndarray):
    """An object that pickles as chumpy's Ch does: its __dict__ without the weak references chumpy drops."""
    ch = ChumpyCh()
    ch.__dict__.update({"_dirty_vars": set(), "_itr": None, "_depends_on_deps": {}, "_make_dense": False,
                        "_make_sparse": False, "x": value})
    return ch


def sparse_csc(dense: np.ndarray, module_attributes: dict):
    """An object that pickles as scipy's csc_matrix does (its __dict__ of index arrays)."""
    matrix = CscMatrix()
    columns = [np.nonzero(dense[:, j])[0] for j in range(dense.shape[1])]
    matrix.__dict__.update({"_shape": dense.shape, "maxprint": 50, **module_attributes,
                            "indices": np.concatenate(columns).astype(np.int32),
                            "indptr": np.concatenate([[0], np.cumsum([len(c) for c in columns])]).astype(np.int32),
                            "data": np.concatenate([dense[c, j] for j, c in enumerate(columns)])})
    return matrix


class ChumpyCh:
    pass


class CscMatrix:
    pass


def write_flame(path: Path, variant: str = "2020", *, seed: int = 0, embed_landmarks: bool = False) -> SyntheticFlame:
    """Write the synthetic head as a FLAME file of the given variant; `embed_landmarks` adds a 68-point embedding
    (lmk_faces_idx, lmk_bary_coords) to the file itself."""
    data, truth = arrays(seed)
    if embed_landmarks:
        data.update(zip(("lmk_faces_idx", "lmk_bary_coords"), landmark_embedding(truth)))
    if variant == "npz":
        np.savez(path, **data)
    elif variant == "2020":
        data.update({key: chumpy_array(data[key]) for key in ("v_template", "shapedirs", "J")})
        data.update(J_regressor=sparse_csc(data["J_regressor"], {}), bs_style="lbs", bs_type="lrotmin")
        with look_alike_modules({"chumpy": {}, "chumpy.ch": {"Ch": ChumpyCh}, "scipy": {}, "scipy.sparse": {},
                                 "scipy.sparse.csc": {"csc_matrix": CscMatrix}}):
            path.write_bytes(pickle.dumps(data, protocol=2))
    elif variant == "2023":
        data["J_regressor"] = sparse_csc(data["J_regressor"], {"_maxprint": 50})
        with look_alike_modules({"scipy": {}, "scipy.sparse": {}, "scipy.sparse._csc": {"csc_matrix": CscMatrix}}):
            path.write_bytes(pickle.dumps(data, protocol=4))
    else:
        raise ValueError(variant)
    return SyntheticFlame(path=path, **{k: v for k, v in vars(truth).items() if k != "path"})


def landmark_embedding(truth: SyntheticFlame) -> tuple[np.ndarray, np.ndarray]:
    """(68,) triangle and (68, 3) barycentrics of each landmark vertex: a triangle holding it, weight 1 there."""
    faces, bary = np.zeros(68, np.int64), np.zeros((68, 3))
    for k, vertex in enumerate(truth.landmark_vertices):
        triangle, corner = np.argwhere(truth.faces == vertex)[0]
        faces[k], bary[k, corner] = triangle, 1.0
    return faces, bary


def write_landmarks(path: Path, truth: SyntheticFlame) -> None:
    """A DECA-style `landmark_embedding.npy`: a pickled dict with the 68-point `full_lmk_*` keys."""
    faces, bary = landmark_embedding(truth)
    np.save(path, {"full_lmk_faces_idx": faces[None], "full_lmk_bary_coords": bary[None]}, allow_pickle=True)


def write_uv_obj(path: Path, truth: SyntheticFlame) -> None:
    """A UV layout of FLAME's kind (one chart set in the unit square) as an .obj: a cylinder around the head for the
    skin (the seam at the back, triangles across it wrapped; stretched at the crown, which the views barely show), each
    eyeball's front in a corner square."""
    data, _ = arrays()
    template = data["v_template"]
    eyes = data["weights"][:, 3:].argmax(axis=1) + 3
    is_eye = data["weights"][:, 3:].max(axis=1) > 0.5
    centre = template[~is_eye].mean(axis=0)
    offset = template - centre
    angle = (np.arctan2(offset[:, 0], -offset[:, 2]) + 2 * np.pi) % (2 * np.pi)  # 0 at the back of the head
    height = (offset[:, 1] - offset[:, 1].min()) / np.ptp(offset[:, 1])
    uvs = np.stack([0.02 + 0.9 * angle / (2 * np.pi), 0.26 + 0.72 * height], axis=1)
    for joint, corner in ((3, 0.02), (4, 0.2)):
        member = is_eye & (eyes == joint)
        local = offset[member] - offset[member].mean(axis=0)
        uvs[member] = np.array([corner, 0.02]) + 0.08 + 0.08 * local[:, :2] / np.abs(local[:, :2]).max()
    corner_uvs = uvs[truth.faces]
    wraps = (np.ptp(corner_uvs[..., 0], axis=1) > 0.5) & ~is_eye[truth.faces].any(axis=1)
    corner_uvs[wraps] = np.where(corner_uvs[wraps][..., :1] < 0.5, corner_uvs[wraps] + [0.9, 0.0], corner_uvs[wraps])
    corner_uvs[..., 0] /= max(1.0, corner_uvs[..., 0].max())  # wrapped corners (at the seam and the crown) back inside
    lines = [f"v {x} {y} {z}" for x, y, z in template]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in corner_uvs.reshape(-1, 2)]
    lines += [f"f {a + 1}/{3 * k + 1} {b + 1}/{3 * k + 2} {c + 1}/{3 * k + 3}" for k, (a, b, c) in enumerate(truth.faces)]
    path.write_text("\n".join(lines) + "\n")


def true_displacements(truth: SyntheticFlame, shapes: torch.Tensor) -> torch.Tensor:
    """(E, V, 3) cm: what ICT's expression shapes (E, V_ict, 3) do to each synthetic FLAME vertex."""
    rotation = torch.as_tensor(truth.rotation, dtype=torch.float32)
    return truth.scale * shapes[:, torch.as_tensor(truth.source_vertex)] @ rotation.T
