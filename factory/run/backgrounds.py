"""The background choices of `render.background`: each turns the plan's background into the renderer's, per view.

    BACKGROUNDS                          # {"scene": …, "gradient": …, "inpaint": …}: name → builder
    background = make_background("scene", spec.background, ViewContext(head_centre, camera, view))
    register_background("inpaint", build_inpainted)      # another module adds its own choice

- "scene" (the default): the plan's room (factory/spec/scene.py) built around the head's centre and seen through
  each view's camera, its depth of field set by the view's aperture with the focus on the face;
- "gradient": the plan's vertical gradient, the same in every view (the factory's look before rooms);
- "inpaint": a room a diffusion inpainting model painted around the head, once per identity and view, shared by every
  expression of the view (factory/run/inpaint.py makes the jobs and the rooms; the diffusion stage hands each view's
  room to the renderer in its ViewContext).
A builder takes the planned background and the view it is drawn for, and returns anything with
`image(camera) -> (S, S, 3)` (factory/render/background.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import NamedTuple

import torch

from factory.errors import FactoryError
from factory.options import ConfigError
from factory.render.background import Background, GradientBackground, ImageBackground
from factory.render.camera import SENSOR_MM, Camera
from factory.render.room import Fixture, Lens, Room, RoomBackground
from factory.spec.plan import Background as PlannedBackground
from factory.spec.plan import View


class ViewContext(NamedTuple):
    """What a background may depend on besides the plan: where the head is and the view it is drawn for."""

    head_centre: torch.Tensor  # (3,) world cm
    camera: Camera
    view: View
    painted: torch.Tensor | None = None  # (H, W, 3) sRGB in 0..1: the room the diffusion stage painted for this view


BackgroundBuilder = Callable[[PlannedBackground, ViewContext], Background]


def room_background(planned: PlannedBackground, context: ViewContext) -> RoomBackground:
    room = asdict(planned.room)
    room.pop("kind")  # clinic or home: only the planner's palette cares
    fixtures = tuple(Fixture(**fixture) for fixture in room.pop("fixtures"))
    focus = float((context.camera.center - context.head_centre.to(context.camera.center)).norm())
    return RoomBackground(Room(centre=tuple(context.head_centre.tolist()), fixtures=fixtures, **room),
                          Lens(f_number=context.view.f_number, focus_cm=focus, sensor_cm=SENSOR_MM / 10))


def gradient_background(planned: PlannedBackground, context: ViewContext) -> GradientBackground:
    return GradientBackground(top=tuple(planned.top), bottom=tuple(planned.bottom))


def inpainted_room(planned: PlannedBackground, context: ViewContext) -> ImageBackground:
    if context.painted is None:
        raise FactoryError("the inpaint background needs the room the diffusion stage painted for each view "
                           "(render through factory/run/stage.py: factory generate or factory render-identity)")
    return ImageBackground(context.painted)


BACKGROUNDS: dict[str, BackgroundBuilder] = {"scene": room_background, "gradient": gradient_background,
                                             "inpaint": inpainted_room}


def register_background(name: str, builder: BackgroundBuilder) -> None:
    """Make `name` a choice of render.background."""
    BACKGROUNDS[name] = builder


def check_background(name: str) -> None:
    if name not in BACKGROUNDS:
        raise ConfigError(f"unknown background {name!r}; known: {', '.join(sorted(BACKGROUNDS))}")


def make_background(name: str, planned: PlannedBackground, context: ViewContext) -> Background:
    check_background(name)
    return BACKGROUNDS[name](planned, context)
