"""The `factory` command line: plan, render and generate synthetic pain-face datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from factory.errors import FactoryError, fail, reporting_command
from factory.format.storage import parse_storage_options, resolve_storage_options

app = typer.Typer(
    help="painfactory: synthetic 3D pain faces with exact action units and PSPI labels, at any scale.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """painfactory: synthetic 3D pain faces with exact action units and PSPI labels, at any scale."""
command = reporting_command(app)  # each command: a FactoryError becomes one line on stderr and exit status 2


def storage_options_for(url: str, pairs: list[str] | None) -> dict:
    """What every command passes to the store: environment defaults, then the --storage-option flags."""
    return resolve_storage_options(url, parse_storage_options(pairs or []))


@command()
def plan(
    identities: int = typer.Option(..., "--identities", "-n", help="How many identities to plan."),
    seed: int = typer.Option(0, help="Dataset seed; 0 is a seed like any other."),
    out: Path = typer.Option(Path("plan.jsonl"), help="JSON Lines file to write, one identity per line ('-' for stdout)."),
    start: int = typer.Option(0, help="Index of the first identity (plans do not depend on the run size)."),
) -> None:
    """Write the seeded plan of N identities: demographics, shape, skin, the expression AUs and PSPI, views and light."""
    from factory.spec.plan import plan_identities

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



@command()
def generate(
    identities: int = typer.Option(None, "--identities", "-n", help="How many identities the dataset holds (may grow on a later run)."),
    out: str = typer.Option(None, "--out", "-o", help="Dataset folder or URL: ./out, file:///data/x, s3://bucket/prefix."),
    seed: int = typer.Option(None, help="Dataset seed (default 0; 0 is a seed like any other)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with any of these options (flags win); see factory/run/config.py."),
    workers: int = typer.Option(None, help="Worker actors (default: one per CPU, or per GPU group, of the Ray cluster)."),
    gpus_per_worker: float = typer.Option(None, "--gpus-per-worker", help="GPUs per worker actor (default 1 when the cluster has GPUs, else 0)."),
    identities_per_shard: int = typer.Option(None, "--identities-per-shard", help="Identities per WebDataset shard (default 4)."),
    image_size: int = typer.Option(None, "--image-size", help="Rendered image side in pixels (default 512)."),
    face_model: str = typer.Option(None, "--face-model", help="ict (bundled, default) or flame (your FLAME file, --flame-path)."),
    flame_path: str = typer.Option(None, "--flame-path", help="FLAME 2020 / 2023 / 2023 Open model file (.pkl or .npz); see the README."),
    flame_uv: str = typer.Option(None, "--flame-uv", help="FLAME's UV layout (.obj with vt, or FLAME_texture.npz); default: ICT's, transferred."),
    flame_landmarks: str = typer.Option(None, "--flame-landmarks", help="FLAME 68-point landmark embedding (.npy/.pkl/.npz); default: the "
                                        "model file's, else transferred from ICT."),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value, repeatable (endpoint_url=http://…)."),
    overwrite: bool = typer.Option(None, "--overwrite/--no-overwrite", help="Delete the dataset already at --out (its shards and manifest) first."),
    wait: bool = typer.Option(None, "--wait/--no-wait", help="If another driver is writing --out, wait for it to finish instead of stopping."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar on stderr."),
) -> None:
    """Render a dataset with a pool of Ray actors into WebDataset shards with a manifest.

    Uses the Ray cluster at RAY_ADDRESS when set, else starts a local one. Running the same command again
    resumes (committed shards are kept); a larger --identities extends the dataset. One driver writes a dataset at
    a time (a lease in the dataset); a second one stops, naming the first, or waits with --wait.
    """
    from factory.run.config import load_generate_config
    from factory.run.generate import generate as run_generate

    settings = load_generate_config(
        config, identities=identities, out=out, seed=seed, workers=workers, gpus_per_worker=gpus_per_worker,
        identities_per_shard=identities_per_shard, image_size=image_size, face_model=face_model, flame_path=flame_path,
        flame_uv=flame_uv, flame_landmarks=flame_landmarks, overwrite=overwrite, wait=wait,
        storage_options=parse_storage_options(storage_option or []),
    )
    typer.echo(run_generate(settings, progress=progress).text())


@command("export")
def export_dataset(
    url: str = typer.Argument(..., help="Dataset folder or URL (the folder holding manifest.json)."),
    out: str = typer.Option(..., "--out", "-o", help="Folder or URL to write: ./3dpain, s3://bucket/prefix."),
    format: str = typer.Option("3dpain", "--format", help="3dpain (the published 3DPain layout) or hf (Parquet + dataset card)."),
    layout: str = typer.Option("archive", "--layout", help="3dpain: archive (tar.gz chunks, as published) or folder (unpacked, "
                               "the official ViTPain code's layout with splits.csv)."),
    mesh: str = typer.Option("glb", "--mesh", help="3dpain: textured meshes as glb (texture embedded) or obj (+ png)."),
    identities_per_chunk: int = typer.Option(100, "--identities-per-chunk", help="Identities per archive / Parquet file; "
                                             "the unit a rerun skips when done."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the identity-disjoint split (the trainer's split.seed)."),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value for URL, repeatable."),
    out_storage_option: list[str] = typer.Option(None, "--out-storage-option", help="fsspec option key=value for --out, "
                                                 "repeatable (default: the --storage-option values)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Write the dataset in another layout: 3DPain's (archive or folder) or Hugging Face's (Parquet + card).

    Each chunk of identities is committed atomically; running the same command again skips finished chunks."""
    from factory.export import ExportRequest, export
    from factory.spec.split import SplitConfig

    request = ExportRequest(
        url=url, out=out, format=format, layout=layout, mesh=mesh, identities_per_chunk=identities_per_chunk,
        split=SplitConfig(seed=split_seed), storage_options=storage_options_for(url, storage_option),
        out_storage_options=storage_options_for(out, out_storage_option if out_storage_option else storage_option),
    )
    typer.echo(export(request, progress=progress).text())


@command()
def card(
    url: str = typer.Argument(..., help="Dataset folder or URL (the folder holding manifest.json)."),
    out: str = typer.Option(..., "--out", "-o", help="Folder or URL to write README.md and plots/ into."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the identity-disjoint split the card counts."),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value, repeatable."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Write a dataset card: README.md (counts, label, AU and demographic distributions, how it was made, licences,
    citation) and PNG plots (PSPI and AU histograms, demographic strata, a sample grid)."""
    from factory.export.card import card_for_dataset
    from factory.spec.split import SplitConfig

    counts = card_for_dataset(url, out, storage_options_for(url, storage_option), storage_options_for(out, storage_option),
                              SplitConfig(seed=split_seed), progress=progress)
    typer.echo(f"wrote the card of {counts.identities} identities → {out.rstrip('/')}/README.md")


@command()
def verify(
    url: str = typer.Argument(..., help="Dataset folder or URL (the folder holding manifest.json)."),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value, repeatable."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Check every shard against the manifest: present, size, sha256, every member readable, counts, PSPI.

    Exits 1 at the first problem, naming the shard and member.
    """
    from factory.qa.verify import verify_dataset

    try:
        report = verify_dataset(url, storage_options_for(url, storage_option), progress=progress)
    except FactoryError as error:  # a damaged or unreadable dataset is the answer verify gives, exit status 1
        typer.secho(f"FAILED: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(report.text())


@command("inspect")
def inspect_dataset(
    url: str = typer.Argument(..., help="Dataset folder or URL (the folder holding manifest.json)."),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value, repeatable."),
) -> None:
    """Summarise a dataset: identities, images, the PSPI histogram and the demographic balance."""
    from factory.qa.summary import summarize_dataset

    typer.echo(summarize_dataset(url, storage_options_for(url, storage_option), progress=True).text())


@command("render-identity")
def render_identity(
    seed: int = typer.Option(0, help="Dataset seed the identity is planned from."),
    index: int = typer.Option(0, help="Index of the identity in that dataset."),
    out: Path = typer.Option(..., help="Folder to write; one file per sample member, named as the member "
                             "(meta.json, neutral.v0.jpg, pain00.heat.png, mesh.obj, …; see docs/DATA.md)."),
    image_size: int = typer.Option(512, help="Width and height of every image in pixels."),
    texturer: str = typer.Option("procedural", help="Texturer name (see factory.face.texture.TEXTURERS)."),
    texture_size: int = typer.Option(1024, help="Width and height of the UV texture in texels."),
    face_model: str = typer.Option("ict", "--face-model", help="ict (bundled) or flame (--flame-path)."),
    flame_path: str = typer.Option(None, "--flame-path", help="FLAME model file (.pkl or .npz)."),
    flame_uv: str = typer.Option(None, "--flame-uv", help="FLAME's UV layout; default: ICT's, transferred."),
    flame_landmarks: str = typer.Option(None, "--flame-landmarks", help="FLAME landmark embedding; default: the model file's, else transferred."),
) -> None:
    """Render one planned identity (every expression from every view, heatmaps, mesh, texture) into a folder."""
    from factory.run.identity import IdentityRenderer, RenderConfig
    from factory.spec.plan import plan_identity

    if index < 0:
        fail(f"--index must be >= 0, got {index}")
    config = RenderConfig(image_size=image_size, texturer=texturer, texture_size=texture_size, face_model=face_model,
                          flame_path=flame_path, flame_uv=flame_uv, flame_landmarks=flame_landmarks)
    spec = plan_identity(index, seed)
    renderer = IdentityRenderer(config)
    members = renderer.encode_sample(spec, renderer.render(spec))
    out.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        partial = out / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(out / name)  # a reader never sees half a file under the real name
    typer.echo(f"rendered {spec.id} (seed {seed}): {len(members)} files → {out}")


@command()
def preview(
    source: str = typer.Argument(..., help="A dataset folder or URL (holding manifest.json: ./out, s3://bucket/prefix), "
                                 "a folder written by render-identity, or a folder of such folders."),
    out: Path = typer.Option(Path("sheet.png"), help="PNG file to write."),
    max_identities: int = typer.Option(4, help="At most this many identities on the sheet."),
    thumb: int = typer.Option(160, help="Size of each image cell in pixels."),
    palette: bool = typer.Option(False, help="Write an 8-bit palette PNG (about a third of the size, for docs)."),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value for a dataset URL, repeatable."),
) -> None:
    """Draw a contact sheet: a row per expression (neutral first), a column per view plus the heatmap, captions with
    the identity's demographics and each expression's AUs and PSPI."""
    from factory.format.dataset import open_dataset
    from factory.format.manifest import MANIFEST_NAME
    from factory.qa.preview import contact_sheet, dataset_samples, read_sample_folders, to_palette

    if "://" in source or (Path(source) / MANIFEST_NAME).is_file():
        samples = dataset_samples(open_dataset(source, storage_options_for(source, storage_option)))
    else:
        samples = read_sample_folders(Path(source))
    sheet = contact_sheet(samples, max_identities=max_identities, thumb=thumb)
    out.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        sheet = to_palette(sheet)
    sheet.save(out, format="PNG", optimize=True)
    typer.echo(f"wrote {out} ({sheet.width}×{sheet.height})")


if __name__ == "__main__":
    app()
