"""Render one identity: every expression from every view, with its layers, heatmaps, mesh and texture.

    renderer = IdentityRenderer(RenderConfig(image_size=512))     # loads face model, rig, texturer once
    layers = renderer.render(plan_identity(123, seed=0))         # dict of named layers (numpy arrays)
    members = renderer.encode_sample(spec, layers)               # {"meta.json": b"…", "neutral.v0.jpg": b"…", …}

`render` reads as the pipeline: spec → face (the rig's mesh of every expression, eyes on the planned gaze target)
→ surface detail (each expression's creases from how it compresses the skin, the lids' shadow on the eyes) →
texture → scene (cameras, light and background, translated from the plan into the renderer's own types) → render
each view (one raster pass covers all expressions; the lash cards blended over it) → named layers → heatmaps
(reusing the frontal view's covered pixels). The renderer (factory/render) knows nothing of plans or faces; this
module is where a plan becomes meshes, surface detail, overlays, cameras and lights.
`encode_sample` turns layers into the sample members of docs/DATA.md with fixed encoder settings, so the same spec
gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from factory import __version__
from factory.face import ict
from factory.face.eyes import cornea_relief
from factory.face.lashes import LashCards
from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.face.texture import TEXTURERS, Texture, make_texturer
from factory.face.texture.palette import hair_srgb, skin_base_srgb
from factory.face.wrinkles import CreaseModel
from factory.format.encoders import DEPTH_UNIT_CM, ObjWriter, encode_depth, encode_jpeg, encode_png
from factory.format.members import MESH, META, TEXTURE, heatmap_member, view_member
from factory.options import ConfigError, reject_unknown_keys
from factory.render.background import GradientBackground
from factory.render.camera import Camera, Orbit, bounding_sphere, head_camera
from factory.render.detail import SurfaceDetail
from factory.render.heatmap import NORMALISATION_CM, heatmap_layer, vertex_heat
from factory.render.layers import depth_layer, landmarks_layer, rgb_layer, segmentation_layer
from factory.render.lights import GAMMA, Light
from factory.render.mesh import Meshes
from factory.render.overlay import Overlay, draw_overlay
from factory.render.pixels import CoveredPixels
from factory.render.raster import BACKENDS, Rasterizer
from factory.render.renderer import MeshRenderer, RenderedView
from factory.render.shading import Shader, UVTexture
from factory.spec.plan import Background as PlannedBackground
from factory.spec.plan import IdentitySpec, View
from factory.spec.plan import Light as PlannedLight

DEVICES = ("auto", "cpu", "cuda")
LASH_DARKENING = 0.45  # lashes are darker than the hair of the head
VIEW_LAYERS = ("rgb", "segmentation", "depth", "landmarks_2d", "landmarks_visible")  # per view: [expression, view, …]


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 512
    texturer: str = "procedural"
    texture_size: int = 1024
    backend: str = "auto"  # raster backend: "auto" (pytorch3d on CUDA, torch otherwise), "torch", "pytorch3d"
    jpeg_quality: int = 92
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda"

    def __post_init__(self) -> None:
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


class Scene(NamedTuple):
    """What the plan puts around the face, in the renderer's types."""

    cameras: list[Camera]  # one per planned view, in plan order
    light: Light
    background: GradientBackground


class PosedFace(NamedTuple):
    """The rig's output for one identity."""

    meshes: Meshes  # one mesh per expression, in spec order
    rest: torch.Tensor  # (V, 3) the identity's expressionless mesh (CPU)
    gaze_target: torch.Tensor  # (3,) the world point both eyes look at (cm)


class IdentityRenderer:
    """Long-lived: holds the face model, rig, texturer (with its UV atlas) and the mesh renderer."""

    def __init__(self, config: RenderConfig | None = None):
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
        self.creases = CreaseModel(self.model, atlas)
        self.relief = (self.creases.relief + cornea_relief(self.model, atlas)).to(self.device)
        self.lashes = LashCards(self.model)
        self.rasterizer = Rasterizer(self.config.backend)
        self.renderer = MeshRenderer(self.rasterizer, Shader(self.model.part_names))

    def render(self, spec: IdentitySpec) -> dict[str, object]:
        """All layers of one identity. Arrays are indexed [expression, view, …] in spec order."""
        face = self.pose(spec)  # face: one mesh per expression, eyes on the planned gaze target
        meshes = face.meshes
        detail = self.surface_detail(spec, face)  # its creases and lid shadows, per expression
        texture = self.texturer.texture(spec.skin, spec.demographics)  # texture: once per identity
        surface = UVTexture.from_srgb(texture.image.to(self.device))
        scene = self.scene(spec, meshes)  # cameras, light, background
        lashes = self.lash_overlay(spec, meshes)  # see-through lash cards, drawn over every view
        per_view, frontal = [], None
        for camera in scene.cameras:  # every view: one raster pass covers all expressions
            view = self.renderer(meshes, camera, texture=surface, light=scene.light, background=scene.background,
                                 detail=detail)
            draw_overlay(view, lashes, camera, scene.light, self.rasterizer)  # the lashes, over view.image in place
            per_view.append(self.view_layers(meshes, camera, view))
            frontal = view.pixels if frontal is None else frontal  # the first planned view is the frontal one
        layers: dict[str, object] = {name: np.stack([v[name] for v in per_view], axis=1) for name in VIEW_LAYERS}
        layers["mask"] = layers["segmentation"] > 0
        layers["heatmap"] = self.heatmaps(meshes, frontal)
        layers.update(identity_layers(meshes, self.model, texture, scene))
        layers["gaze_target"] = face.gaze_target.cpu().numpy()
        return layers

    def pose(self, spec: IdentitySpec) -> "PosedFace":
        """The face: one mesh per expression of the spec from the rig (on the render device), both eyes on the
        planned gaze target; with the expressionless mesh the expressions are measured against."""
        identity = torch.tensor(spec.identity, dtype=torch.float32)
        rest = self.rig.rest_vertices(identity)
        gaze = spec.gaze
        target = self.rig.eyes.gaze_target(rest, yaw_deg=gaze.yaw, pitch_deg=gaze.pitch, distance_cm=gaze.distance)
        verts = self.rig.vertices(identity, [e.aus for e in spec.expressions], gaze_target=target)
        return PosedFace(Meshes(verts.to(self.device), self.faces, self.corner_uvs, self.face_part), rest, target)

    def surface_detail(self, spec: IdentitySpec, face: "PosedFace") -> SurfaceDetail:
        """What the mesh is too coarse to carry: each expression's creases, from how it compresses the skin of
        this identity's expressionless face (factory/face/wrinkles.py), and the upper lids' shadow on the eyes."""
        verts = face.meshes.verts.cpu()
        depth = self.rig.eyes.with_cornea(self.creases.depth(verts, face.rest, age=spec.demographics.age))
        gap = self.rig.eyes.lid_gap(verts)
        return SurfaceDetail(relief=self.relief, depth=depth.to(self.device), edge_gap=gap.to(self.device))

    def lash_overlay(self, spec: IdentitySpec, meshes: Meshes) -> Overlay:
        """The lash cards of every expression, in the identity's hair colour darkened (lashes look darker than the
        hair of the head), drawn over each view by their strands' coverage."""
        hair = hair_srgb(spec.skin.hair, skin_base_srgb(spec.skin.tone, spec.skin.undertone))
        rgba = self.lashes.texture((hair * LASH_DARKENING) ** GAMMA)
        return Overlay(self.lashes.meshes(meshes.verts), rgba.to(self.device))

    def scene(self, spec: IdentitySpec, meshes: Meshes) -> Scene:
        """The planned views as cameras framing the neutral face, and the plan's light and background."""
        centre, radius = bounding_sphere(meshes.verts[0, : ict.FRAMED_VERTEX_COUNT])
        cameras = [head_camera(orbit_of(view), self.config.image_size, centre, radius) for view in spec.views]
        return Scene(cameras=cameras, light=light_of(spec.light), background=background_of(spec.background))

    def view_layers(self, meshes: Meshes, camera: Camera, view: RenderedView) -> dict[str, np.ndarray]:
        """The VIEW_LAYERS of one view, each (expressions, …)."""
        points, visible = landmarks_layer(meshes.verts[:, self.model.landmarks], camera, view.fragments)
        return {"rgb": rgb_layer(view.image), "segmentation": segmentation_layer(view.fragments, meshes.face_part),
                "depth": depth_layer(view.fragments), "landmarks_2d": points, "landmarks_visible": visible}

    def heatmaps(self, meshes: Meshes, frontal: CoveredPixels) -> np.ndarray:
        """(X, H, W, 3) pain-region heatmaps over the frontal view's pixels; the neutral's (x = 0) is black."""
        return heatmap_layer(frontal, vertex_heat(meshes.verts, meshes.verts[0]))

    def meta(self, spec: IdentitySpec, layers: dict[str, object]) -> dict:
        """meta.json of docs/DATA.md: the plan, labels, cameras, landmarks and how the sample was made."""
        data = spec.to_dict()
        data["gaze"]["target"] = rounded(layers["gaze_target"], 4)  # world cm, the point both eyes look at
        for x, expression in enumerate(data["expressions"]):
            expression["landmarks_3d"] = rounded(layers["landmarks_3d"][x], 4)
        for v, (view, camera) in enumerate(zip(data["views"], layers["cameras"])):
            view.update({key: rounded(np.asarray(value), 6) for key, value in camera.to_dict().items()})
            names = [e.name for e in spec.expressions]
            view["landmarks_2d"] = {name: rounded(layers["landmarks_2d"][x, v], 3) for x, name in enumerate(names)}
            view["landmarks_visible"] = {name: layers["landmarks_visible"][x, v].tolist() for x, name in enumerate(names)}
            view["head_pose"] = {"yaw": view["yaw"], "pitch": view["pitch"], "roll": view["roll"]}
        data.update({
            "image_size": self.config.image_size, "depth_unit_cm": DEPTH_UNIT_CM, "parts": list(self.model.part_names),
            "heatmap": {"normalisation_cm": NORMALISATION_CM, "view": spec.views[0].name, "colormap": "hot"},
            "texture": layers["texture_parameters"],
            "generator": {"package": "painfactory", "version": __version__, "face_model": "ict-face-light",
                          "texturer": self.config.texturer,
                          "backend": self.rasterizer.backend_name(self.device)},
        })
        return data

    def encode_sample(self, spec: IdentitySpec, layers: dict[str, object]) -> dict[str, bytes]:
        """The sample members of docs/DATA.md (names without the sample key), in a fixed order."""
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
        return members


def identity_layers(meshes: Meshes, model: FaceModel, texture: Texture, scene: Scene) -> dict[str, object]:
    """The layers that belong to the identity rather than a view: 3D landmarks, meshes, texture, cameras."""
    verts = meshes.verts
    return {"landmarks_3d": verts[:, model.landmarks].cpu().numpy(), "vertices": verts.cpu().numpy(),
            "texture": (texture.image * 255).round().to(torch.uint8).numpy(), "texture_parameters": texture.parameters,
            "cameras": scene.cameras}


def orbit_of(view: View) -> Orbit:
    return Orbit(yaw=view.yaw, pitch=view.pitch, roll=view.roll, distance_scale=view.distance_scale)


def light_of(light: PlannedLight) -> Light:
    return Light.from_angles(azimuth_deg=light.azimuth, elevation_deg=light.elevation, kelvin=light.color_temperature,
                             intensity=light.intensity, ambient=light.ambient)


def background_of(background: PlannedBackground) -> GradientBackground:
    return GradientBackground(top=tuple(background.top), bottom=tuple(background.bottom))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device; use device 'cpu' or 'auto'")
    return torch.device(name)


def rounded(array: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()
