"""The render package's own structures: Meshes, the Rasterizer object, the Shader, and the MeshRenderer that
composes them; a hand-checkable scene (a flat square under a known light); and the rule that render/ knows
nothing of plans."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from factory.render import overlay as overlay_module
from factory.render.background import GradientBackground
from factory.render.camera import Camera
from factory.render.detail import EDGE_SHADOW, EDGE_SOFTNESS_CM, SurfaceDetail
from factory.render.lights import GAMMA, Light, direction_toward, kelvin_to_rgb
from factory.render.mesh import Meshes
from factory.render.overlay import Overlay, draw_overlay, overlay_box
from factory.render.pixels import CoveredPixels
from factory.render.raster import Rasterizer, rasterize
from factory.render.renderer import MeshRenderer
from factory.render.shading import Shader, UVTexture, antialias_edges, to_srgb
from factory.run.backgrounds import ViewContext, make_background
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
    assert Rasterizer("auto").backend_name(torch.device("cpu")) == "numba"  # numba is a dependency
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
    expected = antialias_edges(pixels.scatter(to_srgb(colour), fill=BACKGROUND.image(cam)), pixels.mask)
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
    assert torch.allclose(view.image[0, 0, 0], torch.tensor(BACKGROUND.top))  # the gradient, whatever the camera
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


def lit_square(detail: SurfaceDetail | None, light: Light, batch: int = 1) -> torch.Tensor:
    return MeshRenderer(Rasterizer("torch"), Shader(MATTE))(square(batch), camera(), texture=grey_texture(0.5), light=light,
                                                           background=BACKGROUND, detail=detail).image


def relief(darkening: float, tilt: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor([darkening, *tilt]).expand(8, 8, 4)


def test_surface_detail_darkens_by_depth_and_tilts_the_normal():
    """A relief that darkens by 0.5 at full depth: a mesh at depth 1 shows half the albedo (in linear light), at
    depth 0.5 three quarters, at depth 0 none of it. A tilt that turns the square's normal (0, 0, -1) onto a light
    60° aside lights it as if it faced the light."""
    light = Light(direction=torch.tensor([0.0, 0.0, -1.0]), colour=torch.ones(3), ambient=0.3)
    depth = torch.tensor([1.0, 0.5, 0.0])[:, None].expand(3, 4)
    image = lit_square(SurfaceDetail(relief(0.5, (0.0, 0.0, 0.0)), depth), light, batch=3)
    for k, share in enumerate((0.5, 0.75, 1.0)):
        expected = (0.5**GAMMA * share) ** (1 / GAMMA)
        assert torch.allclose(image[k, 6:10, 6:10], torch.full((4, 4, 3), expected), atol=1e-4)
    aside = math.radians(60)
    light = Light(direction=torch.tensor([math.sin(aside), 0.0, -math.cos(aside)]), colour=torch.ones(3), ambient=0.3)
    tilted = lit_square(SurfaceDetail(relief(0.0, (-math.tan(aside), 0.0, 0.0)), torch.ones(1, 4)), light)
    assert torch.allclose(tilted[0, 6:10, 6:10], torch.full((4, 4, 3), 0.5), atol=1e-4)  # Lambert 1: the albedo


def test_surface_detail_shadows_below_an_edge():
    """The square's corners at y = +0.6 (image bottom) lie on an occluding edge (gap 0), those at y = -0.6 0.3 cm
    below it; the gap interpolates linearly, and the albedo loses EDGE_SHADOW · exp(-gap / EDGE_SOFTNESS_CM): the
    shadow is darkest at the edge and fades away from it. With no edge the square is untouched."""
    light = Light(direction=torch.tensor([0.0, 0.0, -1.0]), colour=torch.ones(3), ambient=1.0)
    y = square().verts[0, :, 1]
    gap = (0.3 * (0.6 - y) / 1.2)[None]
    flat = relief(0.0, (0.0, 0.0, 0.0))
    column = lit_square(SurfaceDetail(flat, torch.zeros(1, 4), edge_gap=gap), light)[0, :, 8, 0]
    assert torch.allclose(lit_square(SurfaceDetail(flat, torch.zeros(1, 4)), light)[0], lit_square(None, light)[0])
    assert column[9] < column[8] < column[7] < column[6] < 0.5
    for row in (6, 7, 8, 9):  # pixel row r sees world y = (r - 7.5) / 5
        row_gap = 0.3 * (0.6 - (row - 7.5) / 5) / 1.2
        expected = (0.5**GAMMA * (1 - EDGE_SHADOW * math.exp(-row_gap / EDGE_SOFTNESS_CM))) ** (1 / GAMMA)
        assert abs(float(column[row]) - expected) < 1e-3


def test_overlay_blends_by_coverage_in_front_and_hides_behind(monkeypatch):
    """A black overlay square covering half of each pixel in front of the grey square halves its linear colour;
    the same overlay behind the square changes nothing. The overlay is drawn over the view's image in place,
    through a camera cropped to the overlay, with what the whole frame would give."""
    light = Light(direction=torch.tensor([0.0, 0.0, -1.0]), colour=torch.ones(3), ambient=1.0)
    renderer = MeshRenderer(Rasterizer("torch"), Shader(MATTE))
    rgba = torch.tensor([0.0, 0.0, 0.0, 0.5]).expand(8, 8, 4)

    def shifted(dz: float) -> Meshes:
        base = square()
        return Meshes(base.verts + torch.tensor([0.0, 0.0, dz]), base.faces, base.corner_uvs, base.face_part)

    view = renderer(square(), camera(), texture=grey_texture(0.5), light=light, background=BACKGROUND)
    plain = view.image.clone()
    blended = draw_overlay(view, Overlay(shifted(-0.5), rgba), camera(), light, Rasterizer("torch"))
    assert blended is view.image
    expected = (0.5**GAMMA * 0.5) ** (1 / GAMMA)
    assert torch.allclose(blended[0, 7:9, 7:9], torch.full((2, 2, 3), expected), atol=1e-4)
    covered = rasterize(shifted(-0.5).verts, square().faces, camera(), backend="torch").pix_to_face[0, ..., 0] >= 0
    assert torch.equal(blended[0][~covered], plain[0][~covered])  # nothing outside the overlay changes
    view = renderer(square(), camera(), texture=grey_texture(0.5), light=light, background=BACKGROUND)
    assert torch.equal(draw_overlay(view, Overlay(shifted(0.5), rgba), camera(), light, Rasterizer("torch")), plain)

    assert overlay_box(shifted(-0.5).verts, camera())[2] < SIZE  # the crop is smaller than the frame …
    monkeypatch.setattr(overlay_module, "overlay_box", lambda verts, cam: (0, 0, SIZE))
    view = renderer(square(), camera(), texture=grey_texture(0.5), light=light, background=BACKGROUND)
    full_frame = draw_overlay(view, Overlay(shifted(-0.5), rgba), camera(), light, Rasterizer("torch"))
    assert torch.allclose(full_frame, blended, atol=1e-6)  # … and draws what the whole frame would


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
    assert light.softness_deg == spec.light.softness and light.sky == spec.light.sky
    assert torch.allclose(light.fill.direction, direction_toward(spec.light.fill_azimuth, spec.light.fill_elevation))
    assert torch.allclose(light.fill.colour, kelvin_to_rgb(spec.light.fill_color_temperature) * spec.light.fill_intensity)
    small = Camera(K=torch.eye(3), R=torch.eye(3), t=torch.zeros(3), image_size=4)
    gradient = make_background("gradient", spec.background, ViewContext(torch.zeros(3), small, spec.views[0])).image(small)
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
