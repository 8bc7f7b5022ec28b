"""`factory plan` as a user runs it."""

import json

from typer.testing import CliRunner

from factory.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "plan" in result.output


def test_plan_writes_one_json_object_per_identity(tmp_path):
    out = tmp_path / "plan.jsonl"
    result = runner.invoke(app, ["plan", "--identities", "5", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"id-{k:07d}" for k in range(5)]
    for row in rows:
        assert {"age", "gender", "ethnicity"} <= set(row["demographics"])
        assert len(row["expressions"]) == 11
        for expression in row["expressions"]:
            assert isinstance(expression["name"], str) and isinstance(expression["pspi"], int)
            assert all(isinstance(v, int) for v in expression["aus"].values()) and "AU4" in expression["aus"]
    again = tmp_path / "again.jsonl"
    runner.invoke(app, ["plan", "--identities", "5", "--seed", "0", "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()


def test_zero_identities_is_a_clear_error_and_writes_nothing(tmp_path):
    out = tmp_path / "plan.jsonl"
    result = runner.invoke(app, ["plan", "--identities", "0", "--out", str(out)])
    assert result.exit_code == 2 and "--identities must be >= 1" in result.output
    assert not out.exists()
