"""The `factory generate` configuration: one frozen dataclass, read from a YAML file and command-line flags.

Every flag has a YAML spelling: the top-level keys are the fields of GenerateConfig, `plan:` holds PlanConfig
fields (factory/spec/plan.py) and `render:` RenderConfig fields (factory/run/identity.py); `--image-size` is
`render: {image_size: …}`, `--scenario` is `plan: {scenario: …}`, `--sequence-frames` is `render: {sequence: {frames: …}}`,
`--texturer`/`--background` are `render: {texturer: …, background: …}` and the model flags
(`--texture-model`, `--controlnet-model`, `--background-model`) are `render: {diffusion: {texture: {model, controlnet},
background: {model}}}` (factory/diffusion/settings.py). A flag given on the command line wins over the file.

```yaml
identities: 2500
out: s3://my-bucket/3dpain
seed: 0
identities_per_shard: 8
sets: [images, layers, assets]   # the shard sets written (docs/DATA.md); images always
mesh_format: glb                 # the assets set's mesh: glb (texture embedded as JPEG) or obj (mesh.obj + texture.png)
render: {image_size: 512, texturer: procedural, background: scene}   # face_model: flame, flame_path: /data/flame2023_Open.pkl
# render: {sequence: {frames: 16}}   # --sequence-frames 16: every pain expression as a 16-frame sequence too
plan: {view_yaws: [0, -35, 35], expressions: {pain_expressions: 10}, light_families: [window, clinical, studio]}
storage_options: {client_kwargs: {endpoint_url: "http://127.0.0.1:9000"}}
diffusion_gpus_per_actor: 1      # the diffusion stage (with texturer diffusion or background inpaint)
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from factory.diffusion.settings import require_number
from factory.face.source import ICT_IDENTITY_MODES
from factory.format.members import IMAGES, MESH_FORMATS, SETS
from factory.format.shards import MAX_IDENTITIES
from factory.format.storage import public_storage_options, resolve_storage_options
from factory.options import ConfigError, build, read_yaml, reject_unknown_keys, typed
from factory.run.identity import FLAME_FILES, RenderConfig
from factory.spec.plan import PlanConfig

# The settings that decide the bytes of every shard. An existing dataset may only be extended or resumed
# with the same values; `identities` may grow (see generate.check_compatible), the rest (workers, out, …) is how
# a run is carried out, not what it makes. Of the FLAME files, the content is their sha256, not where they are:
# the same file elsewhere resumes, a different file at the same path is refused.
CONTENT_KEYS = ("seed", "identities_per_shard", "sets", "mesh_format", "plan", "render")
LOCATION_KEYS = {"render": tuple(path for path, _ in FLAME_FILES)}
MAX_WORKERS = 100_000  # a sanity bound: more actors than any cluster holds is a typo
MAX_BATCH_IDENTITIES = 256  # a sanity bound: at 512 px an identity's fragments take ~0.2 GB of device memory


@dataclass(frozen=True)
class GenerateConfig:
    identities: int
    out: str
    seed: int = 0
    identities_per_shard: int = 4
    sets: tuple[str, ...] = SETS  # the shard sets written: images (always), layers, assets
    mesh_format: str = "glb"  # how the assets set stores the mesh: glb or obj
    workers: int | None = None  # None: as many as the cluster has room for (one CPU, or gpus_per_worker GPUs, each)
    gpus_per_worker: float | None = None  # None: 1 when the Ray cluster has GPUs (0 beside a diffusion stage), 0 otherwise
    diffusion_actors: int | None = None  # None: one per GPU share of the cluster (one CPU actor without GPUs)
    diffusion_gpus_per_actor: float | None = None  # None: 1 when the cluster has GPUs, 0 otherwise; fractions share a GPU
    diffusion_batch_size: int = 8  # jobs per diffusion pipeline call
    # Identities a worker renders at once (factory/run/batch.py: every view of a batch in one rasterizer call, encoding
    # overlapping the next batch); cut from one shard, so at most identities_per_shard. How a run is carried out, not
    # what it makes: the bytes do not depend on it.
    batch_identities: int = 1
    overwrite: bool = False
    wait: bool = False  # another driver holds the dataset's lease: wait for it instead of stopping
    storage_options: Mapping = field(default_factory=dict)
    plan: PlanConfig = field(default_factory=PlanConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        require_int("identities", self.identities, minimum=1, maximum=MAX_IDENTITIES,
                    why=" (identity ids have seven digits)")
        require_int("seed", self.seed, minimum=0, maximum=2**63 - 1)
        require_int("identities_per_shard", self.identities_per_shard, minimum=1, maximum=MAX_IDENTITIES)
        check_sets(self.sets)
        object.__setattr__(self, "sets", tuple(name for name in SETS if name in self.sets))  # one spelling: SETS order
        if self.mesh_format not in MESH_FORMATS:
            raise ConfigError(f"mesh_format must be one of {', '.join(MESH_FORMATS)}, got {self.mesh_format!r}")
        if self.workers is not None:
            require_int("workers", self.workers, minimum=1, maximum=MAX_WORKERS)
        gpus = self.gpus_per_worker
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not 0 <= gpus < math.inf):
            raise ConfigError(f"gpus_per_worker must be a number >= 0, got {gpus!r}")
        if self.diffusion_actors is not None:
            require_int("diffusion_actors", self.diffusion_actors, minimum=1, maximum=MAX_WORKERS)
        if self.diffusion_gpus_per_actor is not None:
            require_number("diffusion_gpus_per_actor", self.diffusion_gpus_per_actor, 0.0, 64.0)
        require_int("diffusion_batch_size", self.diffusion_batch_size, minimum=1, maximum=MAX_WORKERS)
        require_int("batch_identities", self.batch_identities, minimum=1, maximum=MAX_BATCH_IDENTITIES)
        if self.batch_identities > self.identities_per_shard:
            raise ConfigError(f"batch_identities {self.batch_identities} is more than identities_per_shard "
                              f"{self.identities_per_shard}: a batch is cut from one shard, so raise --identities-per-shard too")
        if not isinstance(self.out, str) or not self.out.strip():
            raise ConfigError("out must be a folder or URL (./out, file:///…, s3://bucket/prefix)")
        for name in ("overwrite", "wait"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.storage_options, Mapping):
            raise ConfigError("storage_options must be a mapping of fsspec options")
        if self.render.face_model == "ict" and self.plan.identity_modes > ICT_IDENTITY_MODES:
            raise ConfigError(f"plan.identity_modes {self.plan.identity_modes}: the ICT face model has {ICT_IDENTITY_MODES} identity modes")

    def content(self) -> dict:
        """The settings that decide the data, as plain JSON values (for the manifest's fingerprint check)."""
        return content_of(self.to_dict())

    def to_dict(self) -> dict:
        """Everything, credentials left out: what the manifest records and what may be printed."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["plan"] = self.plan.to_dict()
        data["render"] = asdict(self.render)
        data["storage_options"] = public_storage_options(self.storage_options)
        return plain(data)


def content_of(config: Mapping) -> dict:
    """The CONTENT_KEYS of a config dict (GenerateConfig.to_dict(), or one a manifest stored), file paths left out."""
    content = {name: plain(config.get(name)) for name in CONTENT_KEYS}
    for name, keys in LOCATION_KEYS.items():
        if isinstance(content.get(name), dict):
            content[name] = {key: value for key, value in content[name].items() if key not in keys}
    return content


def check_sets(sets: tuple[str, ...]) -> None:
    unknown = [name for name in sets if name not in SETS]
    if unknown or len(set(sets)) != len(sets) or IMAGES not in sets:
        raise ConfigError(f"sets must name {IMAGES} (it holds meta.json) and any of {', '.join(SETS[1:])}, each once; got {list(sets)!r}")


def parse_sets(text: str | None) -> tuple[str, ...] | None:
    """--sets images,layers → ("images", "layers"); None where the flag was not given."""
    return None if text is None else tuple(name.strip() for name in text.split(",") if name.strip())


def require_int(name: str, value, minimum: int, maximum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}{why}, got {value:,}")


def plain(value):
    """Tuples become lists, as they would after a JSON round trip, so configs compare equal to stored ones."""
    return json.loads(json.dumps(value))


def load_generate_config(config_file: Path | None = None, **flags) -> GenerateConfig:
    """Build the config from an optional YAML file, then the flags that were given (None = not given).

    `flags` are GenerateConfig field names plus RENDER_FLAGS; `storage_options` from flags are merged into the
    file's. Environment defaults (an S3 endpoint from AWS_ENDPOINT_URL) come last and never override. Every
    value's type and range is checked here, naming its key, before anything else happens.
    """
    data = read_yaml(config_file) if config_file else {}
    try:
        reject_unknown_keys(GenerateConfig, data, "config key")
    except ConfigError as error:
        raise ConfigError(f"{error} (in {config_file})") from None
    render_flags = {name: flags.pop(name, None) for name in RENDER_FLAGS}
    plan_flags = {name: flags.pop(name, None) for name in PLAN_FLAGS}
    flag_options = flags.pop("storage_options", None) or {}
    data.update({name: value for name, value in flags.items() if value is not None})
    for name in ("identities", "out"):
        if name not in data:
            raise ConfigError(f"--{name} is required (or `{name}:` in the config file)")
    data["render"] = with_render_flags(section(data, "render"), render_flags)
    if any(value is not None for value in plan_flags.values()):
        data["plan"] = {**section(data, "plan"), **{name: value for name, value in plan_flags.items() if value is not None}}
    data["storage_options"] = resolve_storage_options(typed(str, data["out"], "out"), section(data, "storage_options"), flag_options)
    return build(GenerateConfig, data)


PLAN_FLAGS = ("scenario",)  # flags that set a `plan:` key of the same name
# Flags that set a render key: flag name → its path under `render:`.
RENDER_FLAGS = {"image_size": ("image_size",), "texturer": ("texturer",), "background": ("background",),
                "face_model": ("face_model",), "flame_path": ("flame_path",), "flame_uv": ("flame_uv",),
                "flame_landmarks": ("flame_landmarks",), "sequence_frames": ("sequence", "frames"),
                "texture_model": ("diffusion", "texture", "model"), "controlnet_model": ("diffusion", "texture", "controlnet"),
                "background_model": ("diffusion", "background", "model")}


def with_render_flags(render: Mapping, flags: dict) -> dict:
    """The `render:` section with the render flags that were given written into it (nested sections copied)."""
    render = dict(render)
    for name, value in flags.items():
        if value is None:
            continue
        *parents, key = RENDER_FLAGS[name]
        node = render
        for parent in parents:
            node[parent] = dict(section(node, parent))
            node = node[parent]
        node[key] = value
    return render


def section(data: dict, name: str) -> Mapping:
    """A nested section of the config: a mapping, or {} where it is absent or empty (`plan:` alone)."""
    return {} if data.get(name) is None else typed(Mapping, data[name], name)


def content_differences(stored: Mapping, current: Mapping, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two content dicts, e.g. ['render.image_size']."""
    differing = []
    for name in sorted(set(stored) | set(current)):
        a, b = stored.get(name), current.get(name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            differing += content_differences(a, b, f"{prefix}{name}.")
        elif a != b:
            differing.append(f"{prefix}{name}")
    return differing
