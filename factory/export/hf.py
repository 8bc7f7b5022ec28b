"""`--format hf`: Parquet shards with typed columns and a dataset card that Hugging Face `datasets` loads as is.

    out/README.md                          the card (factory/export/card.py) with the Hub's YAML header naming the splits
    out/data/train-00000.parquet           one file per chunk and split (splits: train, validation, test)
    out/plots/*.png

    datasets.load_dataset(out)             → DatasetDict of train / validation / test

One row per (pain image, neutral reference) pair: every non-neutral expression (pain, and PSPI-0 hard negatives)
in every view, with the neutral face of the same identity and view. `image` and `neutral` decode as images, `aus`
is a struct of every rig AU as an integer (0 where not set), `pspi` an integer. The splits are the trainer's
identity-disjoint split (factory/spec/split.py; the trainer's "val" is the Hub's "validation").
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

from factory.export.card import LabelCounts, sample_grid, write_card
from factory.export.chunks import Chunk, ExportError, Identity
from factory.format.members import IMAGES, view_member
from factory.format.storage import Storage
from factory.spec.expressions import NEUTRAL
from factory.spec.labels import RIG_AUS
from factory.spec.split import SPLITS, SplitConfig

HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def features():
    """The typed columns (a `datasets.Features`), stored in every Parquet file's schema."""
    from datasets import Features, Image, Value

    return Features({
        "key": Value("string"),  # "id-0000123/pain03.v1": identity, expression and view of the pain image
        "identity": Value("string"), "index": Value("int32"), "expression": Value("string"), "view": Value("string"),
        "image": Image(), "neutral": Image(),
        "pspi": Value("int32"), "aus": {au: Value("int32") for au in RIG_AUS}, "hard_negative": Value("bool"),
        "age": Value("int32"), "age_band": Value("string"), "gender": Value("string"), "ethnicity": Value("string"),
    })


def identity_rows(identity: Identity) -> list[dict]:
    meta, members = identity.meta, identity.members
    demographics = meta["demographics"]
    rows = []
    for view in meta["views"]:
        neutral = view_member(NEUTRAL, view["name"])
        for expression in meta["expressions"]:
            if expression["name"] == NEUTRAL:
                continue
            pain = view_member(expression["name"], view["name"])
            missing = [m for m in (pain, neutral) if m not in members]
            if missing:
                raise ExportError(f"{meta['id']}: the sample has no member {missing[0]}")
            rows.append({
                "key": f"{meta['id']}/{expression['name']}.{view['name']}", "identity": meta["id"], "index": meta["index"],
                "expression": expression["name"], "view": view["name"],
                "image": {"bytes": members[pain], "path": pain}, "neutral": {"bytes": members[neutral], "path": neutral},
                "pspi": expression["pspi"], "aus": {au: int(expression["aus"].get(au, 0)) for au in RIG_AUS},
                "hard_negative": bool(expression.get("hard_negative", False)),
                "age": demographics["age"], "age_band": demographics["age_band"], "gender": demographics["gender"],
                "ethnicity": demographics["ethnicity"],
            })
    return rows


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features().arrow_schema  # carries the `huggingface` metadata: the column types survive the file
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer, row_group_size=256)
    return buffer.getvalue()


@dataclass(frozen=True)
class HuggingFaceExporter:
    split: SplitConfig = SplitConfig()
    sets = (IMAGES,)  # the shard sets it reads

    def options(self) -> dict:
        return {"format": "hf", "split_seed": self.split.seed, "split_fractions": list(self.split.fractions)}

    def write_chunk(self, out: Storage, chunk: Chunk, identities: Iterable[Identity]) -> dict:
        counts, by_split = LabelCounts(), {split: [] for split in SPLITS}
        for identity in identities:
            split = self.split.split_of(identity.meta["id"])
            counts.add(identity.meta, identity.members, split)
            by_split[split] += identity_rows(identity)
        paths = []
        for split, rows in by_split.items():
            if rows:
                path = f"data/{HUB_SPLITS[split]}-{chunk.number:05d}.parquet"
                out.write_bytes(path, parquet_bytes(rows))
                paths.append(path)
        return {"files": paths, "counts": counts.to_dict(), "rows": {split: len(rows) for split, rows in by_split.items()}}

    def finish(self, out: Storage, context, records: list[dict]) -> None:
        """The card, its YAML header listing the splits that have rows."""
        counts = LabelCounts()
        for record in records:
            counts.merge(LabelCounts.from_dict(record["counts"]))
        present = [HUB_SPLITS[s] for s in SPLITS if any(record["rows"].get(s) for record in records)]
        header = "---\nconfigs:\n- config_name: default\n  data_files:\n" + "".join(
            f"  - split: {split}\n    path: data/{split}-*.parquet\n" for split in present) + "license: other\n---\n\n"
        write_card(out, context.manifest, counts, sample_grid(context.dataset), front_matter=header)
