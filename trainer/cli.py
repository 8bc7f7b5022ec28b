"""The `trainer` command line: train ViTPain or a baseline on painfactory shards (or UNBC-McMaster) with Ray
Train, and evaluate checkpoints."""

from __future__ import annotations

import json
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


STORAGE_OPTION_HELP = ("fsspec option key=value for every URL the command reads or writes, repeatable "
                       "(endpoint_url=http://…), as for the factory commands.")


def storage_options_of(pairs: Optional[list[str]]) -> dict:
    """--storage-option flags as fsspec options (merged over the environment's where each URL is opened)."""
    from factory.format.storage import parse_storage_options

    try:
        return parse_storage_options(pairs or [])
    except ValueError as error:
        fail(str(error))


def make_source(data: Optional[str], unbc: Optional[str], fold: int, folds: int, protocol: str, split, storage_options: dict):
    """The pairs to train or evaluate on: a painfactory dataset split by `split` (a SplitConfig), or a fold of
    UNBC-McMaster (subject-wise, seeded by `split.seed`)."""
    from trainer.data import ShardPairs
    from trainer.train import absolute_url
    from trainer.unbc import UnbcPairs

    if (data is None) == (unbc is None):
        fail("give exactly one of --data URL (a painfactory dataset) or --unbc ROOT (UNBC-McMaster)")
    try:
        if data is not None:
            return ShardPairs(absolute_url(data), split, storage_options)
        return UnbcPairs(absolute_url(unbc), fold=fold, folds=folds, protocol=protocol, seed=split.seed)
    except ValueError as error:
        fail(str(error))


@command()
def fit(
    out: Optional[str] = typer.Option(None, help="Run folder URL (local path or s3://bucket/prefix/name); checkpoints land "
                                                 "in OUT/checkpoint_epochNNNN/. Rerun the same command to resume after a crash."),
    data: Optional[str] = typer.Option(None, help="painfactory dataset folder URL (holding manifest.json)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML recipe: a file, or a shipped name (vitpain, "
                                         "vitpain-cpu-tiny); flags win over it. Layout: trainer/config.py."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved recipe as YAML and exit."),
    unbc: Optional[str] = typer.Option(None, help="UNBC-McMaster root folder (Images/, Frame_Labels/) to fine-tune on."),
    fold: int = typer.Option(0, help="UNBC: the test fold (k-fold) or the test subject's index (loso)."),
    folds: int = typer.Option(5, help="UNBC: number of subject-wise folds."),
    protocol: str = typer.Option("kfold", help="UNBC: 'kfold' (subject-wise) or 'loso' (leave one subject out)."),
    init: Optional[str] = typer.Option(None, help="Checkpoint to start from (e.g. synthetic pre-training); its model, "
                                                  "backbone and fusion heads are used [init_checkpoint]."),
    model: Optional[str] = typer.Option(None, help="vitpain | vit (single image) | vit-diff (reference by feature difference) [model]."),
    fusion_heads: Optional[int] = typer.Option(None, help="Heads of the reference cross-attention and AU pooling [fusion_heads]."),
    backbone: Optional[str] = typer.Option(None, help="timm ViT name, e.g. vit_tiny_patch16_224, vit_large_patch16_dinov3.sat493m [backbone.name]."),
    pretrained: Optional[str] = typer.Option(None, help="Backbone weights: a local file, or 'hub' for the Hugging Face cache "
                                                        "(offline; see fetch-backbone). Default: from scratch [backbone.pretrained]."),
    image_size: Optional[int] = typer.Option(None, help="Input size in pixels, a multiple of the patch size [backbone.image_size]."),
    lora_rank: Optional[int] = typer.Option(None, help="LoRA rank with the backbone frozen (official: 8); 0 trains the whole backbone [backbone.lora_rank]."),
    lora_alpha: Optional[int] = typer.Option(None, help="LoRA alpha (official: 16) [backbone.lora_alpha]."),
    depth: Optional[int] = typer.Option(None, help="Override the backbone's depth (tiny CPU models) [backbone.overrides.depth]."),
    embed_dim: Optional[int] = typer.Option(None, help="Override the backbone's width [backbone.overrides.embed_dim]."),
    num_heads: Optional[int] = typer.Option(None, help="Override the backbone's attention heads [backbone.overrides.num_heads]."),
    epochs: Optional[int] = typer.Option(None, help="Epochs in total; a resumed run continues up to this number [schedule.epochs]."),
    batch_size: Optional[int] = typer.Option(None, help="Pairs per batch per worker [batch_size]."),
    lr: Optional[float] = typer.Option(None, help="Learning rate of the heads and fusion [optimizer.lr]."),
    backbone_lr: Optional[float] = typer.Option(None, help="Learning rate of the backbone or its LoRA adapters [optimizer.backbone_lr]."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay [optimizer.weight_decay]."),
    loss_pspi: Optional[float] = typer.Option(None, help="Weight of the PSPI regression loss [loss.pspi]."),
    loss_thresholds: Optional[float] = typer.Option(None, help="Weight of the PSPI >= 1, 2, 3 losses [loss.thresholds]."),
    loss_aus: Optional[float] = typer.Option(None, help="Weight of the AU regression loss [loss.aus]."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Flip, rotation, affine, colour jitter, blur [augmentation]."),
    shuffle_buffer: Optional[int] = typer.Option(None, help="Pairs held by the streaming shuffle [shuffle_buffer]."),
    seed: Optional[int] = typer.Option(None, help="Seed of initialisation, shuffling and augmentation [seed]."),
    split_seed: Optional[int] = typer.Option(None, help="Seed of the identity-disjoint (or subject-wise) split [split.seed]."),
    split_fractions: Optional[tuple[float, float, float]] = typer.Option(None, help="Train, val and test shares of the identities [split.fractions]."),
    workers: int = typer.Option(1, help="Ray Train workers (DDP ranks)."),
    gpu: bool = typer.Option(False, "--gpu", help="One GPU per worker."),
    max_failures: int = typer.Option(2, help="Worker-group restarts Ray Train may make after a failure."),
    storage_option: Optional[list[str]] = typer.Option(None, "--storage-option", help=STORAGE_OPTION_HELP + " Credentials among "
                                                       "them stay in this process: Ray Train workers take theirs from their environment."),
) -> None:
    """Train a pain model with Ray Train, one checkpoint per epoch, resuming from the latest one if OUT has any.

    The recipe comes from --config (a YAML file or a shipped name) and the flags; where it runs from --data or
    --unbc, --out, --workers and --gpu.
    """
    import yaml

    from trainer.config import ConfigError, load_train_config, scratch_warning
    from trainer.models.backbone import check_backbone

    flags = {  # the TrainConfig key each flag sets (trainer/config.py); None: not given, the file's value stays
        "model": model, "fusion_heads": fusion_heads, "init_checkpoint": init, "backbone.name": backbone,
        "backbone.pretrained": pretrained, "backbone.image_size": image_size, "backbone.lora_rank": lora_rank,
        "backbone.lora_alpha": lora_alpha, "backbone.overrides.depth": depth, "backbone.overrides.embed_dim": embed_dim,
        "backbone.overrides.num_heads": num_heads, "schedule.epochs": epochs, "batch_size": batch_size,
        "optimizer.lr": lr, "optimizer.backbone_lr": backbone_lr, "optimizer.weight_decay": weight_decay,
        "loss.pspi": loss_pspi, "loss.thresholds": loss_thresholds, "loss.aus": loss_aus,
        "shuffle_buffer": shuffle_buffer, "seed": seed, "split.seed": split_seed, "split.fractions": split_fractions,
    }
    options = storage_options_of(storage_option)
    try:
        settings = with_init_checkpoint(load_train_config(config, flags, augment), options)
        if print_config:
            typer.echo(yaml.safe_dump(settings.to_dict(), sort_keys=False), nl=False)
            return
        if out is None:
            fail("--out is required: the run folder checkpoints go to")
        source = make_source(data, unbc, fold, folds, protocol, settings.split, options)
        check_backbone(settings.backbone)
        source.check()
    except (ConfigError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    for warning in (scratch_warning(settings), credentials_warning(options)):
        if warning:
            typer.secho(warning, err=True, fg=typer.colors.YELLOW)
    run_training(source, settings, out, workers, gpu, max_failures, options)


def credentials_warning(storage_options: dict) -> Optional[str]:
    from factory.format.storage import public_storage_options

    if public_storage_options(storage_options) == storage_options:
        return None
    return ("warning: credentials given by --storage-option are used by this process only (Ray Train workers read theirs from "
            "their own environment: AWS_* variables, ~/.aws, an instance role), and a command line is visible to other "
            "processes and recorded by Ray as its job's entrypoint: prefer the environment")


def with_init_checkpoint(settings, storage_options: dict):
    """With `init_checkpoint`, the model, backbone and fusion heads are the checkpoint's (its weights load over them)."""
    import dataclasses

    from trainer.checkpoint import latest_checkpoint, local_checkpoint, read_info
    from trainer.models import BackboneConfig
    from trainer.train import absolute_url

    if settings.init_checkpoint is None:
        return settings
    found = latest_checkpoint(absolute_url(settings.init_checkpoint), storage_options)
    if found is None:
        fail(f"no checkpoint at --init {settings.init_checkpoint}")
    with local_checkpoint(found, storage_options) as directory:
        described = read_info(directory)
    return dataclasses.replace(settings, model=described["model"], fusion_heads=described["fusion_heads"],
                               backbone=BackboneConfig(**{**described["backbone"], "pretrained": None}), init_checkpoint=found)


def run_training(source, settings, out: str, workers: int, gpu: bool, max_failures: int, storage_options: dict) -> None:
    """Start (or resume) the Ray Train job and print the final checkpoint and metrics as one JSON line.
    A failed run (TrainingError, a FactoryError) ends in one line: `error: training failed: <root cause>`."""
    from trainer.checkpoint import latest_checkpoint
    from trainer.train import fit as run_fit
    from trainer.train import start_ray

    previous = latest_checkpoint(out, storage_options)
    if previous is not None:
        typer.echo(f"resuming {out} after {previous.rsplit('/', 1)[-1]}")
    start_ray()
    try:
        result = run_fit(source, settings, out, workers=workers, use_gpu=gpu, max_failures=max_failures, storage_options=storage_options)
    except ValueError as error:
        fail(str(error))
    shown = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
    echo_json({"checkpoint": latest_checkpoint(out, storage_options), **shown})


def echo_json(value: dict, **options) -> None:
    """Print one line of strict JSON: NaN and infinities (undefined metrics) become null."""
    from trainer.checkpoint import finite_or_null

    typer.echo(json.dumps(finite_or_null(value), allow_nan=False, **options))


@app.command("fetch-backbone")
def fetch_backbone(
    name: str = typer.Argument(..., help="timm backbone name, optionally with its tag (vit_large_patch16_dinov3.sat493m)."),
    cache_dir: Optional[str] = typer.Option(None, help="Hugging Face cache folder (default: HF_HUB_CACHE, "
                                                       "~/.cache/huggingface/hub); training reads HF_HUB_CACHE."),
    timeout: float = typer.Option(10.0, help="Seconds to wait for the Hub to answer before giving up."),
) -> None:
    """Download a backbone's pretrained weights into the Hugging Face cache (needs network), where `pretrained: hub`
    (configs/vitpain.yaml) finds them offline. Copy the cache folder to machines without network."""
    from trainer.models.backbone import check_backbone_name
    from trainer.models.hub import HubError, fetch_hub_weights, hub_cache

    try:
        check_backbone_name(name)
        path = fetch_hub_weights(name, cache_dir, timeout=timeout)
    except (HubError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    typer.echo(f"{name}: {path}")
    if cache_dir is not None:
        typer.echo(f"train with HF_HUB_CACHE={hub_cache(cache_dir)} so that `pretrained: hub` looks there")


EVALUATION_HELP = {  # the options `evaluate` and `report` share: which checkpoint, on which pairs
    "checkpoint": "Checkpoint folder URL, or a run folder (its latest checkpoint is used).",
    "data": "painfactory dataset folder URL.", "unbc": "UNBC-McMaster root folder.",
    "fold": "UNBC: test fold (k-fold) or subject index (loso).", "folds": "UNBC: number of folds.",
    "protocol": "UNBC: 'kfold' or 'loso'.", "split": "train | val | test.",
    "split_seed": "Split seed; default: the one the checkpoint was trained with (the split fractions always are).",
    "batch_size": "Pairs per inference batch.",
}


def evaluation_predictions_of(checkpoint: str, data: Optional[str], unbc: Optional[str], fold: int, folds: int, protocol: str,
                              split: str, split_seed: Optional[int], batch_size: int, options: dict, smooth_frames: int = 1):
    """The checkpoint's predictions on `split` of the pairs it was trained on (trainer.evaluate), every problem a
    one-line error."""
    from trainer.checkpoint import latest_checkpoint, local_checkpoint, read_info
    from trainer.data import SplitConfig
    from trainer.evaluate import evaluation_predictions

    found = latest_checkpoint(checkpoint, options)
    if found is None:
        fail(f"no checkpoint at {checkpoint}")
    with local_checkpoint(found, options) as directory:
        trained_on = read_info(directory).get("source", {})
    if split_seed is None:
        split_seed = trained_on.get("split_seed", trained_on.get("seed", 0))
    fractions = trained_on.get("fractions", SplitConfig().fractions)
    source = make_source(data, unbc, fold, folds, protocol, SplitConfig(seed=split_seed, fractions=tuple(fractions)), options)
    try:
        source.check()
        return evaluation_predictions(found, source, split, batch_size=batch_size, storage_options=options,
                                      smooth_frames=smooth_frames)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))


@command()
def evaluate(
    checkpoint: str = typer.Option(..., help=EVALUATION_HELP["checkpoint"]),
    data: Optional[str] = typer.Option(None, help=EVALUATION_HELP["data"]),
    unbc: Optional[str] = typer.Option(None, help=EVALUATION_HELP["unbc"]),
    fold: int = typer.Option(0, help=EVALUATION_HELP["fold"]),
    folds: int = typer.Option(5, help=EVALUATION_HELP["folds"]),
    protocol: str = typer.Option("kfold", help=EVALUATION_HELP["protocol"]),
    split: str = typer.Option("test", help=EVALUATION_HELP["split"]),
    split_seed: Optional[int] = typer.Option(None, help=EVALUATION_HELP["split_seed"]),
    batch_size: int = typer.Option(32, help=EVALUATION_HELP["batch_size"]),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (NaN as null) instead of a table."),
    smooth_frames: int = typer.Option(1, "--smooth-frames", help="Sequence datasets: average each sequence's frame "
                                      "predictions over this many frames (a centred moving average); 1: none."),
    storage_option: Optional[list[str]] = typer.Option(None, "--storage-option", help=STORAGE_OPTION_HELP),
) -> None:
    """MAE, RMSE, Pearson, ICC(3,1), AUROC and calibrated F1 at PSPI ≥ 1, 2, 3, and MAE per group (trainer/data.py,
    GROUP_FIELDS: age band, gender, ethnicity, Fitzpatrick type, …)."""
    from trainer.evaluate import evaluation_metrics

    options = storage_options_of(storage_option)
    if smooth_frames < 1:
        fail(f"--smooth-frames must be >= 1 (1: no smoothing), got {smooth_frames}")
    found = evaluation_predictions_of(checkpoint, data, unbc, fold, folds, protocol, split, split_seed, batch_size, options,
                                      smooth_frames)
    metrics = evaluation_metrics(found)
    if smooth_frames > 1:  # said with the numbers it changed
        metrics["smooth_frames"] = smooth_frames
    if as_json:
        echo_json(metrics, sort_keys=True)
        return
    for name, value in metrics.items():
        typer.echo(f"{name:>16}  {value:.4f}" if isinstance(value, float) else f"{name:>16}  {value}")


@command()
def report(
    out: str = typer.Option(..., help="Local folder for report.md, report.html (plots embedded), report.json and plots/*.png."),
    checkpoint: str = typer.Option(..., help=EVALUATION_HELP["checkpoint"]),
    data: Optional[str] = typer.Option(None, help=EVALUATION_HELP["data"]),
    unbc: Optional[str] = typer.Option(None, help=EVALUATION_HELP["unbc"]),
    fold: int = typer.Option(0, help=EVALUATION_HELP["fold"]),
    folds: int = typer.Option(5, help=EVALUATION_HELP["folds"]),
    protocol: str = typer.Option("kfold", help=EVALUATION_HELP["protocol"]),
    split: str = typer.Option("test", help=EVALUATION_HELP["split"]),
    split_seed: Optional[int] = typer.Option(None, help=EVALUATION_HELP["split_seed"]),
    batch_size: int = typer.Option(32, help=EVALUATION_HELP["batch_size"]),
    resamples: int = typer.Option(1000, help="Bootstrap resamples of identities per group (at least 20)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap: same seed, same intervals."),
    min_identities: int = typer.Option(5, help="Groups with fewer identities get no interval and are marked (few ids)."),
    confidence: float = typer.Option(0.95, help="Confidence level of the intervals."),
    storage_option: Optional[list[str]] = typer.Option(None, "--storage-option", help=STORAGE_OPTION_HELP),
) -> None:
    """A fairness report: every metric of `evaluate` for PSPI, and MAE, RMSE, Pearson and ICC per PSPI AU, for the
    split and per age band, gender, ethnicity, Fitzpatrick type (and scenario or occluder where the data has them),
    with bootstrap confidence intervals over identities; Markdown, HTML and plots in OUT."""
    from pathlib import Path

    from trainer.report import ReportConfig, fairness_report, write_report

    try:
        config = ReportConfig(resamples=resamples, seed=seed, min_identities=min_identities, confidence=confidence)
    except ValueError as error:
        fail(str(error))
    if Path(out).exists() and not Path(out).is_dir():
        fail(f"--out {out} is a file, not a folder")
    options = storage_options_of(storage_option)
    found = evaluation_predictions_of(checkpoint, data, unbc, fold, folds, protocol, split, split_seed, batch_size, options)
    described = {"checkpoint": found.checkpoint, "data": data or unbc, "split": split}
    written = write_report(fairness_report(found, config), Path(out), described)
    typer.echo(f"wrote {', '.join(str(path) for path in written[:3])} and {len(written) - 3} plots")


@command("models")
def models() -> None:
    """List the registered model names."""
    from trainer.models import list_models

    for name in list_models():
        typer.echo(name)


if __name__ == "__main__":
    app()
