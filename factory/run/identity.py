"""Render one identity: every expression from every view, with its layers, heatmaps, mesh and texture.

    renderer = IdentityRenderer(RenderConfig(image_size=512))     # loads face model, rig, texturer once
    layers = renderer.render(plan_identity(123, seed=0))         # dict of named layers (numpy arrays)
    members = renderer.encode_sample(spec, layers)               # {"meta.json": b"…", "neutral.v0.jpg": b"…", …}

`render` reads as the pipeline: spec → face (the rig's mesh of every expression, eyes on the planned gaze target)
→ texture → hair (shells over the scalp and beard, and strand attributes) → surface detail (each expression's
creases from how it compresses the skin, the lids' shadow on the eyes) → light (the plan's setup, with ambient
occlusion once per identity and the key light's soft shadows once per expression, shared by every view) → scene
(per view: camera, background, sensor, translated from the plan into the renderer's own types) → render each view
(one raster pass covers all expressions; the lash cards blended over it; the sensor adds defocus and noise) → named
layers → heatmaps (reusing the frontal view's covered pixels). The renderer (factory/render) knows nothing of plans
or faces; this module is where a plan becomes meshes, surface detail, overlays, cameras and lights.
`encode_sample` turns layers into the sample members of docs/DATA.md with fixed encoder settings, so the same spec
gives the same bytes. A face over 60 sags (factory/face/ageing.py, added in `pose`); with `render.sequence.frames`,
each pain expression's frames are posed and rendered through the same `render_posed` (factory/run/sequence.py).

With the `diffusion` texturer or the `inpaint` background, `render(spec, outputs)` takes what the diffusion stage
made for the identity (its portraits and one painted room per view: factory/run/stage.py gets them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from factory import __version__
from factory.diffusion.jobs import DiffusionOutputs
from factory.diffusion.settings import DiffusionConfig
from factory.errors import FactoryError
from factory.face.ageing import skin_laxity
from factory.face.eyes import cornea_relief
from factory.face.flame.model import FlameSource
from factory.face.hair_shell import HairShells
from factory.face.lashes import lash_cards
from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.face.shine import skin_shine
from factory.face.source import FACE_MODELS, file_sha256, load_face
from factory.face.texture import TEXTURERS, DiffusionTexturer, Texture, make_texturer
from factory.face.texture.palette import hair_srgb, skin_base_srgb
from factory.face.wrinkles import CreaseModel
from factory.format.encoders import COMPACT_PNG_LEVEL, DEPTH_UNIT_CM, ObjWriter, encode_depth, encode_jpeg, encode_png
from factory.format.glb import GlbWriter
from factory.format.members import ASSETS, LAYERS, MESH, MESH_FORMATS, MESH_GLB, META, SETS, TEXTURE, heatmap_member, view_member
from factory.options import ConfigError, build
from factory.render.background import Background
from factory.render.bedding import bed_camera
from factory.render.camera import Camera, Orbit, fov_of_focal_length, head_camera, head_sphere
from factory.render.detail import NO_EDGE_CM, SurfaceDetail
from factory.render.hair import HairLayer
from factory.render.heatmap import NORMALISATION_CM, heatmap_layer, vertex_heat
from factory.render.layers import depth_layer, landmarks_layer, rgb_layer, segmentation_layer
from factory.render.lights import GAMMA, Lamp, Light
from factory.render.mesh import Meshes, vertex_normals
from factory.render.occlusion import ambient_occlusion, key_light_visibility
from factory.render.overlay import Overlay, draw_overlay
from factory.render.pixels import CoveredPixels
from factory.render.raster import BACKENDS, Fragments, Rasterizer
from factory.render.renderer import MeshRenderer, RenderedView
from factory.render.sensor import Sensor, expose
from factory.render.shading import Shader, UVTexture, VertexTerms
from factory.run import bedside
from factory.run.backgrounds import ViewContext, check_background, make_background
from factory.run.sequence import encode_frames, render_sequences
from factory.spec.plan import IdentitySpec, View
from factory.spec.plan import Light as PlannedLight
from factory.spec.sequence import SequenceConfig, frame_record

DEVICES = ("auto", "cpu", "cuda")
LASH_DARKENING = 0.45  # lashes are darker than the hair of the head
VIEW_LAYERS = ("rgb", "segmentation", "depth", "landmarks_2d", "landmarks_visible")  # per view: [expression, view, …]
HAIR_PARTS = ("hair", "facial_hair")  # part names the hair shells add after the face model's
STRAND_CM = 0.045  # width of a strand (a lock of a few hairs) across the flow
CHIN = 8  # Multi-PIE landmark number of the chin


# The FLAME files a render reads: (path field, its sha256 field). A path is where the file is on this machine; the
# digest is what the data depends on (GenerateConfig.content() keeps the digests, not the paths).
FLAME_FILES = (("flame_path", "flame_sha256"), ("flame_uv", "flame_uv_sha256"), ("flame_landmarks", "flame_landmarks_sha256"))


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 512
    texturer: str = "procedural"
    texture_size: int = 1024
    backend: str = "auto"  # raster backend: "auto" (pytorch3d on CUDA, numba on CPU), "torch", "numba", "pytorch3d"
    jpeg_quality: int | None = None  # None: each view's planned quality (PlanConfig.jpeg_quality); a number: all
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda"
    background: str = "scene"  # one of factory/run/backgrounds.py's BACKGROUNDS: "scene" (rooms), "gradient", "inpaint"
    diffusion: DiffusionConfig | None = None  # models and samplers; set (to defaults) when the texturer or background uses them
    face_model: str = "ict"  # "ict" (bundled) or "flame" (the user's file at flame_path)
    flame_path: str | None = None  # FLAME 2020 / 2023 / 2023 Open model, .pkl or .npz
    flame_uv: str | None = None  # FLAME's UV layout (.obj with vt, or .npz with vt/ft); else ICT's UVs transferred
    flame_landmarks: str | None = None  # a 68- (or 51-) point landmark embedding; else the model file's, else transferred
    # Each file's sha256: filled in from the file when not given; when given, the file must have it.
    flame_sha256: str | None = None
    flame_uv_sha256: str | None = None
    flame_landmarks_sha256: str | None = None
    sequence: SequenceConfig = field(default_factory=SequenceConfig)  # pain sequences (factory/spec/sequence.py); none by default

    def __post_init__(self) -> None:
        self.check_face_model()
        if not 32 <= self.image_size <= 4096:
            raise ConfigError(f"image_size must be 32..4096 pixels, got {self.image_size}")
        if self.texturer not in TEXTURERS:
            raise ConfigError(f"unknown texturer {self.texturer!r}; known: {', '.join(sorted(TEXTURERS))}")
        if not 64 <= self.texture_size <= 8192:
            raise ConfigError(f"texture_size must be 64..8192, got {self.texture_size}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100 (or unset: as planned per view), got {self.jpeg_quality}")
        check_background(self.background)
        if self.uses_diffusion and self.diffusion is None:
            object.__setattr__(self, "diffusion", DiffusionConfig())  # frozen: filled once, here
        elif not self.uses_diffusion and self.diffusion is not None:
            raise ConfigError("diffusion settings (models, sampler) were given, but neither texturer 'diffusion' nor background "
                              "'inpaint' uses them")
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
    def from_dict(cls, data: dict, where: str = "render") -> "RenderConfig":
        """From a YAML mapping: every key's type checked and named (factory.options.build), then the ranges."""
        return build(cls, data, where)

    def to_dict(self) -> dict:
        return asdict(self)


class Scene(NamedTuple):
    """What the plan puts around the face, in the renderer's types: per planned view, in plan order, its camera, what
    it sees behind the head and what its sensor does."""

    cameras: list[Camera]
    backgrounds: list[Background]
    sensors: list[Sensor]


class Lighting(NamedTuple):
    """The plan's light and what of it reaches each vertex."""

    light: Light
    terms: VertexTerms  # ambient occlusion (once per identity), key-light visibility (per expression), shine


class PosedFace(NamedTuple):
    """The rig's output for one identity."""

    verts: torch.Tensor  # (N, V, 3) one mesh per expression, in spec order (CPU)
    rest: torch.Tensor  # (V, 3) the identity's expressionless mesh (CPU)
    gaze_target: torch.Tensor  # (3,) the world point both eyes look at (cm)
    laxity: torch.Tensor | None = None  # (V, 3) the older face's sag, already in verts and rest (factory/face/ageing.py)


class Prepared(NamedTuple):
    """One identity ready to be rasterized: its posed face, texture, dressed meshes, surface detail, light and scene."""

    spec: IdentitySpec
    outputs: DiffusionOutputs | None
    face: PosedFace
    texture: Texture
    surface: UVTexture  # the texture in linear light, on the render device
    meshes: Meshes  # face and hair shells, one mesh per expression, on the render device
    hair: HairLayer
    detail: SurfaceDetail
    lighting: Lighting
    scene: Scene
    lashes: Overlay | None
    regions: list[torch.Tensor] | None  # per PSPI AU, the vertices whose visible share meta.json records, or None


class IdentityRenderer:
    """Long-lived: holds the face model, rig, texturer (with its UV atlas) and the mesh renderer."""

    def __init__(self, config: RenderConfig | None = None):
        self.config = config or RenderConfig()
        # The rig, texturer and hair shells run on the CPU (small, once per identity); raster, shading and layers run
        # on `device`, where a GPU pays off (and backend "auto" then picks pytorch3d's CUDA rasterizer).
        self.device = resolve_device(self.config.device)
        self.face = load_face(self.config.face_model, self.config.flame_source())
        self.check_face_files()
        self.model = self.face.model
        self.rig = AURig(self.model)
        self.texturer = make_texturer(self.config.texturer, self.model, self.config.texture_size)
        atlas = self.texturer.atlas
        self.obj_writer = ObjWriter(atlas.faces.numpy(), atlas.corner_uvs.numpy())
        self.part_names = self.model.part_names + HAIR_PARTS + (bedside.OCCLUDER_PART,)
        self.hair = HairShells(self.model, atlas.faces, atlas.corner_uvs, atlas.face_part,
                               *(self.part_names.index(name) for name in HAIR_PARTS))
        self.shine = skin_shine(self.model.neutral, self.model.neutral[self.model.landmarks])
        self.faces, self.corner_uvs, self.face_part = atlas.faces, atlas.corner_uvs, atlas.face_part
        self.creases = CreaseModel(self.model, atlas)
        self.relief = (self.creases.relief + cornea_relief(self.model, atlas)).to(self.device)
        self.lashes = lash_cards(self.model)  # None for a model without lash cards (FLAME)
        self.rasterizer = Rasterizer(self.config.backend)
        self.renderer = MeshRenderer(self.rasterizer, Shader(self.part_names))

    def check_face_files(self) -> None:
        """The FLAME file read here is the one the config names by digest (on a cluster, every node's copy must be)."""
        record, config = self.face.record, self.config
        if record["name"] == "flame" and record["sha256"] != config.flame_sha256:
            raise ConfigError(f"{config.flame_path} on this machine has sha256 {record['sha256']}, the run expects {config.flame_sha256}")

    def render(self, spec: IdentitySpec, outputs: DiffusionOutputs | None = None, texture: Texture | None = None) -> dict[str, object]:
        """All layers of one identity. Arrays are indexed [expression, view, …] in spec order. `outputs`: what the
        diffusion stage made for it (when the texturer or background needs them); `texture`: one already made.
        The steps are apart so that factory/run/batch.py can rasterize many identities' views in one call."""
        prepared = self.prepare(spec, outputs, texture)
        return self.with_sequences(prepared, self.render_prepared(prepared))

    def render_posed(self, spec: IdentitySpec, face: "PosedFace", texture: Texture,
                     outputs: DiffusionOutputs | None = None) -> dict[str, object]:
        """The layers of posed meshes (`face.verts`, the neutral first: cameras frame it and ambient occlusion is
        taken from it), indexed [mesh, view, …]: the rest of `render`, shared with the sequences' frames."""
        return self.render_prepared(self.prepare_posed(spec, face, texture, outputs))

    def render_prepared(self, prepared: "Prepared") -> dict[str, object]:
        views = [self.render_view(prepared, v, self.renderer.rasterizer(prepared.meshes, camera))  # one pass: all expressions
                 for v, camera in enumerate(prepared.scene.cameras)]
        return self.collect(prepared, views)

    def with_sequences(self, prepared: "Prepared", layers: dict[str, object]) -> dict[str, object]:
        """`layers`, with every pain expression over time when the config asks for sequences (factory/run/sequence.py)."""
        if self.config.sequence.enabled:
            layers["sequences"] = render_sequences(self, prepared.spec, prepared.face, prepared.texture, prepared.outputs)
        return layers

    def prepare(self, spec: IdentitySpec, outputs: DiffusionOutputs | None = None, texture: Texture | None = None) -> "Prepared":
        """Everything of one identity before its views are rasterized (see `render`)."""
        face = self.pose(spec)  # face: one mesh per expression, eyes on the planned gaze target
        texture = texture or self.texture(spec, face.verts[0], outputs)  # texture: once per identity
        return self.prepare_posed(spec, face, texture, outputs)

    def prepare_posed(self, spec: IdentitySpec, face: "PosedFace", texture: Texture,
                      outputs: DiffusionOutputs | None = None) -> "Prepared":
        """Posed meshes dressed, lit and placed in their scene, ready to be rasterized."""
        surface = UVTexture.from_srgb(texture.image.to(self.device))
        occluder = bedside.pose_occluder(spec, self.model, face.rest, face.verts)  # a mask, tube, … carried by the face
        meshes, hair, source = self.dress(spec, face.verts, occluder)  # hair: shells over the scalp and beard, strands
        detail = self.surface_detail(spec, face, source, occluder)  # creases and lid shadows, per expression
        lighting = self.lighting(spec, meshes, source, occluder)  # light: occlusion and shadows, shared by every view
        scene = self.scene(spec, meshes, outputs)  # per view: camera, background, sensor
        lashes = self.lash_overlay(spec, face.verts)  # see-through lash cards, drawn over every view
        regions = bedside.au_regions(face.rest, self.model) if bedside.marked(spec) else None  # AU regions, to measure visibility
        return Prepared(spec, outputs, face, texture, surface, meshes, hair, detail, lighting, scene, lashes, regions)

    def render_view(self, prepared: Prepared, index: int, fragments: Fragments) -> tuple[dict[str, np.ndarray], CoveredPixels]:
        """View `index` of a prepared identity from its fragments (every expression): its VIEW_LAYERS (and, for a
        marked identity, each AU region's visible share) and covered pixels."""
        camera, background, sensor = (part[index] for part in prepared.scene)
        lighting, meshes = prepared.lighting, prepared.meshes
        fragments = bedside.hidden_by_bedding(fragments, background)  # (a pillow hides the head's back)
        view = self.renderer.shade(fragments, meshes, camera, texture=prepared.surface, light=lighting.light,
                                   background=background, terms=lighting.terms, hair=prepared.hair, detail=prepared.detail)
        if prepared.lashes is not None:  # the lashes, over view.image in place, before the sensor's blur and noise
            draw_overlay(view, prepared.lashes, camera, lighting.light, self.rasterizer)
        layers = self.view_layers(meshes, camera, view._replace(image=expose(view.image, sensor)))
        if prepared.regions is not None:  # the share of each AU's region this view sees, per expression
            layers["au_visibility"] = bedside.au_visibility(meshes.verts, prepared.regions, camera, view.fragments, meshes.face_part,
                                                            self.part_names.index(bedside.OCCLUDER_PART))
        return layers, view.pixels

    def collect(self, prepared: Prepared, views: list[tuple[dict[str, np.ndarray], CoveredPixels]]) -> dict[str, object]:
        """The identity's layers from its views' (in plan order; the first planned view is the frontal one)."""
        per_view = [layers for layers, _ in views]
        regions = prepared.regions
        layers: dict[str, object] = {name: np.stack([v[name] for v in per_view], axis=1) for name in VIEW_LAYERS}
        if regions is not None:
            layers["au_visibility"] = np.stack([v["au_visibility"] for v in per_view], axis=1)  # (X, V, 6)
        layers["mask"] = layers["segmentation"] > 0
        layers["heatmap"] = self.heatmaps(prepared.meshes, views[0][1])
        layers.update(identity_layers(prepared.face.verts, self.model, prepared.texture, prepared.scene))
        layers["gaze_target"] = prepared.face.gaze_target.cpu().numpy()
        layers["gaze_distance"] = self.rig.eyes.gaze_distance(prepared.face.rest, prepared.face.gaze_target)
        layers["background_parameters"] = prepared.outputs.background_parameters if prepared.outputs else {}
        return layers

    def pose(self, spec: IdentitySpec) -> "PosedFace":
        """The face: one mesh per expression of the spec from the rig, both eyes on the planned gaze target, an
        older face's skin laxity added; with the expressionless mesh the expressions are measured against."""
        identity = torch.tensor(spec.identity, dtype=torch.float32)
        rest = self.rig.rest_vertices(identity)
        gaze, camera = spec.gaze, self.cameras(spec, rest)[0]  # the first planned view is the frontal one
        target = self.rig.eyes.gaze_target(rest, camera.center, gaze.yaw, gaze.pitch, gaze.distance_scale)
        verts = self.rig.vertices(identity, [e.aus for e in spec.expressions], gaze_target=target)
        laxity = skin_laxity(self.model, rest, spec.demographics.age)  # None under 60: the meshes as they were
        if laxity is not None:  # the same sag on every expression, and on the face they are measured against
            verts, rest = verts + laxity, rest + laxity
        return PosedFace(verts, rest, target, laxity)

    def texture(self, spec: IdentitySpec, neutral: torch.Tensor, outputs: DiffusionOutputs | None = None) -> Texture:
        """The identity's texture: painted from its plan, or its portraits baked onto its neutral face (V, 3)."""
        if not isinstance(self.texturer, DiffusionTexturer):
            return self.texturer.texture(spec.skin, spec.demographics, spec.hair)
        if outputs is None or not outputs.portraits:
            raise FactoryError(f"{spec.id}: the diffusion texturer needs the portraits the diffusion stage makes")
        return self.texturer.bake(spec.skin, spec.demographics, spec.hair, neutral, outputs.portraits, self.config.diffusion.texture)

    def dress(self, spec: IdentitySpec, face: torch.Tensor,
              occluder: bedside.PosedOccluder | None = None) -> tuple[Meshes, HairLayer, torch.Tensor]:
        """The face with its planned hair's shells (and its occluder, last) appended, on the render device, the hair as
        the shader draws it, and (V + Vh,) the face vertex each face or hair vertex stands for (itself, or what a shell
        vertex was pushed out from). The face model's vertices stay first, so landmark ids still index them."""
        normals = vertex_normals(face, self.faces)
        geometry = self.hair.build(spec.hair, face, normals)
        source = torch.cat([torch.arange(face.shape[1]), geometry.source])
        # A shell vertex is shaded with the normal of the skin it was pushed out from (geometry.normals): where its
        # strands are sparse it shows that skin, which must look as it does beside the shell (and hair lies along
        # the scalp).
        meshes = Meshes(torch.cat([face, geometry.verts], dim=1).to(self.device),
                        torch.cat([self.faces, geometry.faces]).to(self.device),
                        torch.cat([self.corner_uvs, geometry.corner_uvs]).to(self.device),
                        torch.cat([self.face_part, geometry.face_part]).to(self.device),
                        normals=torch.cat([normals, geometry.normals], dim=1).to(self.device))
        colour = hair_srgb(spec.skin.hair, skin_base_srgb(spec.skin.tone, spec.skin.undertone)) ** GAMMA
        attributes = bedside.extend(geometry.attributes.T, occluder, 0.0).T  # an occluder carries no hair
        layer = HairLayer(attributes.to(self.device), colour=colour.to(self.device), strand_cm=STRAND_CM,
                          table=HairLayer.table_for(spec.hair.seed).to(self.device))
        if occluder is not None:
            meshes = bedside.with_occluder(meshes, occluder, self.part_names.index(bedside.OCCLUDER_PART))
        return meshes, layer, source

    def lighting(self, spec: IdentitySpec, meshes: Meshes, source: torch.Tensor,
                 occluder: bedside.PosedOccluder | None = None) -> Lighting:
        """The planned light, the meshes' ambient occlusion (from the neutral, carried by the vertices through every
        expression) and the key light's soft shadow on each expression; the skin's regional shine (a hair shell's
        vertex has the shine of the skin it was pushed out from: its sparse strands show that skin)."""
        light = light_of(spec.light)
        normals = meshes.vertex_normals
        occlusion = bedside.lit_occluder(ambient_occlusion(meshes.verts[0], meshes.faces, normals[0]), occluder)
        shadow = key_light_visibility(meshes.verts, meshes.faces, normals, light.direction, light.softness_deg)
        # The skin's shine only: the wet eye's glint does not depend on how oily the skin is.
        shine = torch.where(self.model.layout.skin, self.shine * spec.skin.shine, 1.0)[source]
        if occluder is not None:  # its materials' own shine: plastic, fabric, tape, skin
            shine = torch.cat([shine, occluder.mesh.shine])
        shine = shine.to(self.device)
        return Lighting(light, VertexTerms.pack(occlusion, shadow, shine))

    def surface_detail(self, spec: IdentitySpec, face: "PosedFace", source: torch.Tensor,
                       occluder: bedside.PosedOccluder | None = None) -> SurfaceDetail:
        """What the mesh is too coarse to carry: each expression's creases, from how it compresses the skin of
        this identity's expressionless face (factory/face/wrinkles.py), and the upper lids' shadow on the eyes. A
        hair shell's vertex shows the detail of the skin it was pushed out from (`source`): its sparse strands show
        that skin."""
        depth = self.rig.eyes.with_cornea(self.creases.depth(face.verts, face.rest, age=spec.demographics.age))
        gap = self.rig.eyes.lid_gap(face.verts)
        depth, gap = bedside.extend(depth[:, source], occluder, 0.0), bedside.extend(gap[:, source], occluder, NO_EDGE_CM)  # none on an occluder
        return SurfaceDetail(relief=self.relief, depth=depth.to(self.device), edge_gap=gap.to(self.device))

    def lash_overlay(self, spec: IdentitySpec, verts: torch.Tensor) -> Overlay | None:
        """The lash cards of every expression (N, V, 3), in the identity's hair colour darkened (lashes look darker
        than the hair of the head), drawn over each view by their strands' coverage; None without lash cards."""
        if self.lashes is None:
            return None
        hair = hair_srgb(spec.skin.hair, skin_base_srgb(spec.skin.tone, spec.skin.undertone))
        rgba = self.lashes.texture((hair * LASH_DARKENING) ** GAMMA)
        return Overlay(self.lashes.meshes(verts.to(self.device)), rgba.to(self.device))

    def scene(self, spec: IdentitySpec, meshes: Meshes, outputs: DiffusionOutputs | None = None,
              background: str | None = None) -> Scene:
        """Per planned view: the camera framing the neutral face through the view's lens, what it sees behind the head
        (render.background, or the choice `background`; `outputs` holds the rooms the diffusion stage painted for the
        inpaint background) and its sensor."""
        neutral = meshes.verts[0, : self.model.num_vertices]
        centre, _ = self.head(neutral)
        cameras = self.cameras(spec, neutral)
        painted = painted_rooms(spec, outputs)
        bedding = None if spec.bed is None else bedside.bedding_of(spec, self.model, neutral, centre, light_of(spec.light).direction)
        seen_by = cameras if bedding is None else [bed_camera(camera, bedding) for camera in cameras]  # the room lies in the bed's frame
        backgrounds = [make_background(background or self.config.background, spec.background,
                                       ViewContext(centre.cpu(), camera, view, room))
                       for camera, view, room in zip(seen_by, spec.views, painted)]
        if bedding is not None:  # the clinical scenario: the pillow and sheet in front of the ward's room
            backgrounds = bedside.ward_backgrounds(bedding, cameras, backgrounds)
        sensors = [Sensor(defocus_px=view.defocus_px, noise=view.sensor_noise, seed=view.sensor_seed) for view in spec.views]
        return Scene(cameras=cameras, backgrounds=backgrounds, sensors=sensors)

    def head(self, neutral: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The sphere the cameras frame around a neutral face (V, 3): the face surface from the chin up (forehead,
        temples and ears included), so portraits show the whole head and its hair, not a crop at the brows."""
        return head_sphere(neutral, int(self.model.landmarks[CHIN]), self.model.layout.framed.to(neutral.device))

    def cameras(self, spec: IdentitySpec, neutral: torch.Tensor) -> list[Camera]:
        """Per planned view, the camera framing a neutral face (V, 3) through the view's lens."""
        centre, radius = self.head(neutral)
        return [head_camera(orbit_of(view), self.config.image_size, centre, radius,
                            fov_deg=fov_of_focal_length(view.focal_mm), shift=(view.shift_x, view.shift_y))
                for view in spec.views]

    def view_layers(self, meshes: Meshes, camera: Camera, view: RenderedView) -> dict[str, np.ndarray]:
        """The VIEW_LAYERS of one view, each (expressions, …)."""
        points, visible = landmarks_layer(self.model.landmark_points(meshes.verts), camera, view.fragments)
        return {"rgb": rgb_layer(view.image), "segmentation": segmentation_layer(view.fragments, meshes.face_part),
                "depth": depth_layer(view.fragments), "landmarks_2d": points, "landmarks_visible": visible}

    def heatmaps(self, meshes: Meshes, frontal: CoveredPixels) -> np.ndarray:
        """(X, H, W, 3) pain-region heatmaps over the frontal view's pixels; the neutral's (x = 0) is black, and so is
        an occluder (it moves with the face, but it is not the face)."""
        heat = vertex_heat(meshes.verts, meshes.verts[0])
        if meshes.albedo is not None:  # the occluder's vertices are those drawn in a plain material
            heat = heat * (meshes.albedo[:, 3] == 0).to(heat)
        return heatmap_layer(frontal, heat)

    def meta(self, spec: IdentitySpec, layers: dict[str, object]) -> dict:
        """meta.json of docs/DATA.md: the plan, labels, cameras, landmarks and how the sample was made."""
        data = spec.to_dict()
        data["gaze"]["target"] = rounded(layers["gaze_target"], 4)  # world cm, the point both eyes look at
        data["gaze"]["distance"] = round(float(layers["gaze_distance"]), 2)  # cm from the midpoint of the eyes
        for x, expression in enumerate(data["expressions"]):
            expression["landmarks_3d"] = rounded(layers["landmarks_3d"][x], 4)
        for v, (view, camera) in enumerate(zip(data["views"], layers["cameras"])):
            view.update({key: rounded(np.asarray(value), 6) for key, value in camera.to_dict().items()})
            names = [e.name for e in spec.expressions]
            view["landmarks_2d"] = {name: rounded(layers["landmarks_2d"][x, v], 3) for x, name in enumerate(names)}
            view["landmarks_visible"] = {name: layers["landmarks_visible"][x, v].tolist() for x, name in enumerate(names)}
            view["head_pose"] = {"yaw": view["yaw"], "pitch": view["pitch"], "roll": view["roll"]}
        for view in data["views"]:
            view["jpeg_quality"] = self.jpeg_quality(view["jpeg_quality"])
        if "au_visibility" in layers:  # the bedside: each view's occluder class and how much of each AU it sees
            for view, record in zip(data["views"], bedside.view_records(spec, layers["au_visibility"])):
                view.update(record)
        data.update({
            "image_size": self.config.image_size, "depth_unit_cm": DEPTH_UNIT_CM, "parts": self.parts_of(spec),
            "heatmap": {"normalisation_cm": NORMALISATION_CM, "view": spec.views[0].name, "colormap": "hot"},
            "texture": layers["texture_parameters"],
            "generator": {"package": "painfactory", "version": __version__, "face_model": self.face.record["name"],
                          "texturer": self.config.texturer, "background": self.config.background,
                          "backend": self.rasterizer.backend_name(self.device)},
        })
        if "sequences" in layers:  # docs/DATA.md, "Sequences"
            data["sequences"] = [sequence.record() for sequence, _ in layers["sequences"]]
            data["frames"] = [frame_record(frame) for sequence, _ in layers["sequences"] for frame in sequence.frames]
        data["background"].update(layers["background_parameters"])  # the inpaint background: what painted the rooms
        if self.face.record["name"] == "flame":  # the FLAME file's digest, and where its landmarks and UVs came from
            data["generator"]["face_model_files"] = self.face.record
        return data

    def parts_of(self, spec: IdentitySpec) -> list[str]:
        """The segmentation's class names, by id: the occluder class only where the bedside marks the sample."""
        return list(self.part_names if bedside.marked(spec) else self.part_names[:-1])

    @cached_property
    def glb_writer(self) -> GlbWriter:
        """Made on the first mesh.glb (it parses one whole OBJ): a renderer that writes OBJs never needs it."""
        return GlbWriter(self.obj_writer, self.model.num_vertices)

    def encode_sample(self, spec: IdentitySpec, layers: dict[str, object], mesh_format: str = "obj",
                      sets: tuple[str, ...] = SETS) -> dict[str, bytes]:
        """The sample members of docs/DATA.md (names without the sample key), in a fixed order; the mesh as
        `mesh_format` (MESH_FORMATS): mesh.obj + texture.png, or one mesh.glb with the texture in it. Only the
        members of the shard sets in `sets` (factory/format/sets.py) are encoded: a run that writes no depth or mesh
        does not pay for encoding them."""
        if mesh_format not in MESH_FORMATS:
            raise ValueError(f"mesh format must be one of {', '.join(MESH_FORMATS)}, got {mesh_format!r}")
        unknown = sorted(set(sets) - set(SETS))
        if unknown:
            raise ValueError(f"unknown shard set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
        with_layers = LAYERS in sets
        members = {META: json.dumps(self.meta(spec, layers), sort_keys=True, separators=(",", ":")).encode()}
        for x, expression in enumerate(spec.expressions):
            for v, view in enumerate(spec.views):
                members[view_member(expression.name, view.name)] = encode_jpeg(layers["rgb"][x, v], self.jpeg_quality(view.jpeg_quality))
                if with_layers:
                    segmentation = layers["segmentation"][x, v]
                    members[view_member(expression.name, view.name, "segmentation")] = encode_png(segmentation, COMPACT_PNG_LEVEL)
                    members[view_member(expression.name, view.name, "depth")] = encode_depth(layers["depth"][x, v])
            if x > 0:
                members[heatmap_member(expression.name)] = encode_png(layers["heatmap"][x], COMPACT_PNG_LEVEL)
        for sequence, frames in layers.get("sequences", ()):
            members.update(encode_frames(sequence, frames, spec.views, self.jpeg_quality, with_layers))
        if ASSETS not in sets:
            return members
        if mesh_format == "glb":
            members[MESH_GLB] = self.glb_writer.encode(layers["vertices"][0], layers["texture"])
        else:
            members[MESH] = self.obj_writer.encode(layers["vertices"][0])
            members[TEXTURE] = encode_png(layers["texture"])
        return members

    def jpeg_quality(self, planned: int) -> int:
        """The view's planned JPEG quality, unless render.jpeg_quality sets one for all."""
        return planned if self.config.jpeg_quality is None else self.config.jpeg_quality


def identity_layers(face: torch.Tensor, model: FaceModel, texture: Texture, scene: Scene) -> dict[str, object]:
    """The layers that belong to the identity rather than a view: 3D landmarks, the face's meshes (without hair: the
    shape of mesh.obj), texture, cameras."""
    return {"landmarks_3d": model.landmark_points(face).cpu().numpy(), "vertices": face.cpu().numpy(),
            "texture": (texture.image * 255).round().to(torch.uint8).numpy(), "texture_parameters": texture.parameters,
            "cameras": scene.cameras}


def painted_rooms(spec: IdentitySpec, outputs: DiffusionOutputs | None) -> list[torch.Tensor | None]:
    """Per planned view, the room the diffusion stage painted for it ((H, W, 3) sRGB in 0..1), or None where none was."""
    if outputs is None or not outputs.backgrounds:
        return [None] * len(spec.views)
    if len(outputs.backgrounds) != len(spec.views):
        raise FactoryError(f"{spec.id}: the diffusion stage painted {len(outputs.backgrounds)} rooms for {len(spec.views)} views")
    return [torch.from_numpy(room).float() / 255 for room in outputs.backgrounds]


def orbit_of(view: View) -> Orbit:
    return Orbit(yaw=view.yaw, pitch=view.pitch, roll=view.roll, distance_scale=view.distance_scale)


def light_of(light: PlannedLight) -> Light:
    fill = Lamp.from_angles(light.fill_azimuth, light.fill_elevation, kelvin=light.fill_color_temperature,
                            intensity=light.fill_intensity)
    return Light.from_angles(azimuth_deg=light.azimuth, elevation_deg=light.elevation, kelvin=light.color_temperature,
                             intensity=light.intensity, ambient=light.ambient, softness_deg=light.softness, fill=fill,
                             sky=light.sky)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device; use device 'cpu' or 'auto'")
    return torch.device(name)


def rounded(array: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()
