"""Time the raster backends side by side on the ICT head (52,220 triangles) and record the figures.

    python bench/bench_raster.py --threads 1 --repeats 7

For each image size: the torch backend (median of --repeats, with and without back-face culling, frontal and
side view), the numba backend (the same fragments, bit for bit) and pytorch3d's CPU rasterizer (timed once: tens of
seconds at 512 px), then the ratios. The table is
printed and written as the "Rasterizer" section of bench/RESULTS.md (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import RESULTS, cpu_model, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.face.model import FaceModel  # noqa: E402
from factory.render import raster_pytorch3d  # noqa: E402
from factory.render.camera import Orbit, head_camera, head_sphere  # noqa: E402
from factory.render.raster import rasterize  # noqa: E402

SECTION = "## Rasterizer"
PASSES_PER_IDENTITY = 33  # 11 expressions × 3 views


class Timing(NamedTuple):
    wall_ms: float  # median wall time
    cpu_ms: float  # median CPU time of this process: on a shared machine, what the work itself costs

    def __str__(self) -> str:
        return f"{self.wall_ms:.1f} / {self.cpu_ms:.1f}"


def timed(run, repeats: int, warm_up: bool = True) -> Timing:
    """Median wall and CPU time in milliseconds over `repeats` runs (after one warm-up run unless told not to)."""
    if warm_up:
        run()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(1000 * statistics.median(walls), 1000 * statistics.median(cpus))


def culling_loss(verts: torch.Tensor, faces: torch.Tensor, camera) -> float:
    """Share of covered pixels whose visible triangle changes when back faces are culled."""
    kept = rasterize(verts, faces, camera, backend="torch").pix_to_face
    culled = rasterize(verts, faces, camera, backend="torch", cull_backfaces=True).pix_to_face
    return float((kept != culled).sum() / (kept >= 0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: one core)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of the torch backend per case")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sizes in pixels")
    parser.add_argument("--skip-pytorch3d", action="store_true", help="time the torch backend only")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = FaceModel.load()
    verts = model.neutral[None]
    center, radius = head_sphere(model.neutral, int(model.landmarks[8]))
    with_pytorch3d = raster_pytorch3d.available() and not args.skip_pytorch3d

    header = ("| image | view | torch ms, wall / CPU | torch culled ms, wall / CPU | numba ms, wall / CPU | torch / numba (CPU time) "
              "| pytorch3d (CPU backend) ms, wall / CPU | pytorch3d / torch (CPU time) |")
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    print(header)
    per_pass_at_512 = None
    for size in args.sizes:
        for view, orbit in (("frontal", Orbit(yaw=0.0)), ("side", Orbit(yaw=-35.0))):
            camera = head_camera(orbit, size, center, radius)
            plain = timed(lambda: rasterize(verts, model.faces, camera, backend="torch"), args.repeats)
            culled = timed(lambda: rasterize(verts, model.faces, camera, backend="torch", cull_backfaces=True), args.repeats)
            compiled = timed(lambda: rasterize(verts, model.faces, camera, backend="numba"), args.repeats)
            reference, ratio = "–", "–"
            if with_pytorch3d and view == "frontal":  # slow: once per size, and it has no caches to warm
                timing = timed(lambda: rasterize(verts, model.faces, camera, backend="pytorch3d"), 1, warm_up=False)
                reference, ratio = f"{timing.wall_ms:.0f} / {timing.cpu_ms:.0f}", f"{timing.cpu_ms / plain.cpu_ms:.0f}×"
            if size == 512 and view == "frontal":
                per_pass_at_512, compiled_at_512 = plain, compiled
                lost_to_culling = culling_loss(verts, model.faces, camera)
            row = f"| {size} px | {view} | {plain} | {culled} | {compiled} | {plain.cpu_ms / compiled.cpu_ms:.1f}× | {reference} | {ratio} |"
            rows.append(row)
            print(row, flush=True)

    notes = [
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs (load average {os.getloadavg()[0]:.1f} at the end: shared with other work); "
        f"torch {torch.__version__}, {args.threads} thread(s); medians of {args.repeats} runs per torch case, "
        "pytorch3d timed once. Wall time counts waiting for the shared cores; CPU time is the process's own. "
        "ICT head, neutral, 52,220 triangles, framed by `head_camera` from the chin up.",
    ]
    if per_pass_at_512 is not None:
        notes.append(f"A whole identity's {PASSES_PER_IDENTITY} raster passes at 512 px, one mesh a pass: "
                     f"{PASSES_PER_IDENTITY * per_pass_at_512.cpu_ms / 1000:.2f} s CPU time with the torch backend, "
                     f"{PASSES_PER_IDENTITY * compiled_at_512.cpu_ms / 1000:.2f} s with numba (the default on CPUs), "
                     "without culling, before shading. The numba backend's fragments are the torch backend's, bit for "
                     "bit (tests/test_raster.py).")
        notes.append(f"Culling back faces changes the visible triangle on {100 * lost_to_culling:.2f} % of the covered "
                     "pixels (frontal, 512 px): the eyelashes are single-sided sheets whose far side it drops, so "
                     "`cull_backfaces` defaults to False.")
    text = "\n".join([SECTION, "", "`python bench/bench_raster.py " + " ".join(sys.argv[1:]) + "`", "", *rows, "", *notes]) + "\n"
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote the {SECTION!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
