"""The `diffusion` texturer (the paper's path): a generated portrait of the neutral face, baked into the UV atlas.

    texturer = DiffusionTexturer(FaceModel.load(), texture_size=1024)
    jobs = texturer.portrait_jobs(spec.skin, spec.demographics, neutral, settings)   # depth + prompt + seed per view
    portraits = diffusion_models.portraits(jobs)                                      # on a GPU actor, elsewhere
    texture = texturer.bake(spec.skin, spec.demographics, spec.hair, neutral, portraits, settings)

1. Cameras: one per `settings.view_yaws` (frontal by default), framing the neutral face as the renderer does.
2. Depth: the neutral mesh rasterized by each camera; its inverse depth, normalised over the face (near bright,
   background black), is the ControlNet-depth condition, so the portrait's face lands where the mesh's face is.
3. Prompt: the identity's age, gender, ethnicity, skin tone, hair and eye colour, then `settings.descriptors`.
4. Bake (factory/face/texture/projection.py): each portrait is projected through its camera onto the skin texels the
   view sees, weighted by how squarely they face it; the rest of the head, the eyes and the mouth come from the
   procedural texture of the same plan, its skin tone matched to the portrait's, blended across the seam.

The diffusion itself runs elsewhere (factory/diffusion/pipelines.py, on Ray actors: factory/run/diffusion.py), so a
texturer needs no weights and the render workers need no GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from factory.diffusion.jobs import PortraitJob, job_seed
from factory.diffusion.settings import TextureDiffusion
from factory.errors import FactoryError
from factory.face.model import FaceModel
from factory.face.texture.base import Texture, Texturer
from factory.face.texture.procedural import ProceduralTexturer
from factory.face.texture.projection import TexelSurface, blend_with_fill, match_colour, project_views
from factory.render.camera import Camera, Orbit, bounding_sphere, head_camera
from factory.render.raster import rasterize
from factory.spec.plan import Demographics, Hair, Skin

PORTRAIT_STREAM = 0xD1FF  # mixed with the plan's texture_seed and the view: the portraits' random stream
DEPTH_FLOOR = 0.25  # the farthest visible point of the face gets this brightness, the background 0
ETHNICITY_WORDS = {"white": "white", "black": "Black", "east_asian": "East Asian", "south_asian": "South Asian",
                   "hispanic_latino": "Hispanic", "middle_eastern": "Middle Eastern"}
SKIN_WORDS = {1: "very fair", 2: "fair", 3: "light olive", 4: "olive", 5: "brown", 6: "dark brown"}  # by Fitzpatrick type
PERSON_WORDS = {"female": "woman", "male": "man"}


class DiffusionTexturer(Texturer):
    """Bakes generated portraits into the atlas; what the views cannot see comes from the procedural texturer."""

    name = "diffusion"
    version = 1

    def __init__(self, model: FaceModel, texture_size: int = 1024):
        # The fill shares its atlas (the base class would build a second, identical one).
        self.fill = ProceduralTexturer(model, texture_size)
        self.model, self.texture_size, self.atlas = model, texture_size, self.fill.atlas
        self.surface = TexelSurface.of(self.atlas)

    def texture(self, plan: Skin, demographics: Demographics, hair: Hair | None = None) -> Texture:
        raise FactoryError("the diffusion texturer bakes portraits made by the diffusion stage: run it through "
                           "`factory generate` or `factory render-identity` with --texturer diffusion and the model flags")

    def cameras(self, neutral: torch.Tensor, settings: TextureDiffusion) -> list[Camera]:
        """One camera per portrait view, framing the neutral face (V, 3) as the renderer frames it."""
        centre, radius = bounding_sphere(neutral[self.model.layout.framed])
        return [head_camera(Orbit(yaw=yaw, distance_scale=settings.framing), settings.size, centre, radius)
                for yaw in settings.view_yaws]

    def portrait_jobs(self, plan: Skin, demographics: Demographics, neutral: torch.Tensor,
                      settings: TextureDiffusion) -> list[PortraitJob]:
        """One job per portrait view: the depth of the neutral face (V, 3), the demographic prompt and a seed."""
        prompt = portrait_prompt(plan, demographics, settings.descriptors)
        neutral = neutral.float().cpu()
        return [PortraitJob(prompt=prompt, negative_prompt=settings.negative_prompt, seed=seed,
                            depth=depth_condition(rasterize(neutral[None], self.atlas.faces, camera, backend="torch").zbuf[0, ..., 0]))
                for camera, seed in zip(self.cameras(neutral, settings), portrait_seeds(plan, settings))]

    def bake(self, plan: Skin, demographics: Demographics, hair: Hair | None, neutral: torch.Tensor,
             portraits: Sequence[np.ndarray], settings: TextureDiffusion) -> Texture:
        """The texture: `portraits` ((S, S, 3) uint8, one per view, made from `portrait_jobs`) projected onto the skin
        of the neutral face (V, 3), the procedural texture of the same plan (and hair) everywhere else."""
        if len(portraits) != len(settings.view_yaws):
            raise ValueError(f"got {len(portraits)} portraits for {len(settings.view_yaws)} portrait views")
        neutral = neutral.float().cpu()
        fill = self.fill.texture(plan, demographics, hair)
        views = [(camera, torch.from_numpy(np.asarray(portrait)).float() / 255)
                 for camera, portrait in zip(self.cameras(neutral, settings), portraits)]
        skin = self.fill.regions.skin
        projection = project_views(self.surface, neutral, views, region=skin)
        fill_image, gains = match_colour(fill.image, projection, skin)
        image, alpha = blend_with_fill(self.surface, projection, fill_image)
        size = self.texture_size
        image = image.clamp(0, 1).reshape(-1, 3).index_select(0, self.fill.gutter_source).view(size, size, 3)
        seen = float((alpha[skin] > 0.5).float().mean())
        return Texture(image=image, parameters=self.parameters(plan, demographics, settings, gains, seen, fill.parameters))

    def parameters(self, plan: Skin, demographics: Demographics, settings: TextureDiffusion, gains: list[float],
                   seen: float, fill: dict) -> dict:
        """What made the texture, for meta.json: prompts, models, seeds and sampler, and how much the portraits cover."""
        return {
            "name": self.name, "version": self.version, "texture_size": self.texture_size,
            "prompt": portrait_prompt(plan, demographics, settings.descriptors), "negative_prompt": settings.negative_prompt,
            "models": {"texture": settings.model, "controlnet": settings.controlnet}, "seeds": portrait_seeds(plan, settings),
            "scheduler": settings.scheduler, "steps": settings.steps, "guidance": settings.guidance,
            "controlnet_scale": settings.controlnet_scale, "portrait_size": settings.size,
            "view_yaws": list(settings.view_yaws), "framing": settings.framing,
            "skin_from_portraits": round(seen, 4), "fill_gain": gains, "fill": fill,
        }


def portrait_prompt(plan: Skin, demographics: Demographics, descriptors: str) -> str:
    person = PERSON_WORDS.get(demographics.gender, "person")
    ethnicity = ETHNICITY_WORDS.get(demographics.ethnicity, demographics.ethnicity.replace("_", " "))
    hair, iris = plan.hair.replace("_", " "), plan.iris.replace("_", " ")
    prompt = (f"a {demographics.age}-year-old {ethnicity} {person}, {SKIN_WORDS.get(plan.fitzpatrick, 'medium')} skin, "
              f"short {hair} hair, {iris} eyes")
    return f"{prompt}, {descriptors}" if descriptors.strip() else prompt


def portrait_seeds(plan: Skin, settings: TextureDiffusion) -> list[int]:
    return [job_seed(plan.texture_seed, PORTRAIT_STREAM, view) for view in range(len(settings.view_yaws))]


def depth_condition(zbuf: torch.Tensor) -> np.ndarray:
    """(S, S) uint8 ControlNet-depth image of a z-buffer (S, S) (-1 where empty): inverse depth normalised over the
    covered pixels, from DEPTH_FLOOR (farthest) to 1 (nearest), as MiDaS-style depth maps show a portrait."""
    covered = zbuf > 0
    if not bool(covered.any()):
        return np.zeros(tuple(zbuf.shape), np.uint8)
    inverse = torch.where(covered, 1 / zbuf.clamp(min=1e-6), 0.0)
    near, far = inverse[covered].max(), inverse[covered].min()
    value = DEPTH_FLOOR + (1 - DEPTH_FLOOR) * (inverse - far) / (near - far).clamp(min=1e-12)
    return (torch.where(covered, value, 0.0) * 255 + 0.5).to(torch.uint8).numpy()
