"""The eyes: where they look, the cornea that puts a highlight in them, and the shadow the upper lids cast.

    eyes = EyeRig(model)
    target = eyes.gaze_target(rest_verts, camera.center, yaw_deg=2, pitch_deg=-4, distance_scale=1.1)   # (3,) cm
    verts = eyes.aim(verts, target)              # both eyeballs turned about their centres toward the target
    gap = eyes.lid_gap(verts)                    # (N, V) cm below the upper lid, for the shader's lid shadow
    relief = cornea_relief(model, atlas)         # (S, S, 4) the cornea's normals, as a relief map

Gaze: each eyeball (`FaceLayout.eyeball_left/right`: ICT's sclera sphere and iris shell, FLAME's one sphere) turns
rigidly about its own centre (a sphere fitted to its sclera) so that its optical axis, from the centre through the apex of its iris, passes through one
target point; with the target at a finite distance the two eyes converge on it, as real eyes do. The target lies
around the camera (`gaze_target`): a person photographed looks at or near the lens, and the eyes converge at the
camera's distance, not at one drawn apart from it.

Lid shadow: the upper lid and its lashes shade the top of the eyeball and the socket skin beside it. Per vertex of
those, the distance below the upper lid's visible edge (the lowest point of its rim at the same x);
the renderer turns it into a shadow that is darkest at the lid and fades below (factory/render/detail.py). A
closed lid leaves everything behind it at distance 0: whatever a slit between the lids shows is in deep shadow.

Cornea: the model's eyeball is nearly one sphere (1.6 cm radius), on which a light's highlight lands wherever the
normal halves light and view: for a key light 40° off the camera that is 20° from the pupil, under a lid or on
the white. A real cornea bulges with a 7.8 mm radius over the iris, so every light within about 90° of the
camera leaves its glint on the iris. `cornea_relief` bends the eyeball's normals into the cornea's over the iris
(a relief map the shader applies with depth 1 on the eyeball vertices, `EyeRig.with_cornea`).
"""

from __future__ import annotations

import math

import torch

from factory.face.geometry import interpolate, smoothstep
from factory.face.model import FaceModel
from factory.face.texture.atlas import UVAtlas
from factory.face.topology import MarginPairs, connected_components, face_surface, find_margins, unique_edges

NO_LID_CM = 10.0  # lid_gap of vertices no lid shades
LID_BAND_CM = 0.15  # the lid edge over a point is the lowest rim vertex within this distance of it in x
CORNEA_RADIUS_CM = 0.78  # of curvature: the human cornea's front surface
LIMBUS_CM = 0.6  # the cornea's (and iris's) radius around the optical axis


class EyeRig:
    """The eyeballs (vertex ids), their scleras, the pupils and the upper lids' rims of one face model."""

    def __init__(self, model: FaceModel):
        neutral, layout = model.neutral, model.layout
        self.eyeballs = tuple(torch.nonzero(mask).squeeze(1) for mask in (layout.eyeball_left, layout.eyeball_right))
        self.scleras = tuple(sclera_of(model, eyeball) for eyeball in self.eyeballs)
        # The pupil (ICT: the iris shell's most forward vertex) marks each eye's optical axis.
        self.apexes = layout.pupils
        margins = {margin.region: margin for margin in find_margins(model)}
        self.upper_lids = tuple(upper_lid_rim(model, margins[region]) for region in ("eye_left", "eye_right"))
        # What the upper lids shade: each eye's eyeball and its socket (the lids' inner skin around the eyeball, where
        # the model has one: FLAME has none).
        sockets = torch.nonzero(layout.eye_sockets).squeeze(1)
        left_side = neutral[sockets, 0] > 0
        self.shaded = tuple(torch.cat([eyeball, sockets[side]]) for eyeball, side in zip(self.eyeballs, (left_side, ~left_side)))

    def with_cornea(self, depth: torch.Tensor) -> torch.Tensor:
        """(N, V) relief depths with the eyeballs' set to 1, so the shader bends their normals into the cornea's."""
        depth = depth.clone()
        for eyeball in self.eyeballs:
            depth[:, eyeball] = 1.0
        return depth

    def centres(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, 2, 3) the centre of each eyeball (left, right): the least-squares sphere through its sclera."""
        return torch.stack([sphere_centre(verts[:, sclera]) for sclera in self.scleras], dim=1)

    def gaze_target(self, rest_verts: torch.Tensor, camera: torch.Tensor, yaw_deg: float, pitch_deg: float,
                    distance_scale: float) -> torch.Tensor:
        """(3,) the world point around `camera` (3,), a camera's centre, seen from the midpoint of the eyes of an
        expressionless mesh (V, 3): `yaw_deg` (positive toward the face's left, +x) and `pitch_deg` (positive up)
        from the camera's direction, at `distance_scale` times the camera's distance."""
        middle = self.centres(rest_verts[None])[0].mean(dim=0)
        to_camera = camera.to(middle) - middle
        distance = float(to_camera.norm())
        yaw = math.atan2(float(to_camera[0]), float(to_camera[2])) + math.radians(yaw_deg)
        pitch = math.asin(float(to_camera[1]) / distance) + math.radians(pitch_deg)
        direction = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        return middle + distance * distance_scale * direction

    def gaze_distance(self, rest_verts: torch.Tensor, target: torch.Tensor) -> float:
        """cm from the midpoint of the eyes of an expressionless mesh (V, 3) to a gaze target (3,)."""
        return float((target - self.centres(rest_verts[None])[0].mean(dim=0)).norm())

    def aim(self, verts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) the meshes with both eyeballs turned about their centres toward `target` (3,) or (B, 3)."""
        verts = verts.clone()
        centres = self.centres(verts)
        for k, (eyeball, apex) in enumerate(zip(self.eyeballs, self.apexes)):
            centre = centres[:, k]  # (B, 3)
            rotation = rotation_between(verts[:, apex] - centre, target - centre)  # (B, 3, 3)
            offsets = verts[:, eyeball] - centre[:, None]
            verts[:, eyeball] = centre[:, None] + offsets @ rotation.transpose(1, 2)
        return verts

    def optical_axes(self, verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 2, 3) eye centres and (B, 2, 3) unit directions of the optical axes (left, right)."""
        centres = self.centres(verts)
        apexes = verts[:, list(self.apexes)]
        return centres, torch.nn.functional.normalize(apexes - centres, dim=-1)

    def lid_gap(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V) cm below the upper lid's edge of each eyeball and socket vertex (0 at or above it), NO_LID_CM for
        every other vertex. The edge at a vertex's x is the lowest rim vertex within LID_BAND_CM of it in x."""
        gap = torch.full(verts.shape[:2], NO_LID_CM)
        for rim, shaded in zip(self.upper_lids, self.shaded):
            rim_x, rim_y = verts[:, rim, 0], verts[:, rim, 1]  # (B, R)
            apart = (verts[:, shaded, 0, None] - rim_x[:, None]).abs()  # (B, S, R)
            edge = (rim_y[:, None] + 10 * (apart - LID_BAND_CM).clamp(min=0)).amin(dim=-1)  # (B, S)
            gap[:, shaded] = (edge - verts[:, shaded, 1]).clamp(min=0)
        return gap


def sclera_of(model: FaceModel, eyeball: torch.Tensor) -> torch.Tensor:
    """Vertex ids of an eyeball's sclera: the connected part of the eyeball (vertex ids `eyeball`) that holds its
    rearmost vertex. ICT's eyeball is a sclera sphere and an inner iris shell over the front, which a sphere fit must
    leave out; FLAME's is one sphere, all sclera."""
    first = model.faces[:, 0]
    inside = torch.zeros(model.num_vertices, dtype=torch.bool)
    inside[eyeball] = True
    edges = unique_edges(model.faces[inside[first]])
    back = int(eyeball[model.neutral[eyeball, 2].argmin()])
    component = next(part for part in connected_components(edges.numpy()) if back in part)
    return torch.tensor(sorted(component))


def upper_lid_rim(model: FaceModel, margin: MarginPairs) -> torch.Tensor:
    """Vertex ids of an upper lid's rim: its margin (the border of the eye hole) and the face-surface vertices next
    to it, which curl in front of and below the margin and make the edge a camera sees; corner vertices level with
    the lower margin are left out."""
    faces = face_surface(model)
    on_margin = torch.zeros(model.num_vertices, dtype=torch.bool)
    on_margin[margin.upper] = True
    rim = faces[on_margin[faces].any(dim=1)].unique()
    neutral = model.neutral
    lower = margin.lower[torch.argsort(neutral[margin.lower, 0])]
    lower_y = interpolate(neutral[rim, 0], neutral[lower, 0], neutral[lower, 1][None])[0]
    return rim[neutral[rim, 1] > lower_y + 0.15]


def sphere_centre(points: torch.Tensor) -> torch.Tensor:
    """(B, 3) centres of the least-squares spheres through (B, P, 3) points: |p|² = 2 p·c + (r² - |c|²) is linear
    in c and the constant, so one small least-squares solve per batch item."""
    points = points.double()
    design = torch.cat([2 * points, torch.ones_like(points[..., :1])], dim=-1)  # (B, P, 4)
    squared = (points * points).sum(dim=-1, keepdim=True)  # (B, P, 1)
    solution = torch.linalg.lstsq(design, squared).solution  # (B, 4, 1)
    return solution[:, :3, 0].float()


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) the smallest rotations taking the directions of (B, 3) vectors `a` onto those of `b`
    (Rodrigues' formula about a × b; the directions here are never opposite)."""
    a = torch.nn.functional.normalize(a, dim=-1)
    b = torch.nn.functional.normalize(b, dim=-1)
    axis = torch.linalg.cross(a, b)
    sine, cosine = axis.norm(dim=-1), (a * b).sum(dim=-1)
    k = torch.nn.functional.normalize(axis, dim=-1, eps=1e-12)
    zero = torch.zeros_like(sine)
    cross = torch.stack([zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero], dim=-1).view(-1, 3, 3)
    eye = torch.eye(3).expand_as(cross)
    return eye + sine[:, None, None] * cross + (1 - cosine)[:, None, None] * (cross @ cross)


def cornea_relief(model: FaceModel, atlas: UVAtlas) -> torch.Tensor:
    """(S, S, 4) relief over the eyeball texels: no darkening, and the tilt that turns the eyeball sphere's normal
    into the cornea's (a sphere of CORNEA_RADIUS_CM through the iris apex) within LIMBUS_CM of the optical axis,
    blending back to the eyeball's at the limbus. The tilts are in the template's frame: the few degrees a gaze
    turns an eye move its glint by about a pixel at 512 px."""
    relief = torch.zeros(atlas.size, atlas.size, 4)
    eyes = EyeRig(model)
    centres = eyes.centres(model.neutral[None])[0]
    eyeballs = (model.layout.eyeball_left, model.layout.eyeball_right)
    for eyeball, centre, apex in zip(eyeballs, centres, eyes.apexes):
        texels = atlas.shows(eyeball)
        points = atlas.texel_position[texels]
        axis = torch.nn.functional.normalize(model.neutral[apex] - centre, dim=0)
        along = (points - centre) @ axis
        off_axis = (points - centre - along[:, None] * axis).norm(dim=-1)
        sphere = torch.nn.functional.normalize(points - centre, dim=-1)
        cornea = torch.nn.functional.normalize(points - (model.neutral[apex] - CORNEA_RADIUS_CM * axis), dim=-1)
        blend = smoothstep(LIMBUS_CM, 0.8 * LIMBUS_CM, off_axis) * (along > 0).float()
        bent = torch.nn.functional.normalize(torch.lerp(sphere, cornea, blend[:, None]), dim=-1)
        relief[texels, 1:] = sphere - bent
    return relief
