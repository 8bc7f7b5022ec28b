"""Rendering: cameras, the rasterizer (two backends, one `Fragments` result), and what shades fragments."""

from factory.render.camera import Camera, bounding_sphere, head_camera, head_sphere
from factory.render.raster import Fragments, rasterize

__all__ = ["Camera", "Fragments", "bounding_sphere", "head_camera", "head_sphere", "rasterize"]
