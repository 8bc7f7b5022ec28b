"""What pain sequences cost: one identity rendered and encoded with stills only, and with `--frames` frames per pain
expression, side by side in one process (CPU time: the machine may be shared).

    python bench/bench_sequence.py --size 128 --frames 8 --index 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.run.identity import IdentityRenderer, RenderConfig  # noqa: E402
from factory.spec.plan import plan_identity  # noqa: E402
from factory.spec.sequence import SequenceConfig  # noqa: E402


def cost(frames: int, size: int, index: int) -> tuple[float, int, int]:
    """CPU seconds to render and encode identity `index`, its members and their bytes."""
    renderer = IdentityRenderer(RenderConfig(image_size=size, sequence=SequenceConfig(frames=frames)))
    spec = plan_identity(index, 0)
    start = time.process_time()
    members = renderer.encode_sample(spec, renderer.render(spec))
    return time.process_time() - start, len(members), sum(map(len, members.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--index", type=int, default=4)
    args = parser.parse_args()
    stills = cost(0, args.size, args.index)
    sequences = cost(args.frames, args.size, args.index)
    print(f"| {args.size} px | stills | {stills[0]:.1f} | {stills[1]} | {stills[2] / 1e6:.2f} |")
    print(f"| {args.size} px | + {args.frames} frames per pain expression | {sequences[0]:.1f} | {sequences[1]} | "
          f"{sequences[2] / 1e6:.2f} |")
    print(f"ratio {sequences[0] / stills[0]:.1f}× CPU time; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
