"""Identity plans: determinism, the prefix property, demographic balance, and the expression sampler."""

import collections
import json

import numpy as np
import pytest

from factory.spec.expressions import ExpressionConfig, decompositions, sample_expressions
from factory.spec.labels import MAX_PSPI, NON_PSPI_AUS, PSPI_AUS, pspi
from factory.spec.plan import IdentitySpec, PlanConfig, plan_identities, plan_identity


def plan_lines(count, seed, config=None):
    return [spec.to_json() for spec in plan_identities(count, seed, config)]


def test_same_seed_same_bytes_and_seed_zero_is_a_seed():
    assert plan_lines(20, 0) == plan_lines(20, 0)
    assert plan_lines(20, 0) != plan_lines(20, 1)


def test_identity_k_does_not_depend_on_the_run_size():
    small, large = plan_lines(30, 5), plan_lines(100, 5)
    assert large[:30] == small
    started_later = [spec.to_json() for spec in plan_identities(10, 5, start=40)]
    assert started_later == large[40:50]


@pytest.mark.parametrize("count", [1, 7, 59, 60, 61, 100, 137])
def test_strata_counts_differ_by_at_most_one_in_any_run(count):
    config = PlanConfig()
    counts = collections.Counter()
    for spec in plan_identities(count, 3, config):
        d = spec.demographics
        counts[(d.age_band, d.gender, d.ethnicity)] += 1
        low, high = map(int, d.age_band.split("-"))
        assert low <= d.age <= high
    every = [counts.get((f"{lo}-{hi}", g, e), 0) for (lo, hi), g, e in config.strata]
    assert max(every) - min(every) <= 1
    assert sum(every) == count


def test_60_identities_cover_the_60_strata_once():
    """5 age bands (up to 90) × 2 genders × 6 ethnicities."""
    assert len(PlanConfig().strata) == 60 and PlanConfig().age_bands[-1] == (75, 90)
    strata = {(s.demographics.age_band, s.demographics.gender, s.demographics.ethnicity) for s in plan_identities(60, 11)}
    assert len(strata) == 60


def test_custom_strata_are_balanced_too():
    config = PlanConfig(age_bands=((20, 40), (41, 70)), genders=("female", "male", "nonbinary"), ethnicities=("a", "b"))
    counts = collections.Counter((s.demographics.age_band, s.demographics.gender, s.demographics.ethnicity)
                                 for s in plan_identities(25, 0, config))
    assert len(config.strata) == 12 and len(counts) == 12 and max(counts.values()) - min(counts.values()) <= 1


FACTORS = {"age_band": "age_bands", "gender": "genders", "ethnicity": "ethnicities"}


@pytest.mark.parametrize("seed, config", [
    (0, PlanConfig()),
    (7, PlanConfig()),
    (3, PlanConfig(age_bands=((18, 39), (40, 59), (60, 90)), genders=("female", "male"),
                   ethnicities=("a", "b", "c", "d", "e"))),
])
def test_every_prefix_is_balanced_per_factor(seed, config):
    """For N = 1 … 200, the first N identities hold each level of each factor (k levels) floor(N/k) or ceil(N/k)
    times, and every block of |strata| identities holds each stratum exactly once."""
    specs = list(plan_identities(200, seed, config))
    levels = {name: [f"{lo}-{hi}" for lo, hi in config.age_bands] if name == "age_band" else list(getattr(config, field))
              for name, field in FACTORS.items()}
    counts = {name: collections.Counter() for name in FACTORS}
    for n, spec in enumerate(specs, start=1):
        for name in FACTORS:
            counts[name][getattr(spec.demographics, name)] += 1
            k = len(levels[name])
            for level in levels[name]:
                assert n // k <= counts[name][level] <= -(-n // k), f"N={n}: {name} {level} dealt {counts[name][level]} times"
    size = len(config.strata)
    for start in range(0, 200 - size + 1, size):
        block = {(s.demographics.age_band, s.demographics.gender, s.demographics.ethnicity) for s in specs[start:start + size]}
        assert len(block) == size


def test_small_runs_mix_genders_ages_and_ethnicities():
    first = [spec.demographics for spec in plan_identities(10, 0)]
    assert collections.Counter(d.gender for d in first[:4]) == {"female": 2, "male": 2}
    assert len({d.ethnicity for d in first[:4]}) == 4
    assert collections.Counter(d.gender for d in first) == {"female": 5, "male": 5}
    assert collections.Counter(d.age_band for d in first) == {band: 2 for band in ("18-29", "30-44", "45-59", "60-74", "75-90")}


def test_strata_without_a_windowed_order_fall_back_to_a_fair_greedy_order():
    """Three factors of three levels admit no order with every window complete for some seeds; the greedy order
    still deals every stratum once per block and keeps each factor within two of its share."""
    config = PlanConfig(age_bands=((18, 39), (40, 59), (60, 90)), genders=("f", "m", "x"), ethnicities=("a", "b", "c"))
    for seed in range(6):
        specs = list(plan_identities(27, seed, config))
        assert len({(s.demographics.age_band, s.demographics.gender, s.demographics.ethnicity) for s in specs}) == 27
        for n in range(1, 28):
            genders = collections.Counter(s.demographics.gender for s in specs[:n])
            assert all(abs(genders[g] - n / 3) < 2 for g in config.genders)


def test_plan_round_trips_through_json():
    spec = plan_identity(3, 9)
    again = IdentitySpec.from_dict(json.loads(spec.to_json()))
    assert again.to_json() == spec.to_json()


def test_every_expression_obeys_the_pspi_formula_and_lists_the_pspi_aus():
    for spec in plan_identities(30, 2):
        assert spec.expressions[0].name == "neutral" and spec.expressions[0].pspi == 0
        assert all(v == 0 for v in spec.expressions[0].aus.values())
        assert [e.name for e in spec.expressions[1:]] == [f"pain{k:02d}" for k in range(10)]
        for expression in spec.expressions:
            assert set(PSPI_AUS) <= set(expression.aus)
            assert expression.pspi == pspi(expression.aus)
        assert all(1 <= e.pspi <= 16 for e in spec.expressions[1:])


def test_default_pspi_distribution_is_uniform_over_1_to_16():
    rng = np.random.default_rng(0)
    counts = collections.Counter(e.pspi for _ in range(400) for e in sample_expressions(rng, ExpressionConfig())[1:])
    assert set(counts) == set(range(1, 17))
    expected = 4000 / 16
    chi2 = sum((counts[p] - expected) ** 2 / expected for p in range(1, 17))
    assert chi2 < 37.7  # 99.9 % quantile of chi-square with 15 degrees of freedom


def test_the_same_pspi_comes_with_varied_au_patterns():
    rng = np.random.default_rng(1)
    config = ExpressionConfig(pspi_weights=tuple(1.0 if p == 8 else 0.0 for p in range(MAX_PSPI + 1)))
    patterns = {tuple(sorted((au, v) for au, v in e.aus.items() if au in PSPI_AUS))
                for _ in range(50) for e in sample_expressions(rng, config)[1:]}
    assert all(dict(p) and pspi(dict(p)) == 8 for p in patterns)
    assert len(patterns) > 40
    # Every decomposition of PSPI 8 is reachable.
    assert len({(d["AU4"], max(d["AU6"], d["AU7"]), max(d["AU9"], d["AU10"]), d["AU43"]) for d in map(dict, patterns)}) == len(decompositions(8))


def test_hard_negatives_are_marked_pspi_zero_and_made_of_other_aus():
    rng = np.random.default_rng(2)
    expressions = sample_expressions(rng, ExpressionConfig(pain_expressions=4, hard_negatives=3))
    negatives = [e for e in expressions if e.hard_negative]
    assert [e.name for e in negatives] == ["neg00", "neg01", "neg02"]
    for e in negatives:
        assert e.pspi == 0 and all(e.aus[au] == 0 for au in PSPI_AUS)
        assert any(e.aus.get(au, 0) > 0 for au in NON_PSPI_AUS)


def test_configurable_pspi_weights_from_a_mapping():
    config = ExpressionConfig.from_dict({"pspi_weights": {16: 1.0}})
    rng = np.random.default_rng(0)
    assert {e.pspi for e in sample_expressions(rng, config)[1:]} == {16}


@pytest.mark.parametrize("options, message", [
    ({"pspi_weights": [1.0] * 3}, "pspi_weights needs 17"),
    ({"pspi_weights": {20: 1.0}}, "PSPI values 0..16"),
    ({"pain_expressions": 0, "hard_negatives": 0}, "not both 0"),
    ({"colour": "red"}, "unknown expressions key"),
])
def test_bad_expression_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ExpressionConfig.from_dict(options)


def test_bad_plan_options_are_refused():
    with pytest.raises(ValueError, match="unknown plan key"):
        PlanConfig.from_dict({"ages": [1, 2]})
    with pytest.raises(ValueError, match="genders must not be empty"):
        PlanConfig(genders=())
    with pytest.raises(ValueError, match="identity index"):
        plan_identity(-1, 0)
