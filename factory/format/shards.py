"""WebDataset shards: which identities go in which tar, and writing and reading those tars.

A shard is K consecutive identities, one WebDataset sample each, stored as one plain (uncompressed) tar per shard
set (factory/format/members.py: images, layers, assets), in the set's own folder: `images/shard-000012.tar`,
`layers/shard-000012.tar`, `assets/shard-000012.tar` hold the same keys in the same order, each sample's members
of that set. Every member of a sample is stored contiguously (`ray.data.read_webdataset` needs that). Writing is byte-for-byte reproducible:
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
from factory.format.members import MAX_SAMPLE_BYTES, MemberError, check_member

LEGACY_SHARD_DIR = "shards"  # where format 1 (one tar per shard, every member) kept its shards
SHARD_FILE = re.compile(r"^(images|layers|assets)/shard-(\d{6})\.tar$")  # what a manifest may name
TAR_MTIME = 0  # a fixed header time; webdataset (and Ray Data's writer) would stamp the current time
TAR_OWNER = "painfactory"
# A sample key is the identity id; a member name is dot-separated words. Nothing else is written or read back,
# so no tar entry can name a folder, a parent folder, a link or a device.
KEY_PATTERN = re.compile(r"^id-\d{7}$")
MEMBER_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
MAX_IDENTITIES = 10**7  # identity ids have seven digits (id-0000000 … id-9999999): the most a dataset can hold
# A pax or GNU long-name header is read whole by tarfile before the entry it describes; ours need a few hundred
# bytes (webdataset writes none), so a larger one is refused before it is read.
MAX_EXTENDED_HEADER_BYTES = 64 * 1024


class ShardError(FactoryError, ValueError):
    """A shard or one of its members is malformed; the message names which."""


@dataclass(frozen=True)
class ShardTask:
    """Shard `number` holds the identities first_index … first_index + count - 1."""

    number: int
    first_index: int
    count: int

    @property
    def name(self) -> str:
        return shard_name(self.number)

    def path(self, set_name: str) -> str:
        return shard_path(self.number, set_name)

    @property
    def indices(self) -> range:
        return range(self.first_index, self.first_index + self.count)


def shard_name(number: int) -> str:
    return f"shard-{number:06d}"


def shard_path(number: int, set_name: str) -> str:
    """Shard `number`'s file of set `set_name`: "images/shard-000012.tar"."""
    return f"{set_name}/{shard_name(number)}.tar"


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


class SampleBudget:
    """The members of one sample, checked one by one against the format (factory/format/members.py): known
    names, each within its kind's size, none twice, all together within MAX_SAMPLE_BYTES."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.names: set[str] = set()
        self.bytes = 0

    def admit(self, member: str, size: int) -> None:
        check_member_name(self.key, member)
        try:
            check_member(member, size)
        except MemberError as error:
            raise ShardError(f"{self.key}: {error}") from None
        if member in self.names:
            raise ShardError(f"sample {self.key} holds member {member!r} twice")
        self.names.add(member)
        self.bytes += size
        if self.bytes > MAX_SAMPLE_BYTES:
            raise ShardError(f"sample {self.key} holds more than {MAX_SAMPLE_BYTES:,} bytes of members")


def tar_writer(fileobj) -> webdataset.TarWriter:
    """A TarWriter on an open binary file object (local, s3fs, …) with the format's fixed headers."""
    return webdataset.TarWriter(fileobj, user=TAR_OWNER, group=TAR_OWNER, mode=0o444, encoder=False, mtime=TAR_MTIME)


def write_sample(tar: webdataset.TarWriter, key: str, members: Mapping[str, bytes]) -> None:
    """One sample into a tar; every member is checked as readers check it, so nothing is written that `read_shard`
    would refuse."""
    budget = SampleBudget(key)
    for member, payload in members.items():
        budget.admit(member, len(payload))
    tar.write({"__key__": key, **members})


def write_shard(fileobj, samples: Iterable[tuple[str, Mapping[str, bytes]]]) -> None:
    """Write samples (key, {member name: bytes}) as one tar to an open binary file object."""
    with tar_writer(fileobj) as tar:
        for key, members in samples:
            write_sample(tar, key, members)


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose extended headers (pax, GNU long names) are refused beyond MAX_EXTENDED_HEADER_BYTES:
    tarfile reads those whole, before any entry a reader could check."""

    EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)

    def _proc_member(self, tar):
        if self.type in self.EXTENDED and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise tarfile.HeaderError(f"an extended header of {self.size:,} bytes (at most {MAX_EXTENDED_HEADER_BYTES:,})")
        return super()._proc_member(tar)


def read_shard(fileobj, name: str = "shard") -> Iterator[tuple[str, dict[str, bytes]]]:
    """Read samples back from an open binary file object, streaming. Refuses anything that is not a flat file
    entry with a safe name, samples whose members are not contiguous, and members that are not the format's or are
    too large (checked from the tar header, before the member is read): memory stays within one sample's bound."""
    seen: set[str] = set()
    key, members, budget = None, {}, None
    try:
        with tarfile.open(fileobj=fileobj, mode="r|", tarinfo=BoundedTarInfo) as tar:
            for entry in tar:
                if not entry.isfile():
                    raise ShardError(f"{name}: entry {entry.name!r} is not a regular file")
                entry_key, _, member = entry.name.partition(".")
                if entry_key != key:
                    if key is not None:
                        yield key, members
                    if entry_key in seen:
                        raise ShardError(f"{name}: the members of sample {entry_key} are not stored contiguously")
                    seen.add(entry_key)
                    key, members, budget = entry_key, {}, SampleBudget(entry_key)
                try:
                    budget.admit(member, entry.size)
                except ShardError as error:
                    raise ShardError(f"{name}: {error}") from None
                members[member] = tar.extractfile(entry).read()
    except tarfile.TarError as error:
        raise ShardError(f"{name}: not a readable tar ({error})") from error
    if key is not None:
        yield key, members
