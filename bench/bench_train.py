"""Training throughput from a local folder and from S3, side by side, in one run (run by hand).

    /work/main/.venv/bin/python bench/bench_train.py [--identities 16] [--image-size 128] [--epochs 2]

1. `factory generate` writes one dataset to a local folder; the same shards are copied to a moto S3 server on
   127.0.0.1 (a real S3 endpoint; a network-attached bucket adds latency this cannot show).
2. The shard stream alone (no decoding), then the whole reader: pairs/s of the streaming pipeline (tar stream → pairs → decode → augment → batches) on one
   process, local vs S3: one warm-up pass, then `--repeats` passes alternating local and S3; the best of each
   (the machine is shared: the best pass is the one least disturbed by other work).
3. Training: `trainer fit`'s Ray Train loop (2 workers × 1 CPU, tiny ViTPain) for `--epochs` epochs on each;
   the median training pairs/s (all workers) of the epochs after the first, so start-up and warm-up are left out.
The machine is shared, so the load average is printed with the figures. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def start_s3() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

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


def training_pairs_per_s(data: str, out: str, image_size: int, epochs: int) -> float:
    import fsspec

    from trainer.checkpoint import checkpoint_dir_name
    from trainer.config import OptimizerConfig, ScheduleConfig, TrainConfig
    from trainer.data import ShardPairs, SplitConfig
    from trainer.models import BackboneConfig
    from trainer.train import fit

    backbone = BackboneConfig(name="vit_tiny_patch16_224", image_size=image_size, overrides={"depth": 2, "embed_dim": 64, "num_heads": 2})
    config = TrainConfig(model="vitpain", backbone=backbone, fusion_heads=2, schedule=ScheduleConfig(epochs=epochs), batch_size=16,
                         optimizer=OptimizerConfig(lr=1e-3))
    result = fit(ShardPairs(data, SplitConfig(fractions=(0.9, 0.1, 0.0))), config, out, workers=2)
    if result.error is not None:
        raise result.error
    fs, root = fsspec.url_to_fs(out)
    rates = [json.loads(fs.cat(f"{root}/{checkpoint_dir_name(epoch)}/checkpoint.json"))["metrics"]["pairs_per_s"]
             for epoch in range(1, epochs)]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.epochs < 2 or args.repeats < 1:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up) and --repeats >= 1")

    import fsspec
    import ray

    server, endpoint = start_s3()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    local = str(work / "dataset")
    subprocess.run([sys.executable, "-m", "factory", "generate", "--identities", str(args.identities), "--out", local,
                    "--image-size", str(args.image_size), "--workers", "2", "--no-progress"], check=True, capture_output=True)
    s3 = fsspec.filesystem("s3")
    s3.mkdir("bench-train")
    s3.put(local + "/", "bench-train/dataset", recursive=True)
    remote = "s3://bench-train/dataset"
    size_mb = sum(p.stat().st_size for p in Path(local).rglob("*.tar")) / 1e6

    reader_pairs_per_s(local, args.image_size)  # warm-up: imports, first-use costs, page cache
    stream, reader = {local: [], remote: []}, {local: [], remote: []}
    for _ in range(args.repeats):
        for url in (local, remote):
            stream[url].append(stream_pairs_per_s(url))
            reader[url].append(reader_pairs_per_s(url, args.image_size))
    rows = [(f"shard stream only, no decoding, 1 process (best of {args.repeats})", max(stream[local]), max(stream[remote])),
            (f"reader: stream + decode + augment + batch, 1 process (best of {args.repeats})", max(reader[local]), max(reader[remote]))]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows.append((f"Ray Train fit, 2 workers (median of epochs 2–{args.epochs})",
                 training_pairs_per_s(local, str(work / "runs" / "local"), args.image_size, args.epochs),
                 training_pairs_per_s(remote, "s3://bench-train/runs/s3", args.image_size, args.epochs)))
    ray.shutdown()
    server.stop()

    cpu = platform.processor() or platform.machine()
    print(f"\nMachine: {os.cpu_count()} CPU cores ({cpu}), no GPU, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f} at the end (shared machine); dataset: "
          f"{args.identities} identities from `factory generate` at {args.image_size} px, {size_mb:.1f} MB of shards; "
          f"S3 = moto on 127.0.0.1; model: ViTPain on a 2-block ViT-Tiny (dim 64), batch 16, augmentation on.\n")
    print("| what | local folder (pairs/s) | S3 (pairs/s) | S3 / local |")
    print("|---|---:|---:|---:|")
    for what, local_rate, s3_rate in rows:
        print(f"| {what} | {local_rate:.1f} | {s3_rate:.1f} | {s3_rate / local_rate:.2f} |")


if __name__ == "__main__":
    main()
