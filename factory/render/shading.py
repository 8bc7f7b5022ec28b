"""Shading: from the rasterizer's Fragments to colour. Texture lookup, smooth normals, Lambert + soft specular
under one coloured key light and ambient, a gradient background and edge antialiasing.

Works on the covered pixels only (a 512 px head covers about a third of the frame), in linear light: the texture
is sRGB, so it is linearised before the light is applied and encoded back after.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from factory.spec.plan import Background, Light
from factory.render.camera import Camera
from factory.render.raster import Fragments

# Specular strength and Blinn-Phong exponent per part id (parts as in FaceModel.part_names): skin has a broad
# soft sheen, the wet eye a small sharp highlight, the mouth's inside almost none. Brows and lips share the skin's:
# their part labels follow mesh triangles, and a different sheen would draw those jagged borders on the face.
SKIN_SPECULAR = (0.10, 16.0)
SPECULAR_BY_PART = {"skin": SKIN_SPECULAR, "brows": SKIN_SPECULAR, "lips": SKIN_SPECULAR, "eyes": (0.6, 120.0),
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
    """The covered pixels of a batch of Fragments, flattened: where they are, which triangle, which barycentrics.
    Attributes are interpolated at these pixels only, corner by corner (three gathers and two fused multiply-adds),
    which is several times faster than gathering (P, 3, C) blocks and summing them."""

    def __init__(self, fragments: Fragments, faces: torch.Tensor, num_vertices: int):
        pix_to_face = fragments.pix_to_face[..., 0]  # (N, H, W)
        self.shape = pix_to_face.shape
        self.mask = pix_to_face >= 0
        self.flat_index = torch.nonzero(self.mask.reshape(-1)).squeeze(1)  # (P,) into N·H·W
        self.batch = self.flat_index // (self.shape[1] * self.shape[2])
        self.face = pix_to_face.reshape(-1).index_select(0, self.flat_index)  # (P,)
        self.bary = fragments.bary_coords.reshape(-1, 3).index_select(0, self.flat_index).T.contiguous()  # (3, P)
        # (3, P) row of each corner's vertex in a batch of per-vertex values flattened to (N·V, C)
        self.corner_rows = (faces.index_select(0, self.face) + (self.batch * num_vertices)[:, None]).T.contiguous()
        self.corner_faces = self.face * 3

    def _blend(self, corners: list[torch.Tensor]) -> torch.Tensor:
        out = corners[0] * self.bary[0, :, None]
        out.addcmul_(corners[1], self.bary[1, :, None])
        return out.addcmul_(corners[2], self.bary[2, :, None])

    def interpolate_vertex(self, values: torch.Tensor) -> torch.Tensor:
        """(N, V, C) per-vertex values → (P, C) at the covered pixels."""
        flat = values.reshape(-1, values.shape[-1])
        return self._blend([flat.index_select(0, rows) for rows in self.corner_rows])

    def interpolate_corner(self, values: torch.Tensor) -> torch.Tensor:
        """(F, 3, C) per-triangle-corner values (UVs) → (P, C)."""
        flat = values.reshape(-1, values.shape[-1])
        return self._blend([flat.index_select(0, self.corner_faces + k) for k in range(3)])

    def view_directions(self, camera: Camera) -> torch.Tensor:
        """(P, 3) world-space unit vectors from each covered pixel's surface point toward the camera: minus the ray
        through the pixel centre, which needs no interpolation."""
        width = self.shape[2]
        within = self.flat_index % (self.shape[1] * width)
        pixel = torch.stack([(within % width).float(), (within // width).float(), torch.ones_like(within, dtype=torch.float32)], dim=-1)
        K, R = camera.K.to(pixel), camera.R.to(pixel)
        rays = pixel @ torch.linalg.inv(K).T @ R  # camera → world: Rᵀ K⁻¹ p, written for rows
        return -F.normalize(rays, dim=-1)

    def scatter(self, values: torch.Tensor, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(P, C) → (N, H, W, C) images, `fill` (a value or an (H, W, C) image) elsewhere."""
        fill = torch.as_tensor(fill, dtype=values.dtype)
        image = fill.expand(*self.shape, values.shape[-1]).clone()
        image.view(-1, values.shape[-1]).index_copy_(0, self.flat_index, values)
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
    normals: torch.Tensor,
    corner_uvs: torch.Tensor,
    face_part: torch.Tensor,
    part_names: tuple[str, ...],
    linear_texture: torch.Tensor,
    light: Light,
    camera: Camera,
) -> torch.Tensor:
    """(P, 3) linear-light colour of each covered pixel. `linear_texture` is the texture already raised to GAMMA
    (once per identity, not once per pixel)."""
    albedo = sample_texture(linear_texture, pixels.interpolate_corner(corner_uvs))
    normal = F.normalize(pixels.interpolate_vertex(normals), dim=-1)
    view = pixels.view_directions(camera)
    # Seen from behind (inside of the lips, mouth socket), a surface is lit as if it faced the camera.
    normal = torch.where((normal * view).sum(-1, keepdim=True) < 0, -normal, normal)

    device = normal.device
    to_light = light_direction(light).to(device)
    light_rgb = (kelvin_to_rgb(light.color_temperature) * light.intensity).to(device)
    lambert = (normal @ to_light).clamp(min=0)[:, None]
    diffuse = albedo * (light.ambient + (1 - light.ambient) * lambert * light_rgb)

    strength, exponent = (table.to(device) for table in specular_table(part_names))
    part = face_part.index_select(0, pixels.face)
    half = F.normalize(view + to_light, dim=-1)
    highlight = (normal * half).sum(-1).clamp(min=0) ** exponent[part] * strength[part]
    specular = (highlight * (lambert[:, 0] > 0))[:, None] * light_rgb
    return diffuse + specular


def specular_table(part_names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
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
