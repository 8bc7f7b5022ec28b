"""Export chunks: fixed blocks of identities, each read from the shards that hold it and written as a whole.

Chunk n holds the identities n × K … n × K + K - 1 (the last chunk of the dataset may be shorter). A chunk's
files are committed one by one (each atomically: write then move, or one PUT on S3) and the chunk counts as done
once its record `.export/chunk-NNNNN.json` exists, written last. So a killed export leaves every finished chunk
intact, and the same command again skips them and redoes the rest. The record also holds the chunk's label and
demographic counts, from which the README and the dataset card are written without reading the shards again.

A chunk whose identities are not all in the dataset yet (a generate run still going) is left for a later run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from factory.errors import FactoryError
from factory.format.dataset import Dataset
from factory.format.manifest import ShardRecord
from factory.format.members import META
from factory.format.storage import Storage

STATE_DIR = ".export"  # chunk records and the export's options; every reader of the layouts ignores it
OPTIONS_NAME = f"{STATE_DIR}/options.json"


class ExportError(FactoryError, ValueError):
    """An export cannot run as asked: a bad flag, or an --out holding a different export."""


@dataclass(frozen=True)
class Chunk:
    number: int
    first_index: int
    count: int

    @property
    def record_path(self) -> str:
        return f"{STATE_DIR}/chunk-{self.number:05d}.json"

    def shards(self, records: list[ShardRecord]) -> list[ShardRecord]:
        """The shards holding any identity of this chunk."""
        end = self.first_index + self.count
        return [r for r in records if r.first_index < end and r.first_index + r.count > self.first_index]

    def is_complete(self, records: list[ShardRecord]) -> bool:
        """Every identity of the chunk is in a committed shard."""
        end = self.first_index + self.count
        held = sum(min(end, r.first_index + r.count) - max(self.first_index, r.first_index) for r in self.shards(records))
        return held == self.count


def plan_chunks(identities: int, per_chunk: int) -> list[Chunk]:
    if per_chunk < 1:
        raise ExportError(f"--identities-per-chunk must be >= 1, got {per_chunk}")
    return [Chunk(n, first, min(per_chunk, identities - first)) for n, first in enumerate(range(0, identities, per_chunk))]


@dataclass(frozen=True)
class Identity:
    """One identity read back: its parsed meta.json and every member's bytes."""

    meta: dict
    members: dict[str, bytes]


def chunk_identities(dataset: Dataset, chunk: Chunk, sets: tuple[str, ...]) -> Iterator[Identity]:
    """The identities of `chunk`, in index order, streamed from the shards that hold them, with the members of the
    shard sets `sets`."""
    end = chunk.first_index + chunk.count
    for key, members in dataset.samples(chunk.shards(dataset.manifest.shards), sets):
        index = int(key[len("id-"):])
        if chunk.first_index <= index < end:
            try:
                meta = json.loads(members[META])
            except (KeyError, ValueError) as error:
                raise ExportError(f"{dataset.url} {key}: unreadable {META} ({type(error).__name__}: {error})") from None
            yield Identity(meta=meta, members=members)


def claim_output(out: Storage, options: dict) -> None:
    """Record the export's options in --out, or check them against those of the export already there: a rerun
    must continue the same export, never mix two into one folder."""
    try:
        found = json.loads(out.read_bytes(OPTIONS_NAME))
    except FileNotFoundError:
        out.write_bytes(OPTIONS_NAME, json.dumps(options, indent=1, sort_keys=True).encode())
        return
    except ValueError:
        raise ExportError(f"{out.describe(OPTIONS_NAME)} is not JSON; remove {out.describe(STATE_DIR)} to start over") from None
    if found != options:
        changed = sorted(k for k in set(found) | set(options) if found.get(k) != options.get(k))
        raise ExportError(f"{out.url} holds an export with other options ({', '.join(f'{k}: {found.get(k)!r}' for k in changed)}); "
                          "choose another --out or rerun with the same options")


def read_chunk_record(out: Storage, chunk: Chunk) -> dict | None:
    try:
        return json.loads(out.read_bytes(chunk.record_path))
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a damaged record: the chunk is written again


def write_chunk_record(out: Storage, chunk: Chunk, record: dict) -> None:
    out.write_bytes(chunk.record_path, json.dumps(record, sort_keys=True).encode())
