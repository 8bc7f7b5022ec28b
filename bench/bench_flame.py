"""Time FLAME's one-off costs and one FLAME identity, on the synthetic FLAME file the tests build from the ICT head.

    python bench/bench_flame.py [--image-size 512] [--write]

Measures CPU time (time.process_time, one torch thread) of: reading the FLAME file (restricted unpickler),
computing the ICT → FLAME correspondence (registration and mapping: done once per file, then cached), loading the
FLAME face model from the cache, and rendering one identity (11 expressions × 3 views, heatmaps, encodings), with the
ICT identity beside it. With --write, puts the table into the "FLAME" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import RESULTS, machine, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.face.flame.files import read_flame  # noqa: E402
from factory.face.flame.model import FlameSource, load_flame_model  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402
from tests.flame_files import write_flame  # noqa: E402

SECTION = "## FLAME"


def cpu_seconds(function) -> tuple[float, object]:
    started = time.process_time()
    result = function()
    return time.process_time() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--write", action="store_true", help=f"write the table into {RESULTS.name}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["PAINFACTORY_CACHE"] = folder
        synthetic = write_flame(Path(folder) / "generic_model.pkl", "2020")
        rows = [("read the FLAME file (2020 pickle, 48 MB)", cpu_seconds(lambda: read_flame(synthetic.path))[0]),
                ("correspondence: register and map (once per file)", cpu_seconds(lambda: load_flame_model(FlameSource(str(synthetic.path))))[0])]
        load_flame_model.cache_clear()
        rows.append(("FLAME face model from the cache", cpu_seconds(lambda: load_flame_model(FlameSource(str(synthetic.path))))[0]))
        spec = plan_identity(0, seed=0)
        for name, extra in (("FLAME", {"face_model": "flame", "flame_path": str(synthetic.path)}), ("ICT", {})):
            renderer = IdentityRenderer(RenderConfig(image_size=args.image_size, backend="torch", **extra))
            renderer.encode_sample(spec, renderer.render(spec))  # warm up
            rows.append((f"one {name} identity at {args.image_size} px, rendered and encoded",
                         cpu_seconds(lambda: renderer.encode_sample(spec, renderer.render(spec)))[0]))
    table = "\n".join(f"| {what} | {seconds:.2f} |" for what, seconds in rows)
    text = (f"{SECTION}\n\n`python bench/bench_flame.py --image-size {args.image_size}` on {machine()}; one torch thread, CPU "
            f"seconds (1-minute load average at the end {os.getloadavg()[0]:.1f}). The FLAME file is the tests' synthetic "
            "one (tests/flame_files.py: 4,992 vertices, FLAME 2020 layout).\n\n| step | CPU s |\n|---|---|\n" + table + "\n")
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
