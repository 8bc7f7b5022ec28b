"""Pain sequences: each pain expression played over time, from neutral through onset and apex back to neutral.

    config = SequenceConfig(frames=16)
    sequence = plan_sequence(spec, spec.expressions[3], config)    # seeded by (dataset seed, identity, expression)
    sequence.frames[5].aus, sequence.frames[5].pspi                  # FACS integers and their PSPI
    sequence.frames[5].intensities                                   # the fractional intensities the face was posed with

A sequence is a timeline in seconds, drawn per identity and expression: a neutral lead-in (0.3–0.8 s), the onset
(0.5–2 s, the AUs rising), the apex (0.5–2 s, the expression as planned), the offset (0.8–2 s, decaying; offsets
of spontaneous expressions last longer than onsets) and a neutral tail (0.2–0.5 s). Every AU follows the same
raised-cosine envelope, shifted by its own small lag (±0.1 s: the brow lowerer need not start with the lip raiser),
times its planned apex intensity. `frames` frames are spread evenly over the whole timeline, so every sequence shows
its complete rise and fall, and its frame rate (`fps`) is stated with it.

Labels: a frame's fractional intensities are rounded half up to FACS integers (AU43, eyes closed, is 1 from half
closure), and its PSPI is factory/spec/labels.py's `pspi` of the rounded AUs. Blinks: lid closures of 150–300 ms
(closing faster than opening) at 12–24 a minute while the eyes are open. A blink is FACS AU45, not AU43: it closes
the lids in the image (`blink`, the closure 0..1) but is not in the AUs or the PSPI, as in FACS coding, where eye
closure is told from a blink by its duration. Head motion: a slow drift of a degree or two in yaw, pitch and roll
(two sinusoids each) plus a slight lowering of the head that follows the expression's envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from factory.options import ConfigError
from factory.spec.expressions import Expression
from factory.spec.labels import BINARY_AUS, max_intensity, pspi

MAX_FRAMES = 60  # frames per sequence: names f00 … f59; every frame is a full render of every view
SEQUENCE_STREAM = 0x5E0F  # sequences draw from their own streams: a plan is the same with or without them
# Seconds: (low, high) of each phase, drawn uniformly.
LEAD_S, ONSET_S, APEX_S, OFFSET_S, TAIL_S = (0.3, 0.8), (0.5, 2.0), (0.5, 2.0), (0.8, 2.0), (0.2, 0.5)
AU_LAG_S = 0.1  # each AU's envelope is shifted by up to ± this
BLINKS_PER_S = (0.2, 0.4)  # 12–24 blinks a minute
BLINK_S = (0.15, 0.3)  # a blink's duration
BLINK_CLOSING_SHARE = 0.4  # the share of a blink spent closing; the lid reopens more slowly
HEAD_DRIFT_DEG = 1.5  # amplitude of each sinusoid of the head's drift, per axis
HEAD_DRIFT_HZ = (0.1, 0.5)
HEAD_LOWERING_DEG = 2.0  # the head dips (pitch down) by up to this at the apex


@dataclass(frozen=True)
class SequenceConfig:
    """`frames` frames per pain expression (0: no sequences, the default: stills only)."""

    frames: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not (self.frames == 0 or 3 <= self.frames <= MAX_FRAMES):
            raise ConfigError(f"sequence frames must be 0 (no sequences) or 3..{MAX_FRAMES}, got {self.frames!r}")

    @property
    def enabled(self) -> bool:
        return self.frames > 0


@dataclass(frozen=True)
class HeadPose:
    """The head's rotation in degrees about the neck, on top of its planned pose (the view's camera stays)."""

    yaw: float
    pitch: float  # + looks up
    roll: float


@dataclass(frozen=True)
class Frame:
    name: str  # "pain03f05": the expression's name, "f" and the frame number
    expression: str
    index: int
    time_s: float
    intensities: dict[str, float]  # fractional AU intensities the face is posed with (0..5; AU43 0..1)
    aus: dict[str, int]  # the same rounded to FACS integers: the frame's label
    pspi: int  # pspi(aus)
    blink: float  # lid closure of a blink (AU45, not in the label), 0..1
    head: HeadPose

    def posed_intensities(self) -> dict[str, float]:
        """What the rig poses: the AUs' intensities with the lids closed as far as AU43 or a blink closes them."""
        return {**self.intensities, "AU43": max(self.intensities.get("AU43", 0.0), self.blink)}


@dataclass(frozen=True)
class Sequence:
    expression: str
    fps: float  # frames per second of the sampled frames
    lead_s: float
    onset_s: float
    apex_s: float
    offset_s: float
    tail_s: float
    blinks: tuple[tuple[float, float], ...]  # (start, duration) in seconds
    frames: tuple[Frame, ...]

    @property
    def duration_s(self) -> float:
        return self.lead_s + self.onset_s + self.apex_s + self.offset_s + self.tail_s

    def record(self) -> dict:
        """The sequence's entry of meta.json's `sequences` (docs/DATA.md), its frames apart."""
        return {"expression": self.expression, "fps": round(self.fps, 4), "frames": len(self.frames),
                "lead_s": self.lead_s, "onset_s": self.onset_s, "apex_s": self.apex_s, "offset_s": self.offset_s,
                "tail_s": self.tail_s, "blinks": [list(blink) for blink in self.blinks]}


def frame_name(expression: str, index: int) -> str:
    return f"{expression}f{index:02d}"


def frame_record(frame: Frame) -> dict:
    """A frame's entry of meta.json's `frames` (docs/DATA.md)."""
    return {"name": frame.name, "expression": frame.expression, "frame": frame.index, "time_s": frame.time_s,
            "aus": frame.aus, "pspi": frame.pspi, "intensities": frame.intensities, "blink": frame.blink,
            "head": {"yaw": frame.head.yaw, "pitch": frame.head.pitch, "roll": frame.head.roll}}


def sequence_expressions(expressions: tuple[Expression, ...]) -> list[Expression]:
    """The expressions that get a sequence: the pain ones (not the neutral, not hard negatives)."""
    return [e for e in expressions if e.name.startswith("pain")]


def envelope(t: np.ndarray, start: float, onset: float, apex: float, offset: float) -> np.ndarray:
    """0 before `start`, a raised cosine up to 1 over `onset`, 1 over `apex`, a raised cosine down over `offset`."""
    rise = np.clip((t - start) / onset, 0, 1)
    fall = np.clip((t - start - onset - apex) / offset, 0, 1)
    return 0.5 * (1 - np.cos(np.pi * rise)) * 0.5 * (1 + np.cos(np.pi * fall))


def rounded_intensity(au: str, value: float) -> int:
    """A fractional intensity as a FACS integer: rounded half up, within the AU's range."""
    return int(min(max_intensity(au), math.floor(value + 0.5)))


def blink_closure(t: np.ndarray, blinks: list[tuple[float, float]]) -> np.ndarray:
    """Lid closure 0..1 at times `t` from blinks (start, duration): closing over BLINK_CLOSING_SHARE, then opening."""
    closure = np.zeros_like(t)
    for start, duration in blinks:
        closing = duration * BLINK_CLOSING_SHARE
        phase = np.where(t < start + closing, (t - start) / closing, 1 - (t - start - closing) / (duration - closing))
        closure = np.maximum(closure, np.where((t >= start) & (t <= start + duration), np.clip(phase, 0, 1), 0))
    return closure


def draw_blinks(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    """Blink onsets as a Poisson process over the sequence, each with its own length."""
    rate = rng.uniform(*BLINKS_PER_S)
    blinks, t = [], float(rng.exponential(1 / rate))
    while t < duration:
        blinks.append((round(t, 4), round(float(rng.uniform(*BLINK_S)), 4)))
        t += blinks[-1][1] + float(rng.exponential(1 / rate))
    return blinks


def plan_sequence(seed: int, index: int, expression: Expression, config: SequenceConfig) -> Sequence:
    """The seeded sequence of one pain expression of identity `index` in a dataset seeded with `seed`."""
    number = int(expression.name[len("pain"):])
    rng = np.random.default_rng([seed, index, SEQUENCE_STREAM, number])
    lead, onset, apex, offset, tail = (round(float(rng.uniform(*span)), 4) for span in (LEAD_S, ONSET_S, APEX_S, OFFSET_S, TAIL_S))
    duration = lead + onset + apex + offset + tail
    times = np.linspace(0.0, duration, config.frames)
    lags = {au: float(rng.uniform(-AU_LAG_S, AU_LAG_S)) for au in expression.aus}
    raw_blinks = draw_blinks(rng, duration)
    drift = rng.uniform(0, 2 * np.pi, size=(3, 2)), rng.uniform(*HEAD_DRIFT_HZ, size=(3, 2))
    shared = envelope(times, lead, onset, apex, offset)
    intensities = {au: peak * envelope(times, lead + lags[au], onset, apex, offset) for au, peak in expression.aus.items()}
    blinks = [b for b in raw_blinks if not closing_lids(expression, lags, b, (lead, onset, apex, offset))]
    closure = blink_closure(times, blinks)
    head = head_motion(times, shared, *drift)
    frames = tuple(make_frame(expression.name, k, float(times[k]), {au: float(v[k]) for au, v in intensities.items()},
                              float(closure[k]), head[k]) for k in range(config.frames))
    return Sequence(expression=expression.name, fps=(config.frames - 1) / duration, lead_s=lead, onset_s=onset,
                    apex_s=apex, offset_s=offset, tail_s=tail, blinks=tuple(blinks), frames=frames)


def closing_lids(expression: Expression, lags: dict[str, float], blink: tuple[float, float], phases: tuple) -> bool:
    """Whether the expression's own eye closure (AU43) has begun anywhere during `blink` (start, duration): a blink
    is left out then, as lids that are closing or closed do not blink. The event outlasts any blink, so the ends tell."""
    if not expression.aus.get("AU43"):
        return False
    lead, onset, apex, offset = phases
    ends = np.array([blink[0], blink[0] + blink[1]])
    return bool((envelope(ends, lead + lags["AU43"], onset, apex, offset) > 0).any())


def head_motion(times: np.ndarray, shared: np.ndarray, phases: np.ndarray, rates: np.ndarray) -> list[HeadPose]:
    """Per time, the head's drift (two sinusoids per axis) with a dip of the head following the envelope."""
    angles = HEAD_DRIFT_DEG * np.sin(2 * np.pi * rates[None] * times[:, None, None] + phases[None]).sum(axis=2) / 2
    angles[:, 1] -= HEAD_LOWERING_DEG * shared
    return [HeadPose(*(round(float(a), 3) for a in row)) for row in angles]


def make_frame(expression: str, index: int, time_s: float, intensities: dict[str, float], blink: float, head: HeadPose) -> Frame:
    fractional = {au: round(value, 4) for au, value in intensities.items()}
    aus = {au: (int(value >= 0.5) if au in BINARY_AUS else rounded_intensity(au, value)) for au, value in fractional.items()}
    return Frame(name=frame_name(expression, index), expression=expression, index=index, time_s=round(time_s, 4),
                 intensities=fractional, aus=aus, pspi=pspi(aus), blink=round(blink, 4), head=head)
