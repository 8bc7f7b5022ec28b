"""The `factory` command line: plan, render and generate synthetic pain-face datasets."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="painfactory: synthetic 3D pain faces with exact action units and PSPI labels, at any scale.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """painfactory: synthetic 3D pain faces with exact action units and PSPI labels, at any scale."""


def fail(message: str) -> None:
    """Print a one-line error and exit 2: bad input is the user's to fix, not a traceback."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


@app.command()
def plan(
    identities: int = typer.Option(..., "--identities", "-n", help="How many identities to plan."),
    seed: int = typer.Option(0, help="Dataset seed; 0 is a seed like any other."),
    out: Path = typer.Option(Path("plan.jsonl"), help="JSON Lines file to write, one identity per line ('-' for stdout)."),
    start: int = typer.Option(0, help="Index of the first identity (plans do not depend on the run size)."),
) -> None:
    """Write the seeded plan of N identities: demographics, shape, skin, the expression AUs and PSPI, views and light."""
    from factory.plan import plan_identities

    if identities < 1:
        fail(f"--identities must be >= 1, got {identities}")
    if start < 0:
        fail(f"--start must be >= 0, got {start}")
    lines = (spec.to_json() + "\n" for spec in plan_identities(identities, seed, start=start))
    if str(out) == "-":
        for line in lines:
            typer.echo(line, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w") as handle:
        handle.writelines(lines)
    partial.replace(out)  # never leave a half-written plan under the real name
    typer.echo(f"planned {identities} identities (seed {seed}) → {out}")


if __name__ == "__main__":
    app()
