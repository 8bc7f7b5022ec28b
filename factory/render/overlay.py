"""See-through overlays: thin geometry (eyelashes) blended over a rendered view by its coverage.

    overlay = Overlay(meshes, rgba)                     # meshes (N meshes, like the view's) and an RGBA texture
    image = draw_overlay(view, overlay, camera, light, rasterizer)      # the view's image, drawn over in place

The mesh renderer keeps one surface per pixel, so a card of lashes drawn opaque hides the eye behind it (dark
goggles). An overlay is rasterized on its own; where it lies in front of the view's surface, its colour is blended
over the view's image by the texture's alpha (the share of the pixel its strands cover), in linear light. The
overlay is lit like the surface (ambient, key and fill light, each two-sided: a strand has no outside).

An overlay covers a small part of the frame (both eyes' lashes: about a fifth of a frontal view), so it is
rasterized through a camera cropped to the square around its projected vertices: the per-pixel passes over
the whole frame (z-buffer, covered pixels) would otherwise cost more than the lashes themselves.
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
from factory.render.shading import diffuse_light, to_srgb


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Overlay:
    meshes: Meshes  # one overlay mesh per mesh of the view it is drawn over
    rgba: torch.Tensor  # (S, S, 4): linear-light colour and coverage, row 0 = v 1


def draw_overlay(view: RenderedView, overlay: Overlay, camera: Camera, light: Light, rasterizer: Rasterizer) -> torch.Tensor:
    """(N, H, W, 3) sRGB: the view's image with the overlay blended over it where the overlay is nearer. The
    image is drawn over in place and returned."""
    box = overlay_box(overlay.meshes.verts, camera)
    if box is None:
        return view.image
    top, left, size = box
    window = (slice(None), slice(top, top + size), slice(left, left + size))
    surface = Fragments(*(layer[window] for layer in view.fragments))
    fragments = in_front(rasterizer(overlay.meshes, crop_camera(camera, top, left, size)), surface)
    pixels = CoveredPixels(fragments, overlay.meshes)
    if pixels.flat_index.numel() == 0:
        return view.image
    rgba = sample_texture(overlay.rgba, pixels.interpolate_corner(overlay.meshes.corner_uvs))
    normal = torch.nn.functional.normalize(pixels.interpolate_vertex(overlay.meshes.vertex_normals), dim=-1)
    unoccluded = torch.ones_like(normal[:, 0])
    # Two-sided: each light reaches a strand from whichever side it comes.
    irradiance = torch.maximum(diffuse_light(normal, light, unoccluded, unoccluded, wrap=0.0),
                               diffuse_light(-normal, light, unoccluded, unoccluded, wrap=0.0))
    colour = rgba[:, :3] * irradiance
    patch = view.image[window].contiguous()
    flat = patch.view(-1, 3)
    below = flat.index_select(0, pixels.flat_index).clamp(0, 1) ** GAMMA
    flat.index_copy_(0, pixels.flat_index, to_srgb(torch.lerp(below, colour, rgba[:, 3:].clamp(0, 1))))
    view.image[window] = patch
    return view.image


def overlay_box(verts: torch.Tensor, camera: Camera) -> tuple[int, int, int] | None:
    """(top, left, size) of the square of the frame that holds every projected overlay vertex (with a pixel to
    spare), or None when none falls in the frame."""
    pixel, _ = camera.project(verts.reshape(-1, 3))
    frame = camera.image_size
    low = pixel.amin(dim=0).floor().clamp(0, frame - 1) - 1
    high = pixel.amax(dim=0).ceil().clamp(0, frame - 1) + 2
    if bool((high <= 1).any()) or bool((low >= frame - 2).any()):
        return None
    size = min(int((high - low).max()), frame)
    left, top = (min(max(int(v), 0), frame - size) for v in low)
    return top, left, size


def crop_camera(camera: Camera, top: int, left: int, size: int) -> Camera:
    """The same camera seeing only the `size` × `size` square of its frame at (top, left)."""
    K = camera.K.clone()
    K[0, 2] -= left
    K[1, 2] -= top
    return Camera(K=K, R=camera.R, t=camera.t, image_size=size)


def in_front(overlay: Fragments, surface: Fragments) -> Fragments:
    """The overlay's fragments with those behind the surface's emptied."""
    hidden = (surface.pix_to_face >= 0) & (overlay.zbuf > surface.zbuf)
    return Fragments(torch.where(hidden, -1, overlay.pix_to_face), overlay.zbuf, overlay.bary_coords)
