"""Throughput of the diffusion path at the real model sizes, with random weights (compute does not depend on values).

    python bench/bench_diffusion.py --write                          # a GPU machine: SD 1.5 sizes, fp16, 512 px
    python bench/bench_diffusion.py --size tiny --device cpu --write # anywhere: toy models at 64 px (proves it runs)

Builds, from configs written here (nothing is downloaded), the architectures the defaults load: the SD 1.5 UNet
(859.5 M parameters), a depth ControlNet (361.3 M), the VAE (83.7 M), the CLIP ViT-L/14 text encoder (123.1 M)
and the SD inpainting UNet (859.5 M, 9 input channels); saves them as model folders (fp16 on GPU) and measures, through
the product's own code (DiffusionModels, the texturer, the inpaint jobs, `generate`):

1. texturing: seconds per identity for its portrait (ControlNet-depth pipeline, batches of --batch-size) on the device,
   and CPU seconds per identity to bake it into the atlas (on a render worker);
2. inpainting: inpainted images per second (batches of --batch-size), 3 per identity;
3. end to end: `factory generate` with --texturer diffusion --background inpaint on a local Ray cluster (one diffusion
   actor on the GPU, render workers on the other CPUs), identities per hour once the pipeline is full.

With --write, the figures go into the "Diffusion" section of bench/RESULTS.md with the machine's CPU and GPU names.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results import machine, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.diffusion.jobs import DiffusionOutputs  # noqa: E402
from factory.diffusion.pipelines import DiffusionModels  # noqa: E402
from factory.diffusion.settings import DiffusionConfig  # noqa: E402
from factory.run.config import GenerateConfig  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.run.inpaint import inpaint_jobs  # noqa: E402
from factory.run.stage import neutral_face  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402
from tests.tiny_diffusion import save_tiny_models, write_tokenizer  # noqa: E402

SECTION = "## Diffusion"
# Stable Diffusion 1.5's architecture, as its config files give it (stable-diffusion-v1-5/stable-diffusion-v1-5 and
# lllyasviel/control_v11f1p_sd15_depth); the diffusers defaults fill in the rest.
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
SD15_CONTROLNET = dict(in_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                       down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), cross_attention_dim=768,
                       attention_head_dim=8, conditioning_embedding_out_channels=(16, 32, 96, 256))
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
CLIP_L_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=0, eos_token_id=1, pad_token_id=1)
SIZES = {  # --size → default image side, texture side and sampler steps
    "real": {"image": 512, "texture": 1024, "steps": 20},
    "tiny": {"image": 64, "texture": 128, "steps": 2},
}


def save_real_models(root: Path, device: torch.device, dtype: torch.dtype) -> tuple[Path, Path, Path, dict]:
    """SD 1.5 text-to-image and inpainting pipelines and a depth ControlNet with random weights, saved as folders
    (fp16 weights as the "fp16" variant, as the Hub ships them). Returns the folders and the parameter counts."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
        UniPCMultistepScheduler,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    variant = "fp16" if dtype == torch.float16 else None
    tokenizer = write_tokenizer(root / "tokenizer-source")
    with torch.device(device):  # random initialisation where the weights will run: seconds on a GPU, minutes on a CPU
        torch.manual_seed(0)
        parts = {"vae": AutoencoderKL(**SD15_VAE).to(dtype), "text_encoder": CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT)).to(dtype)}
        unet, inpaint_unet = UNet2DConditionModel(**SD15_UNET).to(dtype), UNet2DConditionModel(**{**SD15_UNET, "in_channels": 9}).to(dtype)
        controlnet = ControlNetModel(**SD15_CONTROLNET).to(dtype)
    counts = {name: sum(p.numel() for p in model.parameters()) for name, model in
              (("unet", unet), ("controlnet", controlnet), ("vae", parts["vae"]), ("text_encoder", parts["text_encoder"]),
               ("inpaint_unet", inpaint_unet))}
    shared = {**parts, "tokenizer": tokenizer, "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False,
              "scheduler": UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)}
    folders = (root / "texture", root / "controlnet", root / "background")
    StableDiffusionPipeline(unet=unet, **shared).save_pretrained(folders[0], variant=variant)
    controlnet.save_pretrained(folders[1], variant=variant)
    StableDiffusionInpaintPipeline(unet=inpaint_unet, **shared).save_pretrained(folders[2], variant=variant)
    return (*folders, counts)


def timed(function, repeats: int) -> float:
    """Median wall seconds of `function()` over `repeats` runs, after one warm-up run (loading, kernel selection)."""
    function()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_stages(render: RenderConfig, device: torch.device, batch: int, repeats: int) -> dict:
    """Seconds per portrait and per inpainted image on `device` (batches of `batch`), CPU seconds to bake a portrait."""
    renderer = IdentityRenderer(render)
    models = DiffusionModels(render.diffusion, device)
    specs = [plan_identity(index, 0) for index in range(batch)]
    portrait_jobs = [job for spec in specs for job in renderer.texturer.portrait_jobs(
        spec.skin, spec.demographics, neutral_face(renderer, spec), render.diffusion.texture)]
    portrait_s = timed(lambda: models.portraits(portrait_jobs), repeats) / len(portrait_jobs)
    portraits = models.portraits(portrait_jobs[:1])
    started = time.process_time()
    texture = renderer.texture(specs[0], neutral_face(renderer, specs[0]), DiffusionOutputs(portraits=tuple(portraits)))
    bake_cpu_s = time.process_time() - started
    rooms = inpaint_jobs(renderer, specs[0], texture, render.diffusion.background)
    inpaint = (rooms * batch)[:batch]
    inpaint_s = timed(lambda: models.inpaint(inpaint), repeats) / len(inpaint)
    return {"portrait_s": portrait_s, "bake_cpu_s": bake_cpu_s, "inpaint_s": inpaint_s, **models.describe()}


def measure_end_to_end(render: RenderConfig, out: Path, identities: int, per_shard: int, batch: int, gpus: float) -> dict:
    """`generate` with the diffusion stage on a local Ray cluster: identities per hour from the first committed shard
    to the last (the pipeline full), and over the whole run (actor start and model loading included)."""
    import ray

    from factory.run.generate import generate

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    commits: list[float] = []
    workers = max(1, (os.cpu_count() or 2) - 1)  # one CPU for the driver, the raylet and the diffusion actor's host thread
    config = GenerateConfig(identities=identities, out=str(out), identities_per_shard=per_shard, workers=workers,
                            gpus_per_worker=0, diffusion_actors=1, diffusion_gpus_per_actor=gpus, diffusion_batch_size=batch,
                            render=render)
    try:
        summary = generate(config, progress=False, on_shard_committed=lambda record: commits.append(time.perf_counter()))
    finally:
        ray.shutdown()
    steady = (identities - per_shard) / (commits[-1] - commits[0]) * 3600 if len(commits) > 1 else float("nan")
    return {"steady_per_hour": steady, "overall_per_hour": summary.rendered_identities / summary.wall_s * 3600,
            "workers": summary.workers, "wall_s": summary.wall_s}


def report(args, stages: dict, end_to_end: dict | None, counts: dict | None) -> str:
    per_identity = stages["portrait_s"] + 3 * stages["inpaint_s"]
    device = "GPU" if stages["device"].startswith("cuda") else "CPU diffusion actor"
    rows = [("texturing: portrait on the device, s per identity", f"{stages['portrait_s']:.3f}"),
            ("texturing: bake into the atlas, CPU s per identity (render worker)", f"{stages['bake_cpu_s']:.3f}"),
            ("inpainting: images per second", f"{1 / stages['inpaint_s']:.2f}"),
            ("diffusion per identity (1 portrait + 3 rooms), s", f"{per_identity:.3f}"),
            (f"identities per hour per {device}, diffusion alone", f"{3600 / per_identity:.0f}")]
    if end_to_end:
        rows += [(f"identities per hour per {device}, everything on (`generate`, pipeline full)", f"{end_to_end['steady_per_hour']:.0f}"),
                 (f"identities per hour per {device}, everything on (whole run, start-up included)", f"{end_to_end['overall_per_hour']:.0f}")]
    params = (", parameters: " + ", ".join(f"{name} {count / 1e6:.1f} M" for name, count in counts.items())) if counts else ""
    return "\n".join([
        SECTION, "",
        f"`python bench/bench_diffusion.py {' '.join(sys.argv[1:])}` on {machine()}, {time.strftime('%Y-%m-%d')}.",
        f"Models: {args.size} architectures with random weights{params}; {stages['dtype']} on {stages['device']}; "
        f"{args.steps} {args.scheduler} steps, guidance 7; portraits {args.image}px, images {args.image}px, texture "
        f"{args.texture}px; batches of {args.batch_size}; medians of {args.repeats} timed batches after a warm-up.",
        *([f"End to end: {args.identities} identities, {args.per_shard} per shard, {end_to_end['workers']} render workers "
           f"on CPUs, one diffusion actor, {end_to_end['wall_s']:.0f} s."] if end_to_end else []),
        "", "| what | figure |", "|---|---|", *[f"| {what} | {figure} |" for what, figure in rows], ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="real")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: 20 real, 2 tiny)")
    parser.add_argument("--image-size", type=int, default=None, help="image and portrait side (default: 512 real, 64 tiny)")
    parser.add_argument("--texture-size", type=int, default=None, help="texture side (default: 1024 real, 128 tiny)")
    parser.add_argument("--scheduler", default="unipc")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--identities", type=int, default=None, help="end-to-end identities (default: 64 real, 4 tiny; 0 skips)")
    parser.add_argument("--per-shard", type=int, default=None, help="identities per shard (default: the batch size)")
    parser.add_argument("--work-dir", default=tempfile.gettempdir(), help="where the model folders and the dataset go")
    parser.add_argument("--write", action="store_true", help="write the Diffusion section of bench/RESULTS.md")
    args = parser.parse_args()
    size = SIZES[args.size]
    args.image, args.texture = args.image_size or size["image"], args.texture_size or size["texture"]
    args.steps = args.steps or size["steps"]
    args.identities = (64 if args.size == "real" else 4) if args.identities is None else args.identities
    args.per_shard = args.per_shard or args.batch_size
    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-diffusion-", dir=args.work_dir))
    try:
        if args.size == "real":
            texture, controlnet, background, counts = save_real_models(work, device, torch.float16 if device.type == "cuda" else torch.float32)
        else:
            (texture, controlnet, background), counts = save_tiny_models(work), None
        sampler = {"steps": args.steps, "scheduler": args.scheduler}
        render = RenderConfig(image_size=args.image, texture_size=args.texture, texturer="diffusion", background="inpaint",
                              diffusion=DiffusionConfig.from_dict({
                                  "texture": {"model": str(texture), "controlnet": str(controlnet), "size": args.image, **sampler},
                                  "background": {"model": str(background), **sampler}}))
        stages = measure_stages(render, device, args.batch_size, args.repeats)
        end_to_end = (measure_end_to_end(render, work / "dataset", args.identities, args.per_shard, args.batch_size,
                                         1.0 if device.type == "cuda" else 0.0) if args.identities else None)
        text = report(args, stages, end_to_end, counts)
        print(text)
        if args.write:
            write_section(SECTION, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
