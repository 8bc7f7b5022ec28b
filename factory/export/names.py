"""The names of the published 3DPain dataset and of the official ViTPain training code (TaatiTeam/Pain-in-3D).

    identity_name(123)                        → "flame_sample_0123"   (whatever face model made it, as in 3DPain)
    expression_names(meta)                    → {"pain00": "flame_sample_0123_pain_1", …, "neutral": "flame_sample_0123_neutral"}
    image_name("flame_sample_0123_pain_1", 2) → "flame_sample_0123_pain_1_textured_view_002_inpainted.jpg"
    annotation_name("flame_sample_0123_pain_1") → "flame_sample_0123_pain_1_annotations.json"
    annotation(expression)                    → {"AU4": 3, "AU6": 2, …, "PSPI": 8}   integers only

Non-neutral expressions are numbered from 1 in meta.json order: pain00 … pain09 are pain_1 … pain_10, and hard
negatives (neg00 …, PSPI 0) continue the numbering after the pain expressions. The official loader strips
"_textured_view_" and what follows from an image name to find its annotation, and "_neutral" to find the identity
of a neutral reference, so these names are what it pairs.
"""

from __future__ import annotations

from factory.spec.expressions import NEUTRAL
from factory.spec.labels import PSPI_AUS, RIG_AUS, pspi


def identity_name(index: int) -> str:
    return f"flame_sample_{index:04d}"


def expression_names(meta: dict) -> dict[str, str]:
    """meta.json expression name → its 3DPain base name, for every expression of the identity."""
    base = identity_name(meta["index"])
    names, number = {}, 0
    for expression in meta["expressions"]:
        if expression["name"] == NEUTRAL:
            names[NEUTRAL] = f"{base}_neutral"
        else:
            number += 1
            names[expression["name"]] = f"{base}_pain_{number}"
    return names


def image_name(base: str, view_index: int) -> str:
    return f"{base}_textured_view_{view_index:03d}_inpainted.jpg"


def annotation_name(base: str) -> str:
    return f"{base}_annotations.json"


def heatmap_name(base: str) -> str:
    return f"{base}_heatmap.png"


def annotation(expression: dict) -> dict[str, int]:
    """An expression's 3DPain annotation: the six PSPI AUs (zeros included), every other AU that was set, and the
    PSPI, all integers. The PSPI is recomputed from the AUs and must equal the one stated (else ValueError)."""
    aus = expression["aus"]
    computed = pspi(aus)  # validates every AU: known, an integer in range
    if expression["pspi"] != computed:
        raise ValueError(f"{expression['name']}: pspi {expression['pspi']!r} differs from the PSPI of its AUs ({computed})")
    labels = {au: int(aus.get(au, 0)) for au in PSPI_AUS}
    labels |= {au: int(aus[au]) for au in RIG_AUS if au in aus and au not in PSPI_AUS}
    return labels | {"PSPI": computed}
