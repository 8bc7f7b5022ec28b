"""The batched GPU path (factory/run/batch.py): identities per second at 512 px, and the share of each stage.

    python bench/bench_gpu.py --write                                   # on a GPU machine: 512 px, batches of 8
    python bench/bench_gpu.py --device cpu --image-size 48 --texture-size 128 --identities 4 --batch-identities 2 \\
        --backend pytorch3d                                             # anywhere: proves the path runs (CPU rasterizer)

Two runs over the same procedural identities (seed 0, the default plan: 11 expressions × 3 views):

1. pipelined, as a `generate` worker runs it: `batched_samples` (batch k + 1 renders while batch k is encoded on
   `--cpu-threads` threads, which also prepare each batch's identities) written into shards of one batch each under `--out` (a temporary folder by default;
   any fsspec URL). Its wall time gives identities per second, and the time 2,500 identities would take in one
   such process (target: ≤ 300 s on one H100).
2. staged, one stage after another with the device synchronised around each, timed by hooks on the renderer's own
   stage calls: prepare (rig, texture, hair, light, scene framing: per identity, mostly CPU), raster (one call per
   batch), shade (shading, lash overlay, sensor), layers (rgb, segmentation, depth, landmarks, heatmaps, arrays to
   the CPU), encode (JPEG, PNG, OBJ, meta.json), upload (the shard written to `--out`). Its shares say where the
   time goes; the pipelined run hides encode and upload behind the device's work where there are threads for them.

A warm-up batch first (CUDA kernels, caches). Wall time throughout: on a GPU the device's time is the figure; on a
shared CPU machine read the CPU run as a proof that the path runs, not as a speed.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import machine, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.format.shards import write_shard  # noqa: E402
from factory.format.storage import Storage  # noqa: E402
from factory.run import batch, identity  # noqa: E402
from factory.run.batch import batched_samples, render_batch  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402

SECTION = "## GPU batch"
STAGES = ("prepare", "raster", "shade", "layers", "encode", "upload")
TARGET_IDENTITIES, TARGET_S = 2500, 300.0


class DeviceClock:
    """Wall seconds per named stage, the device synchronised before and after each so its queued work is booked to
    the stage that queued it."""

    def __init__(self, device: torch.device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def wrap(self, stage: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self.sync()
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[stage] += time.perf_counter() - started
        return timed


def instrument(renderer: IdentityRenderer, clock: DeviceClock) -> None:
    """Hook the clock around the renderer's stages (instance attributes shadow methods; module attributes are what
    the batch and identity modules call)."""
    renderer.prepare = clock.wrap("prepare", renderer.prepare)
    batch.rasterize_groups = clock.wrap("raster", batch.rasterize_groups)
    renderer.renderer.shade = clock.wrap("shade", renderer.renderer.shade)
    identity.draw_overlay = clock.wrap("shade", identity.draw_overlay)
    identity.expose = clock.wrap("shade", identity.expose)
    renderer.view_layers = clock.wrap("layers", renderer.view_layers)
    renderer.collect = clock.wrap("layers", renderer.collect)
    renderer.encode_sample = clock.wrap("encode", renderer.encode_sample)


def write_batch_shard(storage: Storage, name: str, samples) -> None:
    with storage.committing(name) as sink:
        write_shard(sink, ((spec.id, members) for spec, members in samples))


def pipelined(renderer: IdentityRenderer, specs, size: int, storage: Storage, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) to render, encode and write `specs` as a worker does (one
    shard per batch)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    samples = batched_samples(renderer, specs, size, cpu_threads=threads)
    for k in range(0, len(specs), size):
        write_batch_shard(storage, f"pipelined/shard-{k // size:06d}.tar", list(itertools.islice(samples, size)))
    samples.close()
    return time.perf_counter() - started, time.process_time() - cpu_started


def staged(renderer: IdentityRenderer, specs, size: int, storage: Storage, clock: DeviceClock) -> float:
    """Wall seconds for the same work one stage after another (clock hooks installed)."""
    started = time.perf_counter()
    for k in range(0, len(specs), size):
        chunk = specs[k:k + size]
        members = [renderer.encode_sample(spec, layers) for spec, layers in zip(chunk, render_batch(renderer, chunk))]
        upload = clock.wrap("upload", write_batch_shard)
        upload(storage, f"staged/shard-{k // size:06d}.tar", list(zip(chunk, members)))
    return time.perf_counter() - started


def report(args, device: torch.device, backend: str, pipelined_s: tuple[float, float], staged_s: float, clock: DeviceClock) -> str:
    rate = args.identities / pipelined_s[0]
    total = sum(clock.seconds.values())
    rows = [f"| {stage} | {clock.seconds[stage]:.2f} | {100 * clock.seconds[stage] / total:.0f} % |" for stage in STAGES]
    memory = (f"; peak device memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
              if device.type == "cuda" else "")
    projected = TARGET_IDENTITIES / rate
    return "\n".join([
        f"`python bench/bench_gpu.py {' '.join(sys.argv[1:])}` on {machine()}; device {device}, raster backend "
        f"{backend}, {args.image_size} px, texture {args.texture_size} px, {args.identities} identities in batches of "
        f"{args.batch_identities}, {args.cpu_threads} CPU threads (prepare, encode){memory}.",
        "",
        "| what | figure |", "|---|---|",
        f"| pipelined: identities per second | {rate:.2f} |",
        f"| pipelined: {TARGET_IDENTITIES:,} identities in one process, projected | {projected:.0f} s "
        f"({'within' if projected <= TARGET_S else 'over'} the {TARGET_S:.0f} s target) |",
        f"| pipelined: CPU seconds per identity (all threads: what sets how many workers a GPU node's CPUs feed) | "
        f"{pipelined_s[1] / args.identities:.2f} |",
        f"| staged: identities per second (no overlap) | {args.identities / staged_s:.2f} |",
        "",
        "| stage (staged run) | wall s | share |", "|---|---|---|", *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=identity.DEVICES)
    parser.add_argument("--backend", default="auto", help="raster backend (auto: pytorch3d on CUDA)")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--identities", type=int, default=64)
    parser.add_argument("--batch-identities", type=int, default=8)
    parser.add_argument("--cpu-threads", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--out", default=None, help="where the shards go (default: a temporary folder)")
    parser.add_argument("--write", action="store_true", help=f"write the figures into the {SECTION!r} section of bench/RESULTS.md")
    args = parser.parse_args()

    renderer = IdentityRenderer(RenderConfig(image_size=args.image_size, texture_size=args.texture_size,
                                             backend=args.backend, device=args.device))
    backend = renderer.rasterizer.backend_name(renderer.device)
    specs = [plan_identity(index, seed=0) for index in range(args.identities)]
    with tempfile.TemporaryDirectory() as scratch:
        storage = Storage(args.out or scratch, {})
        render_batch(renderer, [plan_identity(10**6 + k, seed=0) for k in range(args.batch_identities)])  # warm-up
        pipelined_s = pipelined(renderer, specs, args.batch_identities, storage, args.cpu_threads)
        clock = DeviceClock(renderer.device)
        instrument(renderer, clock)
        staged_s = staged(renderer, specs, args.batch_identities, storage, clock)
    text = report(args, renderer.device, backend, pipelined_s, staged_s, clock)
    print(text)
    if args.write:
        write_section(SECTION, f"{SECTION}\n\n{text}\n")
        print(f"wrote the {SECTION!r} section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
