"""A vectorised triangle rasterizer in plain torch: one nearest face per pixel, no Python loop over faces.

Input is screen space: pixel coordinates (x right, y down, pixel centres on integers) and camera depth z.
The pipeline, each step over all triangles at once:

1. set up every triangle: the integer bounding box of the pixel centres it can cover, and its edge functions
   and inverse depth as planes over that box; drop triangles that cover no pixel centre, are degenerate, lie
   (partly) behind the camera or, when asked, face away from it;
2. enumerate candidate pixels: triangles are bucketed by bounding-box width and height, and each bucket is
   tested against one fixed window of pixel offsets (a (triangles, window) tensor); most triangles of a
   finely tessellated mesh have 1 to 4 pixel boxes, so windows stay small and little work is wasted;
3. z-test: a candidate's key is (depth bits << 32 | face index), and `scatter_reduce(amin)` keeps the nearest
   triangle of each pixel (on equal depth the lower face index, so the result is deterministic);
4. barycentrics, perspective-correct, only for the winning triangle of each pixel.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch

NEAR = 1e-3  # triangles with a vertex nearer than this (camera units) are dropped, not clipped
# Window sides for bucketing: powers of two waste at most 4× a box (about 1.6× on the ICT head), and keep the
# number of buckets, each a handful of torch calls, small.
WINDOW_SIDES = tuple(2**k for k in range(13))  # 1 … 4096
MAX_CANDIDATES = 1 << 22  # candidates tested at once; bounds memory for big triangles
EMPTY_KEY = torch.iinfo(torch.int64).max


def rasterize_screen(screen: torch.Tensor, faces: torch.Tensor, image_size: int, cull_backfaces: bool):
    """screen (N, V, 3): pixel x, pixel y, depth z; faces (F, 3) → pix_to_face, zbuf (N, S, S), bary (N, S, S, 3)."""
    batch, num_faces, size = screen.shape[0], faces.shape[0], image_size
    if size > WINDOW_SIDES[-1]:
        raise ValueError(f"image_size {size} is larger than the torch rasterizer supports ({WINDOW_SIDES[-1]})")
    if batch * num_faces >= 2**31:
        raise ValueError(f"{batch} meshes × {num_faces} faces is too many for one call; split the batch")
    corners = screen.float().index_select(1, faces.reshape(-1)).reshape(batch * num_faces, 3, 3)  # (N·F, corner, xyz)
    triangles, buckets = setup_triangles(corners, size, cull_backfaces)

    # z-test: a candidate's key is (depth bits << 32 | triangle id); positive floats order like their bit patterns,
    # so the minimum key is the nearest triangle, and on equal depth the lower face index, as in pytorch3d.
    keys = torch.full((batch * size * size,), EMPTY_KEY, dtype=torch.int64, device=screen.device)
    first_pixel = triangles.ids // num_faces * (size * size) + triangles.origin[:, 1] * size + triangles.origin[:, 0]
    for start, stop, width, height in buckets:
        step = max(1, MAX_CANDIDATES // (width * height))
        for chunk in range(start, stop, step):
            rows = slice(chunk, min(stop, chunk + step))
            pixel, depth, row = window_candidates(triangles, rows, first_pixel[rows], width, height, size)
            key = (depth.view(torch.int32).to(torch.int64) << 32) | triangles.ids.index_select(0, row)
            keys.scatter_reduce_(0, pixel, key, reduce="amin")

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


class Triangles(NamedTuple):
    """The kept triangles, set up for rasterization and sorted by bucket; the first dimension is the triangle.

    `planes[:, i]` for i < 3 holds (a, b, c) of screen barycentric i as a plane over the bounding box:
    w_i = a·dx + b·dy + c at pixel origin + (dx, dy); `planes[:, 3]` is the plane of 1/z, which is linear in
    screen space, so the z-test needs one division per candidate that passes the edge tests.
    """

    ids: torch.Tensor  # (T,) index into the batch's flattened N·F triangles
    origin: torch.Tensor  # (T, 2) int64 pixel (x, y) of the box's top-left pixel centre
    box_size: torch.Tensor  # (T, 2) int64 box width and height in pixels, ≥ 1
    planes: torch.Tensor  # (T, 4, 3)
    corner_inverse_depth: torch.Tensor  # (T, 3) 1/z at the corners, for perspective correction


def setup_triangles(corners: torch.Tensor, size: int, cull_backfaces: bool):
    """Triangles that can cover a pixel, sorted by bucket, and the buckets as (start, stop, width, height)."""
    xy, z = corners[..., :2], corners[..., 2]
    p0, p1, p2 = xy.unbind(1)
    # The box holds the pixel centres (integers) within the triangle's extent. (Pairwise minimum: faster than amin.)
    low = torch.minimum(torch.minimum(p0, p1), p2).ceil().clamp(min=0)
    high = torch.maximum(torch.maximum(p0, p1), p2).floor().clamp(max=size - 1)
    e1, e2 = p1 - p0, p2 - p0
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # twice the signed area; > 0 is clockwise on screen (y down)
    keep = (high >= low).all(1) & (z > NEAR).all(1) & (area2.abs() > 1e-12)
    if cull_backfaces:
        # Counter-clockwise as seen by the camera is front-facing, as in pytorch3d (y down flips the sign).
        keep &= area2 < 0
    box_size = (high - low + 1).long()
    ids = keep.nonzero().squeeze(1)
    ids, buckets = sort_into_buckets(ids, box_size.index_select(0, ids))
    origin, area2 = low.index_select(0, ids), area2.index_select(0, ids)
    local = xy.index_select(0, ids) - origin[:, None]  # corners relative to the box, for precision

    # Barycentric i is the edge function of the edge opposite corner i, divided by the area.
    start, end = local.roll(-1, dims=1), local.roll(-2, dims=1)  # corners (1, 2, 0) and (2, 0, 1)
    a = -(end[..., 1] - start[..., 1])
    b = end[..., 0] - start[..., 0]
    c = -(a * start[..., 0] + b * start[..., 1])
    edges = torch.stack([a, b, c], dim=-1) / area2[:, None, None]
    corner_inverse_depth = 1.0 / z.index_select(0, ids)
    inverse_depth = (edges * corner_inverse_depth[..., None]).sum(1)
    planes = torch.cat([edges, inverse_depth[:, None]], dim=1)
    return Triangles(ids, origin.long(), box_size.index_select(0, ids), planes, corner_inverse_depth), buckets


def sort_into_buckets(ids: torch.Tensor, box_size: torch.Tensor):
    """Order triangles by the smallest window (from WINDOW_SIDES) their box fits; buckets are runs of that order."""
    sides = torch.tensor(WINDOW_SIDES, device=box_size.device)
    column, line = torch.searchsorted(sides, box_size.T.contiguous())
    bucket = column * len(WINDOW_SIDES) + line
    bucket, order = torch.sort(bucket, stable=True)
    values, counts = torch.unique_consecutive(bucket, return_counts=True)
    stops = counts.cumsum(0).tolist()
    buckets = [(stop - count, stop, WINDOW_SIDES[value // len(WINDOW_SIDES)], WINDOW_SIDES[value % len(WINDOW_SIDES)])
               for value, count, stop in zip(values.tolist(), counts.tolist(), stops)]
    return ids[order], buckets


@lru_cache(maxsize=256)
def window(width: int, height: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pixel offsets (dx, dy) of a width × height window as floats, and as flat offsets in a size² image."""
    offsets = torch.arange(width * height, device=device)
    dx, dy = offsets % width, offsets // width
    return dx.float(), dy.float(), dy * size + dx


def window_candidates(triangles: Triangles, rows: slice, first_pixel: torch.Tensor, width: int, height: int, size: int):
    """The pixels of a width × height window inside each triangle of `rows`: (flat pixel index, depth, row)."""
    dx, dy, offset = window(width, height, size, first_pixel.device)
    planes, box = triangles.planes[rows, :, :, None], triangles.box_size[rows]
    inside = (dx < box[:, :1]) & (dy < box[:, 1:])  # also keeps clamped boxes inside the image
    for i in range(3):
        inside &= torch.addcmul(planes[:, i, 2] + planes[:, i, 1] * dy, planes[:, i, 0], dx) >= 0
    hit = inside.view(-1).nonzero().squeeze(1)
    # Depth and pixel are planes over the window too: evaluate them densely, then keep the hits. On CPU,
    # index_select of a contiguous tensor is far cheaper than tensor[index] gathers of the per-triangle values.
    inverse_depth = torch.addcmul(planes[:, 3, 2] + planes[:, 3, 1] * dy, planes[:, 3, 0], dx)
    depth = 1.0 / inverse_depth.view(-1).index_select(0, hit)
    pixel = (first_pixel[:, None] + offset).view(-1).index_select(0, hit)
    return pixel, depth, hit // (width * height) + rows.start


def perspective_barycentrics(triangles: Triangles, row: torch.Tensor, pixel: torch.Tensor, size: int) -> torch.Tensor:
    """(P, 3) perspective-correct barycentrics of triangle `row` at each `pixel` (flat index within its image)."""
    origin = triangles.origin.index_select(0, row)
    dx = (pixel % size - origin[:, 0]).float()
    dy = (pixel // size - origin[:, 1]).float()
    edges = triangles.planes[:, :3].index_select(0, row)
    screen = torch.addcmul(edges[..., 2] + edges[..., 1] * dy[:, None], edges[..., 0], dx[:, None])
    weighted = screen * triangles.corner_inverse_depth.index_select(0, row)
    return weighted / weighted.sum(1, keepdim=True)
