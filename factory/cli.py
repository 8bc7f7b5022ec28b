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


TEXTURE_MODEL_HELP = "Texture model for --texturer diffusion: a local folder or a Hugging Face id in the HF cache (offline)."
CONTROLNET_MODEL_HELP = "Depth ControlNet for --texturer diffusion: a local folder or a Hugging Face id in the HF cache."
BACKGROUND_MODEL_HELP = "Inpainting model for --background inpaint: a local folder or a Hugging Face id in the HF cache."


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



SEQUENCE_FRAMES_HELP = ("Frames of a pain sequence per pain expression, 3..60 (neutral → onset → apex → offset, with blinks "
                        "and head motion; docs/DATA.md); default 0: stills only.")


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
    sets: str = typer.Option(None, "--sets", help="Shard sets to write, comma-separated: images (always), layers (depth, "
                             "segmentation), assets (textured mesh); default all three. See docs/DATA.md."),
    mesh_format: str = typer.Option(None, "--mesh-format", help="The assets set's mesh: glb (default; texture embedded as JPEG) or obj (+ png)."),
    texturer: str = typer.Option(None, help="Texturer: procedural (default) or diffusion (portraits from the diffusion stage)."),
    background: str = typer.Option(None, help="Background: scene (default: the plan's room), gradient, or inpaint (rooms painted by the diffusion stage)."),
    texture_model: str = typer.Option(None, "--texture-model", help=TEXTURE_MODEL_HELP),
    controlnet_model: str = typer.Option(None, "--controlnet-model", help=CONTROLNET_MODEL_HELP),
    background_model: str = typer.Option(None, "--background-model", help=BACKGROUND_MODEL_HELP),
    diffusion_actors: int = typer.Option(None, "--diffusion-actors", help="Diffusion actors (default: one per GPU share of the cluster)."),
    diffusion_gpus_per_actor: float = typer.Option(None, "--diffusion-gpus-per-actor",
                                                   help="GPUs per diffusion actor, fractions share a GPU (default 1 with GPUs, else 0)."),
    diffusion_batch_size: int = typer.Option(None, "--diffusion-batch-size", help="Jobs per diffusion pipeline call (default 8)."),
    batch_identities: int = typer.Option(None, "--batch-identities", help="Identities a worker renders at once, all views in one "
                                         "rasterizer call (default 1; 8 or more on GPUs, at most --identities-per-shard)."),
    scenario: str = typer.Option(None, "--scenario", help="default (upright portraits) or clinical (a patient on a pillow, ward cameras and light, "
                                 "medical occluders); YAML plan: {scenario: …, occluded_share: …}."),
    face_model: str = typer.Option(None, "--face-model", help="ict (bundled, default) or flame (your FLAME file, --flame-path)."),
    flame_path: str = typer.Option(None, "--flame-path", help="FLAME 2020 / 2023 / 2023 Open model file (.pkl or .npz); see the README."),
    flame_uv: str = typer.Option(None, "--flame-uv", help="FLAME's UV layout (.obj with vt, or FLAME_texture.npz); default: ICT's, transferred."),
    flame_landmarks: str = typer.Option(None, "--flame-landmarks", help="FLAME 68-point landmark embedding (.npy/.pkl/.npz); default: the "
                                        "model file's, else transferred from ICT."),
    sequence_frames: int = typer.Option(None, "--sequence-frames", help=SEQUENCE_FRAMES_HELP),
    storage_option: list[str] = typer.Option(None, "--storage-option", help="fsspec option key=value, repeatable (endpoint_url=http://…)."),
    overwrite: bool = typer.Option(None, "--overwrite/--no-overwrite", help="Delete the dataset already at --out (its shards and manifest) first."),
    wait: bool = typer.Option(None, "--wait/--no-wait", help="If another driver is writing --out, wait for it to finish instead of stopping."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar on stderr."),
) -> None:
    """Render a dataset with a pool of Ray actors into WebDataset shards with a manifest.

    Uses the Ray cluster at RAY_ADDRESS when set, else starts a local one. Running the same command again
    resumes (committed shards are kept); a larger --identities extends the dataset. One driver writes a dataset at
    a time (a lease in the dataset); a second one stops, naming the first, or waits with --wait. With --texturer
    diffusion or --background inpaint, a pool of diffusion actors (GPUs) makes portraits and rooms for the render workers.
    """
    from factory.run.config import load_generate_config, parse_sets
    from factory.run.generate import generate as run_generate

    settings = load_generate_config(
        config, identities=identities, out=out, seed=seed, workers=workers, gpus_per_worker=gpus_per_worker,
        sets=parse_sets(sets), mesh_format=mesh_format,
        identities_per_shard=identities_per_shard, image_size=image_size, face_model=face_model, flame_path=flame_path,
        flame_uv=flame_uv, flame_landmarks=flame_landmarks, overwrite=overwrite, wait=wait,
        storage_options=parse_storage_options(storage_option or []), texturer=texturer, background=background,
        texture_model=texture_model, controlnet_model=controlnet_model, background_model=background_model,
        diffusion_actors=diffusion_actors, diffusion_gpus_per_actor=diffusion_gpus_per_actor,
        diffusion_batch_size=diffusion_batch_size, batch_identities=batch_identities, scenario=scenario,
        sequence_frames=sequence_frames,
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
    background: str = typer.Option("scene", help="Background name (see factory/run/backgrounds.py BACKGROUNDS)."),
    texture_model: str = typer.Option(None, "--texture-model", help=TEXTURE_MODEL_HELP),
    controlnet_model: str = typer.Option(None, "--controlnet-model", help=CONTROLNET_MODEL_HELP),
    background_model: str = typer.Option(None, "--background-model", help=BACKGROUND_MODEL_HELP),
    scenario: str = typer.Option("default", "--scenario", help="default (upright portraits) or clinical (a patient on a pillow, ward "
                                 "cameras and light, medical occluders)."),
    face_model: str = typer.Option("ict", "--face-model", help="ict (bundled) or flame (--flame-path)."),
    flame_path: str = typer.Option(None, "--flame-path", help="FLAME model file (.pkl or .npz)."),
    flame_uv: str = typer.Option(None, "--flame-uv", help="FLAME's UV layout; default: ICT's, transferred."),
    flame_landmarks: str = typer.Option(None, "--flame-landmarks", help="FLAME landmark embedding; default: the model file's, else transferred."),
    sequence_frames: int = typer.Option(None, "--sequence-frames", help=SEQUENCE_FRAMES_HELP),
) -> None:
    """Render one planned identity (every expression from every view, heatmaps, mesh, texture) into a folder.

    With --texturer diffusion or --background inpaint, the diffusion models run in this process (on the GPU when
    there is one)."""
    from factory.run.config import with_render_flags
    from factory.run.identity import IdentityRenderer, RenderConfig
    from factory.run.stage import render_identities
    from factory.spec.plan import PlanConfig, plan_identity

    if index < 0:
        fail(f"--index must be >= 0, got {index}")
    flags = {"image_size": image_size, "texturer": texturer, "background": background, "texture_model": texture_model,
             "controlnet_model": controlnet_model, "background_model": background_model, "face_model": face_model,
             "flame_path": flame_path, "flame_uv": flame_uv, "flame_landmarks": flame_landmarks, "sequence_frames": sequence_frames}
    config = RenderConfig.from_dict(with_render_flags({"texture_size": texture_size}, flags))
    spec = plan_identity(index, seed, PlanConfig.from_dict({"scenario": scenario}))
    renderer = IdentityRenderer(config)
    [(_, layers)] = render_identities(renderer, [spec], local_diffusion(config))
    members = renderer.encode_sample(spec, layers)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        partial = out / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(out / name)  # a reader never sees half a file under the real name
    typer.echo(f"rendered {spec.id} (seed {seed}): {len(members)} files → {out}")


def local_diffusion(config):
    """The diffusion models in this process, for a render config that needs them (checked first), else None."""
    if not config.uses_diffusion:
        return None
    from factory.diffusion.pipelines import DiffusionModels
    from factory.run.diffusion import check_models
    from factory.run.identity import resolve_device

    check_models(config)
    return DiffusionModels(config.diffusion, resolve_device(config.device))


@command("fetch-models")
def fetch_models(
    texture: str = typer.Option(None, "--texture", help="Texture model id (default: the config's, else stable-diffusion-v1-5)."),
    controlnet: str = typer.Option(None, "--controlnet", help="Depth ControlNet id (default: the config's, else control_v11f1p_sd15_depth)."),
    background: str = typer.Option(None, "--background", help="Inpainting model id (default: the config's, else SD 1.5 inpainting)."),
    only: str = typer.Option(None, help="Fetch only 'texture' (the texture model and its ControlNet) or 'background'."),
    config: Path = typer.Option(None, "--config", "-c", help="A generate YAML config: fetch the models its render.diffusion names."),
    timeout: float = typer.Option(10.0, help="Seconds to wait for the Hub to answer before giving up."),
) -> None:
    """Download the diffusion models into the Hugging Face cache (needs network), where generate finds them offline.

    The cache is HF_HOME (HF_HUB_CACHE); copy it to machines without network, share it, or bake it into the image
    (Dockerfile: --build-arg FETCH_MODELS=1)."""
    from factory.diffusion.settings import DiffusionConfig
    from factory.diffusion.weights import BACKGROUND, CONTROLNET, ROLES, TEXTURE, fetch_model
    from factory.options import read_yaml
    from factory.run.config import section

    if only not in (None, "texture", "background"):
        fail(f"--only must be 'texture' or 'background', got {only!r}")
    settings = DiffusionConfig.from_dict(section(section(read_yaml(config), "render"), "diffusion")) if config else DiffusionConfig()
    wanted = {TEXTURE: texture or settings.texture.model, CONTROLNET: controlnet or settings.texture.controlnet,
              BACKGROUND: background or settings.background.model}
    if only:
        wanted = {role: given for role, given in wanted.items() if (role == BACKGROUND) == (only == "background")}
    for role, given in wanted.items():
        typer.echo(f"{ROLES[role][0]} {given}: {fetch_model(given, role, timeout=timeout)}")


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
