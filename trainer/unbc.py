"""UNBC-McMaster Shoulder Pain Expression Archive, in its standard layout:

    ROOT/Images/<subject>/<sequence>/<frame>.png
    ROOT/Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt   one number: the frame's PSPI
    ROOT/Frame_Labels/FACS/<subject>/<sequence>/<frame>_facs.txt   rows "AU intensity [onset offset]"

Each frame is paired with a neutral reference of the same subject: the nearest other PSPI-0 frame of its own
sequence, or, when the sequence has none, the subject's first other PSPI-0 frame. Splits are subject-wise:
k-fold (subjects dealt into k folds after a seeded shuffle; fold K is the test set, fold K+1 the validation
set) or leave-one-subject-out (subject K is the test set, the next subject the validation set).
The archive itself is licensed to its users and never ships with this project.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from factory.spec.labels import MAX_PSPI
from trainer.data import Pair, check_split, scaled_aus

PROTOCOLS = ("kfold", "loso")


@dataclass(frozen=True)
class Frame:
    subject: str
    sequence: str
    image: Path
    pspi: float
    aus: dict


def read_pspi(path: Path) -> float:
    text = path.read_text().split()
    if len(text) != 1:
        raise ValueError(f"{path}: expected one PSPI number, got {len(text)} fields")
    try:
        value = float(text[0])
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_PSPI:  # NaN fails too
        raise ValueError(f"{path}: PSPI must be a number from 0 to {MAX_PSPI}, got {text[0]!r}")
    return value


def read_facs(path: Path) -> dict:
    """{"AU4": 2, …} from a FACS file; absent file or no rows means no AU set."""
    aus = {}
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split()
            if fields:
                aus[f"AU{int(float(fields[0]))}"] = float(fields[1]) if len(fields) > 1 else 1.0
    return aus


def scan_frames(root: Path) -> list[Frame]:
    """Every labelled frame under ROOT, sorted by subject, sequence and frame name."""
    images, labels = root / "Images", root / "Frame_Labels" / "PSPI"
    if not images.is_dir() or not labels.is_dir():
        raise FileNotFoundError(f"{root} is not an UNBC-McMaster folder: need Images/ and Frame_Labels/PSPI/")
    frames = []
    for image in sorted(images.glob("*/*/*.png")):
        subject, sequence = image.parent.parent.name, image.parent.name
        relative = Path(subject) / sequence / f"{image.stem}_facs.txt"
        if not (labels / relative).exists():
            continue  # unlabelled frame
        frames.append(Frame(subject, sequence, image, read_pspi(labels / relative),
                            read_facs(root / "Frame_Labels" / "FACS" / relative)))
    if not frames:
        raise ValueError(f"no labelled frames under {root} (Images/<subject>/<sequence>/<frame>.png with a PSPI label)")
    return frames


def neutral_references(frames: list[Frame]) -> dict[Path, Path]:
    """For each frame, the image of its neutral reference (see the module docstring). A neutral frame is
    paired with itself only when it is its subject's one PSPI-0 frame."""
    by_sequence: dict[tuple[str, str], list[int]] = {}
    by_subject: dict[str, list[int]] = {}
    for index, frame in enumerate(frames):
        if frame.pspi == 0:
            by_sequence.setdefault((frame.subject, frame.sequence), []).append(index)
            by_subject.setdefault(frame.subject, []).append(index)
    references = {}
    for index, frame in enumerate(frames):
        in_sequence = [k for k in by_sequence.get((frame.subject, frame.sequence), []) if k != index]
        in_subject = [k for k in by_subject.get(frame.subject, []) if k != index] or by_subject.get(frame.subject, [])
        if in_sequence:
            references[frame.image] = frames[min(in_sequence, key=lambda k: abs(k - index))].image
        elif in_subject:
            references[frame.image] = frames[in_subject[0]].image
        else:
            raise ValueError(f"subject {frame.subject} has no PSPI-0 frame to serve as a neutral reference")
    return references


@dataclass(frozen=True)
class UnbcPairs:
    """(frame, neutral reference) pairs of one subject-wise fold of UNBC-McMaster."""

    root: str
    fold: int = 0
    folds: int = 5
    protocol: str = "kfold"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "kfold" and not (self.folds >= 3 and 0 <= self.fold < self.folds):
            raise ValueError(f"k-fold needs folds >= 3 and 0 <= fold < folds, got fold {self.fold} of {self.folds}")

    def check(self) -> None:
        """Fail now, with a clear message, if the archive or the fold cannot be used."""
        for split in ("train", "val", "test"):
            self.subjects(split)

    def for_workers(self) -> "UnbcPairs":
        """As it travels to Ray Train workers: local files, nothing to leave out."""
        return self

    def describe(self) -> dict:
        return {"kind": "unbc-mcmaster", "root": self.root, "fold": self.fold, "folds": self.folds, "protocol": self.protocol, "seed": self.seed}

    @cached_property
    def frames(self) -> list[Frame]:
        return scan_frames(Path(self.root))

    @cached_property
    def references(self) -> dict[Path, Path]:
        return neutral_references(self.frames)

    def subjects(self, split: str) -> list[str]:
        check_split(split)
        subjects = sorted({frame.subject for frame in self.frames})
        if self.protocol == "loso":
            if not 0 <= self.fold < len(subjects):
                raise ValueError(f"leave-one-subject-out fold must be 0..{len(subjects) - 1}, got {self.fold}")
            test, val = subjects[self.fold], subjects[(self.fold + 1) % len(subjects)]
            return {"test": [test], "val": [val]}.get(split, [s for s in subjects if s not in (test, val)])
        if len(subjects) < self.folds:
            raise ValueError(f"{len(subjects)} subjects cannot make {self.folds} folds")
        random.Random(self.seed).shuffle(subjects)
        fold_of = {subject: position % self.folds for position, subject in enumerate(subjects)}
        wanted = {"test": {self.fold}, "val": {(self.fold + 1) % self.folds}}.get(
            split, set(range(self.folds)) - {self.fold, (self.fold + 1) % self.folds})
        return sorted(s for s in subjects if fold_of[s] in wanted)

    def pairs(self, split: str, rank: int = 0, world: int = 1, epoch: int = 0, shuffle: bool = False) -> Iterator[Pair]:
        subjects = set(self.subjects(split))
        frames = [frame for frame in self.frames if frame.subject in subjects]
        if shuffle:
            random.Random(f"{self.seed}:{epoch}").shuffle(frames)
        for frame in frames[rank::world]:
            yield Pair(key=f"{frame.subject}/{frame.image.stem}", identity=frame.subject, pain=frame.image.read_bytes(),
                       reference=self.references[frame.image].read_bytes(), pspi=frame.pspi,
                       aus=scaled_aus({au: min(value, 5 if au != "AU43" else 1) for au, value in frame.aus.items()}),
                       group={"subject": frame.subject})
