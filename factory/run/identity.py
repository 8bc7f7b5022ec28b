"""Render one identity: every expression from every view, with its layers, heatmaps, mesh and texture.

    renderer = IdentityRenderer(RenderConfig(image_size=512))     # loads face model, rig, texturer once
    layers = renderer.render(plan_identity(123, seed=0))         # dict of named layers (numpy arrays)
    members = renderer.encode_sample(spec, layers)               # {"meta.json": b"…", "neutral.v0.jpg": b"…", …}

The steps of `render`, in order: the rig makes one mesh per expression; the texturer paints the identity's
texture once; the cameras frame the neutral head; per view, one rasterizer pass covers all expressions, and
shading and the layers are read from those Fragments; the heatmaps reuse the frontal view's Fragments of the pain
meshes. `encode_sample` turns layers into the sample members of docs/DATA.md with fixed encoder settings, so the
same spec gives the same bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from factory.format.encoders import DEPTH_UNIT_CM, ObjWriter, encode_depth, encode_jpeg, encode_png
from factory.format.members import MESH, META, TEXTURE, heatmap_member, view_member
from factory.options import ConfigError, reject_unknown_keys
from factory.spec.plan import IdentitySpec
from factory.render.raster import BACKENDS

DEVICES = ("auto", "cpu", "cuda")
FRAMED_VERTICES = 6706  # the ICT narrow face area (vertices 0–6705): what the cameras frame


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 512
    texturer: str = "procedural"
    texture_size: int = 1024
    backend: str = "auto"  # raster backend: "auto" (pytorch3d on CUDA, torch otherwise), "torch", "pytorch3d"
    jpeg_quality: int = 92
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda"

    def __post_init__(self) -> None:
        from factory.face.texture import TEXTURERS

        if not 32 <= self.image_size <= 4096:
            raise ConfigError(f"image_size must be 32..4096 pixels, got {self.image_size}")
        if self.texturer not in TEXTURERS:
            raise ConfigError(f"unknown texturer {self.texturer!r}; known: {', '.join(sorted(TEXTURERS))}")
        if not 64 <= self.texture_size <= 8192:
            raise ConfigError(f"texture_size must be 64..8192, got {self.texture_size}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "RenderConfig":
        reject_unknown_keys(cls, data, "render option")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


class IdentityRenderer:
    """Long-lived: holds the face model, rig, texturer (with its UV atlas) and rasterizer settings."""

    def __init__(self, config: RenderConfig | None = None):
        from factory.face.model import FaceModel
        from factory.face.rig import AURig
        from factory.face.texture import make_texturer

        self.config = config or RenderConfig()
        # The rig and the texturer run on the CPU (small, once per identity); raster, shading and layers run on
        # `device`, where a GPU pays off (and backend "auto" then picks pytorch3d's CUDA rasterizer).
        self.device = resolve_device(self.config.device)
        self.model = FaceModel.load()
        self.rig = AURig(self.model)
        self.texturer = make_texturer(self.config.texturer, self.model, self.config.texture_size)
        atlas = self.texturer.atlas
        self.obj_writer = ObjWriter(atlas.faces.numpy(), atlas.corner_uvs.numpy())
        self.faces, self.corner_uvs, self.face_part = (x.to(self.device) for x in (atlas.faces, atlas.corner_uvs, atlas.face_part))
        self.stopwatch = Stopwatch()  # seconds per stage of the last render/encode (bench/bench_identity.py)

    def render(self, spec: IdentitySpec) -> dict[str, object]:
        """All layers of one identity. Arrays are indexed [expression, view, …] in spec order."""
        from factory.render.heatmap import heatmap_layer, vertex_heat
        from factory.render.camera import bounding_sphere, head_camera
        from factory.render.layers import depth_layer, landmarks_layer, rgb_layer, segmentation_layer
        from factory.render.raster import rasterize
        from factory.render.shading import GAMMA, CoveredPixels, background_image, shade, vertex_normals

        size = self.config.image_size
        clock = self.stopwatch
        clock.start()
        verts = self.rig.vertices(torch.tensor(spec.identity, dtype=torch.float32), [e.aus for e in spec.expressions])
        verts = verts.to(self.device)
        normals = vertex_normals(verts, self.faces)  # once per expression, shared by its views
        clock.lap("rig")
        texture = self.texturer.texture(spec.skin, spec.demographics)  # once per identity
        linear_texture = texture.image.to(self.device) ** GAMMA
        clock.lap("texture")
        centre, radius = bounding_sphere(verts[0, :FRAMED_VERTICES])
        cameras = [head_camera(view, size, centre, radius) for view in spec.views]
        background = background_image(spec.background, size).to(self.device)
        landmarks_3d = verts[:, self.model.landmarks]

        per_view = {"rgb": [], "segmentation": [], "depth": [], "landmarks_2d": [], "landmarks_visible": []}
        frontal_pixels = None
        for view, camera in zip(spec.views, cameras):
            clock.lap("other")
            fragments = rasterize(verts, self.faces, camera, backend=self.config.backend)  # all expressions at once
            clock.lap("raster")
            pixels = CoveredPixels(fragments, self.faces, verts.shape[1])
            colour = shade(pixels, normals, self.corner_uvs, self.face_part, self.model.part_names,
                           linear_texture, spec.light, camera)
            per_view["rgb"].append(rgb_layer(pixels, colour, background))
            clock.lap("shade")
            per_view["segmentation"].append(segmentation_layer(fragments, self.face_part))
            per_view["depth"].append(depth_layer(fragments))
            points, visible = landmarks_layer(landmarks_3d, camera, fragments)
            per_view["landmarks_2d"].append(points)
            per_view["landmarks_visible"].append(visible)
            clock.lap("layers")
            if frontal_pixels is None:
                frontal_pixels = pixels

        layers: dict[str, object] = {name: np.stack(values, axis=1) for name, values in per_view.items()}
        layers["mask"] = layers["segmentation"] > 0
        clock.lap("layers")
        heat = vertex_heat(verts, verts[0])
        # The frontal view's fragments of the pain meshes are reused: no extra raster pass for the heatmaps.
        layers["heatmap"] = heatmap_layer(frontal_pixels, heat)  # (X, H, W, 3); the neutral's is black
        clock.lap("heatmap")
        layers["landmarks_3d"] = landmarks_3d.cpu().numpy()
        layers["vertices"] = verts.cpu().numpy()
        layers["texture"] = (texture.image * 255).round().to(torch.uint8).numpy()
        layers["texture_parameters"] = texture.parameters
        layers["cameras"] = cameras
        clock.lap("other")
        return layers

    def meta(self, spec: IdentitySpec, layers: dict[str, object]) -> dict:
        """meta.json of docs/DATA.md: the plan, labels, cameras, landmarks and how the sample was made."""
        from factory import __version__
        from factory.render.heatmap import NORMALISATION_CM

        data = spec.to_dict()
        for x, expression in enumerate(data["expressions"]):
            expression["landmarks_3d"] = rounded(layers["landmarks_3d"][x], 4)
        for v, (view, camera) in enumerate(zip(data["views"], layers["cameras"])):
            view.update({key: rounded(np.asarray(value), 6) for key, value in camera.to_dict().items()})
            names = [e.name for e in spec.expressions]
            view["landmarks_2d"] = {name: rounded(layers["landmarks_2d"][x, v], 3) for x, name in enumerate(names)}
            view["landmarks_visible"] = {name: layers["landmarks_visible"][x, v].tolist() for x, name in enumerate(names)}
            view["head_pose"] = {"yaw": view["yaw"], "pitch": view["pitch"], "roll": view["roll"]}
        from factory.render.raster import backend_module

        # "raster_torch" / "raster_pytorch3d": the module the rasterizer's own rule picks for this device.
        backend = backend_module(self.config.backend, self.device).__name__.rsplit("_", 1)[-1]
        data.update({
            "image_size": self.config.image_size, "depth_unit_cm": DEPTH_UNIT_CM, "parts": list(self.model.part_names),
            "heatmap": {"normalisation_cm": NORMALISATION_CM, "view": spec.views[0].name, "colormap": "hot"},
            "texture": layers["texture_parameters"],
            "generator": {"package": "painfactory", "version": __version__, "face_model": "ict-face-light",
                          "texturer": self.config.texturer, "backend": backend},
        })
        return data

    def encode_sample(self, spec: IdentitySpec, layers: dict[str, object]) -> dict[str, bytes]:
        """The sample members of docs/DATA.md (names without the sample key), in a fixed order."""
        self.stopwatch.start()
        members = {META: json.dumps(self.meta(spec, layers), sort_keys=True, separators=(",", ":")).encode()}
        for x, expression in enumerate(spec.expressions):
            for v, view in enumerate(spec.views):
                members[view_member(expression.name, view.name)] = encode_jpeg(layers["rgb"][x, v], self.config.jpeg_quality)
                members[view_member(expression.name, view.name, "segmentation")] = encode_png(layers["segmentation"][x, v])
                members[view_member(expression.name, view.name, "depth")] = encode_depth(layers["depth"][x, v])
            if x > 0:
                members[heatmap_member(expression.name)] = encode_png(layers["heatmap"][x])
        members[MESH] = self.obj_writer.encode(layers["vertices"][0])
        members[TEXTURE] = encode_png(layers["texture"])
        self.stopwatch.lap("encode")
        return members


class Stopwatch:
    """Accumulates time per named stage; `start` resets the lap clock, `lap(name)` books the time since.
    Wall time by default; bench/bench_identity.py passes `time.process_time` to count CPU time, which a busy
    shared machine disturbs less."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.last = clock()

    def start(self) -> None:
        self.last = self.clock()

    def reset(self) -> None:
        self.seconds.clear()
        self.start()

    def lap(self, stage: str) -> None:
        now = self.clock()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device; use device 'cpu' or 'auto'")
    return torch.device(name)


def rounded(array: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()
