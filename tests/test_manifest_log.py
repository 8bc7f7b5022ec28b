"""The manifest's commit log: one small write per committed shard in bounded segments, read back in one pass by
load_manifest (the one reader of both states), compacted into manifest.json at the end, robust to a compaction
that happens while a reader reads, and safe against a manifest naming a log outside its folder."""

from __future__ import annotations

import hashlib
import json

import pytest

from factory.format.manifest import (
    LOG_DIR,
    RECORDS_PER_SEGMENT,
    Manifest,
    ManifestError,
    SetFile,
    ShardRecord,
    compact,
    load_manifest,
    start_log,
)
from factory.format.members import SETS
from factory.format.shards import ShardPlan
from factory.format.storage import Storage


def record(number: int, per_shard: int = 2) -> ShardRecord:
    task = ShardPlan(10**6, per_shard)[number]
    digest = hashlib.sha256(str(number).encode()).hexdigest()
    return ShardRecord(first_index=task.first_index, count=task.count,
                       files={name: SetFile(path=task.path(name), bytes=100 + number, sha256=digest) for name in SETS})


class CountingStorage(Storage):
    """A local Storage that remembers every small write (path, size)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writes: list[tuple[str, int]] = []

    def write_bytes(self, relative: str, data: bytes) -> None:
        self.writes.append((relative, len(data)))
        super().write_bytes(relative, data)


def new_manifest(shards: list[ShardRecord]) -> Manifest:
    return Manifest(package_version="0.1.0", seed=0, config={"seed": 0}, identities=2 * 10**6, shards=shards)


def test_a_commit_is_one_bounded_write_and_readers_see_every_committed_shard(tmp_path):
    storage = CountingStorage(str(tmp_path / "ds"))
    log = start_log(storage, new_manifest([record(0), record(1)]), run="generate-00000001")
    storage.writes.clear()
    for number in range(2, 2 + 2 * RECORDS_PER_SEGMENT + 10):
        log.append(record(number))
    assert len(storage.writes) == 2 * RECORDS_PER_SEGMENT + 10  # one write per commit
    largest_segment = max(size for _, size in storage.writes)
    assert largest_segment <= RECORDS_PER_SEGMENT * len(record(10**5).to_json()) * 1.1  # bounded, whatever the count
    assert sorted({path for path, _ in storage.writes}) == [f"{LOG_DIR}/generate-00000001/{n:08d}.jsonl" for n in range(3)]

    in_progress = load_manifest(storage)  # manifest.json (2 shards) + the log (266), in identity order
    assert in_progress.log == f"{LOG_DIR}/generate-00000001"
    assert in_progress.shards == [record(n) for n in range(2 + 2 * RECORDS_PER_SEGMENT + 10)]

    compacted = compact(storage)
    assert compacted.shards == in_progress.shards and compacted.log is None
    assert not (tmp_path / "ds" / LOG_DIR).exists()
    on_disk = json.loads((tmp_path / "ds/manifest.json").read_text())
    assert list(on_disk) == ["format", "package_version", "seed", "config", "identities", "sets", "shards"]  # the documented layout
    assert on_disk["shards"][5] == json.loads(record(5).to_json())
    assert load_manifest(storage).shards == in_progress.shards


def test_a_later_record_replaces_an_earlier_one_for_the_same_shard(tmp_path):
    """A regrown last shard: the manifest lists it with 1 identity, the new run commits it with 2."""
    storage = Storage(str(tmp_path / "ds"))
    short = ShardRecord(first_index=6, count=1, files=record(3).files)
    log = start_log(storage, new_manifest([record(n) for n in range(3)] + [short]), run="generate-00000002")
    log.append(record(3))
    assert load_manifest(storage).shards == [record(n) for n in range(4)]


def test_a_new_run_compacts_and_removes_older_logs_which_readers_ignore(tmp_path):
    storage = Storage(str(tmp_path / "ds"))
    first = start_log(storage, new_manifest([]), run="generate-aaaaaaaa")
    first.append(record(0))
    stale = tmp_path / "ds" / LOG_DIR / "generate-stale" / "00000000.jsonl"  # a crash between compaction and removal
    stale.parent.mkdir(parents=True)
    stale.write_text(record(7).to_json() + "\n")
    assert load_manifest(storage).shards == [record(0)]  # only the log manifest.json names counts
    start_log(storage, load_manifest(storage), run="generate-bbbbbbbb")
    assert not (tmp_path / "ds" / LOG_DIR).exists()
    assert load_manifest(storage).shards == [record(0)]


def test_a_log_compacted_while_it_is_read_is_read_again_from_the_new_manifest(tmp_path):
    storage = Storage(str(tmp_path / "ds"))
    log = start_log(storage, new_manifest([record(0)]), run="generate-cccccccc")
    for number in (1, 2):
        log.append(record(number))

    class CompactingMidRead(Storage):
        """The run ends (compaction) between the reader's manifest.json and its first log segment."""

        compacted = False

        def read_bytes(self, relative: str) -> bytes:
            if relative.startswith(LOG_DIR) and not self.compacted:
                self.compacted = True
                compact(storage)
            return super().read_bytes(relative)

    reader = CompactingMidRead(storage.url)
    assert load_manifest(reader).shards == [record(0), record(1), record(2)] and reader.compacted


@pytest.mark.parametrize("log", ["manifest.log/..", "manifest.log/../../etc", "../x", "manifest.log", "shards/x", 7])
def test_a_manifest_cannot_name_a_log_outside_its_folder(tmp_path, log):
    data = json.loads(new_manifest([]).to_json())
    (tmp_path / "manifest.json").write_text(json.dumps({**data, "log": log}))
    with pytest.raises(ManifestError, match="is not a folder manifest.log/<run>"):
        load_manifest(Storage(str(tmp_path)))


def test_a_damaged_log_line_is_named(tmp_path):
    storage = Storage(str(tmp_path / "ds"))
    log = start_log(storage, new_manifest([]), run="generate-dddddddd")
    log.append(record(0))
    segment = tmp_path / "ds" / LOG_DIR / "generate-dddddddd" / "00000000.jsonl"
    escaping = {"first_index": 2, "count": 2, "files": {"images": {"path": "images/../../x.tar", "bytes": 1, "sha256": "0" * 64}}}
    segment.write_text(segment.read_text() + json.dumps(escaping) + "\n")
    with pytest.raises(ManifestError, match=r"generate-dddddddd/00000000.jsonl line 2"):
        load_manifest(storage)
