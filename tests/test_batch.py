"""The batched render path (factory/run/batch.py), on the CPU: the same code the GPU runs, through pytorch3d's CPU
rasterizer at tiny sizes. Batched samples must be byte for byte the per-identity samples of the same backend and
device (one rasterizer call for all views of the batch changes nothing of any identity), and `factory generate` with
batches must write the dataset that one identity at a time writes, and that verify accepts."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
import torch

from factory.format.members import IMAGES, SETS
from factory.format.shards import read_shard
from factory.options import ConfigError
from factory.qa.verify import verify_dataset
from factory.render import raster_batch, raster_pytorch3d
from factory.render.camera import Orbit, head_camera
from factory.render.raster import Rasterizer, rasterize
from factory.render.raster_batch import RasterGroup, rasterize_groups
from factory.run.batch import batched_samples
from factory.run.config import GenerateConfig
from factory.run.generate import generate
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.expressions import ExpressionConfig
from factory.spec.plan import PlanConfig, plan_identity

needs_pytorch3d = pytest.mark.skipif(not raster_pytorch3d.available(), reason="pytorch3d is not importable here")
# 3 expressions (neutral + 2 pain) × 3 views: pytorch3d's CPU rasterizer takes about a second per 48 px image here.
PLAN = PlanConfig(expressions=ExpressionConfig(pain_expressions=2))


def members_of(renderer: IdentityRenderer, specs) -> list[dict[str, bytes]]:
    """Each identity rendered and encoded on its own: the per-identity path."""
    return [renderer.encode_sample(spec, renderer.render(spec)) for spec in specs]


@needs_pytorch3d
def test_heterogeneous_groups_rasterize_as_each_group_alone(monkeypatch):
    """Meshes of different triangle counts in one pytorch3d call give each group the fragments it gets alone."""
    generator = torch.Generator().manual_seed(0)
    camera = head_camera(Orbit(yaw=10.0), 40, torch.zeros(3), 6.0)
    groups = []
    for meshes, triangles in ((2, 30), (3, 7)):
        verts = torch.rand(meshes, 3 * triangles, 3, generator=generator) * 8 - 4
        groups.append(RasterGroup(verts, torch.arange(3 * triangles).reshape(triangles, 3), [camera] * meshes))
    rasterizer = Rasterizer("pytorch3d")
    together = rasterize_groups(rasterizer, groups)
    monkeypatch.setattr(raster_batch, "COARSE_BYTES_PER_CALL", 1)  # one mesh per call: the cut changes nothing
    for one_call, cut in zip(together, rasterize_groups(rasterizer, groups)):
        assert all(torch.equal(a, b) for a, b in zip(one_call, cut))
    assert [f.pix_to_face.shape[0] for f in together] == [2, 3]
    assert all((f.pix_to_face >= 0).any() for f in together)  # the triangles are in view: the check below compares pixels
    for group, batched in zip(groups, together):
        alone = rasterize(group.verts, group.faces, group.cameras, backend="pytorch3d")
        for mine, theirs in zip(batched, alone):
            assert torch.equal(mine, theirs)


@needs_pytorch3d
def test_batched_samples_are_the_per_identity_bytes_through_pytorch3d(monkeypatch):
    """2 identities × 3 views × 3 expressions at 48 px, pytorch3d's CPU rasterizer: one call rasterizes all 18 meshes,
    and every member (images, segmentation, depth, heatmaps, mesh, texture, meta.json) is the same bytes as the
    per-identity path's. Bytes, not a tolerance: both paths run the same float operations on each mesh (pytorch3d
    rasterizes each mesh of a call on its own, shading is per view either way), so anything but equality is a bug."""
    renderer = IdentityRenderer(RenderConfig(image_size=48, texture_size=128, backend="pytorch3d", device="cpu"))
    specs = [plan_identity(index, seed=0, config=PLAN) for index in (0, 1)]
    expected = members_of(renderer, specs)

    calls = []
    original = raster_pytorch3d.rasterize_screens
    monkeypatch.setattr(raster_pytorch3d, "rasterize_screens", lambda screens, *args: calls.append(len(screens)) or original(screens, *args))
    batched = list(batched_samples(renderer, specs, batch_identities=2))

    assert calls.count(2 * 3 * 3) == 1 and max(calls) == 18  # every view of both identities at once (the rest: lash cards)
    assert [spec.id for spec, _ in batched] == [spec.id for spec in specs]
    for (spec, members), reference in zip(batched, expected):
        assert list(members) == list(reference)
        assert [name for name in members if members[name] != reference[name]] == [], spec.id


def test_batches_of_any_size_give_the_same_bytes_with_the_torch_backend():
    """The dataset does not depend on the batch size: 3 identities in batches of 1, 2 and 3."""
    renderer = IdentityRenderer(RenderConfig(image_size=48, texture_size=128, backend="torch", device="cpu"))
    specs = [plan_identity(index, seed=3, config=PLAN) for index in range(3)]
    expected = members_of(renderer, specs)
    for size in (2, 3):
        assert [members for _, members in batched_samples(renderer, specs, batch_identities=size)] == expected, size


def test_a_failing_batch_raises_in_the_caller(monkeypatch):
    """An error on the render thread reaches whoever reads the samples, with the samples before it delivered."""
    renderer = IdentityRenderer(RenderConfig(image_size=48, texture_size=128, backend="torch", device="cpu"))
    specs = [plan_identity(index, seed=0, config=PLAN) for index in range(3)]
    original = renderer.prepare

    def prepare(spec, *args):
        if spec.index == 2:
            raise ValueError("boom on identity 2")
        return original(spec, *args)

    monkeypatch.setattr(renderer, "prepare", prepare)
    delivered = []
    with pytest.raises(ValueError, match="boom on identity 2"):
        for spec, _ in batched_samples(renderer, specs, batch_identities=2):
            delivered.append(spec.index)
    assert delivered == [0, 1]


def test_batch_identities_is_checked_by_name():
    base = dict(identities=4, out="out", identities_per_shard=4)
    for value, message in ((0, "batch_identities must be >= 1"), ("8", "batch_identities must be an integer"),
                           (5, "batch_identities 5 is more than identities_per_shard 4")):
        with pytest.raises(ConfigError, match=message):
            GenerateConfig(**base, batch_identities=value)
    assert "batch_identities" not in GenerateConfig(**base, batch_identities=4).content()  # not what the data is


def test_generate_with_batches_writes_the_per_identity_dataset(tmp_path, ray_local):
    """`factory generate` with batches of 2 (one shard of 2, one of 1) on local Ray: verify passes, and each shard is
    the bytes a worker rendering one identity at a time writes."""
    render = RenderConfig(image_size=48, texture_size=128, backend="torch", device="cpu")
    config = GenerateConfig(identities=3, out=str(tmp_path / "batched"), identities_per_shard=2, workers=1,
                            batch_identities=2, plan=PLAN, render=render)
    summary = generate(config, progress=False)
    assert (summary.rendered_identities, summary.rendered_shards) == (3, 2)
    assert verify_dataset(config.out).identities == 3

    reference = generate(replace(config, out=str(tmp_path / "single"), batch_identities=1), progress=False)
    assert reference.rendered_identities == 3
    for shard in (f"{shard_set}/shard-00000{number}.tar" for shard_set in SETS for number in (0, 1)):
        batched, single = (tmp_path / name / shard for name in ("batched", "single"))
        assert hashlib.sha256(batched.read_bytes()).digest() == hashlib.sha256(single.read_bytes()).digest(), shard
    with open(tmp_path / "batched" / IMAGES / "shard-000001.tar", "rb") as handle:
        assert [key for key, _ in read_shard(handle)] == ["id-0000002"]


def test_batches_through_the_diffusion_stage_give_the_per_identity_bytes(tmp_path):
    """With the diffusion texturer and inpainted rooms (tiny random-weight models, in process), a batch gets its
    portraits and rooms through the stage as one shard's identities do, and the same bytes as one at a time."""
    from factory.diffusion.pipelines import DiffusionModels
    from factory.run.stage import render_identities
    from tests.tiny_diffusion import TINY_SIZE, save_tiny_models

    models = save_tiny_models(tmp_path / "models")
    config = RenderConfig.from_dict({
        "image_size": TINY_SIZE, "texture_size": 128, "texturer": "diffusion", "background": "inpaint", "backend": "torch",
        "device": "cpu", "diffusion": {"texture": {"model": str(models.texture), "controlnet": str(models.controlnet),
                                                   "size": TINY_SIZE, "steps": 1},
                                       "background": {"model": str(models.background), "steps": 1}}})
    renderer = IdentityRenderer(config)
    diffusion = DiffusionModels(config.diffusion, torch.device("cpu"))
    specs = [plan_identity(index, seed=0, config=PLAN) for index in (0, 1)]
    expected = [renderer.encode_sample(spec, layers) for spec, layers in render_identities(renderer, specs, diffusion)]
    batched = [members for _, members in batched_samples(renderer, specs, batch_identities=2, diffusion=diffusion)]
    assert batched == expected
