#!/usr/bin/env bash
# Set up a virtual environment with the project, then run the factory on its embedded defaults
# (local Ray, a local folder, the bundled face model, the procedural texturer).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q -e .
# 8 identities × 33 images on a local Ray cluster (one worker per CPU); 256 px keeps a laptop run to minutes.
# Running the same command again resumes; a larger --identities extends the dataset.
factory generate --identities 8 --seed 0 --image-size 256 --out out/dataset
factory verify out/dataset
factory inspect out/dataset
factory preview out/dataset --out out/sheet.png
