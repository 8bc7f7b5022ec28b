"""The rasterizer: hand-computed cases, then the torch backend against pytorch3d's on the real ICT head, and the
numba backend against the torch one, bit for bit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from factory.face.model import FaceModel
from factory.render import raster_numba, raster_pytorch3d, raster_torch
from factory.render.camera import Camera, Orbit, head_camera, head_sphere
from factory.render.raster import Fragments, Rasterizer, rasterize

needs_pytorch3d = pytest.mark.skipif(not raster_pytorch3d.available(), reason="pytorch3d is not importable here")
BACKENDS = ["torch", "numba", pytest.param("pytorch3d", marks=needs_pytorch3d)]


def pinhole(size: int, focal: float = 10.0) -> Camera:
    """World = camera space; principal point on pixel (0, 0), so a point (x, y, z) lands on (f·x/z, f·y/z)."""
    K = torch.tensor([[focal, 0.0, 0.0], [0.0, focal, 0.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=torch.eye(3), t=torch.zeros(3), image_size=size)


def at_pixels(camera: Camera, pixels: list[tuple[float, float]], depths: list[float]) -> torch.Tensor:
    return camera.unproject(torch.tensor(pixels), torch.tensor(depths))


def ray_hit(camera: Camera, corners: torch.Tensor, x: int, y: int) -> tuple[torch.Tensor, float]:
    """Perspective-correct barycentrics and depth by intersecting pixel (x, y)'s ray with the triangle's plane:
    s·ray = v0 + b1 (v1 - v0) + b2 (v2 - v0), solved directly (independent of the rasterizer's planes)."""
    ray = camera.unproject(torch.tensor([[x, y]], dtype=torch.float64), torch.ones(1, dtype=torch.float64))[0]
    v0, v1, v2 = corners.double()
    s, b1, b2 = torch.linalg.solve(torch.stack([ray, v0 - v1, v0 - v2], dim=1), v0)
    return torch.stack([1 - b1 - b2, b1, b2]), float(s * ray[2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_triangle_coverage_and_barycentrics(backend):
    camera = pinhole(8)
    # Counter-clockwise on screen, no pixel centre on an edge (x + y = 7.5): covered are x, y ≥ 1, x + y ≤ 7.
    verts = at_pixels(camera, [(0.5, 0.5), (0.5, 7.0), (7.0, 0.5)], [2.0, 2.0, 2.0])
    fragments = rasterize(verts[None], torch.tensor([[0, 1, 2]]), camera, backend=backend)
    assert fragments.pix_to_face.shape == (1, 8, 8, 1) and fragments.bary_coords.shape == (1, 8, 8, 1, 3)
    ys, xs = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    expected = (xs >= 1) & (ys >= 1) & (xs + ys <= 7)
    covered = fragments.pix_to_face[0, ..., 0] == 0
    assert torch.equal(covered, expected)
    assert (fragments.pix_to_face[0, ..., 0][~expected] == -1).all()
    assert torch.allclose(fragments.zbuf[0, ..., 0][expected], torch.tensor(2.0))
    assert (fragments.zbuf[0, ..., 0][~expected] == -1).all() and (fragments.bary_coords[0, ~expected] == -1).all()
    assert int(expected.sum()) == 21
    # Fronto-parallel: barycentrics are the screen ones, w1 = (y - 0.5) / 6.5 and w2 = (x - 0.5) / 6.5.
    assert torch.allclose(fragments.bary_coords[0, 1, 1, 0], torch.tensor([11 / 13, 1 / 13, 1 / 13]), atol=1e-5)
    assert torch.allclose(fragments.bary_coords[0, 4, 1, 0], torch.tensor([5 / 13, 7 / 13, 1 / 13]), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slanted_triangle_is_perspective_correct(backend):
    camera = pinhole(16)
    corners = at_pixels(camera, [(0.3, 0.6), (2.2, 15.4), (15.1, 3.3)], [1.0, 4.0, 2.5])
    fragments = rasterize(corners[None], torch.tensor([[0, 1, 2]]), camera, backend=backend)
    covered = (fragments.pix_to_face[0, ..., 0] == 0).nonzero().tolist()
    assert len(covered) > 60
    for y, x in covered[::7]:
        bary, depth = ray_hit(camera, corners, x, y)
        assert torch.allclose(fragments.bary_coords[0, y, x, 0].double(), bary, atol=1e-4)
        assert float(fragments.zbuf[0, y, x, 0]) == pytest.approx(depth, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("near_first", [True, False])
def test_overlapping_triangles_resolve_by_depth(backend, near_first):
    camera = pinhole(12)
    square = [(0.5, 0.5), (0.5, 10.5), (10.5, 0.5)]
    near = at_pixels(camera, square, [2.0, 2.0, 2.0])
    far = at_pixels(camera, [(3.5, 3.5), (3.5, 11.7), (11.7, 3.5)], [1.5, 5.0, 5.0])  # crosses the near one
    verts = torch.cat([near, far] if near_first else [far, near])[None]
    fragments = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), camera, backend=backend)
    near_index = 0 if near_first else 1
    face = fragments.pix_to_face[0, ..., 0]
    depth = fragments.zbuf[0, ..., 0]
    assert int(face[4, 4]) == 1 - near_index  # near its tip the slanted triangle is in front (z < 2)
    assert int(face[5, 5]) == near_index  # further in, it passes behind
    assert int(face[6, 6]) == 1 - near_index  # only the slanted one reaches here (x + y > 11)
    assert int(face[1, 1]) == near_index and int(face[10, 10]) == -1
    both = (face >= 0)
    assert (depth[both] <= 5.0).all() and (depth[both] > 1.5).all()
    assert torch.allclose(depth[face == near_index], torch.tensor(2.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_culling_drops_clockwise_triangles(backend):
    camera = pinhole(8)
    verts = at_pixels(camera, [(0.5, 0.5), (0.5, 7.0), (7.0, 0.5)], [2.0, 2.0, 2.0])[None]
    counter_clockwise, clockwise = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])
    assert (rasterize(verts, counter_clockwise, camera, backend=backend, cull_backfaces=True).pix_to_face == 0).sum() == 21
    assert (rasterize(verts, clockwise, camera, backend=backend, cull_backfaces=True).pix_to_face >= 0).sum() == 0
    assert (rasterize(verts, clockwise, camera, backend=backend).pix_to_face == 0).sum() == 21


def test_triangles_off_screen_or_behind_the_camera_cover_nothing():
    camera = pinhole(8)
    off_screen = at_pixels(camera, [(20.0, 20.0), (20.0, 30.0), (30.0, 20.0)], [2.0, 2.0, 2.0])
    behind = torch.tensor([[0.1, 0.1, -2.0], [0.1, 0.8, -2.0], [0.8, 0.1, -2.0]])
    fragments = rasterize(torch.cat([off_screen, behind])[None], torch.tensor([[0, 1, 2], [3, 4, 5]]), camera, backend="torch")
    assert (fragments.pix_to_face == -1).all() and (fragments.zbuf == -1).all()


def triangle_soup(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor, Camera]:
    """Triangles of every size, partly off-screen, interpenetrating: every window bucket and clamping."""
    generator = torch.Generator().manual_seed(seed)
    size, count = 48, 300
    camera = Camera(K=torch.tensor([[40.0, 0, 23.5], [0, 40.0, 23.5], [0, 0, 1]]), R=torch.eye(3), t=torch.zeros(3), image_size=size)
    centres = torch.rand(count, 1, 3, generator=generator) * torch.tensor([1.6, 1.6, 3.0]) + torch.tensor([-0.8, -0.8, 2.0])
    spread = torch.rand(count, 1, 1, generator=generator) ** 3 * 1.5  # mostly small, a few huge
    verts = (centres + spread * torch.randn(count, 3, 3, generator=generator)).reshape(1, -1, 3)
    return verts, torch.arange(3 * count).reshape(count, 3), camera


@needs_pytorch3d
def test_random_triangle_soup_matches_pytorch3d():
    verts, faces, camera = triangle_soup()
    ours = rasterize(verts, faces, camera, backend="torch")
    theirs = rasterize(verts, faces, camera, backend="pytorch3d")
    assert_agree(ours, theirs, min_face_agreement=0.995)


@pytest.fixture(scope="module")
def head():
    """Both backends on the ICT head at 128 px, one batch: a neutral face seen frontally, an expressive one from
    the side (pytorch3d's CPU rasterizer takes seconds per image here, so two images only)."""
    model = FaceModel.load()
    expression = torch.zeros(2, model.num_expressions)
    for name, weight in [("jawOpen", 0.6), ("browDown_L", 0.8), ("browDown_R", 0.8), ("eyeSquint_L", 0.7),
                         ("eyeSquint_R", 0.7), ("noseSneer_L", 0.6), ("noseSneer_R", 0.6), ("eyeBlink_L", 0.5)]:
        expression[1, model.expression_index(name)] = weight
    identity = torch.randn(2, model.num_identity, generator=torch.Generator().manual_seed(3)).clamp(-2, 2)
    meshes = model.vertices(identity, expression)
    center, radius = head_sphere(meshes[0], int(model.landmarks[8]))
    frontal = head_camera(Orbit(1.5, -2.0, 0.7, 1.0), 128, center, radius)
    side = head_camera(Orbit(-33.0, 2.5, -1.0, 0.97), 128, center, radius)
    cameras = [frontal, side]
    return SimpleNamespace(
        model=model, meshes=meshes, cameras=cameras,
        ours=rasterize(meshes, model.faces, cameras, backend="torch"),
        theirs=rasterize(meshes, model.faces, cameras, backend="pytorch3d") if raster_pytorch3d.available() else None,
    )


def assert_agree(ours, theirs, min_face_agreement):
    for image in range(ours.pix_to_face.shape[0]):
        face, their_face = ours.pix_to_face[image, ..., 0], theirs.pix_to_face[image, ..., 0]
        covered, their_covered = face >= 0, their_face >= 0
        assert covered.sum() > 0
        only_one = int((covered ^ their_covered).sum())
        assert only_one <= max(2, 0.001 * int(covered.sum())), f"image {image}: {only_one} pixels covered by one backend only"
        both = covered & their_covered
        same = both & (face == their_face)
        assert int(same.sum()) >= min_face_agreement * int(both.sum()), f"image {image}: {int(same.sum())}/{int(both.sum())} same face"
        depth, their_depth = ours.zbuf[image, ..., 0][same], theirs.zbuf[image, ..., 0][same]
        assert torch.allclose(depth, their_depth, rtol=1e-4, atol=0)
        assert torch.allclose(ours.bary_coords[image, ..., 0, :][same], theirs.bary_coords[image, ..., 0, :][same], atol=1e-3)


@needs_pytorch3d
def test_head_matches_pytorch3d(head):
    assert head.ours.pix_to_face.shape == head.theirs.pix_to_face.shape == (2, 128, 128, 1)
    assert int(head.theirs.pix_to_face.max()) < head.model.faces.shape[0]  # per-mesh indices, not packed ones
    assert_agree(head.ours, head.theirs, min_face_agreement=0.995)


def test_head_fragments_are_consistent(head):
    face = head.ours.pix_to_face[..., 0]
    covered = face >= 0
    assert (covered.flatten(1).float().mean(1) > 0.3).all()  # the head fills the frame
    for image, (mesh, camera) in enumerate(zip(head.meshes, head.cameras)):
        visible = covered[image]
        bary, zbuf = head.ours.bary_coords[image, ..., 0, :][visible], head.ours.zbuf[image, ..., 0][visible]
        assert torch.allclose(bary.sum(-1), torch.ones(()), atol=1e-4) and (bary > -1e-4).all()
        # The depth at a pixel is that of the barycentric point of its face.
        _, corner_depth = camera.project(mesh[head.model.faces[face[image][visible]]])
        assert torch.allclose((bary * corner_depth).sum(-1), zbuf, rtol=1e-4)
        alone = rasterize(mesh[None], head.model.faces, camera)  # a batch gives what each mesh gives alone
        assert torch.equal(alone.pix_to_face[0], head.ours.pix_to_face[image])
        assert torch.equal(alone.zbuf[0], head.ours.zbuf[image])


@pytest.mark.parametrize("cull_backfaces", [False, True])
def test_numba_gives_the_torch_fragments_bit_for_bit(head, cull_backfaces):
    """The compiled loops round as the tensor code does (fused multiply-adds where torch's addcmul fuses), so
    every pixel's face, depth and barycentrics are the same bits: on the head (expressive, two views) and on the
    soup of triangles of every size, cut at every image border."""
    verts, faces, camera = triangle_soup(seed=11)
    for meshes, mesh_faces, cameras in [(head.meshes, head.model.faces, head.cameras), (verts, faces, camera)]:
        torch_fragments = rasterize(meshes, mesh_faces, cameras, backend="torch", cull_backfaces=cull_backfaces)
        numba_fragments = rasterize(meshes, mesh_faces, cameras, backend="numba", cull_backfaces=cull_backfaces)
        assert (torch_fragments.pix_to_face >= 0).any()
        for name, ours, theirs in zip(Fragments._fields, numba_fragments, torch_fragments):
            assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), name


def test_occlusion_culling_changes_nothing(head, monkeypatch):
    """The second pass skips back-facing triangles hidden behind the first pass's: the fragments are exactly those
    of drawing every triangle (the head from the front and the side, the random soup's interpenetrating ones)."""
    culled = []
    hidden_by_keys = raster_torch.hidden_by_keys
    monkeypatch.setattr(raster_torch, "hidden_by_keys", lambda *args: culled.append(hidden := hidden_by_keys(*args)) or hidden)
    fragments = rasterize(head.meshes, head.model.faces, head.cameras, backend="torch")
    assert culled[0].float().mean() > 0.5  # most back faces of a head are hidden
    monkeypatch.setattr(raster_torch, "hidden_by_keys",
                        lambda keys, triangles, rows, *rest: torch.zeros(len(rows), dtype=torch.bool))
    everything = rasterize(head.meshes, head.model.faces, head.cameras, backend="torch")
    for ours, drawn in zip(fragments, everything):
        assert torch.equal(ours, drawn)


def test_occlusion_culling_keeps_a_back_face_in_front():
    """A clockwise (back-facing) triangle in front of a counter-clockwise one wins where it covers it; one behind
    is culled and loses everywhere."""
    camera = pinhole(12)
    wall = at_pixels(camera, [(0.5, 0.5), (0.5, 11.5), (11.5, 0.5)], [3.0, 3.0, 3.0])
    small = [(1.5, 1.5), (6.2, 1.5), (1.5, 6.2)]  # clockwise on screen
    for depth, wins in ((2.0, True), (4.0, False)):
        verts = torch.cat([wall, at_pixels(camera, small, [depth] * 3)])[None]
        fragments = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), camera, backend="torch")
        assert (fragments.pix_to_face[0, 2, 2, 0] == 1) == wins
        assert (fragments.pix_to_face[0, ..., 0] == 1).any() == wins


def test_bad_input_is_refused_clearly():
    camera = pinhole(8)
    verts, faces = torch.rand(1, 3, 3) + torch.tensor([0, 0, 1.0]), torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="unknown raster backend 'opengl'"):
        rasterize(verts, faces, camera, backend="opengl")
    with pytest.raises(ValueError, match=r"verts must be \(N, V, 3\)"):
        rasterize(verts[0], faces, camera)
    with pytest.raises(ValueError, match="faces index vertices 0..2"):
        rasterize(verts, torch.tensor([[0, 1, 3]]), camera)
    with pytest.raises(ValueError, match="2 cameras for 1 meshes"):
        rasterize(verts, faces, [camera, camera])
    with pytest.raises(ValueError, match="share one image size"):
        rasterize(torch.cat([verts, verts]), faces, [camera, pinhole(16)])


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_an_image_too_large_for_the_keys_is_refused(backend):
    verts = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [0.5, 0.0, 1.0]]])
    with pytest.raises(ValueError, match="image_size 5000 is larger than the torch rasterizer supports"):
        rasterize(verts, torch.tensor([[0, 1, 2]]), pinhole(5000), backend=backend)


def test_missing_pytorch3d_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(raster_pytorch3d, "available", lambda: False)
    verts = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [0.5, 0.0, 1.0]]])
    with pytest.raises(RuntimeError, match="pytorch3d cannot be imported"):
        rasterize(verts, torch.tensor([[0, 1, 2]]), pinhole(8), backend="pytorch3d")
    assert (rasterize(verts, torch.tensor([[0, 1, 2]]), pinhole(8), backend="auto").pix_to_face >= 0).any()


def test_missing_numba_is_a_clear_error(monkeypatch):
    """Without numba, asking for it names the fix, and "auto" renders with the torch backend (the same fragments)."""
    monkeypatch.setattr(raster_numba, "available", lambda: False)
    verts = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [0.5, 0.0, 1.0]]])
    with pytest.raises(RuntimeError, match="numba cannot be imported.*pip install numba"):
        rasterize(verts, torch.tensor([[0, 1, 2]]), pinhole(8), backend="numba")
    assert Rasterizer("auto").backend_name(torch.device("cpu")) == "torch"
    assert (rasterize(verts, torch.tensor([[0, 1, 2]]), pinhole(8), backend="auto").pix_to_face >= 0).any()
