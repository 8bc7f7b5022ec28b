"""The fairness report's plots (trainer/report.py holds the numbers): for one attribute, one PNG of every PSPI metric
and one of every AU metric, each group a point with its bootstrap interval, the whole split as a dashed line in
its shaded interval. A group with too few identities is a hollow point without an interval.

matplotlib's object API (`Figure`, no pyplot): no global state and no display, so it draws headless (Agg) in any
process, a Ray worker or a test included."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from factory.spec.labels import PSPI_AUS
from trainer.report import METRIC_NAMES, PSPI_METRICS, REGRESSION

DPI = 110


def finite(value) -> bool:
    return value is not None and math.isfinite(value)


def draw_point(axes, x: float, found: dict, enough: bool, colour: str, label: str | None = None) -> None:
    """One group's value of one metric: with its interval as an error bar, or hollow with too few identities."""
    if not finite(found["value"]):
        return
    if not enough:
        axes.plot([x], [found["value"]], marker="o", markerfacecolor="none", color=colour, linestyle="none", label=label)
        return
    low, high = (found["low"], found["high"]) if finite(found["low"]) else (found["value"], found["value"])
    axes.errorbar([x], [found["value"]], yerr=[[found["value"] - low], [high - found["value"]]], fmt="o", color=colour,
                  capsize=3, label=label)


def draw_overall(axes, found: dict) -> None:
    if finite(found["value"]):
        axes.axhline(found["value"], color="0.3", linestyle="--", linewidth=1)
    if finite(found["low"]):
        axes.axhspan(found["low"], found["high"], color="0.85", zorder=0)


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: same numbers, same bytes
    return path


def plot_pspi(title: str, entries: dict[str, dict], overall: dict, path: Path) -> Path:
    """One panel per PSPI metric, the groups along x."""
    columns = 5
    figure = Figure(figsize=(3.2 * columns, 3.0 * math.ceil(len(PSPI_METRICS) / columns)), layout="constrained")
    panels = figure.subplots(math.ceil(len(PSPI_METRICS) / columns), columns, squeeze=False).ravel()
    names = list(entries)
    for axes, metric in zip(panels, PSPI_METRICS):
        draw_overall(axes, overall["metrics"]["PSPI"][metric])
        for x, name in enumerate(names):
            draw_point(axes, x, entries[name]["metrics"]["PSPI"][metric], entries[name]["enough_identities"],
                       "C0" if entries[name]["enough_identities"] else "0.5")
        axes.set_title(METRIC_NAMES[metric], fontsize=10)
        axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axes.set_xlim(-0.6, len(names) - 0.4)
    figure.suptitle(f"PSPI by {title} (dashed: all pairs in their shaded interval; hollow grey: too few identities)")
    return save(figure, path)


def plot_aus(title: str, entries: dict[str, dict], overall: dict, path: Path) -> Path:
    """One panel per AU metric, the AUs along x, each group a colour side by side."""
    figure = Figure(figsize=(4.0 * len(REGRESSION), 3.6), layout="constrained")
    panels = figure.subplots(1, len(REGRESSION), squeeze=False).ravel()
    names = list(entries)
    offsets = np.linspace(-0.3, 0.3, len(names)) if len(names) > 1 else np.zeros(1)
    for axes, metric in zip(panels, REGRESSION):
        for x, au in enumerate(PSPI_AUS):
            found = overall["metrics"][au][metric]
            if finite(found["value"]):
                axes.plot([x - 0.4, x + 0.4], [found["value"]] * 2, color="0.3", linestyle="--", linewidth=1)
            for offset, (index, name) in zip(offsets, enumerate(names)):
                draw_point(axes, x + offset, entries[name]["metrics"][au][metric], entries[name]["enough_identities"],
                           f"C{index % 10}", label=name if x == 0 else None)
        axes.set_title(METRIC_NAMES[metric], fontsize=10)
        axes.set_xticks(range(len(PSPI_AUS)), PSPI_AUS, fontsize=8)
    panels[-1].legend(fontsize=7, loc="best")
    figure.suptitle(f"AU intensities by {title} (dashed: all pairs; hollow: too few identities)")
    return save(figure, path)


def plot_attribute(title: str, entries: dict[str, dict], overall: dict, folder: Path, stem: str) -> list[Path]:
    """The two PNGs of one attribute in `folder`: STEM_pspi.png and STEM_aus.png."""
    return [plot_pspi(title, entries, overall, folder / f"{stem}_pspi.png"),
            plot_aus(title, entries, overall, folder / f"{stem}_aus.png")]
