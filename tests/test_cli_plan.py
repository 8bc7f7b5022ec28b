"""`factory plan` as a user runs it."""

import json

from typer.testing import CliRunner

from factory.cli import app
from factory.spec.labels import PSPI_AUS, pspi
from factory.spec.plan import IdentitySpec, plan_identity

runner = CliRunner()
COMMANDS = ("plan", "generate", "verify", "inspect", "render-identity", "preview")


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert all(name in result.output for name in COMMANDS), result.output


def test_plan_writes_the_planners_identities_one_json_object_per_line(tmp_path):
    out = tmp_path / "plan.jsonl"
    result = runner.invoke(app, ["plan", "--identities", "5", "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "planned 5 identities (seed 7)" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [json.loads(plan_identity(k, 7).to_json()) for k in range(5)]
    for k, row in enumerate(rows):
        spec = IdentitySpec.from_dict(row)  # a row reads back into the same plan, labels checked on the way
        assert spec == plan_identity(k, 7)
        assert row["expressions"][0]["name"] == "neutral" and row["expressions"][0]["pspi"] == 0
        assert len(row["expressions"]) == 11
        for expression in row["expressions"]:
            assert set(PSPI_AUS) <= set(expression["aus"]) and all(isinstance(v, int) for v in expression["aus"].values())
            assert expression["pspi"] == pspi(expression["aus"])
    again = tmp_path / "again.jsonl"
    runner.invoke(app, ["plan", "--identities", "5", "--seed", "7", "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()


def test_start_and_stdout_give_the_same_identities_as_a_longer_plan(tmp_path):
    whole = tmp_path / "whole.jsonl"
    runner.invoke(app, ["plan", "--identities", "6", "--out", str(whole)])
    tail = runner.invoke(app, ["plan", "--identities", "2", "--start", "4", "--out", "-"])
    assert tail.exit_code == 0
    assert tail.output.splitlines() == whole.read_text().splitlines()[4:]
    assert not (tmp_path / "whole.jsonl.partial").exists()


def test_bad_counts_are_clear_errors_and_write_nothing(tmp_path):
    out = tmp_path / "plan.jsonl"
    result = runner.invoke(app, ["plan", "--identities", "0", "--out", str(out)])
    assert result.exit_code == 2 and "--identities must be >= 1" in result.output
    result = runner.invoke(app, ["plan", "--identities", "2", "--start", "-1", "--out", str(out)])
    assert result.exit_code == 2 and "--start must be >= 0" in result.output
    assert not out.exists()
