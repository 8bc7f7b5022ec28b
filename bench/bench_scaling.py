"""Scaling bench: identities/min of `factory generate` with 1 and with 2 worker actors, in one run.

    python bench/bench_scaling.py --identities 8 --image-size 128

Both runs render the same identities into fresh temporary folders on one local Ray cluster (started here, one
CPU per worker) and must produce identical shards. Threads are pinned per actor: every process of the cluster gets
OMP_NUM_THREADS / MKL_NUM_THREADS = --threads-per-worker (1 by default), so W workers use W cores and no more, and
the figures say how many each actor had. The wall time of each run is the generate() call: actor start
and model loading included, Ray start excluded. The table goes into the "Scaling" section of bench/RESULTS.md,
with the machine it ran on; compare the two rows as a ratio, not with numbers from other machines.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a source tree; the Ray workers get the same path below

from results import machine, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.format.manifest import Manifest  # noqa: E402
from factory.run.config import GenerateConfig  # noqa: E402
from factory.run.generate import generate  # noqa: E402
from factory.run.identity import RenderConfig  # noqa: E402

SECTION = "## Scaling"


def run(workers: int, args: argparse.Namespace, root: Path) -> tuple[float, list[str]]:
    out = root / f"workers-{workers}"
    config = GenerateConfig(identities=args.identities, out=str(out), seed=0, identities_per_shard=args.per_shard, workers=workers,
                            gpus_per_worker=0, render=RenderConfig(image_size=args.image_size, texture_size=args.texture_size))
    summary = generate(config, progress=True)
    print(summary.text(), flush=True)
    shas = [entry.sha256 for s in Manifest.from_json((out / "manifest.json").read_bytes()).shards for entry in s.files.values()]
    return summary.identities_per_minute, shas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--per-shard", type=int, default=2, help="identities per shard (several shards per worker)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--texture-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="runs per worker count, alternating; the best is reported")
    parser.add_argument("--threads-per-worker", type=int, default=1, help="torch/OpenMP threads of each actor")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()

    import ray

    load_before = os.getloadavg()[0]
    threads = str(args.threads_per_worker)
    ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}})
    rates: dict[int, list[float]] = {1: [], 2: []}
    shards: set[tuple[str, ...]] = set()
    for repeat in range(args.repeats):  # alternate 1 and 2 workers so that load from elsewhere hits both alike
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as temp:
                rate, shas = run(workers, args, Path(temp))
            rates[workers].append(rate)
            shards.add(tuple(shas))
    ray.shutdown()
    if len(shards) != 1:
        raise SystemExit("the runs wrote different shards: determinism is broken")
    one, two = max(rates[1]), max(rates[2])
    runs = "; ".join(f"{w} worker(s): " + ", ".join(f"{r:.1f}" for r in rates[w]) for w in (1, 2))

    text = "\n".join([
        SECTION, "",
        f"`python bench/bench_scaling.py --identities {args.identities} --per-shard {args.per_shard} --image-size {args.image_size} "
        f"--texture-size {args.texture_size} --repeats {args.repeats} --threads-per-worker {args.threads_per_worker}` "
        f"on {machine()}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}.",
        "Each run is one `generate()` call into a fresh folder (actor start and model loading included, Ray start excluded); "
        f"the table shows the best of {args.repeats} alternating runs each (all runs, identities/min: {runs}); "
        f"all runs wrote byte-identical shards; {args.threads_per_worker} thread(s) per actor (OMP_NUM_THREADS). "
        f"1-minute load average before the runs: {load_before:.1f} "
        "(other work on a shared machine takes CPU from the workers).", "",
        "| workers | identities/min | speed-up |", "|---|---|---|",
        f"| 1 | {one:.1f} | 1.00× |", f"| 2 | {two:.1f} | {two / one:.2f}× |", "",
    ])
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
