"""The unit of distributed work: a worker that renders whole shards and commits them to storage itself.

`ShardWorker` is a plain class (usable and testable without Ray); the generator runs one per Ray actor, so
the face model, texturer and renderer are loaded once per actor and reused for every shard it is given.
Writing the shard from the worker keeps the driver out of the data path: it only receives the shard's
ShardRecord (identity range; each shard set's file, size and sha256) and appends it to the dataset's commit log.
The worker writes the shard sets it is given (factory/format/sets.py), the mesh as GLB or OBJ + PNG. Storage secrets
arrive as the path of the driver's private credentials file (factory/run/credentials.py), never as arguments. With
the diffusion texturer or the inpaint background, the worker gets a client of the diffusion stage, which makes the
shard's portraits and rooms before its identities are rendered (factory/run/stage.py). With `batch_identities` > 1
(`factory generate --batch-identities N`, for GPU workers) a shard's identities are rendered N at a time, every view
of a batch in one rasterizer call, and encoded on threads while the next batch renders (factory/run/batch.py); the
bytes are the same as one at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from factory.format.manifest import ShardRecord
from factory.format.members import SETS, is_image
from factory.format.sets import write_shard_sets
from factory.format.shards import ShardTask
from factory.format.storage import Storage, merge_nested
from factory.run.batch import batched_samples
from factory.run.credentials import read_credentials
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.run.stage import Diffusion, render_identities
from factory.spec.plan import IdentitySpec, PlanConfig, plan_identity


@dataclass(frozen=True)
class ShardResult:
    record: ShardRecord
    images: int  # image members written (views, heatmaps, segmentation, depth), for the run summary


class ShardWorker:
    def __init__(self, seed: int, plan: PlanConfig, render: RenderConfig, out: str, storage_options: dict,
                 credentials: str | None = None, diffusion: Diffusion | None = None, batch_identities: int = 1,
                 sets: tuple[str, ...] = SETS, mesh_format: str = "glb") -> None:
        self.seed = seed
        self.batch_identities = batch_identities
        self.sets, self.mesh_format = sets, mesh_format
        self.plan = plan
        self.renderer = IdentityRenderer(render)
        secret_env, secret_options = read_credentials(credentials)
        os.environ.update(secret_env)  # this actor's own process: botocore reads the variables from here
        self.storage = Storage(out, merge_nested(storage_options, secret_options))
        self.diffusion = diffusion

    def render_shard(self, task: ShardTask) -> ShardResult:
        """Render every identity of the shard and commit the tar; nothing is visible unless all of it was written."""
        images = 0

        def samples() -> Iterator[tuple[str, dict[str, bytes]]]:
            nonlocal images
            specs = [plan_identity(index, self.seed, self.plan) for index in task.indices]
            for spec, members in self.encoded(specs):
                images += sum(map(is_image, members))
                yield spec.id, members

        record = write_shard_sets(self.storage, task, self.sets, samples())
        return ShardResult(record=record, images=images)

    def encoded(self, specs: list[IdentitySpec]) -> Iterator[tuple[IdentitySpec, dict[str, bytes]]]:
        """(spec, sample members) of each identity, in order: one at a time, or in batches (factory/run/batch.py)."""
        if self.batch_identities > 1:
            yield from batched_samples(self.renderer, specs, self.batch_identities, self.diffusion, mesh_format=self.mesh_format,
                                       sets=self.sets)
            return
        for spec, layers in render_identities(self.renderer, specs, self.diffusion):
            yield spec, self.renderer.encode_sample(spec, layers, self.mesh_format, self.sets)

    def placement(self) -> dict:
        """Where this worker runs: its process, the GPUs Ray gave it, and what CUDA_VISIBLE_DEVICES shows."""
        import ray

        context = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": context.get_node_id(),
            "gpu_ids": [str(g) for g in context.get_accelerator_ids().get("GPU", [])],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
