"""Compiled CPU loops (numba) for the render's hottest steps, each computing exactly what a torch version does:
- the raster backend "numba" (factory/render/raster_numba.py): `draw_keys`, `resolve_keys` (raster_torch's
  triangle set-up, z-test and fragments);
- the covered pixels (factory/render/pixels.py): `pack_covered_pixels`, `blend_rows` (CoveredPixels' packing and
  its barycentric interpolation).
They round step for step as the tensor code does, so both give the same bits (tests hold each pair to it):
- torch's addcmul(b, a, x) runs as one fused multiply-add on CPUs that have one (its kernels are built that way):
  `fused` is a·x + b compiled with fast-math "contract", which lets LLVM fuse exactly that multiply and add (it
  fuses only where both carry the flag, so nothing else is contracted);
- every other operation rounds as the tensor operation does: float32 throughout (`np.float32` constants, never a
  Python float, which would widen to float64).
Plain loops over pixels and triangles cost here what the arithmetic costs; as tensor code on a CPU, most of the
time went to building, gathering and copying intermediate tensors. The raster's loops take a range (first, stop)
of meshes or pixels and write only that range's outputs: compiled.in_parts runs the ranges on several threads.
"""

from __future__ import annotations

import numba
import numpy as np

EMPTY_KEY = np.iinfo(np.int64).max  # raster_torch.EMPTY_KEY: no triangle at this pixel


@numba.njit(cache=True, fastmath={"contract"})
def fused(a, x, b):
    """a·x + b, rounded once."""
    return a * x + b


# Each triangle's set-up, one row per triangle so that its set-up is written and read in one place (rather than
# across raster_torch.Triangles' columns): PLANE (i, k) at column 3·i + k holds coefficient k (a, b, c) of plane i
# (the three barycentrics, then 1/z), INVERSE_DEPTH + i the 1/z of corner i; and the box: x, y of its origin, width,
# height.
SETUP_COLUMNS, INVERSE_DEPTH = 15, 12
BOX_COLUMNS = 4


@numba.njit(cache=True, nogil=True)
def set_up_triangle(screen, faces, triangle, size, near, min_area2, cull_backfaces, setup, box):
    """raster_torch.setup_triangles for triangle `triangle` (mesh · F + face) of screen (N, V, 3): fills its row of
    setup (N·F, SETUP_COLUMNS) and box (N·F, BOX_COLUMNS); False where it is dropped (no pixel centre, degenerate,
    (partly) behind the camera or, when culling, facing away). `near` and `min_area2` are raster_torch's NEAR and
    MIN_AREA2 as float32, as its comparisons take them."""
    num_faces = faces.shape[0]
    mesh, face = triangle // num_faces, triangle % num_faces
    corner0, corner1, corner2 = screen[mesh, faces[face, 0]], screen[mesh, faces[face, 1]], screen[mesh, faces[face, 2]]
    x0, y0, z0 = corner0[0], corner0[1], corner0[2]
    x1, y1, z1 = corner1[0], corner1[1], corner1[2]
    x2, y2, z2 = corner2[0], corner2[1], corner2[2]
    low_x = max(np.ceil(min(min(x0, x1), x2)), np.float32(0))
    low_y = max(np.ceil(min(min(y0, y1), y2)), np.float32(0))
    width = min(np.floor(max(max(x0, x1), x2)), np.float32(size - 1)) - low_x + np.float32(1)
    height = min(np.floor(max(max(y0, y1), y2)), np.float32(size - 1)) - low_y + np.float32(1)
    area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    if not (width >= 1 and height >= 1 and min(min(z0, z1), z2) > near and abs(area2) > min_area2):
        return False
    if cull_backfaces and not area2 < 0:
        return False
    out, corner = setup[triangle], box[triangle]
    corner[0], corner[1], corner[2], corner[3] = np.int64(low_x), np.int64(low_y), np.int64(width), np.int64(height)
    # Relative to the box, for precision (the integer origin, as a float32).
    x0, x1, x2 = x0 - low_x, x1 - low_x, x2 - low_x
    y0, y1, y2 = y0 - low_y, y1 - low_y, y2 - low_y
    inverse_area2 = np.float32(1.0) / area2
    depth0, depth1, depth2 = np.float32(1.0) / z0, np.float32(1.0) / z1, np.float32(1.0) / z2
    out[INVERSE_DEPTH], out[INVERSE_DEPTH + 1], out[INVERSE_DEPTH + 2] = depth0, depth1, depth2
    # Barycentric i is the edge function of the edge from corner i+1 to corner i+2, divided by the area.
    edge_plane(out, 0, x1, y1, x2, y2, inverse_area2)
    edge_plane(out, 3, x2, y2, x0, y0, inverse_area2)
    edge_plane(out, 6, x0, y0, x1, y1, inverse_area2)
    for k in range(3):  # the 1/z plane: Python's sum over the corners, which starts from 0
        out[9 + k] = ((np.float32(0) + out[k] * depth0) + out[3 + k] * depth1) + out[6 + k] * depth2
    return True


@numba.njit(cache=True, nogil=True)
def edge_plane(out, column, x_start, y_start, x_end, y_end, inverse_area2):
    out[column] = (y_start - y_end) * inverse_area2
    out[column + 1] = (x_end - x_start) * inverse_area2
    out[column + 2] = (x_start * y_end - x_end * y_start) * inverse_area2


@numba.njit(cache=True, nogil=True)
def draw_keys(screen, faces, size, near, min_area2, cull_backfaces, keys, setup, box, first_mesh, stop_mesh):
    """Set up every triangle of meshes first_mesh..stop_mesh-1 of screen (N, V, 3) (`set_up_triangle`) and lower
    `keys` (N·S·S,) to the key (depth bits << 32 | triangle) of the nearest triangle at each pixel of their images:
    raster_torch.rasterize_screen's z-test.

    The pixels tested are raster_torch's window over the triangle's box (each side the smallest power of two that
    holds it), cut to the box only where the window crosses the image's right or bottom edge: a window pixel just
    beyond the box can pass the edge tests by rounding, and the torch backend draws it, so this loop does too.
    Along a row, a pixel is inside where three tests pass, each monotone in dx (a·dx + row rounded once, `fused`):
    the inside pixels of a row are one run, so the row ends at the first pixel out after one in.
    """
    one = np.float32(1.0)
    depth = np.empty(1, dtype=np.float32)  # a float32 and its bits, as torch's `depth.view(torch.int32)`
    depth_bits = depth.view(np.int32)
    image_pixels = size * size
    for t in range(first_mesh * faces.shape[0], stop_mesh * faces.shape[0]):
        if not set_up_triangle(screen, faces, t, size, near, min_area2, cull_backfaces, setup, box):
            continue
        x0, y0, width, height = box[t, 0], box[t, 1], box[t, 2], box[t, 3]
        start = t // faces.shape[0] * image_pixels + y0 * size + x0
        window_width, window_height = 1, 1
        while window_width < width:
            window_width *= 2
        while window_height < height:
            window_height *= 2
        if x0 + window_width > size or y0 + window_height > size:  # raster_torch's `at_border`: cut to the box
            window_width, window_height = width, height
        plane = setup[t]
        a0, b0, c0, a1, b1, c1, a2, b2, c2 = plane[0], plane[1], plane[2], plane[3], plane[4], plane[5], plane[6], plane[7], plane[8]
        a3, b3, c3 = plane[9], plane[10], plane[11]
        for dy in range(window_height):
            fy = np.float32(dy)
            # raster_torch.window_candidates: addcmul(addcmul(c, b, dy), a, dx)
            row0, row1, row2, row3 = fused(b0, fy, c0), fused(b1, fy, c1), fused(b2, fy, c2), fused(b3, fy, c3)
            inside = False
            for dx in range(window_width):
                fx = np.float32(dx)
                if fused(a0, fx, row0) >= 0 and fused(a1, fx, row1) >= 0 and fused(a2, fx, row2) >= 0:
                    inside = True
                    depth[0] = one / fused(a3, fx, row3)
                    key = (np.int64(depth_bits[0]) << 32) | t
                    pixel = start + dy * size + dx
                    if key < keys[pixel]:
                        keys[pixel] = key
                elif inside:
                    break


@numba.njit(cache=True, nogil=True)
def resolve_keys(keys, setup, box, num_faces, size, pix_to_face, zbuf, bary, first, stop):
    """From the z-test's keys (N·S·S,), per pixel first..stop-1: the winner's face index within its mesh, its depth
    and its perspective-correct barycentrics (the end of raster_torch.rasterize_screen, and perspective_barycentrics,
    from the winner's set-up as draw_keys left it); -1 where empty."""
    depth_bits = np.empty(1, dtype=np.int32)
    depth = depth_bits.view(np.float32)
    weighted = np.empty(3, dtype=np.float32)
    for pixel in range(first, stop):
        key = keys[pixel]
        if key == EMPTY_KEY:
            pix_to_face[pixel], zbuf[pixel] = -1, np.float32(-1.0)
            bary[pixel, 0], bary[pixel, 1], bary[pixel, 2] = np.float32(-1.0), np.float32(-1.0), np.float32(-1.0)
            continue
        t = key & 0xFFFFFFFF
        depth_bits[0] = np.int32(key >> 32)
        pix_to_face[pixel], zbuf[pixel] = t % num_faces, depth[0]
        within = pixel % (size * size)
        dx = np.float32(within % size - box[t, 0])
        dy = np.float32(within // size - box[t, 1])
        plane = setup[t]
        for i in range(3):  # addcmul(c + b·dy, a, dx) · 1/z of corner i: b·dy and its sum are two roundings
            weighted[i] = fused(plane[3 * i], dx, plane[3 * i + 2] + plane[3 * i + 1] * dy) * plane[INVERSE_DEPTH + i]
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


@numba.njit(cache=True, nogil=True)
def expose(images, blur, keep, weight, add_noise, tile, offsets, level_scale, level_base, level_cap, out):
    """sensor.expose on (N, H, W, 3) images into `out`: the defocus (when `blur`: along x, then y, with weight w:
    v·keep (keep = 1 - 2w), then + w·left, + w·right, each fused as torch's add with alpha, an edge pixel counting
    itself as its missing neighbour), then (when `add_noise`) the tile's noise at each image's offset times a level from the
    pixel's mean ((r + g) + b) / 3, fused as addcmul, then clamped to 0..1."""
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    along_x = np.empty((height, width, 3), np.float32)
    for n in range(count):
        image = images[n]
        if blur:
            blur_line(image, along_x, keep, weight, True)
            blur_line(along_x, out[n], keep, weight, False)
        else:
            out[n] = image
        top, left = offsets[n, 0], offsets[n, 1]
        for row in range(height):
            for column in range(width):
                pixel = out[n, row, column]
                if add_noise:
                    level = ((pixel[0] + pixel[1]) + pixel[2]) / np.float32(3)
                    level = min(level * level_scale + level_base, level_cap)
                    for c in range(3):
                        pixel[c] = fused(tile[top + row, left + column, c], level, pixel[c])
                for c in range(3):
                    pixel[c] = min(max(pixel[c], np.float32(0)), np.float32(1))


@numba.njit(cache=True, nogil=True)
def blur_line(source, target, keep, weight, along_x):
    """One axis of sensor.defocus: target = source blurred along x (columns) or y (rows), (H, W, 3) each. Per pixel
    v·keep, then + w·(the previous neighbour), then + w·(the next one), each fused."""
    height, width = source.shape[0], source.shape[1]
    size = width if along_x else height
    for row in range(height):
        for column in range(width):
            i = column if along_x else row
            step_row, step_column = (0, 1) if along_x else (1, 0)
            # defocus adds the previous neighbour, then the next; an edge pixel's missing one is itself, added last
            first = (row - step_row, column - step_column) if i > 0 else (row + step_row, column + step_column)
            second = (row + step_row, column + step_column) if 0 < i < size - 1 else (row, column)
            for c in range(3):
                value = source[row, column, c] * keep
                value = fused(source[first[0], first[1], c], weight, value)
                target[row, column, c] = fused(source[second[0], second[1], c], weight, value)


@numba.njit(cache=True, nogil=True)
def antialias_edges(image, mask):
    """shading.antialias_edges in place on (N, H, W, C) `image`: every pixel with both face and background among its
    4 neighbours (by the (N, H, W) `mask`) gets the mean of its 3×3 block (edges clamped), summed from 0 row by row as
    Python's sum does, then divided by 9; every block is read before any is written."""
    count, height, width, channels = image.shape
    edges = []
    for n in range(count):
        for row in range(height):
            for column in range(width):
                inside = mask[n, row, column]
                if (column > 0 and mask[n, row, column - 1] != inside) or (column < width - 1 and mask[n, row, column + 1] != inside) \
                        or (row > 0 and mask[n, row - 1, column] != inside) or (row < height - 1 and mask[n, row + 1, column] != inside):
                    edges.append((n, row, column))
    blocks = np.empty((len(edges), channels), np.float32)
    for e in range(len(edges)):
        n, row, column = edges[e]
        for c in range(channels):
            total = np.float32(0)
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    total += image[n, min(max(row + dy, 0), height - 1), min(max(column + dx, 0), width - 1), c]
            blocks[e, c] = total / np.float32(9)
    for e in range(len(edges)):
        n, row, column = edges[e]
        for c in range(channels):
            image[n, row, column, c] = blocks[e, c]
