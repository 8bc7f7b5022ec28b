"""Run every reader of a dataset (verify, inspect, preview, the trainer's) on one URL and say how each ended: the
shared harness of tests/test_readers_bounded.py and tests/test_fuzz_readers.py, and helpers that damage a dataset
on disk the way a broken store or an attacker would (rewrite a shard's raw tar entries, list a shard again)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from factory.errors import FactoryError

READERS = ("verify", "inspect", "preview", "trainer")


def run_reader(name: str, url: str) -> str:
    """'ok', or 'refused: <message>' for a FactoryError; any other exception propagates (a defect)."""
    from factory.format.dataset import open_dataset
    from factory.qa.preview import contact_sheet, dataset_samples
    from factory.qa.summary import summarize_dataset
    from factory.qa.verify import verify_dataset
    from trainer.data import ShardPairs, SplitConfig

    try:
        if name == "verify":
            verify_dataset(url)
        elif name == "inspect":
            summarize_dataset(url).text()
        elif name == "preview":
            contact_sheet(dataset_samples(open_dataset(url)), max_identities=8, thumb=16)
        else:
            list(ShardPairs(url, SplitConfig(fractions=(1.0, 0.0, 0.0)), read_ahead=2).pairs("train"))
    except FactoryError as error:
        message = str(error)
        assert message and "\n" not in message and len(message) < 2000, f"{name}: not a one-line error: {message[:3000]!r}"
        return f"refused: {message}"
    return "ok"


def run_readers(url: str) -> dict[str, str]:
    return {name: run_reader(name, url) for name in READERS}


def tar_entries(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(entry, tar.extractfile(entry).read() if entry.isfile() else b"") for entry in tar.getmembers()]


def write_entries(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for entry, data in entries:
            if entry.isfile():
                entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data) if entry.isfile() else None)


def relist(root: Path, number: int = 0, set_name: str = "images") -> None:
    """List shard `number`'s file of `set_name` in the manifest with its current size and sha256, so a reader gets
    past the record check to the content (an attacker who controls the store controls the manifest too)."""
    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["shards"][number]["files"][set_name]
    data = (root / entry["path"]).read_bytes()
    entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (root / "manifest.json").write_text(json.dumps(manifest))


def edit_member(root: Path, member: str, change, number: int = 0, set_name: str = "images") -> None:
    """Replace the payload of every `member` of shard `number`'s `set_name` file with change(payload), and list
    the file again."""
    path = root / set_name / f"shard-{number:06d}.tar"
    entries = [(entry, change(data) if entry.name.split(".", 1)[1] == member else data) for entry, data in tar_entries(path)]
    write_entries(path, entries)
    relist(root, number, set_name)


def edit_meta(root: Path, change, number: int = 0) -> None:
    """Apply change(meta dict) to every meta.json of shard `number` (list the shard again)."""
    def rewrite(payload: bytes) -> bytes:
        meta = json.loads(payload)
        change(meta)
        return json.dumps(meta).encode()
    edit_member(root, "meta.json", rewrite, number)
