"""Whether the compiled CPU loops of factory/render/loops.py (numba) can run: numba imports, and the tensors are on
the CPU. Where they cannot, the same steps run as torch code, with the same results (tests hold each pair to it)."""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether numba imports (it is a dependency; an install without it renders the same, more slowly)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def runs_on(tensor: torch.Tensor) -> bool:
    """Whether the compiled loops serve `tensor`'s device: the CPU, with numba."""
    return tensor.device.type == "cpu" and available()
