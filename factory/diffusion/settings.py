"""What the diffusion path makes and how: the `render: {diffusion: …}` section of a generate config.

```yaml
render:
  texturer: diffusion            # portraits from ControlNet-depth, baked into the UV atlas
  background: inpaint            # a room inpainted around each view's head
  diffusion:
    precision: auto              # fp16 on GPU, fp32 on CPU; or fp16, bf16, fp32
    texture: {model: stable-diffusion-v1-5/stable-diffusion-v1-5, controlnet: lllyasviel/control_v11f1p_sd15_depth,
              scheduler: unipc, steps: 20, guidance: 7.0, size: 512, view_yaws: [0]}
    background: {model: stable-diffusion-v1-5/stable-diffusion-inpainting, scheduler: unipc, steps: 20, guidance: 7.0}
```

Everything here decides the bytes of the dataset (it is part of `render`, so the manifest's config check covers
it). How the work is spread over GPUs (actors, GPUs per actor, batch size) is a run setting of GenerateConfig.
Models are local folders or Hugging Face ids, read from the HF cache only (factory/diffusion/weights.py).

Fast samplers: `scheduler: lcm` (or `tcd`) with `steps: 4` and `guidance: 1.0` for an LCM-distilled model, or
`scheduler: model` with `steps: 1`, `guidance: 0.0` for a turbo model whose folder ships its own scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from factory.options import ConfigError, build

DEFAULT_TEXTURE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET_MODEL = "lllyasviel/control_v11f1p_sd15_depth"
DEFAULT_BACKGROUND_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
# "model" keeps the scheduler the model folder ships (turbo and LCM models ship the one they were distilled for).
SCHEDULERS = ("model", "ddim", "dpm++", "unipc", "euler", "euler_a", "lcm", "tcd")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")

# CLIP reads 77 tokens: the demographic part of the prompt comes first and these keep the whole within it.
PORTRAIT_DESCRIPTORS = ("studio portrait photo, head and shoulders, facing the camera, neutral expression, mouth closed, "
                        "natural skin texture, soft even lighting, sharp focus")
PORTRAIT_NEGATIVE = ("cartoon, painting, illustration, 3d render, deformed, blurry, lowres, makeup, glasses, hat, jewelry, "
                     "text, watermark, open mouth, smiling, harsh shadows")
SCENES = ("a hospital room with a bed and monitors", "a doctor's examination room", "a living room with a sofa and a lamp",
          "a kitchen with cabinets", "an office with bookshelves", "a bedroom with curtains", "a waiting room with chairs",
          "a physiotherapy room", "a hallway with doors", "a room with a window and plants")
SCENE_DESCRIPTORS = "indoors, photograph, natural light, realistic, depth of field"
SCENE_NEGATIVE = "people, person, face, head, text, watermark, cartoon, painting, illustration, lowres, blurry"


@dataclass(frozen=True)
class Sampler:
    """How a pipeline denoises: the scheduler, its step count and the classifier-free guidance scale."""

    scheduler: str = "unipc"
    steps: int = 20
    guidance: float = 7.0

    def check(self, where: str) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"{where}.scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        require_number(f"{where}.steps", self.steps, 1, 1000, integer=True)
        require_number(f"{where}.guidance", self.guidance, 0.0, 50.0)


@dataclass(frozen=True)
class TextureDiffusion(Sampler):
    """The portrait the `diffusion` texturer bakes into the UV atlas."""

    model: str = DEFAULT_TEXTURE_MODEL  # a Stable Diffusion 1.x/2.x or SDXL text-to-image pipeline (its folder says which)
    controlnet: str = DEFAULT_CONTROLNET_MODEL  # a depth ControlNet of the same family
    controlnet_scale: float = 1.0
    size: int = 512  # portrait side in pixels: 512 for SD 1.5, 1024 for SDXL
    view_yaws: tuple[float, ...] = (0.0,)  # one portrait per yaw (degrees, as plan.view_yaws); e.g. [0, -35, 35]
    framing: float = 0.85  # camera distance as a factor of the render's framing: below 1 the face fills more pixels
    descriptors: str = PORTRAIT_DESCRIPTORS  # appended to the demographic prompt
    negative_prompt: str = PORTRAIT_NEGATIVE

    def __post_init__(self) -> None:
        self.check("texture")
        require_model("texture.model", self.model)
        require_model("texture.controlnet", self.controlnet)
        require_number("texture.controlnet_scale", self.controlnet_scale, 0.0, 5.0)
        require_size("texture.size", self.size)
        if not self.view_yaws or any(not isinstance(y, (int, float)) or not -90 <= y <= 90 for y in self.view_yaws):
            raise ConfigError(f"texture.view_yaws must be a non-empty list of degrees in -90..90, got {self.view_yaws!r}")
        require_number("texture.framing", self.framing, 0.5, 2.0)


@dataclass(frozen=True)
class BackgroundDiffusion(Sampler):
    """The room the `inpaint` background paints around each view's head: once per identity and view."""

    model: str = DEFAULT_BACKGROUND_MODEL  # an inpainting pipeline (its UNet takes 9 channels)
    size: int | None = None  # inpainting side in pixels; None: the render's image size
    scenes: tuple[str, ...] = SCENES  # one is drawn per identity and view (seeded)
    descriptors: str = SCENE_DESCRIPTORS
    negative_prompt: str = SCENE_NEGATIVE
    dilation: float = 0.03  # the union of a view's head masks grows by this share of the image side before inpainting

    def __post_init__(self) -> None:
        self.check("background")
        require_model("background.model", self.model)
        if self.size is not None:
            require_size("background.size", self.size)
        if not self.scenes or not all(isinstance(s, str) and s.strip() for s in self.scenes):
            raise ConfigError("background.scenes must be a non-empty list of scene descriptions")
        require_number("background.dilation", self.dilation, 0.0, 0.25)


@dataclass(frozen=True)
class DiffusionConfig:
    texture: TextureDiffusion = field(default_factory=TextureDiffusion)
    background: BackgroundDiffusion = field(default_factory=BackgroundDiffusion)
    precision: str = "auto"  # "auto": fp16 on CUDA, fp32 on CPU

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"diffusion.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_dict(cls, data: dict, where: str = "render.diffusion") -> "DiffusionConfig":
        """From a YAML mapping: every key's type checked and named (factory.options.build), then the ranges."""
        return build(cls, data, where)


def require_number(name: str, value, low: float, high: float, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ConfigError(f"{name} must be {'an integer' if integer else 'a number'} in {low:g}..{high:g}, got {value!r}")


def require_size(name: str, value) -> None:
    require_number(name, value, 64, 2048, integer=True)
    if value % 64:
        raise ConfigError(f"{name} must be a multiple of 64 pixels (the models' latent grid), got {value}")


def require_model(name: str, value) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a local folder or a Hugging Face model id, got {value!r}")
