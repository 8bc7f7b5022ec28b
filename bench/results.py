"""What every bench shares: a description of the machine, and writing its own section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def cpu_model() -> str:
    """The CPU's model name as lscpu reports it (falling back on what Python knows)."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """CPU model, logical CPUs, GPU and Python: what a figure needs beside it to be compared."""
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs, {gpu}, Python {platform.python_version()}"


def write_section(heading: str, text: str) -> None:
    """Replace (or append) the section that starts with `heading` ("## Scaling"), up to the next '## ' heading,
    leaving the other sections of RESULTS.md as they are."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    start = existing.find(heading)
    if start < 0:
        updated = existing.rstrip("\n") + "\n\n" + text
    else:
        end = existing.find("\n## ", start + len(heading))
        rest = existing[end + 1:] if end >= 0 else ""
        updated = existing[:start] + text.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    RESULTS.write_text(updated.rstrip("\n") + "\n")
