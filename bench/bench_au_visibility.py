"""How visible each PSPI AU is at each intensity: 20 identities × 3 views, each AU alone at every level.

    python bench/bench_au_visibility.py [--identities 20] [--image-size 256] [--check-size 512 --check-identities 3] [--write]

For every identity (plan_identity(k, seed=0), its planned views) `factory.qa.visibility.au_sweep` renders the
neutral face and each PSPI AU alone at levels 1…5 (AU43: 1) and measures, against the neutral render of the
same view, the mean pixel change (|Δ RGB|, 0–255) inside the AU's region and the mean motion of its landmarks
(px, scaled to 512 px). The table gives the means over identities and views per AU and level, and how many
(identity, view) cases grow with every level on both measures. A second, smaller run at 512 px (frontal only)
checks that the order holds at the dataset's size. With --write, both go into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import RESULTS, machine, write_section  # noqa: E402  (bench/results.py, beside this script)

from factory.qa.visibility import Sweep, au_sweep  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.labels import PSPI_AUS  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402

SECTION = "## AU visibility"


def sweep_identities(count: int, size: int, frontal_only: bool) -> list[Sweep]:
    renderer = IdentityRenderer(RenderConfig(image_size=size, texture_size=1024, backend="torch"))
    sweeps = []
    for index in range(count):
        spec = plan_identity(index, seed=0)
        if frontal_only:
            spec = dataclasses.replace(spec, views=spec.views[:1])
        started = time.perf_counter()
        sweeps.append(au_sweep(renderer, spec))
        print(f"identity {index}: {time.perf_counter() - started:.1f} s", flush=True)
    return sweeps


def table(sweeps: list[Sweep], size: int) -> tuple[str, bool]:
    """The markdown table (rows: AUs; cells: pixel change / landmark motion at 512 px per level) and whether every
    AU's means grow with every level."""
    scale = 512 / size
    levels = max(s.pixel_change[au].shape[0] for s in sweeps for au in PSPI_AUS)
    header = "| AU | " + " | ".join(f"level {k}" for k in range(1, levels + 1)) + " | cases growing at every level |"
    rows, all_grow = [header, "|---|" + "---|" * (levels + 1)], True
    for au in PSPI_AUS:
        change = np.stack([s.pixel_change[au] for s in sweeps])  # (identities, levels, views)
        motion = np.stack([s.landmark_motion[au] for s in sweeps]) * scale
        mean_change, mean_motion = change.mean(axis=(0, 2)), motion.mean(axis=(0, 2))
        grows = (np.diff(change, axis=1) > 0).all(axis=1) & (np.diff(motion, axis=1) > 0).all(axis=1)  # (identities, views)
        all_grow &= bool(np.all(np.diff(mean_change) > 0) and np.all(np.diff(mean_motion) > 0))
        cells = [f"{c:.2f} / {m:.2f} px" for c, m in zip(mean_change, mean_motion)] + ["–"] * (levels - len(mean_change))
        rows.append(f"| {au} | " + " | ".join(cells) + f" | {int(grows.sum())} / {grows.size} |")
    return "\n".join(rows), all_grow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--check-identities", type=int, default=3)
    parser.add_argument("--check-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the tables into bench/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    main_table, main_grows = table(sweep_identities(args.identities, args.image_size, frontal_only=False), args.image_size)
    check_table, check_grows = table(sweep_identities(args.check_identities, args.check_size, frontal_only=True), args.check_size)
    minutes = (time.perf_counter() - started) / 60
    print(main_table, f"\nevery AU's means grow with every level: {main_grows}", sep="\n")
    print(check_table, f"\nat {args.check_size} px: {check_grows}", sep="\n")
    if args.write:
        text = (f"{SECTION}\n\n`python bench/bench_au_visibility.py --write` on {machine()}, {minutes:.0f} min. "
                f"Identities 0–{args.identities - 1} of seed 0, each in its 3 planned views at {args.image_size} px; "
                f"each PSPI AU alone at every level against the same identity's neutral face in the same view "
                f"(`factory/qa/visibility.py`). Cells: mean |Δ RGB| (0–255) inside the AU's region (the box around its "
                f"landmarks, padded 15 %) / mean motion of its landmarks in px at 512 px; means over identities and "
                f"views. The last column counts the (identity, view) cases where both grow with every level. "
                f"Means grow with every level for every AU: {'yes' if main_grows else 'NO'}.\n\n{main_table}\n\n"
                f"The same at {args.check_size} px, frontal view, identities 0–{args.check_identities - 1} "
                f"(grow with every level: {'yes' if check_grows else 'NO'}):\n\n{check_table}\n")
        write_section(SECTION, text)
        print(f"wrote the {SECTION!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
