"""Linear blend skinning: a tree of joints that rotates a shaped mesh, with pose-corrective blendshapes.

This is FLAME's articulation (and SMPL's): joints are regressed from the shaped vertices, each joint's rotation
(axis-angle) is applied along the kinematic tree, and every vertex follows a weighted blend of its joints'
transforms. Before skinning, pose correctives add a displacement linear in the entries of (R - I) of every non-root
joint, which repairs what pure skinning gets wrong (the lips and chin as the jaw opens).

    skeleton = Skeleton(j_regressor, parents, weights, posedirs)
    posed = skeleton.pose(shaped, rotations)          # (B, V, 3) from (B, V, 3) and (B, J, 3) axis-angle
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle vectors → (..., 3, 3) rotation matrices (exact at angle 0)."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    axis = axis_angle / angle.clamp(min=1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis.shape[:-1], 3, 3)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sin * cross + (1 - cos) * (cross @ cross)


@dataclass(frozen=True, eq=False)
class Skeleton:
    j_regressor: torch.Tensor  # (J, V): each joint's rest position as a weighted sum of shaped vertices
    parents: tuple[int, ...]  # (J,) parent of each joint, -1 for the root; parents come before children
    weights: torch.Tensor  # (V, J) skinning weights, rows sum to 1
    posedirs: torch.Tensor  # (9 (J - 1), V * 3): corrective per entry of (R - I) of each non-root joint, row-major

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    def joints(self, shaped: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) rest positions of the joints of shaped meshes (B, V, 3)."""
        return torch.einsum("jv,bvc->bjc", self.j_regressor, shaped)

    def pose(self, shaped: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """(B, V, 3): shaped meshes (B, V, 3) posed by per-joint axis-angle rotations (B, J, 3)."""
        batch, vertices = shaped.shape[:2]
        matrices = rodrigues(rotations.to(shaped))  # (B, J, 3, 3)
        joints = self.joints(shaped)
        eye = torch.eye(3, dtype=shaped.dtype, device=shaped.device)
        pose_feature = (matrices[:, 1:] - eye).reshape(batch, -1)
        posed = shaped + (pose_feature @ self.posedirs).reshape(batch, vertices, 3)
        transforms = self.world_transforms(matrices, joints)  # (B, J, 3, 4), rest pose removed
        blended = torch.einsum("vj,bjxy->bvxy", self.weights, transforms)
        return (blended[..., :3] @ posed[..., None])[..., 0] + blended[..., 3]

    def world_transforms(self, matrices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """(B, J, 3, 4) transform of each joint from rest to posed: its chain of rotations about the rest joints."""
        rotations, translations = [], []
        for j, parent in enumerate(self.parents):
            offset = joints[:, j] if parent < 0 else joints[:, j] - joints[:, parent]
            if parent < 0:
                rotation, translation = matrices[:, j], offset
            else:
                rotation = rotations[parent] @ matrices[:, j]
                translation = (rotations[parent] @ offset[..., None])[..., 0] + translations[parent]
            rotations.append(rotation)
            translations.append(translation)
        rotation, translation = torch.stack(rotations, 1), torch.stack(translations, 1)
        # A vertex at rest sits at the joint's rest position: subtract the rotated rest joint so rest maps to rest.
        translation = translation - (rotation @ joints[..., None])[..., 0]
        return torch.cat([rotation, translation[..., None]], dim=-1)

    def to(self, device: str | torch.device) -> "Skeleton":
        return Skeleton(self.j_regressor.to(device), self.parents, self.weights.to(device), self.posedirs.to(device))
