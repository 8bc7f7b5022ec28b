"""Draw a before/after figure: one identity's expressions rendered by an older checkout and by this one.

    python tools/before_after.py --before ../main --seed 3 --index 5 --out docs/images/before_after.png --palette

The older checkout renders with its own code (`python -m factory render-identity` with PYTHONPATH pointing at it,
so it needs no more than this checkout's dependencies). Its meta.json gives the identity (shape coefficients,
demographics, skin and expressions), which this checkout renders again with everything else drawn by its own
planner for that person (hair, light, room, cameras). Rows: before and after; columns: the frontal view of the
neutral and of the two strongest pain expressions, then the neutral from each side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.expressions import Expression  # noqa: E402
from factory.spec.hair import draw_hair  # noqa: E402
from factory.spec.plan import Demographics, IdentitySpec, Skin, plan_identity  # noqa: E402

LABEL_WIDTH = 90


def render_before(repository: Path, seed: int, index: int, size: int, folder: Path) -> dict:
    """The older checkout's render of the identity into `folder`; returns its meta.json."""
    environment = dict(os.environ, PYTHONPATH=f"{repository}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    subprocess.run([sys.executable, "-m", "factory", "render-identity", "--seed", str(seed), "--index", str(index),
                    "--image-size", str(size), "--out", str(folder)], check=True, env=environment, cwd=repository)
    return json.loads((folder / "meta.json").read_text())


def same_person(meta: dict, seed: int, index: int) -> IdentitySpec:
    """This checkout's plan of the identity, with the older render's person and expressions; hair drawn for them."""
    planned = plan_identity(index, seed)
    demographics = Demographics(**meta["demographics"])
    known = {field.name for field in dataclasses.fields(Skin)}
    skin = Skin(**{name: value for name, value in meta["skin"].items() if name in known})
    hair = draw_hair(np.random.default_rng([seed, index, 0xBEF0]), demographics.gender, demographics.age, 0.4)
    return dataclasses.replace(planned, demographics=demographics, identity=tuple(meta["identity"]), skin=skin,
                               expressions=tuple(Expression.from_dict(e) for e in meta["expressions"]), hair=hair)


def columns_of(spec: IdentitySpec) -> list[tuple[str, str]]:
    """(expression, view) of each column: the neutral, the two strongest pain expressions, both side views."""
    pain = sorted((e for e in spec.expressions if e.pspi > 0), key=lambda e: -e.pspi)[:2]
    frontal, right, left = (view.name for view in spec.views[:3])
    return [("neutral", frontal)] + [(e.name, frontal) for e in pain] + [("neutral", right), ("neutral", left)]


def figure(rows: list[tuple[str, list[np.ndarray]]], captions: list[str], thumb: int) -> Image.Image:
    sheet = Image.new("RGB", (LABEL_WIDTH + thumb * len(captions), 18 + thumb * len(rows)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, caption in enumerate(captions):
        draw.text((LABEL_WIDTH + c * thumb + 4, 3), caption, fill=(230, 230, 230))
    for r, (label, images) in enumerate(rows):
        draw.text((6, 18 + r * thumb + thumb // 2), label, fill=(230, 230, 230))
        for c, image in enumerate(images):
            sheet.paste(Image.fromarray(image).resize((thumb, thumb), Image.LANCZOS), (LABEL_WIDTH + c * thumb, 18 + r * thumb))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the older version (e.g. ../main)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--index", type=int, default=5)
    parser.add_argument("--size", type=int, default=512, help="render size of both")
    parser.add_argument("--thumb", type=int, default=256, help="cell size in the figure")
    parser.add_argument("--out", type=Path, default=Path("docs/images/before_after.png"))
    parser.add_argument("--palette", action="store_true", help="an 8-bit palette PNG (a third of the size, for docs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        meta = render_before(args.before.resolve(), args.seed, args.index, args.size, Path(scratch))
        spec = same_person(meta, args.seed, args.index)
        columns = columns_of(spec)
        before = [np.array(Image.open(Path(scratch) / f"{e}.{v}.jpg").convert("RGB")) for e, v in columns]
    layers = IdentityRenderer(RenderConfig(image_size=args.size)).render(spec)
    names = [e.name for e in spec.expressions]
    views = [v.name for v in spec.views]
    after = [layers["rgb"][names.index(e), views.index(v)] for e, v in columns]
    pspi = {e.name: e.pspi for e in spec.expressions}
    captions = [f"{e} {v} PSPI {pspi[e]}" for e, v in columns]
    sheet = figure([("before", before), ("after", after)], captions, args.thumb)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.palette:
        sheet = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}×{sheet.height}): {spec.id}, {spec.demographics}")


if __name__ == "__main__":
    main()
