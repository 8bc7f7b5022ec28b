"""`factory generate --texturer diffusion --background inpaint` end to end on CPU: a real local Ray cluster, a pool of
diffusion actors running the real diffusers pipelines on tiny random-weight models, render workers sending them their
shards' jobs. The dataset verifies, its textures and backgrounds are not the procedural ones, meta.json names the
models, a rerun resumes, and a diffusion actor killed in the middle of a batch is restarted and its batch redone once:
the shards come out byte-identical to an undisturbed run."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from factory.cli import app
from factory.face.model import FaceModel
from factory.face.texture import ProceduralTexturer
from factory.format.dataset import open_dataset
from factory.format.glb import read_glb
from factory.format.manifest import Manifest
from factory.qa.preview import contact_sheet, dataset_samples, identity_caption
from factory.qa.verify import verify_dataset
from factory.run.identity import RenderConfig
from factory.spec.plan import plan_identity
from tests.tiny_diffusion import TINY_SIZE, planned_gradient, save_tiny_models

REPO = Path(__file__).parents[1]
IDENTITIES = 2
SETTINGS = f"""\
render:
  image_size: {TINY_SIZE}
  texture_size: 128
  diffusion:
    texture: {{size: {TINY_SIZE}, steps: 2, scheduler: euler_a}}
    background: {{steps: 2, scheduler: ddim}}
"""


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def generate_args(out, models, config_file, workers: int = 2) -> list[str]:
    return ["generate", "-n", str(IDENTITIES), "--out", str(out), "--config", str(config_file), "--identities-per-shard", "1",
            "--workers", str(workers), "--texturer", "diffusion", "--texture-model", str(models.texture),
            "--controlnet-model", str(models.controlnet), "--background", "inpaint", "--background-model", str(models.background),
            "--diffusion-gpus-per-actor", "0", "--diffusion-batch-size", "2", "--no-progress"]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(SETTINGS)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ray_local, tiny_models, config_file):
    out = tmp_path_factory.mktemp("diffusion") / "ds"
    result = CliRunner().invoke(app, generate_args(out, tiny_models, config_file))
    assert result.exit_code == 0, result.output
    assert f"rendered {IDENTITIES} identities" in result.output
    return out


def samples(out) -> list[dict]:
    """Every identity's members of every shard set."""
    dataset = open_dataset(str(out))
    return [members for _, members in dataset.samples(sets=dataset.manifest.sets)]


def test_the_dataset_verifies_and_says_which_models_made_it(dataset, tiny_models):
    assert verify_dataset(str(dataset)).identities == IDENTITIES
    manifest = Manifest.from_json((dataset / "manifest.json").read_bytes())
    render = RenderConfig.from_dict(manifest.config["render"])
    assert (render.texturer, render.background, render.diffusion.texture.scheduler) == ("diffusion", "inpaint", "euler_a")
    for members in samples(dataset):
        meta = json.loads(members["meta.json"])
        assert meta["texture"]["models"] == {"texture": str(tiny_models.texture), "controlnet": str(tiny_models.controlnet)}
        assert meta["texture"]["steps"] == 2 and meta["texture"]["prompt"] and meta["texture"]["negative_prompt"]
        assert meta["background"]["inpaint"]["model"] == str(tiny_models.background)
        assert "diffusion texture, inpaint background" in identity_caption(meta)  # the contact sheet says so
    assert contact_sheet(dataset_samples(open_dataset(str(dataset))), max_identities=2, thumb=32).size[1] > 0


def test_textures_and_backgrounds_are_not_the_procedural_ones(dataset):
    procedural = ProceduralTexturer(FaceModel.load(), texture_size=128)
    for index, members in enumerate(samples(dataset)):
        spec = plan_identity(index, 0)
        texture = np.asarray(Image.open(io.BytesIO(read_glb(members["mesh.glb"]).image)), dtype=int)  # the assets set's, as JPEG
        painted = (procedural.texture(spec.skin, spec.demographics, spec.hair).image * 255).round().int().numpy()
        assert np.abs(texture - painted).mean() > 5
        gradient = (planned_gradient(spec, TINY_SIZE) * 255).round().numpy()
        for view in spec.views:
            image = np.asarray(Image.open(io.BytesIO(members[f"neutral.{view.name}.jpg"])), dtype=int)
            outside = np.asarray(Image.open(io.BytesIO(members[f"neutral.{view.name}.seg.png"]))) == 0
            assert np.abs(image[outside] - gradient[outside]).mean() > 10


def test_a_rerun_resumes_and_renders_nothing(dataset, tiny_models, config_file):
    before = {path.relative_to(dataset): path.read_bytes() for path in dataset.glob("*/shard-*.tar")}
    result = CliRunner().invoke(app, generate_args(dataset, tiny_models, config_file))
    assert result.exit_code == 0 and "nothing to do" in result.output, result.output
    assert {path.relative_to(dataset): path.read_bytes() for path in dataset.glob("*/shard-*.tar")} == before


def diffusion_actor(ray):
    from factory.run.generate import ACTOR_NAMESPACE

    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == ACTOR_NAMESPACE and actor["name"].startswith("diffusion-"):
            try:
                return ray.get_actor(actor["name"], namespace=ACTOR_NAMESPACE)
            except ValueError:  # the pool of an earlier run, already gone
                continue
    return None


def test_a_diffusion_actor_killed_in_a_batch_is_restarted_and_the_batch_redone_once(dataset, tiny_models, config_file, tmp_path, ray_local):
    """SIGKILL the diffusion actor's process while it runs a batch; Ray restarts it and sends the batch again. The
    shards equal the undisturbed two-worker run's byte for byte (this one has one render worker): nothing lost, nothing
    doubled, the same images from the same seeds and batches whatever the worker count."""
    ray = ray_local
    from factory.run.diffusion import CONTROL

    seen: dict = {}
    finished = threading.Event()

    def status_of(actor) -> dict:
        try:
            return ray.get(actor.status.options(concurrency_group=CONTROL).remote(), timeout=10)
        except Exception:  # starting, restarting, or already closed
            return {}

    def kill_in_a_batch() -> None:
        actor = None
        while not finished.is_set():
            actor = actor or diffusion_actor(ray)
            status = status_of(actor) if actor is not None else {}
            if status.get("busy"):
                os.kill(status["pid"], signal.SIGKILL)
                seen["killed"] = status
                break
            time.sleep(0.05)
        while not finished.is_set() and "after" not in seen:  # the restarted actor answers again
            seen.update({"after": status} if (status := status_of(actor)) else {})

    killer = threading.Thread(target=kill_in_a_batch, daemon=True)
    killer.start()
    out = tmp_path / "ds"
    result = CliRunner().invoke(app, generate_args(out, tiny_models, config_file, workers=1))
    finished.set()
    killer.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert seen.get("killed"), "no batch was running while the test watched"
    assert seen["after"]["restarted"] and seen["after"]["pid"] != seen["killed"]["pid"]
    for shard in sorted(dataset.glob("*/shard-*.tar")):  # every set's file
        assert (out / shard.relative_to(dataset)).read_bytes() == shard.read_bytes()
    assert verify_dataset(str(out)).identities == IDENTITIES


PLACEMENT_SCRIPT = textwrap.dedent("""
    import json
    import ray
    from factory.run.diffusion import DiffusionStageError, render_gpus_beside, resolve_diffusion_resources
    from factory.run.identity import RenderConfig

    ray.init(num_cpus=1, num_gpus=2, include_dashboard=False, log_to_driver=False)
    diffusion = RenderConfig(texturer="diffusion")
    result = {"default": resolve_diffusion_resources(None, None), "halves": resolve_diffusion_resources(None, 0.5),
              "asked": resolve_diffusion_resources(1, 0.25), "render_default": render_gpus_beside(diffusion, None),
              "render_asked": render_gpus_beside(diffusion, 0.1), "procedural": render_gpus_beside(RenderConfig(), None)}
    try:
        resolve_diffusion_resources(None, 3)
    except DiffusionStageError as error:
        result["too_many"] = str(error)
    print("RESULT " + json.dumps(result))
""")


def test_diffusion_actors_take_whole_or_fractional_gpus_and_render_workers_leave_them_alone():
    """On a Ray instance of its own with two logical GPUs: one diffusion actor per GPU by default, two per GPU at 0.5;
    render workers default to no GPU beside a diffusion stage; asking for more GPUs than there are is refused."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    run = subprocess.run([sys.executable, "-c", PLACEMENT_SCRIPT], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert (result["default"], result["halves"], result["asked"]) == ([2, 1.0], [4, 0.5], [1, 0.25])
    assert (result["render_default"], result["render_asked"], result["procedural"]) == (0.0, 0.1, None)
    assert "--diffusion-gpus-per-actor 3" in result["too_many"] and "2 GPU" in result["too_many"]
