"""The render package's own structures: Meshes, the Rasterizer object, the Shader, and the MeshRenderer that
composes them; a hand-checkable scene (a flat square under a known light); and the rule that render/ knows
nothing of plans."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from factory.render.background import GradientBackground
from factory.render.camera import Camera
from factory.render.lights import GAMMA, Light, direction_toward, kelvin_to_rgb
from factory.render.mesh import Meshes
from factory.render.pixels import CoveredPixels
from factory.render.raster import Rasterizer, rasterize
from factory.render.renderer import MeshRenderer
from factory.render.shading import Shader, UVTexture, antialias_edges, to_srgb
from factory.run.backgrounds import background_of
from factory.run.identity import light_of
from factory.spec.plan import plan_identity

SIZE = 16
RENDER_PACKAGE = Path(__file__).resolve().parents[1] / "factory" / "render"


def camera() -> Camera:
    """World = camera space, looking along +z; a point (x, y, z) lands on pixel (7.5 + 10·x/z, 7.5 + 10·y/z)."""
    K = torch.tensor([[10.0, 0.0, 7.5], [0.0, 10.0, 7.5], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=torch.eye(3), t=torch.zeros(3), image_size=SIZE)


def square(batch: int = 1, tilt: float = 0.0) -> Meshes:
    """A 1.2 × 1.2 square at depth 2 (covering the middle of the frame), as two triangles, tilted about y by `tilt`
    radians; one part, UVs spanning the whole texture."""
    corners = torch.tensor([[-0.6, -0.6, 0.0], [0.6, -0.6, 0.0], [0.6, 0.6, 0.0], [-0.6, 0.6, 0.0]])
    turn = torch.tensor([[math.cos(tilt), 0.0, math.sin(tilt)], [0.0, 1.0, 0.0], [-math.sin(tilt), 0.0, math.cos(tilt)]])
    verts = (corners @ turn.T + torch.tensor([0.0, 0.0, 2.0])).expand(batch, -1, -1).contiguous()
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    return Meshes(verts, faces, uvs[faces], torch.zeros(2, dtype=torch.int64))


def grey_texture(level: float = 0.5) -> UVTexture:
    return UVTexture.from_srgb(torch.full((8, 8, 3), level))


BACKGROUND = GradientBackground(top=(0.0, 0.2, 0.4), bottom=(1.0, 0.8, 0.6))
MATTE = ("matte",)  # a part name without specular


def test_meshes_compute_unit_normals_once():
    meshes = square(batch=2)
    normals = meshes.vertex_normals
    # The square faces the camera (-z); every vertex normal is that of the plane.
    assert torch.allclose(normals, torch.tensor([0.0, 0.0, -1.0]).expand(2, 4, 3), atol=1e-6)
    assert meshes.vertex_normals is normals  # computed on first use, then kept
    assert len(meshes) == 2 and meshes.num_vertices == 4


def test_meshes_refuse_bad_shapes():
    meshes = square()
    with pytest.raises(ValueError, match="faces index vertices 0..3"):
        Meshes(meshes.verts, torch.tensor([[0, 1, 4]]), meshes.corner_uvs[:1], meshes.face_part[:1])
    with pytest.raises(ValueError, match=r"corner_uvs \(F, 3, 2\) and face_part \(F,\)"):
        Meshes(meshes.verts, meshes.faces, meshes.corner_uvs[:1], meshes.face_part)
    with pytest.raises(ValueError, match=r"verts must be \(N, V, 3\)"):
        Meshes(meshes.verts[0], meshes.faces, meshes.corner_uvs, meshes.face_part)


def test_rasterizer_object_gives_the_functions_fragments():
    meshes = square(batch=2)
    ours = Rasterizer("torch")(meshes, camera())
    direct = rasterize(meshes.verts, meshes.faces, camera(), backend="torch")
    for mine, theirs in zip(ours, direct):
        assert torch.equal(mine, theirs)
    assert (ours.pix_to_face[0, 5:11, 5:11] >= 0).all() and (ours.pix_to_face[0, :2] == -1).all()


def test_backends_have_names():
    assert Rasterizer("auto").backend_name(torch.device("cpu")) == "torch"
    assert Rasterizer("torch").backend_name(torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="unknown raster backend 'opengl'"):
        Rasterizer("opengl")


def test_renderer_composes_rasterizer_and_shader_at_fragments():
    meshes, cam = square(batch=2, tilt=0.4), camera()
    light = Light.from_angles(azimuth_deg=30, elevation_deg=20, kelvin=5000, intensity=1.0, ambient=0.3)
    shader = Shader(("skin",))
    view = MeshRenderer(Rasterizer("torch"), shader)(meshes, cam, texture=grey_texture(), light=light, background=BACKGROUND)

    fragments = rasterize(meshes.verts, meshes.faces, cam, backend="torch")
    for mine, theirs in zip(view.fragments, fragments):
        assert torch.equal(mine, theirs)
    pixels = CoveredPixels(fragments, meshes)
    colour = shader.shade(pixels, meshes, cam, grey_texture(), light)
    expected = antialias_edges(pixels.scatter(to_srgb(colour), fill=BACKGROUND.image(SIZE)), pixels.mask)
    assert torch.equal(view.image, expected)
    assert torch.equal(view.pixels.flat_index, pixels.flat_index)
    assert view.image.shape == (2, SIZE, SIZE, 3)


@pytest.mark.parametrize("angle", [0.0, 60.0])
def test_a_matte_square_follows_lambert(angle):
    """Texture 0.5 sRGB, white light at `angle` from the square's normal, ambient 0.3, no specular: the interior
    pixels are 0.5 · (0.3 + 0.7 cos(angle))^(1/GAMMA) in sRGB, and the background is the gradient."""
    toward = torch.tensor([math.sin(math.radians(angle)), 0.0, -math.cos(math.radians(angle))])
    light = Light(direction=toward, colour=torch.ones(3), ambient=0.3)
    view = MeshRenderer(Rasterizer("torch"), Shader(MATTE))(square(), camera(), texture=grey_texture(0.5), light=light,
                                                          background=BACKGROUND)
    expected = 0.5 * (0.3 + 0.7 * math.cos(math.radians(angle))) ** (1 / GAMMA)
    interior = view.image[0, 6:10, 6:10]
    assert torch.allclose(interior, torch.full_like(interior, expected), atol=1e-4)
    assert torch.allclose(view.image[0, 0, 0], torch.tensor(BACKGROUND.top))
    assert torch.allclose(view.image[0, -1, 0], torch.tensor(BACKGROUND.bottom))


def test_shading_uses_the_texture_through_the_uvs():
    """A texture dark on its left half and light on its right: the square's image follows, left to right."""
    image = torch.full((8, 8, 3), 0.2)
    image[:, 4:] = 0.9
    light = Light(direction=torch.tensor([0.0, 0.0, -1.0]), colour=torch.ones(3), ambient=1.0)
    view = MeshRenderer(Rasterizer("torch"), Shader(MATTE))(square(), camera(), texture=UVTexture.from_srgb(image),
                                                          light=light, background=BACKGROUND)
    row = view.image[0, 8, :, 0]
    assert row[6] < 0.25 and row[9] > 0.85


def test_light_from_angles_and_colour_temperature():
    assert torch.allclose(direction_toward(0, 0), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # in front of the face
    assert torch.allclose(direction_toward(90, 0), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # the face's left
    assert torch.allclose(direction_toward(0, 90), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # overhead
    luma = torch.tensor([0.2126, 0.7152, 0.0722])
    warm, cool = kelvin_to_rgb(3200), kelvin_to_rgb(6800)
    assert float(warm @ luma) == pytest.approx(1.0) and float(cool @ luma) == pytest.approx(1.0)
    assert warm[0] > warm[2] and cool[2] > warm[2]
    light = Light.from_angles(azimuth_deg=10, elevation_deg=5, kelvin=4000, intensity=0.8, ambient=0.3)
    assert float(light.colour @ luma) == pytest.approx(0.8)


def test_the_identity_layer_translates_the_plan():
    spec = plan_identity(5, seed=1)
    light = light_of(spec.light)
    assert torch.allclose(light.direction, direction_toward(spec.light.azimuth, spec.light.elevation))
    assert torch.allclose(light.colour, kelvin_to_rgb(spec.light.color_temperature) * spec.light.intensity)
    assert light.ambient == spec.light.ambient
    gradient = background_of(spec.background).image(4)
    assert torch.allclose(gradient[0, 0], torch.tensor(spec.background.top))
    assert torch.allclose(gradient[-1, -1], torch.tensor(spec.background.bottom))


def test_render_package_knows_nothing_of_plans_or_faces():
    """factory/render imports only factory.render (and torch, numpy …): the renderer does not depend on the dataset
    schema or the face model; factory/run/identity.py translates between them."""
    for path in sorted(RENDER_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("factory.") or name.startswith("factory.render"), f"{path.name} imports {name}"
