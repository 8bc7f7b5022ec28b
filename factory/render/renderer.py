"""The mesh renderer: a rasterizer and a shader composed, as pytorch3d's `MeshRenderer(rasterizer, shader)`.

    renderer = MeshRenderer(Rasterizer("auto"), Shader(model.part_names))
    view = renderer(meshes, camera, texture=texture, light=light, background=background)   # + terms=, hair= (shading.py)
    view.image        # (N, H, W, 3) sRGB in 0..1
    view.fragments    # what the rasterizer saw: segmentation, depth and landmark visibility are read from it
    view.pixels       # the covered pixels, shared with anything else drawn over the surface (heatmaps)

The two stages meet only at `Fragments`: the rasterizer knows no colours, the shader no triangles' screen
positions (it reads the fragments through `CoveredPixels`, their covered pixels packed flat). Either can be
swapped: a pytorch3d or plain-torch rasterizer, a different shader.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from factory.render.background import Background
from factory.render.camera import Camera
from factory.render.detail import SurfaceDetail
from factory.render.hair import HairLayer
from factory.render.lights import Light
from factory.render.mesh import Meshes
from factory.render.pixels import CoveredPixels
from factory.render.raster import Fragments, Rasterizer
from factory.render.shading import Shader, UVTexture, VertexTerms


class RenderedView(NamedTuple):
    """One camera's view of a batch of meshes."""

    fragments: Fragments
    pixels: CoveredPixels
    image: torch.Tensor  # (N, H, W, 3) sRGB in 0..1


class MeshRenderer:
    """Two stages: rasterize (meshes → Fragments), then shade (Fragments → image)."""

    def __init__(self, rasterizer: Rasterizer, shader: Shader):
        self.rasterizer = rasterizer
        self.shader = shader

    def __call__(self, meshes: Meshes, camera: Camera, *, texture: UVTexture, light: Light, background: Background,
                 terms: VertexTerms | None = None, hair: HairLayer | None = None,
                 detail: SurfaceDetail | None = None) -> RenderedView:
        fragments = self.rasterizer(meshes, camera)
        return self.shade(fragments, meshes, camera, texture=texture, light=light, background=background, terms=terms,
                          hair=hair, detail=detail)

    def shade(self, fragments: Fragments, meshes: Meshes, camera: Camera, *, texture: UVTexture, light: Light,
              background: Background, terms: VertexTerms | None = None, hair: HairLayer | None = None,
              detail: SurfaceDetail | None = None) -> RenderedView:
        pixels = CoveredPixels(fragments, meshes)
        image = self.shader(pixels, meshes, camera, texture=texture, light=light, background=background, terms=terms,
                            hair=hair, detail=detail)
        return RenderedView(fragments, pixels, image)
