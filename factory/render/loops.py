"""Compiled CPU loops (numba) for the render's hottest steps, each computing exactly what a torch version does:
- the raster backend "numba" (factory/render/raster_numba.py): `draw_keys`, `resolve_keys` (raster_torch's
  z-test and fragments);
- the covered pixels (factory/render/pixels.py): `pack_covered_pixels`, `blend_rows` (CoveredPixels' packing and
  its barycentric interpolation).
They round step for step as the tensor code does, so both give the same bits (tests hold each pair to it):
- torch's addcmul(b, a, x) runs as one fused multiply-add on CPUs that have one (its kernels are built that way):
  `fused` is a·x + b compiled with fast-math "contract", which lets LLVM fuse exactly that multiply and add (it
  fuses only where both carry the flag, so nothing else is contracted);
- every other operation rounds as the tensor operation does: float32 throughout (`np.float32` constants, never a
  Python float, which would widen to float64).
Plain loops over pixels and triangles cost here what the arithmetic costs; as tensor code on a CPU, most of the
time went to building, gathering and copying intermediate tensors.
"""

from __future__ import annotations

import numba
import numpy as np

EMPTY_KEY = np.iinfo(np.int64).max  # raster_torch.EMPTY_KEY: no triangle at this pixel


@numba.njit(cache=True, fastmath={"contract"})
def fused(a, x, b):
    """a·x + b, rounded once."""
    return a * x + b


@numba.njit(cache=True, nogil=True)
def draw_keys(keys, ids, first_pixel, box_size, planes, size):
    """Lower `keys` (N·S·S,) to the key (depth bits << 32 | id) of the nearest triangle at each pixel.

    For triangle t: `planes[:, :, t]` (4, 3) holds its three barycentric edge planes and its 1/z plane over its
    box, `box_size[:, t]` the box's width and height, `first_pixel[t]` the box's top-left pixel. The pixels tested
    are raster_torch's window over the box (each side the smallest power of two that holds it), cut to the box only
    where the window crosses the image's right or bottom edge: a window pixel just beyond the box can pass the edge
    tests by rounding, and the torch backend draws it, so this loop does too.
    """
    one = np.float32(1.0)
    depth = np.empty(1, dtype=np.float32)  # a float32 and its bits, as torch's `depth.view(torch.int32)`
    depth_bits = depth.view(np.int32)
    for t in range(ids.shape[0]):
        width, height = box_size[0, t], box_size[1, t]
        start = first_pixel[t]
        within = start % (size * size)  # the pixel within its image
        x0, y0 = within % size, within // size
        window_width, window_height = 1, 1
        while window_width < width:
            window_width *= 2
        while window_height < height:
            window_height *= 2
        if x0 + window_width > size or y0 + window_height > size:  # raster_torch's `at_border`: cut to the box
            window_width, window_height = width, height
        a0, b0, c0 = planes[0, 0, t], planes[0, 1, t], planes[0, 2, t]
        a1, b1, c1 = planes[1, 0, t], planes[1, 1, t], planes[1, 2, t]
        a2, b2, c2 = planes[2, 0, t], planes[2, 1, t], planes[2, 2, t]
        a3, b3, c3 = planes[3, 0, t], planes[3, 1, t], planes[3, 2, t]
        for dy in range(window_height):
            fy = np.float32(dy)
            # raster_torch.window_candidates: addcmul(addcmul(c, b, dy), a, dx)
            row0, row1, row2, row3 = fused(b0, fy, c0), fused(b1, fy, c1), fused(b2, fy, c2), fused(b3, fy, c3)
            for dx in range(window_width):
                fx = np.float32(dx)
                if fused(a0, fx, row0) >= 0 and fused(a1, fx, row1) >= 0 and fused(a2, fx, row2) >= 0:
                    depth[0] = one / fused(a3, fx, row3)
                    key = (np.int64(depth_bits[0]) << 32) | ids[t]
                    pixel = start + dy * size + dx
                    if key < keys[pixel]:
                        keys[pixel] = key


@numba.njit(cache=True, nogil=True)
def resolve_keys(keys, ids, origin, planes, corner_inverse_depth, num_ids, num_faces, size, pix_to_face, zbuf, bary):
    """From the z-test's keys (N·S·S,), per pixel: the winner's face index within its mesh, its depth and its
    perspective-correct barycentrics (raster_torch.fragments_from_keys and perspective_barycentrics); -1 where
    empty."""
    row_of_id = np.full(num_ids, -1, dtype=np.int64)
    for row in range(ids.shape[0]):
        row_of_id[ids[row]] = row
    depth_bits = np.empty(1, dtype=np.int32)
    depth = depth_bits.view(np.float32)
    weighted = np.empty(3, dtype=np.float32)
    for pixel in range(keys.shape[0]):
        key = keys[pixel]
        if key == EMPTY_KEY:
            pix_to_face[pixel], zbuf[pixel] = -1, np.float32(-1.0)
            bary[pixel, 0], bary[pixel, 1], bary[pixel, 2] = np.float32(-1.0), np.float32(-1.0), np.float32(-1.0)
            continue
        face_id = key & 0xFFFFFFFF
        depth_bits[0] = np.int32(key >> 32)
        pix_to_face[pixel], zbuf[pixel] = face_id % num_faces, depth[0]
        row = row_of_id[face_id]
        within = pixel % (size * size)
        dx = np.float32(within % size - origin[0, row])
        dy = np.float32(within // size - origin[1, row])
        for i in range(3):  # addcmul(c + b·dy, a, dx) · 1/z of corner i: b·dy and its sum are two roundings
            weighted[i] = fused(planes[i, 0, row], dx, planes[i, 2, row] + planes[i, 1, row] * dy) * corner_inverse_depth[i, row]
        total = (weighted[0] + weighted[1]) + weighted[2]
        for i in range(3):
            bary[pixel, i] = weighted[i] / total


@numba.njit(cache=True, nogil=True)
def pack_covered_pixels(pix_to_face, bary, faces, num_vertices, image_pixels, flat_index, face, packed_bary, corner_rows):
    """The covered pixels of (N·H·W,) `pix_to_face` packed flat, in pixel order: each one's flat index, face, (3, P)
    barycentrics from (N·H·W, 3) `bary`, and (3, P) rows of its corners' vertices in the batch's (N·V) vertices."""
    covered = 0
    for pixel in range(pix_to_face.shape[0]):
        triangle = pix_to_face[pixel]
        if triangle < 0:
            continue
        flat_index[covered], face[covered] = pixel, triangle
        first_vertex = pixel // image_pixels * num_vertices
        for k in range(3):
            packed_bary[k, covered] = bary[pixel, k]
            corner_rows[k, covered] = faces[triangle, k] + first_vertex
        covered += 1


@numba.njit(cache=True, nogil=True)
def blend_rows(values, rows, bary, out):
    """out (C, P): per pixel p and channel c, Σ_k bary[k, p]·values[rows[k, p], c] for (M, C) `values`, rounded as
    CoveredPixels' torch code: v0·b0, then + v1·b1 and + v2·b2, each an addcmul (fused)."""
    for p in range(rows.shape[1]):
        row0, row1, row2 = rows[0, p], rows[1, p], rows[2, p]
        b0, b1, b2 = bary[0, p], bary[1, p], bary[2, p]
        for c in range(values.shape[1]):
            out[c, p] = fused(values[row2, c], b2, fused(values[row1, c], b1, values[row0, c] * b0))
