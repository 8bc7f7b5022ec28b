"""A procedural room behind the head, seen through each camera and blurred by its depth of field.

    room = Room(centre=head_centre, yaw_deg=10, left_cm=180, right_cm=220, back_cm=260, front_cm=220, floor_cm=125,
                ceiling_cm=140, wall=(0.8, 0.85, 0.82), floor=(0.5, 0.5, 0.48), ceiling=(0.92, 0.92, 0.9),
                trim=(0.9, 0.9, 0.88), fixtures=(Fixture("door", "back", -150, 0, 90, 205, (0.6, 0.45, 0.3),
                (0.9, 0.9, 0.88)),), light_side=0.5, seed=7)
    image = RoomBackground(room, Lens(f_number=2.8, focus_cm=95)).image(camera)     # (S, S, 3) sRGB

The room is a box around the head (its centre), turned by `yaw_deg` about the vertical: walls left and right, back
(behind the head as the frontal camera sees it) and front (behind the cameras), floor and ceiling. Every pixel's
ray from the camera meets one of the six planes; the hit point's wall and its coordinates there (u along the wall,
v above the floor, in cm) decide its colour: the wall's paint with value noise, a skirting board, the fixtures
painted on it (doors, windows, pictures, cabinets, rails, clinical headwall panels, curtains, shelves), darker
toward the room's corners and brighter on the side the room's light comes from.

It is drawn at a quarter of the image size (rooms behind a portrait are out of focus, so the detail would be lost),
blurred by the thin-lens circle of confusion of each pixel's distance (a stack of Gaussian blurs, blended per pixel),
then scaled up. About 10 ms per 512 px view on one core.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factory.render.camera import Camera

WALLS = ("left", "right", "back", "front", "floor", "ceiling")
DRAW_SCALE = 4  # the room is drawn at 1/DRAW_SCALE of the image size
SKIRTING_CM = 10.0
CORNER_SHADE_CM = 45.0  # walls darken toward a corner over about this distance
BLUR_LEVELS_PX = (0.0, 0.75, 1.5, 3.0, 6.0, 12.0)  # Gaussian sigmas, in pixels of the drawn (small) image
NOISE_TABLE = 4096


@dataclass(frozen=True)
class Fixture:
    """A rectangle painted on a wall: where, how big and in which colours (sRGB 0..1)."""

    kind: str  # one of FIXTURE_PAINTERS
    wall: str  # one of WALLS except floor and ceiling
    u: float  # cm along the wall of its left edge (as seen facing the wall from inside the room)
    v: float  # cm above the floor of its bottom edge
    width: float
    height: float
    colour: tuple[float, float, float]  # the main surface: a door's leaf, a cabinet's body, a picture's paint
    trim: tuple[float, float, float]  # frames, handles, outlets


@dataclass(frozen=True)
class Room:
    centre: tuple[float, float, float]  # world point the room is built around (the head's centre)
    yaw_deg: float  # the room turned about the vertical through `centre`
    left_cm: float  # distance from the centre to each wall (left and right as the frontal camera sees them)
    right_cm: float
    back_cm: float
    front_cm: float
    floor_cm: float
    ceiling_cm: float
    wall: tuple[float, float, float]  # sRGB paint of the walls
    floor: tuple[float, float, float]
    ceiling: tuple[float, float, float]
    trim: tuple[float, float, float]  # skirting boards
    fixtures: tuple[Fixture, ...]
    light_side: float  # -1 … 1: the room's light comes from its left … right wall
    seed: int  # the walls' noise


@dataclass(frozen=True)
class Lens:
    f_number: float
    focus_cm: float  # distance in focus (the face)
    sensor_cm: float = 2.4  # side of the square sensor: with K's focal length in pixels it gives the focal length


@dataclass(frozen=True)
class RoomBackground:
    room: Room
    lens: Lens

    def image(self, camera: Camera) -> torch.Tensor:
        """(S, S, 3) sRGB: the room seen through `camera`, blurred by the lens's depth of field."""
        size = camera.image_size
        small = max(16, size // DRAW_SCALE)
        origin, rays = camera_rays(camera, small, self.room)
        colour, distance = draw_room(self.room, origin, rays)
        sigma = circle_of_confusion_px(self.lens, camera, distance) / 2 / (size / small)
        blurred = defocus(colour.permute(2, 0, 1), sigma)
        image = F.interpolate(blurred[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        return image.permute(1, 2, 0).clamp(0, 1).contiguous()


def camera_rays(camera: Camera, size: int, room: Room) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera's centre (3,) and unit ray directions (size, size, 3) through a size × size grid of pixel
    centres, in the room's frame (centre at the origin, walls along the axes)."""
    scale = camera.image_size / size
    coordinate = (torch.arange(size, dtype=torch.float32) + 0.5) * scale - 0.5  # small pixel centres, in big pixels
    y, x = torch.meshgrid(coordinate, coordinate, indexing="ij")
    pixel = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    K, R = camera.K.float().cpu(), camera.R.float().cpu()
    rays = F.normalize(pixel @ torch.linalg.inv(K).T @ R, dim=-1)  # camera → world: Rᵀ K⁻¹ p, for rows
    turn = yaw_matrix(-room.yaw_deg)
    origin = (camera.center.float().cpu() - torch.tensor(room.centre)) @ turn.T
    return origin, rays @ turn.T


def yaw_matrix(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])


def draw_room(room: Room, origin: torch.Tensor, rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) sRGB colour and (H, W) distance (cm) of the wall each ray meets."""
    # Each plane as (axis, signed position); a ray from inside the box leaves it through the nearest one ahead.
    planes = ((0, -room.left_cm), (0, room.right_cm), (2, -room.back_cm), (2, room.front_cm),
              (1, -room.floor_cm), (1, room.ceiling_cm))
    hits = torch.stack([(position - origin[axis]) / torch.where(rays[..., axis].abs() < 1e-6, torch.full_like(rays[..., axis], 1e-6), rays[..., axis])
                        for axis, position in planes])
    hits = torch.where(hits > 0, hits, torch.full_like(hits, math.inf))
    distance, wall = hits.min(dim=0)
    point = origin + distance[..., None] * rays
    colour = torch.zeros(*distance.shape, 3)
    for index, name in enumerate(WALLS):
        where = wall == index
        if where.any():
            u, v = wall_coordinates(name, point[where], room)
            colour[where] = paint_wall(name, u, v, room)
    return colour, distance


def wall_coordinates(wall: str, point: torch.Tensor, room: Room) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) in cm of points on `wall`: u along it from left to right as seen from inside, v above the floor (on
    the floor and ceiling, v runs from the back wall toward the front)."""
    x, y, z = point.unbind(-1)
    height = y + room.floor_cm
    return {"back": (x, height), "front": (-x, height), "left": (-z, height), "right": (z, height),
            "floor": (x, z), "ceiling": (x, z)}[wall]


def paint_wall(wall: str, u: torch.Tensor, v: torch.Tensor, room: Room) -> torch.Tensor:
    """(P, 3) sRGB of the points (u, v) of one wall: paint, noise, skirting, fixtures, corner shade and light."""
    base = {"floor": room.floor, "ceiling": room.ceiling}.get(wall, room.wall)
    salt = WALLS.index(wall) * 1000.0 + room.seed % 997
    blotches = 0.06 * value_noise_2d(u / 35 + salt, v / 35, room.seed) + 0.03 * value_noise_2d(u / 6, v / 6 + salt, room.seed)
    colour = torch.tensor(base) * (1 + blotches - 0.045)[:, None]
    if wall in ("floor", "ceiling"):
        return colour * wall_light(wall, u, v, room)[:, None]
    skirting = (v < SKIRTING_CM)[:, None]
    colour = torch.where(skirting, torch.tensor(room.trim) * 0.92, colour)
    for fixture in room.fixtures:
        if fixture.wall == wall:
            colour = paint_fixture(fixture, u, v, colour, room.seed)
    return colour * wall_light(wall, u, v, room)[:, None]


def wall_light(wall: str, u: torch.Tensor, v: torch.Tensor, room: Room) -> torch.Tensor:
    """(P,) brightness: lower toward the room's corners, higher on the side its light comes from."""
    if wall in ("floor", "ceiling"):
        return torch.full_like(u, 0.9 if wall == "floor" else 1.0)
    half = {"back": (room.left_cm, room.right_cm), "front": (room.right_cm, room.left_cm),
            "left": (room.front_cm, room.back_cm), "right": (room.back_cm, room.front_cm)}[wall]
    height = room.floor_cm + room.ceiling_cm
    to_corner = torch.stack([u + half[0], half[1] - u, v, height - v]).clamp(min=0).amin(dim=0)
    corner = 1 - 0.22 * torch.exp(-to_corner / CORNER_SHADE_CM)
    facing = {"left": room.light_side, "right": -room.light_side}.get(wall, 0.0)  # the wall opposite the light is lit
    across = {"back": room.light_side, "front": -room.light_side}.get(wall, 0.0) * u / (half[0] + half[1])
    return corner * (1 + 0.12 * facing + 0.25 * across)


def value_noise_2d(u: torch.Tensor, v: torch.Tensor, seed: int) -> torch.Tensor:
    """Smooth noise in -1..1 over the plane: hashed random values at integer points, interpolated."""
    u0, v0 = u.floor(), v.floor()
    tu, tv = u - u0, v - v0
    tu, tv = tu * tu * (3 - 2 * tu), tv * tv * (3 - 2 * tv)

    def corner(du: float, dv: float) -> torch.Tensor:
        key = ((u0 + du).long() * 73856093) ^ ((v0 + dv).long() * 19349663) ^ (seed * 83492791)
        return (key.remainder(NOISE_TABLE).float() * 0.6180339887).remainder(1.0) * 2 - 1

    top = torch.lerp(corner(0, 0), corner(1, 0), tu)
    bottom = torch.lerp(corner(0, 1), corner(1, 1), tu)
    return torch.lerp(top, bottom, tv)


# --- fixtures: each paints the points inside its rectangle, given their position (a, b) in cm from its corner ------
Painter = Callable[[torch.Tensor, torch.Tensor, Fixture, torch.Tensor, int], torch.Tensor]


def paint_fixture(fixture: Fixture, u: torch.Tensor, v: torch.Tensor, colour: torch.Tensor, seed: int) -> torch.Tensor:
    a, b = u - fixture.u, v - fixture.v  # cm from the fixture's bottom-left corner
    inside = (a >= 0) & (a <= fixture.width) & (b >= 0) & (b <= fixture.height)
    if not inside.any():
        return colour
    colour = colour.clone()
    colour[inside] = FIXTURE_PAINTERS[fixture.kind](a[inside], b[inside], fixture, colour[inside], seed)
    return colour


def frame_mask(a: torch.Tensor, b: torch.Tensor, fixture: Fixture, width_cm: float) -> torch.Tensor:
    """Whether each point lies on the rectangle's border of `width_cm`."""
    return (a < width_cm) | (a > fixture.width - width_cm) | (b < width_cm) | (b > fixture.height - width_cm)


def knob(a: torch.Tensor, b: torch.Tensor, x: float, y: float, radius: float) -> torch.Tensor:
    return (a - x) ** 2 + (b - y) ** 2 < radius**2


def paint_door(a, b, fixture, under, seed):
    leaf = torch.tensor(fixture.colour).expand(len(a), 3).clone()
    inset = 12.0  # two recessed panels, outlined by a thin shadow
    upper = (a > inset) & (a < fixture.width - inset) & (b > fixture.height * 0.55) & (b < fixture.height - inset)
    lower = (a > inset) & (a < fixture.width - inset) & (b > inset) & (b < fixture.height * 0.45)
    edge = (upper | lower) & ~(((a > inset + 1.5) & (a < fixture.width - inset - 1.5)) &
                               (((b > fixture.height * 0.55 + 1.5) & (b < fixture.height - inset - 1.5)) |
                                ((b > inset + 1.5) & (b < fixture.height * 0.45 - 1.5))))
    leaf[edge] *= 0.8
    leaf[frame_mask(a, b, fixture, 6.0)] = torch.tensor(fixture.trim)
    leaf[knob(a, b, fixture.width - 10.0, 100.0, 3.0)] = torch.tensor(fixture.trim) * 0.55
    return leaf


def paint_window(a, b, fixture, under, seed):
    sky = 0.78 + 0.2 * (b / fixture.height)  # brighter toward the top: daylight
    outside = 0.12 * value_noise_2d(a / 40 + 5, b / 40, seed) * (1 - b / fixture.height)  # trees, buildings
    glass = torch.stack([sky * 0.92 + outside * 0.3, sky * 0.95 + outside * 0.5, sky + outside * 0.2], dim=-1)
    mullion = ((a - fixture.width / 2).abs() < 2.5) | ((b - fixture.height * 0.6).abs() < 2.5)
    trim = frame_mask(a, b, fixture, 7.0) | mullion
    glass[trim] = torch.tensor(fixture.trim)
    if fixture.colour != fixture.trim:  # half-drawn blinds, in the window's own colour, over its top part
        slats = (b > fixture.height * 0.6) & ((b % 5.0) < 3.8) & ~trim
        glass[slats] = torch.tensor(fixture.colour) * (0.9 + 0.1 * ((b[slats] % 5.0) / 3.8))[:, None]
    return glass.clamp(0, 1)


def paint_picture(a, b, fixture, under, seed):
    palette = torch.tensor([fixture.colour, fixture.trim, [0.85, 0.82, 0.74]])
    mix = torch.stack([value_noise_2d(a / 12 + k * 31.0, b / 12, seed + k) for k in range(3)], dim=-1).softmax(dim=-1)
    art = mix @ palette
    mat = frame_mask(a, b, fixture, 8.0)
    art[mat] = torch.tensor([0.9, 0.89, 0.85])
    art[frame_mask(a, b, fixture, 3.0)] = torch.tensor(fixture.trim) * 0.5
    return art


def paint_cabinet(a, b, fixture, under, seed):
    body = torch.tensor(fixture.colour).expand(len(a), 3).clone()
    drawers = ((b % 30.0) < 1.2) | ((a - fixture.width / 2).abs() < 0.8) | (b > fixture.height - 3)
    body[drawers] *= 0.78
    handles = ((b % 30.0 - 22).abs() < 1.2) & ((a - fixture.width / 2).abs() > 6) & ((a - fixture.width / 2).abs() < 14)
    body[handles] = torch.tensor(fixture.trim)
    return body


def paint_rail(a, b, fixture, under, seed):
    rail = torch.tensor(fixture.colour).expand(len(a), 3).clone()
    rail *= (0.8 + 0.3 * (b / fixture.height))[:, None]  # lit from above
    return rail


def paint_panel(a, b, fixture, under, seed):
    """A clinical headwall unit: a long box with gas outlets and sockets."""
    panel = torch.tensor(fixture.colour).expand(len(a), 3).clone()
    outlets = ((a % 22.0) > 14) & ((b - fixture.height / 2).abs() < 3.5)
    kinds = torch.tensor([fixture.trim, [0.2, 0.55, 0.3], [0.95, 0.95, 0.92]])
    panel[outlets] = kinds[(a[outlets] // 22.0).long() % 3]
    panel[(b < 1.5) | (b > fixture.height - 1.5)] *= 0.8
    return panel


def paint_curtain(a, b, fixture, under, seed):
    folds = torch.sin(2 * math.pi * a / 14.0 + 2.0 * value_noise_2d(a / 30, b / 80, seed))
    cloth = torch.tensor(fixture.colour) * (0.85 + 0.12 * folds)[:, None]
    cloth[b > fixture.height - 4] = torch.tensor(fixture.trim)  # the rail it hangs from
    return cloth


def paint_shelf(a, b, fixture, under, seed):
    """A board with a row of books on it."""
    out = under.clone()
    board = b < 3.0
    book = (a // 4.0).long()
    book_height = 14 + 10 * ((book * 0.6180339887) % 1.0)
    books = ~board & (b < 3.0 + book_height) & ((a % 4.0) > 0.3)
    tint = 0.5 + 0.5 * torch.stack([(book * k % 7).float() / 7 for k in (3, 5, 2)], dim=-1)
    out[books] = (torch.tensor(fixture.colour) * tint)[books]
    out[board] = torch.tensor(fixture.trim)
    return out


FIXTURE_PAINTERS: dict[str, Painter] = {
    "door": paint_door, "window": paint_window, "picture": paint_picture, "cabinet": paint_cabinet,
    "rail": paint_rail, "panel": paint_panel, "curtain": paint_curtain, "shelf": paint_shelf,
}


def circle_of_confusion_px(lens: Lens, camera: Camera, distance: torch.Tensor) -> torch.Tensor:
    """(H, W) blur-circle diameter in image pixels of points at `distance` cm, for a thin lens focused at
    lens.focus_cm: c = f_px · (f / N) / (S - f) · |1 - S / d| (f the focal length, N the f-number, S the focus)."""
    focal_px = float(camera.K[0, 0])
    focal_cm = focal_px * lens.sensor_cm / camera.image_size
    aperture_cm = focal_cm / lens.f_number
    return focal_px * aperture_cm / max(lens.focus_cm - focal_cm, 1e-3) * (1 - lens.focus_cm / distance).abs()


def defocus(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(3, H, W) blurred by a per-pixel Gaussian sigma (H, W): blends the nearest two of BLUR_LEVELS_PX."""
    levels = [image] + [gaussian_blur(image, s) for s in BLUR_LEVELS_PX[1:]]
    stack = torch.stack(levels)  # (L, 3, H, W)
    position = torch.tensor(BLUR_LEVELS_PX)
    sigma = sigma.clamp(0, BLUR_LEVELS_PX[-1])
    upper = torch.searchsorted(position, sigma.contiguous()).clamp(1, len(position) - 1)
    low, high = position[upper - 1], position[upper]
    t = ((sigma - low) / (high - low))[None]
    a = stack.gather(0, (upper - 1)[None, None].expand(1, 3, *sigma.shape))[0]
    b = stack.gather(0, upper[None, None].expand(1, 3, *sigma.shape))[0]
    return torch.lerp(a, b, t)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C, H, W) separable Gaussian blur, edges replicated."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(image)
    channels = image.shape[0]
    out = F.pad(image[None], (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)[0]
