"""Reading a dataset back: the one way every reader (verify, inspect, preview, the trainer) opens a dataset URL.

    dataset = open_dataset("s3://bucket/prefix")            # storage options resolved as for `generate`
    for key, members in dataset.samples():                  # identity order, one shard open at a time
        meta = read_meta(f"{key}", key, members)            # factory/format/sample.py: the checked meta.json

`Dataset.samples(shards)` takes any subset of the manifest's shard records, so a training rank can stream its own.
The manifest is read with load_manifest, so a dataset whose run is still going (or was stopped) opens as the
shards committed so far.

Nothing read is trusted. A shard is streamed (never held whole) and hashed as it is read; read to its end it must
match its manifest record (size and sha256), and reading stops one byte past the listed size, so a file larger
than listed costs no more than its record. A shard that does not parse is read to its end and, when it also
differs from its record, reported as changed (the cause) rather than as the parse error (the symptom). Every
member is checked against the format from its tar header before it is read (factory/format/shards.py), and
shards that are symbolic links are refused (factory/format/storage.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from factory.errors import FactoryError
from factory.format.manifest import MANIFEST_NAME, Manifest, ShardRecord, load_manifest
from factory.format.shards import ShardError, read_shard
from factory.format.storage import HashingReader, Storage, resolve_storage_options


class DatasetError(FactoryError):
    """The URL holds no painfactory dataset (no manifest.json)."""


@dataclass(frozen=True)
class Dataset:
    storage: Storage
    manifest: Manifest

    @property
    def url(self) -> str:
        return self.storage.url

    def samples(self, shards: Iterable[ShardRecord] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
        """(key, {member: bytes}) of every identity in `shards` (default: all the manifest lists), streamed."""
        for record in self.manifest.shards if shards is None else shards:
            yield from self.shard_samples(record)

    def shard_samples(self, record: ShardRecord) -> Iterator[tuple[str, dict[str, bytes]]]:
        """One shard's samples, streamed and hashed; ShardError when the shard, read to its end, differs from its
        record (one cut short, which tar streaming reads quietly, or changed after it was listed)."""
        with self.storage.open_read(record.path) as handle:
            reader = HashingReader(handle, self.storage.describe(record.path), limit=record.bytes + 1)
            try:
                yield from read_shard(reader, name=record.path)
            except ShardError:
                reader.read_to_end()
                check_record(reader, record)
                raise
            reader.read_to_end()
        check_record(reader, record)

    def check_shard(self, record: ShardRecord) -> None:
        """Hash one whole shard, streaming, against its record (ShardError where it differs)."""
        with self.storage.open_read(record.path) as handle:
            reader = HashingReader(handle, self.storage.describe(record.path), limit=record.bytes + 1)
            reader.read_to_end()
        check_record(reader, record)


def check_record(reader: HashingReader, record: ShardRecord) -> None:
    """The bytes read through `reader` (all of them, up to one past the record's size) are the record's."""
    if reader.size > record.bytes:
        raise ShardError(f"{record.path}: more than the {record.bytes} bytes the manifest lists (changed after it was "
                         "written; `factory verify` checks a whole dataset)")
    if reader.size != record.bytes or reader.sha256 != record.sha256:
        raise ShardError(f"{record.path}: {reader.size} bytes with sha256 {reader.sha256[:16]}…, the manifest lists {record.bytes} "
                         f"bytes with sha256 {record.sha256[:16]}… (changed or cut short after it was written; "
                         "`factory verify` checks a whole dataset)")


def open_dataset(url: str, storage_options: Mapping | None = None) -> Dataset:
    """The dataset at `url`; `storage_options` are merged over the environment's defaults
    (`resolve_storage_options`). DatasetError where there is no manifest.json."""
    storage = Storage(url, resolve_storage_options(url, storage_options or {}))
    manifest = load_manifest(storage)
    if manifest is None:
        raise DatasetError(f"{storage.describe(MANIFEST_NAME)} not found: not a painfactory dataset")
    return Dataset(storage=storage, manifest=manifest)
