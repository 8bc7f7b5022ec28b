"""What makes a render read as a photograph: occlusion and soft shadows, light families, rooms behind the head,
camera imperfections and hair. Each piece is checked on its own (render/ with the face model's neutral where it
needs a face), and end to end on one small identity render."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from factory.face.hair import FOLD_COVER
from factory.face.hair_shell import HairShells
from factory.face.model import FaceModel
from factory.face.rig import AURig
from factory.face.texture.atlas import UVAtlas
from factory.face.wrinkles import nasolabial_distance
from factory.format.encoders import encode_jpeg
from factory.options import ConfigError
from factory.render.camera import SENSOR_MM, Orbit, fov_of_focal_length, head_camera
from factory.render.hair import HAIR_CHANNELS, HairLayer
from factory.render.lights import Light, direction_toward
from factory.render.mesh import vertex_normals
from factory.render.occlusion import ambient_occlusion, key_light_visibility
from factory.render.room import Lens, RoomBackground
from factory.render.sensor import Sensor, expose
from factory.run.backgrounds import BACKGROUNDS, ViewContext, make_background, register_background
from factory.run.identity import IdentityRenderer, RenderConfig
from factory.spec.plan import PlanConfig, plan_identities, plan_identity
from factory.spec.scene import LIGHT_FAMILIES

SIZE = 96
NOSE_TIP, RIGHT_NOSE_WING, LEFT_NOSE_WING, BROWS, EYES, CHIN, MOUTH_CORNER = 30, 31, 35, slice(17, 27), slice(36, 48), 8, 54


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.load()


@pytest.fixture(scope="module")
def atlas(model) -> UVAtlas:
    return UVAtlas.build(model, 256)


@pytest.fixture(scope="module")
def neutral(model, atlas):
    """The template face as one mesh: vertices, rendered triangles, normals and landmark positions."""
    verts = model.neutral
    return verts, atlas.faces, vertex_normals(verts[None], atlas.faces)[0], verts[model.landmarks]


def nearest(verts: torch.Tensor, point: torch.Tensor, count: int = 1) -> torch.Tensor:
    return (verts - point).norm(dim=-1).argsort()[:count]


# --- occlusion and shadows -------------------------------------------------------------------------------------------
def test_ambient_occlusion_darkens_the_eye_sockets_nostrils_and_neck_not_the_forehead(neutral):
    verts, faces, normals, landmarks = neutral
    occlusion = ambient_occlusion(verts, faces, normals)
    assert occlusion.shape == (len(verts),) and float(occlusion.min()) >= 0 and float(occlusion.max()) <= 1
    forehead = nearest(verts, landmarks[BROWS].mean(0) + torch.tensor([0.0, 2.5, 0.5]), 30)
    inner_corners = torch.cat([nearest(verts, landmarks[i], 5) for i in (39, 42)])  # where the eye sockets are deepest
    under_jaw = nearest(verts, landmarks[CHIN] + torch.tensor([0.0, -2.5, -3.0]), 30)
    assert float(occlusion[forehead].mean()) > 0.85
    assert float(occlusion[inner_corners].mean()) < float(occlusion[forehead].mean()) - 0.3
    assert float(occlusion[under_jaw].mean()) < float(occlusion[forehead].mean()) - 0.1


def test_the_key_light_casts_a_soft_shadow_beside_the_nose_away_from_the_light(neutral):
    """Light from the face's left (+x) and above: the cheek beside the right nose wing is in the nose's shadow, its
    mirror image on the lit side is not; a softer light gives a wider penumbra, so fewer fully dark vertices."""
    verts, faces, normals, landmarks = neutral
    toward = direction_toward(60, 25)
    lit = key_light_visibility(verts[None], faces, normals[None], toward, softness_deg=2.0)[0]
    beside = torch.tensor([1.0, -0.3, -0.5])  # outward, a little down and back from each nose wing
    shaded_side = nearest(verts, landmarks[RIGHT_NOSE_WING] + beside * torch.tensor([-1.0, 1.0, 1.0]), 8)
    lit_side = nearest(verts, landmarks[LEFT_NOSE_WING] + beside, 8)
    assert float(lit[lit_side].mean()) > 0.9
    assert float(lit[shaded_side].mean()) < 0.5
    soft = key_light_visibility(verts[None], faces, normals[None], toward, softness_deg=15.0)[0]
    facing = (normals @ toward) > 0.2
    assert int(((soft < 0.05) & facing).sum()) < int(((lit < 0.05) & facing).sum())


def test_shadows_follow_each_expression_and_ignore_undrawn_vertices(model, neutral):
    """Two expressions, one with the mesh's undrawn vertices (ICT's eye shells, lash cards) moved in front of the face
    toward the light: they cast no shadow, so both see the same light; a mesh turned away is lit differently."""
    verts, faces, normals, landmarks = neutral
    toward = direction_toward(0, 30)
    undrawn = ~torch.isin(torch.arange(len(verts)), faces.unique())
    cluttered = verts.clone()
    cluttered[undrawn] = landmarks[NOSE_TIP] + 4.0 * toward + 0.5 * torch.randn(int(undrawn.sum()), 3)
    lit = key_light_visibility(torch.stack([verts, cluttered]), faces, torch.stack([normals, normals]), toward, 5.0)
    assert lit.shape == (2, len(verts))
    assert torch.equal(lit[0, ~undrawn], lit[1, ~undrawn])
    other = key_light_visibility(verts[None], faces, normals[None], direction_toward(80, 10), 5.0)[0]
    assert float((other[~undrawn] - lit[0, ~undrawn]).abs().mean()) > 0.05


# --- light ------------------------------------------------------------------------------------------------------------
def test_lights_are_validated():
    with pytest.raises(ValueError, match="softness_deg"):
        Light(direction=torch.tensor([0.0, 0.0, 1.0]), colour=torch.ones(3), ambient=0.3, softness_deg=60.0)


def test_plans_draw_every_light_family_and_only_the_configured_ones():
    families = {spec.light.family for spec in plan_identities(120, 4)}
    assert families == set(LIGHT_FAMILIES)
    only = PlanConfig(light_families=("window", "flash"))
    assert {spec.light.family for spec in plan_identities(40, 4, only)} <= {"window", "flash"}
    for spec in plan_identities(40, 5):
        ranges = LIGHT_FAMILIES[spec.light.family]
        assert ranges["elevation"][0] <= spec.light.elevation <= ranges["elevation"][1]
        assert ranges["softness"][0] <= spec.light.softness <= ranges["softness"][1]
    with pytest.raises(ValueError, match="light_families"):
        PlanConfig(light_families=("disco",))


# --- backgrounds ------------------------------------------------------------------------------------------------------
def context_for(spec, size: int = 128) -> ViewContext:
    camera = head_camera(Orbit(yaw=spec.views[1].yaw), size, torch.zeros(3), 12.0,
                         fov_deg=fov_of_focal_length(spec.views[1].focal_mm))
    return ViewContext(torch.zeros(3), camera, spec.views[1])


def test_background_choices_are_a_registry_and_unknown_names_list_the_known_ones():
    assert {"scene", "gradient", "inpaint"} <= set(BACKGROUNDS)
    assert RenderConfig().background == "scene"
    with pytest.raises(ConfigError, match="unknown background 'wallpaper'; known: gradient, inpaint, scene"):
        RenderConfig(background="wallpaper")
    spec = plan_identity(0, 1)
    with pytest.raises(ConfigError, match="unknown background 'wallpaper'"):
        make_background("wallpaper", spec.background, context_for(spec))
    register_background("test-flat", lambda planned, context: make_background("gradient", planned, context))
    try:
        assert RenderConfig(background="test-flat").background == "test-flat"
    finally:
        del BACKGROUNDS["test-flat"]


def test_scene_backgrounds_are_rooms_not_flat_colours_and_differ_per_identity():
    images = []
    for index in range(4):
        spec = plan_identity(index, 2)
        context = context_for(spec)
        image = make_background("scene", spec.background, context).image(context.camera)
        assert image.shape == (128, 128, 3) and float(image.min()) >= 0 and float(image.max()) <= 1
        assert float(image.std(dim=(0, 1)).max()) > 0.01  # light falloff, fixtures, noise: never one flat colour
        hsv_saturation = (image.amax(-1) - image.amin(-1)) / image.amax(-1).clamp(min=1e-3)
        assert float(hsv_saturation.mean()) < 0.45  # muted, never a saturated screen
        images.append(image)
    assert all(not torch.allclose(a, b, atol=0.02) for i, a in enumerate(images) for b in images[i + 1:])


def test_a_wider_aperture_blurs_the_room_more():
    spec = plan_identity(1, 2)
    context = context_for(spec, size=128)
    room = make_background("scene", spec.background, context).room

    def sharpness(f_number: float) -> float:
        image = RoomBackground(room, Lens(f_number=f_number, focus_cm=80.0, sensor_cm=SENSOR_MM / 10)).image(context.camera)
        return float((image[1:] - image[:-1]).abs().mean() + (image[:, 1:] - image[:, :-1]).abs().mean())

    assert sharpness(1.4) < sharpness(16.0)


def test_each_view_sees_its_own_part_of_the_room():
    spec = plan_identity(3, 2)
    frontal = head_camera(Orbit(yaw=0.0), 96, torch.zeros(3), 12.0)
    side = head_camera(Orbit(yaw=35.0), 96, torch.zeros(3), 12.0)
    room = make_background("scene", spec.background, ViewContext(torch.zeros(3), frontal, spec.views[0]))
    assert not torch.allclose(room.image(frontal), room.image(side), atol=0.01)


# --- camera -----------------------------------------------------------------------------------------------------------
def test_sensor_noise_and_defocus_are_seeded_and_within_their_strength():
    flat = torch.full((3, 64, 64, 3), 0.5)
    sensor = Sensor(defocus_px=0.0, noise=0.02, seed=7)
    noisy = expose(flat, sensor)
    assert torch.equal(noisy, expose(flat, sensor))  # the same seed, the same noise
    assert not torch.equal(noisy, expose(flat, dataclasses.replace(sensor, seed=8)))
    assert not torch.equal(noisy[0], noisy[1])  # each image of a view gets its own noise
    assert 0.01 < float((noisy - flat).std()) < 0.03
    edges = torch.zeros(1, 32, 32, 3)
    edges[:, :, 16:] = 1.0
    soft = expose(edges, Sensor(defocus_px=0.7, noise=0.0, seed=0))
    assert 0 < float(soft[0, 0, 15, 0]) < 0.5 and 0.5 < float(soft[0, 0, 16, 0]) < 1
    assert torch.allclose(soft.mean(), edges.mean(), atol=1e-6)  # a blur moves light, never adds any
    with pytest.raises(ValueError, match="defocus_px"):
        Sensor(defocus_px=3.0, noise=0.0, seed=0)


def test_focal_length_and_shift_set_the_intrinsics():
    assert fov_of_focal_length(SENSOR_MM / 2) == pytest.approx(90.0)
    camera = head_camera(Orbit(), 100, torch.zeros(3), 10.0, fov_deg=fov_of_focal_length(85.0), shift=(0.02, -0.03))
    assert float(camera.K[0, 0]) == pytest.approx(50 / math.tan(math.atan(SENSOR_MM / 2 / 85.0)), rel=1e-5)
    assert float(camera.K[0, 2]) == pytest.approx(49.5 + 2.0) and float(camera.K[1, 2]) == pytest.approx(49.5 - 3.0)
    pixel, _ = camera.project(torch.zeros(1, 3))
    assert torch.allclose(pixel[0], torch.tensor([51.5, 46.5]), atol=1e-3)  # the head's centre moves with the shift


def test_planned_cameras_stay_within_the_configured_ranges():
    config = PlanConfig()
    for spec in plan_identities(30, 6, config):
        for view in spec.views:
            assert config.focal_mm[0] <= view.focal_mm <= config.focal_mm[1]
            assert config.f_number[0] <= view.f_number <= config.f_number[1]
            assert config.defocus_px[0] <= view.defocus_px <= config.defocus_px[1]
            assert config.sensor_noise[0] <= view.sensor_noise <= config.sensor_noise[1]
            assert config.jpeg_quality[0] <= view.jpeg_quality <= config.jpeg_quality[1]
            assert abs(view.shift_x) <= config.framing_shift and abs(view.shift_y) <= config.framing_shift
    with pytest.raises(ValueError, match="focal_mm must be a range"):
        PlanConfig(focal_mm=(120.0, 50.0))
    assert PlanConfig.from_dict({"jpeg_quality": [80, 90]}).jpeg_quality == (80, 90)


# --- hair -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shells(model, atlas) -> HairShells:
    return HairShells(model, atlas.faces, atlas.corner_uvs, atlas.face_part, hair_part=8, facial_hair_part=9)


def hair_of(index: int = 0, **changes):
    return dataclasses.replace(plan_identity(index, 0).hair, **changes)


def build(shells, model, hair):
    verts = model.neutral[None]
    return shells.build(hair, verts, vertex_normals(verts, shells.faces))


def test_hair_shells_sit_over_the_scalp_only_where_hair_grows(shells, model):
    landmarks = model.neutral[model.landmarks]
    brow_top = float(landmarks[BROWS, 1].max())
    geometry = build(shells, model, hair_of(style="medium", length_cm=2.0, hairline_cm=0.0, thinning=0.0, facial="none"))
    assert geometry.attributes.shape == (model.num_vertices + geometry.verts.shape[1], HAIR_CHANNELS)
    assert set(geometry.face_part.tolist()) == {8}
    pushed = geometry.verts[0] - model.neutral[geometry.source]
    assert float(pushed.norm(dim=-1).max()) > 1.5  # the crown's hair stands off the scalp
    grown = model.neutral[geometry.source]
    front = grown[:, 2] > float(landmarks[BROWS, 2].min()) - 1.0
    assert front.any() and float(grown[front, 1].min()) > brow_top + 1.0  # on the face, only above the forehead
    shaved = build(shells, model, hair_of(style="shaved", facial="none"))
    assert shaved.verts.shape[1] == 0 and float(shaved.attributes[:, 0].max()) > 0  # stubble on the skin, no shell


def test_long_hair_falls_below_the_ears_and_clears_the_head(shells, model):
    landmarks = model.neutral[model.landmarks]
    hair = hair_of(style="long", length_cm=1.0, drop_cm=20.0)
    long = build(shells, model, hair)
    sheet = shells.curtain(hair, model.neutral[None]).verts[0]
    assert len(sheet) > 100 and long.verts.shape[1] > len(sheet)  # the sheet comes with a scalp shell and float(sheet[:, 1].min()) < float(landmarks[0, 1]) - 8.0  # below the jaw's top
    drawn = model.neutral[shells.faces.unique()]
    below_scalp = sheet[:, 1] < float(landmarks[0, 1]) + 4.0  # (its top tucks under the scalp's hair)
    gap = torch.cdist(sheet[below_scalp], drawn).min(dim=1).values
    assert float(gap.min()) > 0.5  # it hangs clear of the cheeks, ears and neck
    assert torch.allclose(long.normals.norm(dim=-1), torch.ones(1), atol=1e-4)
    normals = shells.curtain(hair, model.neutral[None]).normals[0]
    outward = sheet - shells.centre
    assert float(((normals[:, [0, 2]] * outward[:, [0, 2]]).sum(-1) > 0).float().mean()) > 0.95  # lit from outside


def test_a_bald_pattern_leaves_the_crown_bare_and_the_sides_covered(shells, model):
    full = build(shells, model, hair_of(style="short", length_cm=1.0, hairline_cm=0.0, thinning=0.0))
    bald = build(shells, model, hair_of(style="bald_pattern", length_cm=0.6, hairline_cm=3.0, thinning=1.0))
    top = int(model.neutral[:, 1].argmax())
    assert top in full.source.tolist() and top not in bald.source.tolist()
    centre = model.neutral[bald.source].mean(0)
    assert float(model.neutral[bald.source, 0].abs().max()) > 6  # the sides keep their hair
    assert len(bald.source) < len(full.source) and float(centre[1]) < float(model.neutral[full.source].mean(0)[1])


def test_facial_hair_grows_only_on_planned_identities_and_never_on_the_lips(shells, model):
    lips = model.vertex_part == model.part_names.index("lips")
    none = build(shells, model, hair_of(facial="none"))
    assert 9 not in none.face_part.tolist()
    face = torch.arange(model.num_vertices) < 9409
    assert float(none.attributes[: model.num_vertices][face & (model.neutral[:, 1] < 0), 0].max()) == 0
    beard = build(shells, model, hair_of(facial="beard", facial_length_cm=0.8))
    assert 9 in beard.face_part.tolist()
    assert float(beard.attributes[: model.num_vertices][lips, 0].max()) == 0
    stubble = build(shells, model, hair_of(facial="stubble"))
    assert 9 not in stubble.face_part.tolist() and float(stubble.attributes[:, 0].max()) > 0  # dots on the skin


def facial_coverage(geometry, model) -> torch.Tensor:
    """(V,) the facial hair over each face vertex: its own (stubble) or that of the shell vertices pushed out of it."""
    coverage = geometry.attributes[: model.num_vertices, 0].clone()
    return coverage.scatter_reduce_(0, geometry.source, geometry.attributes[model.num_vertices:, 0], reduce="amax")


@pytest.mark.parametrize("style", ["moustache", "goatee", "beard"])
def test_facial_hair_leaves_the_nose_wings_bare_and_the_nasolabial_folds_sparse(shells, model, style):
    """AU9 raises and flares the nose wings, AU9 and AU10 deepen the nasolabial folds: no style of facial hair
    covers the wings, and along the folds (down to the mouth corners) its strands are sparse enough to show the
    crease."""
    points, landmarks = model.neutral, model.neutral[model.landmarks]
    coverage = facial_coverage(build(shells, model, hair_of(facial=style, facial_length_cm=0.8)), model)
    wings = torch.cat([nearest(points[:, :2], landmarks[wing, :2], 12) for wing in (RIGHT_NOSE_WING, LEFT_NOSE_WING)])
    assert float(coverage[wings].max()) == 0
    between = (points[:, 1] < float(landmarks[LEFT_NOSE_WING, 1])) & (points[:, 1] > float(landmarks[MOUTH_CORNER, 1]) + 0.2)
    fold = (nasolabial_distance(points, landmarks) < 0.15) & between & (points[:, 2] > float(landmarks[MOUTH_CORNER, 2]) - 1.0)
    assert fold.sum() > 10 and float(coverage[fold].max()) <= FOLD_COVER + 0.01
    if style == "beard":  # the cheek beside the fold keeps its full beard
        corner = landmarks[MOUTH_CORNER]
        cheek = ((points[:, 1] - corner[1]).abs() < 0.5) & ((points[:, 0].abs() - corner[0] - 1.8).abs() < 0.5)
        assert cheek.sum() > 10 and float(coverage[cheek & model.layout.skin].mean()) > 0.8


def test_the_moustache_parts_where_a_raised_upper_lip_squeezes_the_skin(shells, model):
    """With AU10 at 5 the upper lip rises toward the nose; the shell over the squeezed skin dips under it (the strands
    part and the skin with its fold shows), and nowhere at neutral or with only the brows lowered."""
    rig = AURig(model)
    verts = rig.vertices(torch.zeros(100), [{}, {"AU4": 5}, {"AU10": 5}])
    geometry = shells.build(hair_of(facial="moustache", facial_length_cm=0.6), verts, vertex_normals(verts, shells.faces))
    facial = geometry.face_part == 9
    shell = geometry.faces[facial].unique() - model.num_vertices
    normals = vertex_normals(verts, shells.faces)[:, geometry.source[shell]]
    out = ((geometry.verts[:, shell] - verts[:, geometry.source[shell]]) * normals).sum(-1)  # (3, S) cm out of the skin
    assert float(out[0].min()) > 0 and float(out[1].min()) > 0
    parted = out[2] < 0
    assert 0.1 < float(parted.float().mean()) < 0.8  # a parting, not the whole moustache gone
    landmarks = model.neutral[model.landmarks]
    assert float(model.neutral[geometry.source[shell[parted]], 0].abs().max()) < float(landmarks[MOUTH_CORNER, 0])


def test_plans_give_facial_hair_to_men_only_at_the_configured_rate():
    specs = list(plan_identities(96, 3))
    assert all(s.hair.facial == "none" for s in specs if s.demographics.gender == "female")
    none = [s for s in plan_identities(48, 3, PlanConfig(facial_hair_rate=0.0))]
    assert all(s.hair.facial == "none" for s in none)
    every = [s for s in plan_identities(48, 3, PlanConfig(facial_hair_rate=1.0)) if s.demographics.gender == "male"]
    assert every and all(s.hair.facial != "none" for s in every)


def test_sparse_hair_breaks_into_strands_that_average_to_its_coverage():
    layer = HairLayer(torch.zeros(1, HAIR_CHANNELS), colour=torch.full((3,), 0.1), strand_cm=0.05, table=HairLayer.table_for(3))
    count = 20000
    attributes = torch.zeros(count, HAIR_CHANNELS)
    attributes[:, 4] = torch.linspace(0, 200, count)  # across many strands
    attributes[:, 5] = torch.linspace(0, 30, count).roll(777)
    attributes[:, 6] = 1.0
    for coverage in (0.0, 0.3, 1.0):
        attributes[:, 0] = coverage
        alpha = layer.strands(attributes, pixel_cm=0.02).alpha
        assert abs(float(alpha.mean()) - coverage) < 0.05
    attributes[:, 0] = 0.3
    alpha = layer.strands(attributes, pixel_cm=0.02).alpha
    assert float((alpha > 0.5).float().mean()) > 0.1 and float((alpha < 0.1).float().mean()) > 0.2  # strands, gaps
    blurred = layer.strands(attributes, pixel_cm=10.0).alpha  # strands far below a pixel: an even tint
    assert torch.allclose(blurred, torch.full_like(blurred, 0.3), atol=1e-6)


# --- end to end -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered():
    spec = plan_identity(1, 0)
    spec = dataclasses.replace(spec, expressions=spec.expressions[:2],
                               hair=dataclasses.replace(spec.hair, style="short", length_cm=1.0, thinning=0.0))
    renderer = IdentityRenderer(RenderConfig(image_size=SIZE, texture_size=256, backend="torch"))
    layers = renderer.render(spec)
    return renderer, spec, layers, renderer.encode_sample(spec, layers)


def test_hair_covers_the_top_of_the_head_in_the_renders(rendered):
    renderer, spec, layers, _ = rendered
    hair = renderer.part_names.index("hair")
    segmentation = layers["segmentation"][0, 0]
    brows_y = layers["landmarks_2d"][0, 0, BROWS, 1].min()
    head = segmentation > 0
    above = head & (np.arange(SIZE)[:, None] < brows_y - 0.15 * SIZE)
    assert above.sum() > 50 and (segmentation[above] == hair).mean() > 0.6


def test_meta_records_light_hair_background_and_camera_and_the_jpegs_use_the_planned_quality(rendered):
    renderer, spec, layers, members = rendered
    meta = json.loads(members["meta.json"])
    assert meta["light"]["family"] in LIGHT_FAMILIES and meta["light"] == dataclasses.asdict(spec.light)
    assert meta["hair"]["style"] == "short" and meta["hair"]["facial"] == spec.hair.facial
    assert meta["background"]["room"]["kind"] in ("clinic", "home") and meta["generator"]["background"] == "scene"
    assert meta["parts"][-2:] == ["hair", "facial_hair"]
    for v, view in enumerate(meta["views"]):
        planned = spec.views[v]
        assert view["focal_mm"] == planned.focal_mm and view["jpeg_quality"] == planned.jpeg_quality
        assert view["f_number"] == planned.f_number and view["sensor_noise"] == planned.sensor_noise
        focal_px = SIZE / 2 / math.tan(math.radians(fov_of_focal_length(planned.focal_mm)) / 2)
        assert view["K"][0][0] == pytest.approx(focal_px, rel=1e-4)
        jpeg = members[f"neutral.{planned.name}.jpg"]
        assert jpeg == encode_jpeg(layers["rgb"][0, v], planned.jpeg_quality)
    qualities = {view.jpeg_quality for view in spec.views}
    sizes = {len(members[f"neutral.{view.name}.jpg"]) for view in spec.views}
    assert len(qualities) == 1 or len(sizes) > 1
    fixed = IdentityRenderer.__new__(IdentityRenderer)
    fixed.config = RenderConfig(image_size=SIZE, jpeg_quality=50)
    assert fixed.jpeg_quality(spec.views[0].jpeg_quality) == 50  # render.jpeg_quality overrides the plan


def test_renders_are_not_pixel_clean(rendered):
    """Sensor noise: the background of every image varies from pixel to pixel even where the room is smooth."""
    _, _, layers, _ = rendered
    rgb = layers["rgb"][0, 0].astype(float)
    steps = np.abs(np.diff(rgb[: SIZE // 6, : SIZE // 6], axis=1))
    assert steps.mean() > 0.5
