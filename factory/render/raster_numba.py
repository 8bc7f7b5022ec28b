"""The torch rasterizer with its z-test and its fragments computed by compiled loops (numba): the same fragments,
bit for bit, several times faster on a CPU.

`raster_torch` is vectorised: it evaluates every triangle's edge functions over a window of candidate pixels as
tensors, then keeps the nearest with `scatter_reduce`. On a CPU most of that time goes to building and gathering
candidate tensors, not to arithmetic. This backend sets the triangles up with the same code
(`raster_torch.screen_triangles`), then runs two plain loops (factory/render/loops.py): the z-test over
each triangle's pixels, and the winners' depth and barycentrics per pixel. They evaluate the same float32 planes
with the same roundings over the same pixels, so the fragments are those of the torch backend
(tests/test_raster.py holds it to that). CPU only; numba compiles the loops once per machine (`cache=True`).
"""

from __future__ import annotations

import torch

from factory.render import compiled, raster_torch

NAME = "numba"  # the backend's name in RenderConfig.backend and meta.json


def available() -> bool:
    return compiled.available()


def rasterize_screen(screen: torch.Tensor, faces: torch.Tensor, image_size: int, cull_backfaces: bool):
    """screen (N, V, 3): pixel x, pixel y, depth z; faces (F, 3) → pix_to_face, zbuf (N, S, S), bary (N, S, S, 3)."""
    from factory.render import loops  # imports numba: only when this backend runs

    if screen.device.type != "cpu":
        raise ValueError(f"the numba rasterizer runs on the CPU; got tensors on {screen.device} (use backend 'auto' or 'torch')")
    batch, num_faces, size = screen.shape[0], faces.shape[0], image_size
    triangles, _, first_pixel = raster_torch.screen_triangles(screen, faces, size, cull_backfaces)
    pixels = batch * size * size
    keys = torch.full((pixels,), raster_torch.EMPTY_KEY, dtype=torch.int64)
    pix_to_face = torch.empty(pixels, dtype=torch.int64)
    zbuf = torch.empty(pixels, dtype=torch.float32)
    bary = torch.empty(pixels, 3, dtype=torch.float32)
    # The loops read and write numpy views of these tensors' memory.
    ids, planes = triangles.ids.numpy(), triangles.planes.numpy()
    loops.draw_keys(keys.numpy(), ids, first_pixel.numpy(), triangles.box_size.numpy(), planes, size)
    loops.resolve_keys(keys.numpy(), ids, triangles.origin.numpy(), planes, triangles.corner_inverse_depth.numpy(),
                              batch * num_faces, num_faces, size, pix_to_face.numpy(), zbuf.numpy(), bary.numpy())
    shape = (batch, size, size)
    return pix_to_face.view(shape), zbuf.view(shape), bary.view(*shape, 3)
