"""Shared fixtures: a real S3 endpoint on loopback (moto's server) and a real local Ray cluster."""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass

import pytest


@dataclass
class S3Endpoint:
    """A moto S3 server on 127.0.0.1 with one empty bucket; `storage_options` is what s3fs needs."""

    url: str
    bucket: str
    server: object

    @property
    def storage_options(self) -> dict:
        return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": self.url}}

    def filesystem(self):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        return s3fs.S3FileSystem(**self.storage_options)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def s3(monkeypatch) -> S3Endpoint:
    """A fresh moto server per test (port chosen by the OS), with the standard AWS variables pointing at it,
    as a user would set them for any S3-compatible store."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url, "AWS_ENDPOINT_URL_S3": url,
    }.items():
        monkeypatch.setenv(name, value)
    # moto keeps its buckets in process-wide state that outlives a server: start every test from an empty store.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    endpoint = S3Endpoint(url=url, bucket="painfactory-test", server=server)
    endpoint.filesystem().mkdir(endpoint.bucket)
    yield endpoint
    try:
        server.stop()
    except Exception:  # already stopped by a test that kills the server on purpose
        pass


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for the whole session (starting Ray costs seconds): 2 CPUs, no dashboard."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def flame_cache(tmp_path_factory):
    """A session-wide PAINFACTORY_CACHE: each synthetic FLAME file's correspondence is computed once per test run (and
    never lands in the user's ~/.cache). Ray workers see it through generate's forwarded environment."""
    path = tmp_path_factory.mktemp("painfactory-cache")
    before = os.environ.get("PAINFACTORY_CACHE")
    os.environ["PAINFACTORY_CACHE"] = str(path)
    yield path
    if before is None:
        del os.environ["PAINFACTORY_CACHE"]
    else:
        os.environ["PAINFACTORY_CACHE"] = before


@pytest.fixture(scope="session")
def flame_2020(tmp_path_factory, flame_cache):
    """A synthetic FLAME 2020-style generic_model.pkl (chumpy objects, a scipy sparse J_regressor): see flame_files.py."""
    from tests.flame_files import write_flame

    return write_flame(tmp_path_factory.mktemp("flame") / "generic_model.pkl", "2020")
