"""Every PSPI AU shows more at every level: on two identities' frontal renders (small, for speed), the mean pixel
change in the AU's region and the motion of its landmarks grow from level 1 to 5 (bench/bench_au_visibility.py
measures 20 identities × 3 views)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from factory.qa.visibility import AU_LANDMARKS, au_sweep, region_box, sweep_expressions
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.labels import PSPI_AUS
from factory.spec.plan import plan_identity


@pytest.fixture(scope="module")
def sweeps():
    renderer = IdentityRenderer(RenderConfig(image_size=96, texture_size=256, backend="torch"))
    specs = [plan_identity(index, seed=0) for index in (0, 1)]
    return [au_sweep(renderer, dataclasses.replace(spec, views=spec.views[:1])) for spec in specs]


def test_sweep_covers_every_pspi_au_and_level():
    names = [e.name for e in sweep_expressions()]
    assert names[0] == "neutral" and len(names) == 1 + 5 * 5 + 1
    assert {name.split("_")[0] for name in names[1:]} == set(PSPI_AUS) == set(AU_LANDMARKS)


@pytest.mark.parametrize("au", PSPI_AUS)
def test_each_level_shows_more_than_the_one_below(sweeps, au):
    for sweep in sweeps:
        change, motion = sweep.pixel_change[au][:, 0], sweep.landmark_motion[au][:, 0]
        assert change[0] > 0.5, f"{au} at level 1 changes its region by only {change[0]:.2f} of 255"
        assert np.all(np.diff(change) > 0), f"{au}: pixel change {np.round(change, 2)} does not grow with every level"
        assert np.all(np.diff(motion) > 0), f"{au}: landmark motion {np.round(motion, 3)} does not grow with every level"


def test_region_box_pads_and_clips():
    points = np.array([[10.0, 20.0], [30.0, 60.0]])
    top, bottom, left, right = region_box(points, 64)
    assert (top, left, right) == (14, 7, 34) and bottom == 64  # 15 % of the box each side; the frame clips it
