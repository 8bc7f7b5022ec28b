"""`factory inspect`: what a dataset holds, read from its manifest and every sample's meta.json (checked by
factory/format/sample.py, so a damaged one ends the summary with a one-line SampleError naming it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from factory.format.dataset import open_dataset
from factory.format.members import is_image
from factory.format.sample import read_meta
from factory.spec.labels import MAX_PSPI
from factory.spec.plan import DEMOGRAPHIC_FIELDS

BAR_WIDTH = 40


@dataclass
class DatasetSummary:
    url: str
    shards: int = 0
    bytes: int = 0
    identities: int = 0
    images: int = 0
    set_bytes: dict[str, int] = field(default_factory=dict)  # shard set → bytes of its files
    pspi: Counter = field(default_factory=Counter)  # PSPI → expressions (neutral included)
    demographics: dict[str, Counter] = field(default_factory=lambda: {name: Counter() for name in DEMOGRAPHIC_FIELDS})

    def add(self, meta: dict, members: dict) -> None:
        self.identities += 1
        self.images += sum(map(is_image, members))
        for expression in meta["expressions"]:
            self.pspi[expression["pspi"]] += 1
        for name in DEMOGRAPHIC_FIELDS:
            self.demographics[name][meta["demographics"][name]] += 1

    def text(self) -> str:
        per_set = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in self.set_bytes.items())
        lines = [f"{self.url}: {self.identities} identities, {self.images} images (images set), {self.shards} shards, "
                 f"{self.bytes / 1e6:.1f} MB ({per_set})", "", "PSPI   expressions"]
        peak = max(self.pspi.values(), default=1)
        for value in range(MAX_PSPI + 1):
            count = self.pspi.get(value, 0)
            lines.append(f"{value:>4}   {count:>6}  {'█' * round(BAR_WIDTH * count / peak)}")
        for name, counts in self.demographics.items():
            share = ", ".join(f"{k} {v} ({100 * v / max(self.identities, 1):.0f}%)" for k, v in sorted(counts.items()))
            lines += ["", f"{name}: {share}"]
        return "\n".join(lines)


def summarize_dataset(url: str, storage_options: dict | None = None, progress: bool = False) -> DatasetSummary:
    from tqdm import tqdm

    dataset = open_dataset(url, storage_options)
    shards = dataset.manifest.shards
    set_bytes = {name: sum(s.file(name).bytes for s in shards) for name in dataset.manifest.sets}
    summary = DatasetSummary(url=url, shards=len(shards), bytes=sum(set_bytes.values()), set_bytes=set_bytes)
    with tqdm(desc="identities", unit="id", total=dataset.manifest.identities, disable=not progress) as bar:
        for record in shards:
            for key, members in dataset.shard_samples(record):
                summary.add(read_meta(f"{record.path}: {key}", key, members), members)
                bar.update()
    return summary
