"""Texturers: an identity's skin, eyes, mouth and hair colours as one square UV texture.

    texturer = make_texturer("procedural", FaceModel.load(), texture_size=1024)
    texture = texturer.texture(spec.skin, spec.demographics)   # Texture(image (S, S, 3) in 0..1, parameters)

One module per piece:
- `base`: `Texture`, and the `Texturer` interface (a texturer owns a UV atlas and paints textures into it);
- `atlas`: `UVAtlas`, every rendered triangle packed into one square texture, and what each texel shows;
- `template`: where things are on the template face, per texel (regions, eye coordinates, landmark-placed maps);
- `palette`: reference colours (skin along the Fitzpatrick scale, hair, irises, teeth …);
- `fields`: scalar fields over the template (value noise, Gaussian bumps, distances, blur);
- `procedural`: `ProceduralTexturer`, which paints skin, eyes and mouth as a list of small steps.

- `projection`: back-projection of pictures of the mesh into the atlas, blended with a fill;
- `diffusion`: `DiffusionTexturer`, generated portraits (made by the diffusion stage) baked into the atlas.

`TEXTURERS` names the texturers.
"""

from __future__ import annotations

from factory.face.model import FaceModel
from factory.face.texture.base import Texture, Texturer
from factory.face.texture.diffusion import DiffusionTexturer
from factory.face.texture.procedural import ProceduralTexturer

TEXTURERS: dict[str, type[Texturer]] = {"procedural": ProceduralTexturer, "diffusion": DiffusionTexturer}

__all__ = ["TEXTURERS", "DiffusionTexturer", "ProceduralTexturer", "Texture", "Texturer", "make_texturer"]


def make_texturer(name: str, model: FaceModel, texture_size: int = 1024) -> Texturer:
    try:
        texturer_class = TEXTURERS[name]
    except KeyError:
        raise ValueError(f"unknown texturer {name!r}; known: {', '.join(sorted(TEXTURERS))}") from None
    return texturer_class(model, texture_size=texture_size)
