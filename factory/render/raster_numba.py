"""The torch rasterizer with its z-test and its fragments computed by compiled loops (numba): the same fragments,
bit for bit, several times faster on a CPU.

`raster_torch` is vectorised: it evaluates every triangle's edge functions over a window of candidate pixels as
tensors, then keeps the nearest with `scatter_reduce`. On a CPU most of that time goes to building and gathering
candidate tensors, not to arithmetic. This backend runs the same steps as two plain loops
(factory/render/loops.py): each triangle's set-up and z-test over its pixels, then the winners' depth and
barycentrics per pixel. They compute the same float32 planes with the same roundings and test the same pixels, so
the fragments are those of the torch backend (tests/test_raster.py holds it to that). CPU only; numba compiles the
loops once per machine (`cache=True`). With several torch threads, the meshes and then the pixels are split over
them (compiled.in_parts).
"""

from __future__ import annotations

import numpy as np
import torch

from factory.render import compiled, raster_torch

NAME = "numba"  # the backend's name in RenderConfig.backend and meta.json


def available() -> bool:
    return compiled.available()


def rasterize_screen(screen: torch.Tensor, faces: torch.Tensor, image_size: int, cull_backfaces: bool):
    """screen (N, V, 3): pixel x, pixel y, depth z; faces (F, 3) → pix_to_face, zbuf (N, S, S), bary (N, S, S, 3)."""
    if screen.device.type != "cpu":
        raise ValueError(f"the numba rasterizer runs on the CPU; got tensors on {screen.device} (use backend 'auto' or 'torch')")
    batch, num_faces, size = screen.shape[0], faces.shape[0], image_size
    raster_torch.check_size(size, batch * num_faces)
    loops = compiled.loops()  # imports numba: only when this backend runs
    triangles, pixels = batch * num_faces, batch * size * size
    screen, faces = screen.float().contiguous().numpy(), faces.contiguous().numpy()
    near, min_area2 = np.float32(raster_torch.NEAR), np.float32(raster_torch.MIN_AREA2)
    # Per triangle, its set-up (loops.SETUP_COLUMNS: raster_torch.Triangles' planes and inverse depths, one row per
    # triangle) and box; then per pixel, the z-test's key and the fragments.
    setup = np.empty((triangles, loops.SETUP_COLUMNS), np.float32)
    box = np.empty((triangles, loops.BOX_COLUMNS), np.int64)
    keys = np.full(pixels, raster_torch.EMPTY_KEY, np.int64)
    pix_to_face, zbuf, bary = np.empty(pixels, np.int64), np.empty(pixels, np.float32), np.empty((pixels, 3), np.float32)
    # The meshes, then the pixels, in parts on torch's threads (each part writes its own meshes' or pixels' outputs).
    compiled.in_parts(lambda first, stop: loops.draw_keys(screen, faces, size, near, min_area2, cull_backfaces, keys, setup, box,
                                                          first, stop), batch)
    compiled.in_parts(lambda first, stop: loops.resolve_keys(keys, setup, box, num_faces, size, pix_to_face, zbuf, bary,
                                                             first, stop), pixels)
    shape = (batch, size, size)
    return torch.from_numpy(pix_to_face).view(shape), torch.from_numpy(zbuf).view(shape), torch.from_numpy(bary).view(*shape, 3)
