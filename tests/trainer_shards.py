"""Shards in the exact format of docs/DATA.md (manifest.json, one sample per identity, meta.json from the real
planner) with simple drawn faces whose pain is plain to see: a dark brow band whose width grows with the PSPI,
on a face of the identity's own skin tone. Used by the reader's unit tests (fast, no rendering) and by the
learning test (a signal a CPU-sized model learns in seconds); the end-to-end test uses `factory generate`."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from factory.format.manifest import Manifest, save_manifest
from factory.format.members import IMAGES, META, view_member
from factory.format.sets import write_shard_sets
from factory.format.shards import ShardTask
from factory.format.storage import Storage
from factory.spec.expressions import ExpressionConfig
from factory.spec.plan import PlanConfig, plan_identity


def draw_face(size: int, tone: float, background: tuple, pspi: int, yaw: float) -> bytes:
    image = Image.new("RGB", (size, size), tuple(int(255 * c) for c in background))
    draw = ImageDraw.Draw(image)
    skin = tuple(int(255 * c) for c in (0.95 - 0.55 * tone, 0.8 - 0.5 * tone, 0.7 - 0.45 * tone))
    shift = yaw / 90 * size * 0.15
    draw.ellipse([size * 0.2 + shift, size * 0.1, size * 0.8 + shift, size * 0.95], fill=skin)
    width = size * 0.75 * pspi / 16
    if pspi:
        draw.rectangle([size / 2 - width / 2 + shift, size * 0.28, size / 2 + width / 2 + shift, size * 0.45], fill=(40, 10, 10))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def write_dataset(url: str, identities: int, image_size: int = 64, pain_expressions: int = 4, views: tuple = (0.0,),
                  per_shard: int = 2, seed: int = 0, edit_meta: Callable[[dict], None] | None = None) -> list[dict]:
    """Write `identities` identities as shards of `per_shard` under `url`; returns their meta.json dicts.
    `edit_meta` may change each meta.json (as written, after the faces are drawn) to make a damaged dataset."""
    config = PlanConfig(expressions=ExpressionConfig(pain_expressions=pain_expressions), view_yaws=views)
    storage = Storage(url)
    manifest = Manifest(package_version="0.1.0", seed=seed, config={}, identities=identities, sets=(IMAGES,))
    metas = []
    for first in range(0, identities, per_shard):
        task = ShardTask(number=first // per_shard, first_index=first, count=min(per_shard, identities - first))
        samples = []
        for index in task.indices:
            spec = plan_identity(index, seed, config).to_dict()
            meta = {key: spec[key] for key in ("id", "index", "seed", "demographics", "identity", "skin", "expressions", "light", "background")}
            meta["views"] = [{"name": view["name"], "yaw": view["yaw"]} for view in spec["views"]]
            meta["image_size"] = image_size
            sample = {META: json.dumps(meta).encode()}
            for view in meta["views"]:
                for expression in meta["expressions"]:
                    sample[view_member(expression["name"], view["name"])] = draw_face(
                        image_size, meta["skin"]["tone"], meta["background"]["top"], expression["pspi"], view["yaw"])
            if edit_meta is not None:
                edit_meta(meta)
                sample[META] = json.dumps(meta).encode()
            samples.append((meta["id"], sample))
            metas.append(meta)
        manifest.add(write_shard_sets(storage, task, (IMAGES,), samples))
    save_manifest(storage, manifest)
    return metas


def pspi_of(metas: list[dict]) -> np.ndarray:
    return np.array([e["pspi"] for m in metas for e in m["expressions"]], float)
