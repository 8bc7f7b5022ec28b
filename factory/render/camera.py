"""Pinhole cameras in the OpenCV convention, and the orbit camera that frames a head.

    x_cam = R @ x_world + t          +x right, +y down in the image, +z looks forward (depth)
    pixel = K @ x_cam / z            pixel (0, 0) is the centre of the top-left pixel

World space is the face model's: centimetres, +y up, the face looks toward +z, so the person's right side is
at world -x.

Orbit angles (degrees, `Orbit`), for a camera orbiting the head centre:
- yaw 0 is frontal. NEGATIVE yaw moves the camera to the face's RIGHT side (world -x), so the image shows the
  right cheek; positive yaw shows the left cheek. Equivalently, relative to the camera the head is turned to
  its own left by |yaw| when yaw is negative.
- pitch > 0 lifts the camera above the face, looking down on it (more forehead, less chin).
- roll > 0 turns the camera clockwise about its viewing axis, so the head appears turned counter-clockwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_FOV_DEG = 25.0  # a portrait lens (about 80 mm across a 36 mm frame): little perspective distortion
SENSOR_MM = 24.0  # the side of the square sensor that focal lengths refer to (a full frame's short side)
# The head's bounding sphere (chin up, neutral) spans this share of the frame at distance_scale 1; the margin keeps a
# fully opened jaw of a long face in the frame too (tests/test_camera.py).
FRAME_FILL = 0.86


@dataclass(frozen=True)
class Orbit:
    """Where a camera sits on its orbit around the head (signs in the module docstring)."""

    yaw: float = 0.0  # degrees
    pitch: float = 0.0
    roll: float = 0.0
    distance_scale: float = 1.0  # a factor of the framing distance


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field is ambiguous
class Camera:
    K: torch.Tensor  # (3, 3) intrinsics, focal lengths and principal point in pixels
    R: torch.Tensor  # (3, 3) world → camera rotation
    t: torch.Tensor  # (3,) world → camera translation
    image_size: int  # square images, H = W

    def __post_init__(self) -> None:
        if self.K.shape != (3, 3) or self.R.shape != (3, 3) or self.t.shape != (3,):
            raise ValueError(f"Camera needs K (3, 3), R (3, 3), t (3,), got {tuple(self.K.shape)}, "
                             f"{tuple(self.R.shape)}, {tuple(self.t.shape)}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) world → (..., 3) camera space."""
        R, t = self.R.to(points), self.t.to(points)
        return points @ R.T + t

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., 3) world points → (..., 2) pixels (x right, y down) and (...,) depth z along the optical axis."""
        cam = self.to_camera(points)
        depth = cam[..., 2]
        image = cam @ self.K.to(points).T
        return image[..., :2] / depth[..., None], depth

    def unproject(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """(..., 2) pixels and (...,) depths → (..., 3) world points: the inverse of `project`."""
        K, R, t = self.K.to(pixels), self.R.to(pixels), self.t.to(pixels)
        homogeneous = torch.cat([pixels, torch.ones_like(pixels[..., :1])], dim=-1)
        cam = torch.linalg.solve(K, homogeneous.unsqueeze(-1)).squeeze(-1) * depth[..., None]
        return (cam - t) @ R  # x_world = Rᵀ (x_cam - t), written for row vectors

    @property
    def center(self) -> torch.Tensor:
        """(3,) the camera's position in world space."""
        return -self.R.T @ self.t

    def to(self, device: str | torch.device) -> "Camera":
        return Camera(self.K.to(device), self.R.to(device), self.t.to(device), self.image_size)

    def to_dict(self) -> dict:
        """{"K", "R", "t"} as nested lists, the form meta.json stores."""
        return {"K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist()}


def intrinsics(image_size: int, fov_deg: float, shift: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """(3, 3) K of a square camera whose full field of view (edge to edge of the image) is `fov_deg`; `shift` moves
    the principal point (what the camera looks at) right and down by that share of the image side."""
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    focal = (image_size / 2) / math.tan(math.radians(fov_deg) / 2)
    centre = (image_size - 1) / 2  # pixel centres sit on integers, so the image centre is between them
    cx, cy = centre + shift[0] * image_size, centre + shift[1] * image_size
    return torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def fov_of_focal_length(focal_mm: float, sensor_mm: float = SENSOR_MM) -> float:
    """Full field of view in degrees of a lens of `focal_mm` on a square sensor of `sensor_mm`."""
    if focal_mm <= 0:
        raise ValueError(f"focal_mm must be > 0, got {focal_mm}")
    return math.degrees(2 * math.atan(sensor_mm / 2 / focal_mm))


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor, roll_deg: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, t) of a camera at `eye` looking at `target`, image up along `up`, then turned by `roll_deg` about its axis."""
    forward = target - eye
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    if right.norm() < 1e-9:
        raise ValueError("the camera cannot look straight along its up vector")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    roll = math.radians(roll_deg)
    # Turning the camera clockwise (as seen from behind it) by `roll` carries its x axis toward its y axis.
    right, down = math.cos(roll) * right + math.sin(roll) * down, -math.sin(roll) * right + math.cos(roll) * down
    R = torch.stack([right, down, forward])
    return R, -R @ eye


def framing_distance(head_radius: float, fov_deg: float, fill: float = FRAME_FILL) -> float:
    """Distance from the head centre at which a sphere of `head_radius` spans `fill` of the field of view."""
    return head_radius / math.sin(fill * math.radians(fov_deg) / 2)


def head_camera(orbit: Orbit, image_size: int, head_center, head_radius: float, fov_deg: float = DEFAULT_FOV_DEG,
                shift: tuple[float, float] = (0.0, 0.0)) -> Camera:
    """The camera at `orbit` around the head: it looks at `head_center` from `framing_distance` × orbit.distance_scale.

    Because the orbit is around the centre of the head's bounding sphere, every view at distance_scale 1 keeps the
    whole sphere inside the frame with a margin of 1 - FRAME_FILL (less any `shift` of the principal point, see
    `intrinsics`); the distance follows the field of view, so a longer lens frames the head the same from further
    away, with flatter perspective. See the module docstring for the angle signs.
    """
    if head_radius <= 0 or orbit.distance_scale <= 0:
        raise ValueError(f"head_radius and distance_scale must be > 0, got {head_radius} and {orbit.distance_scale}")
    center = torch.as_tensor(head_center, dtype=torch.float64).reshape(3)
    yaw, pitch = math.radians(orbit.yaw), math.radians(orbit.pitch)
    direction = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)], dtype=torch.float64)
    eye = center + framing_distance(head_radius, fov_deg) * orbit.distance_scale * direction
    R, t = look_at(eye, center, up=torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), roll_deg=orbit.roll)
    return Camera(K=intrinsics(image_size, fov_deg, shift).float(), R=R.float(), t=t.float(), image_size=image_size)


def bounding_sphere(points: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(centre (3,), radius) of a sphere holding all `points` (V, 3): centred on their bounding box.

    Not the minimal sphere, but stable under small shape changes, which keeps framing steady across identities.
    """
    points = points.reshape(-1, 3)
    center = (points.amin(0) + points.amax(0)) / 2
    return center, float((points - center).norm(dim=-1).max())


def head_sphere(vertices: torch.Tensor, chin_vertex: int, surface: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """The bounding sphere of the head from the chin up, for `head_camera`: the neck may leave the frame.

    `vertices` (V, 3) is a neutral face (expressions move the jaw; framing should not follow them), `chin_vertex`
    the chin's vertex index, e.g. `FaceModel.landmarks[8]` (Multi-PIE point 8 is the chin), and `surface` (V,) bool
    the vertices that count (all by default; e.g. the face model's layout.framed, without the back of the head).
    """
    above = vertices[:, 1] >= vertices[chin_vertex, 1]
    return bounding_sphere(vertices[above if surface is None else above & surface])
