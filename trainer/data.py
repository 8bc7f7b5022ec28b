"""From painfactory shards to training batches, streamed: no local copy of the dataset.

    open_dataset (factory.format) ─▶ manifest's shards ─▶ this rank's shards ─▶ identity samples (streamed, the
        `images` shard set only: RGB, meta.json, heatmaps; depth, segmentation and meshes are never downloaded)
        ─▶ keep this split's identities ─▶ (pain, neutral reference) pairs ─▶ shuffle buffer ─▶ augment ─▶ batches

A sample is one identity, so a pain image and its neutral reference arrive together. Each identity gives, per
view, one pair per non-neutral expression (pain, or PSPI-0 hard negatives) with the neutral face of that view
as reference, plus one neutral–neutral pair labelled PSPI 0 (told apart only by their augmentations), so the
model sees "no change" as often as it sees each view. A sequence dataset (factory generate --sequence-frames)
adds one pair per frame of each pain sequence and view, with the frame's rounded AUs and PSPI.

The train/val/test split is identity-disjoint: factory/spec/split.py (a seeded hash of the identity id), the same
function `factory export` writes splits.csv and the Hugging Face splits with.

Nothing read is trusted, and it is checked where every reader checks it, in factory/format: a shard is streamed,
hashed and must match its manifest record (size and sha256), its members must be the format's and within their
sizes (`Dataset.shard_samples`), a meta.json must match its schema, every expression's labels factory/spec (AUs
known, integers in range; PSPI equal to the PSPI of its AUs), and images must decode within their size
(`read_meta`, `decode_image`). Anything else stops the reader with a ShardError (a SampleError for a sample's
content) that names the shard, the identity and the expression or member.

Streaming from S3 runs at the speed of a local folder because nothing waits on the store: a background thread
reads shards `read_ahead` identities ahead of training (the next shard downloads while this one trains), and
batches are made one or two ahead by another thread, each pair decoded and augmented on a small thread pool.
Both keep their order, so the same seed gives the same batches.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from factory.format.dataset import Dataset, DatasetError, open_dataset
from factory.format.manifest import ShardRecord
from factory.format.members import IMAGES, KINDS, view_member
from factory.format.sample import decode_image, read_meta
from factory.format.storage import public_storage_options
from factory.spec.expressions import NEUTRAL
from factory.spec.labels import PSPI_AUS, max_intensity
from factory.spec.plan import DEMOGRAPHIC_FIELDS
from factory.spec.split import SPLITS, SplitConfig, check_split  # noqa: F401  (SPLITS: re-exported)


@dataclass(frozen=True)
class Pair:
    """One training example: encoded images and labels. `group` holds what metrics break down by (`pair_group`);
    `identity` is the person, the unit that fairness bootstraps resample."""

    key: str  # "id-0000123/pain03.v1"
    identity: str
    pain: bytes
    reference: bytes
    pspi: float
    aus: tuple[float, ...]  # the six PSPI AUs scaled to 0..1
    group: dict


# The groups metrics break down by (evaluate's MAE per group, `trainer report`): a name and where its value lies in
# meta.json, "view" meaning the pair's own entry of meta["views"]. A field a dataset lacks is left out, so fields
# later datasets add (a scenario, an occluder per view) appear in the reports once named here.
GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    **{name: ("demographics", name) for name in DEMOGRAPHIC_FIELDS},
    "fitzpatrick": ("skin", "fitzpatrick"),
    "scenario": ("scenario",),
    "occluder": ("view", "occluder"),
}


def pair_group(meta: Mapping, view: Mapping) -> dict:
    """{group name: value} of the pairs of one identity and view, for every GROUP_FIELDS entry this sample has
    as a plain value (text, number, true/false)."""
    group = {}
    for name, path in GROUP_FIELDS.items():
        value = view if path[0] == "view" else meta.get(path[0])
        for step in path[1:]:
            value = value.get(step) if isinstance(value, Mapping) else None
        if isinstance(value, (str, int, float, bool)):
            group[name] = value
    return group


def scaled_aus(aus: Mapping) -> tuple[float, ...]:
    """The six PSPI AUs in PSPI_AUS order (the model's AU outputs), each divided by its maximum: 0..1."""
    return tuple(float(aus.get(au, 0)) / max_intensity(au) for au in PSPI_AUS)


# ---------------------------------------------------------------------------------------------- the shards


def identity_pairs(sample: dict, meta: dict) -> list[Pair]:
    """Every (expression image, neutral reference of the same view) pair of one identity, plus neutral–neutral,
    and in a sequence dataset every (frame, neutral) pair with the frame's own labels (key "id/pain03f05.v1").
    `meta` is the sample's meta.json as `read_meta` checked it (labels valid for factory/spec)."""
    identity = meta["id"]
    expressions = [(e["name"], float(e["pspi"]), scaled_aus(e["aus"])) for e in meta["expressions"] + meta.get("frames", [])]
    pairs = []
    for view, group in ((view["name"], pair_group(meta, view)) for view in meta["views"]):
        reference = sample.get(view_member(NEUTRAL, view))
        if reference is None:
            continue
        for name, pspi_value, aus in expressions:
            image = sample.get(view_member(name, view))
            if image is not None:
                pairs.append(Pair(key=f"{identity}/{name}.{view}", identity=identity, pain=image, reference=reference, pspi=pspi_value, aus=aus, group=group))
    return pairs


_END = object()


def read_ahead(items: Iterator, size: int, name: str) -> Iterator:
    """`items` in their order, produced by a background thread that keeps up to `size` of them ready: while the
    consumer works on one item, the next ones are being read (a shard downloading, its tar parsed, images
    decoded). The producer's error is raised where its item would have come; closing the consumer stops it."""
    ready: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_END, None))
        except BaseException as error:  # raised again in the consumer, in order
            offer((_END, error))
        finally:
            if hasattr(items, "close"):
                items.close()  # a generator's open shard is closed here, in the thread that runs it

    threading.Thread(target=produce, name=name, daemon=True).start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()


@dataclass(frozen=True)
class ShardPairs:
    """Pairs of a painfactory dataset at `url`, one split of it, divided between ranks."""

    url: str
    split: SplitConfig = SplitConfig()
    storage_options: Mapping = field(default_factory=dict)  # merged over the environment's, as for every factory command
    read_ahead: int = 16  # identities a background thread reads ahead of training: the next shards download meanwhile

    def dataset(self) -> Dataset:
        return open_dataset(self.url, self.storage_options)

    def check(self) -> None:
        """Fail now, with a clear message, if the dataset cannot be read (rather than inside every worker)."""
        if not self.dataset().manifest.shards:
            raise DatasetError(f"the manifest of {self.url} lists no shards (is the dataset still being generated?)")

    def for_workers(self) -> "ShardPairs":
        """This source as it may travel to Ray Train workers, and into what Ray records: without credentials."""
        return replace(self, storage_options=public_storage_options(self.storage_options))

    def describe(self) -> dict:
        return {"kind": "painfactory-shards", "url": self.url, "split_seed": self.split.seed, "fractions": list(self.split.fractions)}

    def pairs(self, split: str, rank: int = 0, world: int = 1, epoch: int = 0, shuffle: bool = False) -> Iterator[Pair]:
        """With at least as many shards as ranks, each rank streams its own shards; otherwise every rank
        streams all shards and keeps every world-th identity. Shard order is shuffled per epoch when asked.
        Shards are read `read_ahead` identities ahead, in a background thread, in the same order."""
        check_split(split)
        dataset = self.dataset()
        shards = list(dataset.manifest.shards)
        if shuffle:
            random.Random(f"{self.split.seed}:{epoch}").shuffle(shards)
        by_shard = len(shards) >= world
        if by_shard:
            shards = shards[rank::world]
        keep = (lambda position: True) if by_shard else (lambda position: position % world == rank)
        for pairs in read_ahead(self._identities(dataset, shards, split, keep), self.read_ahead, "painfactory-read-ahead"):
            yield from pairs

    def _identities(self, dataset: Dataset, shards: list[ShardRecord], split: str, keep) -> Iterator[list[Pair]]:
        """The pairs of each identity of `split` in `shards` whose position `keep` accepts, one list per identity."""
        position = 0
        for record in shards:
            for key, sample in dataset.shard_samples(record, (IMAGES,)):
                if keep(position) and self.split.split_of(key) == split:
                    yield identity_pairs(sample, read_meta(f"{record.path}: {key}", key, sample))
                position += 1


# ---------------------------------------------------------------------------------------- images to tensors


@dataclass(frozen=True)
class Augmentation:
    """The official ViTPain augmentations. The geometric ones (flip, rotation, affine) are drawn once per pair
    and applied to both faces so their tokens stay aligned; colour jitter and blur are drawn per image.
    Colour factors are drawn from 1 ± the value (hue: a shift of ± the value, in turns of the colour wheel)."""

    flip: float = 0.5  # probability
    rotate_deg: float = 5.0
    translate: float = 0.05  # fraction of the image size
    scale: float = 0.05  # relative ±
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    blur: float = 0.2  # probability of a Gaussian blur

    def __post_init__(self) -> None:
        for name in ("flip", "blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        for name in ("translate", "scale", "brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.rotate_deg <= 180 or not 0 <= self.hue <= 0.5:
            raise ValueError(f"rotate_deg must be in [0, 180] and hue in [0, 0.5], got {self.rotate_deg} and {self.hue}")


@dataclass(frozen=True)
class PairTransform:
    image_size: int
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    augmentation: Augmentation | None = None

    def decode(self, data: bytes, where: str = "image") -> torch.Tensor:
        """An RGB render, checked by factory/format/sample.py (`where` names it in errors)."""
        image = decode_image(where, data, KINDS["rgb"]).convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)

    def __call__(self, pair: Pair, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        pain, reference = self.decode(pair.pain, pair.key), self.decode(pair.reference, f"{pair.key} reference")
        if self.augmentation is not None:
            pain, reference = augment_pair(pain, reference, self.augmentation, rng)
        mean, std = torch.tensor(self.mean).view(3, 1, 1), torch.tensor(self.std).view(3, 1, 1)
        return (pain - mean) / std, (reference - mean) / std


def augment_pair(pain: torch.Tensor, reference: torch.Tensor, aug: Augmentation, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.transforms.v2 import functional as TF

    flip = rng.random() < aug.flip
    angle = rng.uniform(-aug.rotate_deg, aug.rotate_deg)
    size = pain.shape[-1]
    shift = [round(rng.uniform(-aug.translate, aug.translate) * size) for _ in range(2)]
    scale = rng.uniform(1 - aug.scale, 1 + aug.scale)

    def geometry(image: torch.Tensor) -> torch.Tensor:
        image = TF.horizontal_flip(image) if flip else image
        return TF.affine(image, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0])

    def colour(image: torch.Tensor) -> torch.Tensor:
        image = TF.adjust_brightness(image, rng.uniform(1 - aug.brightness, 1 + aug.brightness))
        image = TF.adjust_contrast(image, rng.uniform(1 - aug.contrast, 1 + aug.contrast))
        image = TF.adjust_saturation(image, rng.uniform(1 - aug.saturation, 1 + aug.saturation))
        if aug.hue:  # a hue shift converts to HSV and back: skipped, and not drawn, when off
            image = TF.adjust_hue(image, rng.uniform(-aug.hue, aug.hue))
        if rng.random() < aug.blur:
            image = TF.gaussian_blur(image, kernel_size=[3, 3], sigma=[rng.uniform(0.1, 1.0)] * 2)
        return image.clamp(0, 1)

    return colour(geometry(pain)), colour(geometry(reference))


def shuffled(pairs: Iterable[Pair], buffer_size: int, rng: random.Random) -> Iterator[Pair]:
    """A streaming shuffle: hold up to `buffer_size` pairs and emit a random one as each new one arrives."""
    buffer: list[Pair] = []
    for pair in pairs:
        buffer.append(pair)
        if len(buffer) >= buffer_size:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


def batches(pairs: Iterable[Pair], transform: PairTransform, batch_size: int, rng: random.Random, drop_last: bool,
            decode_threads: int = 2, ahead: int = 2) -> Iterator[dict]:
    """Batches of {"pain", "reference": [B, 3, S, S], "pspi": [B], "aus": [B, 6], "keys", "groups", "identities"}, made by a
    background thread `ahead` batches before they are asked for (so the next batch decodes while the model
    trains on this one), each batch's pairs decoded and augmented on `decode_threads` threads (PIL and torch
    release the GIL while they work). Same `rng`, same batches, whatever the number of threads."""
    return read_ahead(_batches(pairs, transform, batch_size, rng, drop_last, decode_threads), ahead, "painfactory-batches")


def _batches(pairs: Iterable[Pair], transform: PairTransform, batch_size: int, rng: random.Random, drop_last: bool,
             decode_threads: int) -> Iterator[dict]:
    with ThreadPoolExecutor(decode_threads, thread_name_prefix="painfactory-decode") as pool:
        chunk: list[Pair] = []
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) == batch_size:
                yield collate(chunk, transform, rng, pool)
                chunk = []
        if chunk and not drop_last:
            yield collate(chunk, transform, rng, pool)


def collate(chunk: list[Pair], transform: PairTransform, rng: random.Random, pool: ThreadPoolExecutor) -> dict:
    """One batch. Each pair's augmentation draws from a generator of its own, seeded from `rng` in pair order,
    so the pairs can be decoded in any order, on any number of threads."""
    seeds = [rng.getrandbits(64) for _ in chunk]
    images = list(pool.map(lambda pair, seed: transform(pair, random.Random(seed)), chunk, seeds))
    return {
        "pain": torch.stack([pain for pain, _ in images]),
        "reference": torch.stack([reference for _, reference in images]),
        "pspi": torch.tensor([pair.pspi for pair in chunk], dtype=torch.float32),
        "aus": torch.tensor([pair.aus for pair in chunk], dtype=torch.float32),
        "keys": [pair.key for pair in chunk],
        "groups": [pair.group for pair in chunk],
        "identities": [pair.identity for pair in chunk],
    }
