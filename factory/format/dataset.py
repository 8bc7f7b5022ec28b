"""Reading a dataset back: the one way every reader (verify, inspect, preview, the trainer) opens a dataset URL.

    dataset = open_dataset("s3://bucket/prefix")            # storage options resolved as for `generate`
    for key, members in dataset.samples():                  # identity order, one shard open at a time
        meta = read_meta(f"{key}", key, members)            # factory/format/sample.py: the checked meta.json
    dataset.samples(sets=("images", "assets"))              # members of those shard sets, joined by key

`Dataset.samples(shards)` takes any subset of the manifest's shard records, so a training rank can stream its own.
A reader names the shard sets it needs (default: `images` alone, all that training reads) and only their files are
opened; the sets' samples are joined by key, and each member must be in the set its name belongs to.
The manifest is read with load_manifest, so a dataset whose run is still going (or was stopped) opens as the
shards committed so far.

Nothing read is trusted. A shard is streamed (never held whole) and hashed as it is read; read to its end it must
match its manifest record (size and sha256), and reading stops one byte past the listed size, so a file larger
than listed costs no more than its record. A shard that does not parse is read to its end and, when it also
differs from its record, reported as changed (the cause) rather than as the parse error (the symptom). Every
member is checked against the format from its tar header before it is read (factory/format/shards.py), and
shards that are symbolic links are refused (factory/format/storage.py). A listed file that is not there is a
ShardError naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import zip_longest

from factory.errors import FactoryError
from factory.format.manifest import MANIFEST_NAME, Manifest, SetFile, ShardRecord, load_manifest
from factory.format.members import IMAGES, member_set
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

    def samples(self, shards: Iterable[ShardRecord] | None = None, sets: tuple[str, ...] = (IMAGES,)) -> Iterator[tuple[str, dict[str, bytes]]]:
        """(key, {member: bytes}) of every identity in `shards` (default: all the manifest lists), streamed, with the
        members of the shard sets `sets`."""
        for record in self.manifest.shards if shards is None else shards:
            yield from self.shard_samples(record, sets)

    def require(self, sets: Iterable[str]) -> None:
        """DatasetError unless the dataset was written with every set of `sets`."""
        missing = [name for name in sets if name not in self.manifest.sets]
        if missing:
            raise DatasetError(f"{self.url} was written without the {', '.join(missing)} set(s) (it has {', '.join(self.manifest.sets)}); "
                               "generate it again with them (--sets)")

    def shard_samples(self, record: ShardRecord, sets: tuple[str, ...] = (IMAGES,)) -> Iterator[tuple[str, dict[str, bytes]]]:
        """One shard's samples: the file of each set in `sets` streamed side by side, joined by key."""
        self.require(sets)
        streams = [self.file_samples(record.file(name), name) for name in sets]
        try:
            for parts in zip_longest(*streams):
                if None in parts or len({key for key, _ in parts}) != 1:
                    keys = ", ".join(f"{name} {part[0] if part else 'none'}" for name, part in zip(sets, parts))
                    raise ShardError(f"{record.path}: its sets hold different samples here ({keys})")
                yield parts[0][0], {member: payload for _, members in parts for member, payload in members.items()}
        finally:
            for stream in streams:
                stream.close()

    def file_samples(self, entry: SetFile, set_name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
        """One set file's samples, streamed and hashed; ShardError when the file, read to its end, differs from its
        record (one cut short, which tar streaming reads quietly, or changed after it was listed), or holds a member
        of another set."""
        with self.open_file(entry) as handle:
            reader = HashingReader(handle, self.storage.describe(entry.path), limit=entry.bytes + 1)
            try:
                for key, members in read_shard(reader, name=entry.path):
                    check_set(entry.path, set_name, key, members)
                    yield key, members
            except ShardError:
                reader.read_to_end()
                check_record(reader, entry)
                raise
            reader.read_to_end()
        check_record(reader, entry)

    def check_file(self, entry: SetFile) -> None:
        """Hash one whole set file, streaming, against its record (ShardError where it differs)."""
        with self.open_file(entry) as handle:
            reader = HashingReader(handle, self.storage.describe(entry.path), limit=entry.bytes + 1)
            reader.read_to_end()
        check_record(reader, entry)

    def open_file(self, entry: SetFile):
        try:
            return self.storage.open_read(entry.path)
        except FileNotFoundError:
            raise ShardError(f"{entry.path}: missing (the manifest lists it; `factory verify` checks a whole dataset)") from None


def check_set(path: str, set_name: str, key: str, members: Mapping[str, bytes]) -> None:
    """Every member of a set file belongs in that set (a layers file cannot bring its own meta.json)."""
    for member in members:
        if member_set(member) != set_name:
            raise ShardError(f"{path}: {key}.{member} belongs in the {member_set(member)} set, not in {set_name}")


def check_record(reader: HashingReader, record: SetFile) -> None:
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
