"""Contact sheets: look at what the factory made.

    sheet = contact_sheet(read_sample_folders(Path("out/id-0000000")), max_identities=4)
    sheet.save("sheet.png")

Per identity: a caption line (id, demographics, skin, and the texturer and background that made it, from
meta.json's "generator"), then one row per expression (neutral first) with a caption
cell (name, PSPI and the AUs that are set), one cell per view and the heatmap last (black for the neutral).
Input is any iterable of (where, key, members) samples: dicts of member name → bytes, as
`IdentityRenderer.encode_sample` returns them, so a folder written by `factory render-identity` and a dataset shard
read the same way, each meta.json and image checked by factory/format/sample.py. A sheet is at most
MAX_SHEET_PIXELS: a meta.json cannot make it allocate more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from factory.errors import FactoryError
from factory.format.dataset import Dataset
from factory.format.members import META, MemberError, check_member, heatmap_member, member_kind, view_member
from factory.format.sample import decode_image, read_meta


class PreviewError(FactoryError, ValueError):
    """Nothing to draw, or a sheet that cannot be drawn; the message says why."""

CAPTION_WIDTH = 150  # px of the caption cell left of each row
HEADER_HEIGHT = 18  # px of the caption line above each identity
MAX_THUMB = 1024  # px per cell
MAX_IDENTITIES = 64  # samples held at once to draw them
MAX_SHEET_PIXELS = 64 << 20  # 192 MiB of RGB; the default sheet (4 identities × 11 rows of 160 px) is 5.5 million
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


def sheet_size(identities: list[tuple[int, int]], thumb: int) -> tuple[int, int]:
    """(width, height) of a sheet of identities given as (expressions, views) each."""
    columns = max(views for _, views in identities) + 1  # + the heatmap
    height = sum(HEADER_HEIGHT + rows * thumb for rows, _ in identities)
    return CAPTION_WIDTH + columns * thumb, height


def contact_sheet(samples: Iterable[tuple[str, str | None, dict[str, bytes]]], max_identities: int = 4, thumb: int = 160) -> Image.Image:
    """One PNG-ready image of up to `max_identities` samples, `thumb` px per cell. A sample is (where it is from,
    its key or None for a sample folder, its members)."""
    if not 1 <= max_identities <= MAX_IDENTITIES or not 16 <= thumb <= MAX_THUMB:
        raise PreviewError(f"max_identities must be 1..{MAX_IDENTITIES} and thumb 16..{MAX_THUMB}, got {max_identities} and {thumb}")
    chosen = [(where, members, read_meta(where, key, members)) for where, key, members in islice(samples, max_identities)]
    if not chosen:
        raise PreviewError("no samples to preview (is the source empty?)")
    width, height = sheet_size([(len(meta["expressions"]), len(meta["views"])) for _, _, meta in chosen], thumb)
    if width * height > MAX_SHEET_PIXELS:
        raise PreviewError(f"a sheet of {width}×{height} pixels is more than {MAX_SHEET_PIXELS:,}: "
                           "ask for fewer identities (--max-identities) or smaller cells (--thumb)")
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    top = 0
    for where, members, meta in chosen:
        draw.text((4, top + 3), identity_caption(meta), fill=TEXT, font=font)
        top += HEADER_HEIGHT
        for expression in meta["expressions"]:
            draw.multiline_text((4, top + 4), expression_caption(expression), fill=TEXT, font=font, spacing=2)
            cells = [view_member(expression["name"], view["name"]) for view in meta["views"]]
            cells.append(heatmap_member(expression["name"]))
            for column, member in enumerate(cells):
                if member in members:
                    picture = decode_image(f"{where}.{member}", members[member], member_kind(member)).convert("RGB").resize((thumb, thumb), Image.BILINEAR)
                    sheet.paste(picture, (CAPTION_WIDTH + column * thumb, top))
            top += thumb
    return sheet


def to_palette(image: Image.Image) -> Image.Image:
    """An 8-bit palette copy of an RGB image (median cut, no dithering): about a third of the PNG's size, for docs."""
    return image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def identity_caption(meta: dict) -> str:
    d, skin = meta["demographics"], meta["skin"]
    return (f"{meta['id']}  [{made_by(meta)}]  {d['gender']}, {d['age']} ({d['age_band']}), {d['ethnicity']}  "
            f"Fitzpatrick {skin['fitzpatrick']}, iris {skin['iris']}, hair {skin['hair']}")


def made_by(meta: dict) -> str:
    """Which texturer and background made the identity, from meta.json's "generator" record. The schema leaves that
    record unchecked (factory/format/sample.py), so anything but text reads as unknown."""
    generator = meta.get("generator")
    generator = generator if isinstance(generator, dict) else {}
    texturer, background = (value if isinstance(value, str) else "?" for value in (generator.get("texturer"), generator.get("background")))
    return f"{texturer} texture, {background} background"


def expression_caption(expression: dict) -> str:
    """Name and PSPI, then the AUs that are set, three to a line."""
    ordered = sorted(expression["aus"].items(), key=lambda item: int(item[0][2:]))  # AU4 before AU10
    active = [f"{au}={value}" for au, value in ordered if value]
    lines = [f"{expression['name']}  PSPI {expression['pspi']}"]
    lines += ["  ".join(active[k : k + 3]) for k in range(0, len(active), 3)] or ["(no AUs)"]
    return "\n".join(lines)


def read_sample_folder(folder: Path) -> dict[str, bytes]:
    """A sample written by `factory render-identity`: one file per member, named as the member, each checked against
    the format (name and size) before it is read; hidden files (a render's partial files) are left out."""
    members = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            check_member(path.name, path.stat().st_size)
        except MemberError as error:
            raise PreviewError(f"{folder}: {error}") from None
        members[path.name] = path.read_bytes()
    return members


def read_sample_folders(source: Path) -> Iterator[tuple[str, None, dict[str, bytes]]]:
    """`source` is one sample folder (it holds meta.json) or a folder of them, read in name order: (folder, None,
    members) per sample, as contact_sheet takes them."""
    if not source.is_dir():
        raise PreviewError(f"{source} is not a folder")
    if (source / META).is_file():
        yield str(source), None, read_sample_folder(source)
        return
    folders = [child for child in sorted(source.iterdir()) if (child / META).is_file()]
    if not folders:
        raise PreviewError(f"{source} holds no {META} and no sample folders with one")
    for folder in folders:
        yield str(folder), None, read_sample_folder(folder)


def dataset_samples(dataset: Dataset) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """A dataset's samples as contact_sheet takes them, shard by shard (only as many shards are read as are drawn)."""
    for record in dataset.manifest.shards:
        for key, members in dataset.shard_samples(record):
            yield f"{record.path}: {key}", key, members
