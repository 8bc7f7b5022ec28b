"""Bytes per identity of each shard set, and of each kind of member in it, for a generated dataset.

    factory generate --identities 2 --image-size 512 --out /tmp/sets512
    python bench/bench_sets.py /tmp/sets512          # a markdown table for bench/RESULTS.md, "Shard sets"

Set sizes are the manifest's file sizes (tar headers included); member sizes are the payloads read back.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a source tree

from factory.format.dataset import open_dataset  # noqa: E402
from factory.format.members import member_kind, member_set  # noqa: E402


def set_table(url: str) -> str:
    dataset = open_dataset(url)
    manifest, identities = dataset.manifest, dataset.manifest.identities
    kinds: Counter = Counter()  # (set, kind) → payload bytes
    for _, members in dataset.samples(sets=manifest.sets):
        for member, payload in members.items():
            kinds[member_set(member), member_kind(member).name] += len(payload)
    total = sum(record.bytes for record in manifest.shards)
    lines = [f"{identities} identities, {manifest.config.get('render', {}).get('image_size')} px, sets {', '.join(manifest.sets)}, "
             f"mesh as {manifest.config.get('mesh_format')}", "",
             "| set | MB per identity | share | members (MB per identity) |", "|---|---|---|---|"]
    for name in manifest.sets:
        size = sum(record.file(name).bytes for record in manifest.shards)
        parts = ", ".join(f"{kind} {value / identities / 1e6:.2f}" for (set_name, kind), value in sorted(kinds.items()) if set_name == name)
        lines.append(f"| {name} | {size / identities / 1e6:.2f} | {100 * size / total:.0f} % | {parts} |")
    lines.append(f"| all | {total / identities / 1e6:.2f} | 100 % | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="a generated dataset (folder or URL)")
    print(set_table(parser.parse_args().url))


if __name__ == "__main__":
    main()
