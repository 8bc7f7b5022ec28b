"""The `inpaint` background: a room painted around the head, once per identity and view, shared by its expressions.

    jobs = inpaint_jobs(renderer, spec, texture, settings)          # first pass: one InpaintJob per view
    painted = diffusion_models.inpaint(jobs)                        # on a GPU actor
    rooms = rooms_from(jobs, painted, image_size)                   # one (H, W, 3) background per view

First pass, per view: every expression's head (with its hair) is rasterized and their masks joined, the union is
dilated by `settings.dilation` of the image side, and the neutral expression is rendered over the plan's gradient in
the plan's light (a plain shading pass: the painting keeps only the room, so creases, shadows and lashes are left to
the final render). The model
keeps the (dilated) head and paints everything else from a seeded scene prompt. Because the kept region covers every
expression's head, one painting serves all of them: 3 inpaints per identity instead of 33, and the same view keeps
the same room. Where the head was, the room is continued from its surroundings (push-pull: averages of the painted
pixels at ever coarser scales), so the thin band one expression's silhouette leaves uncovered shows the room, not
the neutral head. The renderer then composites every expression over the room (`ImageBackground`), with its usual
antialiased silhouette.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from factory.diffusion.jobs import InpaintJob, job_seed
from factory.diffusion.settings import BackgroundDiffusion
from factory.face.texture import Texture
from factory.render.background import resize_image
from factory.render.layers import rgb_layer
from factory.render.mesh import Meshes
from factory.render.shading import UVTexture
from factory.run.identity import IdentityRenderer, light_of
from factory.spec.plan import IdentitySpec

SCENE_STREAM = 0x5CE7  # mixed with the dataset seed, identity and view: the rooms' random stream
LATENT_GRID = 64  # inpainting sizes are multiples of this (the VAE's 8 × the UNet's 3 halvings)


def inpaint_size(settings: BackgroundDiffusion, image_size: int) -> int:
    """The side the model paints at: the configured one, else the image size rounded to the latent grid."""
    return settings.size or max(LATENT_GRID, round(image_size / LATENT_GRID) * LATENT_GRID)


def scene_prompt(spec: IdentitySpec, settings: BackgroundDiffusion) -> str:
    """One scene per identity (every view shows the same kind of room), drawn from `settings.scenes`."""
    rng = np.random.default_rng([spec.seed, spec.index, SCENE_STREAM])
    scene = settings.scenes[int(rng.integers(len(settings.scenes)))]
    return f"{scene}, {settings.descriptors}" if settings.descriptors.strip() else scene


def scene_seeds(spec: IdentitySpec) -> list[int]:
    return [job_seed(spec.seed, spec.index, SCENE_STREAM, view) for view in range(len(spec.views))]


def inpaint_jobs(renderer: IdentityRenderer, spec: IdentitySpec, texture: Texture, settings: BackgroundDiffusion) -> list[InpaintJob]:
    """One job per planned view: the neutral head over the plan's gradient, and the region to paint (everything
    outside the dilated union of the view's expression masks), at `inpaint_size`."""
    meshes, hair, _ = renderer.dress(spec, renderer.pose(spec).verts)  # the head as rendered: face and hair shells
    scene = renderer.scene(spec, meshes, background="gradient")  # the room does not exist yet
    surface, light = UVTexture.from_srgb(texture.image.to(renderer.device)), light_of(spec.light)
    neutral = Meshes(meshes.verts[:1], meshes.faces, meshes.corner_uvs, meshes.face_part, normals=meshes.vertex_normals[:1])
    image_size, size = renderer.config.image_size, inpaint_size(settings, renderer.config.image_size)
    grow = max(1, round(settings.dilation * image_size)) if settings.dilation > 0 else 0
    prompt = scene_prompt(spec, settings)
    jobs = []
    for camera, background, seed in zip(scene.cameras, scene.backgrounds, scene_seeds(spec)):
        heads = (renderer.rasterizer(meshes, camera).pix_to_face[..., 0] >= 0).any(0)
        kept = dilate(heads, grow)
        image = renderer.renderer(neutral, camera, texture=surface, light=light, background=background, hair=hair).image[0]
        jobs.append(InpaintJob(prompt=prompt, negative_prompt=settings.negative_prompt, seed=seed,
                               image=rgb_layer(resize_image(image.cpu(), size)), mask=~resize_mask(kept.cpu(), size).numpy()))
    return jobs


def rooms_from(jobs: list[InpaintJob], painted: list[np.ndarray], image_size: int) -> tuple[np.ndarray, ...]:
    """The backgrounds (H, W, 3) uint8 at the image size: each painting with the kept head region refilled from the
    painted room around it."""
    rooms = []
    for job, picture in zip(jobs, painted):
        room = fill_from_surroundings(torch.from_numpy(picture).float() / 255, torch.from_numpy(job.mask))
        rooms.append(rgb_layer(resize_image(room, image_size)))
    return tuple(rooms)


def background_parameters(spec: IdentitySpec, settings: BackgroundDiffusion, image_size: int) -> dict:
    """What made the rooms, for meta.json's "background"."""
    return {"inpaint": {"model": settings.model, "prompt": scene_prompt(spec, settings), "negative_prompt": settings.negative_prompt,
                        "seeds": scene_seeds(spec), "scheduler": settings.scheduler, "steps": settings.steps,
                        "guidance": settings.guidance, "size": inpaint_size(settings, image_size),
                        "dilation_px": max(1, round(settings.dilation * image_size)) if settings.dilation > 0 else 0}}


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """(H, W) bool mask grown by `pixels` in every direction (a square neighbourhood: a row pass, then a column pass)."""
    if pixels <= 0:
        return mask
    grown = F.max_pool2d(mask.float()[None, None], (1, 2 * pixels + 1), stride=1, padding=(0, pixels))
    return F.max_pool2d(grown, (2 * pixels + 1, 1), stride=1, padding=(pixels, 0))[0, 0] > 0.5


def fill_from_surroundings(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) `image` with the pixels where `known` (H, W) is False painted by push-pull: the known pixels are
    averaged at ever coarser scales, and each unknown pixel takes the finest average that reaches it."""
    colour = (image * known[..., None]).permute(2, 0, 1)[None]
    weight = known.float()[None, None]
    levels = [(colour, weight)]
    while min(colour.shape[-2:]) > 1:
        colour, weight = F.avg_pool2d(colour, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True)
        levels.append((colour, weight))
    estimate = levels[-1][0] / levels[-1][1].clamp(min=1e-8)
    for colour, weight in reversed(levels[:-1]):
        coarser = F.interpolate(estimate, size=colour.shape[-2:], mode="bilinear", align_corners=False)
        estimate = torch.where(weight > 0, colour / weight.clamp(min=1e-8), coarser)
    return estimate[0].permute(1, 2, 0).clamp(0, 1)


def resize_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """(H, W) bool → (size, size): a pixel is set when any of the pixels it covers was (the kept head never shrinks)."""
    if mask.shape[0] == size:
        return mask
    area = F.interpolate(mask.float()[None, None], size=(size, size), mode="area" if size < mask.shape[0] else "nearest")
    return area[0, 0] > 0
