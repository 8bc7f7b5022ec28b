"""Time one whole identity (11 expressions × 3 views at 512 px, 10 heatmaps, all encodings) on one thread.

    python bench/bench_identity.py --repeats 3 [--threads 1] [--image-size 512] [--write]

Prints the median seconds per stage and in total; with --write, puts them into the "Identity" section of
bench/RESULTS.md with the machine's CPU model. Target: ≤ 3 s per identity at 512 px on one core.

The stages are timed from outside the product code: `instrument` wraps the renderer's stage calls (rig, texturer,
hair geometry, light (ambient occlusion and shadows), rasterizer, shading (with the room behind the head), sensor,
layers, heatmaps, encoding) with a hook that books their CPU time; "other" is what the render spends between them
(framing the cameras, stacking views, copying arrays).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import RESULTS, cpu_model, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.run import identity  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402

SECTION = "## Identity"
STAGES = ("rig", "texture", "hair", "light", "raster", "shade", "sensor", "layers", "heatmap", "encode")


class StageClock:
    """CPU seconds of this process per named stage, booked by the wrappers `wrap` makes. CPU time, not wall time:
    other jobs on a shared machine inflate wall time."""

    def __init__(self, clock=time.process_time):
        self.clock = clock
        self.seconds: dict[str, float] = {}

    def wrap(self, stage: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            started = self.clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + self.clock() - started
        return timed


def instrument(renderer: IdentityRenderer, clock: StageClock) -> None:
    """Hook the clock around each stage of `renderer` (instance attributes shadow the methods)."""
    renderer.pose = clock.wrap("rig", renderer.pose)
    renderer.texturer.texture = clock.wrap("texture", renderer.texturer.texture)
    renderer.dress = clock.wrap("hair", renderer.dress)
    renderer.lighting = clock.wrap("light", renderer.lighting)
    identity.expose = clock.wrap("sensor", identity.expose)  # the module attribute the render loop calls
    renderer.renderer.rasterizer = clock.wrap("raster", renderer.renderer.rasterizer)
    renderer.renderer.shade = clock.wrap("shade", renderer.renderer.shade)
    renderer.view_layers = clock.wrap("layers", renderer.view_layers)
    renderer.heatmaps = clock.wrap("heatmap", renderer.heatmaps)
    renderer.encode_sample = clock.wrap("encode", renderer.encode_sample)


def time_identities(renderer: IdentityRenderer, repeats: int) -> list[dict[str, float]]:
    """Per identity: CPU seconds per stage, "other", and the totals."""
    clock = StageClock()
    instrument(renderer, clock)
    runs = []
    for index in range(repeats):
        spec = plan_identity(index, seed=0)
        clock.seconds = {}
        started, cpu_started = time.perf_counter(), time.process_time()
        members = renderer.encode_sample(spec, renderer.render(spec), "glb")  # as a worker writes it (mesh.glb)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stages = {stage: clock.seconds.get(stage, 0.0) for stage in STAGES}
        runs.append({**stages, "other": cpu - sum(stages.values()), "total CPU": cpu, "total wall": total})
        images = sum(name.endswith(".jpg") for name in members)
        heatmaps = sum(name.endswith(".heat.png") for name in members)
        size = sum(map(len, members.values()))
        print(f"run {index}: {cpu:.2f} s CPU, {total:.2f} s wall, {images} images, {heatmaps} heatmaps, {size / 2**20:.1f} MiB encoded")
    return runs


def supersampling_note(renderer: IdentityRenderer, texture_size: int) -> str:
    """What 2× supersampling would cost instead of edge antialiasing: the same identity's render at twice the size
    (a fresh renderer, as a worker would have it), against `renderer`'s."""
    spec, size = plan_identity(0, seed=0), renderer.config.image_size
    big = IdentityRenderer(RenderConfig(image_size=2 * size, texture_size=texture_size, backend="auto"))
    cpu_started = time.process_time()
    big.render(spec)
    supersampled = time.process_time() - cpu_started
    cpu_started = time.process_time()
    renderer.render(spec)
    single = time.process_time() - cpu_started
    return (f"Antialiasing: silhouette-edge smoothing is inside the shading stage (a few ms per view). Rendering at "
            f"{2 * size} px to downsample 2× would cost {supersampled:.2f} s CPU per identity for render alone, "
            f"against {single:.2f} s at {size} px ({supersampled / single:.1f}×), which the 3 s target cannot afford.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    renderer = IdentityRenderer(RenderConfig(image_size=args.image_size, texture_size=args.texture_size, backend="auto"))
    setup = time.perf_counter() - started
    renderer.render(plan_identity(999, seed=0))  # warm-up: first calls allocate and fill caches
    runs = time_identities(renderer, args.repeats)
    antialias = supersampling_note(renderer, args.texture_size)
    print(antialias)

    median = {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}
    rows = [f"| {stage} | {median[stage]:.3f} |" for stage in runs[0]]
    table = "\n".join(["| stage | median s (CPU) |", "|---|---|", *rows])
    print(table)
    if args.write:
        text = (f"{SECTION}\n\nOne identity (11 expressions × 3 views = 33 images at {args.image_size} px, 10 heatmaps, "
                f"seg/depth PNGs, mesh.obj, {args.texture_size} px texture.png), torch raster backend, "
                f"{args.threads} thread(s), median of {args.repeats} identities, on {cpu_model()} ({os.cpu_count()} logical "
                f"CPUs, load average {os.getloadavg()[0]:.1f} at the end: the machine is shared, so CPU time is the "
                f"figure to compare); "
                f"renderer setup (face model, rig, UV atlas) {setup:.1f} s once per worker. Stages are timed by hooks "
                f"around the renderer's stage calls. Measured by `python bench/bench_identity.py --write`.\n\n"
                f"{table}\n\n{antialias}\n")
        write_section(SECTION, text)
        print(f"wrote the {SECTION!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
