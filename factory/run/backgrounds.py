"""What stands behind the head in each view, by name (`render: {background: …}`): the registry of backgrounds.

    BACKGROUNDS["gradient"](spec, outputs)   # → one render Background per planned view

- "gradient" (the default): the plan's vertical gradient, the same in every view;
- "inpaint": a room a diffusion inpainting model painted around the head of each view, once per identity and view
  (factory/run/inpaint.py makes the jobs and turns the painted images into backgrounds).

An entry takes the identity's plan and what the diffusion stage made for it (None when nothing was made), and
returns the renderer's own Background objects (factory/render/background.py), one per view in plan order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from factory.diffusion.jobs import DiffusionOutputs
from factory.errors import FactoryError
from factory.render.background import Background, GradientBackground, ImageBackground
from factory.spec.plan import Background as PlannedBackground
from factory.spec.plan import IdentitySpec


def background_of(background: PlannedBackground) -> GradientBackground:
    return GradientBackground(top=tuple(background.top), bottom=tuple(background.bottom))


def planned_gradients(spec: IdentitySpec, outputs: DiffusionOutputs | None = None) -> list[Background]:
    return [background_of(spec.background)] * len(spec.views)


def inpainted_rooms(spec: IdentitySpec, outputs: DiffusionOutputs | None = None) -> list[Background]:
    if outputs is None or len(outputs.backgrounds) != len(spec.views):
        raise FactoryError(f"{spec.id}: the inpaint background needs one painted room per view from the diffusion stage")
    return [ImageBackground(torch.from_numpy(room).float() / 255) for room in outputs.backgrounds]


BACKGROUNDS: dict[str, Callable[[IdentitySpec, DiffusionOutputs | None], list[Background]]] = {
    "gradient": planned_gradients, "inpaint": inpainted_rooms}
