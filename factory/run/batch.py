"""Render identities in batches: every view of every identity of a batch in one rasterizer call, encoding on CPU
threads while the next batch renders. The GPU path of `factory generate --batch-identities N`.

    for spec, members in batched_samples(renderer, specs, batch_identities=8):   # renderer: an IdentityRenderer
        tar.write(spec.id, members)                                                 # upload overlaps the next batch

A batch goes through the per-identity renderer's own stages (factory/run/identity.py), with a batch dimension where
it pays: `prepare` each identity (rig, texture, hair, light, scene: small, on the CPU), rasterize all views of all of
them at once (`rasterize_groups`: one pytorch3d call on CUDA), then shade and read the layers of each view (each
view's expressions already one batch of torch work on the device), and `collect` each identity's layers. Nothing
of an identity's pixels depends on the others in its batch (pytorch3d rasterizes each mesh of a call on its own), so
the bytes are those of `renderer.render` one identity at a time on the same device, whatever the batch size
(tests/test_batch.py holds the two paths to that).

While a batch is encoded (JPEG, PNG, OBJ, meta.json: `encode_sample` on a pool of CPU threads) and handed to the
caller (who writes it to the shard, uploading as it goes), the next batch renders on a thread of its own, its
identities prepared on the same CPU pool: at most two batches' layers are held at once. torch, PIL and zlib release
the GIL in their work, so the stages overlap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import torch

from factory.format.members import SETS
from factory.render.raster_batch import RasterGroup, rasterize_groups
from factory.run.identity import IdentityRenderer, Prepared
from factory.run.stage import Diffusion, identity_inputs
from factory.spec.plan import IdentitySpec

CPU_THREADS = 2  # threads per worker that prepare identities and encode samples, beside the one that drives the device


def render_batch(renderer: IdentityRenderer, specs: Sequence[IdentitySpec], diffusion: Diffusion | None = None,
                 pool: Executor | None = None) -> list[dict[str, object]]:
    """The layers of each identity of `specs` (as `renderer.render` gives them), their views rasterized together.
    With a `pool`, the identities are prepared on its threads at once (rig, texture and hair run on the CPU: on a GPU
    they, not the device, would set the pace of one thread)."""
    inputs = identity_inputs(renderer, specs, diffusion)
    prepare = functools.partial(prepare_one, renderer)
    prepared = list(pool.map(prepare, specs, inputs) if pool else map(prepare, specs, inputs))
    fragments = iter(rasterize_groups(renderer.renderer.rasterizer, raster_groups(prepared)))
    return [renderer.with_sequences(one, renderer.collect(one, [renderer.render_view(one, v, next(fragments))
                                                                for v in range(len(one.scene.cameras))]))
            for one in prepared]


def prepare_one(renderer: IdentityRenderer, spec: IdentitySpec, inputs: tuple) -> Prepared:
    outputs, texture = inputs
    return renderer.prepare(spec, outputs, texture)


def raster_groups(prepared: Sequence[Prepared]) -> list[RasterGroup]:
    """One group per identity and view, identity-major: that view's camera on every expression's mesh."""
    return [RasterGroup(one.meshes.verts, one.meshes.faces, [camera] * one.meshes.verts.shape[0])
            for one in prepared for camera in one.scene.cameras]


def batched_samples(renderer: IdentityRenderer, specs: Sequence[IdentitySpec], batch_identities: int,
                    diffusion: Diffusion | None = None, cpu_threads: int = CPU_THREADS,
                    mesh_format: str = "obj", sets: tuple[str, ...] = SETS) -> Iterator[tuple[IdentitySpec, dict[str, bytes]]]:
    """(spec, sample members) of every identity of `specs`, in order, rendered `batch_identities` at a time; batch
    k + 1 renders while batch k is encoded and consumed. `mesh_format`, `sets`: encode_sample's."""
    batches = [specs[start:start + batch_identities] for start in range(0, len(specs), batch_identities)]
    threads = torch.get_num_threads()  # the render thread uses the caller's torch thread count

    def render(batch: Sequence[IdentitySpec]) -> list[dict[str, object]]:
        torch.set_num_threads(threads)
        return render_batch(renderer, batch, diffusion, cpu_pool)

    with ThreadPoolExecutor(1, thread_name_prefix="render") as render_pool, \
            ThreadPoolExecutor(cpu_threads, thread_name_prefix="cpu") as cpu_pool:
        rendering = render_pool.submit(render, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            layers = rendering.result()
            rendering = render_pool.submit(render, batches[k + 1]) if k + 1 < len(batches) else None
            encoding = [cpu_pool.submit(renderer.encode_sample, spec, one, mesh_format, sets) for spec, one in zip(batch, layers)]
            del layers  # the encoders hold what they need; the next batch's layers take its place
            try:
                for spec, members in zip(batch, encoding):
                    yield spec, members.result()
            finally:
                for future in encoding:
                    future.cancel()
