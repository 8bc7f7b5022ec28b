"""The `factory generate` driver: plan the shards, resume from the manifest, run a pool of Ray actors, record.

    config ──▶ open_output (manifest: resume / refuse a different config / --overwrite)
           ──▶ pending shards (those the manifest does not list)
           ──▶ WorkerPool: one ShardWorker per actor, one shard in flight per actor (backpressure),
               a lost actor's shard goes back to the queue for a fresh actor; with the diffusion texturer or
               the inpaint background, a DiffusionPool of GPU actors beside it (factory/run/diffusion.py)
           ──▶ each committed shard: manifest entry, manifest rewritten atomically, progress bar
           ──▶ GenerateSummary

A killed driver is recovered by running the same command again: committed shards are listed in the manifest
and skipped; a shard file without a manifest entry (crash between the two) is simply rendered again.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from factory import __version__
from factory.errors import FactoryError
from factory.format.manifest import MANIFEST_NAME, Manifest, ShardRecord, load_manifest, save_manifest
from factory.format.shards import SHARD_DIR, ShardTask, plan_shards
from factory.format.storage import Storage
from factory.run.config import GenerateConfig, content_differences, content_of
from factory.run.diffusion import DiffusionPool, check_models, render_gpus_beside
from factory.run.workers import ShardResult, ShardWorker

logger = logging.getLogger(__name__)
ACTOR_NAMESPACE = "painfactory"  # actors are named "<run id>-worker-<n>" there, so `ray list actors` shows whose they are
# Storage settings a user sets in the driver's shell; actors on other nodes (or on a cluster started before the
# variables were set) would not see them otherwise. Ray keeps them in the actors' runtime environment, which
# its dashboard can show: on a shared cluster, prefer node credentials (instance roles) and leave these unset.
FORWARDED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                 "PAINFACTORY_CACHE")  # where workers keep the FLAME correspondence (factory/face/flame/transfer.py)
# How often one shard may lose its actor before the run gives up: a shard that kills every process it runs in
# (out of memory, a crashing driver library) would otherwise be retried forever.
MAX_ACTOR_LOSSES_PER_SHARD = 3


class GenerateError(FactoryError, RuntimeError):
    """The run cannot go on; the message says why and what to do."""


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


def generate(config: GenerateConfig, progress: bool = True,
             on_shard_committed: Callable[[ShardRecord], None] | None = None) -> GenerateSummary:
    started = time.perf_counter()
    check_models(config.render)  # a missing or wrong diffusion model is refused before anything is written
    storage = Storage(config.out, config.storage_options)
    manifest = open_output(storage, config)
    pending = [t for t in plan_shards(config.identities, config.identities_per_shard) if not manifest.holds(t.path, t.first_index, t.count)]
    rendered: list[ShardResult] = []
    workers, gpus, lost = 0, 0.0, 0
    if pending:
        connect_ray(config.workers)
        gpus = resolve_gpus_per_worker(render_gpus_beside(config.render, config.gpus_per_worker))
        workers = resolve_workers(config.workers, gpus, len(pending))
        bar = progress_bar(sum(t.count for t in pending), enabled=progress)

        def commit(result: ShardResult) -> None:
            manifest.add(result.record)
            save_manifest(storage, manifest)
            rendered.append(result)
            bar.update(result.record.count)
            if on_shard_committed:
                on_shard_committed(result.record)

        diffusion = DiffusionPool.start(config, ACTOR_NAMESPACE) if config.render.uses_diffusion else None
        pool = WorkerPool(config, workers, gpus, diffusion.client() if diffusion else None)
        try:
            pool.run(pending, commit)
        finally:
            pool.close()
            if diffusion:
                diffusion.close()
            bar.close()
        lost = pool.lost_actors
    return GenerateSummary(
        url=config.out, identities=sum(s.count for s in manifest.shards), rendered_identities=sum(r.record.count for r in rendered),
        images=sum(r.images for r in rendered), shards=len(manifest.shards), rendered_shards=len(rendered),
        bytes=sum(r.record.bytes for r in rendered), workers=workers, gpus_per_worker=gpus, lost_actors=lost,
        wall_s=time.perf_counter() - started,
    )


def open_output(storage: Storage, config: GenerateConfig) -> Manifest:
    """The manifest to extend: the existing one when the config matches, a fresh one otherwise (after
    --overwrite removed the old dataset). It is written back before any shard, which also proves that the
    destination is writable before a single identity is rendered."""
    existing = load_manifest(storage)
    if config.overwrite:
        storage.remove(SHARD_DIR)
        storage.remove(MANIFEST_NAME)
        existing = None
    elif existing is None and storage.list(SHARD_DIR):
        raise GenerateError(f"{config.out} holds {SHARD_DIR}/ but no {MANIFEST_NAME}: not a painfactory dataset or a damaged one; "
                            "use --overwrite to replace it, or choose another --out")
    elif existing is not None:
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
    manifest = existing or Manifest(package_version=__version__, seed=config.seed, config={}, identities=0)
    manifest.config = config.to_dict()
    manifest.identities = config.identities
    save_manifest(storage, manifest)
    return manifest


def connect_ray(workers: int | None) -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local one with a CPU slot for each CPU of this machine
    (or for each requested worker, if more: every actor must be placeable, or its shards would wait forever)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, workers or 1), include_dashboard=False, log_to_driver=False)


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


def progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="id", desc="identities", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")


class WorkerPool:
    """Long-lived ShardWorker actors, each given one shard at a time; a lost actor is replaced and its shard
    goes back to the front of the queue, so every shard is committed exactly once."""

    def __init__(self, config: GenerateConfig, size: int, gpus_per_worker: float, diffusion=None) -> None:
        import ray

        self.config = config
        self.actor_class = ray.remote(ShardWorker)
        self.gpus_per_worker = gpus_per_worker
        self.diffusion = diffusion  # a DiffusionClient (factory/run/diffusion.py) the workers send their diffusion jobs to
        self.run_id = f"generate-{uuid.uuid4().hex[:8]}"
        self.started = 0
        self.lost_actors = 0
        self.actors = [self.start_actor() for _ in range(size)]

    def start_actor(self):
        c = self.config
        name = f"{self.run_id}-worker-{self.started}"
        self.started += 1
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options = dict(num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=0, max_task_retries=0, name=name,
                       namespace=ACTOR_NAMESPACE, runtime_env={"env_vars": env})
        return self.actor_class.options(**options).remote(c.seed, c.plan, c.render, c.out, dict(c.storage_options), self.diffusion)

    def run(self, tasks: list[ShardTask], commit: Callable[[ShardResult], None]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        queue = deque(tasks)
        losses: dict[int, int] = {}
        in_flight: dict = {}  # ObjectRef → (actor, task)

        def submit(actor) -> None:
            task = queue.popleft()
            in_flight[actor.render_shard.remote(task)] = (actor, task)

        for actor in self.actors:
            if queue:
                submit(actor)
        while in_flight:
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            actor, task = in_flight.pop(ready)
            try:
                result = ray.get(ready)
            except RayActorError as error:
                losses[task.number] = losses.get(task.number, 0) + 1
                if losses[task.number] > MAX_ACTOR_LOSSES_PER_SHARD:
                    raise GenerateError(f"{task.path} lost its worker {losses[task.number]} times; giving up. "
                                        f"Last loss: {error}") from None
                self.lost_actors += 1
                self.actors.remove(actor)
                actor = self.start_actor()
                self.actors.append(actor)
                queue.appendleft(task)
            except RayTaskError as error:
                raise GenerateError(f"{task.path} (identities {task.first_index}–{task.first_index + task.count - 1}) failed: "
                                    f"{error.cause if error.cause is not None else error}") from None
            else:
                commit(result)
            if queue:
                submit(actor)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
