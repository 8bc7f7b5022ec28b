"""Draw a pain sequence strip: the frames of one identity's strongest pain expression over time, frontal view,
each captioned with its time, PSPI and (where there is one) the blink's lid closure.

    python tools/make_sequence_strip.py --seed 0 --index 3 --frames 10 --out docs/images/sequence_strip.png

The identity is the planned one with its view replaced by a clean frontal camera (factory.spec.plan.frontal_view)
and its pain expressions cut to the strongest, so the strip shows the expression rise and decay, not the camera.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.plan import frontal_view, plan_identity  # noqa: E402
from factory.spec.sequence import SequenceConfig  # noqa: E402

CAPTION = 34  # pixels of caption under each frame


def strip(seed: int, index: int, frames: int, size: int) -> Image.Image:
    spec = plan_identity(index, seed)
    strongest = max(spec.expressions[1:], key=lambda e: (e.pspi, e.name))
    spec = dataclasses.replace(spec, views=(frontal_view(),), expressions=(spec.expressions[0], strongest))
    renderer = IdentityRenderer(RenderConfig(image_size=size, sequence=SequenceConfig(frames=frames)))
    layers = renderer.render(spec)
    meta = json.loads(renderer.encode_sample(spec, layers)["meta.json"])
    [(sequence, images)] = layers["sequences"]
    sheet = Image.new("RGB", (size * frames, size + CAPTION + 22), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), f"{spec.id} ({spec.demographics.age}, {spec.demographics.gender}), {strongest.name}: apex PSPI "
                      f"{strongest.pspi}; onset {sequence.onset_s:.2f} s, apex {sequence.apex_s:.2f} s, offset "
                      f"{sequence.offset_s:.2f} s, {sequence.fps:.2f} frames/s", fill="black")
    for k, frame in enumerate(meta["frames"]):
        sheet.paste(Image.fromarray(images["rgb"][k, 0]), (k * size, 22))
        caption = f"t {frame['time_s']:.2f} s\nPSPI {frame['pspi']}" + (f"  blink {frame['blink']:.1f}" if frame["blink"] else "")
        draw.multiline_text((k * size + 4, 22 + size + 2), caption, fill="black")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--out", type=Path, default=Path("docs/images/sequence_strip.png"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip(args.seed, args.index, args.frames, args.size).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
