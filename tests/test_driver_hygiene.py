"""What a `factory generate` driver leaves behind, each in a driver process of its own with a local Ray cluster of
its own (in a temp folder of its own): no credential anywhere in Ray's files after a run against S3 (moto), and on
SIGTERM a clean stop: one line, no process of its Ray cluster left, the lease released, the run resumable."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from factory.format.manifest import load_manifest
from factory.format.storage import Storage
from factory.qa.verify import verify_dataset

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = "render: {image_size: 32, texture_size: 64}\n"


@pytest.fixture
def ray_temp():
    """A temp folder for one driver's own Ray cluster (RAY_TMPDIR), short because Ray's socket paths must stay
    under 108 bytes."""
    folder = tempfile.mkdtemp(prefix="pf-ray-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def driver_env(ray_temp: str, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}  # a local cluster of its own
    return {**env, "RAY_TMPDIR": ray_temp, "PYTHONPATH": str(REPO), **extra}


def generate_command(out: str, config: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "factory", "generate", "--out", out, "--config", str(config), "--workers", "1",
            "--no-progress", *flags]


def test_credentials_never_reach_rays_files(tmp_path, s3, ray_temp):
    """Secrets in the AWS variables and in --storage-option reach the workers (the run writes to S3), yet appear in
    no file of Ray's temp folder (its logs included), and the driver's private credentials file is gone after."""
    secrets = {"AWS_ACCESS_KEY_ID": f"AKIA{uuid.uuid4().hex[:16].upper()}", "AWS_SECRET_ACCESS_KEY": f"env-secret-{uuid.uuid4().hex}",
               "AWS_SESSION_TOKEN": f"env-token-{uuid.uuid4().hex}"}
    option_secret = f"option-secret-{uuid.uuid4().hex}"
    (tmp_path / "config.yaml").write_text(TINY_YAML)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    url = f"s3://{s3.bucket}/ds"
    run = subprocess.run(generate_command(url, tmp_path / "config.yaml", "--identities", "1",
                                          "--storage-option", f"client_kwargs.aws_session_token={option_secret}"),
                         cwd=REPO, env=driver_env(ray_temp, TMPDIR=str(private_tmp), **secrets), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert verify_dataset(url, {"client_kwargs": {"endpoint_url": s3.url}}).identities == 1

    ray_files = [path for path in Path(ray_temp).rglob("*") if path.is_file() and not path.is_symlink()]
    assert any(path.name == "runtime_env_agent.log" for path in ray_files)  # Ray's logs were written, and are searched
    for value in [*secrets.values(), option_secret]:
        leaks = [str(path) for path in ray_files if value.encode() in path.read_bytes()]
        assert not leaks, f"a secret is written in {leaks}"
        assert value not in run.stdout + run.stderr
    assert list(private_tmp.iterdir()) == []  # the credentials file and its folder were removed


def test_the_credentials_file_is_private_removed_after_and_a_killed_drivers_is_swept(tmp_path, monkeypatch):
    from factory.run.credentials import FILE_NAME, PREFIX, SECRET_ENV, credentials_file, read_credentials

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = tmp_path / f"{PREFIX}{gone.stdout.strip()}-x1y2z3"  # left by a driver killed with SIGKILL
    stale.mkdir()
    (stale / FILE_NAME).write_text("{}")
    with credentials_file({"secret": "option-secret", "client_kwargs": {"region_name": "eu-west-1"}}) as path:
        assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(Path(path).parent).st_mode & 0o777 == 0o700
        assert read_credentials(path) == ({"AWS_SECRET_ACCESS_KEY": "env-secret"}, {"secret": "option-secret"})
        assert not stale.exists()
    assert not Path(path).parent.exists()
    assert read_credentials(None) == read_credentials(str(tmp_path / "on-another-node.json")) == ({}, {})
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with credentials_file({"client_kwargs": {"region_name": "eu-west-1"}}) as path:
        assert path is None  # nothing secret, no file


def started(driver: subprocess.Popen, moment: str, out: Path) -> bool:
    """Whether the driver reached `moment`: its raylet is up ("starting"), or a shard is committed ("rendering")."""
    if moment == "starting":
        return any(p.name() == "raylet" for p in psutil.Process(driver.pid).children(recursive=True))
    return out.exists() and bool(load_manifest(Storage(str(out))).shards)


@pytest.mark.parametrize("moment", ["starting", "rendering"])
def test_sigterm_stops_the_driver_and_its_local_ray_cluster_cleanly(tmp_path, ray_temp, moment):
    """SIGTERM while the local Ray cluster starts, or while shards are rendered: one line, exit status 2, and no
    process of that cluster left (Ray's dashboard and runtime-env agents used to stay for a minute)."""
    (tmp_path / "config.yaml").write_text(TINY_YAML)
    out = tmp_path / "ds"
    command = generate_command(str(out), tmp_path / "config.yaml", "--identities", "6", "--identities-per-shard", "1")
    driver = subprocess.Popen(command, cwd=REPO, env=driver_env(ray_temp), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None and not started(driver, moment, out):
            time.sleep(0.05)
        assert driver.poll() is None, driver.communicate()
        family = psutil.Process(driver.pid).children(recursive=True)  # its Ray cluster: GCS, raylet, agents, workers
        driver.send_signal(signal.SIGTERM)
        _, stderr = driver.communicate(timeout=60)
        assert driver.returncode == 2, stderr
        assert stderr.strip().splitlines()[-1] == ("error: interrupted by SIGTERM; committed shards are kept, "
                                                   "run the same command again to resume")
        assert "Traceback" not in stderr
        gone_by = time.monotonic() + 10
        while time.monotonic() < gone_by and any(p.is_running() for p in family):
            time.sleep(0.2)
        left = [f"{p.pid} {p.name()}" for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"Ray processes left running after SIGTERM: {left}"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver's process group: only what this test started
            driver.wait()
        for process in psutil.Process().children(recursive=True):  # nothing of this test's may outlive it
            if process.pid != os.getpid() and process.is_running() and ray_temp in " ".join(process.cmdline()):
                process.kill()
    if moment == "starting":
        assert not out.exists()  # Ray starts before the first write
        return
    [lease] = (out / "lease").glob("*.json")
    assert json.loads(lease.read_text())["released"] is True
    committed = load_manifest(Storage(str(out))).shards
    assert 1 <= len(committed) < 6 and not [p for p in out.rglob("*") if ".partial" in p.name]
