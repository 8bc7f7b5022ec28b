"""Which face model a run uses: the bundled ICT model (default) or a user's FLAME file, and what to record about it.

    face = load_face("flame", FlameSource("flame2023_Open.pkl"))
    face.model            # a FaceModel: the rig, texturers and renderer take either alike
    face.record           # for meta.json: name, file digests, where the landmarks and UVs came from

FLAME cannot be shipped (FLAME 2020 is for research only; FLAME 2023 Open is CC-BY-4.0 but downloaded by a person after
registering), so a FLAME run names the user's file; the README says where to get it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from factory.face.flame.model import FlameSource, load_flame_model
from factory.face.flame.transfer import TRANSFER_VERSION
from factory.face.model import FaceModel

FACE_MODELS = ("ict", "flame")
ICT_NAME = "ict-face-light"
ICT_IDENTITY_MODES = 100  # the bundled asset's (tests/test_face_model.py checks it)


@dataclass(frozen=True, eq=False)
class LoadedFace:
    model: FaceModel
    record: dict  # what meta.json says about the face model


def load_face(name: str, flame: FlameSource | None = None) -> LoadedFace:
    if name == "ict":
        return LoadedFace(FaceModel.load(), {"name": ICT_NAME})
    if name != "flame" or flame is None:
        raise ValueError(f"face model {name!r} needs {'a FLAME file' if name == 'flame' else 'to be one of ' + ', '.join(FACE_MODELS)}")
    loaded = load_flame_model(flame)
    distance = loaded.correspondence.distance
    record = {
        "name": "flame", "sha256": loaded.sha256, "file": Path(flame.path).name,
        "uv": {"from": loaded.uv_from, "sha256": loaded.uv_sha256},
        "landmarks": {"from": loaded.landmarks_from, "sha256": loaded.landmarks_sha256},
        "expressions": {"from": "ICT expression shapes transferred", "transfer_version": TRANSFER_VERSION,
                        "median_surface_gap_cm": round(float(distance.median()), 4)},
    }
    return LoadedFace(loaded.model, record)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
