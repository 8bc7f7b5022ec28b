"""Where a dataset lives: an fsspec URL plus storage options, and the write-then-commit rule.

Every shard is written under a temporary name that carries its writer's identity,
`.partial/<writer>/<name>.partial`, and moved to its final name only once it is complete: locally that move is an
atomic `rename`; on S3 it is a server-side copy of the finished object (then the partial object is deleted). A reader
therefore never sees a half-written shard under its real name, whatever happens to the writer, and no two writers
ever share a partial file. Small files (the manifest, commit-log segments, the lease) are replaced whole: by a
rename locally, by a single PUT on object stores (atomic there). `create_exclusive` creates a file only if it does
not exist yet (a hard link locally, `If-None-Match: *` on S3): what the dataset lease is built on.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import fsspec
import yaml

from factory.errors import FactoryError, brief

PARTIAL_DIR = ".partial"  # .partial/<writer>/<relative path>.partial: files being written, not yet committed
PARTIAL_SUFFIX = ".partial"
# Stores where one PUT replaces an object atomically, so small files need no partial-and-move.
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "abfs", "az", "memory")
# Option names that may hold a credential. Their values are never printed nor stored in a manifest.
SECRET_MARKERS = ("secret", "token", "password", "key", "credential", "session")


class StorageError(FactoryError, RuntimeError):
    """A dataset location cannot be read or written; the message names the URL and the cause."""


def store_error_types() -> tuple[type[BaseException], ...]:
    """What fsspec backends raise when a store fails: OSError, botocore's own errors for s3fs, and TypeError or
    ValueError, which botocore and fsspec raise at the first request for a storage option of the wrong type
    (`client_kwargs.region_name=7`) or a malformed bucket name."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return (OSError, TypeError, ValueError)
    return (OSError, BotoCoreError, ClientError, TypeError, ValueError)


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


def secret_storage_options(options: Mapping) -> dict:
    """The credential-like entries of the options, nested as given: what public_storage_options leaves out."""
    secret = {}
    for name, value in options.items():
        if is_secret(name):
            secret[name] = value
        elif isinstance(value, Mapping) and (nested := secret_storage_options(value)):
            secret[name] = nested
    return secret


def check_relative(relative: str) -> str:
    """A dataset-relative path, refused if it could step out of the dataset root."""
    normal = posixpath.normpath(relative)
    if not relative or relative.startswith(("/", "\\")) or normal.startswith("..") or "\\" in relative or ":" in relative:
        raise StorageError(f"refusing path {brief(relative)}: dataset paths must stay inside the dataset folder")
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


class HashingReader:
    """A file open for reading that counts and hashes (sha256) what is read through it, and stops at `limit` bytes
    (reads past it return nothing; `size` then shows `limit`): a file larger than expected costs no more than
    `limit` to read. A failing store becomes a StorageError naming the file."""

    def __init__(self, handle, where: str, limit: int) -> None:
        self.handle, self.where, self.limit = handle, where, limit
        self.size = 0
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        left = self.limit - self.size
        try:
            data = self.handle.read(left if size < 0 else min(size, left)) if left > 0 else b""
        except STORE_ERRORS as error:
            raise StorageError(f"cannot read {self.where}: {describe_error(error)}") from error
        self.size += len(data)
        self._digest.update(data)
        return data

    def read_to_end(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def new_writer_id() -> str:
    """A name for one writer (one Storage object in one process): host, process id and a random part."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Storage:
    """One dataset root (`./out`, `file:///data/x`, `s3://bucket/prefix`) and the files below it.

    `writer` names this writer in its partial files (default: host, pid and a random part, new for every Storage)."""

    def __init__(self, url: str, options: Mapping | None = None, writer: str | None = None) -> None:
        self.url = str(url)
        self.options = dict(options or {})
        self.writer = writer or new_writer_id()
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.options)
        except (ImportError, ValueError, TypeError) as error:
            raise StorageError(f"cannot open {self.url}: {describe_error(error, self.options)}") from error
        self.root = self.root.rstrip("/") or "/"
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.is_local = "file" in protocols
        self.is_object_store = any(protocol in OBJECT_STORES for protocol in protocols)

    def path(self, relative: str) -> str:
        return f"{self.root}/{check_relative(relative)}"

    def describe(self, relative: str) -> str:
        return f"{self.url.rstrip('/')}/{relative}"

    def exists(self, relative: str) -> bool:
        return self._call(relative, self.fs.exists, self.path(relative))

    def read_bytes(self, relative: str) -> bytes:
        return self._call(relative, self.fs.cat_file, self.unlinked_path(relative))

    def open_read(self, relative: str):
        return self._call(relative, self.fs.open, self.unlinked_path(relative), "rb")

    def unlinked_path(self, relative: str) -> str:
        """`path(relative)`, refused with a StorageError where a local file or folder on the way from the root to it
        is a symbolic link: what a dataset holds is the files in its folder, never what a link points to (the root
        itself may be a link: that is where the user keeps the dataset)."""
        path = self.path(relative)
        if self.is_local:
            step = self.root
            for part in check_relative(relative).split("/"):
                step = f"{step}/{part}"
                if os.path.islink(step):
                    raise StorageError(f"refusing {self.describe(relative)}: {self.describe(step[len(self.root) + 1:])} "
                                       "is a symbolic link (a dataset's files must be in its folder)")
        return path

    def list(self, relative: str) -> list[str]:
        """Names of the entries directly in a dataset folder ([] when it does not exist)."""
        path = self.path(relative)
        if not self.exists(relative):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self._call(relative, self.fs.ls, path, detail=False))

    def remove(self, relative: str) -> None:
        if self.exists(relative):
            self._call(relative, self.fs.rm, self.path(relative), recursive=True)

    def partial_path(self, relative: str) -> str:
        """Where this writer writes `relative` before committing it."""
        return self.path(f"{PARTIAL_DIR}/{self.writer}/{relative}{PARTIAL_SUFFIX}")

    @contextmanager
    def committing(self, relative: str) -> Iterator[HashingWriter]:
        """Write `relative` through the yielded file object; it appears under its name only if the block succeeds.

        The yielded writer's `size` and `sha256` describe the bytes written, for the manifest. Errors of the
        store become StorageError; an error of the caller's own (a renderer failing) passes through unchanged.
        """
        final, partial, where = self.path(relative), self.partial_path(relative), self.describe(relative)
        try:
            if self.is_local:
                self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
                self.fs.makedirs(posixpath.dirname(partial), exist_ok=True)
            handle = self.fs.open(partial, "wb")
        except STORE_ERRORS as error:
            raise StorageError(f"cannot write {where}: {describe_error(error, self.options)}") from error
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
            raise StorageError(f"cannot write {where}: {describe_error(error, self.options)}") from error

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Replace a whole small file (the manifest, a log segment, the lease) atomically: one PUT on an object
        store, else a file beside it (`<name>.<writer>.partial`) renamed over it."""
        final = self.path(relative)
        staged = f"{final}.{self.writer}{PARTIAL_SUFFIX}"
        try:
            if self.is_object_store:
                self.fs.pipe_file(final, data)
                return
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.pipe_file(staged, data)
            self.fs.mv(staged, final)
        except STORE_ERRORS as error:
            if not self.is_object_store:
                self._abandon(None, staged)
            raise StorageError(f"cannot write {self.describe(relative)}: {describe_error(error, self.options)}") from error

    def create_exclusive(self, relative: str, data: bytes) -> bool:
        """Create `relative` holding `data` only if no such file exists; False when one does. Atomic on local folders
        (a hard link to a complete file beside it) and on S3 (a PUT with If-None-Match: *); other stores get
        fsspec's check-then-write."""
        if not self.is_local:
            try:
                self.fs.pipe_file(self.path(relative), data, mode="create")
            except FileExistsError:
                return False
            except STORE_ERRORS as error:  # FileNotFoundError included: no such bucket
                raise StorageError(f"cannot write {self.describe(relative)}: {describe_error(error, self.options)}") from error
            return True
        final = self.path(relative)
        staged = f"{final}.{self.writer}{PARTIAL_SUFFIX}"
        try:
            os.makedirs(posixpath.dirname(final), exist_ok=True)
            with open(staged, "wb") as handle:  # complete before it can be seen under the final name
                handle.write(data)
            os.link(staged, final)
            return True
        except FileExistsError:
            if not os.path.isdir(posixpath.dirname(final)):
                raise StorageError(f"cannot write {self.describe(relative)}: a file stands where its folder should be") from None
            return False
        except OSError as error:
            raise StorageError(f"cannot write {self.describe(relative)}: {describe_error(error)}") from error
        finally:
            if os.path.lexists(staged):
                os.unlink(staged)

    def _abandon(self, handle, partial: str) -> None:
        """Drop a write that will not be committed (close `handle` if any, remove `partial`); the store may be
        unreachable, so this never raises."""
        cleanups = [handle.close] if handle is not None else []
        for cleanup in cleanups + [lambda: self.fs.rm(partial) if self.fs.exists(partial) else None]:
            try:
                cleanup()
            except Exception:  # the original error is the one worth reporting
                pass

    def _call(self, relative: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (FileNotFoundError, FileExistsError):
            raise
        except STORE_ERRORS as error:
            raise StorageError(f"cannot access {self.describe(relative)}: {describe_error(error, self.options)}") from error


def describe_error(error: BaseException, options: Mapping | None = None) -> str:
    """One line: the error's type and text; for a TypeError, the storage options that may hold a wrong type
    (their names only, never their values)."""
    text = " ".join((str(error) or type(error).__name__).split())
    text = f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text
    if isinstance(error, TypeError) and options:
        text += f" (a storage option of the wrong type? given: {', '.join(option_names(options))})"
    return text


def option_names(options: Mapping, prefix: str = "") -> list[str]:
    """Dotted names of the leaves of nested storage options: ["client_kwargs.region_name", "key"]."""
    names = []
    for name, value in options.items():
        names += option_names(value, f"{prefix}{name}.") if isinstance(value, Mapping) else [f"{prefix}{name}"]
    return names


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
