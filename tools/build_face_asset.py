"""Build the compact ICT Face Model Light asset that ships inside the `factory` package.

Source: ICT-FaceKit's FaceXModel (MIT, USC ICT Vision and Graphics Lab), as repacked in
`../shared/assets/ict-facekit` (see its NOTICE.md). Run from the repository root:

    python tools/build_face_asset.py ../shared/assets/ict-facekit factory/assets/ict_face_light.npz

What it writes (one compressed .npz, every array named for what it holds):
- `neutral` float32 (V, 3): the neutral mesh in centimetres, stored exactly.
- `identity_q` int16 (100, V, 3) with `identity_scale` float32 (100,): identity modes as displacements
  from neutral, each quantised to int16 with its own scale (value = q * scale). The rounding error is at most
  scale / 2, about 0.0003 cm for the largest mode: far under the 0.01 cm the product promises.
- `expression_q` int16 (E, V, 3) with `expression_scale` (E,) and `expression_names` (E,): the same for the
  expression shapes. Most of their vertices do not move, so they compress to little.
- `faces` int32 (F, 3) and `face_uvs` int32 (F, 3), indices into `uvs` float32 (T, 2): quads split into
  triangles along the same diagonal for positions and UVs.
- `vertex_part` uint8 (V,) and `part_names`: a region label per vertex (see PART_NAMES below).
- `landmarks` int32 (68,): Multi-PIE 68-point landmark vertices, in the usual order.

The quantisation, not the compression, is the only loss; `tests/test_face_model.py` measures it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

# The vertex ranges come from the package (factory/face/ict.py, pure Python): run from a checkout, no install needed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from factory.face import ict  # noqa: E402

# Region labels, in the order of their ids. Skin is everything on the face and head that no other
# label claims. Brows and lips are cut out of the face surface by geometry around their landmarks.
PART_NAMES = ["background", "skin", "brows", "eyes", "lips", "mouth_interior", "lashes", "eye_surface"]

# Multi-PIE 68 landmark groups (0-based positions in the 68 list).
BROW_LANDMARKS = list(range(17, 27))
OUTER_LIP_LANDMARKS = list(range(48, 60))


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, UVs and triangulated (position, uv) index arrays of an OBJ with quads and triangles."""
    positions, uvs, faces, face_uvs = [], [], [], []
    with open(path) as handle:
        for line in handle:
            if line.startswith("v "):
                positions.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("vt "):
                uvs.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                vertex = [int(c[0]) - 1 for c in corners]
                uv = [int(c[1]) - 1 for c in corners]
                # Fan triangulation: (0, 1, 2), (0, 2, 3) for a quad.
                for k in range(1, len(corners) - 1):
                    faces.append([vertex[0], vertex[k], vertex[k + 1]])
                    face_uvs.append([uv[0], uv[k], uv[k + 1]])
    return (
        np.asarray(positions, np.float32),
        np.asarray(uvs, np.float32),
        np.asarray(faces, np.int32),
        np.asarray(face_uvs, np.int32),
    )


def quantise(displacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int16 codes and one float32 scale per shape, so that codes * scale ≈ displacements."""
    peak = np.abs(displacements).reshape(len(displacements), -1).max(axis=1)
    scale = np.where(peak > 0, peak / 32767.0, 1.0).astype(np.float32)
    codes = np.round(displacements / scale[:, None, None]).astype(np.int16)
    return codes, scale


def label_vertices(neutral: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """One region id (index into PART_NAMES) per vertex."""
    part = np.full(len(neutral), PART_NAMES.index("skin"), np.uint8)
    part[ict.MOUTH_SOCKET.slice] = PART_NAMES.index("mouth_interior")
    part[ict.GUMS_TONGUE.slice] = PART_NAMES.index("mouth_interior")
    part[ict.TEETH.slice] = PART_NAMES.index("mouth_interior")
    part[ict.EYEBALLS.slice] = PART_NAMES.index("eyes")
    part[ict.EYE_SHELLS.slice] = PART_NAMES.index("eye_surface")
    part[ict.LASH_CARDS.slice] = PART_NAMES.index("lashes")

    face = np.arange(ict.FACE.first, ict.FACE.stop)
    xy = neutral[face, :2]

    # Brows: face vertices within a band around each brow's landmark polyline, on the front of the head.
    brow_points = neutral[landmarks[BROW_LANDMARKS]]
    for side in (brow_points[:5], brow_points[5:]):
        distance = np.full(len(face), np.inf)
        for a, b in zip(side[:-1], side[1:]):
            distance = np.minimum(distance, segment_distance(xy, a[:2], b[:2]))
        front = neutral[face, 2] > side[:, 2].min() - 1.5
        # 0.55 cm: about half the height of an adult brow.
        part[face[(distance < 0.55) & front]] = PART_NAMES.index("brows")

    # Lips: face vertices inside the outer lip contour seen from the front, on the front of the face.
    lip = neutral[landmarks[OUTER_LIP_LANDMARKS]]
    inside = points_in_polygon(xy, lip[:, :2])
    front = neutral[face, 2] > lip[:, 2].min() - 1.0
    part[face[inside & front]] = PART_NAMES.index("lips")
    return part


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over the points."""
    inside = np.zeros(len(points), bool)
    x, y = points[:, 0], points[:, 1]
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < x_cross)
    return inside


def build(source: Path, target: Path) -> None:
    shapes = np.load(source / "shapes.npz")
    indices = json.loads((source / "vertex_indices.json").read_text())
    positions, uvs, faces, face_uvs = read_obj(source / "generic_neutral_mesh.obj")
    neutral = shapes["neutral"].astype(np.float32)
    if not np.allclose(positions, neutral, atol=1e-5):
        raise SystemExit("the OBJ and shapes.npz['neutral'] disagree: wrong source folder?")
    if len(neutral) != ict.VERTEX_COUNT:
        raise SystemExit(f"expected ICT Face Model Light's {ict.VERTEX_COUNT} vertices, got {len(neutral)}")

    identity_names = sorted(name for name in shapes.files if name.startswith("identity"))
    expression_names = sorted(name for name in shapes.files if name != "neutral" and name not in identity_names)
    identity_q, identity_scale = quantise(np.stack([shapes[n] - neutral for n in identity_names]))
    expression_q, expression_scale = quantise(np.stack([shapes[n] - neutral for n in expression_names]))

    landmarks = np.asarray(indices["idx_to_landmark_verts"], np.int32)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        target,
        neutral=neutral,
        identity_q=identity_q,
        identity_scale=identity_scale,
        expression_q=expression_q,
        expression_scale=expression_scale,
        expression_names=np.asarray(expression_names),
        faces=faces,
        face_uvs=face_uvs,
        uvs=uvs,
        vertex_part=label_vertices(neutral, landmarks),
        part_names=np.asarray(PART_NAMES),
        landmarks=landmarks,
    )
    shutil.copyfile(source / "LICENSE", target.parent / "LICENSE-ICT-FaceKit")
    print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MiB): {len(neutral)} vertices, "
          f"{len(faces)} triangles, {len(identity_names)} identity modes, {len(expression_names)} expression shapes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with shapes.npz, generic_neutral_mesh.obj, vertex_indices.json")
    parser.add_argument("target", type=Path, help="the .npz to write")
    args = parser.parse_args()
    build(args.source, args.target)


if __name__ == "__main__":
    main()
