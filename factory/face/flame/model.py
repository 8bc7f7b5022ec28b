"""A user's FLAME file as a FaceModel: FLAME's identity space and skeleton, ICT's expression shapes transferred.

    model = load_flame_model(FlameSource(path="flame2023_Open.pkl"))
    rig = AURig(model)                                  # the same rig, AU table and margin guards as for ICT

What each part of the FaceModel is:
- neutral, identity_basis: FLAME's template and its 300 identity components (one standard deviation each), m → cm;
- expression_basis: ICT's 57 expression shapes under their ICT names, carried to FLAME through the correspondence
  (`transfer.py`), so AU_SHAPES and any shape added to ICT later drive FLAME unchanged; except `jawOpen`, which is
  FLAME's own jaw joint (a JointShape): the jaw rotation that best reproduces ICT's transferred jawOpen on the
  vertices the jaw carries (least squares over angles), with FLAME's pose correctives. AU25–27 use it through AU_SHAPES;
- landmarks: FLAME's embedding when the model file or `landmarks` file has one (a 51-point one is completed with
  the transferred jaw line), else ICT's landmarks transferred (the closest FLAME point to each registered ICT one);
- UVs: FLAME's own from `uv` (the FLAME 2020 texture-space file or head template .obj), one chart filling the
  texture; else ICT's UV charts transferred: each FLAME triangle takes the chart of the ICT triangles its corners
  map to (the majority) and its corners' UVs from that ICT triangle's affine UV map, extended past its edges where
  a corner lies beyond them. Seams then follow ICT's, off by at most a FLAME triangle; the gutters around each
  chart hold its border colour, so a slightly overhanging triangle still samples skin;
- layout: eyeballs are the vertices FLAME's eye joints carry (skinning weight > 0.5), the face's left one at +x;
  the margin surface is everything else (FLAME's holes are the eyes, the mouth and the neck); parts and framing
  follow the ICT points each vertex maps to. FLAME has no mouth interior, teeth or eye sockets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from factory.face.flame.files import (
    FlameFile,
    FlameFileError,
    FlameUV,
    LandmarkEmbedding,
    check_embedding,
    read_flame,
    read_flame_uv,
    read_landmark_embedding,
)
from factory.face.flame.forward import FlameLayer
from factory.face.flame.registration import Target
from factory.face.flame.transfer import Correspondence, cache_key, correspondence_for
from factory.face.layout import AtlasCell, FaceLayout
from factory.face.model import BUNDLED_ASSET, FaceModel, JointShape
from factory.face.skeleton import Skeleton

CM_PER_UNIT = 100.0  # FLAME files are in metres
EYE_JOINTS = (3, 4)
JAW_JOINT = 2
JAW_SHAPE = "jawOpen"
JAW_SEARCH_RAD = np.linspace(-0.8, 0.8, 161)  # candidate jaw angles at full jawOpen, 0.01 rad (0.6°) apart
OWN_UV_CELL = AtlasCell(0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class FlameSource:
    """Where a FLAME model comes from: the model file, and optionally its UV layout and landmark embedding files."""

    path: str
    uv: str | None = None
    landmarks: str | None = None


@dataclass(frozen=True)
class LoadedFlame:
    """The FaceModel and what it was made from (digests for meta.json and the manifest)."""

    model: FaceModel
    sha256: str
    uv_sha256: str | None
    landmarks_sha256: str | None
    landmarks_from: str  # "model file", "landmark file", "transferred from ICT" (or a 51-point one + "jaw line transferred")
    uv_from: str  # "uv file" or "transferred from ICT"
    correspondence: Correspondence


@lru_cache(maxsize=2)
def load_flame_model(source: FlameSource) -> LoadedFlame:
    """The FaceModel of a FLAME file (one per process and source: Ray actors and tests ask many times)."""
    ict = FaceModel.load()
    flame = read_flame(Path(source.path))
    uv = read_flame_uv(Path(source.uv), len(flame.faces)) if source.uv else None
    embedding, landmarks_sha256, landmarks_from = flame.landmarks, None, "model file"
    if source.landmarks:
        embedding, landmarks_sha256 = read_landmark_embedding(Path(source.landmarks), len(flame.faces))
        landmarks_from = "landmark file"
    elif embedding is not None:
        check_embedding(embedding, len(flame.faces), flame.path)
    layer = FlameLayer.from_file(flame, dtype=torch.float64)
    neutral = layer.template * CM_PER_UNIT
    faces = layer.faces
    eyeball_left, eyeball_right = eyeballs(flame, neutral)
    known = embedded_points(embedding, neutral, faces)
    target = Target(neutral, faces, eyeball_left, eyeball_right, known)
    correspondence = correspondence_for(ict, target, cache_key(flame.sha256, landmarks_sha256 or "", ict_digest()))
    landmark_faces, landmark_bary, landmarks_from = combine_landmarks(embedding, correspondence, landmarks_from)
    model = build_model(ict, layer, correspondence, uv, landmark_faces, landmark_bary, (eyeball_left, eyeball_right))
    return LoadedFlame(model=model, sha256=flame.sha256, uv_sha256=uv.sha256 if uv else None,
                       landmarks_sha256=landmarks_sha256, landmarks_from=landmarks_from,
                       uv_from="uv file" if uv else "transferred from ICT", correspondence=correspondence)


@lru_cache(maxsize=1)
def ict_digest() -> str:
    """The bundled ICT asset's sha256: a correspondence is only valid for the ICT data it was computed against."""
    return hashlib.sha256((resources.files("factory.assets") / BUNDLED_ASSET).read_bytes()).hexdigest()


def eyeballs(flame: FlameFile, neutral: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(V,) bool masks of the face's left (+x) and right eyeballs: the vertices FLAME's eye joints carry."""
    carried = [torch.as_tensor(flame.weights[:, joint] > 0.5) for joint in EYE_JOINTS]
    if not all(mask.any() for mask in carried):
        raise FlameFileError(f"{flame.path}: no vertices follow the eye joints {EYE_JOINTS}; FLAME's eyeballs are needed")
    first, second = carried
    return (first, second) if neutral[first, 0].mean() > neutral[second, 0].mean() else (second, first)


def embedded_points(embedding: LandmarkEmbedding | None, neutral: torch.Tensor, faces: torch.Tensor) -> torch.Tensor | None:
    """(68, 3) landmark points of the template from FLAME's embedding (NaN where it has no point), or None."""
    if embedding is None:
        return None
    points = torch.full((68, 3), float("nan"), dtype=neutral.dtype)
    corners = neutral[faces[torch.as_tensor(embedding.faces)]]
    points[torch.as_tensor(embedding.numbers)] = (torch.as_tensor(embedding.bary, dtype=neutral.dtype)[..., None] * corners).sum(1)
    return points


def combine_landmarks(embedding: LandmarkEmbedding | None, correspondence: Correspondence,
                      origin: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """FLAME's own landmark points where it has them, the transferred ones elsewhere."""
    faces, bary = correspondence.landmark_faces.clone(), correspondence.landmark_bary.clone()
    if embedding is None:
        return faces, bary, "transferred from ICT"
    numbers = torch.as_tensor(embedding.numbers)
    faces[numbers] = torch.as_tensor(embedding.faces)
    bary[numbers] = torch.as_tensor(embedding.bary, dtype=torch.float32)
    return faces, bary, origin if len(numbers) == 68 else f"{origin} (points 17-67), jaw line transferred from ICT"


def build_model(ict: FaceModel, layer: FlameLayer, correspondence: Correspondence, uv: FlameUV | None,
                landmark_faces: torch.Tensor, landmark_bary: torch.Tensor, eyes: tuple[torch.Tensor, torch.Tensor]) -> FaceModel:
    """The FaceModel (cm) from FLAME's layer, the correspondence, the UVs and landmarks chosen (module docstring)."""
    neutral = (layer.template * CM_PER_UNIT).float()
    faces = layer.faces
    skeleton = Skeleton(layer.skeleton.j_regressor.float(), layer.skeleton.parents, layer.skeleton.weights.float(),
                        (layer.skeleton.posedirs * CM_PER_UNIT).float())
    expression_basis = correspondence.transfer(ict, ict.expression_basis).float()
    jaw = jaw_shape(neutral, skeleton, expression_basis[ict.expression_index(JAW_SHAPE)])
    expression_basis[ict.expression_index(JAW_SHAPE)] = jaw_displacement(neutral, skeleton, jaw)
    vertex_source = dominant_corner(ict, correspondence)  # the ICT vertex each FLAME vertex sits closest to
    if uv is not None:
        uvs, face_uvs = torch.from_numpy(uv.uvs), torch.from_numpy(uv.face_uvs)
        face_cell, cells = torch.zeros(len(faces), dtype=torch.int64), (OWN_UV_CELL,)
    else:
        uvs, face_uvs, face_cell = transferred_uvs(ict, correspondence, neutral, faces)
        cells = ict.layout.cells
    eyeball_left, eyeball_right = eyes
    eyeball = eyeball_left | eyeball_right
    vertex_part = ict.vertex_part[vertex_source].clone()
    vertex_part[eyeball] = ict.part_names.index("eyes")
    nothing = torch.zeros(len(neutral), dtype=torch.bool)
    layout = FaceLayout(
        skin=~eyeball, margin_surface=~eyeball, framed=ict.layout.framed[vertex_source] | eyeball,
        eyeball_left=eyeball_left, eyeball_right=eyeball_right, pupils=(front(neutral, eyeball_left), front(neutral, eyeball_right)),
        mouth_socket=nothing, gums=nothing, teeth=nothing, eye_sockets=nothing, face_cell=face_cell, cells=cells,
    )
    nearest = faces[landmark_faces].gather(1, landmark_bary.argmax(dim=1, keepdim=True)).squeeze(1)
    return FaceModel(
        neutral=neutral, identity_basis=(layer.shapedirs * CM_PER_UNIT).permute(2, 0, 1).float().contiguous(),
        expression_basis=expression_basis, expression_names=ict.expression_names, faces=faces, face_uvs=face_uvs, uvs=uvs,
        vertex_part=vertex_part, part_names=ict.part_names, landmarks=nearest, landmark_faces=landmark_faces,
        landmark_bary=landmark_bary, layout=layout, name="flame", skeleton=skeleton, joint_shapes=(jaw,),
    )


def front(neutral: torch.Tensor, eyeball: torch.Tensor) -> int:
    """The eyeball's foremost vertex: the centre of its pupil."""
    ids = torch.nonzero(eyeball).squeeze(1)
    return int(ids[neutral[ids, 2].argmax()])


def dominant_corner(ict: FaceModel, correspondence: Correspondence) -> torch.Tensor:
    """(V,) the ICT vertex of each FLAME vertex's matched triangle with the largest barycentric weight."""
    corners = ict.faces[correspondence.source_faces]
    return corners.gather(1, correspondence.source_bary.argmax(dim=1, keepdim=True)).squeeze(1)


def jaw_shape(neutral: torch.Tensor, skeleton: Skeleton, transferred_jaw: torch.Tensor) -> JointShape:
    """The jaw rotation (about the jaw joint's x axis) that best reproduces ICT's transferred jawOpen on the vertices
    FLAME's jaw carries: the angle of JAW_SEARCH_RAD with the least squared difference."""
    carried = skeleton.weights[:, JAW_JOINT] > 0.5
    angles = torch.as_tensor(JAW_SEARCH_RAD, dtype=torch.float32)
    rotations = torch.zeros(len(angles), skeleton.num_joints, 3)
    rotations[:, JAW_JOINT, 0] = angles
    posed = skeleton.pose(neutral.expand(len(angles), -1, -1), rotations)
    error = ((posed - neutral - transferred_jaw)[:, carried] ** 2).sum(dim=(1, 2))
    return JointShape(JAW_SHAPE, JAW_JOINT, (float(angles[error.argmin()]), 0.0, 0.0))


def jaw_displacement(neutral: torch.Tensor, skeleton: Skeleton, jaw: JointShape) -> torch.Tensor:
    """(V, 3) what the jaw's full rotation does to the template: jawOpen's row of the linear basis."""
    rotations = torch.zeros(1, skeleton.num_joints, 3)
    rotations[0, jaw.joint] = torch.tensor(jaw.rotation)
    return skeleton.pose(neutral[None], rotations)[0] - neutral


def transferred_uvs(ict: FaceModel, correspondence: Correspondence, neutral: torch.Tensor,
                    faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ICT's UV charts on FLAME's triangles: (uvs (3F, 2), face_uvs (F, 3), face_cell (F,)); see the module docstring.

    Each triangle takes the chart most of its corners map to, and all three UVs from the affine UV map of one ICT
    triangle there ("extended"). Where all three corners map into that chart, each corner's UV at its own matched point
    is taken instead, unless those span a UV triangle turned over or more than twice as large as the extended one
    (corners on two sides of a seam inside one chart)."""
    corner_source = correspondence.source_faces[faces]  # (F, 3) ICT triangle of each corner
    corner_cell = ict.layout.face_cell[corner_source]
    votes = (corner_cell[:, :, None] == corner_cell[:, None, :]).sum(dim=2)
    chosen = corner_source.gather(1, votes.argmax(dim=1, keepdim=True)).squeeze(1)  # (F,) a corner's triangle in the majority chart
    own = torch.einsum("fkc,fkcu->fku", correspondence.source_bary[faces], ict.uvs[ict.face_uvs[corner_source]])
    extended = torch.einsum("fkc,fcu->fku", affine_bary(correspondence.registered[ict.faces[chosen]], neutral[faces]),
                            ict.uvs[ict.face_uvs[chosen]])
    own_area, extended_area = uv_area(own), uv_area(extended)
    one_chart = (votes == 3).all(dim=1) & (own_area * extended_area > 0) & (own_area.abs() <= 2 * extended_area.abs())
    uvs = torch.where(one_chart[:, None, None], own, extended)
    return uvs.reshape(-1, 2), torch.arange(3 * len(faces)).reshape(-1, 3), ict.layout.face_cell[chosen]


def uv_area(uvs: torch.Tensor) -> torch.Tensor:
    """(F,) signed area of UV triangles (F, 3, 2): positive when counter-clockwise."""
    ab, ac = uvs[:, 1] - uvs[:, 0], uvs[:, 2] - uvs[:, 0]
    return (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]) / 2


def affine_bary(triangles: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(F, K, 3) barycentric weights of points (F, K, 3) in the planes of triangles (F, 3, 3): the affine coordinates
    of their projections, below 0 or above 1 past an edge."""
    a, b, c = triangles.unbind(1)
    edges = torch.stack([b - a, c - a], dim=-1)[:, None].expand(-1, points.shape[1], -1, -1)  # (F, K, 3, 2)
    weights = torch.linalg.lstsq(edges, (points - a[:, None])[..., None]).solution[..., 0]  # (F, K, 2)
    return torch.cat([1 - weights.sum(-1, keepdim=True), weights], dim=-1)
