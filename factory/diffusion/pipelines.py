"""The diffusers pipelines one process keeps loaded, and how a batch of jobs runs through them.

    models = DiffusionModels(settings, torch.device("cuda"))  # nothing is loaded until a pipeline is first needed
    images = models.portraits([PortraitJob(...), ...])      # ControlNet-depth text-to-image, one batch
    images = models.inpaint([InpaintJob(...), ...])         # inpainting, one batch

- Portraits: `StableDiffusionControlNetPipeline` (SD 1.x/2.x) or `StableDiffusionXLControlNetPipeline` when the
  texture model is SDXL (its folder has a second text encoder), with the depth ControlNet.
- Backgrounds: `StableDiffusionInpaintPipeline`, or `StableDiffusionXLInpaintPipeline` for an SDXL inpainting model.
- Precision: "auto" is fp16 on CUDA and fp32 on CPU (fp16 and bf16 are for GPUs; on CPU fp32 is used and a
  warning says so). The safety checker is not loaded: the prompts ask for portraits and rooms.
- Determinism: every job gets a CPU `torch.Generator` seeded with its own seed, so its starting latents (and an
  ancestral sampler's noise) are the same on any device and in any batch; the images are the same on the same
  device type and batch composition (kernels differ between GPUs and CPUs).

A batch is one pipeline call: its prompts, conditions and generators are lists, so one call serves jobs of many
identities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from factory.diffusion.jobs import InpaintJob, PortraitJob
from factory.diffusion.settings import DiffusionConfig, Sampler
from factory.diffusion.weights import BACKGROUND, CONTROLNET, TEXTURE, CheckedModel, ModelError, check_pair, find_model

logger = logging.getLogger(__name__)
SCHEDULER_CLASSES = {"ddim": "DDIMScheduler", "dpm++": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler",
                     "euler": "EulerDiscreteScheduler", "euler_a": "EulerAncestralDiscreteScheduler", "lcm": "LCMScheduler",
                     "tcd": "TCDScheduler"}  # settings.SCHEDULERS name → diffusers class; "model" keeps the folder's own


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp16 (or bf16) on GPU, fp32 on CPU."""
    if device.type != "cuda":
        if precision in ("fp16", "bf16"):
            logger.warning("diffusion precision %s asked for on %s: using fp32 there", precision, device)
        return torch.float32
    return {"auto": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


class DiffusionModels:
    """The portrait and inpainting pipelines of one process, each loaded on first use and kept."""

    def __init__(self, settings: DiffusionConfig, device: torch.device):
        self.settings = settings
        self.device = device
        self.dtype = resolve_dtype(settings.precision, self.device)
        self.pipelines: dict[str, object] = {}

    def portraits(self, jobs: Sequence[PortraitJob]) -> list[np.ndarray]:
        """(S, S, 3) uint8 portraits, one per job, from one pipeline call."""
        if not jobs:
            return []
        texture = self.settings.texture
        depth = torch.from_numpy(np.stack([job.depth for job in jobs])).float().div(255)
        control = depth[:, None].expand(-1, 3, -1, -1).contiguous()  # depth ControlNets take a grey RGB image
        output = self.pipeline(TEXTURE)(image=control, height=texture.size, width=texture.size,
                                        controlnet_conditioning_scale=texture.controlnet_scale,
                                        **sampling(jobs, texture))
        return to_uint8(output.images)

    def inpaint(self, jobs: Sequence[InpaintJob]) -> list[np.ndarray]:
        """(S, S, 3) uint8 images, one per job, from one pipeline call; the model paints where each mask is True."""
        if not jobs:
            return []
        size = jobs[0].image.shape[0]
        if any(job.image.shape != (size, size, 3) for job in jobs):
            raise ValueError("the inpaint jobs of one batch must share one square image size")
        image = torch.from_numpy(np.stack([job.image for job in jobs])).permute(0, 3, 1, 2).float().div(255)
        mask = torch.from_numpy(np.stack([job.mask for job in jobs]))[:, None].float()
        output = self.pipeline(BACKGROUND)(image=image, mask_image=mask, height=size, width=size, strength=1.0,
                                           **sampling(jobs, self.settings.background))
        return to_uint8(output.images)

    def pipeline(self, role: str):
        if role not in self.pipelines:
            self.pipelines[role] = self.load(role)
        return self.pipelines[role]

    def load(self, role: str):
        """The pipeline for `role` (TEXTURE or BACKGROUND) on this process's device, its sampler set up."""
        if role == TEXTURE:
            texture = find_model(self.settings.texture.model, TEXTURE)
            controlnet = find_model(self.settings.texture.controlnet, CONTROLNET)
            check_pair(texture, controlnet)
            pipeline = load_portrait_pipeline(texture, controlnet, self.dtype)
            sampler: Sampler = self.settings.texture
        else:
            pipeline = load_inpaint_pipeline(find_model(self.settings.background.model, BACKGROUND), self.dtype)
            sampler = self.settings.background
        if sampler.scheduler != "model":
            import diffusers

            pipeline.scheduler = getattr(diffusers, SCHEDULER_CLASSES[sampler.scheduler]).from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline.to(self.device)

    def describe(self) -> dict:
        """Device, precision and the pipeline classes loaded so far: what an actor reports."""
        return {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "pipelines": {role: type(p).__name__ for role, p in self.pipelines.items()}}


def sampling(jobs: Sequence[PortraitJob | InpaintJob], sampler: Sampler) -> dict:
    """The pipeline arguments every job kind shares: prompts, per-job generators and the sampler's settings."""
    return {"prompt": [job.prompt for job in jobs], "negative_prompt": [job.negative_prompt for job in jobs],
            "generator": [torch.Generator("cpu").manual_seed(job.seed) for job in jobs],
            "num_inference_steps": sampler.steps, "guidance_scale": sampler.guidance, "output_type": "np"}


def load_portrait_pipeline(texture: CheckedModel, controlnet: CheckedModel, dtype: torch.dtype):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    def build():
        net = ControlNetModel.from_pretrained(controlnet.path, **load_options(controlnet, dtype))
        if texture.family == "sdxl":
            return StableDiffusionXLControlNetPipeline.from_pretrained(texture.path, controlnet=net, **load_options(texture, dtype))
        return StableDiffusionControlNetPipeline.from_pretrained(texture.path, controlnet=net, **load_options(texture, dtype),
                                                                 **without_safety_checker())

    return loading(f"texture model {texture.given} with controlnet model {controlnet.given}", build)


def load_inpaint_pipeline(model: CheckedModel, dtype: torch.dtype):
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline

    def build():
        if model.family == "sdxl":
            return StableDiffusionXLInpaintPipeline.from_pretrained(model.path, **load_options(model, dtype))
        return StableDiffusionInpaintPipeline.from_pretrained(model.path, **load_options(model, dtype), **without_safety_checker())

    return loading(f"background model {model.given}", build)


def load_options(model: CheckedModel, dtype: torch.dtype) -> dict:
    return {"dtype": dtype, "variant": model.variant, "local_files_only": True, "use_safetensors": True}  # never pickles


def without_safety_checker() -> dict:
    return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def loading(name: str, build):
    """`build()`, with whatever a damaged folder makes diffusers or transformers raise turned into one ModelError line
    (and their loading progress bars and notices kept off the console)."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        return build()
    except ModelError:
        raise
    except Exception as error:  # diffusers and transformers raise OSError, ValueError, RuntimeError, safetensors errors …
        message = " ".join(str(error).split())
        raise ModelError(f"cannot load {name}: {type(error).__name__}: {message[:400]}") from None


def to_uint8(images: np.ndarray) -> list[np.ndarray]:
    """(B, H, W, 3) floats in 0..1 → B (H, W, 3) uint8 images."""
    return [np.ascontiguousarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)) for image in images]
