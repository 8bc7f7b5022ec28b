"""Rasterize many mesh batches, each with its own triangles and cameras, in as few rasterizer calls as memory allows.

    groups = [RasterGroup(meshes.verts, meshes.faces, [camera] * len(meshes.verts)) for …]   # e.g. identity × view
    fragments = rasterize_groups(rasterizer, groups)       # one Fragments per group, as rasterizer(meshes, cameras)

`Rasterizer.__call__` (factory/render/raster.py) takes meshes that share one triangle list; identities do not
(each has its own hair shells). With the pytorch3d backend the groups go to pytorch3d as one heterogeneous batch
(its `Meshes` of different sizes), so a GPU sees every view of every identity of a batch in one call. pytorch3d
rasterizes each mesh of a call on its own, so a group's fragments are the ones `rasterize` gives it alone: the
batched path (factory/run/batch.py) makes the same pixels as the per-identity one. With the torch backend, which
works mesh by mesh anyway, each group is one `rasterize` call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from factory.render import raster_pytorch3d
from factory.render.camera import Camera
from factory.render.mesh import check_mesh
from factory.render.raster import Fragments, Rasterizer, backend_module, check_cameras, rasterize, screen_coordinates

# pytorch3d's coarse pass on CUDA holds (meshes × bins × max faces per bin) int32 face ids; the renderer allows every
# face in a bin (raster_pytorch3d), about 60 MB per 512 px head mesh, so a call takes as many meshes as fit this.
COARSE_BYTES_PER_CALL = 8 * 2**30


class RasterGroup(NamedTuple):
    """Meshes sharing one triangle list, one camera per mesh."""

    verts: torch.Tensor  # (N, V, 3) world space
    faces: torch.Tensor  # (F, 3)
    cameras: list[Camera]  # N cameras


def rasterize_groups(rasterizer: Rasterizer, groups: Sequence[RasterGroup]) -> list[Fragments]:
    """One Fragments per group, each what `rasterizer` gives that group alone."""
    if not groups:
        return []
    for group in groups:
        check_mesh(group.verts, group.faces)
        check_cameras(group.cameras, group.verts.shape[0])
    check_cameras([camera for group in groups for camera in group.cameras], sum(len(g.cameras) for g in groups))
    device = groups[0].verts.device
    if backend_module(rasterizer.backend, device) is not raster_pytorch3d:
        return [rasterize(g.verts, g.faces, g.cameras, rasterizer.backend, rasterizer.cull_backfaces) for g in groups]
    image_size = groups[0].cameras[0].image_size
    screens, faces, sizes = [], [], []
    for group in groups:
        group_faces = group.faces.to(device, torch.int64)
        screens += [screen_coordinates(mesh, camera) for mesh, camera in zip(group.verts, group.cameras)]
        faces += [group_faces] * len(group.cameras)
        sizes.append(len(group.cameras))
    parts = [raster_pytorch3d.rasterize_screens(screens[start:stop], faces[start:stop], image_size, rasterizer.cull_backfaces)
             for start, stop in call_ranges(faces, image_size)]
    pix_to_face, zbuf, bary = (torch.cat(part) for part in zip(*parts))
    fragments = Fragments(pix_to_face[..., None], zbuf[..., None], bary[..., None, :])
    return [Fragments(*(field[start:start + size] for field in fragments)) for start, size in zip(offsets(sizes), sizes)]


def call_ranges(faces: list[torch.Tensor], image_size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of meshes per pytorch3d call: as many as COARSE_BYTES_PER_CALL holds of the CUDA coarse
    pass's face lists (a mesh's result never depends on the others in its call, so the cut changes nothing)."""
    bin_size = 8 if image_size <= 64 else 2 ** max(math.ceil(math.log2(image_size)) - 4, 4)  # pytorch3d's bin_size=None
    bins = math.ceil(image_size / bin_size) ** 2
    per_call = max(1, COARSE_BYTES_PER_CALL // (bins * max(len(f) for f in faces) * 4))
    return [(start, min(start + per_call, len(faces))) for start in range(0, len(faces), per_call)]


def offsets(sizes: list[int]) -> list[int]:
    """Where each of consecutive blocks of `sizes` starts."""
    return list(itertools.accumulate(sizes[:-1], initial=0))
