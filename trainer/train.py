"""Training on Ray Train: one `TorchTrainer`, N workers, each streaming its own part of the pairs.

Per epoch every worker trains on its share of the training split (DDP keeps the models equal), then all
workers predict their share of the validation split and rank 0 writes a checkpoint with the epoch's metrics:
`RUN/checkpoint_epochNNNN/`. Run the same command again after a crash (or let `FailureConfig` restart the
workers) and training resumes after the latest checkpoint: Ray Train restores its checkpoint list from the run
folder, and `ray.train.get_checkpoint()` hands it to the workers.

DDP needs every rank to take the same number of steps, but a rank's share of a streamed split is only known
once read; so before each step the ranks agree (an all-reduce of "I have a batch") and stop together when
the first one runs dry.

Nothing from a run that went wrong is kept: a non-finite loss stops training before the optimiser step, and
weights that are not finite are never checkpointed. When a worker fails for good (after `FailureConfig`'s
restarts), `fit` raises TrainingError with that worker's own error, in one line, instead of Ray's report.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch

from factory.errors import FactoryError
from factory.format.storage import public_storage_options
from trainer.checkpoint import checkpoint_dir_name, filesystem, load_weights, local_checkpoint, read_info, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import PairTransform, batches, shuffled
from trainer.metrics import icc_3_1, mae, pearson, rmse
from trainer.models import LossWeights, create_model, is_backbone_parameter, pain_loss


class TrainingError(FactoryError, RuntimeError):
    """Training cannot go on: the loss or the weights stopped being finite, a worker ran out of batches, or a
    worker failed for good (its own error, in one line)."""


# ------------------------------------------------------------------------------------------- on each worker


def train_loop_per_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    config: TrainConfig = loop_config["config"]
    source = loop_config["source"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config.seed)
    info = config.model_info()
    model = create_model(config.model, config.backbone, fusion_heads=config.fusion_heads)
    if config.init_checkpoint:
        with local_checkpoint(config.init_checkpoint, loop_config["storage_options"]) as directory:
            model.load_state_dict(load_weights(directory))
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.schedule.epochs, eta_min=config.schedule.min_lr)

    start_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            model.load_state_dict(load_weights(directory))
            state = load_weights(directory, "training.pt")
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch = read_info(directory)["epoch"] + 1
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    train_transform = PairTransform(config.backbone.image_size, tuple(info["mean"]), tuple(info["std"]), config.augmentation)
    eval_transform = dataclasses.replace(train_transform, augmentation=None)

    for epoch in range(start_epoch, config.schedule.epochs):
        started = time.perf_counter()
        rng = random.Random(f"{config.seed}:{epoch}:{rank}")
        pairs = shuffled(source.pairs("train", rank, world, epoch, shuffle=True), config.shuffle_buffer, rng)
        train = train_epoch(model, optimizer, lockstep(batches(pairs, train_transform, config.batch_size, rng, drop_last=True), device),
                            config.loss, device, show_progress=rank == 0, epoch=epoch)
        scheduler.step()
        prediction = gather(predict(model, source, "val", eval_transform, config.batch_size, device, rank, world))
        metrics = {"epoch": epoch, "started_at_epoch": start_epoch, **train,
                   "pairs_per_s": train["pairs"] * world / (time.perf_counter() - started), **validation_metrics(prediction)}
        if rank == 0:
            print(format_epoch(metrics, config.schedule.epochs), flush=True)
        unwrapped = model.module if hasattr(model, "module") else model
        check_finite_weights(unwrapped, epoch)
        with tempfile.TemporaryDirectory() as directory:
            report_checkpoint = None
            if rank == 0:
                save_checkpoint(directory, unwrapped, {**info, "epoch": epoch, "started_at_epoch": start_epoch, "metrics": metrics,
                                                       "source": source.describe(), "config": config.to_dict()},
                                {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
                report_checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(metrics, checkpoint=report_checkpoint, checkpoint_dir_name=checkpoint_dir_name(epoch))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with two learning rates: the backbone (or its LoRA adapters) slow, everything else fast."""
    backbone, heads = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (backbone if is_backbone_parameter(name) else heads).append(parameter)
    groups = [{"params": heads, "lr": config.optimizer.lr}]
    if backbone and config.optimizer.backbone_lr > 0:
        groups.append({"params": backbone, "lr": config.optimizer.backbone_lr})
    return torch.optim.AdamW(groups, weight_decay=config.optimizer.weight_decay)


def check_finite_weights(model: torch.nn.Module, epoch: int) -> None:
    """Refuse to checkpoint weights that overflowed: a finite loss can still end in an optimiser step that does not."""
    broken = [name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()]
    if broken:
        raise TrainingError(f"after epoch {epoch} the weights of {', '.join(broken[:3])}{', …' if len(broken) > 3 else ''} are not "
                            "finite: nothing saved; lower the learning rate")


def lockstep(batch_iterator, device):
    """Yield batches while every rank still has one; all ranks stop at the same step (DDP needs it)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    iterator = iter(batch_iterator)
    while True:
        batch = next(iterator, None)
        if distributed:
            have = torch.tensor([0 if batch is None else 1], device=device)  # NCCL reduces GPU tensors only
            torch.distributed.all_reduce(have, op=torch.distributed.ReduceOp.MIN)
            if not have.item():
                return
        elif batch is None:
            return
        yield batch


def train_epoch(model, optimizer, batch_iterator, weights: LossWeights, device, show_progress: bool, epoch: int) -> dict:
    from tqdm import tqdm

    model.train()
    totals: dict[str, float] = {}
    steps = pairs = 0
    for batch in tqdm(batch_iterator, desc=f"epoch {epoch}", unit="batch", disable=not show_progress, leave=False):
        outputs = model(batch["pain"].to(device), batch["reference"].to(device))
        losses = pain_loss(outputs, batch["pspi"].to(device), batch["aus"].to(device), weights)
        if not torch.isfinite(losses["loss"]):
            shown = ", ".join(batch["keys"][:4]) + (", …" if len(batch["keys"]) > 4 else "")
            raise TrainingError(f"the loss is {float(losses['loss'])} at epoch {epoch}, step {steps + 1} (pairs {shown}): stopped "
                                "before it reached the weights; lower the learning rate, or check these pairs' labels")
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach())
        steps += 1
        pairs += len(batch["keys"])
    if steps == 0:
        raise TrainingError("no training batch on some worker: the training split is smaller than one batch per worker "
                           "(use fewer workers, a smaller --batch-size or more identities)")
    return {"train_" + name: total / steps for name, total in totals.items()} | {"steps": steps, "pairs": pairs}


@torch.no_grad()
def predict(model, source, split: str, transform: PairTransform, batch_size: int, device, rank: int = 0, world: int = 1,
            show_progress: bool = False) -> dict:
    """This rank's share of a split, one list entry per pair: predicted and true PSPI ("pred", "target"), the six
    PSPI AUs scaled to 0..1 ("aus_pred", "aus_target", PSPI_AUS order), keys, identities and groups."""
    from tqdm import tqdm

    model.eval()
    rng = random.Random(0)  # unused without augmentation; batches() takes one for symmetry
    result = {"pred": [], "target": [], "aus_pred": [], "aus_target": [], "keys": [], "identities": [], "groups": []}
    stream = batches(source.pairs(split, rank, world), transform, batch_size, rng, drop_last=False)
    for batch in tqdm(stream, desc=f"predict {split}", unit="batch", disable=not show_progress, leave=False):
        outputs = model(batch["pain"].to(device), batch["reference"].to(device))
        result["pred"] += outputs["pspi"].float().cpu().tolist()
        result["target"] += batch["pspi"].tolist()
        result["aus_pred"] += outputs["aus"].float().cpu().tolist()
        result["aus_target"] += batch["aus"].tolist()
        for name in ("keys", "identities", "groups"):
            result[name] += batch[name]
    return result


def gather(prediction: dict) -> dict:
    """Every rank's predictions, concatenated, on every rank."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return prediction
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, prediction)
    return {name: sum((part[name] for part in parts), []) for name in prediction}


def validation_metrics(prediction: dict) -> dict:
    pred, target = np.asarray(prediction["pred"]), np.asarray(prediction["target"])
    if len(pred) < 2:
        return {"val_n": len(pred)}
    return {"val_n": len(pred), "val_mae": mae(pred, target), "val_rmse": rmse(pred, target),
            "val_pcc": pearson(pred, target), "val_icc": icc_3_1(pred, target)}


def format_epoch(metrics: dict, epochs: int) -> str:
    shown = [f"epoch {metrics['epoch'] + 1}/{epochs}", f"loss {metrics['train_loss']:.4f}", f"{metrics['pairs_per_s']:.1f} pairs/s"]
    shown += [f"{name} {metrics[name]:.3f}" for name in ("val_mae", "val_pcc") if name in metrics and not math.isnan(metrics[name])]
    return " · ".join(shown)


# -------------------------------------------------------------------------------------------- on the driver


def absolute_url(url: str) -> str:
    """A local path made absolute, other URLs as they are: Ray Train workers run in a working folder of their own,
    where a relative path would name nothing."""
    return url if "://" in url else os.path.abspath(url)


def run_location(out: str) -> tuple[str, str]:
    """(storage_path, name) for Ray Train from a run URL: its parent folder and its last path component."""
    parent, _, name = absolute_url(out.rstrip("/")).rpartition("/")
    if not name or not parent:
        raise ValueError(f"--out must name a run folder inside a parent folder, got {out!r}")
    return parent, name


def fit(source, config: TrainConfig, out: str, workers: int = 1, use_gpu: bool = False, max_failures: int = 2,
        storage_options: Mapping | None = None):
    """Train `config.model` on `source` with Ray Train; checkpoints land in `out`. Returns Ray's Result; raises
    TrainingError, naming the root cause, when training fails for good.
    `source` is built from the recipe's `config.split` by the CLI; each checkpoint records both the recipe
    ("config") and the split the source actually used ("source"). `storage_options` (fsspec, as for the factory
    commands) apply to `out` and the init checkpoint; only their non-secret part reaches Ray: the loop config
    travels to every worker and Ray may record it, so workers take credentials from their own environment
    (AWS_* variables, ~/.aws, an instance role)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    public = public_storage_options(storage_options or {})
    storage_path, name = run_location(out)
    store, path = filesystem(storage_path, public)
    storage_filesystem = None
    if "file" not in (store.protocol if isinstance(store.protocol, tuple) else (store.protocol,)):
        import pyarrow.fs

        storage_filesystem, storage_path = pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(store)), path
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config, "source": source.for_workers(), "storage_options": public},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_path, storage_filesystem=storage_filesystem,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        with ray_train_metrics_for(name):
            return trainer.fit()
    except ray.train.TrainingFailedError as error:
        raise TrainingError(f"training failed: {root_cause(error)}") from None


def root_cause(error: BaseException) -> str:
    """Why Ray Train gave up, in one line: a worker's own error (a FactoryError first, as the other ranks then
    fail because of it), else the controller's, without Ray's wrapping and traceback."""
    failures = sorted((getattr(error, "worker_failures", None) or {}).items(),
                      key=lambda item: (not isinstance(item[1], FactoryError), item[0]))
    cause = failures[0][1] if failures else getattr(error, "controller_failure", error)
    text = str(cause) if isinstance(cause, FactoryError) else f"{type(cause).__name__}: {cause}"
    return next((line.strip() for line in text.splitlines() if line.strip()), type(cause).__name__)


RAY_TRAIN_METRICS = "RAY_TRAIN_METRICS_ENABLED"


@contextmanager
def ray_train_metrics_for(name: str) -> Iterator[None]:
    """Ray Train tags its own Prometheus metrics with the run name, and Ray's tag encoder takes ASCII only: a run
    named "douleur-é" failed as its controller started. Such a run goes without those metrics (Ray reads the
    switch when `fit` is called); its folder keeps the name the user gave."""
    if name.isascii():
        yield
        return
    previous = os.environ.get(RAY_TRAIN_METRICS)
    os.environ[RAY_TRAIN_METRICS] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RAY_TRAIN_METRICS)
        else:
            os.environ[RAY_TRAIN_METRICS] = previous


def start_ray() -> None:
    """Connect to the cluster at RAY_ADDRESS, or start a local one without the dashboard, unless connected."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, runtime_env={"worker_process_setup_hook": quiet_placement_group_cleaner})


class WithoutStateApiWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to query Ray Train Controller actor state")


def quiet_placement_group_cleaner() -> None:
    """Set up every Ray worker process of a `trainer fit` (start_ray). Ray Train's PlacementGroupCleaner (an actor
    that removes a run's placement group if the controller dies) asks the State API every second whether the
    controller lives. That API is served by the dashboard, which the local cluster runs without (and which needs
    ray[default], not installed), so every question failed and the cleaner printed a warning a second for the
    whole run. Only that warning is dropped; the cleaner's others stay."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").addFilter(WithoutStateApiWarnings())
