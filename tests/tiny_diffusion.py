"""Tiny random-weight diffusion models, built from configs and saved as the folders real models come in.

    folders = save_tiny_models(tmp_path)     # TinyModels(texture, controlnet, background) folders
    factory generate --texturer diffusion --texture-model {folders.texture} --controlnet-model {folders.controlnet} …

`save_tiny_sdxl_models` does the same for the SDXL family (two text encoders, the UNet's size-and-crop conditioning).

The components are the real diffusers and transformers classes (UNet2DConditionModel, ControlNetModel, AutoencoderKL,
CLIPTextModel, CLIPTokenizer) at toy widths, as diffusers' own fast tests build them: a two-level UNet, a VAE that
halves once (so a 64 px image has 32 px latents), a two-layer CLIP text encoder, and a character-level CLIP tokenizer
whose vocabulary is written here. The folders hold what `save_pretrained` writes (model_index.json, configs,
safetensors), so loading goes through the same code as Stable Diffusion 1.5 from the Hub: only the sizes differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch

TINY_SIZE = 64  # image side the tiny models are used at (any multiple of 64 works)
CHANNELS = (16, 32)  # UNet and ControlNet block widths
TEXT_WIDTH = 32  # CLIP hidden size = the UNet's cross-attention width
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789,.-'()"


class TinyModels(NamedTuple):
    texture: Path  # a StableDiffusionPipeline folder (text-to-image, 4-channel UNet)
    controlnet: Path  # a ControlNetModel folder of the same family
    background: Path  # a StableDiffusionInpaintPipeline folder (9-channel UNet)


def planned_gradient(spec, size: int) -> torch.Tensor:
    """(size, size, 3) the plan's gradient background as the `gradient` choice draws it (what the rooms must not be)."""
    from factory.render.camera import Orbit, head_camera
    from factory.run.backgrounds import ViewContext, make_background

    camera = head_camera(Orbit(), size, torch.zeros(3), 10.0)
    return make_background("gradient", spec.background, ViewContext(torch.zeros(3), camera, spec.views[0])).image(camera)


def write_tokenizer(folder: Path):
    """A CLIP tokenizer over single characters: vocab.json (each character, and each as a word end "</w>") and an
    empty merges.txt, loaded back through CLIPTokenizer as a real one is."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in CHARACTERS:
        vocab[character] = len(vocab)
        vocab[character + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def unet_config(in_channels: int) -> dict:
    return dict(block_out_channels=CHANNELS, layers_per_block=1, sample_size=TINY_SIZE // 2, in_channels=in_channels,
                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT_WIDTH, norm_num_groups=8,
                attention_head_dim=4)


def tiny_components(tokenizer) -> dict:
    """The parts every Stable Diffusion pipeline shares (the UNet apart), seeded: the same weights every time."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=TEXT_WIDTH,
                                                intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                                vocab_size=len(tokenizer), projection_dim=TEXT_WIDTH))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler,
            "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def save_tiny_models(root: Path) -> TinyModels:
    from diffusers import ControlNetModel, StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel

    tokenizer = write_tokenizer(root / "tokenizer-source")
    folders = TinyModels(root / "texture", root / "controlnet", root / "background")
    torch.manual_seed(1)
    StableDiffusionPipeline(unet=UNet2DConditionModel(**unet_config(4)), **tiny_components(tokenizer)).save_pretrained(folders.texture)
    torch.manual_seed(2)
    controlnet = ControlNetModel(block_out_channels=CHANNELS, layers_per_block=1, in_channels=4, norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=TEXT_WIDTH,
                                 conditioning_embedding_out_channels=(8, 16), attention_head_dim=4)
    controlnet.save_pretrained(folders.controlnet)
    torch.manual_seed(3)
    StableDiffusionInpaintPipeline(unet=UNet2DConditionModel(**unet_config(9)), **tiny_components(tokenizer)).save_pretrained(folders.background)
    return folders


def save_tiny_sdxl_models(root: Path) -> tuple[Path, Path]:
    """(texture, controlnet) folders of the SDXL family: a StableDiffusionXLPipeline (its second text encoder has a
    projection, its UNet "text_time" conditioning) and a ControlNetModel of the same kind."""
    from diffusers import ControlNetModel, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tokenizer = write_tokenizer(root / "tokenizer-source")
    shared = {key: value for key, value in tiny_components(tokenizer).items()
              if key not in ("safety_checker", "feature_extractor", "requires_safety_checker")}
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=TEXT_WIDTH, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=len(tokenizer), projection_dim=TEXT_WIDTH))
    # The UNet attends to both encoders' features side by side, and adds the pooled text and 6 size/crop numbers.
    sdxl = dict(block_out_channels=CHANNELS, layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                cross_attention_dim=2 * TEXT_WIDTH, norm_num_groups=8, attention_head_dim=4, addition_embed_type="text_time",
                addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + TEXT_WIDTH, use_linear_projection=True)
    unet = UNet2DConditionModel(sample_size=TINY_SIZE // 2, in_channels=4, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **sdxl)
    texture, controlnet = root / "sdxl", root / "sdxl-controlnet"
    StableDiffusionXLPipeline(unet=unet, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer, **shared).save_pretrained(texture)
    ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 16), **sdxl).save_pretrained(controlnet)
    return texture, controlnet
