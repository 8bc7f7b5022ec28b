"""WebDataset shards: which identities go in which tar, and writing and reading those tars.

A shard is a plain (uncompressed) tar holding K consecutive identities, one WebDataset sample each, every member
of a sample stored contiguously (`ray.data.read_webdataset` needs that). Writing is byte-for-byte reproducible:
the tar headers carry a fixed mtime, owner and mode, and members are written in sorted order (webdataset's
TarWriter sorts a sample's keys), samples in identity order.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import webdataset

from factory.errors import FactoryError

SHARD_DIR = "shards"
TAR_MTIME = 0  # a fixed header time; webdataset (and Ray Data's writer) would stamp the current time
TAR_OWNER = "painfactory"
# A sample key is the identity id; a member name is dot-separated words. Nothing else is written or read back,
# so no tar entry can name a folder, a parent folder, a link or a device.
KEY_PATTERN = re.compile(r"^id-\d{7}$")
MEMBER_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
MAX_IDENTITIES = 10**7  # identity ids have seven digits (id-0000000 … id-9999999): the most a dataset can hold


class ShardError(FactoryError, ValueError):
    """A shard or one of its members is malformed; the message names which."""


@dataclass(frozen=True)
class ShardTask:
    """Shard `number` holds the identities first_index … first_index + count - 1."""

    number: int
    first_index: int
    count: int

    @property
    def path(self) -> str:
        return shard_path(self.number)

    @property
    def indices(self) -> range:
        return range(self.first_index, self.first_index + self.count)


def shard_path(number: int) -> str:
    return f"{SHARD_DIR}/shard-{number:06d}.tar"


class ShardPlan(Sequence):
    """The shards of a dataset of `identities`: fixed-size blocks of K, the last one possibly shorter.

    Shard n always starts at n × K, so a larger dataset with the same K keeps every full shard of a smaller one.
    Shards are computed when asked for, never listed whole: planning ten million identities costs nothing until
    their shards are scheduled.
    """

    def __init__(self, identities: int, identities_per_shard: int) -> None:
        if identities < 0 or identities_per_shard < 1:
            raise ValueError(f"cannot plan {identities} identities in shards of {identities_per_shard}")
        self.identities = identities
        self.identities_per_shard = identities_per_shard

    def __len__(self) -> int:
        return -(-self.identities // self.identities_per_shard)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[number] for number in range(len(self))[index]]
        number = range(len(self))[index]  # IndexError beyond the plan, negative indices from the end
        first = number * self.identities_per_shard
        return ShardTask(number, first, min(self.identities_per_shard, self.identities - first))


def check_member_name(key: str, member: str) -> None:
    if not KEY_PATTERN.match(key):
        raise ShardError(f"sample key {key!r} is not an identity id like 'id-0000123'")
    if not MEMBER_PATTERN.match(member):
        raise ShardError(f"{key}: member name {member!r} is not of the form 'name.ext' (letters, digits, _ and -)")


def write_shard(fileobj, samples: Iterable[tuple[str, Mapping[str, bytes]]]) -> None:
    """Write samples (key, {member name: bytes}) as a tar to an open binary file object (local, s3fs, …)."""
    with webdataset.TarWriter(fileobj, user=TAR_OWNER, group=TAR_OWNER, mode=0o444, encoder=False, mtime=TAR_MTIME) as tar:
        for key, members in samples:
            for member in members:
                check_member_name(key, member)
            tar.write({"__key__": key, **members})


def read_shard(fileobj, name: str = "shard") -> Iterator[tuple[str, dict[str, bytes]]]:
    """Read samples back from an open binary file object, streaming; refuses anything that is not a flat file
    entry with a safe name, and samples whose members are not contiguous."""
    seen: set[str] = set()
    key, members = None, {}
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for entry in tar:
                if not entry.isfile():
                    raise ShardError(f"{name}: entry {entry.name!r} is not a regular file")
                entry_key, _, member = entry.name.partition(".")
                try:
                    check_member_name(entry_key, member)
                except ShardError as error:
                    raise ShardError(f"{name}: {error}") from None
                if entry_key != key:
                    if key is not None:
                        yield key, members
                    if entry_key in seen:
                        raise ShardError(f"{name}: the members of sample {entry_key} are not stored contiguously")
                    seen.add(entry_key)
                    key, members = entry_key, {}
                if member in members:
                    raise ShardError(f"{name}: sample {key} holds member {member!r} twice")
                members[member] = tar.extractfile(entry).read()
    except tarfile.TarError as error:
        raise ShardError(f"{name}: not a readable tar ({error})") from error
    if key is not None:
        yield key, members
