"""`factory export`: a painfactory dataset in the layouts other people's code already reads.

    export(ExportRequest(url="s3://bucket/ds", out="./3dpain", format="3dpain", layout="archive"))

Formats (a registry, one module each): `3dpain` (the published 3DPain layout of tar.gz chunks, or with
layout "folder" the official ViTPain training code's unpacked layout with splits.csv; pain3d.py) and `hf`
(Parquet shards and a dataset card for Hugging Face `datasets`; hf.py). The dataset is read through the one reader,
factory.format.dataset.open_dataset, chunk by chunk (chunks.py): a chunk's files are committed atomically and
recorded, so a rerun skips finished chunks, and either end may be a local folder or any fsspec URL (s3://).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from factory.export.chunks import ExportError, chunk_identities, claim_output, plan_chunks, read_chunk_record, write_chunk_record
from factory.export.hf import HuggingFaceExporter
from factory.export.pain3d import Pain3DExporter
from factory.format.dataset import Dataset, open_dataset
from factory.format.manifest import Manifest
from factory.format.storage import Storage
from factory.spec.split import SplitConfig

# format name → builder of its exporter from the request
EXPORTERS: dict[str, Callable[["ExportRequest"], object]] = {
    "3dpain": lambda r: Pain3DExporter(layout=r.layout, mesh=r.mesh, split=r.split),
    "hf": lambda r: HuggingFaceExporter(split=r.split),
}
DEFAULT_IDENTITIES_PER_CHUNK = 100


@dataclass(frozen=True)
class ExportRequest:
    url: str
    out: str
    format: str = "3dpain"
    layout: str = "archive"  # 3dpain only: "archive" or "folder"
    mesh: str = "glb"  # 3dpain only: "glb" or "obj"
    identities_per_chunk: int = DEFAULT_IDENTITIES_PER_CHUNK
    split: SplitConfig = SplitConfig()
    storage_options: Mapping = field(default_factory=dict)  # of the dataset
    out_storage_options: Mapping = field(default_factory=dict)

    def exporter(self):
        try:
            build = EXPORTERS[self.format]
        except KeyError:
            raise ExportError(f"--format must be one of {', '.join(EXPORTERS)}, got {self.format!r}") from None
        if self.format != "3dpain" and (self.layout, self.mesh) != ("archive", "glb"):
            raise ExportError("--layout and --mesh apply to --format 3dpain only")
        return build(self)


@dataclass(frozen=True)
class ExportContext:
    """What an exporter's `finish` may use besides the chunk records."""

    source: str
    dataset: Dataset

    @property
    def manifest(self) -> Manifest:
        return self.dataset.manifest


@dataclass
class ExportReport:
    out: str
    format: str
    chunks_written: int = 0
    chunks_skipped: int = 0  # finished by an earlier run
    chunks_waiting: int = 0  # identities not generated yet
    identities_written: int = 0
    seconds: float = 0.0

    def text(self) -> str:
        rate = f", {self.seconds / self.identities_written:.2f} s per identity" if self.identities_written else ""
        waiting = f"; {self.chunks_waiting} chunks wait for identities not generated yet (run again later)" if self.chunks_waiting else ""
        return (f"exported {self.identities_written} identities as {self.format} → {self.out}: {self.chunks_written} chunks written, "
                f"{self.chunks_skipped} already done, {self.seconds:.1f} s{rate}{waiting}")


def export(request: ExportRequest, progress: bool = False) -> ExportReport:
    from tqdm import tqdm

    exporter = request.exporter()
    dataset = open_dataset(request.url, request.storage_options)
    dataset.require(exporter.sets)  # before anything is written
    out = Storage(request.out, request.out_storage_options)
    claim_output(out, exporter.options() | {"identities_per_chunk": request.identities_per_chunk, "dataset_seed": dataset.manifest.seed})
    chunks = plan_chunks(dataset.manifest.identities, request.identities_per_chunk)
    report, records, started = ExportReport(out=request.out, format=request.format), [], time.perf_counter()
    bar = tqdm(total=dataset.manifest.identities, desc="export", unit="id", disable=not progress)
    for chunk in chunks:
        record = read_chunk_record(out, chunk)
        if record is not None:
            report.chunks_skipped += 1
        elif not chunk.is_complete(dataset.manifest.shards):
            report.chunks_waiting += 1
        else:
            record = exporter.write_chunk(out, chunk, chunk_identities(dataset, chunk, exporter.sets))
            if record["counts"]["identities"] != chunk.count:
                raise ExportError(f"{dataset.url}: chunk {chunk.number} should hold {chunk.count} identities, its shards gave "
                                  f"{record['counts']['identities']} (run `factory verify`)")
            write_chunk_record(out, chunk, record | {"first_index": chunk.first_index, "count": chunk.count})
            report.chunks_written += 1
            report.identities_written += chunk.count
        if record is not None:
            records.append(record)
        bar.update(chunk.count)
    bar.close()
    exporter.finish(out, ExportContext(source=request.url, dataset=dataset), records)
    report.seconds = time.perf_counter() - started
    return report
