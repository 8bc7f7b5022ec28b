"""Render a shard's identities, getting what the diffusion stage makes for them first.

    for spec, layers in render_identities(renderer, specs, diffusion):   # diffusion: None, DiffusionModels or a client
        members = renderer.encode_sample(spec, layers)

Without the `diffusion` texturer or the `inpaint` background this is `renderer.render(spec)` for each identity, one at
a time, as it always was. With them, the identities of the shard go through the stage together, so every batch the
diffusion models run spans identities:

1. portraits: the portrait jobs of every identity (depth of its neutral face, its prompt and seed), one request;
2. textures: each identity's portraits baked into its atlas;
3. rooms: the inpaint jobs of every identity and view (first pass: heads and masks), one request; the painted
   images become each view's background;
4. every identity rendered with its texture and rooms, then handed on to be encoded and written.

`diffusion` is anything with `portraits(jobs)` and `inpaint(jobs)` returning one image per job: in-process
`DiffusionModels` (`factory render-identity`) or a `DiffusionClient` to the Ray actors (`factory generate`). Its
answer depends only on the jobs, so a shard's bytes do not depend on which actor served it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch

from factory.diffusion.jobs import DiffusionOutputs, InpaintJob, PortraitJob
from factory.errors import FactoryError
from factory.face.texture import Texture
from factory.run.identity import IdentityRenderer
from factory.run.inpaint import background_parameters, inpaint_jobs, rooms_from
from factory.spec.plan import IdentitySpec


class Diffusion(Protocol):
    def portraits(self, jobs: Sequence[PortraitJob]) -> list[np.ndarray]: ...

    def inpaint(self, jobs: Sequence[InpaintJob]) -> list[np.ndarray]: ...


def render_identities(renderer: IdentityRenderer, specs: Sequence[IdentitySpec],
                      diffusion: Diffusion | None = None) -> Iterator[tuple[IdentitySpec, dict]]:
    """(spec, layers) of every identity, in order."""
    for spec, (outputs, texture) in zip(specs, identity_inputs(renderer, specs, diffusion)):
        yield spec, renderer.render(spec, outputs, texture)


def identity_inputs(renderer: IdentityRenderer, specs: Sequence[IdentitySpec],
                    diffusion: Diffusion | None = None) -> list[tuple[DiffusionOutputs | None, Texture | None]]:
    """Per identity, what `renderer.render` takes beside its spec: what the diffusion stage made for it and its
    texture, or (None, None) where the renderer makes its own (no diffusion texturer or inpaint background)."""
    config = renderer.config
    if not config.uses_diffusion:
        return [(None, None)] * len(specs)
    if diffusion is None:
        raise FactoryError(f"texturer {config.texturer!r} with background {config.background!r} needs the diffusion stage, "
                           "and none was started")
    outputs = [DiffusionOutputs() for _ in specs]
    if config.texturer == "diffusion":
        outputs = with_portraits(renderer, specs, outputs, diffusion)
    textures = [renderer.texture(spec, neutral_face(renderer, spec), output) for spec, output in zip(specs, outputs)]
    if config.background == "inpaint":
        outputs = with_rooms(renderer, specs, outputs, textures, diffusion)
    return list(zip(outputs, textures))


def with_portraits(renderer: IdentityRenderer, specs: Sequence[IdentitySpec], outputs: list[DiffusionOutputs],
                   diffusion: Diffusion) -> list[DiffusionOutputs]:
    settings = renderer.config.diffusion.texture
    jobs = [renderer.texturer.portrait_jobs(spec.skin, spec.demographics, neutral_face(renderer, spec), settings) for spec in specs]
    portraits = regroup(diffusion.portraits([job for group in jobs for job in group]), jobs)
    return [replace(output, portraits=tuple(images)) for output, images in zip(outputs, portraits)]


def with_rooms(renderer: IdentityRenderer, specs: Sequence[IdentitySpec], outputs: list[DiffusionOutputs], textures: list,
               diffusion: Diffusion) -> list[DiffusionOutputs]:
    settings, size = renderer.config.diffusion.background, renderer.config.image_size
    jobs = [inpaint_jobs(renderer, spec, texture, settings) for spec, texture in zip(specs, textures)]
    painted = regroup(diffusion.inpaint([job for group in jobs for job in group]), jobs)
    return [replace(output, backgrounds=rooms_from(group, images, size), background_parameters=background_parameters(spec, settings, size))
            for spec, output, group, images in zip(specs, outputs, jobs, painted)]


def neutral_face(renderer: IdentityRenderer, spec: IdentitySpec) -> torch.Tensor:
    """(V, 3) the identity's neutral mesh, posed as the render poses it (eyes on the gaze target), for the first,
    neutral, expression only."""
    return renderer.pose(replace(spec, expressions=spec.expressions[:1])).verts[0]


def regroup(images: list[np.ndarray], groups: list[list]) -> list[list[np.ndarray]]:
    """The flat answer of one request, cut back into one list per identity (groups: the jobs, per identity)."""
    if len(images) != sum(map(len, groups)):
        raise FactoryError(f"the diffusion stage answered {len(images)} images for {sum(map(len, groups))} jobs")
    flat = iter(images)
    return [[next(flat) for _ in group] for group in groups]
