"""Where a dataset lives: an fsspec URL plus storage options, and the write-then-commit rule.

Every file of a dataset is written under a temporary name (`<name>.partial`) and moved to its final name only
once it is complete: locally that move is an atomic `rename`; on S3 it is a server-side copy of the finished
object (then the `.partial` object is deleted). A reader therefore never sees a half-written shard or manifest
under its real name, whatever happens to the writer.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import fsspec
import yaml

from factory.errors import FactoryError

PARTIAL_SUFFIX = ".partial"
# Option names that may hold a credential. Their values are never printed nor stored in a manifest.
SECRET_MARKERS = ("secret", "token", "password", "key", "credential", "session")


class StorageError(FactoryError, RuntimeError):
    """A dataset location cannot be read or written; the message names the URL and the cause."""


def store_error_types() -> tuple[type[BaseException], ...]:
    """What fsspec backends raise when a store fails: OSError, and botocore's own errors for s3fs."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


STORE_ERRORS = store_error_types()


def parse_storage_options(pairs: list[str]) -> dict:
    """`["key=value", "client_kwargs.endpoint_url=http://…"]` → nested options for fsspec.

    Dotted names nest (`client_kwargs.endpoint_url`); `endpoint_url` alone is shorthand for
    `client_kwargs.endpoint_url`, which is where s3fs expects it. Values are read as YAML scalars, so
    `anon=true` gives a bool and `default_block_size=5242880` an int.
    """
    options: dict = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--storage-option wants key=value, got {pair.split('=')[0]!r}…")
        if name == "endpoint_url":
            name = "client_kwargs.endpoint_url"
        value = yaml.safe_load(raw) if raw else ""
        *parents, leaf = name.split(".")
        target = options
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ValueError(f"storage option {name!r} nests under a plain value")
        target[leaf] = value
    return options


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def public_storage_options(options: Mapping) -> dict:
    """The options with every credential-like entry left out: what may be shown or stored in a manifest."""
    public = {}
    for name, value in options.items():
        if is_secret(name):
            continue
        public[name] = public_storage_options(value) if isinstance(value, Mapping) else value
    return public


def check_relative(relative: str) -> str:
    """A dataset-relative path, refused if it could step out of the dataset root."""
    normal = posixpath.normpath(relative)
    if not relative or relative.startswith(("/", "\\")) or normal.startswith("..") or "\\" in relative or ":" in relative:
        raise StorageError(f"refusing path {relative!r}: dataset paths must stay inside the dataset folder")
    return normal


class HashingWriter:
    """A write-only file object that forwards to another and keeps the byte count and sha256 of what passed."""

    def __init__(self, target, where: str) -> None:
        self.target = target
        self.where = where
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, data) -> int:
        try:
            self.target.write(data)  # remote stores upload a part whenever a block fills
        except STORE_ERRORS as error:
            raise StorageError(f"cannot write {self.where}: {describe_error(error)}") from error
        self._digest.update(data)
        self.size += len(data)
        return len(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class Storage:
    """One dataset root (`./out`, `file:///data/x`, `s3://bucket/prefix`) and the files below it."""

    def __init__(self, url: str, options: Mapping | None = None) -> None:
        self.url = str(url)
        self.options = dict(options or {})
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.options)
        except (ImportError, ValueError, TypeError) as error:
            raise StorageError(f"cannot open {self.url}: {error}") from error
        self.root = self.root.rstrip("/") or "/"
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, relative: str) -> str:
        return f"{self.root}/{check_relative(relative)}"

    def describe(self, relative: str) -> str:
        return f"{self.url.rstrip('/')}/{relative}"

    def exists(self, relative: str) -> bool:
        return self._call(relative, self.fs.exists, self.path(relative))

    def read_bytes(self, relative: str) -> bytes:
        return self._call(relative, self.fs.cat_file, self.path(relative))

    def open_read(self, relative: str):
        return self._call(relative, self.fs.open, self.path(relative), "rb")

    def list(self, relative: str) -> list[str]:
        """Names of the files directly in a dataset folder ([] when it does not exist)."""
        path = self.path(relative)
        if not self.exists(relative):
            return []
        return sorted(posixpath.basename(p) for p in self._call(relative, self.fs.ls, path, detail=False))

    def remove(self, relative: str) -> None:
        if self.exists(relative):
            self._call(relative, self.fs.rm, self.path(relative), recursive=True)

    @contextmanager
    def committing(self, relative: str) -> Iterator[HashingWriter]:
        """Write `relative` through the yielded file object; it appears under its name only if the block succeeds.

        The yielded writer's `size` and `sha256` describe the bytes written, for the manifest. Errors of the
        store become StorageError; an error of the caller's own (a renderer failing) passes through unchanged.
        """
        final = self.path(relative)
        partial = final + PARTIAL_SUFFIX
        where = self.describe(relative)
        try:
            if self.is_local:
                self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            handle = self.fs.open(partial, "wb")
        except STORE_ERRORS as error:
            raise StorageError(f"cannot write {where}: {describe_error(error)}") from error
        writer = HashingWriter(handle, where)
        try:
            yield writer
        except BaseException:
            self._abandon(handle, partial)
            raise
        try:
            handle.close()  # remote stores upload the last part here
            self.fs.mv(partial, final)
        except STORE_ERRORS as error:
            self._abandon(handle, partial)
            raise StorageError(f"cannot write {where}: {describe_error(error)}") from error

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a whole small file (the manifest) atomically."""
        with self.committing(relative) as handle:
            handle.write(data)

    def _abandon(self, handle, partial: str) -> None:
        """Drop a write that will not be committed; the store may be unreachable, so this never raises."""
        for cleanup in (handle.close, lambda: self.fs.rm(partial) if self.fs.exists(partial) else None):
            try:
                cleanup()
            except Exception:  # the original error is the one worth reporting
                pass

    def _call(self, relative: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except FileNotFoundError:
            raise
        except STORE_ERRORS as error:
            raise StorageError(f"cannot access {self.describe(relative)}: {describe_error(error)}") from error


def describe_error(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text


def default_storage_options(url: str) -> dict:
    """Options taken from the environment when the user gives none: an S3 endpoint from AWS_ENDPOINT_URL(_S3).

    botocore reads these variables itself in recent versions; passing the endpoint explicitly makes the same
    run work with older botocore releases and with pyarrow readers, which do not read them.
    """
    if not str(url).startswith(("s3://", "s3a://")):
        return {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def resolve_storage_options(url: str, *given: Mapping) -> dict:
    """The fsspec options every command uses for `url`: the environment's defaults, then each mapping of `given`
    (a config file's, then the flags') merged over them, nested mappings merged key by key.

    So with AWS_ENDPOINT_URL set, `--storage-option client_kwargs.region_name=eu-west-1` adds the region and keeps
    the endpoint, in `generate` as in `verify`, `inspect`, `preview` and the trainer."""
    options = default_storage_options(url)
    for layer in given:
        options = merge_nested(options, layer)
    return options


def merge_nested(base: Mapping, override: Mapping) -> dict:
    """Nested dict merge: values of `override` win, nested mappings merge."""
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = merge_nested(merged[name], value)
        else:
            merged[name] = value
    return merged
