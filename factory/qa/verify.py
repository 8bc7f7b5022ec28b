"""`factory verify`: check a dataset against its manifest, stopping at the first problem.

For every shard listed: the file exists, its size and sha256 match, it is a well-formed tar whose samples are
exactly the listed identities in order, every member decodes (JSON, JPEG/PNG, text mesh), every expression's
rendered views are there, and every PSPI equals AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 of its AUs.
The listed shards must cover identities 0 … N-1 once each.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

from PIL import Image

from factory.errors import FactoryError
from factory.format.dataset import DatasetError, open_dataset
from factory.format.manifest import MANIFEST_NAME, ManifestError, ShardRecord
from factory.format.members import META, view_member
from factory.format.shards import ShardError, read_shard
from factory.format.storage import Storage
from factory.spec.labels import pspi
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
    storage, manifest = dataset.storage, dataset.manifest
    check_coverage(manifest.shards, manifest.identities)
    images = 0
    for record in tqdm(manifest.shards, desc="shards", unit="shard", disable=not progress):
        images += verify_shard(storage, record)
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


def verify_shard(storage: Storage, record: ShardRecord) -> int:
    """Check one shard completely; returns how many image members it holds."""
    if not storage.exists(record.path):
        raise VerifyError(f"{record.path}: missing")
    data = storage.read_bytes(record.path)
    if len(data) != record.bytes:
        raise VerifyError(f"{record.path}: {len(data)} bytes, the manifest says {record.bytes}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256:
        raise VerifyError(f"{record.path}: sha256 {digest} differs from the manifest's {record.sha256}")
    images, count = 0, 0
    try:
        for key, members in read_shard(io.BytesIO(data), name=record.path):
            expected = identity_id(record.first_index + count)
            if key != expected:
                raise VerifyError(f"{record.path}: sample {count} is {key}, expected {expected}")
            images += check_sample(record.path, key, members)
            count += 1
    except ShardError as error:
        raise VerifyError(str(error)) from None
    if count != record.count:
        raise VerifyError(f"{record.path}: {count} samples, the manifest says {record.count}")
    return images


def check_sample(shard: str, key: str, members: dict[str, bytes]) -> int:
    """Decode every member of one identity and check its labels; returns its number of images."""
    where = f"{shard}: {key}"
    if META not in members:
        raise VerifyError(f"{where}: {META} missing")
    try:
        meta = json.loads(members[META])
        expressions = [(e["name"], e["aus"], e["pspi"]) for e in meta["expressions"]]
        views = [v["name"] for v in meta["views"]]
    except (ValueError, KeyError, TypeError) as error:
        raise VerifyError(f"{where}.meta.json: unreadable or incomplete ({type(error).__name__}: {error})") from None
    if meta.get("id") != key:
        raise VerifyError(f"{where}.meta.json: id {meta.get('id')!r} does not match the sample key")
    for name, aus, stated in expressions:
        try:
            computed = pspi(aus)
        except ValueError as error:
            raise VerifyError(f"{where}.meta.json: expression {name}: {error}") from None
        if computed != stated:
            raise VerifyError(f"{where}.meta.json: expression {name} has PSPI {stated} but its AUs give {computed}")
        for view in views:
            if view_member(name, view) not in members:
                raise VerifyError(f"{where}: {view_member(name, view)} missing")
    images = 0
    for member, payload in members.items():
        images += check_member(f"{where}.{member}", member, payload)
    return images


def check_member(where: str, member: str, payload: bytes) -> int:
    """Decode one member by its extension; 1 if it is an image."""
    extension = member.rsplit(".", 1)[-1]
    try:
        if extension in ("jpg", "png"):
            with Image.open(io.BytesIO(payload)) as image:
                image.load()
            return 1
        if extension == "json":
            json.loads(payload)
        elif extension in ("obj", "mtl", "txt"):
            payload.decode("utf-8")
        elif not payload:
            raise ValueError("empty")
    except Exception as error:  # any decoder failure is a damaged member; say which and why
        raise VerifyError(f"{where}: unreadable ({type(error).__name__}: {error})") from None
    return 0
