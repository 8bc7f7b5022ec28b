"""Where the bedside plan (factory/spec/bedside.py) meets the renderer: the occluder posed with the face and added to
its meshes, the ward behind a lying head, and what meta.json says of them.

    posed = pose_occluder(spec, model, face.rest, face.verts)    # PosedOccluder, or None without an occluder
    meshes = with_occluder(meshes, posed, part)                  # its triangles in the occluder class, its materials
    backgrounds = ward_backgrounds(spec, cameras, …)             # the clinical scenario: pillow, sheet and ward room
    fragments = hidden_by_bedding(fragments, background)         # the head's back sunk into the pillow
    regions = au_regions(rest, model)                            # per PSPI AU, the face vertices of its region
    visible = au_visibility(points, regions, camera, fragments, face_part, part)   # (N, 6) share seen, per expression

AU visibility: an AU's region is the face surface inside the padded box of its landmarks (factory/qa/visibility.py's
AU_REGIONS and REGION_PAD, on the expressionless face seen from the front); in each view and expression, the share of
the region's vertices that the camera sees (in the frame, not behind another surface: factory/render/layers.py's
landmark test) and whose pixel does not show the occluder.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from factory.face.model import FaceModel
from factory.face.occluders import ANCHOR_PARTS, OccluderMesh, build_occluder
from factory.face.texture.palette import skin_base_srgb
from factory.render.bedding import Bedding, WardBackground
from factory.render.camera import Camera
from factory.render.layers import landmarks_layer
from factory.render.mesh import Meshes, vertex_normals
from factory.render.raster import Fragments
from factory.spec.au_regions import AU_REGIONS, REGION_PAD
from factory.spec.bedside import NO_OCCLUDER, lying_rotation
from factory.spec.labels import PSPI_AUS

OCCLUDER_PART = "occluder"  # the segmentation class of every occluder (meta.json "parts")
CHIN = 8  # Multi-PIE landmark of the chin
OCCLUDER_MIN_OCCLUSION = 0.75


class PosedOccluder(NamedTuple):
    mesh: OccluderMesh
    verts: torch.Tensor  # (N, Vo, 3) on each expression


def marked(spec) -> bool:
    """Whether the sample carries the bedside's labels (the occluder class, views' occluder and AU visibility): in the
    clinical scenario, or with an occluder. A default plan without one writes exactly what it always did."""
    return spec.scenario != "default" or spec.occluder is not None


def pose_occluder(spec, model: FaceModel, rest: torch.Tensor, posed: torch.Tensor) -> PosedOccluder | None:
    if spec.occluder is None:
        return None
    skin = torch.from_numpy(np.asarray(skin_base_srgb(spec.skin.tone, spec.skin.undertone), dtype=np.float32))
    mesh = build_occluder(spec.occluder, rest, model, skin)
    return PosedOccluder(mesh, mesh.pose(rest, posed))


def with_occluder(meshes: Meshes, occluder: PosedOccluder, part: int) -> Meshes:
    """`meshes` with the occluder's triangles appended (in class `part`, with its materials); the face's and hair's
    albedo stays the texture's."""
    device, count = meshes.verts.device, meshes.num_vertices
    verts = occluder.verts.to(device)
    faces = occluder.mesh.faces.to(device)
    albedo = torch.cat([torch.zeros(count, 4, device=device),
                        torch.cat([occluder.mesh.albedo, torch.ones(len(occluder.mesh.albedo), 1)], dim=1).to(device)])
    return Meshes(torch.cat([meshes.verts, verts], dim=1), torch.cat([meshes.faces, faces + count]),
                  torch.cat([meshes.corner_uvs, torch.zeros(len(faces), 3, 2, device=device)]),
                  torch.cat([meshes.face_part, torch.full((len(faces),), part, device=device)]),
                  normals=torch.cat([meshes.vertex_normals, vertex_normals(verts, faces)], dim=1), albedo=albedo)


def extend(values: torch.Tensor, occluder: PosedOccluder | None, fill: float) -> torch.Tensor:
    """Per-vertex values (..., V) with `fill` for each occluder vertex appended."""
    if occluder is None:
        return values
    return torch.cat([values, torch.full((*values.shape[:-1], len(occluder.mesh.verts)), fill, dtype=values.dtype,
                                         device=values.device)], dim=-1)


def lit_occluder(occlusion: torch.Tensor, occluder: PosedOccluder | None) -> torch.Tensor:
    """(V,) ambient occlusion with the occluder's vertices raised to at least OCCLUDER_MIN_OCCLUSION: the occlusion
    map's pixels (8 mm) are wider than a tube or a strap, which it would count as buried in the skin they lie on."""
    if occluder is None:
        return occlusion
    count = len(occluder.mesh.verts)
    return torch.cat([occlusion[:-count], occlusion[-count:].clamp(min=OCCLUDER_MIN_OCCLUSION)])


# ---------------------------------------------------------------------------------------------- the ward


def bedding_of(spec, model: FaceModel, neutral: torch.Tensor, centre: torch.Tensor, light_direction: torch.Tensor) -> Bedding:
    """The bed under the identity's lying head (`neutral` (V, 3), its framing centre `centre`)."""
    bed = spec.bed
    rotation = torch.tensor(lying_rotation(bed), dtype=torch.float32)
    lying = (neutral.float().cpu() - centre.float().cpu()) @ rotation.T
    back = lying[int(lying[:, 1].argmin())]
    chin = lying[int(model.landmarks[CHIN])]
    return Bedding(rotation=rotation, head_centre=centre.float().cpu(), back=tuple(back.tolist()), chin_z=float(chin[2]),
                   sink_cm=bed.sink_cm, pillow_cm=bed.pillow_cm, pillow=bed.pillow, sheet=bed.sheet,
                   light=rotation @ light_direction.float().cpu(), seed=bed.seed)


def ward_backgrounds(bedding: Bedding, cameras: list[Camera], rooms: list) -> list[WardBackground]:
    """Per view, the bedding in front of `rooms` (Backgrounds of the bed's frame, factory/run/backgrounds.py)."""
    return [WardBackground.draw(bedding, room, camera) for camera, room in zip(cameras, rooms)]


def hidden_by_bedding(fragments: Fragments, background) -> Fragments:
    """The fragments with what lies behind the bedding emptied (a ward background only; others have no depth)."""
    depth = getattr(background, "depth", None)
    if depth is None:
        return fragments
    hidden = (fragments.pix_to_face >= 0) & (fragments.zbuf > depth.to(fragments.zbuf)[None, :, :, None])
    return Fragments(torch.where(hidden, -1, fragments.pix_to_face), torch.where(hidden, -1.0, fragments.zbuf),
                     torch.where(hidden[..., None], -1.0, fragments.bary_coords))


# ---------------------------------------------------------------------------------------------- AU visibility


def au_regions(rest: torch.Tensor, model: FaceModel) -> list[torch.Tensor]:
    """Per PSPI AU (PSPI_AUS order), the ids of the front-facing face-surface vertices inside its padded landmark box
    on the expressionless face seen from the front."""
    landmarks = model.landmark_points(rest)
    parts = torch.tensor([model.part_names.index(name) for name in ANCHOR_PARTS])
    normals = vertex_normals(rest[None], model.faces)[0]
    surface = torch.isin(model.vertex_part, parts) & (normals[:, 2] > 0.15)
    regions = []
    for au in PSPI_AUS:
        points = landmarks[AU_REGIONS[au]]
        low, high = points.min(0).values, points.max(0).values
        pad = REGION_PAD * (high - low)
        inside = ((rest[:, :2] >= (low - pad)[:2]) & (rest[:, :2] <= (high + pad)[:2])).all(1)
        near = rest[:, 2] >= low[2] - 2.0  # the front of the face, not the back of the head behind it
        regions.append(torch.nonzero(surface & inside & near).squeeze(1))
    return regions


def au_visibility(verts: torch.Tensor, regions: list[torch.Tensor], camera: Camera, fragments: Fragments,
                  face_part: torch.Tensor, occluder_part: int) -> np.ndarray:
    """(N, len(regions)) share of each region's vertices (of meshes (N, V, 3)) seen, and not through the occluder."""
    ids = torch.cat(regions).to(verts.device)
    _, seen = landmarks_layer(verts[:, ids], camera, fragments)
    pixel, _ = camera.project(verts[:, ids])
    size = fragments.pix_to_face.shape[1]
    column, row = (pixel.round().long().clamp(0, size - 1)).unbind(-1)
    batch = torch.arange(verts.shape[0], device=verts.device)[:, None].expand_as(column)
    face = fragments.pix_to_face[batch, row, column, 0]
    occluded = (face >= 0) & (face_part.to(face.device)[face.clamp(min=0)] == occluder_part)
    visible = torch.from_numpy(seen).to(verts.device) & ~occluded
    shares, start = [], 0
    for region in regions:
        shares.append(visible[:, start:start + len(region)].float().mean(1) if len(region) else torch.zeros(len(visible)))
        start += len(region)
    return torch.stack(shares, dim=1).cpu().numpy()


def view_records(spec, visibility: np.ndarray) -> list[dict]:
    """Per view, what meta.json's view gains: its occluder class and {expression: {AU: visible share}}."""
    kind = spec.occluder.kind if spec.occluder is not None else NO_OCCLUDER
    names = [e.name for e in spec.expressions]
    return [{"occluder": kind,
             "au_visibility": {name: {au: round(float(visibility[x, v, a]), 4) for a, au in enumerate(PSPI_AUS)}
                               for x, name in enumerate(names)}}
            for v in range(visibility.shape[1])]
