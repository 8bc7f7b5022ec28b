"""A vectorised triangle rasterizer in plain torch: one nearest face per pixel, no Python loop over faces.

Input is screen space: pixel coordinates (x right, y down, pixel centres on integers) and camera depth z.
The pipeline, each step over all triangles at once:

1. set up every triangle: the integer bounding box of the pixel centres it can cover, and its edge functions
   and inverse depth as planes over that box; drop triangles that cover no pixel centre, are degenerate, lie
   (partly) behind the camera or, when asked, face away from it;
2. draw the front-facing triangles (steps 3 and 4), then only those back-facing ones that are not hidden behind
   them (a hierarchical z-buffer test over each triangle's box; on a head more than eight in ten back faces are
   hidden). The result is exactly that of drawing everything: the z-test keeps the minimum, in any order, and
   a culled triangle provably loses it at every pixel;
3. enumerate candidate pixels: triangles are bucketed by bounding-box width and height, and each bucket is
   tested against one fixed window of pixel offsets (a (triangles, window) tensor); the boxes of a finely
   tessellated mesh are small (ICT head at 512 px: median 10 pixels), so windows stay small, and they test
   about 1.7× the pixels of the boxes themselves;
4. z-test: a candidate's key is (depth bits << 32 | face index), and `scatter_reduce(amin)` keeps the nearest
   triangle of each pixel (on equal depth the lower face index, so the result is deterministic);
5. barycentrics, perspective-correct, only for the winning triangle of each pixel.

Per-triangle values are stored structure-of-arrays, triangle index last: a bucket's values are then
contiguous slices, and gathers run on contiguous rows (on CPU both matter more than the arithmetic).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch

NAME = "torch"  # the backend's name in RenderConfig.backend and meta.json

NEAR = 1e-3  # triangles with a vertex nearer than this (camera units) are dropped, not clipped
MIN_AREA2 = 1e-12  # triangles whose twice-signed screen area is not above this (pixels²) are degenerate: dropped
# Window sides for bucketing: powers of two keep the number of buckets (each a handful of torch calls) small;
# finer steps (1.5×) test fewer pixels but measured no faster.
WINDOW_SIDES = tuple(2**k for k in range(13))  # 1 … 4096
MAX_CANDIDATES = 1 << 22  # candidates tested at once; bounds memory for big triangles
EMPTY_KEY = torch.iinfo(torch.int64).max


def rasterize_screen(screen: torch.Tensor, faces: torch.Tensor, image_size: int, cull_backfaces: bool):
    """screen (N, V, 3): pixel x, pixel y, depth z; faces (F, 3) → pix_to_face, zbuf (N, S, S), bary (N, S, S, 3)."""
    batch, num_faces, size = screen.shape[0], faces.shape[0], image_size
    check_size(size, batch * num_faces)
    # (xyz, corner, N·F): corners[0, 1, f] is the x of triangle f's corner 1.
    corners = screen.float().index_select(1, faces.reshape(-1)).reshape(batch * num_faces, 3, 3).permute(2, 1, 0).contiguous()
    triangles, front_facing = setup_triangles(corners, size, cull_backfaces)
    first_pixel = triangles.ids // num_faces * (size * size) + triangles.origin[1] * size + triangles.origin[0]

    # z-test: a candidate's key is (depth bits << 32 | triangle id); positive floats order like their bit patterns,
    # so the minimum key is the nearest triangle, and on equal depth the lower face index, as in pytorch3d.
    keys = torch.full((batch * size * size,), EMPTY_KEY, dtype=torch.int64, device=screen.device)
    # Two passes give the same keys as one (the minimum does not depend on the order), but the second draws only
    # what the first has not already hidden: the front-facing triangles go first, then the back-facing ones that
    # some pixel of their box could still show (hidden_by_keys).
    draw_triangles(keys, triangles, front_facing.nonzero().squeeze(1), first_pixel, size)
    back_facing = (~front_facing).nonzero().squeeze(1)
    visible = back_facing[~hidden_by_keys(keys, triangles, back_facing, num_faces, size)]
    draw_triangles(keys, triangles, visible, first_pixel, size)

    pixel = (keys != EMPTY_KEY).nonzero().squeeze(1)
    winner = keys.index_select(0, pixel)
    face_id = winner & 0xFFFFFFFF
    depth = (winner >> 32).to(torch.int32).view(torch.float32)
    row_of_id = torch.empty(batch * num_faces, dtype=torch.int64, device=screen.device)
    row_of_id.index_copy_(0, triangles.ids, torch.arange(len(triangles.ids), device=screen.device))
    bary = perspective_barycentrics(triangles, row_of_id.index_select(0, face_id), pixel % (size * size), size)

    pixels = batch * size * size
    pix_to_face = torch.full((pixels,), -1, dtype=torch.int64, device=screen.device).index_copy_(0, pixel, face_id % num_faces)
    zbuf = torch.full((pixels,), -1.0, device=screen.device).index_copy_(0, pixel, depth)
    bary_coords = torch.full((pixels, 3), -1.0, device=screen.device).index_copy_(0, pixel, bary)
    shape = (batch, size, size)
    return pix_to_face.view(shape), zbuf.view(shape), bary_coords.view(*shape, 3)


def check_size(size: int, triangles: int) -> None:
    """The image side and the triangles of one call must fit the keys: a window side and a 32-bit triangle id."""
    if size > WINDOW_SIDES[-1]:
        raise ValueError(f"image_size {size} is larger than the torch rasterizer supports ({WINDOW_SIDES[-1]})")
    if triangles >= 2**31:
        raise ValueError(f"{triangles} triangles (meshes × faces) are too many for one call; split the batch")


def draw_triangles(keys: torch.Tensor, triangles: "Triangles", rows: torch.Tensor, first_pixel: torch.Tensor, size: int) -> None:
    """Lower `keys` (N·S·S,) to the key of the nearest of the triangles `rows` at each pixel they cover."""
    subset = triangles.select(rows)
    order, buckets = sort_into_buckets(subset.origin, subset.box_size, size)
    subset, first_pixel = subset.select(order), first_pixel.index_select(0, rows.index_select(0, order))
    for bucket in buckets:
        step = max(1, MAX_CANDIDATES // (bucket.width * bucket.height))
        for chunk in range(bucket.start, bucket.stop, step):
            chunk_rows = slice(chunk, min(bucket.stop, chunk + step))
            pixel, depth, row = window_candidates(subset, chunk_rows, first_pixel[chunk_rows], bucket, size)
            key = (depth.view(torch.int32).to(torch.int64) << 32) | subset.ids.index_select(0, row)
            keys.scatter_reduce_(0, pixel, key, reduce="amin")


class Triangles(NamedTuple):
    """The kept triangles, set up for rasterization; the LAST dimension is the triangle.

    `planes[i]` for i < 3 holds (a, b, c) of screen barycentric i as a plane over the bounding box:
    w_i = a·dx + b·dy + c at pixel origin + (dx, dy); `planes[3]` is the plane of 1/z, which is linear in
    screen space, so the z-test needs one division per candidate that passes the edge tests.
    """

    ids: torch.Tensor  # (T,) index into the batch's flattened N·F triangles
    origin: torch.Tensor  # (2, T) int64 pixel x and y of the box's top-left pixel centre
    box_size: torch.Tensor  # (2, T) int64 box width and height in pixels, ≥ 1
    planes: torch.Tensor  # (4, 3, T)
    corner_inverse_depth: torch.Tensor  # (3, T) 1/z at the corners, for perspective correction

    def select(self, rows: torch.Tensor) -> "Triangles":
        """The triangles `rows` (T',), in that order."""
        return Triangles(self.ids.index_select(0, rows), self.origin.index_select(1, rows), self.box_size.index_select(1, rows),
                         self.planes.view(12, -1).index_select(1, rows).view(4, 3, -1),
                         self.corner_inverse_depth.index_select(1, rows))


def setup_triangles(corners: torch.Tensor, size: int, cull_backfaces: bool) -> tuple[Triangles, torch.Tensor]:
    """The triangles (corners: (xyz, corner, N·F)) that can cover a pixel centre, and (T,) whether each faces the
    camera (counter-clockwise on screen)."""
    x, y, z = corners
    # The box holds the pixel centres (integers) within the triangle's extent.
    low_x = torch.minimum(torch.minimum(x[0], x[1]), x[2]).ceil().clamp(min=0)
    low_y = torch.minimum(torch.minimum(y[0], y[1]), y[2]).ceil().clamp(min=0)
    width = torch.maximum(torch.maximum(x[0], x[1]), x[2]).floor().clamp(max=size - 1) - low_x + 1
    height = torch.maximum(torch.maximum(y[0], y[1]), y[2]).floor().clamp(max=size - 1) - low_y + 1
    # Twice the signed area; > 0 is clockwise on screen (y down).
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    keep = (width >= 1) & (height >= 1) & (torch.minimum(torch.minimum(z[0], z[1]), z[2]) > NEAR) & (area2.abs() > MIN_AREA2)
    if cull_backfaces:
        # Counter-clockwise as seen by the camera is front-facing, as in pytorch3d (y down flips the sign).
        keep &= area2 < 0
    ids = keep.nonzero().squeeze(1)
    origin = torch.stack([low_x, low_y]).index_select(1, ids).long()
    box_size = torch.stack([width, height]).index_select(1, ids).long()

    x = x.index_select(1, ids) - origin[0]  # (corner, T), relative to the box, for precision
    y = y.index_select(1, ids) - origin[1]
    area2 = area2.index_select(0, ids)
    inverse_area2 = 1.0 / area2
    corner_inverse_depth = 1.0 / z.index_select(1, ids)
    planes = torch.empty(4, 3, len(ids), device=corners.device)
    for i in range(3):
        # Barycentric i is the edge function of the edge from corner i+1 to corner i+2, divided by the area.
        start, end = (i + 1) % 3, (i + 2) % 3
        planes[i, 0] = (y[start] - y[end]) * inverse_area2
        planes[i, 1] = (x[end] - x[start]) * inverse_area2
        planes[i, 2] = (x[start] * y[end] - x[end] * y[start]) * inverse_area2
    planes[3] = sum(planes[i] * corner_inverse_depth[i] for i in range(3))
    return Triangles(ids, origin, box_size, planes, corner_inverse_depth), area2 < 0


def hidden_by_keys(keys: torch.Tensor, triangles: Triangles, rows: torch.Tensor, num_faces: int, size: int) -> torch.Tensor:
    """(R,) whether each triangle of `rows` lies behind what `keys` already holds at every pixel of its box, so
    it can win no pixel (hierarchical z-buffer occlusion culling).

    A pyramid of the keys' farthest depth per tile (2×2, 4×4, … pixels; an empty pixel is infinitely far) gives,
    for a box of side ≤ 2^k, the farthest depth over the ≤ 2×2 tiles of side 2^k that hold it. The triangle's
    nearest possible depth is bounded from its own 1/z plane over the box (the plane the z-test evaluates), with
    a margin for that evaluation's rounding, so a triangle called hidden would lose the z-test at every pixel:
    the keys come out exactly as if it had been drawn.
    """
    pyramid, level_start, level_side = farthest_depth_pyramid(keys, size)
    subset = triangles.select(rows)
    (x, y), (width, height) = subset.origin, subset.box_size
    level = torch.searchsorted(2 ** torch.arange(len(level_side), device=keys.device), torch.maximum(width, height))
    side = level_side.index_select(0, level)
    tile = level_start.index_select(0, level) + subset.ids // num_faces * side * side  # the image's first tile
    columns = x >> level, (x + width - 1) >> level
    tile_rows = y >> level, (y + height - 1) >> level
    corners = [pyramid.index_select(0, tile + row * side + column) for row in tile_rows for column in columns]
    farthest = torch.stack(corners).amax(0)

    a, b, c = subset.planes[3]  # 1/z = a·dx + b·dy + c over the box, dx in 0..width-1, dy in 0..height-1
    dx, dy = (width - 1).float(), (height - 1).float()
    most = c + a.clamp(min=0) * dx + b.clamp(min=0) * dy
    least = c + a.clamp(max=0) * dx + b.clamp(max=0) * dy
    rounding = 1e-5 * (c.abs() + a.abs() * dx + b.abs() * dy)  # far above float32's error of evaluating the plane
    # (1 + 1e-6): the rounding of the two divisions.
    return (least - rounding > 0) & (1.0 / (most + rounding) > farthest * (1 + 1e-6))


def farthest_depth_pyramid(keys: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The farthest depth per tile of the images' keys (N·S·S,): levels of tiles of side 1, 2, 4, … up to one tile
    per image, flattened into one tensor; with each level's start in it and its tiles per row."""
    depth = (keys >> 32).to(torch.int32).view(torch.float32)
    depth = torch.where(keys == EMPTY_KEY, torch.inf, depth).view(-1, 1, size, size)
    levels = [depth]
    while levels[-1].shape[-1] > 1:  # ceil_mode: a tile at the right or bottom edge holds what is left
        levels.append(torch.nn.functional.max_pool2d(levels[-1], 2, ceil_mode=True))
    counts = torch.tensor([level.numel() for level in levels], device=keys.device)
    sides = torch.tensor([level.shape[-1] for level in levels], device=keys.device)
    return torch.cat([level.reshape(-1) for level in levels]), counts.cumsum(0) - counts, sides


class Bucket(NamedTuple):
    """A run of triangles (start:stop in sorted order) tested against one window of pixel offsets."""

    start: int
    stop: int
    width: int
    height: int
    at_border: bool  # some window crosses the image's right or bottom edge, so it must be cut to the box


def sort_into_buckets(origin: torch.Tensor, box_size: torch.Tensor, size: int) -> tuple[torch.Tensor, list[Bucket]]:
    """Order triangles by the smallest window (from WINDOW_SIDES) their box fits, and by whether that window
    crosses the image border; return the order and the buckets (runs of equal windows in that order)."""
    sides = torch.tensor(WINDOW_SIDES, device=box_size.device)
    column, line = torch.searchsorted(sides, box_size)
    at_border = ((origin + sides[torch.stack([column, line])]) > size).any(0)
    bucket = (column * len(WINDOW_SIDES) + line) * 2 + at_border
    bucket, order = torch.sort(bucket, stable=True)
    values, counts = torch.unique_consecutive(bucket, return_counts=True)
    buckets, stop = [], 0
    for value, count in zip(values.tolist(), counts.tolist()):
        window, at_border = divmod(value, 2)
        width, height = WINDOW_SIDES[window // len(WINDOW_SIDES)], WINDOW_SIDES[window % len(WINDOW_SIDES)]
        buckets.append(Bucket(stop, stop + count, width, height, bool(at_border)))
        stop += count
    return order, buckets


@lru_cache(maxsize=256)
def window(width: int, height: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pixel offsets (dx, dy) of a width × height window as floats, and as flat offsets in a size² image."""
    offsets = torch.arange(width * height, device=device)
    dx, dy = offsets % width, offsets // width
    return dx.float(), dy.float(), dy * size + dx


def window_candidates(triangles: Triangles, rows: slice, first_pixel: torch.Tensor, bucket: Bucket, size: int):
    """The pixels of the bucket's window inside each triangle of `rows`: (flat pixel index, depth, row)."""
    dx, dy, offset = window(bucket.width, bucket.height, size, first_pixel.device)
    planes = triangles.planes[..., rows, None]  # (plane, coefficient, triangle, 1): columns against the window rows

    def evaluate(plane):  # a·dx + b·dy + c over the (triangle, window) grid, in two passes
        a, b, c = plane
        return torch.addcmul(torch.addcmul(c, b, dy), a, dx)

    w0, w1, w2 = (evaluate(plane) for plane in planes[:3])
    inside = torch.minimum(torch.minimum(w0, w1), w2) >= 0
    # Window pixels beyond a triangle's box are outside it, except where the box was cut at the image's right or
    # bottom edge: only there must the window be cut too, or flat pixel indices would wrap into the next row.
    if bucket.at_border:
        box = triangles.box_size[:, rows, None]
        inside &= (dx < box[0]) & (dy < box[1])
    hit = inside.view(-1).nonzero().squeeze(1)
    # Depth and pixel are planes over the window too: evaluate them densely, then keep the hits (cheaper on
    # CPU than gathering per-triangle values for every hit).
    depth = 1.0 / evaluate(planes[3]).view(-1).index_select(0, hit)
    pixel = (first_pixel[:, None] + offset).view(-1).index_select(0, hit)
    return pixel, depth, hit // (bucket.width * bucket.height) + rows.start


def perspective_barycentrics(triangles: Triangles, row: torch.Tensor, pixel: torch.Tensor, size: int) -> torch.Tensor:
    """(P, 3) perspective-correct barycentrics of triangle `row` at each `pixel` (flat index within its image)."""
    origin = triangles.origin.index_select(1, row)
    dx = (pixel % size - origin[0]).float()
    dy = (pixel // size - origin[1]).float()
    # (Gathering from the flat (12, T) view: index_select on the last dim of a 3-d tensor is 7× slower.)
    edges = triangles.planes.view(12, -1)[:9].index_select(1, row).view(3, 3, -1)
    a, b, c = edges.unbind(1)  # each (barycentric, P)
    weighted = torch.addcmul(c + b * dy, a, dx) * triangles.corner_inverse_depth.index_select(1, row)
    return (weighted / weighted.sum(0)).T
