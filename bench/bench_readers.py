"""Readers' peak memory on a shard with one oversized member: `factory verify`, `inspect` and `preview` each run
in a fresh process on a small dataset whose first sample also holds a `texture.png` of `--member-mib` MiB (zeros,
listed in the manifest with its true size and sha256, so only the member's size is wrong), and on the same
dataset without it. Peak RSS is the process's maximum resident set (getrusage of the child).

    python bench/bench_readers.py --member-mib 256          # prints a table; --write puts it in bench/RESULTS.md

Before issue 14 the readers read whole shards and members into memory (verify about 3× the member, inspect and
preview about 2×); now a member beyond its kind's limit (factory/format/members.py) is refused from its tar
header, before a byte of it is read, and shards are streamed and hashed in 1 MiB blocks.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a source tree

from bench.results import machine, write_section  # noqa: E402

PEAK_OF_CHILD = ("import resource, subprocess, sys; run = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, run.returncode, "
                 "(run.stderr.strip().splitlines() or [''])[-1][:120], sep='\\t')")


class Zeros(io.RawIOBase):
    """`size` zero bytes, read in blocks: the big member is streamed into the tar, never held whole."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def add_big_member(root: Path, size: int) -> None:
    """Rewrite shard 0 with a `size`-byte texture.png in its first sample, and list its new size and sha256."""
    manifest = json.loads((root / "manifest.json").read_text())
    record = manifest["shards"][0]
    shard = root / record["path"]
    with tarfile.open(shard) as source:
        entries = [(entry, source.extractfile(entry).read()) for entry in source.getmembers()]
    bigger = shard.with_suffix(".new")
    last_of_first = max(n for n, (entry, _) in enumerate(entries) if entry.name.startswith("id-0000000."))
    with tarfile.open(bigger, "w", format=tarfile.USTAR_FORMAT) as tar:
        for number, (entry, data) in enumerate(entries):
            tar.addfile(entry, io.BytesIO(data))
            if number == last_of_first:  # the first sample's members stay contiguous
                info = tarfile.TarInfo("id-0000000.texture.png")
                info.size = size
                tar.addfile(info, io.BufferedReader(Zeros(size)))
    digest = hashlib.sha256()
    with open(bigger, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    bigger.replace(shard)
    record.update(bytes=shard.stat().st_size, sha256=digest.hexdigest())
    (root / "manifest.json").write_text(json.dumps(manifest))


def peak_mib(*command: str) -> tuple[float, int, str]:
    """(peak RSS in MiB, exit status, last line of stderr) of one command run in its own process."""
    out = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *command], capture_output=True, text=True, check=True).stdout
    peak, status, last = out.rstrip("\n").split("\t")
    return int(peak) / 1024, int(status), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--member-mib", type=int, default=256)
    parser.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    args = parser.parse_args()
    from tests.trainer_shards import write_dataset

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        plain, big = Path(folder) / "plain", Path(folder) / "big"
        for root in (plain, big):
            write_dataset(str(root), identities=2, image_size=64, pain_expressions=2, per_shard=2)
        add_big_member(big, args.member_mib << 20)
        factory = [sys.executable, "-m", "factory"]
        for name, extra in (("verify", ["--no-progress"]), ("inspect", []), ("preview", ["--out", f"{folder}/sheet.png"])):
            base, _, _ = peak_mib(*factory, name, str(plain), *extra)
            peak, status, last = peak_mib(*factory, name, str(big), *extra)
            rows.append(f"| `{name}` | {base:.0f} | {peak:.0f} | {peak - base:+.0f} | {status}: {last} |")
    table = "\n".join([
        f"`python bench/bench_readers.py --member-mib {args.member_mib}`", "",
        f"| command | peak RSS MiB, plain dataset | with a {args.member_mib} MiB member | difference | exit status: last line |",
        "|---|---|---|---|---|", *rows, "", f"Machine: {machine()}."])
    print(table)
    if args.write:
        write_section("## Readers' memory", "## Readers' memory\n\n" + table + "\n")


if __name__ == "__main__":
    main()
