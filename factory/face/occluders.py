"""Medical occluders as meshes fitted to a face, and carried by it through every expression.

    occluder = build_occluder(spec.occluder, rest, model, skin_srgb)   # fitted to the identity's expressionless face
    verts = occluder.pose(rest, posed)                                 # (N, Vo, 3): one per expression

Fitting: a `FaceWrap` describes the front of the expressionless face as a height field in cylindrical coordinates
(angle θ about a vertical axis behind the face, height y → distance from the axis). Each occluder is built from a few
primitives placed by the face's landmarks: sheets lying on the wrap (a mask, tape, a gauze pad: `sheet`), tubes along
paths (tubing, straps, ear loops, fingers: `tube`) and ellipsoids (a palm, a connector). A sheet stretched over the
face (a mask from the nose to the chin) lies on the wrap made taut: each point's height is the highest of the face
around it (`FaceWrap.taut`), so it bridges the mouth and the sides of the nose instead of following them.

Following the face: every occluder vertex is attached to the skin vertices nearest it on the expressionless face
(ANCHORS of them, with Gaussian weights over ANCHOR_SIGMA_CM) and moves by their weighted displacement in each
expression: an open jaw carries a mask's lower edge and a tube's tape down with the chin, raised cheeks push a
cannula up. A hand moves as one piece (rigid): by the mean displacement of the skin it rests on.

Materials: each vertex carries its linear albedo and a specular `shine` (plastic shines, fabric and gauze hardly).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from factory.face.model import FaceModel
from factory.render.lights import GAMMA
from factory.spec.bedside import Occluder

ANCHORS = 8  # skin vertices each occluder vertex follows
ANCHOR_SIGMA_CM = 1.2
WRAP_CELL_CM = 0.4  # the wrap's grid step, in height and in arc length at a typical radius
ANCHOR_PARTS = ("skin", "brows", "lips")  # the surface occluders rest on (not the eyes, lashes or the mouth's inside)
SHINE = {"plastic": 3.0, "fabric": 0.25, "tape": 0.6, "skin": 1.0, "glove": 2.0, "gauze": 0.15}


# ---------------------------------------------------------------------------------------------- primitives


class Part(NamedTuple):
    verts: torch.Tensor  # (V, 3)
    faces: torch.Tensor  # (F, 3)
    albedo: torch.Tensor  # (V, 3) sRGB
    shine: float


def grid_faces(rows: int, columns: int, closed: bool = False) -> torch.Tensor:
    """(F, 3) two triangles per cell of a rows × columns vertex grid (row-major); `closed` joins the last column to
    the first (a tube's ring)."""
    r, c = torch.meshgrid(torch.arange(rows - 1), torch.arange(columns if closed else columns - 1), indexing="ij")
    a, b = r * columns + c, r * columns + (c + 1) % columns
    quads = torch.stack([a, b, a + columns, b + columns], dim=-1).reshape(-1, 4)
    return torch.cat([quads[:, [0, 2, 1]], quads[:, [1, 2, 3]]])


def smooth_path(points: torch.Tensor, rounds: int = 3) -> torch.Tensor:
    """Chaikin's corner cutting of a polyline (K, 3): a smooth curve through the control points' hull, ends kept."""
    for _ in range(rounds):
        a, b = points[:-1], points[1:]
        cut = torch.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], dim=1).reshape(-1, 3)
        points = torch.cat([points[:1], cut, points[-1:]])
    return points


def tube(path: torch.Tensor, radius: float, colour, shine: str, sides: int = 8) -> Part:
    """A tube of `radius` along a control polyline (K, 3), smoothed, with parallel-transported rings and flat caps."""
    path = smooth_path(path)
    tangent = F.normalize(torch.cat([path[1:2] - path[:1], path[2:] - path[:-2], path[-1:] - path[-2:-1]]), dim=-1)
    normal = F.normalize(torch.linalg.cross(tangent[0], torch.tensor([0.3, 1.0, 0.2])), dim=0)
    rings = []
    for k in range(len(path)):  # parallel transport: each ring's normal is the last one's, made perpendicular
        normal = F.normalize(normal - (normal @ tangent[k]) * tangent[k], dim=0)
        binormal = torch.linalg.cross(tangent[k], normal)
        angle = torch.arange(sides) * (2 * math.pi / sides)
        rings.append(path[k] + radius * (torch.cos(angle)[:, None] * normal + torch.sin(angle)[:, None] * binormal))
    verts = torch.cat(rings + [path[:1], path[-1:]])
    count = len(path) * sides
    ring = torch.arange(sides)
    caps = torch.cat([torch.stack([torch.full_like(ring, count), (ring + 1) % sides, ring], dim=-1),
                      torch.stack([torch.full_like(ring, count + 1), count - sides + ring, count - sides + (ring + 1) % sides], dim=-1)])
    return Part(verts, torch.cat([grid_faces(len(path), sides, closed=True), caps]), solid(colour, len(verts)), SHINE[shine])


def ellipsoid(centre: torch.Tensor, axes: torch.Tensor, colour, shine: str, rings: int = 10, sides: int = 14) -> Part:
    """An ellipsoid about `centre` with semi-axes the rows of `axes` (3, 3)."""
    polar = torch.linspace(0.0, math.pi, rings)
    azimuth = torch.arange(sides) * (2 * math.pi / sides)
    p, a = torch.meshgrid(polar, azimuth, indexing="ij")
    unit = torch.stack([torch.sin(p) * torch.cos(a), torch.sin(p) * torch.sin(a), torch.cos(p)], dim=-1).reshape(-1, 3)
    verts = centre + unit @ axes
    return Part(verts, grid_faces(rings, sides, closed=True), solid(colour, len(verts)), SHINE[shine])


def solid(colour, count: int) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float32).expand(count, 3).clone()


# ---------------------------------------------------------------------------------------------- the wrap


class FaceWrap:
    """The front of a face as a height field over (θ, y): distance from a vertical axis behind the face."""

    def __init__(self, rest: torch.Tensor, model: FaceModel):
        self.landmarks = model.landmark_points(rest)  # (68, 3)
        ears = self.landmarks[[0, 16]]
        self.axis = torch.stack([ears[:, 0].mean(), ears[:, 2].mean() - 1.0])  # (x, z) of the vertical axis
        parts = torch.tensor([model.part_names.index(name) for name in ANCHOR_PARTS])
        surface = rest[torch.isin(model.vertex_part, parts)]
        theta, y, radius = self.cylindrical(surface)
        front = theta.abs() < 1.75
        theta, y, radius = theta[front], y[front], radius[front]
        self.step_theta = WRAP_CELL_CM / float(radius.median())
        self.theta0, self.y0 = float(theta.min()), float(y.min())
        columns = int((float(theta.max()) - self.theta0) / self.step_theta) + 2
        rows = int((float(y.max()) - self.y0) / WRAP_CELL_CM) + 2
        cell = ((y - self.y0) / WRAP_CELL_CM).round().long() * columns + ((theta - self.theta0) / self.step_theta).round().long()
        grid = torch.full((rows * columns,), -math.inf).scatter_reduce(0, cell, radius, reduce="amax")
        self.height = fill_empty(grid.view(rows, columns))

    def cylindrical(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dx, dz = points[..., 0] - self.axis[0], points[..., 2] - self.axis[1]
        return torch.atan2(dx, dz), points[..., 1], torch.hypot(dx, dz)

    def angle(self, landmark: int) -> float:
        return float(self.cylindrical(self.landmarks[landmark])[0])

    def taut(self, across_cm: float, down_cm: float) -> torch.Tensor:
        """The height field stretched: the highest height within ±across/±down cm of each cell, then smoothed."""
        kx, ky = 2 * round(across_cm / WRAP_CELL_CM) + 1, 2 * round(down_cm / WRAP_CELL_CM) + 1
        high = F.max_pool2d(self.height[None, None], (ky, kx), stride=1, padding=(ky // 2, kx // 2))
        return F.avg_pool2d(high, (ky, kx), stride=1, padding=(ky // 2, kx // 2), count_include_pad=False)[0, 0]

    def point(self, theta: torch.Tensor, y: torch.Tensor, lift: torch.Tensor | float, height: torch.Tensor | None = None) -> torch.Tensor:
        """(..., 3) points at angle θ and height y, `lift` cm out from the (taut) height field."""
        field = self.height if height is None else height
        rows, columns = field.shape
        gx = (theta - self.theta0) / self.step_theta / (columns - 1) * 2 - 1
        gy = (y - self.y0) / WRAP_CELL_CM / (rows - 1) * 2 - 1
        grid = torch.stack([gx, gy], dim=-1).reshape(1, 1, -1, 2).float()
        radius = F.grid_sample(field[None, None], grid, align_corners=True, padding_mode="border")[0, 0, 0].reshape(theta.shape)
        radius = radius + lift
        return torch.stack([self.axis[0] + radius * torch.sin(theta), y.expand_as(radius), self.axis[1] + radius * torch.cos(theta)], dim=-1)

    def landmark(self, index: int) -> torch.Tensor:
        return self.landmarks[index]


def fill_empty(grid: torch.Tensor) -> torch.Tensor:
    """Cells no vertex fell in take the highest of their neighbours, until none is empty."""
    for _ in range(64):
        empty = torch.isinf(grid)
        if not empty.any():
            break
        grown = F.max_pool2d(grid[None, None], 3, stride=1, padding=1)[0, 0]
        grid = torch.where(empty, grown, grid)
    return torch.nan_to_num(grid, neginf=float(grid[torch.isfinite(grid)].min()))


def sheet(wrap: FaceWrap, height: torch.Tensor, theta: torch.Tensor, y: torch.Tensor, lift: torch.Tensor, albedo: torch.Tensor,
          shine: str) -> Part:
    """A sheet over a (rows, columns) grid of (θ, y) lying `lift` above the height field `height`."""
    verts = wrap.point(theta, y, lift, height).reshape(-1, 3)
    return Part(verts, grid_faces(*theta.shape), albedo.reshape(-1, 3), SHINE[shine])


def on_wrap(wrap: FaceWrap, points: list[tuple[float, float]], lift: float) -> torch.Tensor:
    """(K, 3) points at (θ, y) pairs, `lift` above the face."""
    theta, y = torch.tensor(points, dtype=torch.float32).unbind(-1)
    return wrap.point(theta, y, lift)


# ---------------------------------------------------------------------------------------------- the occluders


def surgical_mask(wrap: FaceWrap, occluder: Occluder, colour, rng: np.random.Generator) -> list[Part]:
    lm, size = wrap.landmark, occluder.size
    top = float(lm(28)[1] + lm(29)[1]) / 2
    chin = float(lm(8)[1])
    half = max(abs(wrap.angle(1)), abs(wrap.angle(15))) * 0.97 * size
    u, v = torch.meshgrid(torch.linspace(-1, 1, 41), torch.linspace(0, 1, 25), indexing="xy")
    side_bottom = float(lm(4)[1] + lm(12)[1]) / 2
    bottom = chin - 1.3 * size + (side_bottom - chin + 1.3 * size) * u.abs() ** 2
    theta, y = u * half * (1 - 0.12 * v**2), top + (bottom - top) * v
    pleat = torch.relu(torch.sin(v * 3 * 2 * math.pi + 0.5)) * ((v > 0.15) & (v < 0.85))
    lift = occluder.standoff_cm + 0.12 * pleat + 0.25 * (1 - u**2)
    albedo = torch.tensor(colour) * (1 - 0.1 * pleat)[..., None]
    parts = [sheet(wrap, wrap.taut(1.2, 3.5), theta, y, lift, albedo, "fabric")]
    for sign in (-1, 1):  # ear loops from the mask's top and bottom corners to behind the ear
        ear = lm(16 if sign > 0 else 0)
        for row in (0, -1):
            corner = wrap.point(theta[row, -1 if sign > 0 else 0], y[row, -1 if sign > 0 else 0], 0.3, wrap.taut(1.2, 3.5))
            behind = ear + torch.tensor([sign * 0.9, 1.6 if row == 0 else -0.6, -2.2])
            middle = on_wrap(wrap, [(sign * (half + 0.25), float(corner[1] + behind[1]) / 2)], 0.5)[0]
            parts.append(tube(torch.stack([corner, middle, ear + torch.tensor([sign * 0.7, 2.0 if row == 0 else -0.2, -1.0]), behind]),
                              0.09, colour, "fabric", sides=5))
    return parts


def oxygen_mask(wrap: FaceWrap, occluder: Occluder, colour, rng: np.random.Generator) -> list[Part]:
    lm, size = wrap.landmark, occluder.size
    top = float(0.4 * lm(27)[1] + 0.6 * lm(28)[1])
    bottom = float(lm(8)[1]) + 0.3
    half = abs(wrap.angle(5) - wrap.angle(11)) / 2 * 0.8 * size
    u, v = torch.meshgrid(torch.linspace(-1, 1, 33), torch.linspace(0, 1, 29), indexing="xy")
    width = half * (0.25 + 0.75 * torch.sin(torch.clamp(v * 1.4 + 0.05, max=1.0) * math.pi / 2)) * (1 - 0.15 * v**3)
    theta, y = u * width, top + (bottom - top) * v
    dome = (1 - u**2).clamp(min=0) ** 0.6 * torch.sin(v * math.pi).clamp(min=0) ** 0.5
    lift = occluder.standoff_cm + 1.2 * size * dome
    taut = wrap.taut(1.4, 3.0)
    parts = [sheet(wrap, taut, theta, y, lift, torch.tensor(colour).expand(*theta.shape, 3), "plastic")]
    rim = torch.cat([torch.stack([theta[:, 0], y[:, 0]], -1), torch.stack([theta[-1], y[-1]], -1),
                     torch.stack([theta[:, -1], y[:, -1]], -1).flip(0), torch.stack([theta[0], y[0]], -1).flip(0)])
    rim_points = wrap.point(rim[:, 0], rim[:, 1], occluder.standoff_cm + 0.1, taut)
    parts.append(tube(rim_points[::2], 0.2, tuple(c * 0.92 for c in colour), "plastic", sides=6))
    front = wrap.point(torch.tensor(0.0), torch.tensor(top + 0.72 * (bottom - top)), occluder.standoff_cm + 1.2 * size * 0.9, taut)
    out = F.normalize(front - torch.tensor([float(wrap.axis[0]), float(front[1]), float(wrap.axis[1])]), dim=0)
    down = torch.tensor([0.0, -1.0, 0.0])
    parts.append(tube(torch.stack([front - out * 0.5, front + out * 1.6, front + out * 2.6 + down * 0.6]), 0.85,
                      tuple(c * 0.95 for c in colour), "plastic", sides=10))
    tubing = front + out * 2.6 + down * 0.6
    parts.append(tube(torch.stack([tubing, tubing + out * 2 + down * 4, tubing + out * 3 + down * 14]), 0.38, colour, "plastic"))
    strap_y = float(lm(29)[1])
    strap_colour = (0.35, 0.62, 0.45) if rng.random() < 0.5 else (0.9, 0.9, 0.88)
    for sign in (-1, 1):
        ear = lm(16 if sign > 0 else 0)
        edge = on_wrap(wrap, [(sign * float(width[int(0.35 * 28), -1]), strap_y)], occluder.standoff_cm + 0.3)[0]
        cheek = on_wrap(wrap, [(sign * (half * 1.1 + 0.2), strap_y + 0.3)], 0.3)[0]
        parts.append(tube(torch.stack([edge, cheek, ear + torch.tensor([sign * 0.6, 2.4, -0.8]), ear + torch.tensor([sign * 0.6, 2.8, -4.5])]),
                          0.22, strap_colour, "fabric", sides=6))
    return parts


def nasal_cannula(wrap: FaceWrap, occluder: Occluder, colour, rng: np.random.Generator) -> list[Part]:
    lm = wrap.landmark
    nostrils = [(lm(31) + lm(33)) / 2, (lm(33) + lm(35)) / 2]
    under = [n + torch.tensor([0.0, -0.55, 0.35]) for n in nostrils]
    parts = [tube(torch.stack([n + torch.tensor([0.0, 0.35, -0.45]), u]), 0.17, colour, "plastic", sides=6)
             for n, u in zip(nostrils, under)]
    parts.append(tube(torch.stack([under[0], under[1]]), 0.24, colour, "plastic"))
    for sign, base in ((-1, under[0]), (1, under[1])):
        ear = lm(16 if sign > 0 else 0)
        wing = lm(35 if sign > 0 else 31)
        cheek_y = float(wing[1]) - 0.4
        path = [base, base + torch.tensor([sign * 0.5, -0.1, 0.0]),
                *on_wrap(wrap, [(wrap.angle(35 if sign > 0 else 31) + sign * 0.12, cheek_y),
                                (wrap.angle(13 if sign > 0 else 3) * 0.85, cheek_y - 0.2),
                                (wrap.angle(15 if sign > 0 else 1) * 0.95, float(ear[1]) + 0.6)], 0.3),
                ear + torch.tensor([sign * 0.7, 2.6, -1.6]), ear + torch.tensor([sign * 0.8, 1.5, -4.0]),
                ear + torch.tensor([sign * 0.2, -4.0, -3.5]), lm(8) + torch.tensor([sign * 1.0, -4.5, -2.5])]
        parts.append(tube(torch.stack(path), 0.24, colour, "plastic"))
    return parts


def endotracheal_tube(wrap: FaceWrap, occluder: Occluder, colour, rng: np.random.Generator) -> list[Part]:
    lm, sign = wrap.landmark, occluder.side
    inner = torch.stack([lm(k) for k in range(60, 68)]).mean(0)
    exit_point = torch.lerp(inner, lm(54 if sign > 0 else 48), 0.4)
    down = torch.tensor([0.0, -1.0, 0.0])
    path = torch.stack([exit_point + torch.tensor([0.0, 0.0, -2.5]), exit_point + torch.tensor([0.0, 0.0, 0.6]),
                        exit_point + torch.tensor([sign * 0.6, -0.8, 3.5]), exit_point + torch.tensor([sign * 2.0, -3.5, 6.0]),
                        exit_point + torch.tensor([sign * 3.0, -8.0, 6.5])])
    parts = [tube(path, 0.48, colour, "plastic", sides=10)]
    connector = exit_point + torch.tensor([sign * 1.4, -2.4, 5.3])
    parts.append(tube(torch.stack([connector, connector + torch.tensor([sign * 0.6, -1.8, 0.5]) + down * 0.5]), 0.75,
                      (0.25, 0.45, 0.78), "plastic", sides=10))
    tape = (0.94, 0.92, 0.86) if rng.random() < 0.6 else (0.86, 0.90, 0.93)
    taut = wrap.taut(0.8, 0.8)
    # A strip from cheek to cheek over the upper lip, holding the tube.
    for left, right, top, bottom in ((-abs(wrap.angle(4)) * 0.9, abs(wrap.angle(12)) * 0.9, float(lm(33)[1]) - 0.3, float(lm(51)[1]) - 0.1),):
        u, v = torch.meshgrid(torch.linspace(0, 1, 33), torch.linspace(0, 1, 4), indexing="xy")
        theta, y = left + (right - left) * u, top + (bottom - top) * v * (1 - 0.15 * torch.sin(u * math.pi))
        albedo = torch.tensor(tape) * (1 - 0.04 * (torch.sin(u * 90) > 0.6))[..., None]
        parts.append(sheet(wrap, taut, theta, y, torch.full_like(u, 0.08), albedo, "tape"))
    return parts


def eye_patch(wrap: FaceWrap, occluder: Occluder, colour, rng: np.random.Generator) -> list[Part]:
    lm, size = wrap.landmark, occluder.size
    eye = list(range(42, 48)) if occluder.side > 0 else list(range(36, 42))
    centre = torch.stack([lm(k) for k in eye]).mean(0)
    centre_theta, centre_y = float(wrap.cylindrical(centre)[0]), float(centre[1]) + 0.4
    span = abs(wrap.angle(45 if occluder.side > 0 else 36) - wrap.angle(42 if occluder.side > 0 else 39))
    half_theta, half_y = span * 1.1 * size, 2.6 * size
    u, v = torch.meshgrid(torch.linspace(-1, 1, 25), torch.linspace(-1, 1, 25), indexing="xy")
    x, z = u * torch.sqrt(1 - v**2 / 2), v * torch.sqrt(1 - u**2 / 2)  # the square onto the disc
    pad = (1 - x**2 - z**2).clamp(min=0)
    taut = wrap.taut(2.5, 2.5)
    parts = [sheet(wrap, taut, centre_theta + x * half_theta, centre_y - z * half_y, occluder.standoff_cm + 0.35 + 0.5 * pad**0.5,
                   torch.tensor(colour).expand(*u.shape, 3), "gauze")]
    tape = (0.93, 0.90, 0.80)
    for slope in (0.55, -0.55):  # two strips of tape across the pad
        t, w = torch.meshgrid(torch.linspace(-1.5, 1.5, 25), torch.linspace(-0.5, 0.5, 3), indexing="xy")
        along = torch.tensor([1.0, slope]) / math.hypot(1.0, slope)
        tx, ty = t * along[0] - w * along[1] / 2.4, t * along[1] + w * along[0] / 2.4
        inside = (1 - tx**2 - ty**2).clamp(min=0)
        parts.append(sheet(wrap, taut, centre_theta + tx * half_theta, centre_y - ty * half_y,
                           occluder.standoff_cm * 0.4 + (0.35 + 0.5 * inside**0.5) * (inside > 0) + 0.03,
                           torch.tensor(tape).expand(*t.shape, 3), "tape"))
    return parts


def hand(wrap: FaceWrap, occluder: Occluder, colour, rng: np.random.Generator) -> list[Part]:
    """A hand against the cheek and jaw, fingers along the cheek toward the temple."""
    lm, sign, size = wrap.landmark, occluder.side, occluder.size
    material = "skin" if occluder.colour[0] < 0 else "glove"
    palm_theta = wrap.angle(12 if sign > 0 else 4) * 0.9
    palm_y = float(lm(12 if sign > 0 else 4)[1]) - 1.0
    centre = on_wrap(wrap, [(palm_theta, palm_y)], 1.5 * size)[0]
    out = F.normalize(centre - torch.tensor([float(wrap.axis[0]), float(centre[1]), float(wrap.axis[1])]), dim=0)
    up = F.normalize(torch.tensor([0.0, 1.0, 0.0]) - out[1] * out, dim=0)
    across = torch.linalg.cross(up, out)
    parts = [ellipsoid(centre, torch.stack([across * 4.0, up * 4.6, out * 1.3]) * size, colour, material)]
    spread = float(rng.uniform(0.8, 1.2))
    for k, offset in enumerate((-1.5, -0.5, 0.5, 1.5)):
        start_theta = palm_theta + sign * offset * 0.2 * spread * size
        lengths = (2.6, 4.9, 6.5) if k in (1, 2) else (2.3, 4.3, 5.6)
        joints = on_wrap(wrap, [(start_theta + sign * 0.06 * j, palm_y + 3.4 * size + (lengths[j - 1] if j else 0) * size)
                                for j in range(4)], 0.95 * size)
        parts.append(tube(joints, 0.82 * size, colour, material))
    thumb_base = centre - up * 1.8 * size
    thumb_tip = on_wrap(wrap, [(palm_theta * 0.55, float(lm(8)[1]) + 0.4)], 0.9 * size)[0]
    parts.append(tube(torch.stack([thumb_base, torch.lerp(thumb_base, thumb_tip, 0.5) + out * 0.5, thumb_tip]), 0.9 * size, colour, material))
    return parts


BUILDERS = {"surgical_mask": surgical_mask, "oxygen_mask": oxygen_mask, "nasal_cannula": nasal_cannula,
            "endotracheal_tube": endotracheal_tube, "eye_patch": eye_patch, "hand": hand}
RIGID = ("hand",)  # occluders that move as one piece


# ---------------------------------------------------------------------------------------------- the mesh


class OccluderMesh(NamedTuple):
    """An occluder fitted to one identity: its geometry on the expressionless face and how it follows the face."""

    verts: torch.Tensor  # (Vo, 3) on the expressionless face
    faces: torch.Tensor  # (Fo, 3) ids into verts
    albedo: torch.Tensor  # (Vo, 3) linear
    shine: torch.Tensor  # (Vo,) specular shine factor
    anchors: torch.Tensor  # (Vo, ANCHORS) face vertex ids …
    weights: torch.Tensor  # (Vo, ANCHORS) … and their weights (rows sum to 1)
    rigid: bool  # move as one piece (the mean displacement of all anchors)

    def pose(self, rest: torch.Tensor, posed: torch.Tensor) -> torch.Tensor:
        """(N, Vo, 3): the occluder on each posed face (N, V, 3) of the face `rest` (V, 3) it was fitted to."""
        moved = posed[:, self.anchors] - rest[self.anchors]  # (N, Vo, K, 3)
        shift = (moved * self.weights[None, :, :, None]).sum(2)
        if self.rigid:
            shift = shift.mean(1, keepdim=True).expand_as(shift)
        return self.verts + shift


def build_occluder(occluder: Occluder, rest: torch.Tensor, model: FaceModel, skin_srgb: torch.Tensor) -> OccluderMesh:
    """`occluder` fitted to the expressionless face `rest` (V, 3); a hand of the patient's own colour `skin_srgb`."""
    rng = np.random.default_rng(occluder.seed)
    colour = tuple(skin_srgb.tolist()) if occluder.colour[0] < 0 else occluder.colour
    parts = BUILDERS[occluder.kind](FaceWrap(rest, model), occluder, colour, rng)
    offsets = np.cumsum([0] + [len(p.verts) for p in parts[:-1]])
    verts = torch.cat([p.verts for p in parts]).float()
    faces = torch.cat([p.faces + int(o) for p, o in zip(parts, offsets)])
    albedo = torch.cat([p.albedo for p in parts]).clamp(0, 1) ** GAMMA
    shine = torch.cat([torch.full((len(p.verts),), p.shine) for p in parts])
    anchors, weights = attach(verts, rest, model)
    return OccluderMesh(verts, faces, albedo, shine, anchors, weights, occluder.kind in RIGID)


def attach(points: torch.Tensor, rest: torch.Tensor, model: FaceModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, ANCHORS) nearest skin vertices of each point and Gaussian weights by distance (from the nearest one's)."""
    parts = torch.tensor([model.part_names.index(name) for name in ANCHOR_PARTS])
    candidates = torch.nonzero(torch.isin(model.vertex_part, parts)).squeeze(1)
    distance = torch.cdist(points, rest[candidates])
    nearest, index = distance.topk(ANCHORS, dim=1, largest=False)
    weights = torch.exp(-0.5 * ((nearest - nearest[:, :1]) / ANCHOR_SIGMA_CM) ** 2)
    return candidates[index], weights / weights.sum(1, keepdim=True)
