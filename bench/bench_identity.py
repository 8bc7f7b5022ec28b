"""Time one whole identity (11 expressions × 3 views at 512 px, 10 heatmaps, all encodings) on one thread.

    python bench/bench_identity.py --repeats 3 [--threads 1] [--image-size 512] [--write]

Prints the median seconds per stage and in total; with --write, puts them into the "Identity" section of
bench/RESULTS.md with the machine's CPU model. Target: ≤ 3 s per identity at 512 px on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from results import RESULTS, cpu_model, write_section  # bench/results.py, beside this script

SECTION = "## Identity"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from factory.run.identity import IdentityRenderer, RenderConfig, Stopwatch
    from factory.spec.plan import plan_identity

    started = time.perf_counter()
    renderer = IdentityRenderer(RenderConfig(image_size=args.image_size, texture_size=args.texture_size, backend="torch"))
    setup = time.perf_counter() - started
    renderer.render(plan_identity(999, seed=0))  # warm-up: first calls allocate and fill caches
    # Stages in CPU seconds of this process (one thread): other jobs on a shared machine inflate wall time.
    renderer.stopwatch = Stopwatch(time.process_time)

    runs = []
    for index in range(args.repeats):
        spec = plan_identity(index, seed=0)
        renderer.stopwatch.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        members = renderer.encode_sample(spec, renderer.render(spec))
        total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        runs.append({**renderer.stopwatch.seconds, "total CPU": cpu, "total wall": total})
        images = sum(name.endswith(".jpg") for name in members)
        heatmaps = sum(name.endswith(".heat.png") for name in members)
        size = sum(map(len, members.values()))
        print(f"run {index}: {cpu:.2f} s CPU, {total:.2f} s wall, {images} images, {heatmaps} heatmaps, {size / 2**20:.1f} MiB encoded")

    # What 2× supersampling would cost instead of edge antialiasing: the same identity's render at twice the size.
    spec = plan_identity(0, seed=0)
    big = IdentityRenderer(RenderConfig(image_size=2 * args.image_size, texture_size=args.texture_size, backend="torch"))
    cpu_started = time.process_time()
    big.render(spec)
    supersampled = time.process_time() - cpu_started
    renderer.stopwatch.reset()
    renderer.render(spec)
    single = sum(renderer.stopwatch.seconds.values())
    antialias = (f"Antialiasing: silhouette-edge smoothing is inside `shade` (a few ms per view). Rendering at "
                 f"{2 * args.image_size} px to downsample 2× would cost {supersampled:.2f} s CPU per identity for "
                 f"render alone, against {single:.2f} s at {args.image_size} px ({supersampled / single:.1f}×), "
                 f"which the 3 s target cannot afford.")
    print(antialias)

    stages = list(runs[0])
    median = {stage: statistics.median(run.get(stage, 0.0) for run in runs) for stage in stages}
    rows = [f"| {stage} | {median[stage]:.3f} |" for stage in stages]
    table = "\n".join(["| stage | median s (CPU) |", "|---|---|", *rows])
    print(table)
    if args.write:
        text = (f"{SECTION}\n\nOne identity (11 expressions × 3 views = 33 images at {args.image_size} px, 10 heatmaps, "
                f"seg/depth PNGs, mesh.obj, {args.texture_size} px texture.png), torch raster backend, "
                f"{args.threads} thread(s), median of {args.repeats} identities, on {cpu_model()} ({os.cpu_count()} logical "
                f"CPUs, load average {os.getloadavg()[0]:.1f} at the end: the machine is shared, so CPU time is the "
                f"figure to compare); "
                f"renderer setup (face model, rig, UV atlas) {setup:.1f} s once per worker. "
                f"Measured by `python bench/bench_identity.py --write`.\n\n{table}\n\n{antialias}\n")
        write_section(SECTION, text)
        print(f"wrote the {SECTION!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
