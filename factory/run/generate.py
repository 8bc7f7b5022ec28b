"""The `factory generate` driver: check, take the dataset's lease, run a pool of Ray actors, commit each shard.

    config (types and ranges checked at the edge, factory/run/config.py)
      ──▶ read the dataset: manifest + commit log in one pass; refuse a different config    (nothing written yet)
      ──▶ Ray: join RAY_ADDRESS or start a local cluster; size the pool                    (nothing written yet)
      ──▶ the dataset's lease (factory/format/lease.py): a second driver is refused, naming the holder, or waits
      ──▶ manifest.json names this run's commit log; partial files of dead writers removed
      ──▶ WorkerPool: pending shards planned one at a time (ShardPlan), one in flight per actor (backpressure),
          a lost actor's shard goes back to the queue for a fresh actor; with the diffusion texturer or the inpaint
          background, a DiffusionPool of GPU actors beside it (factory/run/diffusion.py)
      ──▶ each committed shard: one record appended to the commit log, progress bar (constant cost per shard)
      ──▶ the log compacted into manifest.json, lease released ──▶ GenerateSummary

The driver holds one byte per planned shard (which are committed) and one open log segment, whatever the size of
the dataset. A killed driver is recovered by running the same command again: committed shards are in the manifest
or its log and are skipped; a shard file without a record (a crash between the two) is simply rendered again.
SIGINT and SIGTERM stop the run cleanly (actors killed, credentials file removed, lease released, a local Ray
cluster shut down); what a SIGKILL leaves behind is listed in the README's reliability section.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass

import psutil

from factory import __version__
from factory.errors import FactoryError
from factory.format.lease import DatasetLease
from factory.format.manifest import LOG_DIR, MANIFEST_NAME, CommitLog, Manifest, ShardRecord, compact, load_manifest, start_log
from factory.format.members import SETS
from factory.format.shards import LEGACY_SHARD_DIR, ShardPlan, ShardTask
from factory.format.storage import PARTIAL_DIR, Storage, public_storage_options
from factory.run.config import GenerateConfig, content_differences, content_of
from factory.run.credentials import credentials_file, public_env
from factory.run.diffusion import DiffusionPool, check_models, render_gpus_beside
from factory.run.workers import ShardResult, ShardWorker

logger = logging.getLogger(__name__)
ACTOR_NAMESPACE = "painfactory"  # actors are named "<run id>-worker-<n>" there, so `ray list actors` shows whose they are
# How often one shard may lose its actor before the run gives up: a shard that kills every process it runs in
# (out of memory, a crashing driver library) would otherwise be retried forever.
MAX_ACTOR_LOSSES_PER_SHARD = 3
WAIT_TIMEOUT_S = 1.0  # ray.wait returns at least this often, so SIGINT and SIGTERM are handled promptly
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GenerateError(FactoryError, RuntimeError):
    """The run cannot go on; the message says why and what to do."""


class GenerateInterrupted(GenerateError):
    """SIGINT or SIGTERM: the run stopped cleanly; committed shards are kept."""


@dataclass(frozen=True)
class GenerateSummary:
    url: str
    identities: int  # in the dataset now
    rendered_identities: int  # by this run
    images: int  # written by this run
    shards: int  # in the dataset now
    rendered_shards: int
    bytes: int  # written by this run
    workers: int
    gpus_per_worker: float
    lost_actors: int
    wall_s: float

    @property
    def identities_per_minute(self) -> float:
        return 60.0 * self.rendered_identities / self.wall_s if self.wall_s > 0 else 0.0

    def text(self) -> str:
        if not self.rendered_shards:
            return f"{self.url}: all {self.shards} shards ({self.identities} identities) already complete, nothing to do"
        return (
            f"{self.url}: rendered {self.rendered_identities} identities ({self.images} images) in {self.rendered_shards} shards, "
            f"{self.bytes / 1e6:.1f} MB, in {self.wall_s:.1f} s = {self.identities_per_minute:.1f} identities/min "
            f"on {self.workers} worker(s) × {self.gpus_per_worker:g} GPU; lost actors redone: {self.lost_actors}. "
            f"Dataset: {self.identities} identities in {self.shards} shards."
        )


@dataclass
class RunTotals:
    """What this run rendered, added up shard by shard (the results themselves are not kept)."""

    shards: int = 0
    identities: int = 0
    images: int = 0
    bytes: int = 0

    def add(self, result: ShardResult) -> None:
        self.shards += 1
        self.identities += result.record.count
        self.images += result.images
        self.bytes += result.record.bytes


@dataclass
class DatasetState:
    """What the dataset at `out` holds, as this config plans it."""

    manifest: Manifest | None  # None: nothing there yet (or --overwrite); shards kept only until the run starts
    committed: bytearray  # committed[n] == 1: shard n is committed exactly as planned

    @property
    def pending(self) -> int:
        return len(self.committed) - self.committed.count(1)

    def complete(self, identities: int) -> bool:
        """Nothing to render and nothing to write: every shard committed and the manifest compacted and current."""
        m = self.manifest
        return not self.pending and m is not None and m.log is None and m.identities == identities

    def pending_tasks(self, plan: ShardPlan) -> Iterator[ShardTask]:
        """The shards still to render, planned one at a time as the pool asks for them."""
        return (plan[number] for number, done in enumerate(self.committed) if not done)


def generate(config: GenerateConfig, progress: bool = True, on_shard_committed: Callable[[ShardRecord], None] | None = None,
             worker_class: type = ShardWorker) -> GenerateSummary:
    """Make or extend the dataset `config` describes. `worker_class` renders shards (ShardWorker; the driver's
    scale bench passes a stand-in with the same interface)."""
    started = time.perf_counter()
    check_models(config.render)  # a missing or wrong diffusion model is refused before anything is written
    storage = Storage(config.out, config.storage_options)
    plan = ShardPlan(config.identities, config.identities_per_shard)
    state = read_dataset(storage, config, plan)
    if state.complete(config.identities):
        return summarize(config, state.manifest, RunTotals(), 0, 0.0, 0, started)
    run_id = f"generate-{uuid.uuid4().hex[:8]}"
    totals, workers, gpus, lost = RunTotals(), 0, 0.0, 0
    with ExitStack() as stack:
        stack.enter_context(stopping_on_signals())
        if state.pending:  # Ray's checks (GPUs, room for the workers) come before anything is written
            stack.enter_context(ray_session(config.workers))
            gpus = resolve_gpus_per_worker(render_gpus_beside(config.render, config.gpus_per_worker))
            workers = resolve_workers(config.workers, gpus, state.pending)
        lease = stack.enter_context(DatasetLease.acquire(storage, owner=run_id, wait=config.wait, on_wait=announce_wait))
        stack.callback(remove_partials, storage)  # on every way out, once the actors are gone, before the lease goes
        state = read_dataset(storage, config, plan)  # again, under the lease: another driver may have written meanwhile
        log = open_run(storage, config, state, run_id)
        if state.pending:
            if not workers:
                raise GenerateError(f"{config.out} changed while this run waited for its lease; run the same command again")
            bar = stack.enter_context(progress_bar(sum(t.count for t in state.pending_tasks(plan)), enabled=progress))

            def commit(result: ShardResult) -> None:
                lease.check()  # a driver that lost its lease must not record anything more
                log.append(result.record)
                totals.add(result)
                bar.update(result.record.count)
                if on_shard_committed:
                    on_shard_committed(result.record)

            credentials = stack.enter_context(credentials_file(config.storage_options))
            diffusion = DiffusionPool.start(config, ACTOR_NAMESPACE) if config.render.uses_diffusion else None
            if diffusion:
                stack.callback(diffusion.close)  # after the render workers (the stack unwinds last in, first out)
            pool = WorkerPool(config, workers, gpus, run_id=run_id, credentials=credentials, worker_class=worker_class,
                              diffusion=diffusion.client() if diffusion else None)
            stack.callback(pool.close)
            pool.run(state.pending_tasks(plan), commit)
            lost = pool.lost_actors
        manifest = compact(storage)
    return summarize(config, manifest, totals, workers, gpus, lost, started)


def summarize(config: GenerateConfig, manifest: Manifest, totals: RunTotals, workers: int, gpus: float, lost: int,
              started: float) -> GenerateSummary:
    return GenerateSummary(
        url=config.out, identities=sum(s.count for s in manifest.shards), rendered_identities=totals.identities,
        images=totals.images, shards=len(manifest.shards), rendered_shards=totals.shards, bytes=totals.bytes,
        workers=workers, gpus_per_worker=gpus, lost_actors=lost, wall_s=time.perf_counter() - started,
    )


def read_dataset(storage: Storage, config: GenerateConfig, plan: ShardPlan) -> DatasetState:
    """Read the manifest and its commit log once; refuse a dataset this config must not touch. Writes nothing."""
    existing = None if config.overwrite else load_manifest(storage)
    if existing is None and not config.overwrite:  # listed only here: s3fs would keep a stale listing for later reads
        folders = [name for name in (*SETS, LEGACY_SHARD_DIR) if storage.list(name)]
        if folders:
            raise GenerateError(f"{config.out} holds {folders[0]}/ but no {MANIFEST_NAME}: not a painfactory dataset or a damaged "
                                "one; use --overwrite to replace it, or choose another --out")
    committed = bytearray(len(plan))
    if existing is not None and existing.shards:  # a manifest without shards (a run that failed at once) holds nothing to keep
        check_compatible(existing, config)
        for record in existing.shards:
            number = record.first_index // config.identities_per_shard
            task = plan[number] if number < len(plan) else None
            if task and is_planned(record, task, config.sets):
                committed[number] = 1  # a short last shard of a smaller run is not: it is redone, full
    return DatasetState(manifest=existing if existing is not None and existing.shards else None, committed=committed)


def is_planned(record: ShardRecord, task: ShardTask, sets: tuple[str, ...]) -> bool:
    """The record is the task's shard exactly: its identities, and a file in each of `sets` at the planned path."""
    paths = {name: entry.path for name, entry in record.files.items()}
    return (record.first_index, record.count, paths) == (task.first_index, task.count, {name: task.path(name) for name in sets})


def check_compatible(existing: Manifest, config: GenerateConfig) -> None:
    stored = content_of(existing.config)
    differing = content_differences(stored, config.content())
    if differing:
        raise GenerateError(f"{config.out} was generated with a different config ({', '.join(differing)} differ); "
                            "use the same settings to resume or extend it, --overwrite to replace it, or another --out")
    if existing.package_version != __version__:
        raise GenerateError(f"{config.out} was made by painfactory {existing.package_version}, this is {__version__}: "
                            "its shards would mix two renderers; use --overwrite or another --out")
    if config.identities < existing.identities:
        raise GenerateError(f"{config.out} already holds a plan for {existing.identities} identities; ask for at least as many "
                            "(identities may grow: the plans are prefix-stable), or use --overwrite")


def open_run(storage: Storage, config: GenerateConfig, state: DatasetState, run_id: str) -> CommitLog:
    """Under the lease: clear what --overwrite replaces and what dead writers left half-written, then write
    manifest.json (this config, the shards so far) naming this run's commit log."""
    if config.overwrite:
        for name in (*SETS, LEGACY_SHARD_DIR, MANIFEST_NAME, LOG_DIR):
            storage.remove(name)
    storage.remove(PARTIAL_DIR)  # nobody else writes while this driver holds the lease
    manifest = state.manifest or Manifest(package_version=__version__, seed=config.seed, config={}, identities=0)
    manifest.config = config.to_dict()
    manifest.identities = config.identities
    manifest.sets = config.sets
    log = start_log(storage, manifest, run_id)
    state.manifest = None  # the driver keeps no shard list while it runs
    return log


def remove_partials(storage: Storage) -> None:
    """Remove the files this run's writers left half-written (an interrupted shard); never raises, so a failing
    store does not hide the error that ended the run."""
    try:
        storage.remove(PARTIAL_DIR)
    except (FactoryError, FileNotFoundError) as error:
        logger.warning("could not remove %s: %s", storage.describe(PARTIAL_DIR), error)


def announce_wait(holder: str) -> None:
    logger.warning("waiting for the dataset's lease, held by %s", holder)


@contextmanager
def ray_session(workers: int | None) -> Iterator[None]:
    """Join the cluster named by RAY_ADDRESS, or start a local one with a CPU slot for each CPU of this machine (or
    for each requested worker, if more: every actor must be placeable, or its shards would wait forever). A
    session this call opened is closed on the way out; a local cluster it started is stopped with every process
    it spawned, even when the run ends while Ray is still starting."""
    import ray

    if ray.is_initialized():  # the caller's session (a test, a notebook): theirs to close
        yield
        return
    local = not os.environ.get("RAY_ADDRESS")
    handlers = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    try:
        try:
            if local:
                ray.init(num_cpus=max(os.cpu_count() or 1, workers or 1), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(log_to_driver=False)
        except SystemExit as stop:  # ray.init's own SIGTERM handler, active while it starts
            if stop.code != signal.SIGTERM:
                raise
            raise GenerateInterrupted(interrupted_message(signal.SIGTERM)) from None
        for number, handler in handlers.items():  # ray.init replaced them (Ray's core worker aborts on SIGTERM)
            if handler is not None:
                signal.signal(number, handler)
        yield
    finally:
        spawned = psutil.Process().children(recursive=True) if local else []  # GCS, raylet, its agents, workers
        ray.shutdown()
        stop_processes(spawned)


def stop_processes(processes: list, grace_s: float = 3.0) -> None:
    """End what ray.shutdown left of a local cluster: its dashboard and runtime-env agents outlive a raylet that was
    stopped while starting, for minutes. SIGTERM, then SIGKILL for those still there after `grace_s`."""
    _, alive = psutil.wait_procs(processes, timeout=1.0)
    for process in alive:
        with suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=grace_s)
    for process in alive:
        with suppress(psutil.Error):
            process.kill()


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the run as GenerateInterrupted, after every cleanup on the way out has run (actors
    killed, credentials removed, lease released, local Ray stopped); the previous handlers come back after.

    The handler raises KeyboardInterrupt, the one exception Ray's blocking calls (ray.wait) let through; which
    signal it was is remembered for the message."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def interrupt(number, frame) -> None:
        received.append(number)
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
    try:
        yield
    except KeyboardInterrupt:
        raise GenerateInterrupted(interrupted_message(received[-1] if received else signal.SIGINT)) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def interrupted_message(number: int) -> str:
    return f"interrupted by {signal.Signals(number).name}; committed shards are kept, run the same command again to resume"


def resolve_gpus_per_worker(requested: float | None) -> float:
    import ray

    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if requested is None:
        return 1.0 if cluster_gpus > 0 else 0.0
    if requested > 0 and cluster_gpus < requested:
        raise GenerateError(f"--gpus-per-worker {requested:g} but the Ray cluster has {cluster_gpus:g} GPU(s); use --gpus-per-worker 0 to render on CPU")
    return float(requested)


def resolve_workers(requested: int | None, gpus_per_worker: float, pending_shards: int) -> int:
    """The requested count, or what the cluster holds (one CPU each, or gpus_per_worker GPUs each); never more
    actors than there are shards to render."""
    import ray

    resources = ray.cluster_resources()
    room = int(resources.get("GPU", 0) / gpus_per_worker if gpus_per_worker > 0 else resources.get("CPU", 1))
    if requested is None:
        requested = max(1, room)
    elif requested > room:
        logger.warning("%d workers requested but the Ray cluster has room for %d now; the others start when an "
                       "autoscaler adds nodes, and their shards wait for them", requested, room)
    return min(requested, pending_shards)


@contextmanager
def progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="id", desc="identities", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
    try:
        yield bar
    finally:
        bar.close()


class WorkerPool:
    """Long-lived worker actors (ShardWorker, or a stand-in with its interface), each given one shard at a time;
    a lost actor is replaced and its shard goes back to the front of the queue, so every shard is committed
    exactly once."""

    def __init__(self, config: GenerateConfig, size: int, gpus_per_worker: float, run_id: str | None = None,
                 credentials: str | None = None, worker_class: type = ShardWorker, diffusion=None) -> None:
        import ray

        self.config = config
        self.actor_class = ray.remote(worker_class)
        self.gpus_per_worker = gpus_per_worker
        self.run_id = run_id or f"generate-{uuid.uuid4().hex[:8]}"
        self.credentials = credentials  # the path of the driver's private credentials file, never the secrets
        self.diffusion = diffusion  # a DiffusionClient (factory/run/diffusion.py) the workers send their diffusion jobs to
        self.started = 0
        self.lost_actors = 0
        self.actors = [self.start_actor() for _ in range(size)]

    def start_actor(self):
        c = self.config
        name = f"{self.run_id}-worker-{self.started}"
        self.started += 1
        options = dict(num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=0, max_task_retries=0, name=name,
                       namespace=ACTOR_NAMESPACE, runtime_env={"env_vars": public_env()})
        return self.actor_class.options(**options).remote(c.seed, c.plan, c.render, c.out, public_storage_options(c.storage_options),
                                                          self.credentials, self.diffusion, batch_identities=c.batch_identities,
                                                          sets=c.sets, mesh_format=c.mesh_format)

    def run(self, tasks: Iterable[ShardTask], commit: Callable[[ShardResult], None]) -> None:
        """Render every task, committing each result as it arrives; tasks are drawn from the iterable lazily."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        upcoming = iter(tasks)
        retry: deque[ShardTask] = deque()  # shards whose actor was lost, first in line
        losses: dict[int, int] = {}
        in_flight: dict = {}  # ObjectRef → (actor, task)

        def submit(actor) -> None:
            task = retry.popleft() if retry else next(upcoming, None)
            if task is not None:
                in_flight[actor.render_shard.remote(task)] = (actor, task)

        for actor in self.actors:
            submit(actor)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_TIMEOUT_S)
            if not ready:
                continue
            actor, task = in_flight.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except RayActorError as error:
                losses[task.number] = losses.get(task.number, 0) + 1
                if losses[task.number] > MAX_ACTOR_LOSSES_PER_SHARD:
                    raise GenerateError(f"{task.name} lost its worker {losses[task.number]} times; giving up. "
                                        f"Last loss: {error}") from None
                self.lost_actors += 1
                self.actors.remove(actor)
                actor = self.start_actor()
                self.actors.append(actor)
                retry.appendleft(task)
            except RayTaskError as error:
                raise GenerateError(f"{task.name} (identities {task.first_index}–{task.first_index + task.count - 1}) failed: "
                                    f"{error.cause if error.cause is not None else error}") from None
            else:
                losses.pop(task.number, None)
                commit(result)
            submit(actor)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
