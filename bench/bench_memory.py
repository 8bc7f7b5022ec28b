"""Memory of one render worker: peak RSS at 512 and 1024 px, and a leak check over many identities.

    python bench/bench_memory.py                           # 512 and 1024 px peaks, leak check over 200 identities
    python bench/bench_memory.py --identities 12 --no-write   # a quick run (leak check over 12)

Each image size runs in a fresh Python process, as a worker would: it builds the renderer (face model, rig, UV
atlas), then renders and encodes identities one after another on one thread, exactly as `factory generate`'s
workers do (render, then encode the sample members), keeping nothing between identities. Reported per size: RSS
after setup, peak RSS (the kernel's high-water mark, ru_maxrss), and for the leak check (at the first size only)
the RSS after identity `--baseline` (20 by default) against the RSS after the last one: a worker that leaks grows
between the two, one that does not stays flat (allocator noise aside: a few MiB). With --write (the default) the
figures go into the "Memory" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from results import machine, write_section  # noqa: E402  (bench/results.py, beside this script)

SECTION = "## Memory"
MIB = 2**20


def rss_bytes() -> int:
    """This process's resident set size now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(image_size: int, identities: int, baseline: int) -> dict:
    """In this process: set up a renderer at `image_size`, render and encode `identities` identities; RSS figures."""
    import torch

    from factory.run.identity import IdentityRenderer, RenderConfig
    from factory.spec.plan import plan_identity

    torch.set_num_threads(1)
    renderer = IdentityRenderer(RenderConfig(image_size=image_size))  # the default backend, as a worker has it
    after_setup = rss_bytes()
    rss, started = [], time.process_time()
    for index in range(identities):
        spec = plan_identity(index, seed=0)
        renderer.encode_sample(spec, renderer.render(spec), "glb")  # as a worker writes it
        rss.append(rss_bytes())
    return {"image_size": image_size, "identities": identities, "after_setup": after_setup, "peak": peak_rss_bytes(),
            "rss": rss, "baseline": min(baseline, identities), "cpu_s_per_identity": (time.process_time() - started) / identities}


def in_fresh_process(image_size: int, identities: int, baseline: int) -> dict:
    """`measure` in a new Python process (a worker's own high-water mark, not this one's)."""
    command = [sys.executable, __file__, "--child", str(image_size), "--identities", str(identities), "--baseline", str(baseline)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(results: list[dict], args: argparse.Namespace) -> str:
    rows = [f"| {r['image_size']} px | {r['after_setup'] / MIB:.0f} | {r['peak'] / MIB:.0f} | {r['identities']} | "
            f"{r['cpu_s_per_identity']:.2f} |" for r in results]
    leak = results[0]
    first, last = leak["rss"][leak["baseline"] - 1], leak["rss"][-1]
    growth = (last - first) / MIB
    return "\n".join([
        SECTION, "",
        f"`python bench/bench_memory.py --identities {args.identities} --baseline {args.baseline} --peak-identities "
        f"{args.peak_identities}` on {machine()}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}. One fresh process per image size, as a render worker: the "
        "renderer set up once, then identities rendered and encoded one after another on one thread (1024 px texture, "
        "the default raster backend, mesh.glb). Peak is the process's high-water mark (ru_maxrss).", "",
        "| image | RSS after setup (MiB) | peak RSS (MiB) | identities | CPU s per identity |", "|---|---|---|---|---|",
        *rows, "",
        f"Leak check at {leak['image_size']} px: RSS after identity {leak['baseline']} {first / MIB:.0f} MiB, after identity "
        f"{leak['identities']} {last / MIB:.0f} MiB ({growth:+.0f} MiB over {leak['identities'] - leak['baseline']} identities; "
        f"highest after any identity: {max(leak['rss']) / MIB:.0f} MiB). RSS along the way: {checkpoints(leak['rss'])}; "
        f"{trend(leak['rss'], leak['baseline'])}.", "",
    ])


def checkpoints(rss: list[int], count: int = 6) -> str:
    """RSS after evenly spaced identities: a leak grows steadily, allocator churn wanders and settles."""
    picks = sorted({round(k * (len(rss) - 1) / (count - 1)) for k in range(count)})
    return ", ".join(f"{index + 1}: {rss[index] / MIB:.0f} MiB" for index in picks)


def trend(rss: list[int], baseline: int) -> str:
    """The least-squares slope of RSS after `baseline` identities, per 100 identities."""
    tail = rss[baseline - 1:]
    if len(tail) < 3:
        return "too few identities for a trend"
    x = list(range(len(tail)))
    mean_x, mean_y = sum(x) / len(x), sum(tail) / len(tail)
    slope = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, tail)) / sum((a - mean_x) ** 2 for a in x)
    return f"least-squares trend after identity {baseline}: {100 * slope / MIB:+.1f} MiB per 100 identities"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=200, help="identities for the leak check (at the first size)")
    parser.add_argument("--baseline", type=int, default=20, help="the identity whose RSS the last one is compared with")
    parser.add_argument("--peak-identities", type=int, default=3, help="identities rendered at the other sizes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: measure at this size, print JSON
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.identities, args.baseline)))
        return
    if not 1 <= args.baseline <= args.identities:
        raise SystemExit(f"--baseline must be 1..{args.identities} (--identities), got {args.baseline}")
    results = []
    for number, size in enumerate(args.sizes):
        count = args.identities if number == 0 else args.peak_identities
        print(f"{size} px: {count} identities in a fresh process …", flush=True)
        results.append(in_fresh_process(size, count, args.baseline))
    text = report(results, args)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
