"""`factory verify`: check a dataset against its manifest, stopping at the first problem.

For every shard listed: the file exists (not a symbolic link), its size and sha256 match (hashed while it streams),
it is a well-formed tar whose samples are exactly the listed identities in order, every member is one the format
names and within its size (factory/format/members.py), every meta.json matches its schema and its PSPIs equal
AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 of their AUs (factory/format/sample.py), every image decodes within
its kind's size, the mesh is UTF-8 text, and every expression's (and sequence frame's) rendered views are there.
The listed shards must cover identities 0 … N-1 once each.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory.errors import FactoryError
from factory.format.dataset import Dataset, DatasetError, open_dataset
from factory.format.manifest import MANIFEST_NAME, ManifestError, ShardRecord
from factory.format.members import MESH, is_image, member_kind, view_member
from factory.format.sample import SampleError, decode_image, read_meta
from factory.format.shards import ShardError
from factory.spec.plan import identity_id


class VerifyError(FactoryError, ValueError):
    """The first problem found; the message names the shard and member."""


@dataclass(frozen=True)
class VerifyReport:
    url: str
    shards: int
    identities: int
    images: int
    bytes: int

    def text(self) -> str:
        return f"{self.url}: OK, {self.shards} shards, {self.identities} identities, {self.images} images, {self.bytes / 1e6:.1f} MB"


def verify_dataset(url: str, storage_options: dict | None = None, progress: bool = False) -> VerifyReport:
    from tqdm import tqdm

    try:
        dataset = open_dataset(url, storage_options)
    except (DatasetError, ManifestError) as error:
        raise VerifyError(f"{url.rstrip('/')}/{MANIFEST_NAME}: {error}") from None
    manifest = dataset.manifest
    check_coverage(manifest.shards, manifest.identities)
    images = 0
    for record in tqdm(manifest.shards, desc="shards", unit="shard", disable=not progress):
        images += verify_shard(dataset, record)
    return VerifyReport(url=url, shards=len(manifest.shards), identities=manifest.identities, images=images,
                        bytes=sum(r.bytes for r in manifest.shards))


def check_coverage(shards: list[ShardRecord], identities: int) -> None:
    """The shards, in order, hold identities 0 … identities-1, each exactly once."""
    expected_first = 0
    for record in shards:
        if record.first_index != expected_first:
            raise VerifyError(f"{MANIFEST_NAME}: {record.path} starts at identity {record.first_index}, expected {expected_first} "
                              "(identities missing or listed twice)")
        expected_first += record.count
    if expected_first != identities:
        raise VerifyError(f"{MANIFEST_NAME}: the shards hold {expected_first} identities, the manifest announces {identities} "
                          "(an unfinished run: run the same generate command again to complete it)")


def verify_shard(dataset: Dataset, record: ShardRecord) -> int:
    """Check one shard completely, streaming it (memory stays within one sample); returns how many image members
    it holds. Any problem in a shard that also differs from its record is reported as that difference: the cause."""
    if not dataset.storage.exists(record.path):
        raise VerifyError(f"{record.path}: missing")
    images, count = 0, 0
    try:
        for key, members in dataset.shard_samples(record):
            expected = identity_id(record.first_index + count)
            if key != expected:
                raise VerifyError(f"{record.path}: sample {count} is {key}, expected {expected}")
            images += check_sample(f"{record.path}: {key}", key, members)
            count += 1
    except ShardError as error:  # the shard's parse error, or its difference from the record
        raise VerifyError(str(error)) from None
    except VerifyError:
        try:
            dataset.check_shard(record)
        except ShardError as error:
            raise VerifyError(str(error)) from None
        raise
    if count != record.count:
        raise VerifyError(f"{record.path}: {count} samples, the manifest says {record.count}")
    return images


def check_sample(where: str, key: str, members: dict[str, bytes]) -> int:
    """Check one identity's meta.json (factory/format/sample.py), that every expression's views are there, and
    decode every member; returns its number of images."""
    try:
        meta = read_meta(where, key, members)
    except SampleError as error:
        raise VerifyError(str(error)) from None
    for expression in meta["expressions"] + meta.get("frames", []):  # a sequence's frames have every view too
        for view in meta["views"]:
            if view_member(expression["name"], view["name"]) not in members:
                raise VerifyError(f"{where}: {view_member(expression['name'], view['name'])} missing")
    images = 0
    for member, payload in members.items():
        images += check_member(where, member, payload)
    return images


def check_member(where: str, member: str, payload: bytes) -> int:
    """Decode one member by its kind; 1 if it is an image."""
    try:
        if is_image(member):
            decode_image(f"{where}.{member}", payload, member_kind(member))
            return 1
        if member == MESH:
            payload.decode("utf-8")
    except SampleError as error:
        raise VerifyError(str(error)) from None
    except UnicodeDecodeError as error:
        raise VerifyError(f"{where}.{member}: unreadable (not UTF-8 text: {error.reason} at byte {error.start})") from None
    return 0
