"""Rendering, knowing nothing of plans: meshes, cameras, a light and a background in, named layers out.

`mesh` (Meshes) → `raster` (Rasterizer, two backends, one `Fragments` result) → `pixels` (the covered pixels) →
`shading` (Shader, UVTexture, with `lights`, per-vertex `occlusion` and shadows, `hair` strands, and a `background`:
a gradient or a `room`); `renderer` (MeshRenderer) composes them; `sensor` adds a camera's defocus and noise. `layers`
and `heatmap` turn a rendered view into arrays.
"""

from factory.render.camera import Camera, Orbit, bounding_sphere, head_camera, head_sphere
from factory.render.mesh import Meshes
from factory.render.raster import Fragments, Rasterizer, rasterize
from factory.render.renderer import MeshRenderer, RenderedView

__all__ = ["Camera", "Fragments", "MeshRenderer", "Meshes", "Orbit", "Rasterizer", "RenderedView", "bounding_sphere",
           "head_camera", "head_sphere", "rasterize"]
