"""Shading: from the rasterizer's Fragments to colour. Texture lookup, smooth normals, Lambert + soft specular
under one coloured key light and ambient, a gradient background and edge antialiasing.

Works on the covered pixels only (a 512 px head covers about a third of the frame), in linear light: the texture
is sRGB, so it is linearised before the light is applied and encoded back after.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from factory.plan import Background, Light
from factory.render.raster import Fragments

# Specular strength and Blinn-Phong exponent per part id (parts as in FaceModel.part_names): skin has a broad
# soft sheen, lips a little more, the wet eye a small sharp highlight, the mouth's inside almost none.
SPECULAR_BY_PART = {"skin": (0.10, 16.0), "brows": (0.04, 8.0), "eyes": (0.6, 120.0), "lips": (0.16, 24.0),
                    "mouth_interior": (0.05, 16.0), "lashes": (0.02, 8.0), "eye_surface": (0.6, 120.0)}
GAMMA = 2.2


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(N, V, 3) unit normals: the area-weighted sum of the normals of the triangles around each vertex."""
    corners = verts[:, faces]  # (N, F, 3, 3)
    face_normals = torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals.index_add_(1, faces[:, k], face_normals)
    return F.normalize(normals, dim=-1, eps=1e-12)


class CoveredPixels:
    """The covered pixels of a batch of Fragments, flattened: where they are, which triangle, which barycentrics."""

    def __init__(self, fragments: Fragments):
        pix_to_face = fragments.pix_to_face[..., 0]  # (N, H, W)
        self.shape = pix_to_face.shape
        self.mask = pix_to_face >= 0
        self.batch, self.rows, self.cols = torch.nonzero(self.mask, as_tuple=True)
        self.face = pix_to_face[self.mask]  # (P,)
        self.bary = fragments.bary_coords[..., 0, :][self.mask]  # (P, 3)

    def interpolate_vertex(self, values: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """(N, V, C) per-vertex values → (P, C) at the covered pixels."""
        corner_vertices = faces[self.face]  # (P, 3)
        corner_values = values[self.batch[:, None], corner_vertices]  # (P, 3, C)
        return (self.bary[..., None] * corner_values).sum(dim=1)

    def interpolate_corner(self, values: torch.Tensor) -> torch.Tensor:
        """(F, 3, C) per-triangle-corner values (UVs) → (P, C)."""
        return (self.bary[..., None] * values[self.face]).sum(dim=1)

    def scatter(self, values: torch.Tensor, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(P, C) → (N, H, W, C) images, `fill` elsewhere."""
        image = torch.empty(*self.shape, values.shape[-1], dtype=values.dtype)
        image[...] = torch.as_tensor(fill, dtype=values.dtype)
        image[self.mask] = values
        return image


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a (S, S, 3) texture (row 0 = v 1) at (P, 2) UVs → (P, 3)."""
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], dim=-1).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(texture.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[0, :, 0].T


def kelvin_to_rgb(kelvin: float) -> torch.Tensor:
    """Linear RGB of a black body at `kelvin`, scaled to unit luminance (Tanner Helland's fit of the CIE table)."""
    t = kelvin / 100.0
    red = 1.0 if t <= 66 else min(1.0, 1.292936186 * (t - 60) ** -0.1332047592)
    green = 0.390081579 * math.log(t) - 0.631841444 if t <= 66 else 1.129890861 * (t - 60) ** -0.0755148492
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.543206789 * math.log(t - 10) - 1.196254089)
    srgb = torch.tensor([red, min(max(green, 0.0), 1.0), min(max(blue, 0.0), 1.0)])
    linear = srgb ** GAMMA
    return linear / (linear @ torch.tensor([0.2126, 0.7152, 0.0722]))


def light_direction(light: Light) -> torch.Tensor:
    """World-space unit vector toward the light: azimuth 0 in front of the face (+z), positive toward the face's
    left (+x), elevation above the horizon (+y)."""
    azimuth, elevation = math.radians(light.azimuth), math.radians(light.elevation)
    return torch.tensor([math.sin(azimuth) * math.cos(elevation), math.sin(elevation), math.cos(azimuth) * math.cos(elevation)])


def background_image(background: Background, size: int) -> torch.Tensor:
    """(H, W, 3) sRGB vertical gradient from `top` to `bottom`."""
    blend = torch.linspace(0, 1, size)[:, None, None]
    top, bottom = torch.tensor(background.top), torch.tensor(background.bottom)
    return (top + blend * (bottom - top)).expand(size, size, 3)


def shade(
    pixels: CoveredPixels,
    verts: torch.Tensor,
    normals: torch.Tensor,
    faces: torch.Tensor,
    corner_uvs: torch.Tensor,
    face_part: torch.Tensor,
    part_names: tuple[str, ...],
    texture: torch.Tensor,
    light: Light,
    eye: torch.Tensor,
) -> torch.Tensor:
    """(P, 3) sRGB colour of each covered pixel. `eye` (3,) is the camera centre in world space."""
    albedo = sample_texture(texture, pixels.interpolate_corner(corner_uvs)) ** GAMMA
    normal = F.normalize(pixels.interpolate_vertex(normals, faces), dim=-1)
    position = pixels.interpolate_vertex(verts, faces)
    view = F.normalize(eye - position, dim=-1)
    # Seen from behind (inside of the lips, mouth socket), a surface is lit as if it faced the camera.
    normal = torch.where((normal * view).sum(-1, keepdim=True) < 0, -normal, normal)

    to_light = light_direction(light)
    light_rgb = kelvin_to_rgb(light.color_temperature) * light.intensity
    lambert = (normal @ to_light).clamp(min=0)[:, None]
    diffuse = albedo * (light.ambient + (1 - light.ambient) * lambert * light_rgb)

    strength, exponent = specular_table(part_names)
    part = face_part[pixels.face]
    half = F.normalize(view + to_light, dim=-1)
    highlight = (normal * half).sum(-1).clamp(min=0) ** exponent[part] * strength[part]
    specular = (highlight * (lambert[:, 0] > 0))[:, None] * light_rgb
    return (diffuse + specular).clamp(0, 1) ** (1 / GAMMA)


def specular_table(part_names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    strength = torch.tensor([SPECULAR_BY_PART.get(name, (0.0, 1.0))[0] for name in part_names])
    exponent = torch.tensor([SPECULAR_BY_PART.get(name, (0.0, 1.0))[1] for name in part_names])
    return strength, exponent


def antialias_edges(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Soften the silhouette: pixels whose 4-neighbourhood is part face, part background get the 3×3 mean.
    (N, H, W, 3) images and (N, H, W) masks. Costs a few ms at 512 px where 2× supersampling would cost 4× the
    raster and shading; see bench/RESULTS.md."""
    covered = mask[:, None].float()
    neighbours = F.avg_pool2d(F.pad(covered, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    edge = (neighbours > 0) & (neighbours < 1)
    channels = image.permute(0, 3, 1, 2)
    smoothed = F.avg_pool2d(F.pad(channels, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return torch.where(edge, smoothed, channels).permute(0, 2, 3, 1)
