"""The `trainer` command line: train ViTPain or a baseline on painfactory shards (or UNBC-McMaster) with Ray
Train, and evaluate checkpoints."""

from __future__ import annotations

import json
import math
from typing import Optional

import typer

from factory.errors import fail, reporting_command

app = typer.Typer(
    help="Train and evaluate ViTPain and its baselines on painfactory datasets (local or s3://) with Ray Train.",
    no_args_is_help=True,
    add_completion=False,
)


command = reporting_command(app)  # each command: a FactoryError (a dataset that is not one, a store) is one line


@app.callback()
def main() -> None:
    """Train and evaluate ViTPain and its baselines on painfactory datasets (local or s3://) with Ray Train."""


def make_source(data: Optional[str], unbc: Optional[str], fold: int, folds: int, protocol: str, split_seed: int,
                fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)):
    from trainer.data import ShardPairs, SplitConfig
    from trainer.unbc import UnbcPairs

    if (data is None) == (unbc is None):
        fail("give exactly one of --data URL (a painfactory dataset) or --unbc ROOT (UNBC-McMaster)")
    if data is not None:
        try:
            return ShardPairs(data, SplitConfig(seed=split_seed, fractions=tuple(fractions)))
        except ValueError as error:
            fail(str(error))
    return UnbcPairs(unbc, fold=fold, folds=folds, protocol=protocol, seed=split_seed)


@command()
def fit(
    out: str = typer.Option(..., help="Run folder URL (local path or s3://bucket/prefix/name); checkpoints land in "
                                      "OUT/checkpoint_epochNNNN/. Rerun the same command to resume after a crash."),
    data: Optional[str] = typer.Option(None, help="painfactory dataset folder URL (holding manifest.json)."),
    unbc: Optional[str] = typer.Option(None, help="UNBC-McMaster root folder (Images/, Frame_Labels/) to fine-tune on."),
    fold: int = typer.Option(0, help="UNBC: the test fold (k-fold) or the test subject's index (loso)."),
    folds: int = typer.Option(5, help="UNBC: number of subject-wise folds."),
    protocol: str = typer.Option("kfold", help="UNBC: 'kfold' (subject-wise) or 'loso' (leave one subject out)."),
    init: Optional[str] = typer.Option(None, help="Checkpoint to start from (e.g. synthetic pre-training); its "
                                                  "model and backbone are used and --model/--backbone are ignored."),
    model: str = typer.Option("vitpain", help="vitpain | vit (single image) | vit-diff (reference by feature difference)."),
    backbone: str = typer.Option("vit_small_patch16_224", help="timm ViT name, e.g. vit_tiny_patch16_224, vit_base_patch16_224, vit_small_patch14_dinov2."),
    pretrained: Optional[str] = typer.Option(None, help="Backbone weights: a local file, or 'hub' for the Hugging Face cache (offline). Default: from scratch."),
    lora_rank: int = typer.Option(0, help="LoRA rank on the attention projections with the backbone frozen (official: 8); 0 trains the whole backbone."),
    depth: Optional[int] = typer.Option(None, help="Override the backbone's depth (tiny CPU models)."),
    embed_dim: Optional[int] = typer.Option(None, help="Override the backbone's width (tiny CPU models)."),
    num_heads: Optional[int] = typer.Option(None, help="Override the backbone's attention heads (tiny CPU models)."),
    image_size: int = typer.Option(224, help="Input size in pixels (a multiple of the backbone's patch size)."),
    epochs: int = typer.Option(150, help="Epochs in total (a resumed run continues up to this number)."),
    batch_size: int = typer.Option(48, help="Pairs per batch per worker."),
    lr: float = typer.Option(1e-4, help="Learning rate of the heads and fusion."),
    backbone_lr: float = typer.Option(1e-5, help="Learning rate of the backbone or its LoRA adapters."),
    augment: bool = typer.Option(True, help="Flip, ±5° rotation, small affine, colour jitter, blur."),
    workers: int = typer.Option(1, help="Ray Train workers (DDP ranks)."),
    gpu: bool = typer.Option(False, "--gpu", help="One GPU per worker."),
    seed: int = typer.Option(0, help="Seed of initialisation, shuffling and augmentation."),
    split_seed: int = typer.Option(0, help="Seed of the identity-disjoint (or subject-wise) split."),
    split_fractions: tuple[float, float, float] = typer.Option((0.7, 0.2, 0.1), help="Train, val and test shares of the identities."),
    max_failures: int = typer.Option(2, help="Worker-group restarts Ray Train may make after a failure."),
) -> None:
    """Train a pain model with Ray Train, one checkpoint per epoch, resuming from the latest one if OUT has any."""
    import ray

    from trainer.checkpoint import latest_checkpoint, local_checkpoint, read_info
    from trainer.data import Augmentation
    from trainer.models import BackboneConfig, list_models
    from trainer.train import TrainConfig, fit as run_fit

    source = make_source(data, unbc, fold, folds, protocol, split_seed, split_fractions)
    overrides = {k: v for k, v in {"depth": depth, "embed_dim": embed_dim, "num_heads": num_heads}.items() if v is not None}
    try:
        if init is not None:
            found = latest_checkpoint(init)
            if found is None:
                fail(f"no checkpoint at --init {init}")
            with local_checkpoint(found) as directory:
                described = read_info(directory)
            init, model = found, described["model"]
            backbone_config = BackboneConfig(**{**described["backbone"], "pretrained": None})
        else:
            if model not in list_models():
                fail(f"unknown --model {model!r}; choose one of {', '.join(list_models())}")
            backbone_config = BackboneConfig(name=backbone, image_size=image_size, pretrained=pretrained,
                                             lora_rank=lora_rank, overrides=overrides)
        config = TrainConfig(model=model, backbone=backbone_config, epochs=epochs, batch_size=batch_size, lr=lr,
                             backbone_lr=backbone_lr, augmentation=Augmentation() if augment else None, seed=seed,
                             init_checkpoint=init)
        source.check()
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    previous = latest_checkpoint(out)
    if previous is not None:
        typer.echo(f"resuming {out} after {previous.rsplit('/', 1)[-1]}")
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    result = run_fit(source, config, out, workers=workers, use_gpu=gpu, max_failures=max_failures)
    if result.error is not None:
        fail(f"training failed: {result.error}")
    shown = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))}
    final = latest_checkpoint(out)
    typer.echo(json.dumps({"checkpoint": final, **shown}))


@command()
def evaluate(
    checkpoint: str = typer.Option(..., help="Checkpoint folder URL, or a run folder (its latest checkpoint is used)."),
    data: Optional[str] = typer.Option(None, help="painfactory dataset folder URL."),
    unbc: Optional[str] = typer.Option(None, help="UNBC-McMaster root folder."),
    fold: int = typer.Option(0, help="UNBC: test fold (k-fold) or subject index (loso)."),
    folds: int = typer.Option(5, help="UNBC: number of folds."),
    protocol: str = typer.Option("kfold", help="UNBC: 'kfold' or 'loso'."),
    split: str = typer.Option("test", help="train | val | test."),
    split_seed: Optional[int] = typer.Option(None, help="Split seed; default: the one the checkpoint was trained with "
                                                        "(the split fractions always are)."),
    batch_size: int = typer.Option(32, help="Pairs per inference batch."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (NaN as null) instead of a table."),
) -> None:
    """MAE, RMSE, Pearson, ICC(3,1), AUROC and calibrated F1 at PSPI ≥ 1, 2, 3, and MAE per demographic group."""
    from trainer.checkpoint import latest_checkpoint, local_checkpoint, read_info
    from trainer.evaluate import evaluate as run_evaluate

    found = latest_checkpoint(checkpoint)
    if found is None:
        fail(f"no checkpoint at {checkpoint}")
    with local_checkpoint(found) as directory:
        trained_on = read_info(directory).get("source", {})
    if split_seed is None:
        split_seed = trained_on.get("split_seed", trained_on.get("seed", 0))
    source = make_source(data, unbc, fold, folds, protocol, split_seed, tuple(trained_on.get("fractions", (0.7, 0.2, 0.1))))
    try:
        metrics = run_evaluate(found, source, split, batch_size=batch_size)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    metrics = without_nan(metrics)
    if as_json:
        typer.echo(json.dumps(metrics, sort_keys=True))
        return
    for name, value in metrics.items():
        typer.echo(f"{name:>16}  {value:.4f}" if isinstance(value, float) else f"{name:>16}  {value}")


@command("models")
def models() -> None:
    """List the registered model names."""
    from trainer.models import list_models

    for name in list_models():
        typer.echo(name)


def without_nan(value):
    """JSON has no NaN: undefined metrics (e.g. AUROC with one class) become null."""
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


if __name__ == "__main__":
    app()
