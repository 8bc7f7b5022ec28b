"""The 3D morphable face model: identity coefficients + expression weights → mesh vertices.

The embedded default is the project's compact copy of ICT Face Model Light (MIT, USC ICT; built by
`tools/build_face_asset.py`, licence in `factory/assets/LICENSE-ICT-FaceKit`). Its expression shapes are ICT's 57
followed by the shapes `factory/face/shapes.py` derives from the neutral mesh at load time (`browKnit_L/R`). A user's
FLAME file becomes a FaceModel too (`face/flame/model.py`): its own identity space, ICT's expression shapes (the
derived ones included) transferred onto it under the same names, and its jaw joint. Units are centimetres, +y is up
and the face looks toward +z.

    model = FaceModel.load()
    verts = model.vertices(identity=torch.randn(4, 100), expression=torch.zeros(4, model.num_expressions))
    points = model.landmark_points(verts)          # (4, 68, 3)

An expression shape is linear (a displacement added at its weight) unless a `JointShape` makes it: then its weight
turns a joint of the model's `skeleton` (FLAME's jaw opening the mouth), and its row of `expression_basis` holds the
displacement of that rotation at full weight on the template, for code that reasons about shapes linearly (the rig's
margin guard, the vertices a shape moves).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from factory.face.layout import FaceLayout, ict_layout
from factory.face.shapes import derived_shapes
from factory.face.skeleton import Skeleton

BUNDLED_ASSET = "ict_face_light.npz"


@dataclass(frozen=True)
class JointShape:
    """An expression shape made by a joint: at weight w the joint turns by w × `rotation` (axis-angle, radians)."""

    name: str
    joint: int
    rotation: tuple[float, float, float]


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class FaceModel:
    neutral: torch.Tensor  # (V, 3) float32, cm
    identity_basis: torch.Tensor  # (I, V, 3): one standard deviation of each identity mode
    expression_basis: torch.Tensor  # (E, V, 3): each expression shape at full weight, minus neutral
    expression_names: tuple[str, ...]  # (E,) ARKit-style names: "browDown_L", "jawOpen", …, then the derived shapes
    faces: torch.Tensor  # (F, 3) int64 vertex indices, triangles
    face_uvs: torch.Tensor  # (F, 3) int64 indices into uvs
    uvs: torch.Tensor  # (T, 2) float32, v up; charts placed in the texture by layout.cells (ICT: UDIM tiles)
    vertex_part: torch.Tensor  # (V,) int64 index into part_names
    part_names: tuple[str, ...]  # "background", "skin", "brows", "eyes", "lips", "mouth_interior", "lashes", …
    landmarks: torch.Tensor  # (68,) int64: the vertex at (or nearest) each Multi-PIE landmark
    landmark_faces: torch.Tensor  # (68,) int64: the triangle each landmark lies on …
    landmark_bary: torch.Tensor  # (68, 3) float32: … and its barycentric weights there
    layout: FaceLayout  # which vertices are eyeballs, margins, mouth …; how the UV charts pack
    name: str = "ict-face-light"
    skeleton: Skeleton | None = None  # joints that JointShapes turn
    joint_shapes: tuple[JointShape, ...] = ()

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> "FaceModel":
        """The bundled model, or a compact asset at `path` written by tools/build_face_asset.py."""
        return _load_cached(str(path) if path is not None else None).to(device)

    @property
    def num_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expressions(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def num_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def face_part(self) -> torch.Tensor:
        """(F,) region id of each triangle: the label its first vertex carries."""
        return self.vertex_part[self.faces[:, 0]]

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"unknown expression shape {name!r}; the model has {', '.join(self.expression_names)}") from None

    def landmark_points(self, verts: torch.Tensor) -> torch.Tensor:
        """(..., 68, 3) landmark positions on meshes (..., V, 3), on the meshes' device."""
        corners = verts[..., self.faces[self.landmark_faces].to(verts.device), :]  # (..., 68, 3 corners, 3)
        return (self.landmark_bary.to(verts)[..., None] * corners).sum(dim=-2)

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices for identity coefficients (B, I) and expression weights (B, E).

        Fewer identity coefficients than modes are allowed: the rest count as zero.
        """
        if identity.ndim != 2 or expression.ndim != 2 or identity.shape[0] != expression.shape[0]:
            raise ValueError(f"expected identity (B, I) and expression (B, E), got {tuple(identity.shape)} and {tuple(expression.shape)}")
        if identity.shape[1] > self.num_identity or expression.shape[1] != self.num_expressions:
            raise ValueError(f"this model has {self.num_identity} identity modes and {self.num_expressions} expression shapes, "
                             f"got {identity.shape[1]} and {expression.shape[1]}")
        modes = self.identity_basis[: identity.shape[1]]
        expression = expression.to(modes)
        linear = expression.clone()
        for shape in self.joint_shapes:  # made by turning a joint below, not by their linearised rows
            linear[:, self.expression_index(shape.name)] = 0
        offsets = torch.einsum("bi,ivc->bvc", identity.to(modes), modes)
        offsets = offsets + torch.einsum("be,evc->bvc", linear, self.expression_basis)
        if self.skeleton is None:
            return self.neutral + offsets
        return self.skeleton.pose(self.neutral + offsets, self.joint_rotations(expression))

    def joint_rotations(self, expression: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) axis-angle rotation of every joint for expression weights (B, E): the sum of its JointShapes'."""
        rotations = expression.new_zeros(expression.shape[0], self.skeleton.num_joints, 3)
        for shape in self.joint_shapes:
            weight = expression[:, self.expression_index(shape.name), None]
            rotations[:, shape.joint] += weight * torch.tensor(shape.rotation, dtype=expression.dtype, device=expression.device)
        return rotations

    def with_shapes(self, shapes: dict[str, torch.Tensor]) -> "FaceModel":
        """The same model with more expression shapes (name → (V, 3) displacement), appended after its own."""
        clash = sorted(set(shapes) & set(self.expression_names))
        if clash:
            raise ValueError(f"the model already has expression shapes named {', '.join(clash)}")
        basis = torch.cat([self.expression_basis, *(field[None].to(self.expression_basis) for field in shapes.values())])
        return replace(self, expression_basis=basis, expression_names=self.expression_names + tuple(shapes))

    def to(self, device: str | torch.device) -> "FaceModel":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return FaceModel(**{name: value.to(device) if hasattr(value, "to") else value for name, value in moved.items()})


@lru_cache(maxsize=4)
def _load_cached(path: str | None) -> FaceModel:
    # One decoded copy per process: Ray actors and tests load the model many times.
    if path is None:
        with resources.as_file(resources.files("factory.assets") / BUNDLED_ASSET) as bundled:
            data = dict(np.load(bundled))
    else:
        data = dict(np.load(path))

    def dequantise(codes: np.ndarray, scale: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(codes.astype(np.float32) * scale[:, None, None])

    neutral, faces = torch.from_numpy(data["neutral"]), torch.from_numpy(data["faces"].astype(np.int64))
    uvs, face_uvs = torch.from_numpy(data["uvs"]), torch.from_numpy(data["face_uvs"].astype(np.int64))
    landmarks = torch.from_numpy(data["landmarks"].astype(np.int64))
    landmark_faces, landmark_bary = vertex_embedding(landmarks, faces)
    model = FaceModel(
        neutral=neutral,
        identity_basis=dequantise(data["identity_q"], data["identity_scale"]),
        expression_basis=dequantise(data["expression_q"], data["expression_scale"]),
        expression_names=tuple(str(n) for n in data["expression_names"]),
        faces=faces, face_uvs=face_uvs, uvs=uvs,
        vertex_part=torch.from_numpy(data["vertex_part"].astype(np.int64)),
        part_names=tuple(str(n) for n in data["part_names"]),
        landmarks=landmarks, landmark_faces=landmark_faces, landmark_bary=landmark_bary,
        layout=ict_layout(neutral, faces, uvs, face_uvs),
    )
    # Shapes the published model lacks (factory/face/shapes.py), computed from its neutral mesh on the face surface.
    return model.with_shapes(derived_shapes(model.neutral, model.landmarks, model.layout.margin_surface))


def vertex_embedding(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks that are vertices, as points on triangles: a triangle holding each vertex, weight 1 at its corner."""
    corners = faces.reshape(-1)
    first_slot = torch.full((int(corners.max()) + 1,), corners.numel(), dtype=torch.int64)
    first_slot = first_slot.scatter_reduce(0, corners, torch.arange(corners.numel()), reduce="amin")  # (triangle, corner) as 3t + c
    slot = first_slot[vertices]
    bary = torch.zeros(len(vertices), 3)
    bary[torch.arange(len(vertices)), slot % 3] = 1.0
    return slot // 3, bary
