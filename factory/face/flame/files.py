"""FLAME files as plain numpy arrays: the model (`.pkl` or `.npz`), its landmark embedding and its UV layout.

    flame = read_flame(Path("generic_model.pkl"))      # FlameFile: template, bases, skeleton, faces, sha256
    uv = read_flame_uv(Path("FLAME_texture.npz"), faces=len(flame.faces))
    landmarks = read_landmark_embedding(Path("landmark_embedding.npy"))

The files (FLAME 2020 `generic_model.pkl`, FLAME 2023 / 2023 Open `.pkl`, `.npz` conversions of either) hold:
`v_template` (V, 3) metres; `shapedirs` (V, 3, 400): 300 identity components then 100 expression components, each
scaled to one standard deviation; `posedirs` (V, 3, 36): pose correctives, linear in the entries of (R - I) of the
four non-root joints; `J_regressor` (5, V), a scipy sparse matrix in the pickles; `weights` (V, 5) skinning
weights; `kintree_table` (2, 5): parent and id of each joint (root, neck, jaw, left eye, right eye); `f` (F, 3).
Pickles go through the restricted unpickler (`unpickle.py`); `.npz` files are read with `allow_pickle=False`.
Every file is read once into memory, hashed (sha256) and parsed from those bytes, so the digest names exactly the
data that was used.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factory.errors import FactoryError
from factory.face.flame.unpickle import load_pickle

SHAPE_COMPONENTS = 300  # FLAME's shapedirs: the first 300 components are identity, the rest expression
# Landmark embeddings: (faces key, barycentrics key) pairs as the public FLAME tools write them. A 68-point embedding
# covers every Multi-PIE point; the 51-point "static" one covers points 17–67 (not the jaw line, which turns with the
# head pose in the dynamic embedding).
LANDMARK_KEYS = (("full_lmk_faces_idx", "full_lmk_bary_coords"), ("lmk_faces_idx", "lmk_bary_coords"),
                 ("lmk_face_idx", "lmk_b_coords"), ("static_lmk_faces_idx", "static_lmk_bary_coords"))
LANDMARK_FIRST_POINT = {68: 0, 51: 17}


class FlameFileError(FactoryError, ValueError):
    """A FLAME file is missing, unreadable or not shaped like a FLAME model; the message names the file and key."""


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Landmarks as points on mesh triangles: Multi-PIE point `numbers[k]` is `bary[k]` of triangle `faces[k]`."""

    numbers: np.ndarray  # (N,) int64 Multi-PIE point numbers (0..67)
    faces: np.ndarray  # (N,) int64 triangle ids
    bary: np.ndarray  # (N, 3) float64 barycentric weights


@dataclass(frozen=True)
class FlameFile:
    """A FLAME model as numpy arrays, in the file's units (metres)."""

    path: Path
    sha256: str
    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, S) identity components
    exprdirs: np.ndarray  # (V, 3, E) FLAME's own expression components
    posedirs: np.ndarray  # (V, 3, 9 (J - 1)) pose correctives
    j_regressor: np.ndarray  # (J, V) dense
    weights: np.ndarray  # (V, J) skinning weights
    parents: np.ndarray  # (J,) int64 parent joint of each joint, -1 for the root
    faces: np.ndarray  # (F, 3) int64
    landmarks: LandmarkEmbedding | None  # when the model file carries an embedding

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]


@dataclass(frozen=True)
class FlameUV:
    """A UV layout for FLAME's triangles: `uvs` (T, 2) in 0..1, v up, and per triangle its corners' uv ids."""

    sha256: str
    uvs: np.ndarray  # (T, 2) float32
    face_uvs: np.ndarray  # (F, 3) int64


def read_bytes(path: Path, what: str) -> tuple[bytes, str]:
    """The file's bytes and their sha256, or a FlameFileError naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FlameFileError(f"cannot read the {what} {path}: {error.strerror or error}") from None
    return data, hashlib.sha256(data).hexdigest()


def load_mapping(data: bytes, path: Path, what: str) -> dict:
    """The key → value mapping a `.pkl`, `.npz` or `.npy` file holds (a `.npy` holding a pickled dict, as FLAME's
    landmark embeddings are saved, is read through the restricted unpickler)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile) as error:  # object arrays need pickle: refused
            raise FlameFileError(f"the {what} {path} is not a plain .npz of arrays: {error}") from None
    if suffix == ".npy":
        loaded = load_npy(data, path, what)
    elif suffix in (".pkl", ".pickle"):
        loaded = load_pickle(data)
    else:
        raise FlameFileError(f"the {what} {path} must be a .pkl, .npz or .npy file")
    if not isinstance(loaded, dict):
        raise FlameFileError(f"the {what} {path} holds a {type(loaded).__name__}, not a mapping of arrays")
    return loaded


def load_npy(data: bytes, path: Path, what: str) -> object:
    """A `.npy` array; an object array (a pickled dict) is unpickled by the restricted unpickler, never np.load."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(stream)
    except ValueError as error:
        raise FlameFileError(f"the {what} {path} is not a .npy file: {error}") from None
    if dtype.hasobject:
        loaded = load_pickle(data[stream.tell():])
        return loaded.item() if isinstance(loaded, np.ndarray) and loaded.shape == () else loaded
    return np.load(io.BytesIO(data), allow_pickle=False)


def read_flame(path: Path) -> FlameFile:
    data, digest = read_bytes(path, "FLAME model")
    content = load_mapping(data, path, "FLAME model")

    def array(key: str, dtype=np.float64) -> np.ndarray:
        if key not in content:
            raise FlameFileError(f"the FLAME model {path} has no '{key}' (keys: {', '.join(sorted(map(str, content)))})")
        try:
            return np.asarray(content[key], dtype=dtype)
        except (TypeError, ValueError):
            raise FlameFileError(f"'{key}' in {path} is not numeric: {type(content[key]).__name__}") from None

    template, directions, faces = array("v_template"), array("shapedirs"), array("f", np.int64)
    parents = kintree_parents(array("kintree_table", np.int64), path)
    vertices, joints = template.shape[0], len(parents)
    posedirs = array("posedirs")
    if posedirs.ndim == 2 and posedirs.shape == (9 * (joints - 1), vertices * 3):  # the flattened layout of some ports
        posedirs = posedirs.T.reshape(vertices, 3, -1)
    flame = FlameFile(
        path=Path(path), sha256=digest, v_template=template, shapedirs=directions[..., :SHAPE_COMPONENTS],
        exprdirs=directions[..., SHAPE_COMPONENTS:], posedirs=posedirs, j_regressor=array("J_regressor"),
        weights=array("weights"), parents=parents, faces=faces, landmarks=embedding_in(content, path, required=False),
    )
    expected = {"v_template": (template, (vertices, 3)), "shapedirs": (directions, (vertices, 3, directions.shape[-1])),
                "posedirs": (posedirs, (vertices, 3, 9 * (joints - 1))), "J_regressor": (flame.j_regressor, (joints, vertices)),
                "weights": (flame.weights, (vertices, joints)), "f": (faces, (faces.shape[0], 3))}
    for key, (value, shape) in expected.items():
        if value.shape != shape:
            raise FlameFileError(f"'{key}' in {path} has shape {value.shape}, expected {shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= vertices):
        raise FlameFileError(f"'f' in {path} names vertices outside 0..{vertices - 1}")
    return flame


def kintree_parents(table: np.ndarray, path: Path) -> np.ndarray:
    """(J,) parent of each joint from a (2, J) kintree table; the root's parent (stored as -1 or 2**32 - 1) is -1."""
    if table.ndim != 2 or table.shape[0] != 2 or not np.array_equal(table[1], np.arange(table.shape[1])):
        raise FlameFileError(f"'kintree_table' in {path} must be (2, J) with joints 0..J-1 in order, got {table.tolist()}")
    parents = np.where((table[0] < 0) | (table[0] >= table.shape[1]), -1, table[0])
    if parents[0] != -1 or any(not 0 <= parents[j] < j for j in range(1, len(parents))):
        raise FlameFileError(f"'kintree_table' in {path} must list each joint after its parent, root first, got {table[0].tolist()}")
    return parents


def embedding_in(content: dict, path: Path, required: bool) -> LandmarkEmbedding | None:
    """The 68- or 51-point landmark embedding among a file's keys (see LANDMARK_KEYS), or None."""
    for faces_key, bary_key in LANDMARK_KEYS:
        if faces_key in content and bary_key in content:
            faces = np.asarray(content[faces_key], dtype=np.int64).reshape(-1)
            bary = np.asarray(content[bary_key], dtype=np.float64).reshape(-1, 3)
            if len(faces) in LANDMARK_FIRST_POINT and len(bary) == len(faces):
                first = LANDMARK_FIRST_POINT[len(faces)]
                return LandmarkEmbedding(numbers=np.arange(first, first + len(faces)), faces=faces, bary=bary)
            if required:
                raise FlameFileError(f"the landmark embedding in {path} has {len(faces)} points; 68 or 51 are understood")
    if required:
        raise FlameFileError(f"{path} holds no landmark embedding (looked for {', '.join(f for f, _ in LANDMARK_KEYS)})")
    return None


def read_landmark_embedding(path: Path, num_faces: int) -> tuple[LandmarkEmbedding, str]:
    """A landmark embedding file (RingNet's / DECA's `.pkl`, `.npy` or `.npz`) and its sha256."""
    data, digest = read_bytes(path, "landmark embedding")
    embedding = embedding_in(load_mapping(data, path, "landmark embedding"), path, required=True)
    check_embedding(embedding, num_faces, path)
    return embedding, digest


def check_embedding(embedding: LandmarkEmbedding, num_faces: int, path: Path) -> None:
    if embedding.faces.min() < 0 or embedding.faces.max() >= num_faces:
        raise FlameFileError(f"the landmark embedding in {path} names triangles outside 0..{num_faces - 1}")


def read_flame_uv(path: Path, num_faces: int) -> FlameUV:
    """FLAME's UV layout: an `.obj` with `vt` lines and `f v/vt` faces (FLAME's head_template.obj), or a `.npz`/`.pkl`
    with `vt` (T, 2) and `ft` (F, 3) (FLAME_texture.npz of the FLAME 2020 texture space)."""
    data, digest = read_bytes(path, "FLAME UV file")
    if Path(path).suffix.lower() == ".obj":
        uvs, face_uvs = obj_uvs(data.decode("utf-8", errors="replace"))
    else:
        content = load_mapping(data, path, "FLAME UV file")
        if "vt" not in content or "ft" not in content:
            raise FlameFileError(f"the FLAME UV file {path} needs 'vt' and 'ft' (keys: {', '.join(sorted(map(str, content)))})")
        uvs, face_uvs = np.asarray(content["vt"], np.float32), np.asarray(content["ft"], np.int64)
    if uvs.ndim != 2 or uvs.shape[1] != 2 or face_uvs.shape != (num_faces, 3):
        raise FlameFileError(f"the FLAME UV file {path} has {uvs.shape} uvs and {face_uvs.shape} uv faces; "
                             f"the model has {num_faces} triangles")
    if face_uvs.min() < 0 or face_uvs.max() >= len(uvs):
        raise FlameFileError(f"the FLAME UV file {path} names uvs outside 0..{len(uvs) - 1}")
    return FlameUV(sha256=digest, uvs=uvs, face_uvs=face_uvs)


def obj_uvs(text: str) -> tuple[np.ndarray, np.ndarray]:
    """`vt` coordinates and the uv ids of each triangle's corners from OBJ text (triangles only, as FLAME's)."""
    uvs, face_uvs = [], []
    for line in text.splitlines():
        if line.startswith("vt "):
            uvs.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("f "):
            corners = line.split()[1:]
            if len(corners) != 3 or any(c.count("/") < 1 for c in corners):
                raise FlameFileError(f"the UV .obj must hold triangles written 'f v/vt', got {line.strip()!r}")
            face_uvs.append([int(c.split("/")[1]) - 1 for c in corners])
    return np.asarray(uvs, np.float32).reshape(-1, 2), np.asarray(face_uvs, np.int64).reshape(-1, 3)
