"""A hospital bed behind a lying head: a pillow with the head's dent in it, a sheet over the mattress and the body,
and the ward's room beyond, as the background of a view, with the bedding's depth so it hides what sinks into it.

    bedding = Bedding(rotation, head_centre, back=(x, y, z), chin_z=…, sink_cm=3, pillow_cm=12, pillow=…, sheet=…,
                      light=direction, seed=7)
    ward = WardBackground.draw(bedding, room, camera)     # room: any Background, drawn in the bed's frame
    ward.image(camera)      # (S, S, 3) sRGB: bedding where a ray meets it, the room elsewhere
    ward.depth              # (S, S) camera depth of the bedding (inf: none): the face behind it is hidden

The bedding is a height field over the bed's floor plan (the bed's frame: +y up, +z toward the foot, origin at the
head's centre; `rotation` takes the face model's frame into it), ray-marched per pixel at full resolution (its edge
against the head must be as sharp as the head's): the mattress under the sheet, the pillow (rounded edges, a dent
where the head presses it, so the back of the head sinks `sink_cm` into it) and the body under the sheet from the
shoulders on (which hides where the face model's neck ends). Shaded by the key light's direction with an ambient
share, a contact shadow around the head, creases in the pillowcase and folds in the sheet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factory.render.camera import Camera
from factory.render.room import value_noise_2d

BED_HALF_WIDTH_CM, BED_HEAD_CM, BED_FOOT_CM = 46.0, -42.0, 220.0
PILLOW_HALF_WIDTH_CM, PILLOW_ROUND_CM = 34.0, 7.0
DENT_SIGMA_CM, DENT_SHARE = 8.0, 0.45  # the head's dent: its width, and its depth as a share of the pillow's height
SHOULDERS_HALF_WIDTH_CM, CHEST_CM = 31.0, 26.0
MARCH_STEPS, REFINE_STEPS, MAX_MARCH_CM = 64, 8, 300.0
AMBIENT = 0.45


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Bedding:
    rotation: torch.Tensor  # (3, 3) head frame → bed frame
    head_centre: torch.Tensor  # (3,) head frame: the bed frame's origin
    back: tuple[float, float, float]  # bed-frame point of the head lowest on the pillow
    chin_z: float  # bed-frame z of the chin: the body begins a little beyond it
    sink_cm: float
    pillow_cm: float
    pillow: tuple[float, float, float]  # sRGB
    sheet: tuple[float, float, float]
    light: torch.Tensor  # (3,) bed-frame unit vector toward the key light
    seed: int

    @property
    def mattress(self) -> float:
        """Bed-frame height of the mattress top: the pressed pillow holds the head's back `sink_cm` under its top."""
        return self.back[1] + self.sink_cm + DENT_SHARE * self.pillow_cm - self.pillow_cm

    def height(self, x: torch.Tensor, z: torch.Tensor, detail: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Bed-frame height of the bedding over (x, z), -inf off the bed, and whether it is the pillow there; without
        `detail`, no creases or folds (a centimetre at most: what the coarse march needs)."""
        pillow_end = self.chin_z + 4.0
        pillow_middle, pillow_half = (BED_HEAD_CM + 4.0 + pillow_end) / 2, (pillow_end - BED_HEAD_CM - 4.0) / 2
        rounded = rounded_edge(PILLOW_HALF_WIDTH_CM - x.abs()) * rounded_edge(pillow_half - (z - pillow_middle).abs())
        dent = DENT_SHARE * self.pillow_cm * torch.exp(-((x - self.back[0]) ** 2 + (z - self.back[2]) ** 2) / (2 * DENT_SIGMA_CM**2))
        creases = 0.35 * value_noise_2d(x / 5 + 11.0, z / 5, self.seed) if detail else 0.0
        pillow = self.mattress + (self.pillow_cm + creases) * rounded - dent * (rounded > 0)
        shoulders = rounded_edge(SHOULDERS_HALF_WIDTH_CM - x.abs(), 10.0) * smoothstep((z - self.chin_z + 2.0) / 6.0)
        folds = 0.9 * torch.sin(x / 4.5 + 1.5 * value_noise_2d(x / 25, z / 25 + 3.0, self.seed)) * smoothstep((z - self.chin_z) / 30) if detail else 0.0
        body = self.mattress + 1.0 + CHEST_CM * shoulders + folds
        on_bed = (x.abs() < BED_HALF_WIDTH_CM) & (z > BED_HEAD_CM) & (z < BED_FOOT_CM)
        top = torch.maximum(pillow, body)
        return torch.where(on_bed, top, -math.inf), pillow >= body

    def trace(self, origin: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
        """(P,) distance along each bed-frame ray (P, 3) from `origin` (3,) to the bedding, inf where it misses: marched
        in MARCH_STEPS over the slab the bedding fills (on the smooth height field), then refined by bisection."""
        ceiling = self.mattress + self.pillow_cm + CHEST_CM + 3.0
        floor = self.mattress - 1.0
        dy = torch.where(rays[:, 1].abs() < 1e-6, torch.full_like(rays[:, 1], -1e-6), rays[:, 1])
        near = ((ceiling - origin[1]) / dy).clamp(min=0)
        far = ((floor - origin[1]) / dy).clamp(min=0)
        near, far = torch.minimum(near, far), torch.maximum(near, far)
        far = torch.minimum(far, near + MAX_MARCH_CM)
        distance = torch.full_like(near, math.inf)
        crossing = torch.nonzero(far > near).squeeze(1)  # rays that pass through the slab at all
        near, far, rays = near[crossing], far[crossing], rays[crossing]
        t = near[:, None] + (far - near)[:, None] * torch.linspace(0, 1, MARCH_STEPS)  # (P, S)
        points = origin + t[..., None] * rays[:, None]
        below = points[..., 1] <= self.height(points[..., 0], points[..., 2], detail=False)[0]
        hit = below.any(dim=1)
        first = below.float().argmax(dim=1).clamp(min=1)
        low = t.gather(1, (first - 1)[:, None])[:, 0]
        high = t.gather(1, first[:, None])[:, 0]
        for _ in range(REFINE_STEPS):
            middle = (low + high) / 2
            point = origin + middle[:, None] * rays
            inside = point[:, 1] <= self.height(point[:, 0], point[:, 2])[0]
            low, high = torch.where(inside, low, middle), torch.where(inside, middle, high)
        return distance.index_copy(0, crossing, torch.where(hit, high, math.inf))

    def shade(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) sRGB of bed-frame points on the bedding."""
        x, z = points[:, 0], points[:, 2]
        step = 0.3
        height, is_pillow = self.height(x, z)
        slope_x = (self.height(x + step, z)[0] - self.height(x - step, z)[0]) / (2 * step)
        slope_z = (self.height(x, z + step)[0] - self.height(x, z - step)[0]) / (2 * step)
        normal = F.normalize(torch.stack([-slope_x, torch.ones_like(x), -slope_z], dim=-1).nan_to_num(0.0), dim=-1)
        lit = AMBIENT + (1 - AMBIENT) * (normal @ self.light.to(normal)).clamp(min=0)
        to_head = torch.hypot(x - self.back[0], z - self.back[2])
        contact = 1 - 0.5 * torch.exp(-(to_head - 5.0).clamp(min=0) / 3.0) * is_pillow
        colour = torch.where(is_pillow[:, None], torch.tensor(self.pillow), torch.tensor(self.sheet))
        weave = 1 + 0.025 * value_noise_2d(x / 1.5, z / 1.5 + 7.0, self.seed)
        return (colour * (lit * contact * weave)[:, None]).clamp(0, 1)


def rounded_edge(inside_cm: torch.Tensor, round_cm: float = PILLOW_ROUND_CM) -> torch.Tensor:
    """0 outside an edge, rising like a rounded cushion's profile to 1 at `round_cm` inside it."""
    return torch.sqrt((inside_cm / round_cm).clamp(0, 1) * (2 - (inside_cm / round_cm).clamp(0, 1)))


def smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


def bed_camera(camera: Camera, bedding: Bedding) -> Camera:
    """The same camera in the bed's frame, about the head's centre (what a room around the bed is drawn through)."""
    rotation, centre = bedding.rotation.to(camera.R), bedding.head_centre.to(camera.R)
    R = camera.R @ rotation.T
    return Camera(K=camera.K, R=R, t=camera.t + camera.R @ centre - R @ centre, image_size=camera.image_size)


@dataclass(frozen=True, eq=False)
class WardBackground:
    """One view's bedding and room, drawn once (the shader asks for the image; the renderer for the depth first)."""

    colour: torch.Tensor  # (S, S, 3) sRGB
    depth: torch.Tensor  # (S, S) camera depth of the bedding, inf where the room shows

    @classmethod
    def draw(cls, bedding: Bedding, room, camera: Camera) -> "WardBackground":
        """`room`: a Background of the bed's frame (its image drawn through `bed_camera`)."""
        size = camera.image_size
        coordinate = torch.arange(size, dtype=torch.float32)
        y, x = torch.meshgrid(coordinate, coordinate, indexing="ij")
        pixel = torch.stack([x, y, torch.ones_like(x)], dim=-1).reshape(-1, 3)
        K, R = camera.K.float().cpu(), camera.R.float().cpu()
        rays = F.normalize(pixel @ torch.linalg.inv(K).T @ R, dim=-1)  # head frame
        rotation, centre = bedding.rotation.float(), bedding.head_centre.float().cpu()
        origin = rotation @ (camera.center.float().cpu() - centre)
        bed_rays = rays @ rotation.T
        distance = bedding.trace(origin, bed_rays)
        hit = torch.isfinite(distance)
        colour = room.image(bed_camera(camera, bedding)).cpu().reshape(-1, 3).clone()
        colour[hit] = bedding.shade(origin + distance[hit, None] * bed_rays[hit])
        depth = distance * (rays @ R[2])
        return cls(colour.reshape(size, size, 3), depth.reshape(size, size))

    def image(self, camera: Camera) -> torch.Tensor:
        return self.colour
