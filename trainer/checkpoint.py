"""Checkpoints: a folder with the model weights, the optimiser state and a JSON description.

    checkpoint.json   what the model is (name, backbone config, input normalisation), the epoch, its metrics
    model.pt          the model's state_dict
    training.pt       optimiser and LR-scheduler state (for resuming)

Everything is read with `torch.load(weights_only=True)`, PyTorch's restricted unpickler: a checkpoint from
someone else cannot run code. A run folder holds `checkpoint_epochNNNN/` folders; `latest_checkpoint` picks
the highest epoch. Folders may live on any fsspec URL (local or s3://), opened with the storage options every
command uses (`filesystem`). checkpoint.json is strict JSON: a metric that is undefined (NaN) is null.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import fsspec
import torch
from torch import nn

from factory.format.storage import resolve_storage_options
from trainer.models import BackboneConfig, create_model

INFO = "checkpoint.json"
CHECKPOINT_PREFIX = "checkpoint_epoch"


def checkpoint_dir_name(epoch: int) -> str:
    return f"{CHECKPOINT_PREFIX}{epoch:04d}"


def save_checkpoint(directory: str | Path, model: nn.Module, info: dict, training_state: dict | None = None) -> None:
    directory = Path(directory)
    torch.save(model.state_dict(), directory / "model.pt")
    if training_state is not None:
        torch.save(training_state, directory / "training.pt")
    (directory / INFO).write_text(json.dumps(finite_or_null(info), indent=1, sort_keys=True, allow_nan=False))


def finite_or_null(value):
    """`value` with every NaN or infinite float replaced by None: JSON has neither (Python writes NaN, Infinity)."""
    if isinstance(value, Mapping):
        return {name: finite_or_null(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def filesystem(url: str, storage_options: Mapping | None = None):
    """(fsspec filesystem, path) of `url`, with the environment's storage options and `storage_options` over
    them: what every factory command uses (factory/format/storage.py, resolve_storage_options)."""
    return fsspec.url_to_fs(url, **resolve_storage_options(url, storage_options or {}))


def read_info(directory: str | Path) -> dict:
    return json.loads((Path(directory) / INFO).read_text())


def load_weights(directory: str | Path, name: str = "model.pt") -> dict:
    return torch.load(Path(directory) / name, map_location="cpu", weights_only=True)


def build_model(info: dict) -> nn.Module:
    """The model a checkpoint describes, randomly initialised (weights come from model.pt, not from a
    pretrained file that may not exist where the checkpoint is used)."""
    backbone = BackboneConfig(**{**info["backbone"], "pretrained": None})
    return create_model(info["model"], backbone, fusion_heads=info["fusion_heads"])


def latest_checkpoint(url: str, storage_options: Mapping | None = None) -> str | None:
    """The checkpoint folder at `url` itself, or the highest-epoch checkpoint folder inside a run folder."""
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache()  # object stores' listings are cached per process; a run folder changes under us
    if fs.exists(f"{path.rstrip('/')}/{INFO}"):
        return url
    if not fs.isdir(path):
        return None
    names = sorted(Path(p).name for p in fs.ls(path, detail=False) if Path(p).name.startswith(CHECKPOINT_PREFIX)
                   and fs.exists(f"{p}/{INFO}"))
    return f"{url.rstrip('/')}/{names[-1]}" if names else None


@contextmanager
def local_checkpoint(url: str, storage_options: Mapping | None = None):
    """A local folder with the checkpoint at `url` (a temporary copy when it is remote)."""
    from fsspec.implementations.local import LocalFileSystem

    fs, path = filesystem(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="painfactory-ckpt-") as tmp:
        for name in fs.ls(path, detail=False):
            fs.get(name, str(Path(tmp) / Path(name).name))
        yield Path(tmp)


def load_checkpoint(url: str, storage_options: Mapping | None = None) -> tuple[nn.Module, dict]:
    """(model with the checkpoint's weights, its checkpoint.json) from a checkpoint or run folder URL."""
    found = latest_checkpoint(url, storage_options)
    if found is None:
        raise FileNotFoundError(f"no checkpoint at {url} (expected {INFO}, or {CHECKPOINT_PREFIX}NNNN/ folders)")
    with local_checkpoint(found, storage_options) as directory:
        info = read_info(directory)
        model = build_model(info)
        model.load_state_dict(load_weights(directory))
    return model, info
