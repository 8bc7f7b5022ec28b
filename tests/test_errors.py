"""User-facing errors share one base class, and a command reports it in one line (exit 2); bugs keep tracebacks."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from factory.errors import FactoryError, reporting_command
from factory.format.dataset import DatasetError
from factory.format.lease import LeaseHeld, LeaseLost
from factory.format.manifest import ManifestError
from factory.format.shards import ShardError
from factory.format.storage import StorageError
from factory.options import ConfigError
from factory.qa.preview import PreviewError
from factory.qa.verify import VerifyError
from factory.run.generate import GenerateError, GenerateInterrupted


@pytest.mark.parametrize("error", [ConfigError, DatasetError, GenerateError, GenerateInterrupted, LeaseHeld, LeaseLost,
                                   ManifestError, PreviewError, ShardError, StorageError, VerifyError])
def test_every_user_facing_error_is_a_factory_error(error):
    assert issubclass(error, FactoryError)


def make_app() -> typer.Typer:
    app = typer.Typer()
    command = reporting_command(app)

    @command()
    def run(what: str = typer.Option(..., help="what to raise")) -> None:
        """Raise what is asked."""
        if what == "user":
            raise StorageError("cannot access s3://b/ds/manifest.json: NoSuchBucket")
        raise KeyError("a bug")

    @command()
    def other() -> None:
        """A second command, so typer keeps subcommands."""

    return app


def test_a_factory_error_is_one_line_and_exit_2():
    result = CliRunner().invoke(make_app(), ["run", "--what", "user"])
    assert result.exit_code == 2
    assert result.output == "error: cannot access s3://b/ds/manifest.json: NoSuchBucket\n"


def test_a_bug_keeps_its_traceback_and_the_signature_stays_visible():
    app = make_app()
    result = CliRunner().invoke(app, ["run", "--what", "bug"])
    assert isinstance(result.exception, KeyError)
    assert "--what" in CliRunner().invoke(app, ["run", "--help"]).output  # typer still sees the wrapped options
