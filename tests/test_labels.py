"""PSPI is exactly AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43."""

import itertools

import pytest

from factory.spec.labels import PSPI_AUS, pspi, validate_aus


def test_pspi_formula_over_every_combination():
    levels = range(6)
    seen = set()
    for a4, a6, a7, a9, a10, a43 in itertools.product(levels, levels, levels, levels, levels, (0, 1)):
        aus = dict(zip(PSPI_AUS, (a4, a6, a7, a9, a10, a43)))
        value = pspi(aus)
        assert value == a4 + max(a6, a7) + max(a9, a10) + a43
        seen.add(value)
    assert seen == set(range(17))


def test_other_aus_never_change_pspi():
    assert pspi({"AU4": 2, "AU12": 5, "AU1": 3, "AU25": 4}) == 2
    assert pspi({}) == 0


@pytest.mark.parametrize("aus, message", [
    ({"AU3": 1}, "unknown action unit 'AU3'"),
    ({"AU4": 6}, "AU4 must be an integer from 0 to 5"),
    ({"AU43": 2}, "AU43 must be an integer from 0 to 1"),
    ({"AU6": -1}, "AU6 must be"),
    ({"AU7": 2.5}, "AU7 must be"),
    ({"AU9": True}, "AU9 must be"),
    ({"AU4": float("nan")}, "AU4 must be an integer from 0 to 5, got nan"),  # labels read from a dataset's meta.json
    ({"AU4": float("inf")}, "AU4 must be an integer from 0 to 5, got inf"),
    ({"AU4": 1e30}, "AU4 must be an integer from 0 to 5, got 1e\\+30"),
    ({"AU4": "3"}, "AU4 must be an integer from 0 to 5, got '3'"),
    ({"AU4": None}, "AU4 must be an integer from 0 to 5, got None"),
])
def test_bad_intensities_name_the_problem(aus, message):
    with pytest.raises(ValueError, match=message):
        validate_aus(aus)
