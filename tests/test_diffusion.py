"""The diffusion path's parts on CPU: its config, the back-projection with a known answer, the real diffusers
pipelines on tiny random-weight models (seeded per job), inpainted rooms, and clear errors for missing, damaged and
wrong models and for fetching without a network."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from factory.cli import app
from factory.diffusion.jobs import DiffusionOutputs, PortraitJob
from factory.diffusion.settings import DiffusionConfig
from factory.diffusion.weights import BACKGROUND, CONTROLNET, TEXTURE, ModelError, find_model
from factory.face.model import FaceModel
from factory.face.texture import DiffusionTexturer
from factory.face.texture.projection import blend_with_fill, project_views
from factory.options import ConfigError
from factory.render.background import GradientBackground
from factory.render.camera import Orbit, bounding_sphere, head_camera
from factory.render.lights import Light
from factory.render.mesh import Meshes
from factory.render.raster import Rasterizer
from factory.render.renderer import MeshRenderer
from factory.render.shading import Shader, UVTexture
from factory.run.config import load_generate_config
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.run.inpaint import dilate, fill_from_surroundings, inpaint_jobs, rooms_from
from factory.run.stage import neutral_face, render_identities
from factory.spec.plan import IdentitySpec, plan_identity
from tests.tiny_diffusion import TINY_SIZE, planned_gradient, save_tiny_models, save_tiny_sdxl_models

ROOT = Path(__file__).parents[1]
PROJECTION_PSNR_DB = 35.0  # measured 38.8 dB at 64 px (45.7 at 256 px): resampling is the only error left


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def tiny_render_config(models, texturer="diffusion", background="inpaint", face: dict | None = None, **texture) -> RenderConfig:
    return RenderConfig.from_dict({
        "image_size": TINY_SIZE, "texture_size": 128, "texturer": texturer, "background": background, **(face or {}),
        "diffusion": {"texture": {"model": str(models.texture), "controlnet": str(models.controlnet), "size": TINY_SIZE,
                                  "steps": 2, **texture},
                      "background": {"model": str(models.background), "steps": 2}}})


def test_flags_and_yaml_set_the_diffusion_keys_and_bad_ones_are_named(tmp_path):
    (tmp_path / "c.yaml").write_text("identities: 2\nout: x\nrender: {texturer: diffusion, diffusion: {texture: {steps: 4, "
                                     "scheduler: lcm, guidance: 1.0, view_yaws: [0, -35, 35]}}}\n")
    config = load_generate_config(tmp_path / "c.yaml", texture_model="/m/sd", controlnet_model="/m/cn", background="inpaint",
                                  background_model="/m/inpaint", diffusion_gpus_per_actor=0.5)
    diffusion = config.render.diffusion
    assert (config.render.texturer, config.render.background, config.diffusion_gpus_per_actor) == ("diffusion", "inpaint", 0.5)
    assert (diffusion.texture.model, diffusion.texture.controlnet, diffusion.background.model) == ("/m/sd", "/m/cn", "/m/inpaint")
    assert (diffusion.texture.steps, diffusion.texture.scheduler, diffusion.texture.view_yaws) == (4, "lcm", (0, -35, 35))
    assert config.content()["render"]["diffusion"]["texture"]["model"] == "/m/sd"  # the models decide the bytes

    procedural = load_generate_config(None, identities=2, out="x")
    assert procedural.render.diffusion is None and not procedural.render.uses_diffusion
    with pytest.raises(ConfigError, match="neither texturer 'diffusion' nor background 'inpaint'"):
        load_generate_config(None, identities=2, out="x", texture_model="/m/sd")
    with pytest.raises(ConfigError, match="texture.scheduler must be one of"):
        DiffusionConfig.from_dict({"texture": {"scheduler": "fastest"}})
    with pytest.raises(ConfigError, match="unknown render.diffusion.background key"):
        DiffusionConfig.from_dict({"background": {"modle": "x"}})
    with pytest.raises(ConfigError, match="multiple of 64"):
        DiffusionConfig.from_dict({"texture": {"size": 500}})
    with pytest.raises(ConfigError, match="unknown background 'sky'"):
        RenderConfig(background="sky")


def test_projecting_a_render_of_the_mesh_and_rendering_again_gives_it_back():
    """Known answer: the procedural texture rendered flat (ambient light only: image = albedo) is projected into the
    atlas over a grey fill and rendered again by the same camera. Where the view sees the skin squarely (blend weight 1)
    the two renders agree above PROJECTION_PSNR_DB; texels the view cannot see are the fill, exactly."""
    model = FaceModel.load()
    texturer = DiffusionTexturer(model, texture_size=128)
    spec = plan_identity(3, 0)
    renderer = IdentityRenderer(RenderConfig(image_size=TINY_SIZE, texture_size=128))
    neutral = neutral_face(renderer, spec)
    truth = texturer.fill.texture(spec.skin, spec.demographics).image
    atlas = texturer.atlas
    meshes = Meshes(neutral[None], atlas.faces, atlas.corner_uvs, atlas.face_part)
    centre, radius = bounding_sphere(neutral[model.layout.framed])
    camera = head_camera(Orbit(distance_scale=0.85), TINY_SIZE, centre, radius)
    flat = Light.from_angles(azimuth_deg=0, elevation_deg=0, kelvin=6500, intensity=0.0, ambient=1.0)
    mesh_renderer = MeshRenderer(Rasterizer("torch"), Shader(model.part_names))

    def render(texture: torch.Tensor) -> torch.Tensor:
        return mesh_renderer(meshes, camera, texture=UVTexture.from_srgb(texture), light=flat,
                             background=GradientBackground((0, 0, 0), (0, 0, 0))).image[0]

    picture = render(truth)
    projection = project_views(texturer.surface, neutral, [(camera, picture)], region=texturer.fill.regions.skin)
    grey = torch.full_like(truth, 0.5)
    baked, alpha = blend_with_fill(texturer.surface, projection, grey)

    again = render(baked)
    alpha_seen = render(alpha[..., None].expand(-1, -1, 3).contiguous())[..., 0]  # each pixel's blend weight
    squarely = alpha_seen > 0.99
    head = render(torch.ones_like(truth))[..., 0] > 0.5
    assert squarely.sum() > 0.3 * head.sum()  # most of the face is seen squarely from the front
    psnr = -10 * math.log10(float(((again - picture) ** 2)[squarely].mean()))
    assert psnr > PROJECTION_PSNR_DB, psnr
    assert psnr - 10 > -10 * math.log10(float(((render(grey) - picture) ** 2)[squarely].mean()))  # far from the fill

    covered = atlas.texel_face >= 0
    unseen = covered & (alpha == 0)
    assert unseen.sum() > 0.3 * covered.sum()  # the back of the head, the eyes and the mouth
    assert torch.equal(baked[unseen], grey[unseen])
    eyes = texturer.fill.regions.eyeball
    assert bool((alpha[eyes] == 0).all())  # only the skin takes colour from the portraits


def test_portraits_are_seeded_per_job_whatever_shares_their_batch(tiny_models):
    from factory.diffusion.pipelines import DiffusionModels

    config = tiny_render_config(tiny_models, background="gradient", steps=1)
    models = DiffusionModels(config.diffusion, torch.device("cpu"))
    depth = np.zeros((TINY_SIZE, TINY_SIZE), np.uint8)
    depth[16:48, 20:44] = 200

    def job(seed: int) -> PortraitJob:
        return PortraitJob(prompt="a 30-year-old woman", negative_prompt="blurry", seed=seed, depth=depth)

    alone = models.portraits([job(7)])[0]
    assert alone.shape == (TINY_SIZE, TINY_SIZE, 3) and alone.dtype == np.uint8
    assert np.array_equal(models.portraits([job(7)])[0], alone)  # same seed, same device: same bytes
    batched = models.portraits([job(3), job(7), job(5)])
    assert np.abs(batched[1].astype(int) - alone.astype(int)).max() <= 2  # its own latents in any batch (CPU kernels may round)
    assert np.abs(batched[0].astype(int) - alone.astype(int)).mean() > 5  # another seed, another portrait
    assert models.describe()["pipelines"] == {"texture": "StableDiffusionControlNetPipeline"}


def test_an_sdxl_texture_model_gets_the_sdxl_pipeline_and_controlnet_families_must_match(tiny_models, tmp_path):
    from factory.diffusion.pipelines import DiffusionModels

    texture, controlnet = save_tiny_sdxl_models(tmp_path)
    assert (find_model(str(texture), TEXTURE).family, find_model(str(controlnet), CONTROLNET).family) == ("sdxl", "sdxl")
    settings = DiffusionConfig.from_dict({"texture": {"model": str(texture), "controlnet": str(controlnet), "size": TINY_SIZE, "steps": 1}})
    models = DiffusionModels(settings, torch.device("cpu"))
    depth = np.full((TINY_SIZE, TINY_SIZE), 128, np.uint8)
    [portrait] = models.portraits([PortraitJob(prompt="a 50-year-old man", negative_prompt="", seed=1, depth=depth)])
    assert portrait.shape == (TINY_SIZE, TINY_SIZE, 3)
    assert models.describe()["pipelines"] == {"texture": "StableDiffusionXLControlNetPipeline"}
    mixed = DiffusionConfig.from_dict({"texture": {"model": str(texture), "controlnet": str(tiny_models.controlnet)}})
    with pytest.raises(ModelError, match="does not fit texture model .*sdxl.*use a depth ControlNet trained for that model family"):
        DiffusionModels(mixed, torch.device("cpu")).pipeline(TEXTURE)


def clean_sensor(spec: IdentitySpec) -> IdentitySpec:
    return replace(spec, views=tuple(replace(view, defocus_px=0.0, sensor_noise=0.0) for view in spec.views))


def test_one_identity_through_the_stage_in_process(tiny_models):
    """Portraits, texture, rooms and the final render of one identity with in-process models: the texture differs
    from the procedural one, each view's background is its painted room, and meta.json says what made them."""
    from factory.diffusion.pipelines import DiffusionModels

    config = tiny_render_config(tiny_models)
    renderer = IdentityRenderer(config)
    # Without the sensor's defocus and noise (the noise differs per image), the room behind each expression is exact.
    spec = clean_sensor(plan_identity(1, 0))
    [(_, layers)] = render_identities(renderer, [spec], DiffusionModels(config.diffusion, torch.device("cpu")))
    procedural = renderer.texturer.fill.texture(spec.skin, spec.demographics, spec.hair).image
    assert np.abs(layers["texture"].astype(int) - (procedural * 255).round().int().numpy()).mean() > 5
    background = ~layers["mask"]  # (expressions, views, H, W)
    gradient = planned_gradient(spec, TINY_SIZE)
    gradient = (gradient * 255).round().numpy()
    for view in range(len(spec.views)):
        outside = ~dilate(torch.from_numpy(~background[:, view].all(0)), 1).numpy()  # away from antialiased silhouettes
        assert np.abs(layers["rgb"][0, view][outside] - gradient[outside]).mean() > 10  # a room, not the gradient
        for expression in range(1, len(spec.expressions)):  # every expression stands in front of the same room
            both = outside & background[expression, view]
            assert np.array_equal(layers["rgb"][expression, view][both], layers["rgb"][0, view][both])
    meta = renderer.meta(spec, layers)
    assert meta["generator"]["texturer"] == "diffusion" and meta["generator"]["background"] == "inpaint"
    texture = meta["texture"]
    assert texture["models"] == {"texture": str(tiny_models.texture), "controlnet": str(tiny_models.controlnet)}
    assert texture["prompt"].startswith(f"a {spec.demographics.age}-year-old") and texture["negative_prompt"]
    assert (texture["steps"], texture["guidance"], len(texture["seeds"])) == (2, 7.0, 1) and 0 < texture["skin_from_portraits"] <= 1
    rooms = meta["background"]["inpaint"]
    assert rooms["model"] == str(tiny_models.background) and len(rooms["seeds"]) == len(spec.views) and rooms["prompt"]


def test_a_flame_identity_gets_its_portrait_baked_into_its_own_atlas(tiny_models, flame_2020):
    """The texturer frames, rasterizes and projects through whatever mesh and atlas the face model has: a FLAME
    identity's portrait lands on FLAME's skin texels, and meta.json names both the face model and the diffusion models."""
    from factory.diffusion.pipelines import DiffusionModels

    config = tiny_render_config(tiny_models, face={"face_model": "flame", "flame_path": str(flame_2020.path)})
    renderer = IdentityRenderer(config)
    spec = plan_identity(1, 0)
    [(_, layers)] = render_identities(renderer, [spec], DiffusionModels(config.diffusion, torch.device("cpu")))
    assert renderer.texturer.atlas.faces.max() < renderer.model.num_vertices == len(flame_2020.source_vertex)
    procedural = renderer.texturer.fill.texture(spec.skin, spec.demographics, spec.hair).image
    assert np.abs(layers["texture"].astype(int) - (procedural * 255).round().int().numpy()).mean() > 2
    assert 0.15 < layers["mask"][0, 0].mean() < 0.8  # the cameras frame the FLAME head
    meta = renderer.meta(spec, layers)
    assert (meta["generator"]["face_model"], meta["generator"]["texturer"]) == ("flame", "diffusion")
    assert 0.1 < meta["texture"]["skin_from_portraits"] <= 1
    assert meta["texture"]["models"]["texture"] == str(tiny_models.texture)


def test_the_kept_region_holds_every_expressions_head_and_the_room_continues_behind_it(tiny_models):
    config = tiny_render_config(tiny_models, texturer="procedural")
    renderer = IdentityRenderer(config)
    spec = plan_identity(4, 0)
    texture = renderer.texture(spec, neutral_face(renderer, spec))
    jobs = inpaint_jobs(renderer, spec, texture, config.diffusion.background)
    assert len(jobs) == len(spec.views) and len({job.seed for job in jobs}) == len(spec.views)
    layers = renderer.render(spec, DiffusionOutputs(backgrounds=tuple(job.image for job in jobs)))
    for view, job in enumerate(jobs):
        heads = layers["mask"][:, view].any(0)
        assert not (job.mask & heads).any()  # the model never paints over any expression's head
        assert job.mask.mean() > 0.3  # … and paints the rest of the frame
    painted = [np.full((TINY_SIZE, TINY_SIZE, 3), 200, np.uint8) for _ in jobs]
    painted[0][:, : TINY_SIZE // 2] = 40  # a dark left half of the room
    room = rooms_from(jobs, painted, TINY_SIZE)[0]
    assert np.array_equal(room[jobs[0].mask], painted[0][jobs[0].mask])  # painted pixels kept
    hole = ~jobs[0].mask
    assert room[hole][:, 0].min() >= 40 and room[hole][:, 0].max() <= 200  # the head region: the room's own colours

    image = torch.rand(8, 8, 3)
    known = torch.ones(8, 8, dtype=torch.bool)
    known[2:6, 2:6] = False
    filled = fill_from_surroundings(image, known)
    assert torch.equal(filled[known], image[known]) and bool((filled[~known] > 0).all())


def run_cli(args: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The `factory` command in a fresh interpreter (Hugging Face settings are read from the environment at import)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=ROOT)


def test_missing_damaged_and_wrong_models_are_refused_in_one_line_and_nothing_is_written(tiny_models, tmp_path):
    damaged = tmp_path / "damaged"
    subprocess.run(["cp", "-r", str(tiny_models.texture), str(damaged)], check=True)
    weights = damaged / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cases = {  # texture model → what the message must say
        str(tmp_path / "nowhere"): "texture model .*nowhere: no such folder",
        str(damaged): r"texture model .*damaged: .*diffusion_pytorch_model.safetensors is damaged",
        str(tiny_models.background): "is not a text-to-image model: its UNet takes 9 input channels.*--background-model",
        str(tiny_models.controlnet): "is ControlNetModel, not a diffusers pipeline folder",
    }
    for given, message in cases.items():
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["generate", "-n", "2", "--out", str(out), "--image-size", "64", "--texturer", "diffusion",
                                          "--texture-model", given, "--controlnet-model", str(tiny_models.controlnet)])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert re.search(message, lines[0]), lines[0]
        assert not out.exists()  # refused before the manifest (or anything) was written

    with pytest.raises(ModelError, match="is not an inpainting model: its UNet takes 4"):
        find_model(str(tiny_models.texture), BACKGROUND)
    with pytest.raises(ModelError, match="is a pipeline folder, not a ControlNet"):
        find_model(str(tiny_models.texture), CONTROLNET)
    assert find_model(str(tiny_models.texture), TEXTURE).family == "sd"


def test_a_hub_id_missing_from_the_cache_names_the_command_that_fetches_it(tmp_path):
    result = run_cli(["generate", "-n", "1", "--out", str(tmp_path / "out"), "--background", "inpaint", "--no-progress"],
                     env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert ("background model stable-diffusion-v1-5/stable-diffusion-inpainting is neither a folder nor in the Hugging Face "
            f"cache ({tmp_path / 'hf' / 'hub'})") in result.stderr
    assert "factory fetch-models --background stable-diffusion-v1-5/stable-diffusion-inpainting" in result.stderr
    assert not (tmp_path / "out").exists()


def test_fetch_models_fails_at_once_offline_and_when_the_hub_is_unreachable(tmp_path):
    for env, message in (({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
                         ({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}, "the Hugging Face Hub cannot be reached")):
        started = time.monotonic()
        result = run_cli(["fetch-models", "--only", "texture", "--timeout", "5"], env={"HF_HOME": str(tmp_path / "hf"), **env},
                         timeout=120)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "cannot fetch texture model stable-diffusion-v1-5/stable-diffusion-v1-5" in result.stderr
        assert time.monotonic() - started < 60  # no retries with back-off, no hang
        assert not any((tmp_path / "hf").rglob("*.safetensors"))
