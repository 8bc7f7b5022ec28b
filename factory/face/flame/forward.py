"""The FLAME forward pass in torch: shape and expression blendshapes, pose correctives, linear blend skinning.

    layer = FlameLayer.from_file(read_flame(path))
    verts = layer(shape=torch.randn(4, 300), expression=torch.zeros(4, 100), jaw=torch.tensor([[0.2, 0, 0]] * 4))

The formulas are FLAME's (Li et al., "Learning a model of facial shape and expression from 4D scans", 2017):
    shaped = template + shapedirs · shape + exprdirs · expression
    joints = J_regressor · shaped                         (root/global, neck, jaw, left eye, right eye)
    posed  = shaped + posedirs · vec(R_j - I, j ≥ 1)       (pose correctives)
    verts  = Σ_j weights_j · G_j · posed  (+ translation)  (G_j: joint j's rest-to-posed transform along the tree)
Every argument is batched (B, …); rotations are axis-angle in radians; units are the file's (metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from factory.face.flame.files import FlameFile
from factory.face.skeleton import Skeleton

JOINTS = ("global", "neck", "jaw", "eye_left", "eye_right")  # FLAME's kinematic tree, in the file's joint order


@dataclass(frozen=True, eq=False)
class FlameLayer:
    template: torch.Tensor  # (V, 3)
    shapedirs: torch.Tensor  # (V, 3, S)
    exprdirs: torch.Tensor  # (V, 3, E)
    skeleton: Skeleton
    faces: torch.Tensor  # (F, 3) int64

    @classmethod
    def from_file(cls, flame: FlameFile, dtype: torch.dtype = torch.float32) -> "FlameLayer":
        def tensor(array) -> torch.Tensor:
            return torch.as_tensor(array, dtype=dtype)

        vertices = flame.num_vertices
        posedirs = tensor(flame.posedirs).reshape(vertices * 3, -1).T.contiguous()  # (9 (J - 1), V * 3)
        skeleton = Skeleton(tensor(flame.j_regressor), tuple(int(p) for p in flame.parents), tensor(flame.weights), posedirs)
        return cls(tensor(flame.v_template), tensor(flame.shapedirs), tensor(flame.exprdirs), skeleton,
                   torch.as_tensor(flame.faces, dtype=torch.int64))

    def shaped(self, shape: torch.Tensor, expression: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) template + identity and expression blendshapes; fewer coefficients than components are allowed."""
        verts = self.template + torch.einsum("vcs,bs->bvc", self.shapedirs[..., : shape.shape[1]], shape.to(self.template))
        if expression is not None:
            verts = verts + torch.einsum("vce,be->bvc", self.exprdirs[..., : expression.shape[1]], expression.to(self.template))
        return verts

    def __call__(self, shape: torch.Tensor, expression: torch.Tensor | None = None, *, global_pose: torch.Tensor | None = None,
                 neck: torch.Tensor | None = None, jaw: torch.Tensor | None = None, eyes: torch.Tensor | None = None,
                 translation: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) posed vertices. Poses are (B, 3) axis-angle (eyes (B, 6): left then right); None is rest."""
        if shape.ndim != 2 or (expression is not None and expression.shape[0] != shape.shape[0]):
            raise ValueError(f"expected shape (B, S) and expression (B, E), got {tuple(shape.shape)} and "
                             f"{None if expression is None else tuple(expression.shape)}")
        if shape.shape[1] > self.shapedirs.shape[2] or (expression is not None and expression.shape[1] > self.exprdirs.shape[2]):
            raise ValueError(f"this FLAME file has {self.shapedirs.shape[2]} shape and {self.exprdirs.shape[2]} expression components")
        batch = shape.shape[0]
        shaped = self.shaped(shape, expression)
        rotations = shaped.new_zeros(batch, self.skeleton.num_joints, 3)
        for joint, pose in ((0, global_pose), (1, neck), (2, jaw)):
            if pose is not None:
                rotations[:, joint] = pose.to(shaped)
        if eyes is not None:
            rotations[:, 3:5] = eyes.to(shaped).reshape(batch, 2, 3)
        verts = self.skeleton.pose(shaped, rotations)
        return verts if translation is None else verts + translation.to(verts)[:, None]
