"""The procedural texturer and its UV atlas: every region lands where it should and takes the colour it should, tones
go in the right direction, age lines deepen, gutters are filled, and the same seed gives the same texture."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from factory.face.model import FaceModel
from factory.face.texture import TEXTURERS, ProceduralTexturer, make_texturer
from factory.face.texture.palette import IRIS_SRGB, PUPIL_SRGB, SCLERA_SRGB
from factory.face.texture.procedural import SKIN_STEPS, Look, brow_strokes
from factory.face.texture.template import BROWS
from factory.spec.plan import Demographics, Skin

LUMA = torch.tensor([0.2126, 0.7152, 0.0722])
SKIN = Skin(tone=0.3, fitzpatrick=2, undertone=0.0, redness=0.5, freckles=0.0, iris="brown", hair="brown", texture_seed=11)
ADULT = Demographics(age=30, age_band="30-44", gender="female", ethnicity="white")


@pytest.fixture(scope="module")
def texturer() -> ProceduralTexturer:
    return make_texturer("procedural", FaceModel.load(), texture_size=256)


@pytest.fixture(scope="module")
def image(texturer) -> torch.Tensor:
    return texturer.texture(SKIN, ADULT).image


def mean_luminance(image: torch.Tensor, where: torch.Tensor) -> float:
    return float((image[where] @ LUMA).mean())


def on_skin(texturer, image: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """(K, 3) colours of the skin texels selected by `where` (a mask over the skin texels)."""
    assert where.sum() >= 8, "the region should cover some texels"
    return image.reshape(-1, 3)[texturer.skin_maps.texels[where]]


def test_registry_names_the_known_texturers(texturer):
    assert TEXTURERS["procedural"] is ProceduralTexturer
    with pytest.raises(ValueError, match="unknown texturer 'stable'; known: diffusion, procedural"):
        make_texturer("stable", texturer.model)


def test_atlas_cells_hold_their_triangles_apart(texturer):
    atlas = texturer.atlas
    uv = atlas.corner_uvs
    assert uv.min() >= 0 and uv.max() <= 1
    # Every rendered triangle lies inside exactly one cell: no two charts share texels.
    inside = []
    for x, y, side, _ in texturer.model.layout.cells:
        u, v = uv[..., 0], 1 - uv[..., 1]
        inside.append(((u >= x) & (u <= x + side) & (v >= y) & (v <= y + side)).all(dim=1))
    assert (torch.stack(inside).sum(dim=0) == 1).all()
    assert (atlas.texel_face >= 0).float().mean() > 0.4  # the charts fill a good part of the square


def test_gutters_next_to_a_chart_take_a_chart_colour(texturer, image):
    covered = texturer.regions.covered
    ring = (F.max_pool2d(covered[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0) & ~covered
    assert ring.sum() > 1000
    flat = image.reshape(-1, 3)
    source = texturer.gutter_source.view(covered.shape)[ring]
    assert covered.reshape(-1)[source].all()  # each takes a covered texel's colour …
    assert torch.equal(image[ring], flat[source]) and (image[ring].sum(-1) > 0).all()  # … so none is black
    assert torch.equal(image[covered], flat[covered.reshape(-1)])  # covered texels keep their own


def test_fitzpatrick_one_is_lighter_than_six(texturer):
    light = texturer.texture(dataclasses.replace(SKIN, tone=0.0, fitzpatrick=1), ADULT).image
    dark = texturer.texture(dataclasses.replace(SKIN, tone=1.0, fitzpatrick=6), ADULT).image
    middle = texturer.texture(dataclasses.replace(SKIN, tone=0.5, fitzpatrick=4), ADULT).image
    skin = texturer.regions.skin
    assert mean_luminance(light, skin) > mean_luminance(middle, skin) > mean_luminance(dark, skin)
    assert mean_luminance(light, skin) > 2.5 * mean_luminance(dark, skin)
    # The eyes keep their white whatever the skin.
    sclera = texturer.regions.eyeball & (texturer.eyes.radial > 2) & (texturer.eyes.radial < 9)
    assert abs(mean_luminance(light, sclera) - mean_luminance(dark, sclera)) < 0.05


def test_lips_are_redder_than_the_cheeks(texturer, image):
    maps = texturer.skin_maps
    red_share = lambda colours: float((colours[:, 0] / colours[:, 1]).mean())  # noqa: E731
    lips = on_skin(texturer, image, maps.lips > 0.9)
    cheeks = on_skin(texturer, image, (maps.cheeks > 0.8) & (maps.lips < 0.01))
    assert red_share(lips) > red_share(cheeks) + 0.15
    assert float((lips @ LUMA).mean()) < float((cheeks @ LUMA).mean()) - 0.1  # and darker


def test_brows_and_scalp_hair_are_darker_than_the_forehead(texturer, image):
    maps = texturer.skin_maps
    landmarks = texturer.model.neutral[texturer.model.landmarks]
    x, y, z = maps.points.unbind(-1)
    brow_top = float(landmarks[BROWS, 1].max())
    forehead = ((y > brow_top + 1.0) & (y < brow_top + 2.5) & (x.abs() < 3) & (maps.brows == 0)
                & (z > float(landmarks[BROWS, 2].min()) - 1))
    forehead_luma = float((on_skin(texturer, image, forehead) @ LUMA).mean())
    assert float((on_skin(texturer, image, maps.brows > 0.9) @ LUMA).mean()) < 0.75 * forehead_luma
    assert float((on_skin(texturer, image, maps.above_hairline > 1.5) @ LUMA).mean()) < 0.6 * forehead_luma
    # The lash line is the darkest of the three: hair colour at 40 %.
    lash = on_skin(texturer, image, maps.lash_line > 0.4) @ LUMA
    assert float(lash.mean()) < 0.5 * forehead_luma


def test_brow_hair_lies_in_strokes_along_each_brow(texturer):
    """Brow hair is drawn as thin strokes laid along each brow (standing up at its inner end), not a painted band:
    over a brow's frame, the strokes vary between hair and skin, and change far faster across the hair than along it."""
    maps = texturer.skin_maps
    look = Look.draw(SKIN, ADULT, maps.box, maps.points)
    in_brows = maps.brows > 0.5
    strokes = brow_strokes(look, maps.box, maps.brow_place[in_brows], torch.sign(maps.points[in_brows, 0]))
    assert float(strokes.std()) > 0.15  # hair and skin between (a noise sampled outside its box: 0.04)
    # A brow's frame sampled every 0.1 mm: 1–5 cm from its inner end (the body), 3 mm above and below its line.
    along, above = torch.meshgrid(torch.arange(1.0, 5.0, 0.01), torch.arange(-0.3, 0.3, 0.01), indexing="ij")
    place = torch.stack([along.reshape(-1), above.reshape(-1)], dim=1)
    strokes = brow_strokes(look, maps.box, place, torch.ones(len(place))).reshape(along.shape)

    def change(step: tuple[int, int]) -> float:  # mean |difference| between samples `step` apart (1 mm)
        return float((strokes[step[0]:, step[1]:] - strokes[:strokes.shape[0] - step[0], :strokes.shape[1] - step[1]]).abs().mean())

    assert change((0, 10)) > 4 * change((10, 0))  # 1 mm across the hair changes it far more than 1 mm along (6×)


def test_eye_whites_are_bright_and_the_pupil_is_black(texturer, image):
    """Beside the iris the white is bright and near SCLERA_SRGB; toward the corners it is shaded darker (but still
    a white), as an eyeball curving away from the light looks."""
    eyes, eyeball = texturer.eyes, texturer.regions.eyeball
    sclera = eyeball & (eyes.radial > 1.15) & (eyes.radial < 1.25)
    corners = eyeball & (eyes.radial > 2.5) & (eyes.radial < 9)
    assert sclera.sum() > 100 and corners.sum() > 300
    assert float((image[sclera] @ LUMA).min()) > 0.75
    assert (image[sclera].mean(dim=0) - torch.tensor(SCLERA_SRGB)).abs().max() < 0.08
    corner_luma = image[corners] @ LUMA
    assert float(corner_luma.min()) > 0.55 and float(corner_luma.mean()) < float((image[sclera] @ LUMA).mean()) - 0.1
    pupil = eyeball & (eyes.radial < 0.25)
    assert pupil.sum() > 20 and (image[pupil] == torch.tensor(PUPIL_SRGB)).all()


def test_iris_colour_follows_the_skin_plan(texturer):
    iris = (texturer.eyes.radial > 0.5) & (texturer.eyes.radial < 0.9) & texturer.regions.eyeball
    blue = texturer.texture(dataclasses.replace(SKIN, iris="blue"), ADULT).image[iris].mean(dim=0)
    brown = texturer.texture(dataclasses.replace(SKIN, iris="dark_brown"), ADULT).image[iris].mean(dim=0)
    assert blue[2] > blue[0] and brown[0] > brown[2]
    # The iris texels show the planned hue (fibres and shading change its brightness only).
    for name, mean in (("blue", blue), ("dark_brown", brown)):
        assert F.cosine_similarity(mean, torch.tensor(IRIS_SRGB[name]), dim=0) > 0.99


def test_mouth_teeth_are_light_and_yellow_with_age(texturer, image):
    regions = texturer.regions
    socket = regions.mouth & ~regions.teeth & ~regions.gums
    assert mean_luminance(image, regions.teeth) > 0.8 > 0.25 > mean_luminance(image, regions.gums) > mean_luminance(image, socket)
    old = texturer.texture(SKIN, dataclasses.replace(ADULT, age=80)).image
    young_teeth, old_teeth = image[regions.teeth].mean(dim=0), old[regions.teeth].mean(dim=0)
    assert old_teeth[2] < young_teeth[2] - 0.05 and abs(float(old_teeth[0] - young_teeth[0])) < 0.01


def test_age_deepens_the_lines(texturer):
    lines = torch.zeros(texturer.regions.skin.shape)
    lines.view(-1)[texturer.skin_maps.texels] = texturer.skin_maps.age_lines
    where = lines > 0.05
    assert where.sum() > 100
    young = texturer.texture(SKIN, dataclasses.replace(ADULT, age=20)).image
    old = texturer.texture(SKIN, dataclasses.replace(ADULT, age=80)).image
    assert mean_luminance(old, where) < mean_luminance(young, where) - 0.02
    elsewhere = ~where & texturer.regions.skin
    assert (old[elsewhere] - young[elsewhere]).abs().mean() < 0.005


def test_freckles_are_dark_spots_in_their_zone_only(texturer, image):
    freckled = texturer.texture(dataclasses.replace(SKIN, freckles=1.0), ADULT).image
    everywhere = torch.ones_like(texturer.skin_maps.freckle_zone, dtype=torch.bool)
    darkening = (on_skin(texturer, image, everywhere) - on_skin(texturer, freckled, everywhere)) @ LUMA
    assert float(darkening.min()) >= 0  # freckles only darken …
    spots = darkening > 0.03
    assert spots.sum() > 20 and float(darkening.max()) > 0.1  # … in distinct spots …
    assert float(texturer.skin_maps.freckle_zone[spots].min()) > 0.1  # … inside their zone
    assert torch.equal(freckled[texturer.regions.eyeball], image[texturer.regions.eyeball])


def test_skin_steps_run_in_the_documented_order():
    names = [step.__name__ for step in SKIN_STEPS]
    assert names == ["flush_with_blood", "shade_eye_sockets", "add_skin_texture", "add_freckles", "add_age_spots", "darken_age_lines",
                     "draw_brows", "draw_scalp_hair", "draw_lash_line"]


def test_same_seed_same_texture(texturer):
    first = texturer.texture(SKIN, ADULT)
    assert torch.equal(first.image, texturer.texture(SKIN, ADULT).image)
    reseeded = texturer.texture(dataclasses.replace(SKIN, texture_seed=12), ADULT)
    assert not torch.equal(first.image, reseeded.image)
    assert first.parameters["name"] == "procedural" and first.parameters["texture_size"] == 256
