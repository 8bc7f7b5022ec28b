"""User-facing errors: one base class, and how a command line reports it.

Every problem a user can fix (a bad flag or config key, a dataset that is not one, an unreachable store, a
damaged shard) is raised as a `FactoryError` subclass whose message names the culprit. A command catches the
base class once and prints the message in one line; anything else is a bug and keeps its traceback.

    app = typer.Typer()
    command = reporting_command(app)

    @command()
    def verify(url: str) -> None: ...        # a FactoryError inside becomes "error: …" and exit status 2
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

USAGE_EXIT_CODE = 2  # bad input, as click uses for usage errors; 1 stays for "checked and found wrong" (verify)


class FactoryError(Exception):
    """A problem with the user's input or environment; the message says what and, where it can, what to do."""


def brief(value: object, width: int = 60) -> str:
    """repr(value), cut to `width` characters: an error line stays one short line whatever the data holds."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def fail(message: str, code: int = USAGE_EXIT_CODE) -> None:
    """Print a one-line error on stderr and exit: bad input is the user's to fix, not a traceback."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def reporting_command(app: typer.Typer) -> Callable:
    """`app.command`, with every FactoryError of the command turned into `fail(message)`."""

    def command(*args, **kwargs) -> Callable:
        def decorate(function: Callable) -> Callable:
            @functools.wraps(function)  # typer reads the signature through __wrapped__
            def reported(*call_args, **call_kwargs):
                try:
                    return function(*call_args, **call_kwargs)
                except FactoryError as error:
                    fail(str(error))

            return app.command(*args, **kwargs)(reported)

        return decorate

    return command
