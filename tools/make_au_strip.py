"""Draw docs/images/au_strip.png: each PSPI AU alone at levels 0–5 on one identity, frontal, 512 px renders.

    python tools/make_au_strip.py [--seed 0 --index 2] [--size 512] [--out docs/images/au_strip.png]

Rows are AU4, AU6, AU7, AU9, AU10 (levels 0 … 5, FACS none, A trace … E maximum) and AU43 (0, 1); every cell is
the same identity, light and camera, cropped at full resolution to the face between the brows' top and the chin,
so the creases show as the dataset has them. Written as an 8-bit palette PNG (`factory.qa.preview.to_palette`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.qa.preview import to_palette  # noqa: E402
from factory.qa.visibility import sweep_expressions  # noqa: E402
from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.labels import AU_NAMES, PSPI_AUS, max_intensity  # noqa: E402
from factory.spec.plan import frontal_view, plan_identity  # noqa: E402

LEVEL_NAMES = ("0 none", "1 A trace", "2 B slight", "3 C marked", "4 D severe", "5 E maximum")
LABEL_WIDTH, HEADER_HEIGHT = 150, 22
FACE_LANDMARKS = list(range(0, 27))  # jaw line and brows: the crop spans the face


def render_sweep(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X, H, W, 3) frontal renders of the sweep expressions, (68, 2) neutral landmarks, expression names."""
    renderer = IdentityRenderer(RenderConfig(image_size=size, texture_size=1024, backend="torch"))
    spec = plan_identity(index, seed=seed)
    expressions = sweep_expressions()
    spec = dataclasses.replace(spec, expressions=expressions, views=(frontal_view(),))
    layers = renderer.render(spec)
    return layers["rgb"][:, 0], layers["landmarks_2d"][0, 0], [e.name for e in expressions]


def crop_box(landmarks: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the face from above the brows to below the chin, a little margin aside."""
    points = landmarks[FACE_LANDMARKS]
    low, high = points.min(axis=0), points.max(axis=0)
    span = high - low
    top, bottom = int(low[1] - 0.22 * span[1]), int(high[1] + 0.03 * span[1])
    left, right = int(low[0] - 0.04 * span[0]), int(high[0] + 0.04 * span[0])
    return max(top, 0), min(bottom, size), max(left, 0), min(right, size)


def strip(images: np.ndarray, landmarks: np.ndarray, names: list[str], caption: str) -> Image.Image:
    top, bottom, left, right = crop_box(landmarks, images.shape[1])
    cell_w, cell_h = right - left, bottom - top
    sheet = Image.new("RGB", (LABEL_WIDTH + 6 * cell_w, 2 * HEADER_HEIGHT + len(PSPI_AUS) * cell_h), (24, 24, 24))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    draw.text((4, 5), caption, fill=(235, 235, 235), font=font)
    for level, name in enumerate(LEVEL_NAMES):
        draw.text((LABEL_WIDTH + level * cell_w + 6, HEADER_HEIGHT + 5), name, fill=(235, 235, 235), font=font)
    for row, au in enumerate(PSPI_AUS):
        y = 2 * HEADER_HEIGHT + row * cell_h
        draw.multiline_text((6, y + 8), f"{au}\n{AU_NAMES[au]}", fill=(235, 235, 235), font=font, spacing=3)
        for level in range(max_intensity(au) + 1):
            image = images[names.index(f"{au}_{level}") if level else 0]
            sheet.paste(Image.fromarray(image[top:bottom, left:right]), (LABEL_WIDTH + level * cell_w, y))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("docs/images/au_strip.png"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    images, landmarks, names = render_sweep(args.seed, args.index, args.size)
    spec = plan_identity(args.index, seed=args.seed)
    d = spec.demographics
    caption = (f"{spec.id} (seed {args.seed}): {d.gender}, {d.age}, {d.ethnicity}; each PSPI AU alone, frontal, "
               f"{args.size} px renders cropped at full resolution")
    sheet = to_palette(strip(images, landmarks, names, caption))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, format="PNG", optimize=True)
    print(f"wrote {args.out} ({sheet.width}×{sheet.height}, {args.out.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
