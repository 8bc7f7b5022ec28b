"""Render the pain sequences of one identity: each pain expression's frames (factory/spec/sequence.py), posed with
their fractional intensities, blinks and head motion, then rendered through the identity's own pipeline.

    sequences = render_sequences(renderer, spec, face, texture)    # [(Sequence, {"rgb": (F, V, H, W, 3), …}), …]
    members = encode_frames(sequence, frames, spec.views, quality)  # {"pain03f05.v1.jpg": b"…", …}

The frames of one expression are rendered as one batch behind the identity's neutral face, so the cameras, the
room, the light and its ambient occlusion are exactly those of the stills (`IdentityRenderer.render_posed` frames
and lights the first mesh). The head moves by rotating the posed face about a pivot in the neck; the cameras and
the room stay, as they would for a patient filmed by a fixed camera.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from factory.format.encoders import COMPACT_PNG_LEVEL, encode_depth, encode_jpeg, encode_png
from factory.format.members import view_member
from factory.spec.sequence import HeadPose, Sequence, plan_sequence, sequence_expressions

FRAME_LAYERS = ("rgb", "segmentation", "depth")  # what each frame of each view is written with
NECK_BELOW_CHIN_CM, NECK_BEHIND_LANDMARKS_CM = 2.0, 8.0  # the pivot of head motion: the top of the neck


def render_sequences(renderer, spec, face, texture, outputs=None) -> list[tuple[Sequence, dict[str, np.ndarray]]]:
    """Per pain expression of `spec`, its planned sequence and its frames' FRAME_LAYERS, each (frames, views, …).
    `renderer` is the IdentityRenderer, `face` its PosedFace of the stills (the neutral first)."""
    config = renderer.config.sequence
    identity = torch.tensor(spec.identity, dtype=torch.float32)
    pivot = neck_pivot(face.rest, renderer.model)
    rendered = []
    for expression in sequence_expressions(spec.expressions):
        sequence = plan_sequence(spec.seed, spec.index, expression, config)
        weights = renderer.rig.fractional_weights([frame.posed_intensities() for frame in sequence.frames])
        verts = renderer.rig.posed(identity, weights, face.gaze_target)
        if face.laxity is not None:  # an older face sags in every frame as in the stills
            verts = verts + face.laxity
        verts = torch.stack([turned(v, frame.head, pivot) for v, frame in zip(verts, sequence.frames)])
        layers = renderer.render_posed(spec, face._replace(verts=torch.cat([face.verts[:1], verts])), texture, outputs)
        rendered.append((sequence, {name: layers[name][1:] for name in FRAME_LAYERS}))
    return rendered


def neck_pivot(rest: torch.Tensor, model) -> torch.Tensor:
    """(3,) the point the head turns about: below the chin and behind the face's landmarks, in the midplane."""
    landmarks = rest[model.landmarks]
    chin_y = float(landmarks[:, 1].min())
    return torch.tensor([0.0, chin_y - NECK_BELOW_CHIN_CM, float(landmarks[:, 2].mean()) - NECK_BEHIND_LANDMARKS_CM])


def rotation(head: HeadPose) -> torch.Tensor:
    """(3, 3) the head's rotation: roll about z, then yaw about y (+ toward the face's left, +x), then pitch
    about x (+ looks up); the face looks along +z with y up."""
    yaw, pitch, roll = (math.radians(a) for a in (head.yaw, head.pitch, head.roll))
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(-pitch), math.sin(-pitch), math.cos(roll), math.sin(roll)
    r_yaw = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = torch.tensor([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_pitch @ r_yaw @ r_roll


def turned(verts: torch.Tensor, head: HeadPose, pivot: torch.Tensor) -> torch.Tensor:
    """(V, 3) `verts` rotated by the head pose about `pivot`."""
    return (verts - pivot) @ rotation(head).T + pivot


def encode_frames(sequence: Sequence, frames: dict[str, np.ndarray], views, jpeg_quality, with_layers: bool = True) -> dict[str, bytes]:
    """The members of one sequence's frames, frame by frame and view by view (docs/DATA.md); `jpeg_quality` maps a
    view's planned quality to the one written (IdentityRenderer.jpeg_quality); `with_layers`: with segmentation and
    depth."""
    members = {}
    for f, frame in enumerate(sequence.frames):
        for v, view in enumerate(views):
            members[view_member(frame.name, view.name)] = encode_jpeg(frames["rgb"][f, v], jpeg_quality(view.jpeg_quality))
            if not with_layers:
                continue
            members[view_member(frame.name, view.name, "segmentation")] = encode_png(frames["segmentation"][f, v], COMPACT_PNG_LEVEL)
            members[view_member(frame.name, view.name, "depth")] = encode_depth(frames["depth"][f, v])
    return members
