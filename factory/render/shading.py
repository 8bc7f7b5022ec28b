"""Shading: from the covered pixels of a view to its image. Texture lookup, smooth normals (with the surface detail
of factory/render/detail.py, creases and lid shadows, when given), Lambert + soft specular under one coloured key
light and ambient, composited over the background with antialiased silhouette edges.

    shader = Shader(model.part_names)                      # per-part specular, fixed for the renderer's life
    image = shader(pixels, meshes, camera, texture=UVTexture.from_srgb(image), light=light, background=background)

Works in linear light on the covered pixels only: the texture is sRGB, so it is linearised once per identity
(`UVTexture.from_srgb`) and the shaded colour is encoded back to sRGB before it meets the (sRGB) background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factory.render.background import Background
from factory.render.camera import Camera
from factory.render.detail import SurfaceDetail
from factory.render.lights import GAMMA, Light
from factory.render.mesh import Meshes
from factory.render.pixels import CoveredPixels, sample_texture

# Specular strength and Blinn-Phong exponent per part name (parts as in FaceModel.part_names): skin has a broad
# soft sheen, the wet eye a small sharp highlight, the mouth's inside almost none. Brows and lips share the skin's:
# their part labels follow mesh triangles, and a different sheen would draw those jagged borders on the face.
SKIN_SPECULAR = (0.10, 16.0)
SPECULAR_BY_PART = {"skin": SKIN_SPECULAR, "brows": SKIN_SPECULAR, "lips": SKIN_SPECULAR, "eyes": (0.6, 120.0),
                    "mouth_interior": (0.05, 16.0), "lashes": (0.02, 8.0), "eye_surface": (0.6, 120.0)}


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


class Shader:
    """Holds what stays fixed over a renderer's life (the specular table per part id); each call shades one view."""

    def __init__(self, part_names: Sequence[str]):
        self.specular_strength, self.specular_exponent = specular_table(part_names)

    def __call__(self, pixels: CoveredPixels, meshes: Meshes, camera: Camera, *, texture: UVTexture, light: Light,
                 background: Background, detail: SurfaceDetail | None = None) -> torch.Tensor:
        """(N, H, W, 3) sRGB images in 0..1: the shaded meshes over the background, silhouette antialiased."""
        colour = self.shade(pixels, meshes, camera, texture, light, detail)
        image = pixels.scatter(to_srgb(colour), fill=background.image(pixels.shape[1]).to(colour.device))
        return antialias_edges(image, pixels.mask)

    def shade(self, pixels: CoveredPixels, meshes: Meshes, camera: Camera, texture: UVTexture, light: Light,
              detail: SurfaceDetail | None = None) -> torch.Tensor:
        """(P, 3) linear-light colour of each covered pixel."""
        uv = pixels.interpolate_corner(meshes.corner_uvs)
        albedo = texture.sample(uv)
        normal = F.normalize(pixels.interpolate_vertex(meshes.vertex_normals), dim=-1)
        if detail is not None:  # creases and lid shadows (factory/render/detail.py)
            albedo, normal = detail.apply(pixels, uv, albedo, normal)
        view = pixels.view_directions(camera)
        # Seen from behind (inside of the lips, mouth socket), a surface is lit as if it faced the camera.
        normal = torch.where((normal * view).sum(-1, keepdim=True) < 0, -normal, normal)

        device = normal.device
        to_light, light_rgb = light.direction.to(device), light.colour.to(device)
        lambert = (normal @ to_light).clamp(min=0)[:, None]
        diffuse = albedo * (light.ambient + (1 - light.ambient) * lambert * light_rgb)

        part = meshes.face_part.index_select(0, pixels.face)
        strength, exponent = self.specular_strength.to(device), self.specular_exponent.to(device)
        half = F.normalize(view + to_light, dim=-1)
        highlight = (normal * half).sum(-1).clamp(min=0) ** exponent[part] * strength[part]
        specular = (highlight * (lambert[:, 0] > 0))[:, None] * light_rgb
        return diffuse + specular


def specular_table(part_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(K,) specular strength and (K,) exponent per part id; parts not in SPECULAR_BY_PART get none."""
    strength = torch.tensor([SPECULAR_BY_PART.get(name, (0.0, 1.0))[0] for name in part_names])
    exponent = torch.tensor([SPECULAR_BY_PART.get(name, (0.0, 1.0))[1] for name in part_names])
    return strength, exponent


def to_srgb(linear: torch.Tensor) -> torch.Tensor:
    return linear.clamp(0, 1) ** (1 / GAMMA)


def antialias_edges(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Soften the silhouette: pixels with both face and background among their 4 neighbours get the mean of their
    3×3 block. (N, H, W, C) images, (N, H, W) masks. Only the edge pixels (about 1 % at 512 px) are touched, so it
    costs a few ms where 2× supersampling would cost 4× the raster and shading; see bench/RESULTS.md."""
    across = mask[:, :, 1:] != mask[:, :, :-1]  # a change between horizontal neighbours
    down = mask[:, 1:, :] != mask[:, :-1, :]
    edge = torch.zeros_like(mask)
    edge[:, :, 1:] |= across
    edge[:, :, :-1] |= across
    edge[:, 1:, :] |= down
    edge[:, :-1, :] |= down
    n, row, col = torch.nonzero(edge, as_tuple=True)
    height, width = mask.shape[1:]
    block = sum(image[n, (row + dy).clamp(0, height - 1), (col + dx).clamp(0, width - 1)]
                for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    image = image.clone()
    image[n, row, col] = block
    return image
