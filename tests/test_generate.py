"""`factory generate` end to end on a real local Ray cluster: local folder and S3 (moto on loopback), readers,
determinism across worker counts, resume and growth, a refused config, and a worker actor killed mid-run."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from factory.format.manifest import Manifest
from factory.qa.verify import verify_dataset
from factory.run.config import GenerateConfig
from factory.run.generate import GenerateError, generate
from factory.run.identity import RenderConfig

SMALL = RenderConfig(image_size=64, texture_size=128)
IMAGES_PER_IDENTITY = 33  # 11 expressions × 3 views, the default plan


def small_config(out, identities: int = 4, **overrides) -> GenerateConfig:
    return GenerateConfig(**{"identities": identities, "out": str(out), "seed": 0, "identities_per_shard": 2, "workers": 2,
                             "render": SMALL, **overrides})


def test_a_config_file_sets_every_option_and_flags_win(tmp_path):
    from factory.run.config import load_generate_config

    (tmp_path / "c.yaml").write_text(
        "identities: 10\nout: s3://bucket/x\nseed: 0\nworkers: 3\ngpus_per_worker: 1\nidentities_per_shard: 5\noverwrite: true\n"
        "storage_options: {key: AKIA, client_kwargs: {endpoint_url: 'http://127.0.0.1:9'}}\n"
        "render: {image_size: 96, texture_size: 128}\nplan: {view_yaws: [0, 30]}\n")
    config = load_generate_config(tmp_path / "c.yaml", identities=12, image_size=64, storage_options={"client_kwargs": {"region_name": "eu"}})
    assert (config.identities, config.out, config.seed, config.workers, config.gpus_per_worker) == (12, "s3://bucket/x", 0, 3, 1)
    assert (config.identities_per_shard, config.overwrite, config.render.image_size, config.plan.view_yaws) == (5, True, 64, (0, 30))
    assert config.storage_options == {"key": "AKIA", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu"}}
    assert "AKIA" not in json.dumps(config.to_dict())  # credentials never reach the manifest


def read_manifest(root: Path) -> Manifest:
    return Manifest.from_json((root / "manifest.json").read_bytes())


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory, ray_local) -> Path:
    """4 identities, 2 shards, rendered by 2 workers: shared (read-only) by the tests that only read it."""
    out = tmp_path_factory.mktemp("local") / "ds"
    summary = generate(small_config(out), progress=False)
    assert (summary.rendered_identities, summary.rendered_shards, summary.workers) == (4, 2, 2)
    assert summary.images >= 4 * IMAGES_PER_IDENTITY
    return out


def test_local_dataset_has_manifest_and_is_read_by_webdataset_ray_and_tar(local_dataset):
    import ray.data
    import webdataset

    manifest = read_manifest(local_dataset)
    assert manifest.seed == 0 and manifest.config["seed"] == 0  # seed 0 is recorded as 0, not as "no seed"
    assert [(s.path, s.first_index, s.count) for s in manifest.shards] == [("images/shard-000000.tar", 0, 2), ("images/shard-000001.tar", 2, 2)]
    assert manifest.sets == ("images", "layers", "assets")
    for name in manifest.sets:  # the sets side by side: the same shard files in each set's folder
        assert sorted(p.name for p in (local_dataset / name).iterdir()) == ["shard-000000.tar", "shard-000001.tar"]
        assert [s.file(name).path for s in manifest.shards] == [f"{name}/shard-000000.tar", f"{name}/shard-000001.tar"]

    paths = [str(local_dataset / s.path) for s in manifest.shards]
    samples = list(webdataset.WebDataset(paths, shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["id-0000000", "id-0000001", "id-0000002", "id-0000003"]
    meta = json.loads(samples[0]["meta.json"])
    assert meta["seed"] == 0 and meta["index"] == 0 and meta["image_size"] == 64
    assert "neutral.v0.jpg" in samples[0] and "pain09.v2.jpg" in samples[0]

    rows = ray.data.read_webdataset(str(local_dataset / "images")).take_all()  # one set: its folder
    assert sorted(row["__key__"] for row in rows) == [s["__key__"] for s in samples]
    assert not [name for name in rows[0] if name.endswith(("depth.png", "seg.png", "glb"))]
    assets = next(iter(webdataset.WebDataset([str(local_dataset / manifest.shards[0].file("assets").path)], shardshuffle=False)))
    assert {name for name in assets if not name.startswith("__")} == {"mesh.glb"}  # the texture is inside it

    listing = subprocess.run(["tar", "tf", paths[1]], capture_output=True, text=True, check=True).stdout.split()
    assert listing[0].startswith("id-0000002.") and "id-0000002.meta.json" in listing and "id-0000003.neutral.v0.jpg" in listing

    assert verify_dataset(str(local_dataset)).identities == 4


def test_readers_see_a_run_in_progress_as_they_see_the_finished_dataset(local_dataset, tmp_path):
    """verify, inspect, preview and the trainer's reader all read through load_manifest: a dataset whose last shard
    is only in its commit log (a run still going, or stopped) reads exactly as its compacted copy."""
    import dataclasses
    import shutil

    from factory.format.dataset import open_dataset
    from factory.format.manifest import start_log
    from factory.format.storage import Storage
    from factory.qa.preview import contact_sheet, dataset_samples
    from factory.qa.summary import summarize_dataset
    from trainer.data import ShardPairs

    in_progress = tmp_path / "in-progress"
    shutil.copytree(local_dataset, in_progress)
    manifest = read_manifest(in_progress)
    last = manifest.shards.pop()
    start_log(Storage(str(in_progress)), manifest, run="generate-00000000").append(last)
    assert len(read_manifest(in_progress).shards) == 1 and (in_progress / "manifest.log/generate-00000000/00000000.jsonl").exists()

    finished, running = str(local_dataset), str(in_progress)
    assert dataclasses.replace(verify_dataset(running), url=finished) == verify_dataset(finished)
    assert dataclasses.replace(summarize_dataset(running), url=finished) == summarize_dataset(finished)
    sheets = [contact_sheet(dataset_samples(open_dataset(url)), thumb=32).tobytes() for url in (finished, running)]
    assert sheets[0] == sheets[1]
    assert [p.key for p in ShardPairs(running).pairs("train")] == [p.key for p in ShardPairs(finished).pairs("train")]


def test_hugging_face_datasets_reads_the_shards(local_dataset, tmp_path, monkeypatch):
    """The Hugging Face `datasets` "webdataset" builder, offline: one row per identity, images decoded, meta parsed."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    rows = datasets.load_dataset("webdataset", data_files={"train": str(local_dataset / "images/*.tar")}, split="train",
                                 cache_dir=str(tmp_path / "hf"))
    assert rows["__key__"] == ["id-0000000", "id-0000001", "id-0000002", "id-0000003"]
    first = rows[0]
    assert first["meta.json"]["id"] == "id-0000000" and first["pain03.v1.jpg"].size == (64, 64)
    assert [e["pspi"] for e in first["meta.json"]["expressions"]][0] == 0


def test_same_config_and_seed_give_identical_shards_whatever_the_worker_count(local_dataset, tmp_path):
    generate(small_config(tmp_path / "one-worker", workers=1), progress=False)
    two_workers, one_worker = read_manifest(local_dataset), read_manifest(tmp_path / "one-worker")
    assert [s.files for s in one_worker.shards] == [s.files for s in two_workers.shards]
    for shard in two_workers.shards:
        for entry in shard.files.values():  # every set: RGB, depth, segmentation, the GLB
            assert (tmp_path / "one-worker" / entry.path).read_bytes() == (local_dataset / entry.path).read_bytes()


def test_rerun_resumes_growth_extends_and_a_different_config_is_refused(tmp_path, ray_local):
    out = tmp_path / "ds"
    first = generate(small_config(out, identities=3), progress=False)
    assert first.rendered_shards == 2
    shard0 = out / "images/shard-000000.tar"
    stamp = shard0.stat().st_mtime_ns

    again = generate(small_config(out, identities=3), progress=False)
    assert again.rendered_shards == 0 and "nothing to do" in again.text()

    grown = generate(small_config(out, identities=4), progress=False)
    assert grown.rendered_shards == 1 and grown.rendered_identities == 2  # the short last shard is redone, full
    assert shard0.stat().st_mtime_ns == stamp
    assert [(s.first_index, s.count) for s in read_manifest(out).shards] == [(0, 2), (2, 2)]
    verify_dataset(str(out))

    before = (out / "manifest.json").read_bytes()
    with pytest.raises(GenerateError, match=r"render\.image_size.*differ"):
        generate(small_config(out, render=RenderConfig(image_size=32, texture_size=128)), progress=False)
    with pytest.raises(GenerateError, match="at least as many"):
        generate(small_config(out, identities=2), progress=False)
    assert (out / "manifest.json").read_bytes() == before  # a refused run changes nothing

    older = read_manifest(out)
    older.package_version = "0.0.1"
    (out / "manifest.json").write_bytes(older.to_json())
    with pytest.raises(GenerateError, match="made by painfactory 0.0.1"):
        generate(small_config(out, identities=4), progress=False)

    replaced = generate(small_config(out, identities=1, seed=5, overwrite=True), progress=False)
    assert replaced.rendered_identities == 1
    assert [p.name for p in (out / "images").iterdir()] == ["shard-000000.tar"]
    assert read_manifest(out).seed == 5


def test_killed_worker_actors_have_their_shards_redone_once(tmp_path, ray_local):
    import ray

    from factory.run.generate import ACTOR_NAMESPACE

    killed = []

    def kill_the_workers(record) -> None:
        """After the first commit, kill every live worker actor, the ones rendering the next shards included."""
        if killed:
            return
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor["namespace"] == ACTOR_NAMESPACE:
                try:
                    ray.kill(ray.get_actor(actor["name"], namespace=ACTOR_NAMESPACE))
                except ValueError:  # an actor of an earlier run, already gone
                    continue
                killed.append(actor["name"])

    out = tmp_path / "ds"
    summary = generate(small_config(out, identities=4, identities_per_shard=1), progress=False, on_shard_committed=kill_the_workers)
    assert killed and summary.lost_actors >= 1
    assert [(s.first_index, s.count) for s in read_manifest(out).shards] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert summary.rendered_shards == 4  # each shard committed exactly once, the lost ones after a redo
    assert verify_dataset(str(out)).identities == 4


def test_s3_dataset_on_moto_is_read_by_webdataset_and_ray(s3, ray_local):
    import pyarrow.fs
    import ray.data
    import webdataset

    from factory.format.storage import default_storage_options

    url = f"s3://{s3.bucket}/run1"
    summary = generate(small_config(url, storage_options=default_storage_options(url)), progress=False)
    assert summary.rendered_identities == 4
    fs = s3.filesystem()
    manifest = Manifest.from_json(fs.cat_file(f"{s3.bucket}/run1/manifest.json"))
    assert [s.count for s in manifest.shards] == [2, 2]
    assert fs.ls(f"{s3.bucket}/run1/images", detail=False) == [f"{s3.bucket}/run1/{s.path}" for s in manifest.shards]

    keys = []  # webdataset has no s3:// opener of its own: hand its tar reader an fsspec stream
    for shard in manifest.shards:
        with fs.open(f"{s3.bucket}/run1/{shard.path}", "rb") as handle:
            streams = [{"url": shard.path, "stream": handle}]
            keys += [s["__key__"] for s in webdataset.tariterators.group_by_keys(webdataset.tariterators.tar_file_expander(streams))]
    assert keys == ["id-0000000", "id-0000001", "id-0000002", "id-0000003"]

    arrow_fs = pyarrow.fs.S3FileSystem(endpoint_override=s3.url, scheme="http", access_key="testing", secret_key="testing", region="us-east-1")
    rows = ray.data.read_webdataset(f"s3://{s3.bucket}/run1/images", filesystem=arrow_fs).take_all()
    assert sorted(row["__key__"] for row in rows) == keys
    assert verify_dataset(url, default_storage_options(url)).shards == 2
    with tarfile.open(fileobj=io.BytesIO(fs.cat_file(f"{s3.bucket}/run1/images/shard-000000.tar"))) as tar:
        assert "id-0000000.meta.json" in tar.getnames() and tar.getnames()[-1].startswith("id-0000001.")
