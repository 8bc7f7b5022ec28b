"""The diffusion stage on Ray: a pool of long-lived actors that keep the diffusion pipelines loaded on their GPUs.

    pool = DiffusionPool.start(config, namespace)   # in the driver, before the render workers
    client = pool.client()                      # picklable: handed to every ShardWorker
    images = client.portraits(jobs)             # inside a ShardWorker: batches spread over the actors
    pool.close()

Pipelining: the diffusion actors are a pool of their own, apart from the render workers (ShardWorker actors, on CPUs
or a share of a GPU). A render worker sends its shard's jobs and waits; meanwhile the other render workers rasterize,
encode and upload theirs, so with more render workers than diffusion actors the GPUs always have the next
identities queued while CPUs finish the previous ones.

Batches span identities: a request (all portraits, or all rooms, of one shard) is cut into batches of
`diffusion_batch_size` jobs, each one pipeline call on one actor, spread over the actors in turn. Batches are cut from
the shard alone, so the same shard gives the same batches (and the same bytes) whatever the number of workers.

Backpressure: a render worker holds one shard at a time and sends one request at a time, so at most (render workers)
requests wait in the actors' queues; memory stays bounded by the render worker count and the shard size.

A lost actor (its process or node died) is restarted by Ray, up to MAX_RESTARTS times, and the batch it was
running is run again on it, up to MAX_BATCH_RETRIES times: diffusion has no side effects and each job carries its
seed, so a redone batch gives the same images, and the shard that asked for it is committed once. An actor that keeps
dying fails the shard with a GenerateError.
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import Sequence

import numpy as np

from factory.diffusion.jobs import InpaintJob, PortraitJob
from factory.diffusion.pipelines import DiffusionModels
from factory.diffusion.settings import DiffusionConfig
from factory.diffusion.weights import BACKGROUND, CONTROLNET, TEXTURE, check_pair, find_model
from factory.errors import FactoryError
from factory.run.config import GenerateConfig
from factory.run.identity import RenderConfig, resolve_device

logger = logging.getLogger(__name__)
MAX_RESTARTS = 3  # times one diffusion actor may be lost and restarted
MAX_BATCH_RETRIES = 3  # times one batch is sent again after its actor was lost
CONTROL = "control"  # the actors' concurrency group for status calls, answered while a batch is running
# Where the actors find their models, set in the driver's shell: actors on other nodes would not see them otherwise.
FORWARDED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")


class DiffusionStageError(FactoryError, RuntimeError):
    """The diffusion stage cannot be placed or set up; the message says which flag to change."""


def check_models(render: RenderConfig) -> None:
    """Find and check, in this process, every model the render config needs: a missing, damaged or wrong model is
    refused (ModelError) before a run writes anything. Reads configs and safetensors headers only."""
    if render.texturer == "diffusion":
        texture = render.diffusion.texture
        check_pair(find_model(texture.model, TEXTURE), find_model(texture.controlnet, CONTROLNET))
    if render.background == "inpaint":
        find_model(render.diffusion.background.model, BACKGROUND)


class DiffusionWorker:
    """The body of one diffusion actor: the pipelines its render config needs, loaded when it starts."""

    def __init__(self, settings: DiffusionConfig, roles: Sequence[str], device: str = "auto"):
        self.models = DiffusionModels(settings, resolve_device(device))
        for role in roles:  # load now: the first shard should not wait for it, and a broken model fails here
            self.models.pipeline(role)
        self.batches = 0
        self.busy = False

    def portraits(self, jobs: Sequence[PortraitJob]) -> list[np.ndarray]:
        return self.serve(self.models.portraits, jobs)

    def inpaint(self, jobs: Sequence[InpaintJob]) -> list[np.ndarray]:
        return self.serve(self.models.inpaint, jobs)

    def serve(self, make, jobs):
        self.busy = True
        try:
            return make(jobs)
        finally:
            self.busy = False
            self.batches += 1

    def status(self) -> dict:
        """Process, device and pipelines, batches served, whether one runs now and whether Ray restarted this actor
        (called in the CONTROL concurrency group, so it answers while a batch runs)."""
        import ray

        return {"pid": os.getpid(), "batches": self.batches, "busy": self.busy,
                "restarted": ray.get_runtime_context().was_current_actor_reconstructed, **self.models.describe()}


class DiffusionClient:
    """What a render worker holds: the actors' handles and the batch size. `portraits` and `inpaint` send a request's
    batches to the actors in turn and wait for all of them."""

    def __init__(self, actors: list, batch_size: int):
        self.actors = list(actors)
        self.batch_size = batch_size
        self.turn = random.randrange(len(self.actors))  # render workers start at different actors

    def portraits(self, jobs: Sequence[PortraitJob]) -> list[np.ndarray]:
        return self.run("portraits", jobs)

    def inpaint(self, jobs: Sequence[InpaintJob]) -> list[np.ndarray]:
        return self.run("inpaint", jobs)

    def run(self, method: str, jobs: Sequence) -> list[np.ndarray]:
        import ray

        references = []
        for start in range(0, len(jobs), self.batch_size):
            actor = self.actors[self.turn % len(self.actors)]
            self.turn += 1
            references.append(getattr(actor, method).remote(list(jobs[start:start + self.batch_size])))
        return [image for batch in ray.get(references) for image in batch]


class DiffusionPool:
    """The diffusion actors of one run (started by the driver, which owns them: they end with it)."""

    def __init__(self, actors: list, batch_size: int, gpus_per_actor: float):
        self.actors = actors
        self.batch_size = batch_size
        self.gpus_per_actor = gpus_per_actor

    @classmethod
    def start(cls, config: GenerateConfig, namespace: str) -> "DiffusionPool":
        """One actor per GPU share (or as many as asked for), named "diffusion-<run>-<n>" in `namespace`."""
        import ray

        count, gpus = resolve_diffusion_resources(config.diffusion_actors, config.diffusion_gpus_per_actor)
        render = config.render
        roles = ([TEXTURE] if render.texturer == "diffusion" else []) + ([BACKGROUND] if render.background == "inpaint" else [])
        actor_class = ray.remote(concurrency_groups={CONTROL: 1})(DiffusionWorker)
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        run = uuid.uuid4().hex[:8]
        handles = [actor_class.options(num_cpus=0, num_gpus=gpus, max_restarts=MAX_RESTARTS, max_task_retries=MAX_BATCH_RETRIES,
                                       name=f"diffusion-{run}-{k}", namespace=namespace, runtime_env={"env_vars": env})
                   .remote(render.diffusion, roles, "cuda" if gpus > 0 else "cpu") for k in range(count)]
        logger.info("diffusion stage: %d actor(s) × %g GPU, batches of %d", count, gpus, config.diffusion_batch_size)
        return cls(handles, config.diffusion_batch_size, gpus)

    def client(self) -> DiffusionClient:
        return DiffusionClient(self.actors, self.batch_size)

    def status(self) -> list[dict]:
        import ray

        return ray.get([actor.status.options(concurrency_group=CONTROL).remote() for actor in self.actors])

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def resolve_diffusion_resources(actors: int | None, gpus_per_actor: float | None) -> tuple[int, float]:
    """(actors, GPUs per actor): by default one whole GPU per actor and an actor per GPU of the cluster, or one
    CPU actor on a cluster without GPUs. Diffusion actors reserve no CPU (on a GPU they mostly wait for it)."""
    import ray

    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    gpus = float(gpus_per_actor) if gpus_per_actor is not None else (1.0 if cluster_gpus > 0 else 0.0)
    if gpus > 0 and cluster_gpus < gpus:
        raise DiffusionStageError(f"--diffusion-gpus-per-actor {gpus:g} but the Ray cluster has {cluster_gpus:g} GPU(s); "
                                  "use --diffusion-gpus-per-actor 0 to run diffusion on CPU (slow)")
    room = int(cluster_gpus / gpus) if gpus > 0 else 1
    if actors is not None and actors > room:
        logger.warning("%d diffusion actors requested but the cluster has room for %d now; the others start when an "
                       "autoscaler adds GPU nodes", actors, room)
    return (actors if actors is not None else max(1, room)), gpus


def render_gpus_beside(render: RenderConfig, requested: float | None) -> float | None:
    """The render workers' GPU share: what was asked for; with a diffusion stage and nothing asked, none (the GPUs
    go to the diffusion actors, and render workers rasterize on CPUs; give them a share, e.g. 0.1, to use pytorch3d)."""
    return 0.0 if requested is None and render.uses_diffusion else requested
