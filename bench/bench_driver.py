"""Driver scale bench: `generate()` plans, schedules and commits N identities in N/K shards on a local Ray cluster,
with a stand-in renderer (no images), and the driver's seconds and peak memory are reported per 1,000 shards at
the start and at the end of the run. Flat = the driver's cost per shard does not grow with the dataset.

    python bench/bench_driver.py --identities 1000000 --per-shard 4      # 250,000 shards, into bench/RESULTS.md

Everything the driver does is the real code: ShardPlan, the lease and its heartbeat, WorkerPool (Ray actors,
ray.wait, one shard in flight per actor), the commit log (one record per shard) and the compaction at the end.
Only the worker is a stand-in (StandInWorker): it returns each shard's record at once, without rendering or
uploading, so the run is bound by the driver alone, which is the harshest test of its per-shard cost (with
`--plan-identities` it runs the real planner for every identity first). Per window of 1,000 committed shards:
wall seconds, the driver process's CPU seconds (its Ray threads included), and its peak RSS sampled at every
commit. `run_scale` is also what tests/test_driver_scale.py runs at a smaller scale.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a source tree

from factory.format.manifest import SetFile, ShardRecord  # noqa: E402
from factory.format.members import SETS  # noqa: E402
from factory.format.shards import ShardTask  # noqa: E402
from factory.run.config import GenerateConfig  # noqa: E402
from factory.run.generate import generate  # noqa: E402
from factory.run.workers import ShardResult  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402

SECTION = "## Driver at scale"
WINDOW = 1000  # shards per measurement window


class StandInWorker:
    """ShardWorker's interface without a renderer: a shard's record is a digest of its identity ids (or, with
    `plan_identities`, of their full plans), returned at once; nothing is written."""

    plan_identities = False

    def __init__(self, seed, plan, render, out, storage_options, credentials=None, diffusion=None, batch_identities=1,
                 sets=SETS, mesh_format="glb") -> None:
        self.seed, self.plan, self.sets = seed, plan, sets

    def render_shard(self, task: ShardTask) -> ShardResult:
        digest = hashlib.sha256()
        for index in task.indices:
            text = plan_identity(index, self.seed, self.plan).to_json() if self.plan_identities else str(index)
            digest.update(text.encode())
        files = {name: SetFile(path=task.path(name), bytes=0, sha256=digest.hexdigest()) for name in self.sets}
        record = ShardRecord(first_index=task.first_index, count=task.count, files=files)
        return ShardResult(record=record, images=0)


class PlanningStandInWorker(StandInWorker):
    plan_identities = True


@dataclass
class DriverProbe:
    """Called at every commit: closes a window every WINDOW shards with its wall s, driver CPU s and peak RSS."""

    windows: list[tuple[float, float, float]] = field(default_factory=list)  # (wall s, cpu s, peak MB) per window
    commits: int = 0
    peak_rss: int = 0
    last_commit: float = 0.0

    def __post_init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:  # cheaper than psutil at every commit
            return int(handle.read().split()[1]) * self.page

    def __call__(self, record: ShardRecord) -> None:
        self.commits += 1
        self.last_commit = time.perf_counter()
        self.peak_rss = max(self.peak_rss, self.rss())
        if self.commits % WINDOW == 0:
            wall, cpu = time.perf_counter(), time.process_time()
            self.windows.append((wall - self.wall, cpu - self.cpu, self.peak_rss / 2**20))
            self.wall, self.cpu, self.peak_rss = wall, cpu, 0


@dataclass
class ScaleResult:
    identities: int
    shards: int
    workers: int
    windows: list[tuple[float, float, float]]
    total_s: float  # the whole generate() call: Ray start excluded, compaction included
    tail_s: float  # from the last commit to the end of generate(): closing the pool and compacting the log
    process_peak_mb: float  # the driver's peak RSS over the whole run, compaction included
    manifest_mb: float

    def mean(self, part: list[tuple[float, float, float]], column: int) -> float:
        return sum(w[column] for w in part) / len(part)

    def start_end(self, count: int = 3) -> tuple[list, list]:
        """The first `count` windows after the first (which holds the actors' start) and the last `count`."""
        return self.windows[1:1 + count], self.windows[-count:]


def run_scale(identities: int, per_shard: int, workers: int, out: Path, worker_class: type = StandInWorker) -> ScaleResult:
    """One generate() of `identities` into `out` with the stand-in worker, measured per window of 1,000 shards.
    Ray must already be initialised (the caller's session)."""
    config = GenerateConfig(identities=identities, out=str(out), identities_per_shard=per_shard, workers=workers, gpus_per_worker=0)
    probe = DriverProbe()
    started = time.perf_counter()
    summary = generate(config, progress=False, on_shard_committed=probe, worker_class=worker_class)
    ended = time.perf_counter()
    assert summary.shards == summary.rendered_shards == -(-identities // per_shard), summary
    return ScaleResult(identities=identities, shards=summary.shards, workers=summary.workers, windows=probe.windows,
                       total_s=ended - started, tail_s=ended - probe.last_commit,
                       process_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       manifest_mb=(out / "manifest.json").stat().st_size / 1e6)


def table(result: ScaleResult) -> str:
    start, end = result.start_end()
    rows = [("start", start, f"shards {WINDOW + 1:,}–{(len(start) + 1) * WINDOW:,}"),
            ("end", end, f"shards {(len(result.windows) - len(end)) * WINDOW + 1:,}–{len(result.windows) * WINDOW:,}")]
    lines = ["| windows | shards | wall s / 1,000 shards | driver CPU s / 1,000 shards | driver peak RSS (MB) |", "|---|---|---:|---:|---:|"]
    for name, part, span in rows:
        lines.append(f"| {name} | {span} | {result.mean(part, 0):.2f} | {result.mean(part, 1):.2f} | {max(w[2] for w in part):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--per-shard", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plan-identities", action="store_true", help="the stand-in runs the real planner for each identity")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()

    import ray

    sys.path.insert(0, str(Path(__file__).parent))
    from results import machine, write_section  # bench/results.py, beside this script

    ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    worker_class = PlanningStandInWorker if args.plan_identities else StandInWorker
    with tempfile.TemporaryDirectory() as root:
        result = run_scale(args.identities, args.per_shard, args.workers, Path(root) / "ds", worker_class)
    ray.shutdown()
    start, end = result.start_end()
    text = (f"{SECTION}\n\n`python bench/bench_driver.py --identities {args.identities} --per-shard {args.per_shard} "
            f"--workers {args.workers}{' --plan-identities' if args.plan_identities else ''}` on {machine()}, "
            f"{time.strftime('%Y-%m-%d')}.\n"
            f"`generate()` of {result.identities:,} identities in {result.shards:,} shards on local Ray with {result.workers} "
            f"stand-in workers (no rendering, no upload: the run is bound by the driver), {result.total_s:.0f} s in all. "
            f"Per window of 1,000 committed shards, the mean of {len(start)} windows after the first (actor start) and of "
            f"the last {len(end)}:\n\n{table(result)}\n\nAfter the last commit, closing the pool and compacting the log into "
            f"manifest.json ({result.manifest_mb:.1f} MB) took {result.tail_s:.1f} s; the driver's peak RSS over the whole run, "
            f"compaction included, was {result.process_peak_mb:.0f} MB (torch and the renderer's modules are imported: "
            f"about 600 MB before the first shard).\n")
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
