"""The members of one sample (one identity), by name: the one place that spells them (docs/DATA.md).

    view_member("pain03", "v1")            → "pain03.v1.jpg"     the RGB render
    view_member("pain03", "v1", "depth")   → "pain03.v1.depth.png"
    heatmap_member("pain03")               → "pain03.heat.png"
    META, MESH, TEXTURE                    → "meta.json", "mesh.obj", "texture.png"

A tar entry is the sample key, a dot, and the member name: `id-0000123.pain03.v1.jpg`.
"""

from __future__ import annotations

META = "meta.json"
MESH = "mesh.obj"
TEXTURE = "texture.png"
# Per-view layers: name → the member suffix after "{expression}.{view}".
VIEW_LAYERS = {"rgb": "jpg", "segmentation": "seg.png", "depth": "depth.png"}
IMAGE_EXTENSIONS = (".jpg", ".png")


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
