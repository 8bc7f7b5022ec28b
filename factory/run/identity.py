"""Render one identity: every expression from every view, with its layers, heatmaps, mesh and texture.

    renderer = IdentityRenderer(RenderConfig(image_size=512))     # loads face model, rig, texturer once
    layers = renderer.render(plan_identity(123, seed=0))         # dict of named layers (numpy arrays)
    members = renderer.encode_sample(spec, layers)               # {"meta.json": b"…", "neutral.v0.jpg": b"…", …}

`render` reads as the pipeline: spec → face (the rig's mesh of every expression) → texture → scene (cameras,
light and background, translated from the plan into the renderer's own types) → render each view (one raster
pass covers all expressions) → named layers → heatmaps (reusing the frontal view's covered pixels). The renderer
(factory/render) knows nothing of plans; this module is where a plan becomes meshes, cameras and lights.
`encode_sample` turns layers into the sample members of docs/DATA.md with fixed encoder settings, so the same spec
gives the same bytes.

With the `diffusion` texturer or the `inpaint` background, `render(spec, outputs)` takes what the diffusion stage
made for the identity (its portraits and per-view backgrounds: factory/run/stage.py gets them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from factory import __version__
from factory.diffusion.jobs import DiffusionOutputs
from factory.diffusion.settings import DiffusionConfig
from factory.errors import FactoryError
from factory.face.flame.model import FlameSource
from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.face.source import FACE_MODELS, file_sha256, load_face
from factory.face.texture import TEXTURERS, DiffusionTexturer, Texture, make_texturer
from factory.format.encoders import DEPTH_UNIT_CM, ObjWriter, encode_depth, encode_jpeg, encode_png
from factory.format.members import MESH, META, TEXTURE, heatmap_member, view_member
from factory.options import ConfigError, reject_unknown_keys
from factory.render.background import Background
from factory.render.camera import Camera, Orbit, bounding_sphere, head_camera
from factory.render.heatmap import NORMALISATION_CM, heatmap_layer, vertex_heat
from factory.render.layers import depth_layer, landmarks_layer, rgb_layer, segmentation_layer
from factory.render.lights import Light
from factory.render.mesh import Meshes
from factory.render.pixels import CoveredPixels
from factory.render.raster import BACKENDS, Rasterizer
from factory.render.renderer import MeshRenderer, RenderedView
from factory.render.shading import Shader, UVTexture
from factory.run.backgrounds import BACKGROUNDS
from factory.spec.plan import IdentitySpec, View
from factory.spec.plan import Light as PlannedLight

DEVICES = ("auto", "cpu", "cuda")
VIEW_LAYERS = ("rgb", "segmentation", "depth", "landmarks_2d", "landmarks_visible")  # per view: [expression, view, …]


# The FLAME files a render reads: (path field, its sha256 field). A path is where the file is on this machine; the
# digest is what the data depends on (GenerateConfig.content() keeps the digests, not the paths).
FLAME_FILES = (("flame_path", "flame_sha256"), ("flame_uv", "flame_uv_sha256"), ("flame_landmarks", "flame_landmarks_sha256"))


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 512
    texturer: str = "procedural"
    texture_size: int = 1024
    backend: str = "auto"  # raster backend: "auto" (pytorch3d on CUDA, torch otherwise), "torch", "pytorch3d"
    jpeg_quality: int = 92
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda"
    background: str = "gradient"  # a name in factory/run/backgrounds.py BACKGROUNDS
    diffusion: DiffusionConfig | None = None  # models and samplers; set (to defaults) when the texturer or background uses them
    face_model: str = "ict"  # "ict" (bundled) or "flame" (the user's file at flame_path)
    flame_path: str | None = None  # FLAME 2020 / 2023 / 2023 Open model, .pkl or .npz
    flame_uv: str | None = None  # FLAME's UV layout (.obj with vt, or .npz with vt/ft); else ICT's UVs transferred
    flame_landmarks: str | None = None  # a 68- (or 51-) point landmark embedding; else the model file's, else transferred
    # Each file's sha256: filled in from the file when not given; when given, the file must have it.
    flame_sha256: str | None = None
    flame_uv_sha256: str | None = None
    flame_landmarks_sha256: str | None = None

    def __post_init__(self) -> None:
        self.check_face_model()
        if not 32 <= self.image_size <= 4096:
            raise ConfigError(f"image_size must be 32..4096 pixels, got {self.image_size}")
        if self.texturer not in TEXTURERS:
            raise ConfigError(f"unknown texturer {self.texturer!r}; known: {', '.join(sorted(TEXTURERS))}")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"unknown background {self.background!r}; known: {', '.join(sorted(BACKGROUNDS))}")
        if self.uses_diffusion and self.diffusion is None:
            object.__setattr__(self, "diffusion", DiffusionConfig())
        elif not self.uses_diffusion and self.diffusion is not None:
            raise ConfigError("diffusion settings (models, sampler) were given, but neither texturer 'diffusion' nor background "
                              "'inpaint' uses them")
        if not 64 <= self.texture_size <= 8192:
            raise ConfigError(f"texture_size must be 64..8192, got {self.texture_size}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    @property
    def uses_diffusion(self) -> bool:
        """Whether identities need the diffusion stage (portraits for the texture, or inpainted backgrounds)."""
        return self.texturer == "diffusion" or self.background == "inpaint"

    def check_face_model(self) -> None:
        """The FLAME files exist when face_model is flame (and only then), with their digests filled in or matching."""
        if self.face_model not in FACE_MODELS:
            raise ConfigError(f"face_model must be one of {', '.join(FACE_MODELS)}, got {self.face_model!r}")
        if self.face_model == "ict":
            given = [name for pair in FLAME_FILES for name in pair if getattr(self, name) is not None]
            if given:
                raise ConfigError(f"{', '.join(given)} only apply with face_model: flame (--face-model flame)")
            return
        if not self.flame_path:
            raise ConfigError("face_model flame needs flame_path (--flame-path): your FLAME model file, see the README")
        for path_field, digest_field in FLAME_FILES:
            path = getattr(self, path_field)
            if path is None:
                continue
            if not Path(path).is_file():
                raise ConfigError(f"{path_field}: no such file {path}")
            digest = file_sha256(path)
            if getattr(self, digest_field) not in (None, digest):
                raise ConfigError(f"{path_field} {path} has sha256 {digest}, not the {digest_field} {getattr(self, digest_field)} asked for")
            object.__setattr__(self, digest_field, digest)  # frozen: filled once, here

    def flame_source(self) -> FlameSource | None:
        if self.face_model != "flame":
            return None
        return FlameSource(path=self.flame_path, uv=self.flame_uv, landmarks=self.flame_landmarks)

    @classmethod
    def from_dict(cls, data: dict) -> "RenderConfig":
        reject_unknown_keys(cls, data, "render option")
        data = dict(data)
        if isinstance(data.get("diffusion"), dict):
            data["diffusion"] = DiffusionConfig.from_dict(data["diffusion"])
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


class Scene(NamedTuple):
    """What the plan puts around the face, in the renderer's types."""

    cameras: list[Camera]  # one per planned view, in plan order
    light: Light
    backgrounds: list[Background]  # one per planned view


class IdentityRenderer:
    """Long-lived: holds the face model, rig, texturer (with its UV atlas) and the mesh renderer."""

    def __init__(self, config: RenderConfig | None = None):
        self.config = config or RenderConfig()
        # The rig and the texturer run on the CPU (small, once per identity); raster, shading and layers run on
        # `device`, where a GPU pays off (and backend "auto" then picks pytorch3d's CUDA rasterizer).
        self.device = resolve_device(self.config.device)
        self.face = load_face(self.config.face_model, self.config.flame_source())
        self.check_face_files()
        self.model = self.face.model
        self.rig = AURig(self.model)
        self.texturer = make_texturer(self.config.texturer, self.model, self.config.texture_size)
        atlas = self.texturer.atlas
        self.obj_writer = ObjWriter(atlas.faces.numpy(), atlas.corner_uvs.numpy())
        self.faces, self.corner_uvs, self.face_part = (x.to(self.device) for x in (atlas.faces, atlas.corner_uvs, atlas.face_part))
        self.rasterizer = Rasterizer(self.config.backend)
        self.renderer = MeshRenderer(self.rasterizer, Shader(self.model.part_names))

    def check_face_files(self) -> None:
        """The FLAME file read here is the one the config names by digest (on a cluster, every node's copy must be)."""
        record, config = self.face.record, self.config
        if record["name"] == "flame" and record["sha256"] != config.flame_sha256:
            raise ConfigError(f"{config.flame_path} on this machine has sha256 {record['sha256']}, the run expects {config.flame_sha256}")

    def render(self, spec: IdentitySpec, outputs: DiffusionOutputs | None = None, texture: Texture | None = None) -> dict[str, object]:
        """All layers of one identity. Arrays are indexed [expression, view, …] in spec order. `outputs`: what the
        diffusion stage made for it (when the texturer or background needs them); `texture`: one already made."""
        meshes = self.pose(spec)  # face: one mesh per expression
        texture = texture or self.texture(spec, meshes.verts[0], outputs)  # texture: once per identity
        surface = UVTexture.from_srgb(texture.image.to(self.device))
        scene = self.scene(spec, meshes, outputs)  # cameras, light, backgrounds
        per_view, frontal = [], None
        for camera, background in zip(scene.cameras, scene.backgrounds):  # every view: one raster pass covers all expressions
            view = self.renderer(meshes, camera, texture=surface, light=scene.light, background=background)
            per_view.append(self.view_layers(meshes, camera, view))
            frontal = view.pixels if frontal is None else frontal  # the first planned view is the frontal one
        layers: dict[str, object] = {name: np.stack([v[name] for v in per_view], axis=1) for name in VIEW_LAYERS}
        layers["mask"] = layers["segmentation"] > 0
        layers["heatmap"] = self.heatmaps(meshes, frontal)
        layers.update(identity_layers(meshes, self.model, texture, scene))
        layers["background_parameters"] = outputs.background_parameters if outputs else {}
        return layers

    def pose(self, spec: IdentitySpec) -> Meshes:
        """The face: one mesh per expression of the spec, from the rig, on the render device."""
        verts = self.rig.vertices(torch.tensor(spec.identity, dtype=torch.float32), [e.aus for e in spec.expressions])
        return Meshes(verts.to(self.device), self.faces, self.corner_uvs, self.face_part)

    def texture(self, spec: IdentitySpec, neutral: torch.Tensor, outputs: DiffusionOutputs | None = None) -> Texture:
        """The identity's texture: painted from its plan, or its portraits baked onto its neutral face (V, 3)."""
        if not isinstance(self.texturer, DiffusionTexturer):
            return self.texturer.texture(spec.skin, spec.demographics)
        if outputs is None or not outputs.portraits:
            raise FactoryError(f"{spec.id}: the diffusion texturer needs the portraits the diffusion stage makes")
        return self.texturer.bake(spec.skin, spec.demographics, neutral, outputs.portraits, self.config.diffusion.texture)

    def scene(self, spec: IdentitySpec, meshes: Meshes, outputs: DiffusionOutputs | None = None,
              background: str | None = None) -> Scene:
        """The planned views as cameras framing the neutral face, the plan's light, and a background per view of the
        configured kind (or of kind `background`)."""
        centre, radius = bounding_sphere(meshes.verts[0, self.model.layout.framed.to(self.device)])
        cameras = [head_camera(orbit_of(view), self.config.image_size, centre, radius) for view in spec.views]
        backgrounds = BACKGROUNDS[background or self.config.background](spec, outputs)
        return Scene(cameras=cameras, light=light_of(spec.light), backgrounds=backgrounds)

    def view_layers(self, meshes: Meshes, camera: Camera, view: RenderedView) -> dict[str, np.ndarray]:
        """The VIEW_LAYERS of one view, each (expressions, …)."""
        points, visible = landmarks_layer(self.model.landmark_points(meshes.verts), camera, view.fragments)
        return {"rgb": rgb_layer(view.image), "segmentation": segmentation_layer(view.fragments, meshes.face_part),
                "depth": depth_layer(view.fragments), "landmarks_2d": points, "landmarks_visible": visible}

    def heatmaps(self, meshes: Meshes, frontal: CoveredPixels) -> np.ndarray:
        """(X, H, W, 3) pain-region heatmaps over the frontal view's pixels; the neutral's (x = 0) is black."""
        return heatmap_layer(frontal, vertex_heat(meshes.verts, meshes.verts[0]))

    def meta(self, spec: IdentitySpec, layers: dict[str, object]) -> dict:
        """meta.json of docs/DATA.md: the plan, labels, cameras, landmarks and how the sample was made."""
        data = spec.to_dict()
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
            "generator": {"package": "painfactory", "version": __version__, "face_model": self.face.record["name"],
                          "texturer": self.config.texturer, "backend": self.rasterizer.backend_name(self.device)},
        })
        if self.config.background != "gradient":  # the default leaves meta.json as it always was
            data["generator"]["background"] = self.config.background
            data["background"].update(layers["background_parameters"])
        if self.face.record["name"] == "flame":  # the FLAME file's digest, and where its landmarks and UVs came from
            data["generator"]["face_model_files"] = self.face.record
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
    return {"landmarks_3d": model.landmark_points(verts).cpu().numpy(), "vertices": verts.cpu().numpy(),
            "texture": (texture.image * 255).round().to(torch.uint8).numpy(), "texture_parameters": texture.parameters,
            "cameras": scene.cameras}


def orbit_of(view: View) -> Orbit:
    return Orbit(yaw=view.yaw, pitch=view.pitch, roll=view.roll, distance_scale=view.distance_scale)


def light_of(light: PlannedLight) -> Light:
    return Light.from_angles(azimuth_deg=light.azimuth, elevation_deg=light.elevation, kelvin=light.color_temperature,
                             intensity=light.intensity, ambient=light.ambient)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device; use device 'cpu' or 'auto'")
    return torch.device(name)


def rounded(array: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()
