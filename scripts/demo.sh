#!/usr/bin/env bash
# Set up a virtual environment with the project, then run the factory on its embedded defaults
# (local Ray, a local folder, the bundled face model, the procedural texturer).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q -e .
factory plan --identities 48 --seed 0 --out out/plan.jsonl
