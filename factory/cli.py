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


@app.command("render-identity")
def render_identity(
    seed: int = typer.Option(0, help="Dataset seed the identity is planned from."),
    index: int = typer.Option(0, help="Index of the identity in that dataset."),
    out: Path = typer.Option(..., help="Folder to write; one file per sample member, named as the member "
                             "(meta.json, neutral.v0.jpg, pain00.heat.png, mesh.obj, …; see docs/DATA.md)."),
    image_size: int = typer.Option(512, help="Width and height of every image in pixels."),
    texturer: str = typer.Option("procedural", help="Texturer name (see factory.texture.TEXTURERS)."),
    texture_size: int = typer.Option(1024, help="Width and height of the UV texture in texels."),
) -> None:
    """Render one planned identity (every expression from every view, heatmaps, mesh, texture) into a folder."""
    from factory.identity import IdentityRenderer, RenderConfig
    from factory.plan import plan_identity

    if index < 0:
        fail(f"--index must be >= 0, got {index}")
    try:
        config = RenderConfig(image_size=image_size, texturer=texturer, texture_size=texture_size)
    except ValueError as error:
        fail(str(error))
    spec = plan_identity(index, seed)
    renderer = IdentityRenderer(config)
    members = renderer.encode_sample(spec, renderer.render(spec))
    out.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        partial = out / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(out / name)  # a reader never sees half a file under the real name
    typer.echo(f"rendered {spec.id} (seed {seed}): {len(members)} files → {out}")


@app.command()
def preview(
    source: Path = typer.Argument(..., help="A folder written by render-identity, or a folder of such folders."),
    out: Path = typer.Option(Path("sheet.png"), help="PNG file to write."),
    max_identities: int = typer.Option(4, help="At most this many identities on the sheet."),
    thumb: int = typer.Option(160, help="Size of each image cell in pixels."),
    palette: bool = typer.Option(False, help="Write an 8-bit palette PNG (about a third of the size, for docs)."),
) -> None:
    """Draw a contact sheet: a row per expression (neutral first), a column per view plus the heatmap, captions with
    the identity's demographics and each expression's AUs and PSPI."""
    from PIL import Image

    from factory.preview import contact_sheet, read_sample_folders

    try:
        sheet = contact_sheet(read_sample_folders(source), max_identities=max_identities, thumb=thumb)
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    out.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        sheet = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    sheet.save(out, format="PNG", optimize=True)
    typer.echo(f"wrote {out} ({sheet.width}×{sheet.height})")


if __name__ == "__main__":
    app()
