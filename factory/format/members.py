"""The members of one sample (one identity), by name: the one place that spells them (docs/DATA.md), and the one
place that says which names exist and how large each kind may be.

    view_member("pain03", "v1")            → "pain03.v1.jpg"     the RGB render
    view_member("pain03", "v1", "depth")   → "pain03.v1.depth.png"
    view_member("pain03f05", "v1")         → "pain03f05.v1.jpg"  frame 5 of pain03's sequence
    heatmap_member("pain03")               → "pain03.heat.png"
    META, MESH_GLB, MESH, TEXTURE          → "meta.json", "mesh.glb", "mesh.obj", "texture.png"
    check_member("pain03.v1.jpg", 41_213)  → MemberKind "rgb"; MemberError for an unknown name or a size beyond its kind's
    member_set("pain03.v1.depth.png")      → "layers": the shard set that holds the member (below)

Shard sets: a sample's members are stored in three tars with the same keys and shard boundaries, grouped by use.
`images` holds what training reads (meta.json, the RGB views, the heatmaps), `layers` the per-view depth and
segmentation, `assets` the textured mesh (mesh.glb, or mesh.obj + texture.png). Every dataset has `images`.

A tar entry is the sample key, a dot, and the member name: `id-0000123.pain03.v1.jpg`. Every reader (shards,
sample folders) checks each member's name and size here before reading a byte of it, and the writer checks the
same, so the factory never writes a sample its readers refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from factory.errors import FactoryError

META = "meta.json"
MESH_GLB = "mesh.glb"  # binary glTF, the texture embedded as JPEG (factory/format/glb.py)
MESH = "mesh.obj"
TEXTURE = "texture.png"
IMAGES, LAYERS, ASSETS = "images", "layers", "assets"
SETS = (IMAGES, LAYERS, ASSETS)  # in this order in the manifest and on disk
MESH_FORMATS = ("glb", "obj")  # how the assets set stores the mesh: mesh.glb, or mesh.obj + texture.png
# Per-view layers: name → the member suffix after "{expression}.{view}".
VIEW_LAYERS = {"rgb": "jpg", "segmentation": "seg.png", "depth": "depth.png"}
IMAGE_EXTENSIONS = (".jpg", ".png")
# Names the planner gives (factory/spec): the neutral, pain00…pain99, neg00…neg99; views v0…v31 (MAX_VIEWS).
EXPRESSION_NAME = re.compile(r"^(neutral|pain\d{2}|neg\d{2})$")
VIEW_NAME = re.compile(r"^v\d{1,2}$")
# A frame of a pain expression's sequence (factory/spec/sequence.py): the expression's name, "f", the frame number.
FRAME_NAME = re.compile(r"^pain\d{2}f\d{2}$")
MiB = 1 << 20
# All the members of one sample together: what a reader holds in memory at once. A default sample (11 expressions ×
# 3 views at 512 px) is about 4 MB; the most the configs allow (101 expressions × 32 views at 4096 px) would not fit,
# and write_shard refuses it rather than write a sample no reader takes.
MAX_SAMPLE_BYTES = 1024 * MiB


class MemberError(FactoryError, ValueError):
    """A member whose name the format does not know, or that is larger than its kind may be."""


@dataclass(frozen=True)
class MemberKind:
    """What a member holds and its bounds: `max_bytes` encoded, `max_side` pixels per side (images only)."""

    name: str
    max_bytes: int
    max_side: int = 0  # 0: not an image


# Limits from the configs' maxima with room to spare: image_size <= 4096 (an RGB 4096² image is 48 MiB raw, JPEG
# and level-1 PNG stay below raw plus headers), texture_size <= 8192 (192 MiB raw), a FLAME or ICT mesh a few MB;
# meta.json at 101 expressions × 32 views with every 2D landmark is about 6 MB.
KINDS = {
    "meta": MemberKind("meta", 16 * MiB),
    "mesh": MemberKind("mesh", 64 * MiB),
    "glb": MemberKind("glb", 320 * MiB),  # the mesh and its texture as JPEG, less than both as OBJ + PNG
    "texture": MemberKind("texture", 256 * MiB, max_side=8192),
    "heatmap": MemberKind("heatmap", 64 * MiB, max_side=4096),
    **{layer: MemberKind(layer, 64 * MiB, max_side=4096) for layer in VIEW_LAYERS},
}
_VIEW_SUFFIXES = {suffix: layer for layer, suffix in VIEW_LAYERS.items()}


def view_member(expression: str, view: str, layer: str = "rgb") -> str:
    """The member holding `layer` ("rgb", "segmentation" or "depth") of one expression seen from one view."""
    try:
        suffix = VIEW_LAYERS[layer]
    except KeyError:
        raise ValueError(f"unknown view layer {layer!r}; known: {', '.join(VIEW_LAYERS)}") from None
    return f"{expression}.{view}.{suffix}"


def heatmap_member(expression: str) -> str:
    """The pain-region heatmap of a non-neutral expression (frontal view)."""
    return f"{expression}.heat.png"


def is_image(member: str) -> bool:
    return member.endswith(IMAGE_EXTENSIONS)


def member_kind(member: str) -> MemberKind | None:
    """The kind of a member name of docs/DATA.md, or None for a name the format does not have."""
    fixed = {META: "meta", MESH: "mesh", MESH_GLB: "glb", TEXTURE: "texture"}
    if member in fixed:
        return KINDS[fixed[member]]
    expression, _, rest = member.partition(".")
    if FRAME_NAME.match(expression):  # a frame has its views' layers, no heatmap
        rest = "" if rest == "heat.png" else rest
    elif not EXPRESSION_NAME.match(expression):
        return None
    elif rest == "heat.png":
        return KINDS["heatmap"]
    view, _, suffix = rest.partition(".")
    layer = _VIEW_SUFFIXES.get(suffix)
    return KINDS[layer] if layer and VIEW_NAME.match(view) else None


def check_member(member: str, size: int) -> MemberKind:
    """The member's kind, once its name is one of the format's and its `size` in bytes within the kind's limit."""
    kind = member_kind(member)
    if kind is None:
        raise MemberError(f"member {member!r} is not one of the format's (meta.json, mesh.glb, mesh.obj, texture.png, "
                          "{expression}.{view}.jpg|seg.png|depth.png, {expression}.heat.png, {expression}f{frame}.{view}.…; docs/DATA.md)")
    if size > kind.max_bytes:
        raise MemberError(f"member {member!r} is {size:,} bytes; a {kind.name} member holds at most {kind.max_bytes:,}")
    return kind


# Which shard set holds each kind of member.
SET_OF_KIND = {"meta": IMAGES, "rgb": IMAGES, "heatmap": IMAGES, "segmentation": LAYERS, "depth": LAYERS,
               "mesh": ASSETS, "texture": ASSETS, "glb": ASSETS}


def member_set(member: str) -> str:
    """The shard set a member of the format belongs in: its kind decides (an unknown name: ValueError)."""
    kind = member_kind(member)
    if kind is None:
        raise ValueError(f"member {member!r} is not one of the format's")
    return SET_OF_KIND[kind.name]
