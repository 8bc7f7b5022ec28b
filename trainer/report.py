"""The fairness report: every metric of a checkpoint on one split, for the split and for each group of each
attribute the pairs carry (age band, gender, ethnicity, Fitzpatrick type, and scenario or occluder where the
dataset has them: trainer.data.GROUP_FIELDS), with confidence intervals by bootstrap over identities.

    evaluation_predictions (trainer.evaluate) ─▶ fairness_report: point metrics + bootstrap CIs per group
        ─▶ report_blocks (headings, tables, plots) ─▶ report.md, report.html (plots embedded), report.json, plots/*.png

Metrics: for PSPI those of `trainer evaluate` (MAE, RMSE, Pearson r, ICC(3,1), AUROC and F1 at PSPI ≥ 1, 2, 3, F1
at the thresholds calibrated on the validation split), for each of the six PSPI AUs MAE, RMSE, Pearson r and
ICC(3,1) in intensity units (0–5, AU43 0–1). A person gives many pairs (views × expressions) whose errors go
together, so the bootstrap resamples identities, not pairs: each resample draws as many identities as the group
has, with replacement, and takes all their pairs; the interval is the percentile interval of the resampled metric
(over the resamples where it is defined). Each group's resamples come from a generator seeded by the seed and the
group's name, so a group's interval does not depend on which other groups exist. A group with fewer identities
than `min_identities` gets its point estimate only, marked, and is drawn hollow in the plots without an interval.
"""

from __future__ import annotations

import base64
import html
import json
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from factory.spec.labels import PSPI_AUS, PSPI_THRESHOLDS, max_intensity
from trainer.metrics import group_members, icc_3_1, mae, pain_metrics, pearson, rmse

TARGETS = ("PSPI", *PSPI_AUS)
REGRESSION = ("mae", "rmse", "pcc", "icc")
PSPI_METRICS = (*REGRESSION, *(f"auroc_ge{k}" for k in PSPI_THRESHOLDS), *(f"f1_ge{k}" for k in PSPI_THRESHOLDS))
METRIC_NAMES = {"mae": "MAE", "rmse": "RMSE", "pcc": "Pearson r", "icc": "ICC(3,1)",
                **{f"auroc_ge{k}": f"AUROC PSPI≥{k}" for k in PSPI_THRESHOLDS}, **{f"f1_ge{k}": f"F1 PSPI≥{k}" for k in PSPI_THRESHOLDS}}
ATTRIBUTE_NAMES = {"age_band": "age band", "fitzpatrick": "Fitzpatrick type"}  # others: the name, "_" as a space


@dataclass(frozen=True)
class ReportConfig:
    resamples: int = 1000  # bootstrap resamples of identities per group
    seed: int = 0
    min_identities: int = 5  # fewer: point estimate only, marked
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.resamples < 20:
            raise ValueError(f"--resamples must be at least 20 for a percentile interval, got {self.resamples}")
        if self.min_identities < 2:
            raise ValueError(f"--min-identities must be at least 2 (one identity has no spread to resample), got {self.min_identities}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"--confidence must lie between 0 and 1, got {self.confidence}")


# --------------------------------------------------------------------------------------------------- numbers


def label_matrices(prediction: dict) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) as [pairs, 7] arrays in TARGETS order, in label units: PSPI, then AU intensities."""
    scale = np.array([max_intensity(au) for au in PSPI_AUS], float)
    pred = np.column_stack([prediction["pred"], np.asarray(prediction["aus_pred"], float).reshape(-1, 6) * scale])
    target = np.column_stack([prediction["target"], np.asarray(prediction["aus_target"], float).reshape(-1, 6) * scale])
    return pred, target


def point_metrics(pred: np.ndarray, target: np.ndarray, thresholds: dict[int, float]) -> dict[str, dict[str, float]]:
    """{target: {metric: value}} of these rows; PSPI's metrics are `trainer evaluate`'s (pain_metrics)."""
    if len(pred) < 2:  # no correlation, ranking or spread in one pair
        return {name: {metric: math.nan for metric in (PSPI_METRICS if name == "PSPI" else REGRESSION)} for name in TARGETS}
    pspi = pain_metrics(pred[:, 0], target[:, 0], thresholds)
    metrics = {"PSPI": {metric: pspi[metric] for metric in PSPI_METRICS}}
    for column, au in enumerate(PSPI_AUS, start=1):
        p, t = pred[:, column], target[:, column]
        metrics[au] = {"mae": mae(p, t), "rmse": rmse(p, t), "pcc": pearson(p, t), "icc": icc_3_1(p, t)}
    return metrics


def bootstrap_intervals(pred: np.ndarray, target: np.ndarray, identities: np.ndarray, thresholds: dict[int, float],
                        config: ReportConfig, name: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{target: {metric: (low, high)}}: percentile intervals over `config.resamples` resamples of the identities
    (with replacement, each bringing all its rows), from a generator seeded by (seed, `name`)."""
    rows_of = [np.flatnonzero(identities == identity) for identity in np.unique(identities)]
    rng = np.random.default_rng([config.seed, zlib.crc32(name.encode())])
    draws: dict[str, dict[str, list[float]]] = {}
    for _ in range(config.resamples):
        rows = np.concatenate([rows_of[i] for i in rng.integers(0, len(rows_of), len(rows_of))])
        for target_name, metrics in point_metrics(pred[rows], target[rows], thresholds).items():
            for metric, value in metrics.items():
                draws.setdefault(target_name, {}).setdefault(metric, []).append(value)
    tail = 100 * (1 - config.confidence) / 2
    intervals = {}
    for target_name, metrics in draws.items():
        intervals[target_name] = {}
        for metric, values in metrics.items():
            defined = np.asarray(values)[np.isfinite(values)]
            low, high = np.percentile(defined, [tail, 100 - tail]) if len(defined) else (math.nan, math.nan)
            intervals[target_name][metric] = (float(low), float(high))
    return intervals


def group_entry(pred: np.ndarray, target: np.ndarray, identities: np.ndarray, thresholds: dict[int, float],
                config: ReportConfig, name: str) -> dict:
    """One group's (or the split's) pairs, identities and {target: {metric: {value, low, high}}}."""
    enough = len(np.unique(identities)) >= config.min_identities
    values = point_metrics(pred, target, thresholds)
    intervals = bootstrap_intervals(pred, target, identities, thresholds, config, name) if enough else {}
    metrics = {}
    for target_name, by_metric in values.items():
        found = intervals.get(target_name, {})
        metrics[target_name] = {metric: dict(zip(("value", "low", "high"), (value, *found.get(metric, (None, None)))))
                                for metric, value in by_metric.items()}
    return {"pairs": len(pred), "identities": len(np.unique(identities)), "enough_identities": enough, "metrics": metrics}


def fairness_report(found, config: ReportConfig) -> dict:
    """The report's numbers from trainer.evaluate's EvaluationPredictions: the split's entry and, for each
    attribute the pairs carry, each value's entry (group_entry)."""
    prediction = found.prediction
    pred, target = label_matrices(prediction)
    identities = np.asarray(prediction["identities"])
    groups = {attribute: {value: group_entry(pred[rows], target[rows], identities[rows], found.thresholds, config, f"{attribute}={value}")
                          for value, rows in values.items()}
              for attribute, values in group_members(prediction["groups"]).items()}
    return {"split": found.split, "calibrated_on": found.calibrated_on, "model": found.info["model"], "epoch": found.info["epoch"],
            "thresholds": {f"ge{k}": value for k, value in found.thresholds.items()}, "config": asdict(config),
            "overall": group_entry(pred, target, identities, found.thresholds, config, "overall"), "groups": groups}


# ---------------------------------------------------------------------------------------------------- blocks


def attribute_name(attribute: str) -> str:
    return ATTRIBUTE_NAMES.get(attribute, attribute.replace("_", " "))


def cell(entry: dict, target: str, metric: str) -> str:
    """'0.912 [0.801, 1.024]'; a group with too few identities '0.912 (few ids)'; an undefined metric '–'."""
    found = entry["metrics"][target][metric]
    if found["value"] is None or not math.isfinite(found["value"]):
        return "–"
    if not entry["enough_identities"]:
        return f"{found['value']:.3f} (few ids)"
    if found["low"] is None or not math.isfinite(found["low"]):
        return f"{found['value']:.3f} [–]"
    return f"{found['value']:.3f} [{found['low']:.3f}, {found['high']:.3f}]"


def group_tables(attribute: str, entries: dict[str, dict], overall: dict) -> list[tuple]:
    """Two tables for one attribute: every PSPI metric, and the MAE of each AU, one row per group."""
    rows = [("all", overall), *entries.items()]
    pspi = (["group", "identities", "pairs", *(METRIC_NAMES[m] for m in PSPI_METRICS)],
            [[value, str(e["identities"]), str(e["pairs"]), *(cell(e, "PSPI", m) for m in PSPI_METRICS)] for value, e in rows])
    aus = (["group", *(f"{au} MAE" for au in PSPI_AUS)], [[value, *(cell(e, au, "mae") for au in PSPI_AUS)] for value, e in rows])
    return [("h3", "PSPI"), ("table", pspi), ("h3", "AUs (intensity MAE; every AU metric in the plot and report.json)"), ("table", aus)]


def report_blocks(report: dict, plots: dict[str, list[str]], described: dict) -> list[tuple]:
    """The report as a list of (kind, content) blocks, kind one of h1, h2, h3, p, table, image: what the Markdown
    and the HTML are both written from."""
    config, overall = report["config"], report["overall"]
    blocks = [("h1", f"Fairness report: {report['model']}, epoch {report['epoch']}, {report['split']} split"),
              ("p", " · ".join(f"{name}: {value}" for name, value in described.items())),
              ("p", f"{overall['pairs']} pairs of {overall['identities']} identities. Intervals: {config['confidence']:.0%} "
                    f"percentile bootstrap over identities, {config['resamples']} resamples, seed {config['seed']}. "
                    f"Groups with fewer than {config['min_identities']} identities are marked (few ids) and drawn hollow, "
                    f"without an interval. F1 thresholds calibrated on the {report['calibrated_on']} split "
                    f"({', '.join(f'PSPI≥{k[2:]}: {v:.3f}' for k, v in report['thresholds'].items())}). "
                    "AU metrics are in intensity units (0–5, AU43 0–1).")]
    blocks += [("h2", "All pairs"), ("table", (["target", *(METRIC_NAMES[m] for m in PSPI_METRICS)],
                                                [[name, *(cell(overall, name, m) if m in overall["metrics"][name] else "" for m in PSPI_METRICS)]
                                                 for name in TARGETS]))]
    if not report["groups"]:
        blocks.append(("p", "The pairs carry no group attributes (trainer/data.py, GROUP_FIELDS)."))
    for attribute, entries in report["groups"].items():
        blocks += [("h2", f"By {attribute_name(attribute)}"), *group_tables(attribute, entries, overall)]
        blocks += [("image", (path, f"{attribute_name(attribute)}: metrics per group")) for path in plots.get(attribute, [])]
    return blocks


def markdown(blocks: list[tuple]) -> str:
    lines = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content, ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "table":
            header, rows = content
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows), ""]
        elif kind == "image":
            lines += [f"![{content[1]}]({content[0]})", ""]
    return "\n".join(lines)


def html_page(blocks: list[tuple], folder: Path) -> str:
    """A self-contained HTML page: the plots embedded as data URIs, read from `folder`."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fairness report</title><style>"
             "body{font-family:sans-serif;max-width:1400px;margin:auto}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>"]
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "table":
            header, rows = content
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows) + "</table>")
        elif kind == "image":
            data = base64.b64encode((folder / content[0]).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(content[1])}' src='data:image/png;base64,{data}'></p>")
    return "\n".join(parts) + "\n</body></html>\n"


def write_report(report: dict, out: Path, described: dict) -> list[Path]:
    """report.md, report.html, report.json and plots/*.png in `out` (created); returns the files written.
    Files of an earlier report in `out` are replaced, nothing else there is touched."""
    from trainer.checkpoint import finite_or_null
    from trainer.report_plots import plot_attribute

    (out / "plots").mkdir(parents=True, exist_ok=True)
    plots = {attribute: plot_attribute(attribute_name(attribute), entries, report["overall"], out / "plots", attribute)
             for attribute, entries in report["groups"].items()}
    relative = {attribute: [str(path.relative_to(out)) for path in paths] for attribute, paths in plots.items()}
    blocks = report_blocks(report, relative, described)
    written = [out / "report.json", out / "report.md", out / "report.html"]
    written[0].write_text(json.dumps(finite_or_null({**report, "described": described}), indent=1, allow_nan=False) + "\n")
    written[1].write_text(markdown(blocks))
    written[2].write_text(html_page(blocks, out))
    return written + [path for paths in plots.values() for path in paths]
