"""Reading a dataset back: its manifest, then every sample in identity order, shard by shard (streamed)."""

from __future__ import annotations

from collections.abc import Iterator

from factory.format.manifest import MANIFEST_NAME, Manifest, load_manifest
from factory.format.shards import read_shard
from factory.format.storage import Storage, default_storage_options


def open_dataset(url: str, storage_options: dict | None = None) -> tuple[Storage, Manifest]:
    """The dataset's storage and manifest; FileNotFoundError where there is no manifest.json.

    Without storage options, an S3 endpoint comes from AWS_ENDPOINT_URL(_S3) as for `generate`."""
    storage = Storage(url, default_storage_options(url) if storage_options is None else storage_options)
    manifest = load_manifest(storage)
    if manifest is None:
        raise FileNotFoundError(f"{storage.describe(MANIFEST_NAME)} not found: not a painfactory dataset")
    return storage, manifest


def iter_samples(storage: Storage, manifest: Manifest) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) for every identity the manifest lists, one shard open at a time."""
    for record in manifest.shards:
        with storage.open_read(record.path) as handle:
            yield from read_shard(handle, name=record.path)


def dataset_members(url: str, storage_options: dict | None = None) -> Iterator[dict[str, bytes]]:
    """The member dicts of every sample of the dataset at `url`, in identity order (for previews)."""
    storage, manifest = open_dataset(url, storage_options)
    for _, members in iter_samples(storage, manifest):
        yield members
