"""`manifest.json` and its commit log: what a dataset holds and how it was made (format in docs/DATA.md).

The manifest names the dataset's shard sets (`sets`: images, and layers and assets where they were written) and,
per shard, its identities and each set's file with its size and sha256:

    {"first_index": 8, "count": 4, "files": {"images": {"path": "images/shard-000002.tar", "bytes": …, "sha256": …},
                                             "layers": {…}, "assets": {…}}}

A shard is listed only after every file of it was written completely. A finished dataset's `manifest.json` lists every shard
(compacted). While a run goes on, `manifest.json` holds the shards committed before that run and names the run's
commit log, `manifest.log/<run>/`: JSON Lines segments of at most RECORDS_PER_SEGMENT shard records, a segment
replaced atomically whenever a record joins it. So committing a shard costs the same at the millionth shard as at
the first (the old way, rewriting the whole manifest per shard, grew quadratically), and a crash loses nothing
committed. At the end of the run the log is folded into `manifest.json` and removed.

    manifest = load_manifest(storage)    # the one reader of both states: compacted shards + the log's, in order
    log = start_log(storage, manifest, run="generate-1a2b3c4d")
    log.append(record)                  # one small write per committed shard
    compact(storage)                    # at the end: manifest.json lists everything again

Resuming reads the log once (load_manifest) and redoes what is not listed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from factory.errors import FactoryError, brief
from factory.format.members import IMAGES, SETS
from factory.format.shards import MAX_IDENTITIES, SHARD_FILE
from factory.format.storage import Storage, StorageError, check_relative

FORMAT = "painfactory-dataset/2"  # 2: shard sets (images/, layers/, assets/); 1 kept every member in one shards/ tar
MANIFEST_NAME = "manifest.json"
LOG_DIR = "manifest.log"
LOG_PATTERN = re.compile(r"^manifest\.log/[A-Za-z0-9_-][A-Za-z0-9_.-]*$")  # what manifest.json may name as its log
SEGMENT_PATTERN = re.compile(r"^\d{8}\.jsonl$")
# Records per log segment: a commit rewrites at most this many lines (~55 KB with three sets), and a resume of 250,000 shards
# reads about 2,000 segments.
RECORDS_PER_SEGMENT = 128
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
RECORD_FIELDS = ("first_index", "count", "files")
FILE_FIELDS = ("path", "bytes", "sha256")


class ManifestError(FactoryError, ValueError):
    """manifest.json or its log is missing fields, holds wrong types or points outside the dataset."""


def count_field(where: str, name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where}: {name} must be an integer >= 0, got {brief(value)}")
    return value


@dataclass(frozen=True)
class SetFile:
    """One set's file of a shard."""

    path: str  # relative to the dataset root: "images/shard-000003.tar"
    bytes: int
    sha256: str

    @classmethod
    def from_dict(cls, set_name: str, data) -> "SetFile":
        """A file entry, once its path is a shard file of `set_name` (so it stays in the set's folder)."""
        try:
            entry = cls(**{name: data[name] for name in FILE_FIELDS})
        except (KeyError, TypeError) as error:
            raise ManifestError(f"{MANIFEST_NAME}: {set_name} shard file {brief(data)} lacks a field ({brief(str(error))})") from None
        match = SHARD_FILE.match(entry.path) if isinstance(entry.path, str) else None
        if not match or match.group(1) != set_name:
            raise ManifestError(f"{MANIFEST_NAME}: {set_name} file path {brief(entry.path)} is not {set_name}/shard-NNNNNN.tar")
        check_relative(entry.path)
        count_field(entry.path, "bytes", entry.bytes)
        if not isinstance(entry.sha256, str) or not SHA256_PATTERN.match(entry.sha256):
            raise ManifestError(f"{entry.path}: sha256 {brief(entry.sha256)} is not a hex digest")
        return entry


@dataclass(frozen=True)
class ShardRecord:
    """A committed shard: identities first_index … first_index + count - 1, and its file in each set."""

    first_index: int
    count: int
    files: dict[str, SetFile]  # set name → file, in SETS order; "images" always

    @property
    def path(self) -> str:
        """The shard's images file: what names the shard in messages (every shard has one)."""
        return self.files[IMAGES].path

    @property
    def bytes(self) -> int:
        """All the shard's files together."""
        return sum(entry.bytes for entry in self.files.values())

    def file(self, set_name: str) -> SetFile:
        try:
            return self.files[set_name]
        except KeyError:
            raise ManifestError(f"{self.path}: the dataset has no {set_name} set (written: {', '.join(self.files)})") from None

    @classmethod
    def from_dict(cls, data: dict) -> "ShardRecord":
        try:
            first_index, count, files = (data[name] for name in RECORD_FIELDS)
        except (KeyError, TypeError) as error:
            raise ManifestError(f"shard entry {brief(data)} lacks a field ({brief(str(error))})") from None
        if not isinstance(files, dict) or IMAGES not in files or not set(files) <= set(SETS):
            raise ManifestError(f"shard entry {brief(data)}: files must map {IMAGES} and any of {', '.join(SETS[1:])} to files")
        entries = {name: SetFile.from_dict(name, files[name]) for name in SETS if name in files}
        if len({SHARD_FILE.match(entry.path).group(2) for entry in entries.values()}) != 1:
            raise ManifestError(f"shard entry {brief(data)}: its files name different shard numbers")
        where = entries[IMAGES].path
        return cls(first_index=count_field(where, "first_index", first_index), count=count_field(where, "count", count), files=entries)

    def to_json(self) -> str:
        """One line of JSON: a manifest's shard entry and a commit-log line alike."""
        files = {name: {field: getattr(entry, field) for field in FILE_FIELDS} for name, entry in self.files.items()}
        return json.dumps({"first_index": self.first_index, "count": self.count, "files": files}, separators=(", ", ": "))


@dataclass
class Manifest:
    package_version: str
    seed: int
    config: dict  # the generate config, credentials left out
    identities: int
    shards: list[ShardRecord] = field(default_factory=list)
    sets: tuple[str, ...] = SETS  # the shard sets every shard has a file in
    format: str = FORMAT
    log: str | None = None  # "manifest.log/<run>" while a run is committing there; None once compacted

    def add(self, record: ShardRecord) -> None:
        """List a committed shard, replacing an older entry for the same file (a regrown last shard)."""
        self.shards = merge_records(self.shards, [record])

    def to_json(self) -> bytes:
        """The documented layout, one shard entry per line (readable, and a million entries encode in a second)."""
        header = {"format": self.format, "package_version": self.package_version, "seed": self.seed, "config": self.config,
                  "identities": self.identities, "sets": list(self.sets), **({"log": self.log} if self.log else {})}
        text = json.dumps(header, indent=1)[:-2]  # without the closing "\n}": the shards follow
        shards = "[\n  " + ",\n  ".join(s.to_json() for s in self.shards) + "\n ]" if self.shards else "[]"
        return f'{text},\n "shards": {shards}\n}}\n'.encode()

    @classmethod
    def from_json(cls, text: bytes | str) -> "Manifest":
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ManifestError(f"{MANIFEST_NAME} is not valid JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ManifestError(f"{MANIFEST_NAME} has format {brief(found)}; this version reads {FORMAT!r} (shard sets "
                                "images/, layers/, assets/): regenerate the dataset (--overwrite) or read it with the version that wrote it")
        missing = [name for name in ("package_version", "seed", "config", "identities", "sets", "shards") if name not in data]
        if missing:
            raise ManifestError(f"{MANIFEST_NAME} lacks {', '.join(missing)}")
        if not isinstance(data["shards"], list) or not isinstance(data["config"], dict):
            raise ManifestError(f"{MANIFEST_NAME}: 'shards' must be a list and 'config' a mapping")
        for name, expected in (("identities", "an integer from 0 to 10,000,000"), ("seed", "an integer")):
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or name == "identities" and not 0 <= value <= MAX_IDENTITIES:
                raise ManifestError(f"{MANIFEST_NAME}: {name} must be {expected}, got {brief(value)}")
        if not isinstance(data["package_version"], str) or len(data["package_version"]) > 100:
            raise ManifestError(f"{MANIFEST_NAME}: package_version must be a version string, got {brief(data['package_version'])}")
        log = data.get("log")
        if log is not None and not (isinstance(log, str) and LOG_PATTERN.match(log)):
            raise ManifestError(f"{MANIFEST_NAME}: log {brief(log)} is not a folder {LOG_DIR}/<run>")
        manifest = cls(
            package_version=data["package_version"], seed=data["seed"], config=data["config"], identities=data["identities"],
            shards=[ShardRecord.from_dict(s) for s in data["shards"]], sets=read_sets(data["sets"]), format=data["format"], log=log,
        )
        manifest.check_sets()
        return manifest

    def check_sets(self) -> None:
        """Every shard has a file in each of the dataset's sets, and in no other."""
        for record in self.shards:
            if tuple(record.files) != self.sets:
                raise ManifestError(f"{record.path}: files of the sets {', '.join(record.files)}; the dataset has {', '.join(self.sets)}")


def read_sets(value) -> tuple[str, ...]:
    """The manifest's `sets`: known set names, images among them, in SETS order."""
    if not isinstance(value, list) or IMAGES not in value or [name for name in SETS if name in value] != value:
        raise ManifestError(f"{MANIFEST_NAME}: sets must list {IMAGES} and any of {', '.join(SETS[1:])}, in that order; got {brief(value)}")
    return tuple(value)


def merge_records(shards: list[ShardRecord], later: list[ShardRecord]) -> list[ShardRecord]:
    """The shards with the `later` records over them (a later record for the same file wins), in identity order."""
    by_path = {record.path: record for record in shards}
    by_path.update((record.path, record) for record in later)
    return sorted(by_path.values(), key=lambda record: record.first_index)


def load_manifest(storage: Storage) -> Manifest | None:
    """The dataset's manifest with its commit log folded in, or None where there is none yet.

    Works on a finished dataset and on one whose run is still going (or stopped): the log's records are read
    in one pass. A log compacted away while it was being read (the run just ended) is read again from the new
    manifest.json."""
    for _ in range(3):
        try:
            text = storage.read_bytes(MANIFEST_NAME)
        except FileNotFoundError:
            return None
        manifest = Manifest.from_json(text)
        if manifest.log is None:
            return manifest
        try:
            manifest.shards = merge_records(manifest.shards, read_log(storage, manifest.log))
        except FileNotFoundError:
            continue
        manifest.check_sets()
        return manifest
    raise ManifestError(f"{storage.describe(MANIFEST_NAME)} kept changing while it was read; try again")


def read_log(storage: Storage, folder: str) -> list[ShardRecord]:
    """Every record of a commit log, in commit order."""
    records = []
    for name in storage.list(folder):
        if not SEGMENT_PATTERN.match(name):
            raise ManifestError(f"{folder}/{name}: not a commit-log segment (NNNNNNNN.jsonl)")
        for number, line in enumerate(storage.read_bytes(f"{folder}/{name}").decode().splitlines(), 1):
            try:
                records.append(ShardRecord.from_dict(json.loads(line)))
            except (ValueError, AttributeError, StorageError) as error:
                raise ManifestError(f"{folder}/{name} line {number}: {error}") from None
    return records


def save_manifest(storage: Storage, manifest: Manifest) -> None:
    storage.write_bytes(MANIFEST_NAME, manifest.to_json())


class CommitLog:
    """The appending end of a run's commit log: `append` makes one record durable with one small atomic write."""

    def __init__(self, storage: Storage, folder: str) -> None:
        self.storage = storage
        self.folder = folder
        self.segment = 0
        self.lines: list[str] = []  # the open segment's records

    def append(self, record: ShardRecord) -> None:
        self.lines.append(record.to_json())
        self.storage.write_bytes(f"{self.folder}/{self.segment:08d}.jsonl", ("\n".join(self.lines) + "\n").encode())
        if len(self.lines) == RECORDS_PER_SEGMENT:
            self.segment, self.lines = self.segment + 1, []


def start_log(storage: Storage, manifest: Manifest, run: str) -> CommitLog:
    """Write `manifest` (the shards so far, compacted) naming run `run`'s new commit log, and remove older logs
    (their records are in `manifest`, read by load_manifest)."""
    manifest.log = f"{LOG_DIR}/{run}"
    save_manifest(storage, manifest)
    storage.remove(LOG_DIR)  # the new log has no segment yet
    return CommitLog(storage, manifest.log)


def compact(storage: Storage) -> Manifest:
    """Fold the commit log into manifest.json, then remove it; returns the compacted manifest. A crash between the
    two leaves a log that manifest.json no longer names: ignored, and removed by the next run."""
    manifest = load_manifest(storage)
    if manifest is None:
        raise ManifestError(f"{storage.describe(MANIFEST_NAME)} vanished during the run")
    manifest.log = None
    save_manifest(storage, manifest)
    storage.remove(LOG_DIR)
    return manifest
