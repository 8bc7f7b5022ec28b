"""The dataset card: a README.md and PNG plots that say what a dataset holds and how it was made.

    counts = LabelCounts(); counts.add(meta, members, split)     # per identity, mergeable across export chunks
    write_card(out, manifest, counts, samples, front_matter)     # README.md + plots/*.png
    card_for_dataset(url, out_url)                              # `factory card`: one pass over the dataset

Plots: the PSPI histogram, one intensity histogram per PSPI AU, the demographic strata counts and a sample grid
(factory.qa.preview's contact sheet of the first identities). Bars are drawn with PIL: no plotting dependency.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice

from PIL import Image, ImageDraw

from factory.format.dataset import Dataset, open_dataset
from factory.format.manifest import Manifest
from factory.format.members import META, is_image
from factory.format.storage import Storage
from factory.spec.expressions import NEUTRAL
from factory.spec.labels import MAX_PSPI, PSPI_AUS, max_intensity
from factory.spec.plan import DEMOGRAPHIC_FIELDS
from factory.spec.split import SplitConfig

SAMPLE_GRID_IDENTITIES = 2  # identities on the sample grid
PLOTS = {"pspi": "plots/pspi.png", "aus": "plots/aus.png", "demographics": "plots/demographics.png", "samples": "plots/samples.png"}
FACE_MODEL_LICENCES = {
    "ict-face-light": "ICT FaceKit (ICT Face Model Light), MIT licence, © USC Institute for Creative Technologies",
    "flame": "FLAME (MPI-IS): your own licensed copy; FLAME's licence allows non-commercial scientific research only",
}
CITATION = """@article{pain3d2025,
  title   = {Pain in 3D: Generating Controllable Synthetic Faces for Automated Pain Assessment},
  journal = {arXiv preprint arXiv:2509.16727},
  year    = {2025}
}"""


@dataclass
class LabelCounts:
    """Counts over identities: PSPI and AU intensities of the non-neutral expressions, demographic strata, splits."""

    identities: int = 0
    images: int = 0
    pspi: Counter = field(default_factory=Counter)  # PSPI → expressions
    aus: dict[str, Counter] = field(default_factory=lambda: {au: Counter() for au in PSPI_AUS})  # AU → intensity → expressions
    demographics: dict[str, Counter] = field(default_factory=lambda: {name: Counter() for name in DEMOGRAPHIC_FIELDS})
    splits: Counter = field(default_factory=Counter)  # split → identities

    def add(self, meta: dict, members: dict, split: str) -> None:
        self.identities += 1
        self.images += sum(map(is_image, members))
        self.splits[split] += 1
        for expression in meta["expressions"]:
            if expression["name"] != NEUTRAL:
                self.pspi[expression["pspi"]] += 1
                for au in PSPI_AUS:
                    self.aus[au][expression["aus"].get(au, 0)] += 1
        for name in DEMOGRAPHIC_FIELDS:
            self.demographics[name][meta["demographics"][name]] += 1

    def merge(self, other: "LabelCounts") -> "LabelCounts":
        self.identities += other.identities
        self.images += other.images
        self.pspi.update(other.pspi)
        self.splits.update(other.splits)
        for table, more in ((self.aus, other.aus), (self.demographics, other.demographics)):
            for name, counts in more.items():
                table.setdefault(name, Counter()).update(counts)
        return self

    def to_dict(self) -> dict:
        """JSON-ready (keys become strings; from_dict turns numeric ones back into ints)."""
        return {"identities": self.identities, "images": self.images, "pspi": dict(self.pspi), "splits": dict(self.splits),
                "aus": {k: dict(v) for k, v in self.aus.items()}, "demographics": {k: dict(v) for k, v in self.demographics.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelCounts":
        numeric = lambda counts: Counter({int(k): v for k, v in counts.items()})  # noqa: E731
        return cls(identities=data["identities"], images=data["images"], pspi=numeric(data["pspi"]), splits=Counter(data["splits"]),
                   aus={k: numeric(v) for k, v in data["aus"].items()}, demographics={k: Counter(v) for k, v in data["demographics"].items()})


def bar_chart(title: str, labels: list[str], values: list[int], width: int = 520, height: int = 240) -> Image.Image:
    """A captioned bar chart: one bar per label, its count above it."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), title, fill="black")
    left, bottom, top = 8, height - 18, 34
    slot = (width - 2 * left) / max(len(values), 1)
    peak = max(values, default=0) or 1
    for k, (label, value) in enumerate(zip(labels, values)):
        x = left + k * slot
        bar_top = bottom - (bottom - top) * value / peak
        draw.rectangle([x + slot * 0.15, bar_top, x + slot * 0.85, bottom], fill=(200, 70, 50))
        draw.text((x + slot * 0.15, bar_top - 12), str(value), fill="black")
        draw.text((x + slot * 0.15, bottom + 3), label, fill="black")
    return image


def stacked(images: list[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height
    return sheet


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def plots(counts: LabelCounts, samples: Iterable[tuple[str, str, dict[str, bytes]]]) -> dict[str, bytes]:
    """Plot path → PNG bytes. `samples` are decoded identities (member → bytes) for the sample grid."""
    from factory.qa.preview import contact_sheet

    pspi = bar_chart("PSPI of the pain expressions", [str(p) for p in range(MAX_PSPI + 1)],
                     [counts.pspi.get(p, 0) for p in range(MAX_PSPI + 1)], width=640)
    aus = stacked([bar_chart(f"{au} intensity", [str(i) for i in range(max_intensity(au) + 1)],
                             [counts.aus[au].get(i, 0) for i in range(max_intensity(au) + 1)], height=160) for au in PSPI_AUS])
    strata = stacked([bar_chart(f"identities by {name}", sorted(c), [c[k] for k in sorted(c)], width=760, height=180)
                      for name, c in counts.demographics.items()])
    return {PLOTS["pspi"]: png(pspi), PLOTS["aus"]: png(aus), PLOTS["demographics"]: png(strata),
            PLOTS["samples"]: png(contact_sheet(samples, max_identities=SAMPLE_GRID_IDENTITIES, thumb=96))}


def share(counts: Counter, total: int) -> str:
    return ", ".join(f"{name} {count} ({100 * count / max(total, 1):.0f} %)" for name, count in sorted(counts.items()))


def card_text(manifest: Manifest, counts: LabelCounts, front_matter: str = "") -> str:
    """README.md of the card; `front_matter` (YAML between --- lines) goes first, for the Hugging Face Hub."""
    render = manifest.config.get("render", {})
    face_model = "flame" if render.get("face_model") == "flame" else "ict-face-light"
    texturer = render.get("texturer", "procedural")
    weights = "none: the texturer is procedural" if texturer == "procedural" else f"those of the {texturer!r} texturer (see its model card)"
    expressions = sum(counts.pspi.values())
    au_rows = "\n".join(f"| {au} | " + " | ".join(str(counts.aus[au].get(i, 0)) for i in range(6)) + " |" for au in PSPI_AUS)
    config = json_block(manifest.config)
    return f"""{front_matter}# Synthetic 3D pain faces (painfactory)

Synthetic faces with exact facial action units (AUs) and PSPI pain labels, made by painfactory
{manifest.package_version} after "Pain in 3D" (arXiv 2509.16727): each identity has a neutral face and pain
expressions, rendered from several views, with pain-region heatmaps and a textured mesh.

## Contents
- identities: {counts.identities} ({share(counts.splits, counts.identities)}; identity-disjoint split, seeded hash of the identity id)
- images: {counts.images}; pain expressions (with hard negatives): {expressions}
- PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, 0–16; AUs 0–5 (AU43 0/1), all integers

![PSPI histogram]({PLOTS['pspi']})

| AU | 0 | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|---|
{au_rows}

![AU intensities]({PLOTS['aus']})

Demographics (per identity): {"; ".join(f"{name}: {share(c, counts.identities)}" for name, c in counts.demographics.items())}

![demographic strata]({PLOTS['demographics']})

![sample identities]({PLOTS['samples']})

## How it was made
`factory generate`, seed {manifest.seed}, painfactory {manifest.package_version}; the full configuration:

{config}

## Licences
- face model: {FACE_MODEL_LICENCES[face_model]}
- diffusion weights: {weights}
- painfactory: MIT

## Citation
```bibtex
{CITATION}
```
"""


def json_block(data: dict) -> str:
    return "```json\n" + json.dumps(data, indent=1, sort_keys=True) + "\n```"


def sample_grid(dataset: Dataset) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """The first identities, as the contact sheet takes them (for the card's sample grid), reading only the shards
    that hold them."""
    from factory.qa.preview import dataset_samples

    return islice(dataset_samples(dataset), SAMPLE_GRID_IDENTITIES)


def write_card(out: Storage, manifest: Manifest, counts: LabelCounts, samples: Iterable[tuple[str, str, dict[str, bytes]]], front_matter: str = "") -> None:
    """README.md and plots/*.png of the card into `out` (each file replaced whole)."""
    for path, data in plots(counts, samples).items():
        out.write_bytes(path, data)
    out.write_bytes("README.md", card_text(manifest, counts, front_matter).encode())


def card_for_dataset(url: str, out_url: str, storage_options: Mapping | None = None, out_storage_options: Mapping | None = None,
                     split: SplitConfig = SplitConfig(), progress: bool = False) -> LabelCounts:
    """`factory card`: read every meta.json of the dataset at `url` once and write its card into `out_url`."""
    from tqdm import tqdm

    dataset = open_dataset(url, storage_options)
    counts = LabelCounts()
    for _, members in tqdm(dataset.samples(), desc="card", unit="id", total=dataset.manifest.identities, disable=not progress):
        meta = json.loads(members[META])
        counts.add(meta, members, split.split_of(meta["id"]))
    write_card(Storage(out_url, out_storage_options), dataset.manifest, counts, sample_grid(dataset))
    return counts
