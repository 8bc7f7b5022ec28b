"""`factory verify`: check a dataset against its manifest, stopping at the first problem.

For every shard listed, in every shard set the dataset has (images, layers, assets): the file exists (not a
symbolic link), its size and sha256 match (hashed while it streams), it is a well-formed tar whose samples are
exactly the listed identities in order, the same in every set, every member is one the format names, in its own
set and within its size (factory/format/members.py), every meta.json matches its schema and its PSPIs equal
AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 of their AUs (factory/format/sample.py), every image decodes within
its kind's size, mesh.obj is UTF-8 text and mesh.glb a textured glTF mesh whose texture decodes, and every
expression's (and sequence frame's) views are there in each set that holds views (RGB; depth and segmentation).
The listed shards must cover identities 0 … N-1 once each.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory.errors import FactoryError
from factory.format.dataset import Dataset, DatasetError, open_dataset
from factory.format.glb import MeshError, read_glb
from factory.format.manifest import MANIFEST_NAME, ManifestError, ShardRecord
from factory.format.members import (
    ASSETS,
    IMAGES,
    KINDS,
    LAYERS,
    MESH,
    MESH_GLB,
    TEXTURE,
    is_image,
    member_kind,
    member_set,
    view_member,
)
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
    sets: tuple[str, ...] = (IMAGES,)

    def text(self) -> str:
        return (f"{self.url}: OK, {self.shards} shards × {len(self.sets)} sets ({', '.join(self.sets)}), {self.identities} identities, "
                f"{self.images} images, {self.bytes / 1e6:.1f} MB")


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
                        bytes=sum(r.bytes for r in manifest.shards), sets=manifest.sets)


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
    sets = dataset.manifest.sets  # a missing file is a ShardError from the reader: opened, not listed (a listing may be stale)
    images, count = 0, 0
    try:
        for key, members in dataset.shard_samples(record, sets):
            expected = identity_id(record.first_index + count)
            if key != expected:
                raise VerifyError(f"{record.path}: sample {count} is {key}, expected {expected}")
            images += check_sample(record, key, members, sets)
            count += 1
    except (ShardError, VerifyError) as error:  # a parse or content error; a file that differs from its record is the cause
        try:
            for entry in record.files.values():
                dataset.check_file(entry)
        except ShardError as difference:
            raise VerifyError(str(difference)) from None
        raise VerifyError(str(error)) from None
    if count != record.count:
        raise VerifyError(f"{record.path}: {count} samples, the manifest says {record.count}")
    return images


# The per-view layers each set must hold for every expression and view.
VIEW_LAYERS_OF_SET = {IMAGES: ("rgb",), LAYERS: ("depth", "segmentation")}


def check_sample(record: ShardRecord, key: str, members: dict[str, bytes], sets: tuple[str, ...]) -> int:
    """Check one identity's meta.json (factory/format/sample.py), that every expression's views are there in each
    of `sets` that holds views, and decode every member (named with its set's file); returns its number of images."""
    where = f"{record.path}: {key}"
    try:
        meta = read_meta(where, key, members)
    except SampleError as error:
        raise VerifyError(str(error)) from None
    def where_of(member: str) -> str:
        return f"{record.file(member_set(member)).path}: {key}"

    layers = [layer for name in sets for layer in VIEW_LAYERS_OF_SET.get(name, ())]
    for expression in meta["expressions"] + meta.get("frames", []):  # a sequence's frames have every view too
        for view in meta["views"]:
            for member in (view_member(expression["name"], view["name"], layer) for layer in layers):
                if member not in members:
                    raise VerifyError(f"{where_of(member)}: {member} missing")
    if ASSETS in sets and MESH_GLB not in members and not {MESH, TEXTURE} <= set(members):
        raise VerifyError(f"{where_of(MESH_GLB)}: no mesh ({MESH_GLB}, or {MESH} and {TEXTURE})")
    images = 0
    for member, payload in members.items():
        images += check_member(where_of(member), member, payload)
    return images


def check_member(where: str, member: str, payload: bytes) -> int:
    """Decode one member by its kind; 1 if it is an image."""
    try:
        if is_image(member):
            decode_image(f"{where}.{member}", payload, member_kind(member))
            return 1
        if member == MESH:
            payload.decode("utf-8")
        if member == MESH_GLB:
            decode_image(f"{where}.{member} texture", read_glb(payload).image, KINDS["texture"])
    except (SampleError, MeshError) as error:
        raise VerifyError(f"{where}.{member}: {error}" if isinstance(error, MeshError) else str(error)) from None
    except UnicodeDecodeError as error:
        raise VerifyError(f"{where}.{member}: unreadable (not UTF-8 text: {error.reason} at byte {error.start})") from None
    return 0
