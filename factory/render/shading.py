"""Shading: from the covered pixels of a view to its image. Texture lookup, smooth normals (with the surface detail
of factory/render/detail.py, creases and lid shadows, when given), Lambert + soft specular under a coloured key
light (with its soft shadow), a fill light and a sky-weighted ambient share (with ambient occlusion), hair strands
where the surface carries hair, composited over the background with antialiased silhouette edges. Meshes that carry
per-vertex plain materials (`Meshes.albedo`: the bedside's occluders) show those instead of the texture there.

    shader = Shader(model.part_names)                      # per-part specular, fixed for the renderer's life
    image = shader(pixels, meshes, camera, texture=UVTexture.from_srgb(image), light=light, background=background,
                   terms=VertexTerms.pack(occlusion, key_visibility, shine), hair=hair_layer)

Works in linear light on the covered pixels only: the texture is sRGB, so it is linearised once per identity
(`UVTexture.from_srgb`) and the shaded colour is encoded back to sRGB before it meets the (sRGB) background.
Per-vertex terms (occlusion, shadow, shine) are computed once per identity or expression and interpolated here;
without them every vertex is unoccluded, fully lit and of its part's plain shine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factory.render import compiled
from factory.render.background import Background
from factory.render.camera import Camera
from factory.render.detail import SurfaceDetail
from factory.render.hair import HairLayer
from factory.render.lights import GAMMA, LUMA, Light, direction_toward
from factory.render.mesh import Meshes
from factory.render.pixels import CoveredPixels, sample_texture

# Specular strength and Blinn-Phong exponent per part name (parts as in FaceModel.part_names): skin has a broad
# soft sheen, the wet eye a small sharp highlight, the mouth's inside almost none. Brows and lips share the skin's:
# their part labels follow mesh triangles, and a different sheen would draw those jagged borders on the face.
# Regional differences of the skin (an oily T-zone, matte cheeks) come per vertex, as the `shine` term.
SKIN_SPECULAR = (0.10, 16.0)
# Hair shells get the skin's too: where their strands are sparse they show the skin under them, which must look the
# same as the skin beside them (the strands' own sheen is the hair layer's).
SPECULAR_BY_PART = {"skin": SKIN_SPECULAR, "brows": SKIN_SPECULAR, "lips": SKIN_SPECULAR, "eyes": (0.6, 120.0),
                    "mouth_interior": (0.05, 16.0), "lashes": (0.02, 8.0), "eye_surface": (0.6, 120.0),
                    "hair": SKIN_SPECULAR, "facial_hair": SKIN_SPECULAR,
                    "occluder": (0.12, 30.0)}  # masks, tubes, tape, a hand: each vertex's shine sets its own share
HAIR_WRAP = 0.3  # hair is lit a little past its terminator: light scatters through the strands
# Wet parts mirror the room as well as the key light: a second, softer catchlight from the environment's brightest
# direction besides the key (`environment_catchlight`), so an eye in the nose's shadow of a side key still shows one.
WET_PARTS, CATCHLIGHT_EXPONENT = ("eyes", "eye_surface"), 50.0
SKY_CATCHLIGHT = (0.0, 30.0)  # azimuth, elevation (deg) of the bright room above the camera, without a fill light


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class UVTexture:
    """A square texture looked up by the meshes' corner UVs, kept in linear light."""

    linear: torch.Tensor  # (S, S, 3), row 0 = v 1 (top of the image)

    @classmethod
    def from_srgb(cls, image: torch.Tensor) -> "UVTexture":
        """From an sRGB (S, S, 3) image in 0..1: raised to GAMMA once here, not once per pixel."""
        return cls(image ** GAMMA)

    def sample(self, uv: torch.Tensor) -> torch.Tensor:
        """Bilinear lookup at (P, 2) UVs → (P, 3)."""
        return sample_texture(self.linear, uv)


@dataclass(frozen=True, eq=False)
class VertexTerms:
    """Per-vertex factors of the light a surface gets, packed (N or 1, V, 3) for one interpolation."""

    packed: torch.Tensor  # [..., 0] ambient occlusion, [..., 1] key-light visibility, [..., 2] specular shine

    @classmethod
    def pack(cls, occlusion: torch.Tensor, key_visibility: torch.Tensor, shine: torch.Tensor) -> "VertexTerms":
        """occlusion (V,) or (N, V), key_visibility (N, V), shine (V,): broadcast to (N, V, 3)."""
        batch, vertices = key_visibility.shape
        terms = [t.to(key_visibility).expand(batch, vertices) for t in (occlusion, key_visibility, shine)]
        return cls(torch.stack(terms, dim=-1))


class Shader:
    """Holds what stays fixed over a renderer's life (the specular table per part id); each call shades one view."""

    def __init__(self, part_names: Sequence[str]):
        self.specular_strength, self.specular_exponent = specular_table(part_names)
        self.wet = torch.tensor([name in WET_PARTS for name in part_names])

    def __call__(self, pixels: CoveredPixels, meshes: Meshes, camera: Camera, *, texture: UVTexture, light: Light,
                 background: Background, terms: VertexTerms | None = None, hair: HairLayer | None = None,
                 detail: SurfaceDetail | None = None) -> torch.Tensor:
        """(N, H, W, 3) sRGB images in 0..1: the shaded meshes over the background, silhouette antialiased."""
        colour, opacity = self.shade_with_opacity(pixels, meshes, camera, texture, light, terms, hair, detail)
        fill = background.image(camera).to(colour.device)
        colour = to_srgb(colour)
        if opacity is not None:  # hair thinning out against the background at its silhouette
            behind = pixels.at_image_pixels(fill.reshape(-1, 3))
            colour = torch.lerp(behind, colour, opacity[:, None])
        return antialias_edges(pixels.scatter(colour, fill=fill), pixels.mask)

    def shade(self, pixels: CoveredPixels, meshes: Meshes, camera: Camera, texture: UVTexture, light: Light,
              terms: VertexTerms | None = None, hair: HairLayer | None = None,
              detail: SurfaceDetail | None = None) -> torch.Tensor:
        """(P, 3) linear-light colour of each covered pixel."""
        return self.shade_with_opacity(pixels, meshes, camera, texture, light, terms, hair, detail)[0]

    def shade_with_opacity(self, pixels: CoveredPixels, meshes: Meshes, camera: Camera, texture: UVTexture,
                           light: Light, terms: VertexTerms | None = None, hair: HairLayer | None = None,
                           detail: SurfaceDetail | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(P, 3) linear-light colour of each covered pixel, and (P,) its opacity over the background where that is
        not 1 (the fringes of hair), else None."""
        uv = pixels.interpolate_corner(meshes.corner_uvs)
        albedo = texture.sample(uv)
        normal, (occlusion, key_visibility, shine) = interpolate_normals_and_terms(pixels, meshes, terms)
        if meshes.albedo is not None:  # plain materials (occluders) over the texture, by their weight
            plain = pixels.interpolate_shared(meshes.albedo.to(albedo), torch.arange(len(albedo), device=albedo.device))
            albedo = torch.lerp(albedo, plain[:, :3], plain[:, 3:])
        if detail is not None:  # creases and lid shadows (factory/render/detail.py)
            albedo, normal = detail.apply(pixels, uv, albedo, normal)
        rays = pixels.image_rays(camera)
        view = pixels.at_image_pixels(rays)
        # Seen from behind (inside of the lips, mouth socket), a surface is lit as if it faced the camera. (Times ±1:
        # exact, and cheaper than a where over (P, 3).)
        normal = normal * torch.where((normal * view).sum(-1, keepdim=True) < 0, -1.0, 1.0)

        irradiance = diffuse_light(normal, light, occlusion, key_visibility, wrap=0.0)
        part = meshes.face_part.index_select(0, pixels.face)
        strength = self.specular_strength.to(normal.device).index_select(0, part) * shine
        exponent = self.specular_exponent.to(normal.device).index_select(0, part)
        key_direction = light.direction.to(normal)
        # The half vector depends on the pixel alone, not on the mesh: normalised once per image pixel, then gathered.
        half = pixels.at_image_pixels(F.normalize(rays + key_direction, dim=-1))
        # The key light's highlight; on skin the fill's (a broad source) is too faint to matter, on the wet eye the
        # room's shows as a second, softer catchlight (add_catchlight).
        glint = (normal * half).sum(-1).clamp(min=0) ** exponent * ((normal @ key_direction) > 0) * key_visibility
        colour = torch.addcmul(albedo * irradiance, (strength * glint)[:, None], light.colour.to(normal))
        colour = self.add_catchlight(colour, part, normal, view, light, occlusion)
        if hair is None:
            return colour, None
        return self.shade_hair(colour, pixels, meshes, camera, hair, normal, view, half, light, key_visibility, occlusion)

    def add_catchlight(self, colour: torch.Tensor, part: torch.Tensor, normal: torch.Tensor, view: torch.Tensor,
                       light: Light, occlusion: torch.Tensor) -> torch.Tensor:
        """`colour` (P, 3) with the environment's catchlight added on the wet parts' pixels: a broad source, so a
        wider, dimmer lobe than the key's, cut by the socket's occlusion but not by the key's shadow."""
        wet = torch.nonzero(self.wet.to(part.device).index_select(0, part)).squeeze(1)
        if len(wet) == 0:
            return colour
        direction, radiance = environment_catchlight(light)
        direction = direction.to(normal)
        n = normal.index_select(0, wet)
        half = F.normalize(view.index_select(0, wet) + direction, dim=-1)
        lobe = (n * half).sum(-1).clamp(min=0) ** CATCHLIGHT_EXPONENT * ((n @ direction) > 0)
        strength = self.specular_strength.to(n.device).index_select(0, part.index_select(0, wet))
        glint = (strength * lobe * occlusion.index_select(0, wet))[:, None] * radiance.to(n)
        return colour.index_add(0, wet, glint)

    def shade_hair(self, colour: torch.Tensor, pixels: CoveredPixels, meshes: Meshes, camera: Camera, hair: HairLayer,
                   normal: torch.Tensor, view: torch.Tensor, half: torch.Tensor, light: Light, key_visibility: torch.Tensor,
                   occlusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Blend hair strands over `colour` (P, 3) at the pixels of triangles that carry hair, in place; where hair
        meets the background at a grazing angle, the gaps between its strands let the background through (the
        opacity). `half`: the key light's half vectors."""
        where = torch.nonzero(hair.hairy_faces(meshes.faces).index_select(0, pixels.face)).squeeze(1)
        if len(where) == 0:
            return colour, None
        attributes = pixels.interpolate_shared(hair.attributes.to(colour), where)
        strands = hair.strands(attributes, pixel_footprint_cm(meshes, camera))
        n, v, lit = (values.index_select(0, where) for values in (normal, view, key_visibility))
        irradiance = diffuse_light(n, light, occlusion.index_select(0, where), lit, wrap=HAIR_WRAP)
        key_direction = light.direction.to(n)
        direct = ((n @ key_direction + HAIR_WRAP) / (1 + HAIR_WRAP)).clamp(min=0) * lit
        sheen = hair.sheen(strands.tangent, n, half.index_select(0, where)) * (direct * (0.25 + 1.5 * strands.shine))[:, None]
        lit_hair = torch.addcmul(strands.albedo * irradiance, sheen, light.colour.to(n))
        blended = torch.lerp(colour.index_select(0, where), lit_hair, strands.alpha[:, None])
        rim = ((0.55 - (n * v).sum(-1).abs()) / 0.45).clamp(0, 1)  # hair seen edge-on: its outline
        edge_on = torch.nonzero(rim > 0).squeeze(1)
        fringe = edge_on[near_background(pixels, where[edge_on])]
        colour.index_copy_(0, where, blended)  # in place: `colour` is the shader's own fresh tensor
        if len(fringe) == 0:
            return colour, None
        opacity = torch.ones_like(colour[:, 0])
        opacity[where[fringe]] = (1 - rim[fringe] * (1.3 - 1.8 * strands.brightness[fringe])).clamp(0, 1)
        return colour, opacity


def interpolate_normals_and_terms(pixels: CoveredPixels, meshes: Meshes, terms: VertexTerms | None
                                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(P, 3) unit normals and the (P,) occlusion, key-light visibility and shine at the covered pixels. With terms,
    all six channels are interpolated channel by channel (the terms are used as single channels; contiguous (P,)
    tensors are cheaper in every later step than strided columns)."""
    normals = meshes.vertex_normals
    if terms is None:
        normal = F.normalize(pixels.interpolate_vertex(normals), dim=-1)
        return normal, (torch.ones_like(normal[:, 0]),) * 3
    channels = pixels.interpolate_vertex_channels(torch.cat([normals, terms.packed.to(normals).expand_as(normals)], dim=-1))
    return F.normalize(torch.stack(channels[:3], dim=-1), dim=-1), tuple(channels[3:])


def environment_catchlight(light: Light) -> tuple[torch.Tensor, torch.Tensor]:
    """(3,) direction toward the brightest part of the environment besides the key, and (3,) its linear radiance as a
    wet surface mirrors it: the fill light's direction where there is one (a reflector, a lit wall), else the room
    above the camera (SKY_CATCHLIGHT); as bright as the room's light falling from there (the ambient share, brighter
    from above by `sky`) plus the fill's, in the fill's colour (white without one)."""
    fill_luma = float(light.fill.colour @ LUMA)
    if fill_luma > 0:
        direction, hue = light.fill.direction, light.fill.colour / fill_luma
    else:
        direction, hue = direction_toward(*SKY_CATCHLIGHT), torch.ones(3)
    level = light.ambient * (1 + light.sky * float(direction[1])) + (1 - light.ambient) * fill_luma
    return direction, hue * level


def diffuse_light(normal: torch.Tensor, light: Light, occlusion: torch.Tensor, key_visibility: torch.Tensor,
                  wrap: float) -> torch.Tensor:
    """(P, 3) light falling on surfaces with unit normals (P, 3): the sky-weighted ambient share times occlusion,
    the key light times its visibility and the fill times occlusion; `wrap` lets the direct light reach a little past
    the terminator (0: Lambert)."""
    key = ((normal @ light.direction.to(normal) + wrap) / (1 + wrap)).clamp(min=0) * key_visibility
    fill = ((normal @ light.fill.direction.to(normal) + wrap) / (1 + wrap)).clamp(min=0) * occlusion
    ambient = light.ambient * occlusion * (1 + light.sky * normal[:, 1])
    direct = torch.addcmul(key[:, None] * light.colour.to(normal), fill[:, None], light.fill.colour.to(normal))
    return torch.add(ambient[:, None], direct, alpha=1 - light.ambient)


NEAR_BACKGROUND_OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1), (0.7, 0.7), (-0.7, 0.7), (0.7, -0.7), (-0.7, -0.7))


def near_background(pixels: CoveredPixels, where: torch.Tensor) -> torch.Tensor:
    """(Q,) whether each covered pixel `where` has background within a few pixels (0.6 % of the image side) in one
    of eight directions: a handful of lookups per pixel, cheaper than dilating every mask."""
    count, height, width = pixels.shape
    radius = max(1, width // 170)
    flat = pixels.flat_index.index_select(0, where)
    image, within = flat // (height * width), flat % (height * width)
    row, column = within // width, within % width
    mask = pixels.mask.reshape(-1)
    near = torch.zeros_like(where, dtype=torch.bool)
    for dx, dy in NEAR_BACKGROUND_OFFSETS:
        r = (row + round(dy * radius)).clamp(0, height - 1)
        c = (column + round(dx * radius)).clamp(0, width - 1)
        near |= ~mask.index_select(0, (image * height + r) * width + c)
    return near


def pixel_footprint_cm(meshes: Meshes, camera: Camera) -> float:
    """About how many cm of surface one pixel spans at the meshes' distance: the strands' level of detail."""
    distance = float((meshes.verts[0].mean(dim=0) - camera.center.to(meshes.verts)).norm())
    return distance / float(camera.K[0, 0])


def specular_table(part_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(K,) specular strength and (K,) exponent per part id; parts not in SPECULAR_BY_PART get none."""
    strength = torch.tensor([SPECULAR_BY_PART.get(name, (0.0, 1.0))[0] for name in part_names])
    exponent = torch.tensor([SPECULAR_BY_PART.get(name, (0.0, 1.0))[1] for name in part_names])
    return strength, exponent


def to_srgb(linear: torch.Tensor) -> torch.Tensor:
    return linear.clamp(0, 1) ** (1 / GAMMA)


def antialias_edges(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Soften the silhouette, in place: pixels with both face and background among their 4 neighbours get the mean
    of their 3×3 block. (N, H, W, C) contiguous images, (N, H, W) masks. Only the edge pixels (about 1 % at 512 px)
    are touched, so it costs a few ms where 2× supersampling would cost 4× the raster and shading; see
    bench/RESULTS.md. On a CPU as a compiled loop (factory/render/loops.py), with the same results."""
    if compiled.runs_on(image):
        compiled.loops().antialias_edges(image.numpy(), mask.numpy())
        return image
    across = mask[:, :, 1:] != mask[:, :, :-1]  # a change between horizontal neighbours
    down = mask[:, 1:, :] != mask[:, :-1, :]
    edge = torch.zeros_like(mask)
    edge[:, :, 1:] |= across
    edge[:, :, :-1] |= across
    edge[:, 1:, :] |= down
    edge[:, :-1, :] |= down
    n, row, col = torch.nonzero(edge, as_tuple=True)
    height, width = mask.shape[1:]
    flat = image.view(-1, image.shape[-1])  # gathers by flat pixel index: much cheaper than indexing (n, row, col)
    block = sum(flat.index_select(0, (n * height + (row + dy).clamp(0, height - 1)) * width + (col + dx).clamp(0, width - 1))
                for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    flat.index_copy_(0, (n * height + row) * width + col, block)  # in place: every block was read above
    return image
