"""The procedural texturer: skin, eyes, mouth and hair from a few seeded numbers, with no weights.

`ProceduralTexturer.__init__` works out, once, everything that depends on the template only (`template.py`: texel
regions, eye coordinates, per-texel region maps). `texture` then draws one identity's `Look` (its colours and
noise) and paints three regions:
- skin: the base tone, then each step of `SKIN_STEPS` in order, a small function (colour, look, maps) → colour.
  A new layer (wrinkle maps, stubble, make-up …) is one more function in that list; after 60, age spots and sparser
  brows (`elder`);
- eyes: iris fibres, a dark limbal ring, the pupil and an off-white sclera, darker and warmer toward the corners;
- mouth: teeth (yellower with age), gums and tongue, a socket darker deeper in.
Noise is 3D value noise at the template point of each texel, so it runs across UV seams without a visible cut.

Determinism: an identity's generator draws, in this order, the four noise lattices (`Look.draw`), the pores
(`add_skin_texture`), then the iris fibres (`paint_eyes`); a new step that draws from it must come after these,
or every texture changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from factory.face.model import FaceModel
from factory.face.texture.atlas import gutter_sources
from factory.face.texture.base import Texture, Texturer
from factory.face.texture.fields import ValueNoise
from factory.face.texture.palette import (
    GREYING,
    GUMS_SRGB,
    IRIS_SRGB,
    MOUTH_SRGB,
    PUPIL_SRGB,
    SCLERA_SRGB,
    TEETH_SRGB,
    hair_srgb,
    skin_base_srgb,
)
from factory.face.texture.template import (
    Box,
    EyeGeometry,
    MouthMaps,
    SkinMaps,
    TexelRegions,
    crown_mask,
    eye_geometry,
    hairline_wander,
    noise_box,
    scalp_density,
    where_hair_grows,
)
from factory.spec.hair import elder_factor
from factory.spec.plan import Demographics, Hair, Skin

NOISE_STREAM = 0x7E47  # mixed with the plan's texture_seed: the texturer's own random stream
# Scalp-hair strokes: noise stretched along x, by shrinking x toward the box's middle so that every point stays
# inside the noise's box (outside it value noise is 0: stretching y × 3 instead left the brows and scalp outside).
HAIR_STROKE_STRETCH = torch.tensor([0.3, 1.0, 1.0])
# Brow hair: strokes of the finest noise laid along each brow, BROW_STROKE_WIDTH of its 1.2 mm cell across (a texel
# or two of a 1024 px texture) and BROW_STROKE_LENGTH times longer; at the inner end the hairs stand up
# (BROW_HEAD_CM), turning to lie along the brow over its body.
BROW_STROKE_WIDTH = 0.4
BROW_STROKE_LENGTH = 14.0
BROW_HEAD_CM = 0.8


class Noise(NamedTuple):
    """One identity's value noise at four scales (cell sizes in cm)."""

    coarse: ValueNoise  # 3 cm: blotches
    medium: ValueNoise  # 1 cm: patchy flush, hairline wander
    fine: ValueNoise  # 3.5 mm
    finest: ValueNoise  # 1.2 mm: freckles, hair strokes

    @classmethod
    def draw(cls, rng: np.random.Generator, box: Box) -> "Noise":
        return cls(*(ValueNoise(rng, box.low, box.high, cell_cm) for cell_cm in (3.0, 1.0, 0.35, 0.12)))


def age_factor(age: float) -> float:
    """0 at 25 years or younger, 1 at 80: how deep the age lines are."""
    return float(np.clip((age - 25) / 55, 0, 1))


@dataclass(frozen=True)
class Look:
    """What one identity is painted from: its planned skin, and the colours and noise drawn or derived from it."""

    plan: Skin
    aging: float  # age_factor of the identity's age
    elder: float  # factory/spec/hair.py elder_factor: 0 up to 60 years, 1 at 90 (age spots, sparser brows)
    male: bool
    skin_srgb: np.ndarray  # (3,) float64 base skin colour
    hair_srgb: torch.Tensor  # (3,) brow, lash and scalp hair colour
    noise: Noise
    rng: np.random.Generator  # draws the pores, then the iris fibres
    fine_texture: torch.Tensor  # (P,) the fine noise at the skin texels: skin texture, and uneven age lines
    hair_strokes: torch.Tensor  # (P,) 0..1 strokes stretched along x: scalp hair
    hair: Hair | None  # the planned hair style, when given: the scalp is painted to match it

    @classmethod
    def draw(cls, plan: Skin, demographics: Demographics, box: Box, skin_points: torch.Tensor,
             hair: Hair | None = None) -> "Look":
        rng = np.random.default_rng([plan.texture_seed, NOISE_STREAM])
        noise = Noise.draw(rng, box)
        skin_srgb = skin_base_srgb(plan.tone, plan.undertone)
        return cls(plan=plan, aging=age_factor(demographics.age), elder=elder_factor(demographics.age), male=demographics.gender == "male",
                   skin_srgb=skin_srgb, hair_srgb=hair_srgb(plan.hair, skin_srgb), noise=noise, rng=rng,
                   fine_texture=noise.fine(skin_points),
                   hair_strokes=noise.finest(skin_points * HAIR_STROKE_STRETCH) * 0.5 + 0.5, hair=hair)


# --- skin steps: each (P, 3) colour of the skin texels → the next -------------------------------------------------
FLUSH_SHIFT = torch.tensor([0.0, -0.16, -0.12])  # toward red: less green and blue
LIP_TINT = torch.tensor([0.86, 0.58, 0.60])
UNDER_EYE_TINT = torch.tensor([1.0, 1.05, 0.95])
EYE_SOCKET_TINT = torch.tensor([0.8, 0.62, 0.62])
HUE_WANDER = torch.tensor([0.5, -0.5, -0.5])
FRECKLE_TINT = torch.tensor([0.7, 0.9, 1.0])
AGE_SPOT_TINT = torch.tensor([0.68, 0.55, 0.42])  # a lentigo: brown, darker in blue than in red
# The fine noise's level above which a spot shows, and how far it drops at 90 where the spots cluster: about 1 % of
# the face at 70, 2–4 % at 85.
AGE_SPOT_THRESHOLD, AGE_SPOT_SHARE = 0.85, 0.35
ELDER_LINES = 1.0  # at 90 the age lines are this much darker than the age ramp alone makes them
GREY_BROW_MIX = 0.45  # grey or white brows: this share of their colour is the skin's, darkened (salt and pepper)
BROW_THINNING = 0.7  # at 90, brow hair between the strokes is this much sparser
BALDING_ABOVE_CM = 9  # with age, men's scalp hair thins above this height of the template (the crown)
SHAVED_SHADOW = 0.35  # a shaved scalp keeps this much of the hair's colour: the stubble's shadow


def flush_with_blood(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Cheeks and nose tip redder, more with `redness` and patchy; lips darker and redder."""
    redness = look.plan.redness
    patchy = 1 + 0.3 * look.noise.medium(maps.points)
    flush = (0.35 + 0.65 * redness) * (0.55 * maps.cheeks + 0.35 * maps.nose_tip) * patchy
    colour = colour * (1 + flush[:, None] * FLUSH_SHIFT)
    lip_colour = colour * LIP_TINT * (0.9 + 0.1 * redness)
    return torch.lerp(colour, lip_colour, maps.lips[:, None] * 0.8)


def shade_eye_sockets(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Darker under the eyes and inside the eye sockets."""
    colour = colour * (1 - 0.1 * maps.under_eyes[:, None] * UNDER_EYE_TINT)
    return torch.lerp(colour, colour * EYE_SOCKET_TINT, maps.eye_sockets[:, None])


def add_skin_texture(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Blotches at three scales, a little hue wander, then pores at the texel scale."""
    p, noise = maps.points, look.noise
    luminance = 0.05 * noise.coarse(p) + 0.035 * noise.medium(p + 17.0) + 0.03 * look.fine_texture + 0.02 * noise.finest(p)
    colour = colour * (1 + luminance[:, None] + 0.02 * noise.fine(p + 17.0)[:, None] * HUE_WANDER)
    pores = torch.from_numpy(look.rng.standard_normal(p.shape[0], dtype=np.float32))
    return colour * (1 + 0.025 * pores[:, None])


def add_freckles(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Spots where the finest noise peaks, on the nose and cheeks; more of them with `freckles`."""
    density = look.plan.freckles
    if density <= 0:
        return colour
    spots = ((look.noise.finest(maps.points - 5.0) - (1 - 0.5 * density)) * 4).clamp(0, 1)
    return colour * (1 - (0.35 * maps.freckle_zone * spots)[:, None] * FRECKLE_TINT)


def add_age_spots(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Solar lentigines after 60: flat brown spots of a few millimetres where the 1 cm noise peaks, clustered by the
    3 cm noise, on the face below the hairline (not the lips), more and darker with age; none before 60."""
    if look.elder <= 0:
        return colour
    cluster = (look.noise.coarse(maps.points + 1.1) * 0.5 + 0.5).clamp(0, 1)  # small offsets: the noise spans the head's box
    threshold = AGE_SPOT_THRESHOLD - AGE_SPOT_SHARE * look.elder * (0.5 + cluster)  # the noise's 95th percentile is ~0.5
    spots = ((look.noise.medium(maps.points + 0.37) - threshold) * 4).clamp(0, 1)  # soft-edged
    zone = (-maps.above_hairline - 0.5).clamp(0, 1) * (1 - maps.lips) * (1 - maps.eye_sockets)
    strength = (0.3 + 0.5 * look.elder) * (1 - 0.6 * look.plan.tone)  # lentigines are rarer and fainter on dark skin
    return torch.lerp(colour, colour * AGE_SPOT_TINT, (strength * zone * spots)[:, None])


def darken_age_lines(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    deeper = 1 + ELDER_LINES * look.elder  # the static lines of old age: darker still after 60
    return colour * (1 - (look.aging * deeper * maps.age_lines * (0.75 + 0.25 * look.fine_texture)).clamp(max=0.6))[:, None]


def draw_brows(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Brow hair: strokes of hair colour along each brow, standing up at its inner end, with skin between them;
    strokes reach past the band's soft edge and gaps open inside it, so the outline is ragged, not painted. Drawn on
    the band's texels only (about 2 % of the skin's)."""
    texels = torch.nonzero(maps.brows > 0).squeeze(1)
    density = maps.brows[texels]
    strokes = brow_strokes(look, maps.box, maps.brow_place[texels], torch.sign(maps.points[texels, 0]))
    sparse = 1 - BROW_THINNING * look.elder * (1 - strokes)  # old brows thin between their strokes
    band = (density * 1.3 - 0.15 + 0.8 * (strokes - 0.5) * (density * 3).clamp(max=1)).clamp(0, 1)
    cover = (band * (0.5 + 0.5 * strokes)).clamp(0, 1)[:, None] * (0.85 * sparse[:, None])
    brow = look.hair_srgb
    if look.plan.hair in GREYING:  # grey brows keep some dark hairs and show the skin: no solid pale stripe
        brow = torch.lerp(brow, torch.tensor(look.skin_srgb, dtype=torch.float32) * 0.6, GREY_BROW_MIX)
    return colour.index_copy(0, texels, torch.lerp(colour[texels], brow.expand(len(texels), 3), cover))


def brow_strokes(look: Look, box: Box, place: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """(K,) 0..1, sharpened: the finest noise over a brow's own frame at `place` (K, 2) (SkinMaps.brow_place: cm along
    from the inner end, cm above the line), stretched along the hair; `side` (K,) ±1 keeps the two brows apart in the
    noise (not mirror images). Near the inner end the frame turns so that the strokes run up; it sits at the box's
    middle, inside the box."""
    along, above = place.unbind(dim=1)
    rise = (1 - along / BROW_HEAD_CM).clamp(0, 1) * (math.pi / 4)  # hair direction: up at the head, along the body
    across = above * torch.cos(rise) - along * torch.sin(rise)
    lengthwise = along * torch.cos(rise) + above * torch.sin(rise)
    local = torch.stack([lengthwise / BROW_STROKE_LENGTH, across, side], dim=1) / BROW_STROKE_WIDTH
    return (look.noise.finest((box.low + box.high) / 2 + local) / 0.6).clamp(-1, 1) * 0.5 + 0.5


def draw_scalp_hair(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """Close-cropped scalp hair (the roots under the hair's shells) above a hairline that wanders a little. With a
    planned style, its hairline, receding temples and thinning crown, where the hair shells put them (`scalp_density`,
    the same hairline noise), fading in more slowly than the shells so their sparse first strands show skin between
    them; or a shaved scalp's shadow. Without a planned style, men's thins with age."""
    hair = look.hair
    if hair is None:
        cover = ((maps.above_hairline + 0.4 * look.noise.medium(maps.points - 11.0)) / 0.5).clamp(0, 1)
        if look.male:
            cover = cover * (1 - 0.6 * look.aging * (maps.points[:, 1] > BALDING_ABOVE_CM).float())
    else:
        wander = hairline_wander(maps.points, hair, maps.box)
        cover = scalp_density(maps.points, maps.above_hairline, maps.scalp, where_hair_grows(hair), wander)
        cover = cover * (SHAVED_SHADOW if hair.style == "shaved" else 1.0 - hair.thinning * crown_mask(maps.points, maps.scalp))
        cover = cover**2
    cover = cover * (0.7 + 0.3 * look.hair_strokes)
    return torch.lerp(colour, (look.hair_srgb * 0.9).expand_as(colour), cover[:, None] * 0.95)


def draw_lash_line(colour: torch.Tensor, look: Look, maps: SkinMaps) -> torch.Tensor:
    """The lashes, as a dark line along the lid margins (the lash cards are not rendered)."""
    return torch.lerp(colour, (look.hair_srgb * 0.4 + 0.02).expand_as(colour), maps.lash_line[:, None])


SkinStep = Callable[[torch.Tensor, Look, SkinMaps], torch.Tensor]
SKIN_STEPS: tuple[SkinStep, ...] = (flush_with_blood, shade_eye_sockets, add_skin_texture, add_freckles, add_age_spots,
                                    darken_age_lines, draw_brows, draw_scalp_hair, draw_lash_line)


def paint_skin(look: Look, maps: SkinMaps) -> torch.Tensor:
    """(P, 3) colour of the skin texels: the base tone, then every step of SKIN_STEPS."""
    colour = torch.tensor(look.skin_srgb, dtype=torch.float32).expand(maps.points.shape[0], 3)
    for step in SKIN_STEPS:
        colour = step(colour, look, maps)
    return colour


# --- eyes and mouth -----------------------------------------------------------------------------------------------
IRIS_FIBRES = 64  # random brightness streaks around the iris
PUPIL_RADIUS = 0.33  # of the iris radius
LIMBUS_WIDTH = 0.08  # of the iris radius: the dark ring at the iris's edge
SCLERA_CORNER_SHADE = 0.22
SCLERA_CORNER_TINT = torch.tensor([1.0, 0.9, 0.88])


def paint_eyes(look: Look, eyes: EyeGeometry, eyeball: torch.Tensor) -> torch.Tensor:
    """(E, 3) colour of the eyeball texels (`eyeball`, (S, S) mask): radial iris fibres, a dark limbal ring, the
    pupil, an off-white sclera."""
    radial = eyes.radial[eyeball][:, None]
    angle = eyes.angle[eyeball]
    fibres = torch.from_numpy(look.rng.random(IRIS_FIBRES, dtype=np.float32))
    streak = fibres[((angle + math.pi) / (2 * math.pi) * IRIS_FIBRES).long().clamp(0, IRIS_FIBRES - 1)][:, None]
    iris = torch.tensor(IRIS_SRGB[look.plan.iris]) * (0.75 + 0.5 * streak) * (1.15 - 0.3 * radial)
    limbus = torch.exp(-0.5 * ((radial - 1.0) / LIMBUS_WIDTH) ** 2)
    iris = iris * (1 - 0.6 * limbus)
    # The white darkens and warms toward the eye's corners (it curves away from the light, and the blood vessels
    # and the caruncle's pink show there): by SCLERA_CORNER_SHADE at twice the iris's radius from its centre.
    toward_corner = ((radial - 1.2) / 1.3).clamp(0, 1)
    sclera = torch.tensor(SCLERA_SRGB) * (1 - SCLERA_CORNER_SHADE * toward_corner)
    sclera = torch.lerp(sclera, sclera * SCLERA_CORNER_TINT, toward_corner)
    sclera = torch.lerp(sclera, torch.tensor(SCLERA_SRGB) * 0.8, limbus * 0.3)
    colour = torch.where(radial < 1.0, iris, sclera)
    return torch.where(radial < PUPIL_RADIUS, torch.tensor(PUPIL_SRGB), colour)


def paint_mouth(look: Look, mouth: MouthMaps) -> torch.Tensor:
    """(M, 3) colour of the mouth texels: teeth (yellower with age), gums and tongue, a socket darker deeper in."""
    aging = look.aging
    tooth = torch.tensor(TEETH_SRGB) * torch.tensor([1.0, 1.0 - 0.05 * aging, 1.0 - 0.15 * aging])
    colour = torch.tensor(MOUTH_SRGB) * mouth.shade
    colour = torch.where(mouth.gums, torch.tensor(GUMS_SRGB) * mouth.shade.clamp(min=0.5), colour)
    return torch.where(mouth.teeth, tooth * (0.95 + 0.05 * look.noise.fine(mouth.points)[:, None]), colour)


class ProceduralTexturer(Texturer):
    """Skin tone, regional colour, noise, age lines, eyes, mouth and lash line from a few seeded numbers."""

    name = "procedural"
    version = 3  # 2: the sclera darkens toward the eye's corners; 3: brow hair in strokes along each brow

    def __init__(self, model: FaceModel, texture_size: int = 1024):
        super().__init__(model, texture_size)
        self.box = noise_box(model)
        self.regions = TexelRegions.of(model, self.atlas)
        self.gutter_source = gutter_sources(self.regions.covered, steps=max(2, texture_size // 128))
        self.eyes = eye_geometry(model, self.atlas)
        self.skin_maps = SkinMaps.build(model, self.atlas, self.regions.skin, self.box)
        self.mouth_maps = MouthMaps.build(model, self.atlas, self.regions)

    def texture(self, plan: Skin, demographics: Demographics, hair: Hair | None = None) -> Texture:
        look = Look.draw(plan, demographics, self.box, self.skin_maps.points, hair)
        size = self.texture_size
        colour = torch.zeros(size * size, 3)
        colour[self.skin_maps.texels] = paint_skin(look, self.skin_maps)
        colour[self.regions.eyeball.reshape(-1)] = paint_eyes(look, self.eyes, self.regions.eyeball)
        colour[self.regions.mouth.reshape(-1)] = paint_mouth(look, self.mouth_maps)
        image = colour.clamp(0, 1).index_select(0, self.gutter_source).view(size, size, 3)
        return Texture(image=image, parameters=self.parameters(look))

    def parameters(self, look: Look) -> dict:
        """What made the texture, for meta.json."""
        plan = look.plan
        return {
            "name": self.name, "version": self.version, "texture_size": self.texture_size,
            "skin_srgb": [round(float(c), 4) for c in look.skin_srgb], "hair_srgb": [round(float(c), 4) for c in look.hair_srgb],
            "iris_srgb": list(IRIS_SRGB[plan.iris]), "wrinkle_depth": round(look.aging, 4),
            "redness": plan.redness, "freckles": plan.freckles, "texture_seed": plan.texture_seed,
        }
