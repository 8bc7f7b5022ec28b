"""From painfactory shards to training batches, streamed: no local copy of the dataset.

    open_dataset (factory.format) ─▶ manifest's shards ─▶ this rank's shards ─▶ identity samples (streamed)
        ─▶ keep this split's identities ─▶ (pain, neutral reference) pairs ─▶ shuffle buffer ─▶ augment ─▶ batches

A sample is one identity, so a pain image and its neutral reference arrive together. Each identity gives, per
view, one pair per non-neutral expression (pain, or PSPI-0 hard negatives) with the neutral face of that view
as reference, plus one neutral–neutral pair labelled PSPI 0 (told apart only by their augmentations), so the
model sees "no change" as often as it sees each view.

The train/val/test split is identity-disjoint: a seeded hash of the identity id, independent of shard layout,
worker count and dataset size (70/20/10 by default).

Nothing read is trusted: a shard read to its end must match its manifest record (size and sha256), a meta.json
must hold the fields pairs are made of, and every expression's labels must satisfy factory/spec (AUs known,
integers in range; PSPI equal to the PSPI of its AUs). Anything else stops the reader with a SampleError that
names the shard, the identity and the expression.

Streaming from S3 runs at the speed of a local folder because nothing waits on the store: a background thread
reads shards `read_ahead` identities ahead of training (the next shard downloads while this one trains), and
batches are made one or two ahead by another thread, each pair decoded and augmented on a small thread pool.
Both keep their order, so the same seed gives the same batches.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import queue
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from factory.errors import FactoryError
from factory.format.dataset import Dataset, DatasetError, open_dataset
from factory.format.manifest import ShardRecord
from factory.format.members import META, view_member
from factory.format.shards import read_shard
from factory.format.storage import STORE_ERRORS, StorageError, describe_error, public_storage_options
from factory.spec.expressions import NEUTRAL
from factory.spec.labels import PSPI_AUS, max_intensity, pspi
from factory.spec.plan import DEMOGRAPHIC_FIELDS

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Pair:
    """One training example: encoded images and labels. `group` holds the demographics metrics break down by."""

    key: str  # "id-0000123/pain03.v1"
    pain: bytes
    reference: bytes
    pspi: float
    aus: tuple[float, ...]  # the six PSPI AUs scaled to 0..1
    group: dict


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0 or not math.isclose(sum(self.fractions), 1.0):
            raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {self.fractions}")

    def split_of(self, identity: str) -> str:
        """'train', 'val' or 'test' for an identity id, from a seeded hash: stable across runs and machines."""
        digest = hashlib.sha256(f"{self.seed}:{identity}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        train, val, _ = self.fractions
        return "train" if position < train else "val" if position < train + val else "test"


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


def scaled_aus(aus: Mapping) -> tuple[float, ...]:
    """The six PSPI AUs in PSPI_AUS order (the model's AU outputs), each divided by its maximum: 0..1."""
    return tuple(float(aus.get(au, 0)) / max_intensity(au) for au in PSPI_AUS)


# ---------------------------------------------------------------------------------------------- the shards


class SampleError(FactoryError, ValueError):
    """A shard or sample breaks the data contract: bytes that differ from the manifest's record, a meta.json
    without the fields pairs need, labels that disagree with factory/spec. The message names shard, identity and
    expression; the trainer reports it in one line."""


def expression_labels(where: str, expression: Mapping) -> tuple[float, tuple[float, ...]]:
    """(PSPI, scaled AUs) of one meta.json expression, checked against factory/spec: every AU known and an
    integer in its range (so finite), and a PSPI equal to AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 of them."""
    aus, stated = expression["aus"], expression["pspi"]
    if not isinstance(aus, Mapping):
        raise SampleError(f"{where}: aus must be a mapping of action units, got {aus!r}")
    try:
        computed = pspi(aus)
    except ValueError as error:
        raise SampleError(f"{where}: {error}") from None
    if isinstance(stated, bool) or stated != computed:  # NaN equals nothing, a string no number
        raise SampleError(f"{where}: pspi {stated!r} differs from the PSPI of its AUs, AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 = {computed}")
    return float(computed), scaled_aus(aus)


def identity_pairs(sample: dict, meta: dict, where: str = "") -> list[Pair]:
    """Every (expression image, neutral reference of the same view) pair of one identity, plus neutral–neutral.
    `meta` is the sample's parsed meta.json, its labels checked by `expression_labels`; `where` names the
    sample in errors ("shards/shard-000003.tar: id-0000012")."""
    where = where or str(meta.get("id") if isinstance(meta, dict) else "meta.json")
    try:
        identity = meta["id"]
        group = {k: meta["demographics"][k] for k in DEMOGRAPHIC_FIELDS if k in meta.get("demographics", {})}
        views = [view["name"] for view in meta["views"]]
        expressions = [(e["name"], *expression_labels(f"{where} {e['name']}", e)) for e in meta["expressions"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise SampleError(f"{where}: meta.json lacks or mistypes a field the pairs need ({type(error).__name__}: {error})") from None
    pairs = []
    for view in views:
        reference = sample.get(view_member(NEUTRAL, view))
        if reference is None:
            continue
        for name, pspi_value, aus in expressions:
            image = sample.get(view_member(name, view))
            if image is not None:
                pairs.append(Pair(key=f"{identity}/{name}.{view}", pain=image, reference=reference, pspi=pspi_value, aus=aus, group=group))
    return pairs


def sample_pairs(shard: str, key: str, sample: dict) -> list[Pair]:
    """The pairs of one sample read from `shard`, its meta.json parsed and checked to be this sample's."""
    where = f"{shard}: {key}"
    try:
        meta = json.loads(sample[META])
    except KeyError:
        raise SampleError(f"{where}: {META} missing") from None
    except ValueError as error:
        raise SampleError(f"{where}: {META} is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("id") != key:
        raise SampleError(f"{where}: {META} is not this sample's (its id is {meta.get('id') if isinstance(meta, dict) else None!r})")
    return identity_pairs(sample, meta, where)


class DigestReader:
    """A file open for reading that counts and hashes (sha256) every byte read through it; a failing store
    becomes a StorageError naming the file."""

    def __init__(self, handle, where: str) -> None:
        self.handle, self.where = handle, where
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.handle.read(size)
        except STORE_ERRORS as error:
            raise StorageError(f"cannot read {self.where}: {describe_error(error)}") from error
        self.size += len(data)
        self.digest.update(data)
        return data

    def read_to_end(self) -> None:
        while self.read(1 << 20):
            pass


def shard_samples(dataset: Dataset, record: ShardRecord) -> Iterator[tuple[str, dict[str, bytes]]]:
    """One shard's samples, streamed. Read to its end, the shard must match its manifest record (size and
    sha256): one cut short (tar streaming ends quietly) or changed after it was listed stops training before
    the epoch it fed reaches a checkpoint."""
    with dataset.storage.open_read(record.path) as handle:
        reader = DigestReader(handle, dataset.storage.describe(record.path))
        yield from read_shard(reader, name=record.path)
        reader.read_to_end()
    sha256 = reader.digest.hexdigest()
    if reader.size != record.bytes or sha256 != record.sha256:
        raise SampleError(f"{record.path}: {reader.size} bytes with sha256 {sha256[:16]}…, the manifest lists {record.bytes} bytes "
                          f"with sha256 {record.sha256[:16]}… (changed or cut short after it was written; `factory verify` "
                          "checks a whole dataset)")


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
            for key, sample in shard_samples(dataset, record):
                if keep(position) and self.split.split_of(key) == split:
                    yield sample_pairs(record.path, key, sample)
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

    def decode(self, data: bytes) -> torch.Tensor:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)

    def __call__(self, pair: Pair, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        pain, reference = self.decode(pair.pain), self.decode(pair.reference)
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
    """Batches of {"pain", "reference": [B, 3, S, S], "pspi": [B], "aus": [B, 6], "keys", "groups"}, made by a
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
    }
