"""Reading a dataset back: the one way every reader (verify, inspect, preview, the trainer) opens a dataset URL.

    dataset = open_dataset("s3://bucket/prefix")            # storage options resolved as for `generate`
    for key, members in dataset.samples():                  # identity order, one shard open at a time
        meta = json.loads(members[META])

`Dataset.samples(shards)` takes any subset of the manifest's shard records, so a training rank can stream its own.
The manifest is read with load_manifest, so a dataset whose run is still going (or was stopped) opens as the
shards committed so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from factory.errors import FactoryError
from factory.format.manifest import MANIFEST_NAME, Manifest, ShardRecord, load_manifest
from factory.format.shards import read_shard
from factory.format.storage import Storage, resolve_storage_options


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
            with self.storage.open_read(record.path) as handle:
                yield from read_shard(handle, name=record.path)


def open_dataset(url: str, storage_options: Mapping | None = None) -> Dataset:
    """The dataset at `url`; `storage_options` are merged over the environment's defaults
    (`resolve_storage_options`). DatasetError where there is no manifest.json."""
    storage = Storage(url, resolve_storage_options(url, storage_options or {}))
    manifest = load_manifest(storage)
    if manifest is None:
        raise DatasetError(f"{storage.describe(MANIFEST_NAME)} not found: not a painfactory dataset")
    return Dataset(storage=storage, manifest=manifest)
