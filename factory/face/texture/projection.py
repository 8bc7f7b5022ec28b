"""Back-projection: pictures of a mesh, taken by known cameras, turned into colours of its UV atlas.

    surface = TexelSurface.of(atlas)                                   # once per atlas: each texel's triangle point
    projection = project_views(surface, verts, [(camera, image), …])   # colour and weight per texel
    image, alpha = blend_with_fill(surface, projection, fill)          # unseen texels from `fill`, seams feathered

Each texel of the atlas shows one point of one triangle (its barycentrics in UV space). For a view, that point of
the posed mesh is projected into the picture; it is seen when the rasterizer's z-buffer (the view's `Fragments`)
holds no surface in front of it, and its colour is the picture's, bilinearly sampled there. Views are averaged,
each weighted by how squarely the surface faces its camera (cos^FACING_POWER of the angle between the normal and
the direction to the camera), so a grazing view, where the picture is stretched, counts little.

Blending: where the summed weight reaches `full_weight` the views alone decide the colour; below it the colour
fades into the fill, and the fade is pulled in from the edges of the seen region by a blur over the atlas (covered
texels only, so UV chart borders do not count as edges). Texels no view sees keep the fill's colour exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from factory.face.texture.atlas import UVAtlas
from factory.render.camera import Camera
from factory.render.lights import GAMMA
from factory.render.mesh import vertex_normals
from factory.render.raster import rasterize

FACING_POWER = 2.0  # weight = cos(angle to the camera) ** this
FULL_WEIGHT = 0.25  # summed weight at which the views alone decide a texel (one view at 60°)
FEATHER_TEXELS = 4  # half-width of the fade at the edges of the seen region, in texels of a 1024 atlas
# A texel is seen when it lies at most this far behind the visible surface: 0.1 cm plus two pixel footprints at its
# depth, which covers the depth change across a pixel on slanted skin at 64–1024 px.
DEPTH_SLACK_CM, DEPTH_SLACK_PIXELS = 0.1, 2.0


@dataclass(frozen=True)
class TexelSurface:
    """Where every covered texel of an atlas sits on the mesh: its triangle and barycentrics (template-only)."""

    atlas: UVAtlas
    texels: torch.Tensor  # (T,) flat indices of the covered texels
    face: torch.Tensor  # (T,) their triangle among the atlas's rendered faces
    bary: torch.Tensor  # (T, 3) barycentrics of the texel centre in that triangle's UV corners

    @classmethod
    def of(cls, atlas: UVAtlas) -> "TexelSurface":
        size = atlas.size
        texels = torch.nonzero(atlas.texel_face.reshape(-1) >= 0).squeeze(1)
        face = atlas.texel_face.reshape(-1)[texels]
        row, col = texels // size, texels % size
        uv = torch.stack([(col + 0.5) / size, 1 - (row + 0.5) / size], dim=-1)
        return cls(atlas=atlas, texels=texels, face=face, bary=barycentrics(uv, atlas.corner_uvs[face]))

    def points(self, verts: torch.Tensor) -> torch.Tensor:
        """(T, 3) the texels' points on a posed mesh (V, 3)."""
        return interpolate(verts[self.atlas.faces[self.face]], self.bary)


def barycentrics(points: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """(P, 3) barycentrics of 2D `points` (P, 2) in triangles `corners` (P, 3, 2), clamped into the triangle (a texel
    centre may sit just outside the triangle whose edge covers it)."""
    a, b, c = corners.unbind(1)
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    denominator = (d00 * d11 - d01 * d01).clamp(min=1e-20)
    beta = (d11 * d20 - d01 * d21) / denominator
    gamma = (d00 * d21 - d01 * d20) / denominator
    bary = torch.stack([1 - beta - gamma, beta, gamma], dim=-1).clamp(min=0)
    return bary / bary.sum(-1, keepdim=True).clamp(min=1e-12)


def interpolate(corner_values: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """(T, 3, C) values at the triangle corners → (T, C) at the barycentrics."""
    return (bary.unsqueeze(-1) * corner_values).sum(dim=1)


class Projection(NamedTuple):
    colour: torch.Tensor  # (S, S, 3) sRGB in 0..1: the weighted mean of the views that see each texel, 0 elsewhere
    weight: torch.Tensor  # (S, S) summed facing weight, 0 where no view sees the texel


def project_views(surface: TexelSurface, verts: torch.Tensor, views: Sequence[tuple[Camera, torch.Tensor]],
                  region: torch.Tensor | None = None, backend: str = "torch") -> Projection:
    """Project pictures (camera, (H, W, 3) sRGB image in 0..1) of the mesh `verts` (V, 3) into the atlas.

    `region` (S, S) bool limits the texels that take colour from the views (e.g. the skin); the rest keep weight 0."""
    verts = verts.float().cpu()
    faces = surface.atlas.faces
    points = surface.points(verts)
    normals = F.normalize(interpolate(vertex_normals(verts[None], faces)[0][faces[surface.face]], surface.bary), dim=-1)
    total = torch.zeros(len(points), 3)
    weight = torch.zeros(len(points))
    for camera, image in views:
        camera = camera.to("cpu")
        seen = seen_by(camera, points, rasterize(verts[None], faces, camera, backend=backend).zbuf[0, ..., 0])
        facing = (normals * F.normalize(camera.center - points, dim=-1)).sum(-1).clamp(min=0) ** FACING_POWER
        view_weight = facing * seen
        total += view_weight[:, None] * sample_image(image.float().cpu(), camera.project(points)[0])
        weight += view_weight
    if region is not None:
        weight = weight * region.reshape(-1)[surface.texels]
    size = surface.atlas.size
    colour = torch.zeros(size * size, 3)
    colour[surface.texels] = torch.where(weight[:, None] > 0, total / weight.clamp(min=1e-12)[:, None], 0.0)
    flat_weight = torch.zeros(size * size)
    flat_weight[surface.texels] = weight
    return Projection(colour.view(size, size, 3), flat_weight.view(size, size))


def seen_by(camera: Camera, points: torch.Tensor, zbuf: torch.Tensor) -> torch.Tensor:
    """(T,) 1.0 where a point lies inside the frame and no surface of the z-buffer (H, W) lies in front of it."""
    pixel, depth = camera.project(points)
    size = zbuf.shape[0]
    column, row = pixel[:, 0].round().long(), pixel[:, 1].round().long()
    inside = (column >= 0) & (column < size) & (row >= 0) & (row < size) & (depth > 0)
    surface = zbuf[row.clamp(0, size - 1), column.clamp(0, size - 1)]
    footprint = depth / camera.K[0, 0].to(depth)  # cm covered by one pixel at that depth
    slack = DEPTH_SLACK_CM + DEPTH_SLACK_PIXELS * footprint
    return (inside & (surface > 0) & (depth <= surface + slack)).float()


def sample_image(image: torch.Tensor, pixel: torch.Tensor) -> torch.Tensor:
    """(P, 3) bilinear samples of an (H, W, 3) image at (P, 2) pixel positions (pixel (0, 0) is the top-left centre)."""
    height, width = image.shape[:2]
    grid = torch.stack([pixel[:, 0] / (width - 1) * 2 - 1, pixel[:, 1] / (height - 1) * 2 - 1], dim=-1)
    sampled = F.grid_sample(image.permute(2, 0, 1)[None], grid.view(1, 1, -1, 2), mode="bilinear",
                            padding_mode="border", align_corners=True)
    return sampled[0, :, 0].T


def blend_with_fill(surface: TexelSurface, projection: Projection, fill: torch.Tensor,
                    full_weight: float = FULL_WEIGHT) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (S, S, 3), alpha (S, S)): the projected colour where the views see the texel well, fading into `fill`
    (S, S, 3) toward the edges of what they see; alpha 0 (the fill, exactly) where no view sees it."""
    covered = surface.atlas.texel_face >= 0
    alpha = (projection.weight / full_weight).clamp(0, 1)
    radius = max(1, round(FEATHER_TEXELS * surface.atlas.size / 1024))
    alpha = torch.minimum(alpha, blur_over(alpha, covered, radius)) * covered
    image = torch.lerp(fill, projection.colour, alpha[..., None])
    return image, alpha


def blur_over(values: torch.Tensor, covered: torch.Tensor, radius: int) -> torch.Tensor:
    """(S, S) box blur of `values` over the covered texels only (normalised convolution), so gutters between UV
    charts neither pull values down nor spread them."""
    kernel = 2 * radius + 1
    weights = covered.float()[None, None]
    summed = F.avg_pool2d((values * covered)[None, None], kernel, stride=1, padding=radius, count_include_pad=False)
    counted = F.avg_pool2d(weights, kernel, stride=1, padding=radius, count_include_pad=False)
    return (summed / counted.clamp(min=1e-6))[0, 0] * covered


def match_colour(fill: torch.Tensor, projection: Projection, region: torch.Tensor, confident: float = FULL_WEIGHT,
                 limits: tuple[float, float] = (0.5, 2.0)) -> tuple[torch.Tensor, list[float]]:
    """`fill` (S, S, 3) with its `region` texels scaled, per channel in linear light, so that where the views see the
    region well their mean colours agree: the seam between a generated face and the filled back of the head then
    shows no step in tone. Returns the fill and the gains (1 where too little is seen)."""
    seen = region & (projection.weight >= confident)
    if int(seen.sum()) < 16:
        return fill, [1.0, 1.0, 1.0]
    projected = (projection.colour[seen] ** GAMMA).mean(0)
    filled = (fill[seen] ** GAMMA).mean(0).clamp(min=1e-4)
    gain = (projected / filled).clamp(*limits)
    matched = ((fill ** GAMMA) * gain).clamp(0, 1) ** (1 / GAMMA)
    return torch.where(region[..., None], matched, fill), [round(float(g), 4) for g in gain]
