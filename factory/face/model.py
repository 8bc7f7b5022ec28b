"""The 3D morphable face model: identity coefficients + expression weights → mesh vertices.

The embedded default is the project's compact copy of ICT Face Model Light (MIT, USC ICT; built by
`tools/build_face_asset.py`, licence in `factory/assets/LICENSE-ICT-FaceKit`). Units are centimetres,
+y is up and the face looks toward +z. Its expression shapes are ICT's 57 followed by the shapes
`factory/face/shapes.py` derives from the neutral mesh at load time (`browKnit_L/R`).

    model = FaceModel.load()
    verts = model.vertices(identity=torch.randn(4, 100), expression=torch.zeros(4, model.num_expressions))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from factory.face import ict
from factory.face.shapes import derived_shapes

BUNDLED_ASSET = "ict_face_light.npz"


@dataclass(frozen=True)
class FaceModel:
    neutral: torch.Tensor  # (V, 3) float32, cm
    identity_basis: torch.Tensor  # (I, V, 3): one standard deviation of each identity mode
    expression_basis: torch.Tensor  # (E, V, 3): each expression shape at full weight, minus neutral
    expression_names: tuple[str, ...]  # (E,) ARKit-style names: "browDown_L", "jawOpen", …, then the derived shapes
    faces: torch.Tensor  # (F, 3) int64 vertex indices, triangles
    face_uvs: torch.Tensor  # (F, 3) int64 indices into uvs
    uvs: torch.Tensor  # (T, 2) float32, v up; UDIM tiles: floor(u) is the tile (0-1 face/head, 1-3 mouth, 4-5 eye shells, 6 lashes)
    vertex_part: torch.Tensor  # (V,) int64 index into part_names
    part_names: tuple[str, ...]  # "background", "skin", "brows", "eyes", "lips", "mouth_interior", "lashes", …
    landmarks: torch.Tensor  # (68,) int64 vertex indices, Multi-PIE order

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
        offsets = torch.einsum("bi,ivc->bvc", identity.to(modes), modes)
        offsets = offsets + torch.einsum("be,evc->bvc", expression.to(modes), self.expression_basis)
        return self.neutral + offsets

    def with_shapes(self, shapes: dict[str, torch.Tensor]) -> "FaceModel":
        """The same model with more expression shapes (name → (V, 3) displacement), appended after its own."""
        clash = sorted(set(shapes) & set(self.expression_names))
        if clash:
            raise ValueError(f"the model already has expression shapes named {', '.join(clash)}")
        basis = torch.cat([self.expression_basis, *(field[None].to(self.expression_basis) for field in shapes.values())])
        return replace(self, expression_basis=basis, expression_names=self.expression_names + tuple(shapes))

    def to(self, device: str | torch.device) -> "FaceModel":
        moved = {name: (value.to(device) if isinstance(value, torch.Tensor) else value) for name, value in vars(self).items()}
        return FaceModel(**moved)


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

    model = FaceModel(
        neutral=torch.from_numpy(data["neutral"]),
        identity_basis=dequantise(data["identity_q"], data["identity_scale"]),
        expression_basis=dequantise(data["expression_q"], data["expression_scale"]),
        expression_names=tuple(str(n) for n in data["expression_names"]),
        faces=torch.from_numpy(data["faces"].astype(np.int64)),
        face_uvs=torch.from_numpy(data["face_uvs"].astype(np.int64)),
        uvs=torch.from_numpy(data["uvs"]),
        vertex_part=torch.from_numpy(data["vertex_part"].astype(np.int64)),
        part_names=tuple(str(n) for n in data["part_names"]),
        landmarks=torch.from_numpy(data["landmarks"].astype(np.int64)),
    )
    # Shapes the published model lacks (factory/face/shapes.py), computed from its neutral mesh on the face surface.
    movable = ict.FACE.contains(torch.arange(model.num_vertices))
    return model.with_shapes(derived_shapes(model.neutral, model.landmarks, movable))
