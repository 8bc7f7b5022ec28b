"""Backbone weights in the Hugging Face cache: where timm keeps a backbone's weights on the Hub, fetching them into
the cache on a machine with network (`trainer fetch-backbone`), and finding them there offline (`pretrained: hub`).

Both sides ask `hub_source` for the repository, revision and file names, resolved as timm's own loader does
(`timm.models._hub.load_state_dict_from_hf`: the pretrained config's `hf_hub_id`, an optional `@revision`, its
`hf_hub_filename` or else `pytorch_model.bin`, with the `.safetensors` twin tried first), so a file fetched here is
the file training looks up, in the cache layout huggingface_hub writes:

    HF_HUB_CACHE/models--timm--vit_large_patch16_dinov3.sat493m/
        refs/main                          the revision `main` points at
        snapshots/<revision>/model.safetensors

Training never downloads: only `fetch_hub_weights` touches the network, and it gives up after one short probe
when the Hub cannot be reached, instead of huggingface_hub's retries with back-off (23 s here, longer where
connections hang).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from factory.errors import FactoryError

PROBE_TIMEOUT_S = 10.0
SAFE_TWINS = {"pytorch_model.bin": "model.safetensors", "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


class HubError(FactoryError, RuntimeError):
    """The weights cannot be fetched (Hub unreachable, gated or missing repository); the message says what to do."""


@dataclass(frozen=True)
class HubSource:
    repo: str  # "timm/vit_large_patch16_dinov3.sat493m"
    revision: str | None  # None: the repository's main branch
    filenames: tuple[str, ...]  # in order of preference


def hub_source(name: str) -> HubSource:
    """Where timm loads `name`'s pretrained weights from on the Hugging Face Hub (name may carry a tag: `….sat493m`)."""
    import timm

    cfg = timm.get_pretrained_cfg(name) if timm.is_model(name) else None
    if cfg is None or not cfg.hf_hub_id:
        raise FileNotFoundError(f"timm has no Hugging Face weights for {name!r}; pass a local weight file instead")
    repo, _, revision = cfg.hf_hub_id.partition("@")
    filename = cfg.hf_hub_filename or "pytorch_model.bin"
    filenames = (filename,)
    if filename.endswith(".bin"):  # timm prefers the safetensors twin when the repository has one
        filenames = (SAFE_TWINS.get(filename, filename.removesuffix(".bin") + ".safetensors"), filename)
    return HubSource(repo, revision or None, filenames)


def cached_hub_weights(name: str, cache_dir: str | Path | None = None) -> str:
    """The local path of `name`'s weights in the Hugging Face cache, looked up without any network access."""
    from huggingface_hub import try_to_load_from_cache

    source = hub_source(name)
    for filename in source.filenames:
        path = try_to_load_from_cache(source.repo, filename, cache_dir=cache_dir, revision=source.revision)
        if isinstance(path, str):
            return path
    raise FileNotFoundError(
        f"pretrained weights for {name!r} ({source.repo}) are not in the Hugging Face cache {hub_cache(cache_dir)}; "
        f"run `trainer fetch-backbone {name}` on a machine with network and copy that cache here, "
        "or pass a local weight file"
    )


def fetch_hub_weights(name: str, cache_dir: str | Path | None = None, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Download `name`'s weights into the Hugging Face cache (a no-op when they are there and current); returns
    the cached file's path. HubError when the Hub cannot be reached or refuses."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError

    source = hub_source(name)
    offline = constants.HF_HUB_OFFLINE
    if not offline and (problem := reach_problem(constants.ENDPOINT, timeout)):
        raise HubError(unreachable(name, problem, cache_dir))
    for filename in source.filenames:
        try:
            return hf_hub_download(source.repo, filename, revision=source.revision, cache_dir=cache_dir,
                                   etag_timeout=timeout, library_name="painfactory")
        except RemoteEntryNotFoundError:
            continue  # the repository has no file by that name: try the next one timm would
        except LocalEntryNotFoundError:
            if offline:
                continue  # offline, the next name may still be in the cache
            raise HubError(unreachable(name, f"{constants.ENDPOINT} stopped answering", cache_dir)) from None
        except GatedRepoError:
            raise HubError(f"{source.repo} is gated: accept its licence on {constants.ENDPOINT}/{source.repo} and log in "
                           "(`hf auth login`, or set HF_TOKEN), then run this again") from None
        except RepositoryNotFoundError:
            raise HubError(f"{source.repo} is not on {constants.ENDPOINT} (or is private): check the backbone name") from None
    if offline:
        raise HubError(unreachable(name, "HF_HUB_OFFLINE is set", cache_dir))
    raise HubError(f"{source.repo} holds none of {', '.join(source.filenames)}: timm cannot load it")


def reach_problem(endpoint: str, timeout: float) -> str | None:
    """Why the Hub cannot be reached, or None: one request with a short timeout, through huggingface_hub's own
    HTTP session (so its proxy settings apply)."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception as error:  # DNS, refused, timed out, proxy, TLS: all mean "cannot reach it from here"
        return f"{endpoint}: {type(error).__name__}"
    return None


def unreachable(name: str, reason: str, cache_dir: str | Path | None) -> str:
    return (f"cannot reach the Hugging Face Hub ({reason}): run `trainer fetch-backbone {name}` on a machine with "
            f"network and copy its cache folder to {hub_cache(cache_dir)} here, or pass a local weight file with "
            "--pretrained FILE")


def hub_cache(cache_dir: str | Path | None) -> str:
    """The cache folder used: the one given, else HF_HUB_CACHE (default ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return os.fspath(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
