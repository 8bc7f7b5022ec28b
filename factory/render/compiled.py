"""Whether the compiled CPU loops of factory/render/loops.py (numba) can run: numba imports, and the tensors are on
the CPU. Where they cannot, the same steps run as torch code, with the same results (tests hold each pair to it).

    if compiled.runs_on(screen):
        loops = compiled.loops()
        compiled.in_parts(lambda first, stop: loops.draw_keys(..., first, stop), len(screen))   # meshes in parts

The loops release the GIL, so `in_parts` runs contiguous parts of one loop on as many Python threads as torch uses
here: one in a worker pinned to a core (Ray gives an actor OMP_NUM_THREADS=1 per CPU), all cores for
`factory render-identity` on a laptop. Each part writes its own outputs, so the results do not depend on the
thread count. The rasterizer's loops are split so (1.5× its wall time on 2 threads); the shorter loops are not,
where a thread's start costs about what it saves. (numba's own `parallel=True` is not used: its OpenMP layer
shares torch's OpenMP runtime and resets torch's thread count, which would undo that pinning.)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def loops():
    """factory/render/loops.py (importing it imports numba, so only where the loops run)."""
    from factory.render import loops as compiled_loops

    return compiled_loops


def in_parts(run: Callable[[int, int], None], count: int) -> None:
    """run(first, stop) over 0..count in contiguous parts, one per torch thread, at once (the first part in this
    thread); a single call where torch has one thread."""
    parts = max(1, min(torch.get_num_threads(), count))
    bounds = [count * k // parts for k in range(parts + 1)]
    if parts == 1:
        run(0, count)
        return
    with ThreadPoolExecutor(parts - 1, thread_name_prefix="loops") as pool:
        others = [pool.submit(run, first, stop) for first, stop in zip(bounds[1:-1], bounds[2:])]
        run(bounds[0], bounds[1])
        for part in others:
            part.result()
