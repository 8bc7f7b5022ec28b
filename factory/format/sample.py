"""A sample's meta.json and images, checked: the one reader of them for verify, inspect, preview and the trainer.

    meta = read_meta("shards/shard-000003.tar: id-0000012", "id-0000012", members)   # a dict, or SampleError
    image = decode_image("… id-0000012.pain03.v1.jpg", members["pain03.v1.jpg"], KINDS["rgb"])   # a loaded PIL image

The schema (docs/DATA.md, "meta.json") checks the fields readers use, with bounded lists:
`id` (the sample's key), `demographics` (age, age_band, gender, ethnicity), `skin` (fitzpatrick, iris, hair),
`expressions` (1 … 101 of them: a planner name, `aus` valid for factory/spec, `pspi` equal to the PSPI of its
AUs) and `views` (1 … 32 of them, each named v0 … v31), names unique. Everything else meta.json holds (cameras,
landmarks, light, texture, generator, FLAME file records, and keys later versions add) is tolerated unread, in
any object: the format grows by adding keys, and the member's size limit (16 MiB) bounds what they can cost.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

from PIL import Image

from factory.errors import brief
from factory.format.members import EXPRESSION_NAME, FRAME_NAME, META, VIEW_NAME, MemberKind
from factory.format.shards import KEY_PATTERN, ShardError
from factory.spec.expressions import MAX_EXPRESSIONS
from factory.spec.labels import pspi
from factory.spec.plan import DEMOGRAPHIC_FIELDS, MAX_VIEWS
from factory.spec.sequence import MAX_FRAMES

MAX_TEXT = 100  # characters of a demographic or skin word ("middle_eastern")
FORMULA = "AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43"


class SampleError(ShardError):
    """A sample breaks the data contract: meta.json missing, not JSON or not matching its schema, labels that
    disagree with factory/spec, an image that does not decode or is larger than its kind. The message names
    shard, identity and, where there is one, the expression or member."""


def read_meta(where: str, key: str | None, members: Mapping[str, bytes]) -> dict:
    """The sample's meta.json, parsed and checked against the schema; `key` is the sample's key (None for a sample
    folder, whose id need only be an identity id). `where` names the sample in errors."""
    if META not in members:
        raise SampleError(f"{where}: {META} missing")
    try:
        meta = json.loads(members[META])
    except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than the parser's stack
        raise SampleError(f"{where}: {META} is not JSON ({brief(str(error), 120)})") from None
    if not isinstance(meta, dict):
        raise SampleError(f"{where}: {META} is a {type(meta).__name__}, not an object")
    identity = meta.get("id")
    if not (isinstance(identity, str) and KEY_PATTERN.match(identity) and identity == (key or identity)):
        raise SampleError(f"{where}: {META} is not this sample's (its id is {brief(identity)})")
    demographics = mapping(where, meta, "demographics")
    text(where, demographics, "demographics", DEMOGRAPHIC_FIELDS)
    integer(where, demographics, "demographics.age", "age", 0, 150)
    skin = mapping(where, meta, "skin")
    text(where, skin, "skin", ("iris", "hair"))
    integer(where, skin, "skin.fitzpatrick", "fitzpatrick", 1, 6)
    for expression in entries(where, meta, "expressions", MAX_EXPRESSIONS + 1, EXPRESSION_NAME):
        check_labels(f"{where}: {META} expression {expression['name']}", expression)
    entries(where, meta, "views", MAX_VIEWS, VIEW_NAME)
    if "frames" in meta:
        check_frames(where, meta)
    return meta


def check_frames(where: str, meta: dict) -> None:
    """A sequence dataset's `frames`: each named like pain03f05, of one of the sample's expressions, and labelled
    as an expression is (its rounded AUs valid, its PSPI theirs)."""
    expressions = {expression["name"] for expression in meta["expressions"]}
    for frame in entries(where, meta, "frames", MAX_FRAMES * MAX_EXPRESSIONS, FRAME_NAME):
        if frame.get("expression") not in expressions or not frame["name"].startswith(str(frame.get("expression"))):
            raise mistyped(where, f"frames {frame['name']}.expression", "the expression the frame belongs to", frame.get("expression"))
        check_labels(f"{where}: {META} frame {frame['name']}", frame)


def mistyped(where: str, name: str, expected: str, value: object) -> SampleError:
    return SampleError(f"{where}: {META} lacks or mistypes {name} (expected {expected}, got {brief(value)})")


def mapping(where: str, meta: dict, name: str) -> dict:
    value = meta.get(name)
    if not isinstance(value, dict):
        raise mistyped(where, name, "an object", value)
    return value


def text(where: str, data: dict, prefix: str, names: tuple[str, ...]) -> None:
    for name in names:
        value = data.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
            raise mistyped(where, f"{prefix}.{name}", f"a word of 1 to {MAX_TEXT} characters", value)


def integer(where: str, data: dict, label: str, name: str, low: int, high: int) -> None:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise mistyped(where, label, f"an integer from {low} to {high}", value)


def entries(where: str, meta: dict, name: str, most: int, pattern) -> list[dict]:
    """meta[name]: a list of 1 … `most` objects, each with a unique `name` matching `pattern`."""
    value = meta.get(name)
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        shown = f"a list of {len(value)}" if isinstance(value, list) else brief(value)
        raise SampleError(f"{where}: {META} lacks or mistypes {name} (expected a list of 1 to {most}, got {shown})")
    names = set()
    for number, entry in enumerate(value):
        entry_name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(entry_name, str) or not pattern.match(entry_name) or entry_name in names:
            raise mistyped(where, f"{name}[{number}]", f"an object with a unique name like {pattern.pattern}", entry)
        names.add(entry_name)
    return value


def check_labels(where: str, expression: dict) -> None:
    """The expression's AUs are valid for factory/spec (known, integers in range, so finite) and its PSPI equals
    the PSPI of its AUs."""
    aus, stated = expression.get("aus"), expression.get("pspi")
    if not isinstance(aus, dict):
        raise SampleError(f"{where}: aus must be a mapping of action units, got {brief(aus)}")
    try:
        computed = pspi(aus)
    except ValueError as error:
        raise SampleError(f"{where}: {brief(str(error), 200)}") from None
    if isinstance(stated, bool) or stated != computed:  # NaN equals nothing, a string no number
        raise SampleError(f"{where}: pspi {brief(stated)} differs from the PSPI of its AUs, {FORMULA} = {computed}")


def decode_image(where: str, payload: bytes, kind: MemberKind) -> Image.Image:
    """An image member of `kind` (members.KINDS), loaded, once its header's size is within the kind's `max_side`
    (checked before the pixels are decoded: a small file cannot declare a huge image). `where` names the member in
    errors; SampleError for anything that does not decode."""
    try:
        image = Image.open(io.BytesIO(payload))
        if max(image.size) > kind.max_side:
            raise ValueError(f"{image.width}×{image.height} pixels; a {kind.name} image has at most {kind.max_side} per side")
        image.load()
    except Exception as error:  # any decoder failure is a damaged member; say which and why
        raise SampleError(f"{where}: unreadable ({type(error).__name__}: {brief(str(error), 160)})") from None
    return image
