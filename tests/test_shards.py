"""Shard tars: deterministic bytes, readable by tar/webdataset, and no member that could escape its folder."""

from __future__ import annotations

import io
import tarfile

import pytest

from factory.format.shards import ShardError, ShardPlan, ShardTask, read_shard, write_shard


def samples(count: int = 2) -> list[tuple[str, dict[str, bytes]]]:
    return [
        (f"id-{i:07d}", {"meta.json": f'{{"index": {i}}}'.encode(), "neutral.v0.jpg": bytes([i]) * 100, "pain00.heat.png": b"png" * i + b"!"})
        for i in range(count)
    ]


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in entries:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def test_plan_shards_are_aligned_blocks_with_a_shorter_last_one():
    shards = ShardPlan(10, 4)
    assert [(s.path("images"), s.first_index, s.count) for s in shards] == [
        ("images/shard-000000.tar", 0, 4), ("images/shard-000001.tar", 4, 4), ("images/shard-000002.tar", 8, 2)]
    assert ShardPlan(8, 4)[:2] == ShardPlan(10, 4)[:2]  # growing the dataset keeps its full shards
    assert len(ShardPlan(10**7, 1)) == 10**7 and ShardPlan(10**7, 3)[-1] == ShardTask(3333333, 9999999, 1)  # nothing listed


def test_writing_twice_gives_identical_bytes_with_fixed_headers_and_sorted_contiguous_members():
    first, second = io.BytesIO(), io.BytesIO()
    write_shard(first, samples())
    write_shard(second, samples())
    assert first.getvalue() == second.getvalue()
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        entries = tar.getmembers()
    assert [e.name for e in entries] == [
        "id-0000000.meta.json", "id-0000000.neutral.v0.jpg", "id-0000000.pain00.heat.png",
        "id-0000001.meta.json", "id-0000001.neutral.v0.jpg", "id-0000001.pain00.heat.png"]
    assert {(e.mtime, e.uid, e.gid, e.uname, e.mode) for e in entries} == {(0, 0, 0, "painfactory", 0o444)}


def test_read_back_and_webdataset_reads_the_same_samples(tmp_path):
    import webdataset

    with open(tmp_path / "s.tar", "wb") as handle:
        write_shard(handle, samples(3))
    with open(tmp_path / "s.tar", "rb") as handle:
        assert list(read_shard(handle)) == samples(3)
    read = list(webdataset.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False))
    assert [(s["__key__"], s["neutral.v0.jpg"]) for s in read] == [(k, m["neutral.v0.jpg"]) for k, m in samples(3)]


@pytest.mark.parametrize("key, member", [("id-0000001", "../evil.txt"), ("../id-0000001", "meta.json"),
                                         ("id-0000001", "sub/dir.jpg"), ("/etc/passwd", "x"), ("id-1", "meta.json")])
def test_writing_refuses_names_that_could_escape(key, member):
    with pytest.raises(ShardError, match="name|key"):
        write_shard(io.BytesIO(), [(key, {member: b"x"})])


@pytest.mark.parametrize("name", ["../id-0000000.meta.json", "/tmp/id-0000000.meta.json", "dir/id-0000000.meta.json"])
def test_reading_refuses_paths_outside_the_folder(name):
    data = tar_bytes([(tarfile.TarInfo(name), b"{}")])
    with pytest.raises(ShardError, match="shard-x"):
        list(read_shard(io.BytesIO(data), name="shard-x"))


def test_reading_refuses_links_and_scattered_samples():
    link = tarfile.TarInfo("id-0000000.meta.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(ShardError, match="not a regular file"):
        list(read_shard(io.BytesIO(tar_bytes([(link, b"")]))))
    scattered = [(tarfile.TarInfo(n), b"x") for n in ("id-0000000.neutral.v0.jpg", "id-0000001.neutral.v0.jpg", "id-0000000.pain00.v0.jpg")]
    with pytest.raises(ShardError, match="contiguous"):
        list(read_shard(io.BytesIO(tar_bytes(scattered))))


def test_a_shard_cut_inside_a_member_is_reported():
    buffer = io.BytesIO()
    write_shard(buffer, samples(2))
    with pytest.raises(ShardError, match="shard-t"):
        list(read_shard(io.BytesIO(buffer.getvalue()[:1600]), name="shard-t"))
