"""Storage credentials for the worker actors, handed over by a path that no Ray component records.

Ray writes an actor's runtime environment, its env_vars included, in plain text to its own logs
(session_*/logs/runtime_env_agent.log, readable by every local user), and keeps actor arguments in its task
specifications. So the driver passes neither the AWS credential variables nor the credential-like storage options
(key, secret, token, …) that way: it writes them to a file that only its user can read (mode 0600, in a fresh
0700 folder of the system's temp folder, outside Ray's), gives the actors the file's path, and removes the file
when the run ends, on SIGINT and SIGTERM too. Each actor reads the file when it starts.

After a SIGKILL of the driver the file stays, readable by its user only, until the next run on that machine
removes it (the folder's name carries the driver's pid: folders of drivers that are gone are removed). Actors
on other nodes cannot read it: they use their node's own credential chain (an instance profile, IRSA, or the
variables that cluster.yaml and the KubeRay manifests give the containers; deploy/README.md), as a cluster should.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

from factory.format.storage import secret_storage_options

SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Where the store is and which profile to read, and where workers keep the FLAME correspondence
# (factory/face/flame/transfer.py): not secret, so these go to the actors in their runtime environment and
# workers on every node reach the same endpoint and cache.
PUBLIC_ENV = ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "PAINFACTORY_CACHE")
FILE_NAME = "credentials.json"
PREFIX = "painfactory-credentials-"  # + the driver's pid: painfactory-credentials-4242-x1y2z3/credentials.json


def public_env() -> dict[str, str]:
    """The non-secret storage variables of the driver's environment, for the actors' runtime environment."""
    return {name: os.environ[name] for name in PUBLIC_ENV if name in os.environ}


@contextmanager
def credentials_file(storage_options: Mapping) -> Iterator[str | None]:
    """Write the driver's storage secrets to a private file for the actors; yields its path (None when there are
    no secrets to hand over) and removes it on the way out."""
    secrets = {"env": {name: os.environ[name] for name in SECRET_ENV if name in os.environ},
               "storage_options": secret_storage_options(storage_options)}
    if not secrets["env"] and not secrets["storage_options"]:
        yield None
        return
    remove_stale_folders()
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")  # mode 0700
    try:
        path = os.path.join(folder, FILE_NAME)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            json.dump(secrets, handle)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_folders() -> None:
    """Remove the credentials folders of this user's drivers that were killed before they could (their pid is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and folder.owner() == getpass.getuser() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def read_credentials(path: str | None) -> tuple[dict[str, str], dict]:
    """(environment variables, secret storage options) from the driver's file; ({}, {}) where there is none on this
    node, whose own credential chain then applies."""
    if path is None or not os.path.exists(path):
        return {}, {}
    with open(path) as handle:
        secrets = json.load(handle)
    return dict(secrets["env"]), dict(secrets["storage_options"])
