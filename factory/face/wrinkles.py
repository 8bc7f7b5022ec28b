"""Expression wrinkles: creases that form where an expression compresses the skin, as a relief map for the shader.

A FACS coder reads the pain AUs from creases as much as from motion: vertical furrows between lowered brows (AU4),
crow's feet and lower-lid lines under raised cheeks (AU6) and a tightened lid (AU7), wrinkles across the nose root
(AU9), a deep nasolabial fold (AU10), the crease of a closed upper lid (AU43). Two parts make them:

- **Where creases can form** (once per face model and UV atlas): a family of crease lines per region, placed on
  the template by its landmarks and lid margins (`CREASE_FAMILIES`). Per texel they become a relief map: how much
  a crease darkens the skin (its cavity) and how it tilts the normal (its walls catch or lose the light), in world
  space on the template. Per vertex they become each family's region weight.
- **How deep they are** (per expression): the deformation itself. The strain of every face-surface edge between the
  identity's expressionless mesh and the posed one, weighted toward the direction that folds each family
  (glabellar furrows need horizontal compression, lid lines vertical, crow's feet any), smoothed over the mesh and
  scaled by the family's gain and by age (older skin creases more). A neutral face has no strain, so no crease;
  creases deepen with intensity because the strain does.

    creases = CreaseModel(model, atlas)                           # once per worker
    depth = creases.depth(posed, rest, age=60)                    # (N, V), 0 at neutral
    SurfaceDetail(relief=creases.relief, depth=depth, …)          # what factory/render/detail.py shades
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from factory.face.geometry import interpolate, smoothstep, window
from factory.face.model import FaceModel
from factory.face.texture.atlas import UVAtlas
from factory.face.texture.fields import ValueNoise
from factory.face.texture.template import TexelRegions, nearest_on_polyline
from factory.face.topology import face_surface, find_margins, unique_edges
from factory.render.mesh import vertex_normals
from factory.spec.hair import elder_factor

# Multi-PIE landmark numbers (0-based).
INNER_BROW, NASION = 22, 27
NOSE_WING, MOUTH_CORNER, EYE_OUTER = 35, 54, 45  # the face's left (+x); families are mirrored to the right

WOBBLE_SEED, WOBBLE_CM = 0x5717, 0.06  # one fixed noise bends every face's crease lines a little
SMOOTHING_STEPS = 3  # neighbour-averaging passes over the per-vertex strain (it is noisy at the mesh's scale)
YOUNG_DEPTH, AGED_DEPTH = 0.65, 1.25  # crease depth at 25 years or younger, and at 80
ELDER_DEPTH = 0.35  # how much deeper at 90 than the age ramp alone: lax skin folds more
STRAIN_KINDS = ("x", "y", "any", "y_either")  # what deepens a family: see `directional_strains`
MAX_DEPTH = 1.5  # a family's depth before the age factor approaches this (`saturate`): deep creases stop deepening


class Template(NamedTuple):
    """What crease families are placed by, on the neutral template (cm)."""

    landmarks: torch.Tensor  # (68, 3)
    upper_lids: list[tuple[torch.Tensor, torch.Tensor]]  # per eye: the upper margin's (x, y), sorted by x
    lower_lids: list[tuple[torch.Tensor, torch.Tensor]]
    wobble: Callable[[torch.Tensor], torch.Tensor]  # (P, 3) → (P,) cm: bends the lines


def groove(distance: torch.Tensor, width: float) -> torch.Tensor:
    """A crease's profile across its line: 1 on the line, Gaussian of `width` cm."""
    return torch.exp(-0.5 * (distance / width) ** 2)


def front(p: torch.Tensor, z: float, behind: float, soft: float = 0.6) -> torch.Tensor:
    """(P,) 1 for points less than `behind` cm behind depth `z`, fading over `soft`: a family stays on the front of
    the face and does not reach the skin that wraps away behind it."""
    return smoothstep(z - behind, z - behind + soft, p[:, 2])


def side_x(p: torch.Tensor) -> torch.Tensor:
    """|x|: families are drawn on the face's left and mirrored, the template being symmetric."""
    return p[:, 0].abs()


def glabella(p: torch.Tensor, t: Template) -> tuple[torch.Tensor, torch.Tensor]:
    """AU4: vertical furrows between the brow heads, the inner pair deepest, converging a little downward."""
    lm = t.landmarks
    low, high = float(lm[NASION, 1]) + 0.45, float(lm[INNER_BROW, 1]) + 0.8
    x, y = side_x(p), p[:, 1]
    region = window(y, low, high, 0.45) * smoothstep(1.25, 0.85, x) * front(p, float(lm[INNER_BROW, 2]), 1.4)
    lean = 0.1 * (y - low)  # the furrows open slightly upward
    wobble = 0.5 * t.wobble(p)
    lines = groove(x - 0.3 - lean + wobble, 0.075) + 0.5 * groove(x - 0.72 - 1.3 * lean + wobble, 0.06)
    return region, lines


def nose_root(p: torch.Tensor, t: Template) -> tuple[torch.Tensor, torch.Tensor]:
    """AU9 (and AU4's procerus): chevrons across the nose root and down its sides, the bunny lines."""
    lm = t.landmarks
    x, y = side_x(p), p[:, 1]
    centre = float(lm[NASION, 1]) - 0.55
    region = window(y, centre - 0.65, centre + 0.75, 0.35) * smoothstep(1.7, 1.1, x) * front(p, float(lm[NASION, 2]), 1.5)
    u = y - centre + 0.75 * x + 0.6 * t.wobble(p)  # constant along lines falling outward from the midline
    spacing = 0.3
    lines = torch.cos(math.pi * u / spacing).abs() ** 8  # thin lines every `spacing` cm
    return region, lines


def crows_feet(p: torch.Tensor, t: Template) -> tuple[torch.Tensor, torch.Tensor]:
    """AU6/AU7: rays fanning out from the eye's outer corner."""
    corner = t.landmarks[EYE_OUTER]
    dx, dy = side_x(p) - float(corner[0]), p[:, 1] - float(corner[1])
    r = torch.sqrt(dx * dx + dy * dy + 1e-8)
    region = window(r, 0.45, 1.9, 0.35) * smoothstep(0.0, 0.25, dx) * front(p, float(corner[2]), 3.0, soft=1.0)
    angle = torch.atan2(dy, dx) + 2.0 * t.wobble(p)
    lines = sum(depth * groove(r * torch.sin(angle - math.radians(ray)), 0.05)
                for ray, depth in ((-32, 0.8), (-12, 1.0), (8, 1.0), (26, 0.7)))
    return region, lines


def lid_height(p: torch.Tensor, lids: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) height above the lid margin of the eye on the point's side, and (P,) a window over that eye's width."""
    height = torch.zeros(p.shape[0])
    across = torch.zeros(p.shape[0])
    for xs, ys in lids:
        on_side = (p[:, 0] > 0) == bool(xs.mean() > 0)
        height = torch.where(on_side, p[:, 1] - interpolate(p[:, 0], xs, ys[None])[0], height)
        across = torch.where(on_side, window(p[:, 0], float(xs.min()) + 0.15, float(xs.max()) + 0.1, 0.35), across)
    return height, across


def lower_lid(p: torch.Tensor, t: Template) -> tuple[torch.Tensor, torch.Tensor]:
    """AU6/AU7: lines under a raised, tightened lower lid, deeper toward the outer corner."""
    height, across = lid_height(p, t.lower_lids)
    below = -height
    outer = 0.75 + 0.25 * smoothstep(2.0, 4.0, side_x(p))
    region = window(below, 0.08, 0.75, 0.15) * across * outer
    wobble = 0.4 * t.wobble(p)
    lines = groove(below - 0.25 + wobble, 0.045) + 0.7 * groove(below - 0.55 + wobble, 0.05)
    return region, lines


def upper_lid(p: torch.Tensor, t: Template) -> tuple[torch.Tensor, torch.Tensor]:
    """AU43 (and a squeezed AU7): the upper lid's crease and the fine lines of its skin."""
    height, across = lid_height(p, t.upper_lids)
    region = window(height, 0.3, 0.8, 0.15) * across
    return region, groove(height - 0.55 + 0.3 * t.wobble(p), 0.06)


def nasolabial(p: torch.Tensor, t: Template) -> tuple[torch.Tensor, torch.Tensor]:
    """AU10 (and AU9, AU6): the fold from beside the nose wing to below the mouth corner, bowed outward."""
    lm = t.landmarks
    curve = nasolabial_curve(lm)
    start, end = curve[0], curve[-1]
    distance = nasolabial_distance(p, lm)
    along = window(p[:, 1], float(end[1]) + 0.2, float(start[1]) - 0.1, 0.35)
    region = smoothstep(0.6, 0.25, distance) * along * front(p, float(lm[MOUTH_CORNER, 2]), 2.0, soft=1.0)
    return region, groove(distance + 0.5 * t.wobble(p), 0.08)


def nasolabial_curve(landmarks: torch.Tensor) -> torch.Tensor:
    """(9, 2) the nasolabial fold on the face's left (x, y in cm; mirrored by |x|): from beside the nose wing to below
    the mouth corner, bowed outward. Facial hair thins over it (factory/face/hair.py), so the fold stays visible."""
    start = landmarks[NOSE_WING, :2] + torch.tensor([0.35, 0.35])
    end = landmarks[MOUTH_CORNER, :2] + torch.tensor([0.55, -0.75])
    bow = torch.tensor([0.55, 0.0])
    s = torch.linspace(0, 1, 9)[:, None]
    return (1 - s) ** 2 * start + 2 * s * (1 - s) * ((start + end) / 2 + bow) + s**2 * end


def nasolabial_distance(p: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(P,) cm from each point (P, 3) to the nasolabial fold on its side of the face, in the x-y plane."""
    q = torch.stack([side_x(p), p[:, 1]], dim=-1)
    return nearest_on_polyline(q, nasolabial_curve(landmarks))[0]


@dataclass(frozen=True)
class CreaseFamily:
    name: str
    shape: Callable[[torch.Tensor, Template], tuple[torch.Tensor, torch.Tensor]]  # points → (region, lines)
    strain: str  # what deepens it, one of STRAIN_KINDS: compression along x, along y, any, or |strain| along y
    gain: float  # depth per unit of smoothed strain
    darkening: float  # albedo darkening in a full-depth crease
    groove_cm: float  # how deep a full-depth crease is: it sets how far its walls tilt the normal


CREASE_FAMILIES = (
    CreaseFamily("glabella", glabella, "x", 7.0, 0.35, 0.06),
    CreaseFamily("nose_root", nose_root, "y", 6.0, 0.25, 0.035),
    CreaseFamily("crows_feet", crows_feet, "any", 8.0, 0.3, 0.04),
    CreaseFamily("lower_lid", lower_lid, "y", 12.0, 0.3, 0.04),
    CreaseFamily("upper_lid", upper_lid, "y_either", 0.8, 0.2, 0.04),
    CreaseFamily("nasolabial", nasolabial, "any", 12.0, 0.35, 0.1),
)


def age_depth(age: float) -> float:
    """Crease depth factor: YOUNG_DEPTH at 25 or younger, rising to AGED_DEPTH at 80; after 60 the lax skin of old
    age folds deeper still, by up to ELDER_DEPTH more at 90 (factory/spec/hair.py elder_factor)."""
    return YOUNG_DEPTH + (AGED_DEPTH - YOUNG_DEPTH) * float(np.clip((age - 25) / 55, 0, 1)) + ELDER_DEPTH * elder_factor(age)


class CreaseModel:
    """The crease families of one face model and UV atlas: the relief map, per-vertex regions, the edges to strain."""

    def __init__(self, model: FaceModel, atlas: UVAtlas):
        self.template = template_of(model)
        # The face surface's vertices (layout.margin_surface: ICT's face, FLAME's head), and its edges numbered
        # among them.
        self.surface = torch.nonzero(model.layout.margin_surface).squeeze(1)  # (Vf,)
        local = torch.full((model.num_vertices,), -1, dtype=torch.int64)
        local[self.surface] = torch.arange(len(self.surface))
        self.edges = edges = local[unique_edges(face_surface(model))]  # (E, 2)
        self.neighbours = neighbour_average(edges, len(self.surface))
        face_points = model.neutral[self.surface]
        self.regions = torch.stack([family.shape(face_points, self.template)[0] for family in CREASE_FAMILIES])  # (K, Vf)
        self.relief = relief_map(model, atlas, self.template)

    def depth(self, posed: torch.Tensor, rest: torch.Tensor, age: float) -> torch.Tensor:
        """(N, V) crease depth of each posed mesh (N, V, 3) against its identity's expressionless mesh (V, 3):
        0 where the skin is not compressed, about 1 for a strong crease."""
        face = self.surface
        strains = directional_strains(posed[:, face], rest[face], self.edges)  # (Vf, N, kinds)
        for _ in range(SMOOTHING_STEPS):
            strains = self.neighbours(strains)
        total = sum(region[:, None] * saturate(family.gain * strains[:, :, STRAIN_KINDS.index(family.strain)])
                    for region, family in zip(self.regions, CREASE_FAMILIES))
        depth = torch.zeros(posed.shape[:2])
        depth[:, face] = total.T * age_depth(age)
        return depth


def saturate(depth: torch.Tensor) -> torch.Tensor:
    """Depths below 0 (stretched skin) become 0; large ones approach MAX_DEPTH, still growing with the strain."""
    return MAX_DEPTH * torch.tanh(depth.clamp(min=0) / MAX_DEPTH)


def template_of(model: FaceModel) -> Template:
    neutral = model.neutral
    upper, lower = [], []
    for margin in find_margins(model):
        if margin.region.startswith("eye"):
            for ids, into in ((margin.upper, upper), (margin.lower, lower)):
                order = torch.argsort(neutral[ids, 0])
                into.append((neutral[ids[order], 0].contiguous(), neutral[ids[order], 1].contiguous()))
    box_low, box_high = neutral.min(dim=0).values - 1, neutral.max(dim=0).values + 1
    noise = ValueNoise(np.random.default_rng(WOBBLE_SEED), box_low, box_high, 0.8)
    return Template(neutral[model.landmarks], upper, lower, lambda points: WOBBLE_CM * noise(points))


def directional_strains(posed: torch.Tensor, rest: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """(V, N, kinds) per vertex, mesh and STRAIN_KINDS: the mean compression (1 - length / rest length, > 0 when
    compressed) of the vertex's edges, weighted by how well each edge lines up with x ("x"), with y ("y"),
    unweighted ("any"), and the mean |strain| along y ("y_either"). Vertex-major, so the sums over edges add whole
    rows. `posed` is (N, V, 3), `rest` (V, 3)."""
    rest_edge = rest[edges[:, 1]] - rest[edges[:, 0]]  # (E, 3)
    rest_length = rest_edge.norm(dim=-1).clamp(min=1e-6)
    length = (posed[:, edges[:, 1]] - posed[:, edges[:, 0]]).norm(dim=-1)  # (N, E)
    compression = (1 - length / rest_length).T[:, :, None]  # (E, N, 1)
    along_x, along_y = (rest_edge[:, :2] / rest_length[:, None]).square().unbind(-1)
    weights = torch.stack([along_x, along_y, torch.ones_like(along_x), along_y], dim=-1)[:, None, :]  # (E, 1, kinds)
    signed = torch.tensor([False, False, False, True])  # "y_either" takes |strain|
    values = torch.where(signed, compression.abs(), compression) * weights  # (E, N, kinds)
    total = torch.zeros(rest.shape[0], *values.shape[1:])
    weight = torch.zeros(rest.shape[0], 1, weights.shape[-1])
    for end in (0, 1):
        total.index_add_(0, edges[:, end], values)
        weight.index_add_(0, edges[:, end], weights)
    return total / weight.clamp(min=1e-6)


def neighbour_average(edges: torch.Tensor, vertices: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The operator (V, …) → (V, …) that replaces each vertex's values by the mean of its own and its neighbours'."""
    count = 1 + torch.bincount(edges.reshape(-1), minlength=vertices).float()

    def average(values: torch.Tensor) -> torch.Tensor:
        total = values.clone()
        total.index_add_(0, edges[:, 0], values.index_select(0, edges[:, 1]))
        total.index_add_(0, edges[:, 1], values.index_select(0, edges[:, 0]))
        return total / count.view(-1, *([1] * (values.ndim - 1)))

    return average


def relief_map(model: FaceModel, atlas: UVAtlas, template: Template) -> torch.Tensor:
    """(S, S, 4) per texel: albedo darkening of a full-depth crease, then the normal tilt (world space on the
    template): the tangential gradient of the crease height field, each family's groove_cm deep along its lines."""
    size = atlas.size
    skin = TexelRegions.of(model, atlas).skin.reshape(-1)
    texels = torch.nonzero(skin).squeeze(1)
    points = atlas.texel_position.reshape(-1, 3)[texels].clone().requires_grad_(True)
    darkening = torch.zeros(points.shape[0])
    height = torch.zeros(points.shape[0])
    for family in CREASE_FAMILIES:
        region, lines = family.shape(points, template)
        crease = (region * lines).clamp(0, 1)
        height = height - family.groove_cm * crease
        darkening = darkening + family.darkening * crease.detach()
    (gradient,) = torch.autograd.grad(height.sum(), points)
    normals = texel_normals(model, atlas, texels)
    tilt = gradient - (gradient * normals).sum(-1, keepdim=True) * normals  # tangential part only
    relief = torch.zeros(size * size, 4)
    relief[texels, 0] = darkening.clamp(0, 0.8)
    relief[texels, 1:] = tilt
    return relief.view(size, size, 4)


def texel_normals(model: FaceModel, atlas: UVAtlas, texels: torch.Tensor) -> torch.Tensor:
    """(T, 3) the template's unit vertex normal at each texel, from the three vertices of its triangle."""
    normals = vertex_normals(model.neutral[None], model.faces)[0]
    faces = atlas.faces[atlas.texel_face.reshape(-1)[texels]]  # (T, 3)
    return torch.nn.functional.normalize(normals[faces].mean(dim=1), dim=-1)
