"""Readers with bounds (issue 14, item 5): each defect the hostile test found, fed to all four readers (verify,
inspect, preview, the trainer's), which must each refuse it in one line. Before the fix, each of these tests failed:
the oversized meta.json and the unknown member and the symlinked shard were accepted, the 200,000 views and the
missing demographics, the non-JSON meta.json and the huge image ended in tracebacks (MemoryError, KeyError,
JSONDecodeError, RecursionError, OSError)."""

from __future__ import annotations

import io
import shutil
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from factory.format.members import KINDS, META
from factory.format.sample import SampleError
from tests.readers import edit_member, edit_meta, relist, run_reader, run_readers, tar_entries, write_entries
from tests.trainer_shards import write_dataset
from trainer.data import PairTransform


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bounded") / "data"
    write_dataset(str(root), identities=2, image_size=32, pain_expressions=1, per_shard=2)
    return root


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def refused_by_all(root: Path, message: str) -> None:
    outcomes = run_readers(str(root))
    assert all(outcome.startswith("refused: ") and message in outcome for outcome in outcomes.values()), outcomes


def test_the_pristine_dataset_reads_everywhere(pristine):
    assert set(run_readers(str(pristine)).values()) == {"ok"}


def test_an_oversized_member_is_refused_from_its_header_before_it_is_read(dataset):
    """A 17 MiB meta.json (valid JSON, padded) was accepted, verify holding the shard three times over; now the tar
    header's size is checked against the kind's limit before a byte of the member is read."""
    edit_member(dataset, META, lambda payload: payload + b" " * (17 << 20))
    tracemalloc.start()
    try:
        outcome = run_reader("verify", str(dataset))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.startswith("refused: images/shard-000000.tar: id-0000000: member 'meta.json' is 17,") and "at most 16,777,216" in outcome
    assert peak < 4 << 20, f"verify's peak Python allocation was {peak / 2**20:.1f} MiB for a refused 17 MiB member"
    refused_by_all(dataset, "a meta member holds at most 16,777,216")


@pytest.mark.parametrize("name", ["notes.txt", "pain00.v0.jpeg", "pain00.v99x.jpg", "script.sh"])
def test_members_the_format_does_not_name_are_refused(dataset, name):
    path = dataset / "images/shard-000000.tar"
    entries = tar_entries(path)
    extra = entries[0][0].replace(name=f"id-0000000.{name}")  # beside the first sample's members, contiguous
    write_entries(path, [entries[0], (extra, b"x"), *entries[1:]])
    relist(dataset)
    refused_by_all(dataset, f"member {name!r} is not one of the format's")


def test_a_meta_json_with_200000_views_is_refused_by_its_schema(dataset):
    """Such a meta.json made preview allocate a sheet hundreds of GB large."""
    edit_meta(dataset, lambda meta: meta.update(views=[{"name": "v0"}] * 200_000))
    refused_by_all(dataset, "meta.json lacks or mistypes views (expected a list of 1 to 32, got a list of 200000)")


@pytest.mark.parametrize("field", ["demographics", "skin", "expressions", "id"])
def test_a_meta_json_without_a_field_readers_use_is_refused(dataset, field):
    """Without demographics, inspect and preview crashed with a KeyError traceback."""
    edit_meta(dataset, lambda meta: meta.pop(field))
    refused_by_all(dataset, "images/shard-000000.tar: id-0000000: meta.json ")


@pytest.mark.parametrize("payload, message", [
    (b"{not json", "meta.json is not JSON"), (b"[" * 100_000, "meta.json is not JSON"), (b"[1, 2]", "meta.json is a list"),
])
def test_a_meta_json_that_is_not_a_json_object_is_refused(dataset, payload, message):
    """Not JSON: a JSONDecodeError traceback from inspect and preview; nested past the parser's stack: RecursionError."""
    edit_member(dataset, META, lambda _: payload)
    refused_by_all(dataset, message)


def test_a_shard_or_folder_that_is_a_symbolic_link_is_refused(dataset, tmp_path):
    """A shard linked to a file outside the dataset was followed (and, a copy of the real one, passed verify)."""
    shard = dataset / "images/shard-000000.tar"
    outside = tmp_path / "elsewhere.tar"
    shard.rename(outside)
    shard.symlink_to(outside)
    refused_by_all(dataset, "images/shard-000000.tar is a symbolic link")
    shard.unlink()
    outside.rename(shard)
    (dataset / "images").rename(tmp_path / "images")
    (dataset / "images").symlink_to(tmp_path / "images", target_is_directory=True)
    refused_by_all(dataset, "images is a symbolic link")


def huge_png(width: int, height: int) -> bytes:
    """A real 1×1 PNG whose header announces width × height pixels (its data then ends early)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_an_image_announcing_more_pixels_than_its_kind_is_refused_before_decoding(dataset):
    """A small file announcing 5000 × 5000 pixels made preview fail with an OSError traceback; now the header's size
    is checked against the kind's `max_side` first, in verify, preview and the trainer's decoder alike."""
    edit_member(dataset, "pain00.v0.jpg", lambda _: huge_png(5000, 5000))
    outcomes = run_readers(str(dataset))
    for name in ("verify", "preview"):
        assert outcomes[name].startswith("refused: images/shard-000000.tar: id-0000000.pain00.v0.jpg: unreadable"), outcomes
        assert "5000×5000 pixels; a rgb image has at most 4096 per side" in outcomes[name]
    with pytest.raises(SampleError, match="5000×5000 pixels"):
        PairTransform(32).decode(huge_png(5000, 5000), "id-0000000/pain00.v0")
    assert KINDS["texture"].max_side == 8192  # a texture may be larger than a render
