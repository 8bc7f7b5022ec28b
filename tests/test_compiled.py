"""The compiled CPU loops (factory/render/loops.py) against the torch code they replace: the same bits.

The raster backends are compared in tests/test_raster.py; here the covered pixels' packing and interpolation, the
sensor, and a whole identity rendered and encoded both ways (only meta.json's record of the raster backend differs).
Bit-equality here depends on how LLVM compiles each loop (a fused multiply-add it drops in one branch changes a
last bit), so each loop is held to it on real data."""

from __future__ import annotations

import json

import pytest
import torch

from factory.render import compiled
from factory.render.pixels import CoveredPixels
from factory.render.sensor import Sensor, expose
from factory.render.shading import antialias_edges
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.plan import plan_identity

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not importable here")


@pytest.fixture(scope="module")
def renderer() -> IdentityRenderer:
    return IdentityRenderer(RenderConfig(image_size=96, texture_size=128))


def without_loops(monkeypatch) -> None:
    monkeypatch.setattr(compiled, "available", lambda: False)


def test_covered_pixels_pack_and_interpolate_as_the_torch_code(renderer, monkeypatch):
    prepared = renderer.prepare(plan_identity(1, seed=0))
    meshes = prepared.meshes  # 11 expressions with hair shells: faces beyond the face model's
    fragments = renderer.renderer.rasterizer(meshes, prepared.scene.cameras[1])
    values = torch.cat([meshes.vertex_normals, prepared.lighting.terms.packed.expand_as(meshes.vertex_normals)], dim=-1)

    def everything(pixels: CoveredPixels) -> dict[str, torch.Tensor]:
        return {"flat_index": pixels.flat_index, "face": pixels.face, "bary": pixels.bary, "corner_rows": pixels.corner_rows,
                "batch": pixels.batch, "image_pixel": pixels.image_pixel, "vertex": pixels.interpolate_vertex(meshes.vertex_normals),
                "channels": torch.stack(pixels.interpolate_vertex_channels(values)),
                "corner": pixels.interpolate_corner(meshes.corner_uvs)}

    ours = everything(CoveredPixels(fragments, meshes))
    without_loops(monkeypatch)
    theirs = everything(CoveredPixels(fragments, meshes))
    assert ours["flat_index"].numel() > 0.2 * fragments.pix_to_face.numel()
    for name, value in ours.items():
        assert value.dtype == theirs[name].dtype and torch.equal(value, theirs[name]), name


@pytest.mark.parametrize("sensor", [Sensor(0.4, 0.0041, 11), Sensor(0.5, 0.0, 3), Sensor(0.674, 0.0187, 5), Sensor(0.1, 0.01, 7)],
                         ids=["blur-and-noise", "blur-only", "strong", "noise-only"])
def test_the_sensor_exposes_as_the_torch_code(renderer, sensor, monkeypatch):
    """Defocus (weights that float32 rounds, and 0.5's exact ones; below MIN_DEFOCUS_PX none), noise, clamping."""
    prepared = renderer.prepare(plan_identity(0, seed=0))
    view, _ = renderer.render_view(prepared, 0, renderer.renderer.rasterizer(prepared.meshes, prepared.scene.cameras[0]))
    images = torch.from_numpy(view["rgb"]).float() / 255  # the view's images, any 0..1 content will do
    ours = expose(images, sensor)
    without_loops(monkeypatch)
    theirs = expose(images, sensor)
    assert not torch.equal(ours, images) and torch.equal(ours, theirs)


def test_silhouettes_are_antialiased_as_the_torch_code(renderer, monkeypatch):
    """Edges at the image border too: a mask touching every side, over a real view's colours."""
    prepared = renderer.prepare(plan_identity(3, seed=0))
    fragments = renderer.renderer.rasterizer(prepared.meshes, prepared.scene.cameras[2])
    mask = fragments.pix_to_face[..., 0] >= 0
    mask[:, :, :3], mask[:, -2:, :] = True, False  # face on the left border, background at the bottom
    images = torch.rand(*mask.shape, 3, generator=torch.Generator().manual_seed(0))
    ours = antialias_edges(images.clone(), mask)
    without_loops(monkeypatch)
    theirs = antialias_edges(images.clone(), mask)
    assert not torch.equal(ours, images) and torch.equal(ours, theirs)


def test_an_identity_is_the_same_bytes_with_and_without_the_loops(renderer, monkeypatch):
    spec = plan_identity(2, seed=0)
    ours = renderer.encode_sample(spec, renderer.render(spec), "glb")
    without_loops(monkeypatch)
    theirs = renderer.encode_sample(spec, renderer.render(spec), "glb")
    assert ours.keys() == theirs.keys()
    assert [name for name in ours if ours[name] != theirs[name]] == ["meta.json"]
    meta, their_meta = json.loads(ours["meta.json"]), json.loads(theirs["meta.json"])
    assert (meta["generator"].pop("backend"), their_meta["generator"].pop("backend")) == ("numba", "torch")
    assert meta == their_meta



def test_the_loops_run_on_torchs_threads_and_give_the_same_bits_on_one_or_two(renderer):
    """The rasterizer's loops split over threads (meshes, then pixels; compiled.in_parts) use torch's thread count,
    and the threads change nothing: the fragments, and what is interpolated and exposed from them, are the same bits
    on one thread (a pinned worker) and on two (`render-identity` on a laptop)."""
    from factory.render import raster_numba
    from factory.render.raster import screen_coordinates

    prepared = renderer.prepare(plan_identity(4, seed=0))
    meshes, camera = prepared.meshes, prepared.scene.cameras[1]
    screen = torch.stack([screen_coordinates(mesh, camera) for mesh in meshes.verts])
    images = torch.rand(len(screen), 96, 96, 3, generator=torch.Generator().manual_seed(0))
    values = torch.cat([meshes.vertex_normals, prepared.lighting.terms.packed.expand_as(meshes.vertex_normals)], dim=-1)
    threads, results = torch.get_num_threads(), {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            parts = []
            compiled.in_parts(lambda first, stop: parts.append((first, stop)), 11)
            assert sorted(parts) == ([(0, 11)] if count == 1 else [(0, 5), (5, 11)])
            fragments = raster_numba.rasterize_screen(screen, meshes.faces, camera.image_size, False)
            assert torch.get_num_threads() == count  # nothing the loops do changes torch's own thread count
            pixels = CoveredPixels(renderer.renderer.rasterizer(meshes, camera), meshes)
            results[count] = [*fragments, pixels.interpolate_vertex(meshes.vertex_normals),
                              torch.stack(pixels.interpolate_vertex_channels(values)), expose(images, Sensor(0.4, 0.0041, 11))]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(one, two) for one, two in zip(results[1], results[2]))
