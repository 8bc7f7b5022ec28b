"""Diffusion weights: found in a local folder or the Hugging Face cache, never downloaded at run time.

    model = find_model("stable-diffusion-v1-5/stable-diffusion-v1-5", TEXTURE)   # → CheckedModel(path, family, …)
    fetch_model("stable-diffusion-v1-5/stable-diffusion-v1-5", TEXTURE)           # `factory fetch-models`, needs network

A model is given as a folder (anything that exists on disk) or a Hugging Face id (`owner/name`), which is looked up
in the HF cache only (HF_HOME / HF_HUB_CACHE; `HF_HUB_OFFLINE=1` is fine). `find_model` also checks, from the
folder's JSON configs and the safetensors headers alone (no weights are loaded), that the model is of the kind
its role needs, so a missing, corrupt or wrong model is refused with one line naming it, before a run writes
anything:

- texture: a Stable Diffusion text-to-image pipeline (model_index.json; SD 1.x/2.x, or SDXL when it has a second
  text encoder) whose UNet takes 4 latent channels;
- controlnet: a ControlNetModel (config.json) of the texture model's family (same cross-attention width);
- background: an inpainting pipeline, whose UNet takes 9 channels (latents, mask, masked-image latents).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from factory.errors import FactoryError

TEXTURE, CONTROLNET, BACKGROUND = "texture", "controlnet", "background"
ROLES = {  # role → (what it is called in messages, the generate flag that sets it, the fetch-models flag)
    TEXTURE: ("texture model", "--texture-model", "--texture"),
    CONTROLNET: ("controlnet model", "--controlnet-model", "--controlnet"),
    BACKGROUND: ("background model", "--background-model", "--background"),
}
PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")  # what every SD pipeline folder holds
WEIGHTED_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
FP16_WEIGHT_FILES = tuple(name.replace(".safetensors", ".fp16.safetensors") for name in WEIGHT_FILES)
# What `fetch_model` downloads: configs, tokenizers and the safetensors weights of the parts a pipeline loads (the
# safety checker, single-file checkpoints at the top level, EMA and .bin copies are left on the Hub).
FETCH_PATTERNS = {
    TEXTURE: ["model_index.json", "*/*.json", "*/*.txt", "unet/diffusion_pytorch_model.safetensors",
              "vae/diffusion_pytorch_model.safetensors", "text_encoder*/model.safetensors"],
    CONTROLNET: ["config.json", "diffusion_pytorch_model.safetensors"],
}
FETCH_PATTERNS[BACKGROUND] = FETCH_PATTERNS[TEXTURE]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PROBE_TIMEOUT_S = 10.0


class ModelError(FactoryError, ValueError):
    """A model is missing, damaged or of the wrong kind; the message names it and says how to get it."""


@dataclass(frozen=True)
class CheckedModel:
    given: str  # as the user wrote it: a folder or an HF id (what meta.json records)
    role: str
    path: Path  # the folder to load from
    family: str  # "sd" (Stable Diffusion 1.x/2.x) or "sdxl"
    cross_attention_dim: int  # width of the text features the UNet attends to: tells families apart
    variant: str | None  # None: full-precision weight files; "fp16": only the fp16 variant is there


def find_model(given: str, role: str) -> CheckedModel:
    """The model `given` for `role`, located and checked; ModelError saying what is wrong otherwise."""
    path = locate(given, role)
    if role == CONTROLNET:
        return check_controlnet(given, path)
    return check_pipeline(given, role, path)


def locate(given: str, role: str) -> Path:
    """The folder of `given`: itself when it exists on disk, else its snapshot in the Hugging Face cache."""
    what, flag, _ = ROLES[role]
    folder = Path(given).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise ModelError(f"{what} {given} is a file, not a model folder; pass the folder that holds its configs ({flag})")
    if not HUB_ID.match(given):
        raise ModelError(f"{what} {given}: no such folder ({flag} takes a local model folder or a Hugging Face id)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(given, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelError(f"{what} {given} is neither a folder nor in the Hugging Face cache ({hub_cache()}); "
                         f"{fetch_hint(given, role)}") from None


def fetch_hint(given: str, role: str) -> str:
    return (f"fetch it with `factory fetch-models {ROLES[role][2]} {given}` on a machine with network (and copy the cache "
            "here, or share it), or pass a local folder")


def check_pipeline(given: str, role: str, path: Path) -> CheckedModel:
    what = ROLES[role][0]
    if not (path / "model_index.json").is_file() and (path / "config.json").is_file():
        kind = read_json(path / "config.json", f"{what} {given}").get("_class_name", "a single model")
        raise ModelError(f"{what} {given} is {kind}, not a diffusers pipeline folder (model_index.json)")
    index = read_json(path / "model_index.json", f"{what} {given}", missing="it holds no model_index.json")
    missing = [part for part in PIPELINE_PARTS if part not in index]
    if missing or "StableDiffusion" not in str(index.get("_class_name", "")):
        raise ModelError(f"{what} {given} is a {index.get('_class_name', 'pipeline')} without "
                         f"{', '.join(missing) or 'a Stable Diffusion UNet'}: not a Stable Diffusion pipeline")
    unet = read_json(path / "unet" / "config.json", f"{what} {given}")
    channels = unet.get("in_channels")
    if role == BACKGROUND and channels != 9:
        raise ModelError(f"{what} {given} is not an inpainting model: its UNet takes {channels} input channels, an "
                         "inpainting UNet 9 (latents, mask, masked image); use e.g. stable-diffusion-v1-5/stable-diffusion-inpainting")
    if role == TEXTURE and channels != 4:
        raise ModelError(f"{what} {given} is not a text-to-image model: its UNet takes {channels} input channels, not 4"
                         + (" (an inpainting model: use it as --background-model)" if channels == 9 else ""))
    parts = [part for part in WEIGHTED_PARTS if part in index]
    variants = {check_weights(path / part, f"{what} {given}") for part in parts}
    for part in ("tokenizer", "tokenizer_2", "scheduler", "vae", "text_encoder", "text_encoder_2"):
        if part in index:
            read_json_folder(path / part, f"{what} {given}")
    return CheckedModel(given=given, role=role, path=path, family="sdxl" if "text_encoder_2" in index else "sd",
                        cross_attention_dim=int(unet.get("cross_attention_dim", 0)), variant=single_variant(variants, what, given))


def check_controlnet(given: str, path: Path) -> CheckedModel:
    what = ROLES[CONTROLNET][0]
    if (path / "model_index.json").is_file() and not (path / "config.json").is_file():
        raise ModelError(f"{what} {given} is a pipeline folder, not a ControlNet (config.json of a ControlNetModel)")
    config = read_json(path / "config.json", f"{what} {given}", missing="it holds no config.json")
    if config.get("_class_name") != "ControlNetModel":
        raise ModelError(f"{what} {given} is a {config.get('_class_name', 'model of unknown kind')}, not a ControlNetModel")
    variant = check_weights(path, f"{what} {given}")
    family = "sdxl" if config.get("addition_embed_type") == "text_time" else "sd"
    return CheckedModel(given=given, role=CONTROLNET, path=path, family=family,
                        cross_attention_dim=int(config.get("cross_attention_dim", 0)), variant=variant)


def check_pair(texture: CheckedModel, controlnet: CheckedModel) -> None:
    """A ControlNet only steers a UNet of its own family: same text-feature width, same SD/SDXL conditioning."""
    if (texture.family, texture.cross_attention_dim) != (controlnet.family, controlnet.cross_attention_dim):
        raise ModelError(f"controlnet model {controlnet.given} ({controlnet.family}, cross-attention {controlnet.cross_attention_dim}) "
                         f"does not fit texture model {texture.given} ({texture.family}, cross-attention "
                         f"{texture.cross_attention_dim}); use a depth ControlNet trained for that model family")


def check_weights(folder: Path, name: str) -> str | None:
    """Which variant of weights `folder` holds (None: full precision, "fp16"), after reading each file's header:
    a truncated or overwritten safetensors file fails here, in the driver, not on a GPU actor hours later."""
    from safetensors import safe_open

    for variant, names in ((None, WEIGHT_FILES), ("fp16", FP16_WEIGHT_FILES)):
        files = [folder / file for file in names if (folder / file).is_file()]
        if files:
            for file in files:
                try:
                    with safe_open(str(file), "pt") as handle:
                        handle.keys()
                except Exception as error:  # safetensors raises its own SafetensorError, or OSError
                    raise ModelError(f"{name}: {file} is damaged ({' '.join(str(error).split())}); fetch it again") from None
            return variant
    raise ModelError(f"{name}: {folder} holds no safetensors weights ({' or '.join(WEIGHT_FILES)}; pickled .bin weights are "
                     "not loaded, they can run code); fetch it again")


def single_variant(variants: set, what: str, given: str) -> str | None:
    if len(variants) > 1:
        raise ModelError(f"{what} {given} mixes full-precision and fp16-only parts; fetch it again")
    return next(iter(variants), None)


def read_json(path: Path, name: str, missing: str | None = None) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{name}: {missing or f'{path.parent.name}/{path.name} is missing'} ({path.parent})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{name}: {path} is damaged ({' '.join(str(error).split())}); fetch it again") from None
    if not isinstance(data, dict):
        raise ModelError(f"{name}: {path} does not hold a JSON object; fetch it again")
    return data


def read_json_folder(folder: Path, name: str) -> None:
    """Every JSON file of a pipeline part parses (tokenizer and scheduler configs are loaded by name, not checked)."""
    if not folder.is_dir():
        raise ModelError(f"{name}: the folder {folder.name}/ is missing ({folder.parent})")
    for path in sorted(folder.glob("*.json")):
        read_json(path, name)


def fetch_model(given: str, role: str, timeout: float = PROBE_TIMEOUT_S) -> Path:
    """Download `given` (a Hugging Face id) for `role` into the HF cache and check it; a folder is only checked.
    ModelError, at once, when the Hub cannot be reached (HF_HUB_OFFLINE, no route, refused)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    if Path(given).expanduser().exists():
        return find_model(given, role).path
    what = ROLES[role][0]
    if not HUB_ID.match(given):
        raise ModelError(f"{what} {given}: not a Hugging Face id (owner/name) and no such folder")
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"cannot fetch {what} {given}: HF_HUB_OFFLINE is set; unset it on a machine with network")
    if problem := reach_problem(constants.ENDPOINT, timeout):
        raise ModelError(f"cannot fetch {what} {given}: the Hugging Face Hub cannot be reached ({problem}); run "
                         "`factory fetch-models` on a machine with network and copy its cache here")
    try:
        snapshot_download(given, allow_patterns=FETCH_PATTERNS[role], etag_timeout=timeout, library_name="painfactory")
    except GatedRepoError:
        raise ModelError(f"{given} is gated: accept its licence on {constants.ENDPOINT}/{given} and log in (`hf auth login` "
                         "or HF_TOKEN), then run this again") from None
    except RepositoryNotFoundError:
        raise ModelError(f"{what} {given} is not on {constants.ENDPOINT} (or is private): check the id") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise ModelError(f"cannot fetch {what} {given}: {' '.join(str(error).split())[:300]}") from None
    return find_model(given, role).path


def reach_problem(endpoint: str, timeout: float) -> str | None:
    """Why the Hub cannot be reached, or None: one request with a short timeout, through huggingface_hub's own HTTP
    session (its proxy settings apply), instead of its retries with back-off."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception as error:  # DNS, refused, timed out, proxy, TLS: all mean "cannot reach it from here"
        return f"{endpoint}: {type(error).__name__}"
    return None


def hub_cache() -> str:
    from huggingface_hub import constants

    return os.fspath(constants.HF_HUB_CACHE)
