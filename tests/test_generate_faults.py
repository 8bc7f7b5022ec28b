"""Faults and bad input for `factory generate`: bad values and destinations (clear errors, nothing written),
a driver killed mid-run (rerun resumes, committed shards untouched), the S3 server stopping mid-run (clear
failure, rerun after restart completes), and GPU placement with logical GPUs on a Ray instance of its own."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factory.cli import app
from factory.format.manifest import Manifest, load_manifest
from factory.format.storage import Storage, StorageError
from factory.qa.verify import verify_dataset
from factory.run.config import GenerateConfig
from factory.run.generate import GenerateError, generate
from factory.run.identity import RenderConfig

REPO = Path(__file__).resolve().parents[1]
SMALL_YAML = "render: {image_size: 64, texture_size: 128}\n"


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("flags, yaml_text, message", [
    (["--identities", "0"], "", "identities must be >= 1, got 0"),
    (["--identities", "-3"], "", "identities must be >= 1, got -3"),
    (["--identities", "2", "--identities-per-shard", "0"], "", "identities_per_shard must be >= 1"),
    (["--identities", "2", "--workers", "0"], "", "workers must be >= 1"),
    (["--identities", "2", "--gpus-per-worker", "-1"], "", "gpus_per_worker must be a number >= 0"),
    (["--identities", "2", "--image-size", "0"], "", "image_size"),
    (["--identities", "2"], "render: {texturer: oil-paint}\n", "unknown texturer 'oil-paint'"),
    (["--identities", "2"], "plan: {expressions: {pspi_weights: {AU43: 1}}}\n", "pspi_weights keys must be PSPI values.*AU43"),
    (["--identities", "2"], "idenitites: 5\n", "unknown config key.*idenitites"),
    (["--identities", "2"], "render: {image_sise: 64}\n", "unknown render key.*image_sise"),
    ([], "out: ./x\n", "--identities is required"),
    # Wrong types are refused by key and expected type, before Ray starts or anything is written (issue 14 item 3).
    (["--identities", "2"], "render: {jpeg_quality: 50.5}\n", r"^error: render\.jpeg_quality must be an integer \(or null\), got 50\.5$"),
    (["--identities", "2"], "plan: {view_yaws: abc}\n", r"^error: plan\.view_yaws must be a list, got 'abc'$"),
    (["--identities", "2"], "plan: {identity_modes: 2.5}\n", r"^error: plan\.identity_modes must be an integer, got 2\.5$"),
    (["--identities", "2"], "plan: {view_jitter_deg: '3'}\n", r"^error: plan\.view_jitter_deg must be a number, got '3'$"),
    (["--identities", "2"], "plan: {expressions: {pain_expressions: many}}\n", r"plan\.expressions\.pain_expressions must be an integer"),
    (["--identities", "2"], "plan: []\n", r"^error: plan must be a mapping of keys, got \[\]$"),
    (["--identities", "2"], "identities_per_shard: '4'\n", r"^error: identities_per_shard must be an integer, got '4'$"),
    (["--identities", "1000000000000"], "", r"^error: identities must be <= 10,000,000 \(identity ids have seven digits\)"),
])
def test_bad_values_are_clear_errors_and_write_nothing(tmp_path, flags, yaml_text, message):
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "out"
    result = run_cli("generate", "--out", str(out), "--config", str(config), *flags)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert re.search(message, result.output.strip(), re.MULTILINE) and len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_a_run_that_cannot_start_on_ray_writes_nothing(tmp_path, ray_local):
    """Ray's checks (here: more GPUs per worker than the cluster has) come before the first write."""
    out = tmp_path / "out"
    result = run_cli("generate", "--identities", "2", "--out", str(out), "--gpus-per-worker", "3")
    assert result.exit_code == 2 and "--gpus-per-worker 3 but the Ray cluster has 0 GPU(s)" in result.output, result.output
    assert not out.exists()


def test_a_dataset_whose_first_run_failed_at_once_takes_a_corrected_config(tmp_path):
    """A manifest that lists no shard holds nothing to protect: it does not refuse the corrected config."""
    from factory.format.shards import ShardPlan
    from factory.run.generate import read_dataset

    out = tmp_path / "ds"
    Storage(str(out)).write_bytes("manifest.json", Manifest("0.1.0", 0, {"render": {"jpeg_quality": 50.5}}, 10**6).to_json())
    corrected = GenerateConfig(identities=2, out=str(out), render=RenderConfig(image_size=64))
    assert read_dataset(Storage(str(out)), corrected, ShardPlan(2, 4)).pending == 1


def test_the_largest_dataset_the_format_holds_is_planned_lazily(tmp_path):
    """Ten million identities in shards of one: the driver's state is one byte per shard, and shards are made as
    the pool asks for them (listing them all, as before, took gigabytes)."""
    import tracemalloc
    from itertools import islice

    from factory.format.shards import ShardPlan, ShardTask
    from factory.run.generate import read_dataset

    config = GenerateConfig(identities=10**7, out=str(tmp_path / "ds"), identities_per_shard=1)
    tracemalloc.start()
    state = read_dataset(Storage(config.out), config, ShardPlan(10**7, 1))
    upcoming = list(islice(state.pending_tasks(ShardPlan(10**7, 1)), 3))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert state.pending == 10**7 and upcoming[-1] == ShardTask(2, 2, 1)
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB"
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("command", [["generate", "--identities", "1", "--out"], ["verify"], ["inspect"]])
def test_a_storage_option_of_the_wrong_type_is_one_line(s3, command):
    """botocore raises TypeError deep inside for `region_name=7`; every command reports it in one line (item 6)."""
    url = f"s3://{s3.bucket}/ds"
    result = run_cli(*command, url, "--storage-option", "client_kwargs.region_name=7")
    assert result.exit_code in (1, 2) and not isinstance(result.exception, TypeError), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.match(r"^(error|FAILED): cannot access s3://.*TypeError.*a storage option of the wrong type\? "
                                        r"given: client_kwargs\.endpoint_url, client_kwargs\.region_name\)$", lines[0]), result.output


def test_an_unwritable_destination_is_a_clear_error(tmp_path, s3):
    (tmp_path / "a-file").write_text("a file where a folder should be")
    result = run_cli("generate", "--identities", "1", "--out", str(tmp_path / "a-file" / "ds"))
    assert result.exit_code == 2 and re.search("cannot (access|write) .*a-file/ds/manifest.json", result.output), result.output

    result = run_cli("generate", "--identities", "1", "--out", "s3://no-such-bucket/ds",
                     "--storage-option", "config_kwargs.retries.max_attempts=1")
    assert result.exit_code == 2 and re.search("cannot (access|write) s3://no-such-bucket/ds/", result.output), result.output
    assert "testing" not in result.output  # the credentials are not shown


def test_a_killed_driver_is_resumed_by_running_the_same_command(tmp_path, ray_local):
    """SIGKILL the `factory generate` process after its first shard is committed; the same command finishes
    the dataset and leaves the committed shards as they were (same bytes, same file)."""
    out = tmp_path / "ds"
    (tmp_path / "config.yaml").write_text(SMALL_YAML)
    command = [sys.executable, "-m", "factory", "generate", "--identities", "4", "--identities-per-shard", "1",
               "--workers", "1", "--out", str(out), "--config", str(tmp_path / "config.yaml"), "--no-progress"]
    # The subprocess joins the test's Ray cluster through RAY_ADDRESS, as a driver on a cluster would.
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    manifest_path = out / "manifest.json"

    def committed_shards() -> list:
        """Read as every reader does: manifest.json and the run's commit log."""
        manifest = load_manifest(Storage(str(out)))
        return manifest.shards if manifest else []

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if committed_shards():
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver's process group: only what this test started
    driver.wait()
    committed = committed_shards()
    assert 1 <= len(committed) < 4, "the driver should have been killed mid-run"
    assert Manifest.from_json(manifest_path.read_bytes()).log is not None  # its commit log was never compacted
    before = {f.path: ((out / f.path).stat().st_mtime_ns, hashlib.sha256((out / f.path).read_bytes()).hexdigest())
              for s in committed for f in s.files.values()}  # every set's file

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"rendered {4 - len(committed)} identities" in rerun.stdout
    final = Manifest.from_json(manifest_path.read_bytes())
    assert [(s.first_index, s.count) for s in final.shards] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    for path, (mtime, sha) in before.items():
        set_name = path.split("/")[0]
        assert (out / path).stat().st_mtime_ns == mtime and final.shards[int(path[-8:-4])].file(set_name).sha256 == sha
    assert final.log is None and not (out / "manifest.log").exists()  # compacted
    assert not [p for p in out.rglob("*") if ".partial" in p.name]  # what the killed run left half-written is gone
    assert verify_dataset(str(out)).identities == 4


def test_two_drivers_on_one_dataset_one_writes_the_other_is_refused_or_waits(tmp_path, ray_local):
    """Two `factory generate` started together on one --out: exactly one runs, the other stops with one line naming
    it. A third, started with --wait while a fourth extends the dataset, waits for the lease and then finds its work
    done. The dataset ends complete, verified, with no partial file and its lease released."""
    out = tmp_path / "ds"
    (tmp_path / "config.yaml").write_text(SMALL_YAML)
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address, "PYTHONPATH": str(REPO)}

    def driver(identities: int, *flags: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "factory", "generate", "--identities", str(identities), "--identities-per-shard", "1",
                   "--workers", "1", "--out", str(out), "--config", str(tmp_path / "config.yaml"), "--no-progress", *flags]
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    together = [driver(3), driver(3)]
    results = [(d.wait(timeout=300), *d.communicate()) for d in together]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    (_, _, refused), = [r for r in results if r[0] == 2]
    errors = [line for line in refused.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and re.match(rf"error: {out} is being written by generate-[0-9a-f]{{8}} \(pid \d+ on ", errors[0]), refused

    extending = driver(5)
    lease_dir = out / "lease"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(not json.loads(p.read_text())["released"] for p in lease_dir.glob("*.json")):
        time.sleep(0.05)
    waiting = driver(5, "--wait")
    (extended, extended_err), (waited, waited_err) = extending.communicate(timeout=300), waiting.communicate(timeout=300)
    assert extending.returncode == 0 and "rendered 2 identities" in extended, extended_err
    assert waiting.returncode == 0 and "nothing to do" in waited, waited_err
    assert "waiting for the dataset's lease, held by generate-" in waited_err

    assert verify_dataset(str(out)).identities == 5
    assert not [p for p in out.rglob("*") if ".partial" in p.name]
    assert [json.loads(p.read_text())["released"] for p in lease_dir.glob("*.json")] == [True]


def test_the_s3_server_stopping_mid_run_fails_clearly_and_a_rerun_completes(s3, ray_local):
    from moto.server import ThreadedMotoServer

    url = f"s3://{s3.bucket}/ds"
    options = {"client_kwargs": {"endpoint_url": s3.url}, "config_kwargs": {"retries": {"max_attempts": 1}}}
    config = GenerateConfig(identities=3, out=url, identities_per_shard=1, workers=1, storage_options=options,
                            render=RenderConfig(image_size=64, texture_size=128))

    def stop_server(record) -> None:
        s3.stop()

    with pytest.raises((GenerateError, StorageError), match=f"cannot write {url}/"):
        generate(config, progress=False, on_shard_committed=stop_server)

    host, port = s3.url.removeprefix("http://").split(":")
    restarted = ThreadedMotoServer(ip_address=host, port=int(port), verbose=False)  # moto's store outlives the server
    restarted.start()
    try:
        summary = generate(config, progress=False)
        assert summary.rendered_shards == 2 and summary.identities == 3  # the committed first shard was kept
        assert verify_dataset(url, options).identities == 3
    finally:
        restarted.stop()


GPU_PLACEMENT_SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from factory.run.config import GenerateConfig
    from factory.run.generate import GenerateError, WorkerPool, generate
    from factory.run.identity import RenderConfig

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    config = GenerateConfig(identities=2, out=sys.argv[1], identities_per_shard=1, render=RenderConfig(image_size=32, texture_size=64))
    pool = WorkerPool(config, size=2, gpus_per_worker=1)
    placements = ray.get([actor.placement.remote() for actor in pool.actors])
    pool.close()
    summary = generate(config, progress=False)  # gpus_per_worker left to its default
    try:
        generate(GenerateConfig(identities=2, out=sys.argv[1] + "-x", gpus_per_worker=3), progress=False)
        too_many = None
    except GenerateError as error:
        too_many = str(error)
    print("RESULT " + json.dumps({"placements": placements, "workers": summary.workers,
                                  "gpus_per_worker": summary.gpus_per_worker, "too_many": too_many}))
""")


def test_gpu_workers_each_hold_one_logical_gpu_and_see_it_in_cuda_visible_devices(tmp_path):
    """Runs in a fresh Python process: Ray with two logical GPUs must not meet the session's CPU-only cluster."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    run = subprocess.run([sys.executable, "-c", GPU_PLACEMENT_SCRIPT, str(tmp_path / "ds")], cwd=REPO,
                         env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    placements = result["placements"]
    assert sorted(p["gpu_ids"][0] for p in placements) == ["0", "1"]
    for placement in placements:
        assert len(placement["gpu_ids"]) == 1 and placement["cuda_visible_devices"] == placement["gpu_ids"][0]
    assert (result["workers"], result["gpus_per_worker"]) == (2, 1.0)  # default: one GPU per worker when GPUs exist
    assert "--gpus-per-worker 3" in result["too_many"] and "2 GPU" in result["too_many"]
