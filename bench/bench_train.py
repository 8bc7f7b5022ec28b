"""Training throughput from a local folder and from S3, side by side, in one run (run by hand).

    .venv/bin/python bench/bench_train.py [--identities 16] [--image-size 128] [--epochs 22] [--repeats 7]
                                          [--dataset DIR]   # reuse a dataset `factory generate` wrote

1. `factory generate` writes one dataset to a local folder (or --dataset names one); the same shards are copied to
   a moto S3 server on 127.0.0.1 (a real S3 endpoint; a network-attached bucket adds latency this cannot show).
2. The reader on one process: pairs/s of the shard stream alone (tar → checked samples → pairs, no decoding),
   then of the whole reader (stream → shuffle → decode → augment → batches): `--repeats` passes, local then S3.
3. Training: one `trainer fit` Ray Train run (2 workers × 1 CPU, tiny ViTPain) whose epochs alternate between the
   stores: even epochs (training and validation) read the local folder, odd ones S3. Its per-epoch pairs/s (all
   workers, validation included, as the trainer reports it) pair up as (2, 3), (4, 5), …; epochs 0 and 1 warm up.
The machine is shared and its load swings within minutes, so both stores are measured alternately, A B A B, at
the finest grain that still measures the whole (a pass, an epoch); the table gives the median of each store and
the median of the per-pair S3/local ratios. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine  # noqa: E402  (bench/results.py, beside this script)


def start_s3() -> tuple[object, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=url, AWS_ENDPOINT_URL_S3=url)
    return server, url


def stream_pairs_per_s(url: str) -> float:
    """Pairs/s of the shard stream alone (tar → samples → pairs, no image decoding): the I/O part."""
    from trainer.data import ShardPairs, SplitConfig

    started = time.perf_counter()
    pairs = sum(1 for _ in ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0))).pairs("train"))
    return pairs / (time.perf_counter() - started)


def reader_pairs_per_s(url: str, image_size: int, batch_size: int = 16) -> float:
    from trainer.data import Augmentation, PairTransform, ShardPairs, SplitConfig, batches, shuffled

    source = ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0)))
    transform = PairTransform(image_size, augmentation=Augmentation())
    rng = random.Random(0)
    started, pairs = time.perf_counter(), 0
    for batch in batches(shuffled(source.pairs("train", shuffle=True), 256, rng), transform, batch_size, rng, drop_last=False):
        pairs += len(batch["keys"])
    return pairs / (time.perf_counter() - started)


@dataclass
class EpochAlternating:
    """Even epochs from `local`, odd ones from `remote`, validation from the store of the epoch being trained: one
    run, one model, the same workers read both stores one epoch after the other. Ray Train hands each worker its own
    copy, and a worker asks for an epoch's training pairs before its validation pairs."""

    local: object
    remote: object
    current: object = None

    def pairs(self, split, rank=0, world=1, epoch=0, shuffle=False):
        if split == "train":
            self.current = self.remote if epoch % 2 else self.local
        return self.current.pairs(split, rank, world, epoch, shuffle)

    def describe(self) -> dict:
        return {"kind": "bench-alternating", "local": self.local.url, "remote": self.remote.url}

    def for_workers(self) -> "EpochAlternating":
        return self


def training_pairs_per_s(local: str, remote: str, out: str, image_size: int, epochs: int) -> tuple[list[float], list[float]]:
    """Per-epoch training pairs/s of one run whose epochs alternate local, S3: (local figures, S3 figures) of
    epochs 2, 4, … and 3, 5, …"""
    from trainer.checkpoint import read_info
    from trainer.config import OptimizerConfig, ScheduleConfig, TrainConfig
    from trainer.data import ShardPairs, SplitConfig
    from trainer.models import BackboneConfig
    from trainer.train import fit

    backbone = BackboneConfig(name="vit_tiny_patch16_224", image_size=image_size, overrides={"depth": 2, "embed_dim": 64, "num_heads": 2})
    config = TrainConfig(model="vitpain", backbone=backbone, fusion_heads=2, schedule=ScheduleConfig(epochs=epochs), batch_size=16,
                         optimizer=OptimizerConfig(lr=1e-3))
    split = SplitConfig(fractions=(0.9, 0.1, 0.0))
    fit(EpochAlternating(ShardPairs(local, split), ShardPairs(remote, split)), config, out, workers=2)
    rates = [read_info(Path(out) / f"checkpoint_epoch{epoch:04d}")["metrics"]["pairs_per_s"] for epoch in range(epochs)]
    return rates[2::2], rates[3::2]


def alternate(measure, local: str, remote: str, repeats: int) -> tuple[list[float], list[float]]:
    """`measure(url)` for local then S3, `repeats` times: the two lists of figures, in order."""
    figures: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for figure, url in zip(figures, (local, remote)):
            figure.append(measure(url))
    return figures


def row(what: str, local: list[float], remote: list[float]) -> str:
    ratios = [s3 / here for here, s3 in zip(local, remote)]
    runs = "; ".join(f"{here:.0f}/{s3:.0f}" for here, s3 in zip(local, remote))
    return (f"| {what} | {statistics.median(local):.1f} | {statistics.median(remote):.1f} | {statistics.median(ratios):.2f} "
            f"| {runs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=22)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dataset", help="a local dataset to use instead of generating one (--identities and "
                                          "--image-size must describe it)")
    args = parser.parse_args()
    if args.epochs < 4 or args.epochs % 2 or args.repeats < 1:
        parser.error("--epochs must be even and >= 4 (epochs 0 and 1 warm up) and --repeats >= 1")

    import fsspec
    import ray

    server, _ = start_s3()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    local = args.dataset or str(work / "dataset")
    if args.dataset is None:
        subprocess.run([sys.executable, "-m", "factory", "generate", "--identities", str(args.identities), "--out", local,
                        "--image-size", str(args.image_size), "--workers", "2", "--no-progress"], check=True, capture_output=True)
    s3 = fsspec.filesystem("s3")
    s3.mkdir("bench-train")
    s3.put(local.rstrip("/") + "/", "bench-train/dataset", recursive=True)
    remote = "s3://bench-train/dataset"
    size_mb = sum(p.stat().st_size for p in Path(local).rglob("*.tar")) / 1e6
    load_before = os.getloadavg()[0]

    reader_pairs_per_s(local, args.image_size)  # warm-up: imports, first-use costs, page cache
    rows = [row("shard stream only, no decoding, 1 process", *alternate(stream_pairs_per_s, local, remote, args.repeats)),
            row("reader: stream + decode + augment + batch, 1 process",
                *alternate(lambda url: reader_pairs_per_s(url, args.image_size), local, remote, args.repeats))]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    epochs = training_pairs_per_s(local, remote, str(work / "run"), args.image_size, args.epochs)
    rows.append(row(f"Ray Train fit, 2 workers, one run, epochs alternating local / S3 ({len(epochs[0])} pairs of epochs)", *epochs))
    ray.shutdown()
    server.stop()

    print(f"\nMachine: {machine()}; load average {load_before:.1f} before the measurements, {os.getloadavg()[0]:.1f} at the end "
          f"(shared machine); dataset: {args.identities} identities from `factory generate` at {args.image_size} px, "
          f"{size_mb:.1f} MB of shards; S3 = moto on 127.0.0.1; model: ViTPain on a 2-block ViT-Tiny (dim 64), batch 16, "
          f"augmentation on; reader: {args.repeats} passes each, alternating.\n")
    print("| what | local folder (pairs/s, median) | S3 (pairs/s, median) | S3 / local (median of pairs) | each pair, local/S3 |")
    print("|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
