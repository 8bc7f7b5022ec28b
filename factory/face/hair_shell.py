"""Hair geometry: shells over the scalp and the beard region, a bun for tied-back hair, and the per-vertex hair
attributes the shader draws strands from (factory/render/hair.py).

    shells = HairShells(model, atlas_faces, atlas_corner_uvs, atlas_face_part, hair_part=8, facial_hair_part=9)
    geometry = shells.build(spec.hair, spec.skin, verts, normals)    # verts, normals (N, V, 3): the posed face
    geometry.verts                 # (N, Vh, 3) shell vertices, appended after the face model's V
    geometry.faces                 # (Fh, 3) their triangles, as ids into the combined V + Vh vertices
    geometry.attributes            # (V + Vh, HAIR_CHANNELS) coverage, flow tangent, strand coordinates, segment

A shell is a copy of the skin triangles where hair grows, each vertex pushed out along its posed normal by the
hair's thickness there (zero at the hairline, the style's length over the crown, lumpy from a seeded noise), so it
follows every expression. Its triangles keep the skin's UVs: where the strands are sparse (the hairline, a thinning
crown) the shader shows the skin texture under them, which is the skin at that very point. Stubble and a shaved
scalp have no shell, only attributes on the skin's own vertices; the shader draws them as short strands (dots).
Vertices and triangles are chosen by the density functions of factory/face/hair.py, so nothing here names ICT
vertex ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from factory.face.hair import FACIAL_POLE, Flow, facial_density, scalp_pole, strand_flow
from factory.face.model import FaceModel
from factory.face.texture.fields import ValueNoise
from factory.face.texture.template import (
    ScalpFrame,
    hairline_wander,
    height_above_hairline,
    noise_box,
    scalp_density,
    scalp_height,
    smoothstep,
    where_hair_grows,
)
from factory.spec.plan import Hair

# Per scalp style: over how many cm above the hairline the hair rises to its full length (hair lies flat where it
# starts, so no style ends in a visor), how lumpy its surface is, how long a strand runs before it changes (cm), and
# how thick the hair is on the sides (share of its length on top).
SHELL_STYLE = {"buzz": (0.4, 0.05, 0.25, 1.0), "short": (1.5, 0.15, 1.2, 0.6), "medium": (4.0, 0.25, 3.0, 0.45),
               "long_tied": (2.5, 0.06, 4.0, 0.5), "bald_pattern": (1.5, 0.12, 0.9, 1.0)}
FACIAL_LUMPS, FACIAL_SEGMENT_CM = 0.3, 0.5
LIP_CLEARANCE_CM = 0.35  # facial hair thins out over this distance from the lips
STUBBLE_COVERAGE, STUBBLE_SEGMENT_CM = 0.4, 0.035  # stubble: sparse dots
SHAVED_COVERAGE = 0.3  # a shaved scalp: stubble where the hair would grow
THIN_CROWN_COVERAGE = 0.3  # what is left of the hair on a thinned crown, as sparse strands on the skin
MIN_OFFSET_CM = 0.02  # shells sit at least this far out, so the skin under them never wins the depth test
BUN_RADIUS_CM = (3.2, 4.5)
BUN_RINGS, BUN_SEGMENTS = 8, 14


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class HairGeometry:
    verts: torch.Tensor  # (N, Vh, 3)
    faces: torch.Tensor  # (Fh, 3) ids into the face model's V vertices followed by these Vh
    corner_uvs: torch.Tensor  # (Fh, 3, 2)
    face_part: torch.Tensor  # (Fh,)
    attributes: torch.Tensor  # (V + Vh, HAIR_CHANNELS)
    source: torch.Tensor  # (Vh,) the face vertex each shell vertex was pushed out from (a bun's: the one it sits on)


@dataclass(frozen=True)
class Shell:
    """Skin triangles that carry a shell, their vertices and how far each is pushed out."""

    vertices: torch.Tensor  # (S,) face-model vertex ids
    triangles: torch.Tensor  # (T,) ids into the rendered triangles
    thickness: torch.Tensor  # (S,) cm
    part: int


class HairShells:
    """Template-level facts about where hair can grow, computed once; `build` makes one identity's hair."""

    def __init__(self, model: FaceModel, faces: torch.Tensor, corner_uvs: torch.Tensor, face_part: torch.Tensor,
                 hair_part: int, facial_hair_part: int):
        self.model, self.faces, self.corner_uvs = model, faces, corner_uvs
        self.hair_part, self.facial_hair_part = hair_part, facial_hair_part
        self.landmarks = model.neutral[model.landmarks]
        self.box = noise_box(model)
        self.frame = ScalpFrame.of(model.neutral, self.landmarks)
        self.centre = self.frame.centre
        self.height = height_above_hairline(model.neutral, self.landmarks, self.box)
        skin = model.part_names.index("skin")
        self.skin_triangles = face_part == skin
        self.lip_clearance = lip_clearance(model)

    def build(self, hair: Hair, verts: torch.Tensor, normals: torch.Tensor) -> HairGeometry:
        neutral = self.model.neutral
        noise = ValueNoise(np.random.default_rng([hair.seed, 0x4A17]), self.box.low, self.box.high, 2.0)
        lumps = noise(neutral)
        wander = hairline_wander(neutral, hair, self.box)
        scalp = scalp_density(neutral, self.height, self.frame, hair, wander)
        facial = facial_density(neutral, self.landmarks, hair.facial) * self.lip_clearance
        rise = smoothstep(scalp_height(neutral, self.height, self.frame, hair, wander) / SHELL_STYLE.get(hair.style, (1.0,))[0])
        shells = [self.scalp_shell(hair, scalp * rise, lumps), self.facial_shell(hair, facial, lumps)]
        shells = [shell for shell in shells if shell is not None]
        scalp_flow, facial_flow = self.flows(hair)
        attributes = self.skin_attributes(hair, scalp, facial, wander, scalp_flow, facial_flow)
        pieces, uvs, parts, extra_attributes, sources, faces, offset = [], [], [], [], [], [], neutral.shape[0]
        for shell in shells:
            flow = scalp_flow if shell.part == self.hair_part else facial_flow
            density = scalp if shell.part == self.hair_part else facial
            segment = SHELL_STYLE[hair.style][2] if shell.part == self.hair_part else FACIAL_SEGMENT_CM
            push = (shell.thickness.clamp(min=0) + MIN_OFFSET_CM)[None, :, None]
            pieces.append(verts[:, shell.vertices] + push * normals[:, shell.vertices])
            remap = torch.full((neutral.shape[0],), -1, dtype=torch.int64)
            remap[shell.vertices] = torch.arange(len(shell.vertices)) + offset
            faces.append(remap[self.faces[shell.triangles]])
            uvs.append(self.corner_uvs[shell.triangles])
            parts.append(torch.full((len(shell.triangles),), shell.part, dtype=torch.int64))
            extra_attributes.append(pack(density[shell.vertices], flow, shell.vertices, segment))
            sources.append(shell.vertices)
            offset += len(shell.vertices)
        if hair.style == "long_tied":
            bun = self.bun(hair, verts, normals, offset)
            pieces.append(bun.verts)
            faces.append(bun.faces)
            uvs.append(bun.corner_uvs)
            parts.append(bun.face_part)
            extra_attributes.append(bun.attributes)
            sources.append(bun.source)
        if not pieces:
            empty = torch.zeros(0, dtype=torch.int64)
            return HairGeometry(torch.zeros(verts.shape[0], 0, 3), empty.view(0, 3), torch.zeros(0, 3, 2), empty,
                                attributes, empty)
        return HairGeometry(torch.cat(pieces, dim=1), torch.cat(faces), torch.cat(uvs), torch.cat(parts),
                            torch.cat([attributes] + extra_attributes), torch.cat(sources))

    def flows(self, hair: Hair) -> tuple[Flow, Flow]:
        neutral = self.model.neutral
        return strand_flow(neutral, self.centre, scalp_pole(hair)), strand_flow(neutral, self.centre, FACIAL_POLE)

    def shell_over(self, density: torch.Tensor, thickness: torch.Tensor, part: int) -> Shell | None:
        """The skin triangles with hair on some corner, and their vertices' thickness."""
        triangles = torch.nonzero(self.skin_triangles & (density[self.faces] > 0.02).any(dim=1)).squeeze(1)
        if len(triangles) == 0:
            return None
        vertices = self.faces[triangles].unique()
        return Shell(vertices, triangles, thickness[vertices], part)

    def scalp_shell(self, hair: Hair, risen: torch.Tensor, lumps: torch.Tensor) -> Shell | None:
        """`risen` (V,): the scalp's density times how far the hair has risen from the hairline, 0..1."""
        if hair.style == "shaved" or hair.length_cm <= 0:
            return None
        _, lumpiness, _, sides = SHELL_STYLE[hair.style]
        up = (self.model.neutral[:, 1] - float(self.centre[1])).clamp(min=0)
        up = up / up.max()
        thickness = hair.length_cm * risen * (sides + (1 - sides) * up.sqrt()) * (1 + lumpiness * lumps)
        return self.shell_over(risen, thickness, self.hair_part)

    def facial_shell(self, hair: Hair, facial: torch.Tensor, lumps: torch.Tensor) -> Shell | None:
        if hair.facial in ("none", "stubble") or hair.facial_length_cm <= 0:
            return None
        thickness = hair.facial_length_cm * facial * (1 + FACIAL_LUMPS * lumps)
        return self.shell_over(facial, thickness, self.facial_hair_part)

    def skin_attributes(self, hair: Hair, scalp: torch.Tensor, facial: torch.Tensor, wander: torch.Tensor,
                        scalp_flow: Flow, facial_flow: Flow) -> torch.Tensor:
        """(V, HAIR_CHANNELS) hair drawn on the skin itself: stubble, a shaved scalp, what is left on a thin crown."""
        neutral = self.model.neutral
        full = scalp_density(neutral, self.height, self.frame, where_hair_grows(hair), wander)
        if hair.style == "shaved":
            on_scalp = SHAVED_COVERAGE * full
        else:
            on_scalp = THIN_CROWN_COVERAGE * (full - scalp).clamp(min=0)
        on_face = STUBBLE_COVERAGE * facial
        everything = torch.arange(neutral.shape[0])
        scalp_part = pack(on_scalp, scalp_flow, everything, STUBBLE_SEGMENT_CM)
        face_part = pack(on_face, facial_flow, everything, STUBBLE_SEGMENT_CM)
        return torch.where((on_face > on_scalp)[:, None], face_part, scalp_part)

    def bun(self, hair: Hair, verts: torch.Tensor, normals: torch.Tensor, offset: int) -> HairGeometry:
        """A ball of hair at the back of the head, carried by the scalp vertex it sits on."""
        neutral = self.model.neutral
        back = self.centre + 8.0 * torch.nn.functional.normalize(torch.tensor([0.0, 0.35, -1.0]), dim=0)
        anchor = int((neutral - back).norm(dim=-1).argmin())
        radius = BUN_RADIUS_CM[0] + (BUN_RADIUS_CM[1] - BUN_RADIUS_CM[0]) * ((hair.seed % 1000) / 1000)
        unit, triangles = uv_sphere(BUN_RINGS, BUN_SEGMENTS)
        outward = normals[:, anchor]  # (N, 3)
        centre = verts[:, anchor] + outward * (radius * 0.75 + hair.length_cm)
        points = centre[:, None] + radius * unit[None] * torch.tensor([1.0, 0.85, 0.8])
        flow = strand_flow(unit, torch.zeros(3), -torch.nn.functional.normalize(neutral[anchor] - self.centre, dim=0))
        attributes = pack(torch.ones(len(unit)), flow, torch.arange(len(unit)), SHELL_STYLE["long_tied"][2])
        triangle = int(torch.nonzero((self.faces == anchor).any(dim=1))[0])
        corner = int(torch.nonzero(self.faces[triangle] == anchor)[0])
        uvs = self.corner_uvs[triangle, corner].expand(len(triangles), 3, 2)
        return HairGeometry(points, triangles + offset, uvs, torch.full((len(triangles),), self.hair_part, dtype=torch.int64),
                            attributes, torch.full((len(unit),), anchor, dtype=torch.int64))


def lip_clearance(model: FaceModel) -> torch.Tensor:
    """(V,) 0 on the lips and inside the mouth, rising to 1 at LIP_CLEARANCE_CM from them: facial hair never grows
    on the lips, and thins out toward them instead of stopping at their triangles' jagged edge."""
    bare = torch.isin(model.vertex_part, torch.tensor([model.part_names.index(p) for p in ("lips", "mouth_interior")]))
    lips = model.neutral[bare]
    reach = LIP_CLEARANCE_CM * 4
    near = ((model.neutral - lips.mean(0)).norm(dim=-1) < float((lips - lips.mean(0)).norm(dim=-1).max()) + reach) & ~bare
    clearance = (~bare).float()
    if near.any():
        distance = torch.cdist(model.neutral[near], lips).min(dim=1).values
        clearance[near] = smoothstep(distance / LIP_CLEARANCE_CM)
    return clearance


def pack(coverage: torch.Tensor, flow: Flow, vertices: torch.Tensor, segment_cm: float) -> torch.Tensor:
    """(S, HAIR_CHANNELS) attributes of `vertices` (ids into the flow's points) with these coverages (S,)."""
    return torch.cat([coverage[:, None], flow.tangent[vertices], flow.across[vertices, None], flow.along[vertices, None],
                      torch.full((len(vertices), 1), segment_cm)], dim=1)


def uv_sphere(rings: int, segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit sphere vertices (2 + (rings - 1)·segments, 3) and outward-wound triangles."""
    polar = torch.arange(1, rings) * math.pi / rings
    azimuth = torch.arange(segments) * 2 * math.pi / segments
    p, a = torch.meshgrid(polar, azimuth, indexing="ij")
    ring_points = torch.stack([p.sin() * a.cos(), p.cos(), p.sin() * a.sin()], dim=-1).reshape(-1, 3)
    points = torch.cat([torch.tensor([[0.0, 1.0, 0.0]]), ring_points, torch.tensor([[0.0, -1.0, 0.0]])])
    bottom = len(points) - 1
    triangles = []
    for s in range(segments):
        t = (s + 1) % segments
        triangles.append((0, 1 + t, 1 + s))
        for r in range(rings - 2):
            a0, a1 = 1 + r * segments + s, 1 + r * segments + t
            b0, b1 = a0 + segments, a1 + segments
            triangles += [(a0, a1, b1), (a0, b1, b0)]
        last = 1 + (rings - 2) * segments
        triangles.append((bottom, last + s, last + t))
    return points, torch.tensor(triangles)
