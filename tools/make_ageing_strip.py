"""Draw the ageing figure: the same planned identities at 30, 60 and 85 years, frontal and three-quarter neutral faces
and their strongest pain expression.

    python tools/make_ageing_strip.py --seed 0 --indices 6,9 --out docs/images/ageing.png

Everything of an identity but its age stays as planned (shape, skin, expressions, light, room); what depends on age
is drawn again for each age from one fixed stream per identity, so the three ages share their draws: the hair colour
(grey and white after 60), the hair style's thinning, and what the renderer derives from the age itself (creases,
age lines and spots, sparser brows, skin laxity: factory/face/ageing.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.hair import draw_hair  # noqa: E402
from factory.spec.plan import PlanConfig, draw_skin, frontal_view, plan_identity  # noqa: E402

AGES = (30, 60, 85)
AGEING_STREAM = 0xA6E  # the draws the ages share
HEADER = 20


def at_age(spec, age: int, seed: int):
    """`spec` at `age`: its age-dependent draws made again from the identity's fixed ageing stream."""
    d = dataclasses.replace(spec.demographics, age=age)
    hair_colour = draw_skin(np.random.default_rng([seed, spec.index, AGEING_STREAM]), d.ethnicity, age).hair
    hair = draw_hair(np.random.default_rng([seed, spec.index, AGEING_STREAM, 1]), d.gender, age, PlanConfig().facial_hair_rate)
    three_quarter = dataclasses.replace(frontal_view("v1"), yaw=-35.0)
    strongest = max(spec.expressions[1:], key=lambda e: (e.pspi, e.name))
    return dataclasses.replace(spec, demographics=d, skin=dataclasses.replace(spec.skin, hair=hair_colour), hair=hair,
                               views=(frontal_view(), three_quarter), expressions=(spec.expressions[0], strongest))


def figure(seed: int, indices: list[int], size: int) -> Image.Image:
    renderer = IdentityRenderer(RenderConfig(image_size=size))
    rows = []
    for index in indices:
        tiles = []
        for age in AGES:
            rgb = renderer.render(at_age(plan_identity(index, seed), age, seed))["rgb"]
            tiles += [rgb[0, 0], rgb[0, 1], rgb[1, 0]]  # neutral frontal, neutral three-quarter, pain frontal
        rows.append(np.concatenate(tiles, axis=1))
    sheet = Image.new("RGB", (rows[0].shape[1], HEADER + size * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, age in enumerate(AGES):
        draw.text((k * 3 * size + 4, 4), f"{age} years: neutral, three-quarter, strongest pain", fill="black")
    for r, row in enumerate(rows):
        sheet.paste(Image.fromarray(row), (0, HEADER + r * size))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--indices", default="6,9")
    parser.add_argument("--size", type=int, default=176)
    parser.add_argument("--out", type=Path, default=Path("docs/images/ageing.png"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure(args.seed, [int(i) for i in args.indices.split(",")], args.size).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
