"""Texturers: an identity's skin, eyes, mouth and hair colours as one square UV texture.

    texturer = make_texturer("procedural", FaceModel.load(), texture_size=1024)
    texture = texturer.texture(spec.skin, spec.demographics)   # Texture(image (S, S, 3) in 0..1, parameters)

Two pieces:
- `UVAtlas`: the ICT model keeps each sub-mesh's UVs in its own unit tile (UDIM style: face in tile 0, head and
  neck in tile 1, gums 2, teeth 3, eye shells 4–5, lashes 6), and the eyeballs overlap the face in tile 0. One
  texture needs one layout, so the atlas packs every rendered tile into its own cell of one square and rasterizes
  the UV triangles once, so each texel knows its triangle and the point of the neutral template it shows.
  Two sub-meshes are left out of the rendered mesh because they only look right through transparency, which a
  single-layer rasterizer cannot do: the eye shells (lacrimal fluid, eye blend, occlusion) would hide the eyes, and
  the eyelash cards, drawn opaque, become dark goggles. The texturer paints a lash line on the lid margins instead.
- `ProceduralTexturer`: colours from that template position, with no weights. Regions (cheeks, under-eyes, brows,
  lips, wrinkle lines) are placed relative to the template's 68 landmarks, so they sit right on every identity, and
  noise is 3D value noise at the template position, so it runs across UV seams without a visible cut.

A registry (`TEXTURERS`) names the texturers; a diffusion texturer that bakes a generated portrait into the same atlas
can be added beside the procedural one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from factory.face.model import FaceModel
from factory.spec.plan import Demographics, Skin

# ICT sub-meshes by vertex range (0-based, inclusive; ../shared/assets/ict-facekit/NOTICE.md).
EYEBALLS = (21451, 24590)
IRIS_SHELLS = ((22221, 23020), (23791, 24590))  # the inner (iris) sphere of each eyeball
EYE_SHELLS = (24591, 25350)  # lacrimal fluid, eye blend and eye occlusion: transparent, not rendered
LASH_CARDS = (25351, 26718)  # eyelash cards: cut-outs through an alpha map, not rendered (see UVAtlas)
EYE_SOCKETS = (13294, 14061)
MOUTH_SOCKET = (11248, 13293)
GUMS_TONGUE = (14062, 17038)
TEETH = (17039, 21450)
ICT_VERTEX_COUNT = 26719

# Atlas cells: UV tile → (x, y, size) of its square in the texture, as fractions of the side (y down).
# The face gets most of the texels; the eyeballs get their own cell because they overlap the face in tile 0.
# Each eyeball is two nested spheres (sclera, then an inner iris shell) whose UV maps differ, and the two eyes
# share one UV layout, mirrored; overlapping UVs cannot hold different colours, so each shell of each eye gets a
# cell of its own.
EYE_CELLS = {  # cell name → vertex range
    "sclera_left": (EYEBALLS[0], IRIS_SHELLS[0][0] - 1), "iris_left": IRIS_SHELLS[0],
    "sclera_right": (IRIS_SHELLS[0][1] + 1, IRIS_SHELLS[1][0] - 1), "iris_right": IRIS_SHELLS[1],
}
ATLAS_CELLS = {
    0: (0.0, 0.0, 0.625),  # tile 0 without the eyeballs: face, brows, lips
    1: (0.625, 0.0, 0.375),  # head and neck, mouth socket, eye sockets
    "sclera_left": (0.625, 0.375, 0.1875),
    "sclera_right": (0.8125, 0.375, 0.1875),
    "iris_left": (0.75, 0.5625, 0.125),
    "iris_right": (0.875, 0.5625, 0.125),
    3: (0.0, 0.625, 0.375),  # teeth
    2: (0.375, 0.625, 0.375),  # gums and tongue
}
CELL_MARGIN = 2.0 / 1024  # inset of each cell (2 texels at 1024), so bilinear lookups never reach a neighbour


def vertex_range(faces: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    """(F,) whether each triangle's first vertex lies in a sub-mesh's vertex range."""
    return (faces[:, 0] >= span[0]) & (faces[:, 0] <= span[1])


@dataclass(frozen=True)
class UVAtlas:
    """The rendered triangles with UVs packed into one square texture, and what each texel shows."""

    face_index: torch.Tensor  # (Fr,) ids of the rendered triangles among the model's faces
    faces: torch.Tensor  # (Fr, 3) their vertex ids
    face_part: torch.Tensor  # (Fr,) their part ids
    corner_uvs: torch.Tensor  # (Fr, 3, 2) atlas UV of each corner, in 0..1 with v up (OBJ convention)
    size: int
    texel_face: torch.Tensor  # (S, S) rendered-triangle id shown by each texel, -1 in gutters (row 0 = top, v = 1)
    texel_position: torch.Tensor  # (S, S, 3) the neutral template point each texel shows (cm)

    @classmethod
    def build(cls, model: FaceModel, size: int) -> "UVAtlas":
        if model.num_vertices != ICT_VERTEX_COUNT:
            raise ValueError(f"the UV atlas knows the ICT face model's layout ({ICT_VERTEX_COUNT} vertices); "
                             f"this model has {model.num_vertices}")
        keep = ~vertex_range(model.faces, EYE_SHELLS) & ~vertex_range(model.faces, LASH_CARDS)
        face_index = torch.nonzero(keep).squeeze(1)
        faces = model.faces[face_index]
        uvs = model.uvs[model.face_uvs[face_index]]  # (Fr, 3, 2)
        tile = torch.floor(uvs[..., 0].mean(dim=1)).long()
        eyeball = vertex_range(faces, EYEBALLS)
        corner_uvs = torch.zeros_like(uvs)
        margin = CELL_MARGIN
        for cell, (x, y, side) in ATLAS_CELLS.items():
            if cell in EYE_CELLS:
                chosen, tile_u = vertex_range(faces, EYE_CELLS[cell]), 0
            else:
                chosen, tile_u = (tile == cell) & ~eyeball, cell
            local = uvs[chosen] - torch.tensor([float(tile_u), 0.0])
            inner = side - 2 * margin
            u = x + margin + local[..., 0] * inner
            v = 1.0 - (y + margin + (1.0 - local[..., 1]) * inner)
            corner_uvs[chosen] = torch.stack([u, v], dim=-1)
        texel_face, texel_position = rasterize_uv(corner_uvs, faces, model.neutral, size)
        return cls(face_index=face_index, faces=faces, face_part=model.face_part[face_index], corner_uvs=corner_uvs,
                   size=size, texel_face=texel_face, texel_position=texel_position)

    @cached_property
    def texel_vertex(self) -> torch.Tensor:
        """(S, S) first vertex id of the triangle each texel shows (-1 in gutters): tells sub-meshes apart."""
        return torch.where(self.texel_face >= 0, self.faces[self.texel_face.clamp(min=0), 0], -1)

    @cached_property
    def texel_part(self) -> torch.Tensor:
        return torch.where(self.texel_face >= 0, self.face_part[self.texel_face.clamp(min=0)], 0)

    def in_range(self, span: tuple[int, int]) -> torch.Tensor:
        return (self.texel_vertex >= span[0]) & (self.texel_vertex <= span[1])


def rasterize_uv(corner_uvs: torch.Tensor, faces: torch.Tensor, neutral: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which triangle covers each texel, and the template point there: the UV layout drawn as a flat mesh.

    An identity camera (K = I, R = I, t = 0) maps (x·z, y·z, z) to pixel (x, y) at depth z. Where UV charts overlap
    (the back of an eyeball shares UVs with its front), the texel should show what a camera in front of the face
    sees, so each triangle is placed at a depth that falls as its template point moves forward (+z); a triangle's
    three corners share that depth, so its barycentrics stay affine in UV space."""
    from factory.render.camera import Camera
    from factory.render.raster import rasterize

    texel_xy = torch.stack([corner_uvs[..., 0] * size - 0.5, (1.0 - corner_uvs[..., 1]) * size - 0.5], dim=-1)
    forward = neutral[faces][..., 2].mean(dim=1)  # (Fr,) template depth of each triangle
    depth = 1.0 + 0.5 * (forward.max() - forward) / (forward.max() - forward.min())
    depth = depth[:, None, None].expand(-1, 3, 1)
    flat = torch.cat([texel_xy * depth, depth], dim=-1).reshape(1, -1, 3)
    corner_faces = torch.arange(flat.shape[1]).reshape(-1, 3)
    camera = Camera(K=torch.eye(3), R=torch.eye(3), t=torch.zeros(3), image_size=size)
    fragments = rasterize(flat, corner_faces, camera, backend="torch")
    texel_face = fragments.pix_to_face[0, ..., 0]
    bary = fragments.bary_coords[0, :, :, 0].clamp(min=0)  # (S, S, 3)
    corners = neutral[faces[texel_face.clamp(min=0)]]  # (S, S, 3 corners, 3)
    position = (bary.unsqueeze(-1) * corners).sum(dim=2)
    return texel_face, torch.where(texel_face[..., None] >= 0, position, torch.zeros_like(position))


@dataclass(frozen=True)
class Texture:
    image: torch.Tensor  # (S, S, 3) float32 sRGB in 0..1, row 0 = v 1 (top of the image)
    parameters: dict  # what made it, for meta.json


class Texturer:
    """A texturer owns the UV atlas of its face model and turns (skin, demographics) into a Texture."""

    name: str = ""

    def __init__(self, model: FaceModel, texture_size: int = 1024):
        if not 64 <= texture_size <= 8192:
            raise ValueError(f"texture_size must be 64..8192, got {texture_size}")
        self.model = model
        self.texture_size = texture_size
        self.atlas = UVAtlas.build(model, texture_size)

    def texture(self, skin: Skin, demographics: Demographics) -> Texture:
        raise NotImplementedError


# --- colours ---------------------------------------------------------------------------------------------------
# sRGB skin references along the Fitzpatrick scale, I to VI (forehead/cheek averages of measured skin, rounded);
# Skin.tone runs 0..1 through them.
FITZPATRICK_SRGB = np.array([
    [241, 211, 190], [228, 188, 158], [210, 161, 124], [176, 124, 88], [124, 83, 56], [78, 52, 38],
]) / 255.0
HAIR_SRGB = {
    "black": (0.06, 0.05, 0.05), "dark_brown": (0.17, 0.11, 0.08), "brown": (0.32, 0.21, 0.13),
    "blond": (0.66, 0.53, 0.33), "red": (0.55, 0.24, 0.12), "gray": (0.55, 0.54, 0.53),
}
IRIS_SRGB = {
    "dark_brown": (0.18, 0.10, 0.05), "brown": (0.35, 0.20, 0.09), "hazel": (0.45, 0.35, 0.16),
    "green": (0.30, 0.45, 0.28), "blue": (0.33, 0.48, 0.66), "gray": (0.50, 0.55, 0.58),
}
SCLERA_SRGB = (0.92, 0.89, 0.86)
TEETH_SRGB = (0.93, 0.89, 0.80)
GUMS_SRGB = (0.78, 0.40, 0.42)
MOUTH_SRGB = (0.30, 0.08, 0.09)
IRIS_RADIUS = 0.4  # of the eyeball radius (its half-width, 1.5 cm on the template): a 12 mm iris
PUPIL_RADIUS = 0.33  # of the iris radius


def skin_base_srgb(tone: float, undertone: float) -> np.ndarray:
    """Base skin colour: piecewise-linear in tone through the Fitzpatrick references, then the undertone shifts
    toward yellow/olive (warm, +1) or pink (cool, -1)."""
    position = float(np.clip(tone, 0, 1)) * (len(FITZPATRICK_SRGB) - 1)
    low = int(min(math.floor(position), len(FITZPATRICK_SRGB) - 2))
    colour = FITZPATRICK_SRGB[low] + (position - low) * (FITZPATRICK_SRGB[low + 1] - FITZPATRICK_SRGB[low])
    shift = np.array([0.01, 0.015, -0.035]) if undertone >= 0 else np.array([0.02, -0.02, 0.0])
    return np.clip(colour * (1 + abs(undertone) * shift / colour.mean()), 0, 1)


def hair_srgb(name: str, skin: np.ndarray) -> torch.Tensor:
    """Brow, lash and scalp hair colour: the named colour, darkened where needed so that hair is never lighter
    than 40 % of the skin's luminance (light-brown brows on very dark skin read as pale patches)."""
    hair = np.array(HAIR_SRGB[name])
    luma = np.array([0.2126, 0.7152, 0.0722])
    ceiling = 0.4 * float(skin @ luma)
    return torch.tensor(hair * min(1.0, ceiling / float(hair @ luma)), dtype=torch.float32)


def age_factor(age: float) -> float:
    """0 at 25 years or younger, 1 at 80: how deep the wrinkle lines are."""
    return float(np.clip((age - 25) / 55, 0, 1))


# --- noise ------------------------------------------------------------------------------------------------------
class ValueNoise:
    """Smooth 3D value noise over the template's bounding box: random values on a lattice, interpolated."""

    def __init__(self, rng: np.random.Generator, low: torch.Tensor, high: torch.Tensor, cell_cm: float):
        self.low, self.span = low, (high - low)
        counts = [int(math.ceil(float(s) / cell_cm)) + 2 for s in self.span]
        lattice = rng.random((counts[2], counts[1], counts[0]), dtype=np.float32) * 2 - 1  # z, y, x
        self.lattice = torch.from_numpy(lattice)[None, None]

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) cm → (...,) values in -1..1."""
        grid = (points - self.low) / self.span * 2 - 1
        sampled = F.grid_sample(self.lattice, grid.reshape(1, 1, 1, -1, 3), mode="bilinear", align_corners=True)
        return sampled.reshape(points.shape[:-1])


# --- the procedural texturer -----------------------------------------------------------------------------------
def gaussian(points: torch.Tensor, centre, sigma) -> torch.Tensor:
    """Anisotropic Gaussian bump (peak 1) around `centre`; sigma per axis in cm."""
    d = (points - torch.as_tensor(centre, dtype=points.dtype)) / torch.as_tensor(sigma, dtype=points.dtype)
    return torch.exp(-0.5 * (d * d).sum(dim=-1))


def segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = b - a
    t = (((points - a) * ab).sum(-1) / (ab * ab).sum()).clamp(0, 1)
    return (points - (a + t[..., None] * ab)).norm(dim=-1)


def blur(mask: torch.Tensor, sigma_texels: float) -> torch.Tensor:
    """Separable Gaussian blur of a (S, S) map: soft region edges in texture space."""
    radius = max(1, int(3 * sigma_texels))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma_texels) ** 2)
    kernel = kernel / kernel.sum()
    image = mask[None, None].float()
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    image = F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return image[0, 0]


def gutter_sources(covered: torch.Tensor, steps: int) -> torch.Tensor:
    """(S·S,) for each texel, the flat index of the texel whose colour it takes: itself when covered, else a covered
    texel up to `steps` away (grown one ring at a time), else itself. Filling the gutters around every chart this
    way keeps bilinear lookups at chart borders from mixing in the empty gutter colour."""
    size = covered.shape[0]
    source = torch.where(covered.reshape(-1), torch.arange(size * size, dtype=torch.float64), -1.0).view(1, 1, size, size)
    for _ in range(steps):
        grown = F.max_pool2d(source, 3, stride=1, padding=1)
        source = torch.where(source >= 0, source, grown)
    source = source.reshape(-1).long()
    return torch.where(source >= 0, source, torch.arange(size * size))


class ProceduralTexturer(Texturer):
    """Skin tone, regional colour, noise, age lines, eyes, mouth and lash line from a few seeded numbers.

    Everything that depends on the template only (where the cheeks, brows, lid margins and wrinkle lines are; the
    eyes' radial coordinates) is computed once, here; `texture` then only mixes colours and evaluates noise, and
    only at the texels of the region it paints."""

    name = "procedural"
    version = 1

    def __init__(self, model: FaceModel, texture_size: int = 1024):
        super().__init__(model, texture_size)
        atlas = self.atlas
        self.landmarks = model.neutral[model.landmarks]  # (68, 3) template landmarks
        self.low = model.neutral.min(dim=0).values - 1
        self.high = model.neutral.max(dim=0).values + 1
        self.covered = atlas.texel_face >= 0
        self.gutter_source = gutter_sources(self.covered, steps=max(2, texture_size // 128))
        self.eyeball = atlas.in_range(EYEBALLS)
        self.teeth = atlas.in_range(TEETH)
        self.gums = atlas.in_range(GUMS_TONGUE)
        self.mouth = atlas.in_range(MOUTH_SOCKET) | self.gums | self.teeth
        self.skin = self.covered & ~self.eyeball & ~self.mouth
        self.eye_geometry = self._eye_geometry()
        # Per skin texel (flattened, in the order of `skin_index`): the template-fixed maps.
        self.skin_index = torch.nonzero(self.skin.reshape(-1)).squeeze(1)
        p = atlas.texel_position.reshape(-1, 3)[self.skin_index]
        self.skin_points = p
        lm = self.landmarks
        eye_right, eye_left = lm[36:42].mean(0), lm[42:48].mean(0)
        self.cheeks = sum(gaussian(p, (eye + mouth) / 2 + torch.tensor([side * 1.2, 0.0, 0.0]), (1.6, 1.3, 2.5))
                          for eye, mouth, side in ((eye_right, lm[48], -1), (eye_left, lm[54], 1)))
        self.nose_tip = gaussian(p, lm[30], (0.9, 0.8, 1.5))
        self.under_eyes = sum(gaussian(p, eye + torch.tensor([0.0, -1.0, 0.2]), (1.1, 0.45, 1.5)) for eye in (eye_right, eye_left))
        self.freckle_zone = gaussian(p, lm[30] + torch.tensor([0.0, 0.5, -1.0]), (3.2, 2.2, 3.0))
        self.eye_socket = self._on_skin(atlas.in_range(EYE_SOCKETS).float())
        self.lips = self._on_skin(blur(atlas.texel_part == model.part_names.index("lips"), texture_size / 160))
        self.brow_density = self._brow_density(p)
        self.lash_line = self._lash_line(p)
        self.wrinkles = self._wrinkle_lines(p)
        self.hairline_height = self._hairline_height(p)

    def _on_skin(self, image: torch.Tensor) -> torch.Tensor:
        """(S, S) map → its values at the skin texels."""
        return image.reshape(-1)[self.skin_index]

    def texture(self, skin: Skin, demographics: Demographics) -> Texture:
        rng = np.random.default_rng([skin.texture_seed, 0x7E47])
        noise = {cell: ValueNoise(rng, self.low, self.high, cell) for cell in (3.0, 1.0, 0.35, 0.12)}
        base = skin_base_srgb(skin.tone, skin.undertone)
        hair = hair_srgb(skin.hair, base)
        aging = age_factor(demographics.age)

        colour = torch.zeros(self.texture_size * self.texture_size, 3)
        colour[self.skin_index] = self._skin(base, hair, skin, aging, demographics.gender == "male", noise, rng)
        eyes = self.eyeball.reshape(-1)
        colour[eyes] = self._eyes(skin.iris, rng)
        mouth = self.mouth.reshape(-1)
        colour[mouth] = self._mouth(mouth, aging, noise)
        image = colour.clamp(0, 1).index_select(0, self.gutter_source).view(self.texture_size, self.texture_size, 3)
        parameters = {
            "name": self.name, "version": self.version, "texture_size": self.texture_size,
            "skin_srgb": [round(float(c), 4) for c in base], "hair_srgb": [round(float(c), 4) for c in hair],
            "iris_srgb": list(IRIS_SRGB[skin.iris]), "wrinkle_depth": round(aging, 4),
            "redness": skin.redness, "freckles": skin.freckles, "texture_seed": skin.texture_seed,
        }
        return Texture(image=image, parameters=parameters)

    def _skin(self, base, hair, skin, aging, male, noise, rng) -> torch.Tensor:
        """(P, 3) colour of the skin texels: tone, blood, shadows, texture, freckles, age lines, brows, lashes."""
        p = self.skin_points
        colour = torch.tensor(base, dtype=torch.float32).expand(p.shape[0], 3)

        # Blood: cheeks and nose tip, more with `redness`, patchy; lips darker and redder.
        flush = (0.35 + 0.65 * skin.redness) * (0.55 * self.cheeks + 0.35 * self.nose_tip) * (1 + 0.3 * noise[1.0](p))
        colour = colour * (1 + flush[:, None] * torch.tensor([0.0, -0.16, -0.12]))  # toward red: less green, blue
        lip_colour = colour * torch.tensor([0.86, 0.58, 0.60]) * (0.9 + 0.1 * skin.redness)
        colour = torch.lerp(colour, lip_colour, self.lips[:, None] * 0.8)

        # Shadows: darker under the eyes and inside the eye sockets.
        colour = colour * (1 - 0.1 * self.under_eyes[:, None] * torch.tensor([1.0, 1.05, 0.95]))
        colour = torch.lerp(colour, colour * torch.tensor([0.8, 0.62, 0.62]), self.eye_socket[:, None])

        # Skin texture: blotches at three scales, a little hue wander, then pores at the texel scale.
        fine = noise[0.35](p)
        luminance = 0.05 * noise[3.0](p) + 0.035 * noise[1.0](p + 17.0) + 0.03 * fine + 0.02 * noise[0.12](p)
        colour = colour * (1 + luminance[:, None] + 0.02 * noise[0.35](p + 17.0)[:, None] * torch.tensor([0.5, -0.5, -0.5]))
        pores = torch.from_numpy(rng.standard_normal(p.shape[0], dtype=np.float32))
        colour = colour * (1 + 0.025 * pores[:, None])

        # Freckles: spots where fine noise peaks, on the nose and cheeks.
        if skin.freckles > 0:
            spots = ((noise[0.12](p - 5.0) - (1 - 0.5 * skin.freckles)) * 4).clamp(0, 1)
            colour = colour * (1 - (0.35 * self.freckle_zone * spots)[:, None] * torch.tensor([0.7, 0.9, 1.0]))

        colour = colour * (1 - aging * self.wrinkles * (0.75 + 0.25 * fine))[:, None]

        # Brow hair: strokes from noise stretched along the brow; lash line along the lid margins.
        strokes = noise[0.12](p * torch.tensor([0.3, 3.0, 1.0])) * 0.5 + 0.5
        brows = (self.brow_density * (0.25 + 0.9 * strokes)).clamp(0, 1)[:, None] * 0.8
        colour = torch.lerp(colour, hair.expand_as(colour), brows)

        # Close-cropped scalp hair above a hairline that wanders a little; men's thins with age.
        above = self.hairline_height + 0.4 * noise[1.0](p - 11.0)
        coverage = (above / 0.5).clamp(0, 1) * (0.7 + 0.3 * strokes)
        if male:
            coverage = coverage * (1 - 0.6 * aging * (self.skin_points[:, 1] > 9).float())
        colour = torch.lerp(colour, (hair * 0.9).expand_as(colour), coverage[:, None] * 0.95)
        return torch.lerp(colour, (hair * 0.4 + 0.02).expand_as(colour), self.lash_line[:, None])

    def _brow_density(self, p: torch.Tensor) -> torch.Tensor:
        """(P,) 0..1 brow coverage: a band around each brow's landmark line (17–21, 22–26), thick at the inner
        end and thin at the tail, soft at its edges, on the front of the face only."""
        density = torch.zeros(p.shape[0])
        for line in (self.landmarks[17:22], self.landmarks[22:27].flip(0)):  # each from the tail to the inner end
            distance = torch.full((p.shape[0],), 1e3)
            along = torch.zeros(p.shape[0])
            for k, (a, b) in enumerate(zip(line[:-1], line[1:])):
                d = segment_distance(p[:, :2], a[:2], b[:2])
                closer = d < distance
                distance, along = torch.where(closer, d, distance), torch.where(closer, torch.full_like(d, k / 3), along)
            half_height = 0.22 + 0.25 * along  # cm
            front = (p[:, 2] > float(line[:, 2].min()) - 1.5).float()
            density = density + front * (1 - ((distance - half_height) / 0.12).clamp(0, 1))
        return density.clamp(0, 1)

    def _lash_line(self, p: torch.Tensor) -> torch.Tensor:
        """(P,) 0..0.9 darkening along the lid margins where the lashes grow: wider on the upper lid."""
        from factory.face.rig import find_margins

        near_eyes = (p[:, 1] > float(self.landmarks[29, 1])) & (p[:, 1] < float(self.landmarks[19, 1]))
        points = p[near_eyes]
        line = torch.zeros(points.shape[0])
        for margin in find_margins(self.model):
            if not margin.region.startswith("eye"):
                continue
            for vertices, width in ((margin.upper, 0.16), (torch.cat([margin.lower_a, margin.lower_b]).unique(), 0.06)):
                distance = torch.cdist(points, self.model.neutral[vertices]).min(dim=1).values
                line = torch.maximum(line, 1 - (distance / width).clamp(0, 1) ** 2)
        result = torch.zeros(p.shape[0])
        result[near_eyes] = line * 0.9
        return result

    def _hairline_height(self, p: torch.Tensor) -> torch.Tensor:
        """(P,) cm above the hairline (negative below): the hairline runs 3.6 cm above the brows over the forehead,
        down to just above the ears at the temples and to the nape at the back."""
        lm = self.landmarks
        front_y = float(lm[17:27, 1].max()) + 3.6
        ear_y = float(lm[0, 1]) + 4.0
        nape_y = float(lm[0, 1]) - 3.0
        forehead_z, ear_z, back_z = float(lm[17:27, 2].min()) - 2.5, float(lm[0, 2]) - 1.0, float(self.low[2]) + 1
        z = p[:, 2]
        temple = ((forehead_z - z) / (forehead_z - ear_z)).clamp(0, 1)
        back = ((ear_z - z) / (ear_z - back_z)).clamp(0, 1)
        hairline = front_y + temple * (ear_y - front_y) + back * (nape_y - ear_y)
        return p[:, 1] - hairline

    def _wrinkle_lines(self, p: torch.Tensor) -> torch.Tensor:
        """(P,) darkening of the age lines at full age (scaled by `age_factor`): forehead, crow's feet, nasolabial
        folds. Their waviness comes from a fixed noise, so every face has its own lines only through its shape."""
        lm = self.landmarks
        x, y = p[:, 0], p[:, 1]
        wobble = 0.25 * ValueNoise(np.random.default_rng(0x3121), self.low, self.high, 1.0)(p)
        brow_top = float(lm[17:27, 1].max())
        width = float(lm[26, 0] - lm[17, 0]) / 2
        # Between the brows and the hairline, on the front of the head only (the scalp stays smooth).
        front = (p[:, 2] > float(lm[17:27, 2].min()) - 1.0).float()
        band = ((y > brow_top + 0.8) & (y < brow_top + 4.0)).float() * torch.exp(-0.5 * (x / width) ** 4) * front
        forehead = band * torch.cos(2 * math.pi * (y + wobble) / 1.1).clamp(min=0) ** 6

        crows = torch.zeros_like(x)
        for corner, side in ((lm[36], -1), (lm[45], 1)):
            offset = p - corner
            distance = offset[:, :2].norm(dim=-1)
            lateral = (side * offset[:, 0] > 0.2).float()
            fan = torch.cos(9 * torch.atan2(offset[:, 1], side * offset[:, 0]) + wobble).clamp(min=0) ** 6
            crows = crows + lateral * fan * torch.exp(-0.5 * ((distance - 1.2) / 0.6) ** 2)

        folds = torch.zeros_like(x)
        for wing, corner, side in ((lm[31], lm[48], -1), (lm[35], lm[54], 1)):
            start = wing + torch.tensor([side * 0.9, 0.2, 0.0])
            end = corner + torch.tensor([side * 0.6, -0.3, 0.0])
            d = segment_distance(p[:, :2], start[:2], end[:2])
            folds = folds + torch.exp(-0.5 * (d / 0.2) ** 2) * (p[:, 2] > float(end[2]) - 2.0).float()
        return 0.12 * forehead + 0.08 * crows + 0.14 * folds

    def _eye_geometry(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, S) radial distance of each eyeball texel from its eye's optical axis, as a share of the iris radius,
        and its angle around that axis. The axis runs along +z through the apex of the eye's iris shell (the eyes
        of the template do not look exactly straight ahead, so the sphere's centre would put the pupil off)."""
        neutral, atlas = self.model.neutral, self.atlas
        radial = torch.full((atlas.size, atlas.size), 9.0)
        angle = torch.zeros(atlas.size, atlas.size)
        eyes = ((EYEBALLS[0], IRIS_SHELLS[0][1]), (IRIS_SHELLS[0][1] + 1, EYEBALLS[1]))
        for (first, last), (iris_first, iris_last) in zip(eyes, IRIS_SHELLS):
            vertices = neutral[first : last + 1]
            iris = neutral[iris_first : iris_last + 1]
            apex = iris[iris[:, 2].argmax()]
            centre_z = float((vertices[:, 2].min() + vertices[:, 2].max()) / 2)
            eye_radius = float((vertices.max(0).values - vertices.min(0).values)[:2].max() / 2)
            texels = atlas.in_range((first, last))
            offset = atlas.texel_position - apex
            front = atlas.texel_position[..., 2] > centre_z
            r = offset[..., :2].norm(dim=-1) / (IRIS_RADIUS * eye_radius)
            radial = torch.where(texels & front, r, radial)
            angle = torch.where(texels, torch.atan2(offset[..., 1], offset[..., 0]), angle)
        return radial, angle

    def _eyes(self, iris_name: str, rng: np.random.Generator) -> torch.Tensor:
        """(E, 3) colour of the eyeball texels: radial iris fibres, a dark limbal ring, pupil, off-white sclera."""
        radial = self.eye_geometry[0][self.eyeball][:, None]
        angle = self.eye_geometry[1][self.eyeball]
        fibres = torch.from_numpy(rng.random(64, dtype=np.float32))
        streak = fibres[((angle + math.pi) / (2 * math.pi) * 64).long().clamp(0, 63)][:, None]
        iris = torch.tensor(IRIS_SRGB[iris_name]) * (0.75 + 0.5 * streak) * (1.15 - 0.3 * radial)
        limbus = torch.exp(-0.5 * ((radial - 1.0) / 0.08) ** 2)
        iris = iris * (1 - 0.6 * limbus)
        sclera = torch.tensor(SCLERA_SRGB) * (1 - 0.04 * (radial - 1).clamp(0, 2))
        sclera = torch.lerp(sclera, torch.tensor(SCLERA_SRGB) * 0.8, limbus * 0.3)
        colour = torch.where(radial < 1.0, iris, sclera)
        return torch.where(radial < PUPIL_RADIUS, torch.tensor([0.02, 0.02, 0.025]), colour)

    def _mouth(self, mouth: torch.Tensor, aging: float, noise) -> torch.Tensor:
        """(M, 3) colour of the mouth texels: teeth (yellower with age), gums and tongue, a socket darker deeper in."""
        p = self.atlas.texel_position.reshape(-1, 3)[mouth]
        teeth = self.teeth.reshape(-1)[mouth][:, None]
        gums = self.gums.reshape(-1)[mouth][:, None]
        depth = ((p[:, 2:] - float(self.landmarks[62, 2])) / 4 + 1).clamp(0.25, 1)  # darker deeper in
        tooth = torch.tensor(TEETH_SRGB) * torch.tensor([1.0, 1.0 - 0.05 * aging, 1.0 - 0.15 * aging])
        colour = torch.tensor(MOUTH_SRGB) * depth
        colour = torch.where(gums, torch.tensor(GUMS_SRGB) * depth.clamp(min=0.5), colour)
        return torch.where(teeth, tooth * (0.95 + 0.05 * noise[0.35](p)[:, None]), colour)


TEXTURERS: dict[str, type[Texturer]] = {"procedural": ProceduralTexturer}


def make_texturer(name: str, model: FaceModel, texture_size: int = 1024) -> Texturer:
    try:
        texturer_class = TEXTURERS[name]
    except KeyError:
        raise ValueError(f"unknown texturer {name!r}; known: {', '.join(sorted(TEXTURERS))}") from None
    return texturer_class(model, texture_size=texture_size)
