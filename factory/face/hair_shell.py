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
import torch.nn.functional as F

from factory.face.hair import FACIAL_POLE, FLOW_RADIUS_CM, Flow, facial_density, scalp_pole, strand_flow
from factory.face.model import FaceModel
from factory.face.texture.fields import ValueNoise
from factory.face.texture.template import (
    JAW_TOP_RIGHT,
    ScalpFrame,
    hairline_wander,
    height_above_hairline,
    noise_box,
    scalp_density,
    scalp_height,
    smoothstep,
    where_hair_grows,
)
from factory.face.topology import unique_edges
from factory.face.wrinkles import STRAIN_KINDS, directional_strains, neighbour_average
from factory.render.mesh import vertex_normals
from factory.spec.plan import Hair

# Per scalp style: over how many cm above the hairline the hair rises to its full length (hair lies flat where it
# starts, so no style ends in a visor), how lumpy its surface is, how long a strand runs before it changes (cm), and
# how thick the hair is on the sides (share of its length on top).
SHELL_STYLE = {"buzz": (0.4, 0.05, 0.25, 1.0), "short": (1.5, 0.15, 1.2, 0.6), "medium": (4.0, 0.25, 3.0, 0.45),
               "long": (3.0, 0.12, 4.0, 0.6), "long_tied": (2.5, 0.06, 4.0, 0.5), "bald_pattern": (1.5, 0.12, 0.9, 1.0),
               "shaved": (1.0, 0.0, 0.25, 1.0)}
FACIAL_LUMPS, FACIAL_SEGMENT_CM = 0.3, 0.5
LIP_CLEARANCE_CM = 0.35  # facial hair thins out over this distance from the lips
STUBBLE_COVERAGE, STUBBLE_SEGMENT_CM = 0.4, 0.035  # stubble: sparse dots
SHAVED_COVERAGE = 0.3  # a shaved scalp: stubble where the hair would grow
THIN_CROWN_COVERAGE = 0.3  # what is left of the hair on a thinned crown, as sparse strands on the skin
MIN_COVERAGE = 0.02
MIN_OFFSET_CM = 0.02  # shells sit at least this far out, so the skin under them never wins the depth test
# Facial hair parts where an expression squeezes the skin vertically (`hair_lie`): from no parting at the first
# compression to full parting at the second; a parted shell sinks this far under the skin, so the skin shows.
PART_COMPRESSION, PART_DEPTH_CM, PART_SMOOTHING_STEPS = (0.15, 0.4), 0.05, 2
BUN_RADIUS_CM = (3.2, 4.5)
BUN_RINGS, BUN_SEGMENTS = 8, 14
CURTAIN_COLUMNS, CURTAIN_ROWS = 44, 14  # long hair's sheet
CURTAIN_OPEN_DEG = 62  # the sheet leaves the face free: it runs from this angle beside the face round the back
CURTAIN_TOP_ABOVE_JAW_TOP_CM = 9.0  # where it starts: above the temples, under the scalp's hair
CURTAIN_WAVE_DEG = 1.2  # strands wander this much around the head
CURTAIN_CLEARANCE_CM = 0.8  # how far it hangs out from the head, ears and neck
CURTAIN_RAGGED = 0.15  # the ends vary in length by this share
CURTAIN_SEGMENT_CM = 4.0


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class HairGeometry:
    """One identity's hair geometry: vertices appended after the face model's V, and what the shader needs of them."""

    verts: torch.Tensor  # (N, Vh, 3)
    normals: torch.Tensor  # (N, Vh, 3) to shade with (a shell's: those of the skin it was pushed out from)
    faces: torch.Tensor  # (Fh, 3) ids into the face model's V vertices followed by these Vh
    corner_uvs: torch.Tensor  # (Fh, 3, 2)
    face_part: torch.Tensor  # (Fh,)
    attributes: torch.Tensor  # (V + Vh, HAIR_CHANNELS)
    source: torch.Tensor  # (Vh,) the face vertex each stands for (pushed out from, or sits on): its skin's shine


@dataclass(frozen=True, eq=False)
class Piece:
    """A piece of hair geometry with its own vertex numbering (faces index its `verts`)."""

    verts: torch.Tensor  # (N, S, 3)
    normals: torch.Tensor  # (N, S, 3)
    faces: torch.Tensor  # (T, 3) ids into verts
    corner_uvs: torch.Tensor  # (T, 3, 2)
    part: int
    attributes: torch.Tensor  # (S, HAIR_CHANNELS)
    source: torch.Tensor  # (S,)


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
        """One identity's hair over its posed face: verts and normals (N, V, 3)."""
        neutral = self.model.neutral
        lumps = ValueNoise(np.random.default_rng([hair.seed, 0x4A17]), self.box.low, self.box.high, 2.0)(neutral)
        wander = hairline_wander(neutral, hair, self.box)
        scalp = scalp_density(neutral, self.height, self.frame, hair, wander)
        facial = facial_density(neutral, self.landmarks, hair.facial) * self.lip_clearance
        rise = smoothstep(scalp_height(neutral, self.height, self.frame, hair, wander) / SHELL_STYLE[hair.style][0])
        scalp_flow, facial_flow = self.flows(hair)
        pieces = []
        scalp_shell = self.scalp_shell(hair, scalp * rise, lumps)
        if scalp_shell is not None:
            pieces.append(self.shell_piece(scalp_shell, verts, normals, scalp, scalp_flow, SHELL_STYLE[hair.style][2]))
        facial_shell = self.facial_shell(hair, facial, lumps)
        if facial_shell is not None:
            pieces.append(self.shell_piece(facial_shell, verts, normals, facial, facial_flow, FACIAL_SEGMENT_CM,
                                           lie=hair_lie(verts[:, facial_shell.vertices], self.faces[facial_shell.triangles],
                                                        facial_shell.vertices)))
        if hair.style == "long_tied":
            pieces.append(self.bun(hair, verts, normals))
        if hair.style == "long":
            pieces.append(self.curtain(hair, verts))
        attributes = self.skin_attributes(hair, scalp, facial, wander, scalp_flow, facial_flow)
        return assemble(pieces, attributes, verts.shape[0])

    def shell_piece(self, shell: Shell, verts: torch.Tensor, normals: torch.Tensor, density: torch.Tensor, flow: Flow,
                    segment_cm: float, lie: torch.Tensor | None = None) -> Piece:
        """The shell's vertices pushed out along the posed normals; its triangles keep the skin's UVs. `lie` (N, S),
        0..1 per expression and vertex, scales the push: 1 where the hair stands as planned, 0 where the skin under it
        is squeezed so much that the strands part and the shell dips PART_DEPTH_CM under the skin (`hair_lie`)."""
        push = (shell.thickness.clamp(min=0) + MIN_OFFSET_CM)[None, :]
        if lie is not None:
            push = push * lie - PART_DEPTH_CM * (1 - lie)
        push = push[:, :, None]
        local = torch.full((self.model.num_vertices,), -1, dtype=torch.int64)
        local[shell.vertices] = torch.arange(len(shell.vertices))
        return Piece(verts[:, shell.vertices] + push * normals[:, shell.vertices], normals[:, shell.vertices],
                     local[self.faces[shell.triangles]], self.corner_uvs[shell.triangles], shell.part,
                     pack(density[shell.vertices], flow, shell.vertices, segment_cm), shell.vertices)

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

    def bun(self, hair: Hair, verts: torch.Tensor, normals: torch.Tensor) -> Piece:
        """A ball of hair at the back of the head, carried by the scalp vertex it sits on."""
        neutral = self.model.neutral
        back = self.centre + 8.0 * F.normalize(torch.tensor([0.0, 0.35, -1.0]), dim=0)
        anchor = int((neutral - back).norm(dim=-1).argmin())
        radius = BUN_RADIUS_CM[0] + (BUN_RADIUS_CM[1] - BUN_RADIUS_CM[0]) * ((hair.seed % 1000) / 1000)
        unit, triangles = uv_sphere(BUN_RINGS, BUN_SEGMENTS)
        squash = torch.tensor([1.0, 0.85, 0.8])
        centre = verts[:, anchor] + normals[:, anchor] * (radius * 0.75 + hair.length_cm)
        points = centre[:, None] + radius * unit[None] * squash
        flow = strand_flow(unit, torch.zeros(3), -F.normalize(neutral[anchor] - self.centre, dim=0))
        return Piece(points, F.normalize(unit / squash, dim=-1).expand_as(points), triangles,
                     self.anchor_uvs(anchor, len(triangles)), self.hair_part,
                     pack(torch.ones(len(unit)), flow, torch.arange(len(unit)), SHELL_STYLE["long_tied"][2]),
                     torch.full((len(unit),), anchor, dtype=torch.int64))

    def curtain(self, hair: Hair, verts: torch.Tensor) -> Piece:
        """Long hair falling from the sides and back of the head: a sheet that starts under the scalp's hair and drops
        straight down, never closer to the axis than the head, ears or neck above it (so it clears them), with a
        wavy, uneven front edge and ends."""
        neutral = verts[0]
        landmarks = neutral[self.model.landmarks]
        centre = ScalpFrame.of(neutral, landmarks).centre
        top = float(landmarks[JAW_TOP_RIGHT, 1]) + CURTAIN_TOP_ABOVE_JAW_TOP_CM
        rng = np.random.default_rng([hair.seed, 0x4A19])
        columns, rows = CURTAIN_COLUMNS, CURTAIN_ROWS
        drop = hair.drop_cm * (1 + CURTAIN_RAGGED * torch.from_numpy(rng.uniform(-1, 1, columns)).float())
        height = top - torch.linspace(0, 1, rows)[None, :] * drop[:, None]  # (columns, rows)
        around = torch.linspace(math.radians(CURTAIN_OPEN_DEG), math.radians(360 - CURTAIN_OPEN_DEG), columns)
        reach = clearance(neutral[self.faces.unique()] - centre, around, height - float(centre[1]))
        wave = torch.from_numpy(rng.uniform(-1, 1, (columns, rows))).float() * math.radians(CURTAIN_WAVE_DEG)
        edge = torch.zeros(columns, 1)
        edge[[0, 1, -2, -1]] = 1.0  # the front edge frays more
        angle = around[:, None] + wave * (1 + edge)
        rise = (torch.arange(rows) / 4).clamp(max=1)  # the top rows start under the scalp's hair, then stand off
        radius = torch.cummax(reach + hair.length_cm * (0.1 + 0.9 * rise), dim=1).values  # hair falls straight down
        points = torch.stack([radius * angle.sin(), height - float(centre[1]), radius * angle.cos()], dim=-1) + centre
        flat = points.reshape(-1, 3)
        triangles = grid_triangles(columns, rows)
        anchor = int((self.model.neutral - (self.centre + torch.tensor([0.0, 0.0, -9.0]))).norm(dim=-1).argmin())
        flow = Flow(torch.tensor([0.0, -1.0, 0.0]).expand(len(flat), 3),
                    (around[:, None] * FLOW_RADIUS_CM).expand(-1, rows).reshape(-1), (top - height).reshape(-1))
        count = verts.shape[0]
        return Piece(flat[None].expand(count, -1, -1), vertex_normals(flat[None], triangles).expand(count, -1, -1),
                     triangles, self.anchor_uvs(anchor, len(triangles)), self.hair_part,
                     pack(torch.ones(len(flat)), flow, torch.arange(len(flat)), CURTAIN_SEGMENT_CM),
                     torch.full((len(flat),), anchor, dtype=torch.int64))

    def anchor_uvs(self, anchor: int, count: int) -> torch.Tensor:
        """(count, 3, 2) every corner at the UV of face vertex `anchor` (hair that covers what it sits on fully shows
        no texture, but every triangle needs one)."""
        triangle = int(torch.nonzero((self.faces == anchor).any(dim=1))[0])
        corner = int(torch.nonzero(self.faces[triangle] == anchor)[0])
        return self.corner_uvs[triangle, corner].expand(count, 3, 2)


def assemble(pieces: list[Piece], skin_attributes: torch.Tensor, count: int) -> HairGeometry:
    """The pieces' vertices appended after the face model's (whose count `skin_attributes` gives), numbered on."""
    offset, faces = skin_attributes.shape[0], []
    for piece in pieces:
        faces.append(piece.faces + offset)
        offset += piece.verts.shape[1]
    if not pieces:
        empty = torch.zeros(0, dtype=torch.int64)
        return HairGeometry(torch.zeros(count, 0, 3), torch.zeros(count, 0, 3), empty.view(0, 3), torch.zeros(0, 3, 2),
                            empty, skin_attributes, empty)
    return HairGeometry(
        verts=torch.cat([p.verts for p in pieces], dim=1), normals=torch.cat([p.normals for p in pieces], dim=1),
        faces=torch.cat(faces), corner_uvs=torch.cat([p.corner_uvs for p in pieces]),
        face_part=torch.cat([torch.full((len(p.faces),), p.part, dtype=torch.int64) for p in pieces]),
        attributes=torch.cat([skin_attributes] + [p.attributes for p in pieces]),
        source=torch.cat([p.source for p in pieces]))


def clearance(points: torch.Tensor, angle: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """(columns, rows) the largest horizontal distance from the axis of `points` (head-centred, (P, 3)) near each
    column's angle (about the vertical, from +z) and each row's height: how far out hair must hang to clear them."""
    point_angle = torch.atan2(points[:, 0], points[:, 2]).remainder(2 * math.pi)
    point_radius = points[:, [0, 2]].norm(dim=-1)
    step = float(angle[1] - angle[0])
    column = ((point_angle - float(angle[0])) / step).round().long()
    rows = height.shape[1]
    row_height = (float(height[0, 0]) - float(height[0, -1])) / max(rows - 1, 1)
    radius = torch.full(height.shape, 0.0)
    for c in range(height.shape[0]):
        near = (column - c).abs() <= 1
        for r in range(rows):
            band = near & ((points[:, 1] - height[c, r]).abs() <= max(row_height, 1.0))
            if band.any():
                radius[c, r] = point_radius[band].max()
    return radius + CURTAIN_CLEARANCE_CM


def grid_triangles(columns: int, rows: int) -> torch.Tensor:
    """Two triangles per cell of a columns × rows grid of vertices (column-major), wound so that their normals face
    away from the axis when columns run around it counter-clockwise seen from above and rows run downward."""
    c, r = torch.meshgrid(torch.arange(columns - 1), torch.arange(rows - 1), indexing="ij")
    a = (c * rows + r).reshape(-1)
    b, d = a + rows, a + 1
    return torch.cat([torch.stack([a, d, b], dim=1), torch.stack([d, b + 1, b], dim=1)])


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


def hair_lie(verts: torch.Tensor, triangles: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """(N, S) how the facial hair on `vertices` (S,) (ids of the posed meshes' (N, S, 3) `verts`, whose skin
    `triangles` (T, 3) use face-model ids) lies in each expression: 1 where the skin is as in the first, neutral
    mesh or stretched, falling to 0 where it is compressed vertically by PART_COMPRESSION[1]. A raised upper lip
    (AU10) and raised nose wings (AU9) squeeze the skin between them; real strands there splay and part over the lip
    rather than pile up, and the shell dipping under the skin shows that skin, its creases and its fold."""
    local = torch.full((int(vertices.max()) + 1,), -1, dtype=torch.int64)
    local[vertices] = torch.arange(len(vertices))
    edges = unique_edges(local[triangles])
    strains = directional_strains(verts, verts[0], edges)  # (S, N, kinds)
    smooth = neighbour_average(edges, len(vertices))
    for _ in range(PART_SMOOTHING_STEPS):
        strains = smooth(strains)
    squeeze = strains[:, :, STRAIN_KINDS.index("y")].T  # (N, S)
    low, high = PART_COMPRESSION
    return 1 - smoothstep((squeeze - low) / (high - low))


def pack(coverage: torch.Tensor, flow: Flow, vertices: torch.Tensor, segment_cm: float) -> torch.Tensor:
    """(S, HAIR_CHANNELS) attributes of `vertices` (ids into the flow's points) with these coverages (S,); a coverage
    below MIN_COVERAGE is none (the shader skips triangles without hair, and a trace would not show)."""
    coverage = torch.where(coverage < MIN_COVERAGE, 0.0, coverage)
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
