"""`manifest.json`: what a dataset holds and how it was made (format in docs/DATA.md).

The manifest is the dataset's commit log: a shard is listed only after it was written completely, and the
manifest itself is replaced atomically after every shard, so resuming means "redo what is not listed".
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from factory.errors import FactoryError
from factory.format.shards import SHARD_DIR
from factory.format.storage import Storage, check_relative

FORMAT = "painfactory-dataset/1"
MANIFEST_NAME = "manifest.json"
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(FactoryError, ValueError):
    """manifest.json is missing fields, holds wrong types or points outside the dataset."""


@dataclass(frozen=True)
class ShardRecord:
    path: str  # relative to the dataset root, e.g. "shards/shard-000003.tar"
    first_index: int
    count: int
    bytes: int
    sha256: str

    @classmethod
    def from_dict(cls, data: dict) -> "ShardRecord":
        try:
            record = cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError) as error:
            raise ManifestError(f"shard entry {data!r} lacks a field ({error})") from None
        if not isinstance(record.path, str) or not record.path.startswith(f"{SHARD_DIR}/"):
            raise ManifestError(f"shard path {record.path!r} is not under {SHARD_DIR}/")
        check_relative(record.path)
        for name in ("first_index", "count", "bytes"):
            value = getattr(record, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ManifestError(f"{record.path}: {name} must be an integer >= 0, got {value!r}")
        if not isinstance(record.sha256, str) or not SHA256_PATTERN.match(record.sha256):
            raise ManifestError(f"{record.path}: sha256 {record.sha256!r} is not a hex digest")
        return record


@dataclass
class Manifest:
    package_version: str
    seed: int
    config: dict  # the generate config, credentials left out
    identities: int
    shards: list[ShardRecord] = field(default_factory=list)
    format: str = FORMAT

    def add(self, record: ShardRecord) -> None:
        """List a committed shard, replacing an older entry for the same file (a regrown last shard)."""
        self.shards = sorted([s for s in self.shards if s.path != record.path] + [record], key=lambda s: s.first_index)

    def holds(self, path: str, first_index: int, count: int) -> bool:
        return any(s.path == path and s.first_index == first_index and s.count == count for s in self.shards)

    def to_json(self) -> bytes:
        data = {
            "format": self.format, "package_version": self.package_version, "seed": self.seed,
            "config": self.config, "identities": self.identities, "shards": [asdict(s) for s in self.shards],
        }
        return (json.dumps(data, indent=1, sort_keys=False) + "\n").encode()

    @classmethod
    def from_json(cls, text: bytes | str) -> "Manifest":
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ManifestError(f"{MANIFEST_NAME} is not valid JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ManifestError(f"{MANIFEST_NAME} has format {found!r}; this version reads {FORMAT!r}")
        missing = [name for name in ("package_version", "seed", "config", "identities", "shards") if name not in data]
        if missing:
            raise ManifestError(f"{MANIFEST_NAME} lacks {', '.join(missing)}")
        if not isinstance(data["shards"], list) or not isinstance(data["config"], dict):
            raise ManifestError(f"{MANIFEST_NAME}: 'shards' must be a list and 'config' a mapping")
        return cls(
            package_version=data["package_version"], seed=data["seed"], config=data["config"],
            identities=data["identities"], shards=[ShardRecord.from_dict(s) for s in data["shards"]], format=data["format"],
        )


def load_manifest(storage: Storage) -> Manifest | None:
    """The dataset's manifest, or None where there is none yet."""
    try:
        text = storage.read_bytes(MANIFEST_NAME)
    except FileNotFoundError:
        return None
    return Manifest.from_json(text)


def save_manifest(storage: Storage, manifest: Manifest) -> None:
    storage.write_bytes(MANIFEST_NAME, manifest.to_json())
