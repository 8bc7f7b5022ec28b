"""See-through overlays: thin geometry (eyelashes) blended over a rendered view by its coverage.

    overlay = Overlay(meshes, rgba)                     # meshes (N meshes, like the view's) and an RGBA texture
    image = draw_overlay(view, overlay, camera, light, rasterizer)

The mesh renderer keeps one surface per pixel, so a card of lashes drawn opaque hides the eye behind it (dark
goggles). An overlay is rasterized on its own; where it lies in front of the view's surface, its colour is blended
over the view's image by the texture's alpha (the share of the pixel its strands cover), in linear light. The
overlay is lit like the surface (ambient plus a two-sided Lambert key light: a strand has no outside).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from factory.render.camera import Camera
from factory.render.lights import GAMMA, Light
from factory.render.mesh import Meshes
from factory.render.pixels import CoveredPixels, sample_texture
from factory.render.raster import Fragments, Rasterizer
from factory.render.renderer import RenderedView
from factory.render.shading import to_srgb


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Overlay:
    meshes: Meshes  # one overlay mesh per mesh of the view it is drawn over
    rgba: torch.Tensor  # (S, S, 4): linear-light colour and coverage, row 0 = v 1


def draw_overlay(view: RenderedView, overlay: Overlay, camera: Camera, light: Light, rasterizer: Rasterizer) -> torch.Tensor:
    """(N, H, W, 3) sRGB: the view's image with the overlay blended over it where the overlay is nearer."""
    fragments = in_front(rasterizer(overlay.meshes, camera), view.fragments)
    pixels = CoveredPixels(fragments, overlay.meshes)
    if pixels.flat_index.numel() == 0:
        return view.image
    rgba = sample_texture(overlay.rgba, pixels.interpolate_corner(overlay.meshes.corner_uvs))
    normal = torch.nn.functional.normalize(pixels.interpolate_vertex(overlay.meshes.vertex_normals), dim=-1)
    lambert = (normal @ light.direction.to(normal)).abs()[:, None]
    colour = rgba[:, :3] * (light.ambient + (1 - light.ambient) * lambert * light.colour.to(normal))
    image = view.image.clone()
    flat = image.view(-1, 3)
    below = flat.index_select(0, pixels.flat_index).clamp(0, 1) ** GAMMA
    blended = torch.lerp(below, colour, rgba[:, 3:].clamp(0, 1))
    flat.index_copy_(0, pixels.flat_index, to_srgb(blended))
    return image


def in_front(overlay: Fragments, surface: Fragments) -> Fragments:
    """The overlay's fragments with those behind the surface's (or on empty overlay pixels) emptied."""
    face = overlay.pix_to_face
    hidden = (surface.pix_to_face >= 0) & (overlay.zbuf > surface.zbuf)
    return Fragments(torch.where(hidden, -1, face), overlay.zbuf, overlay.bary_coords)
