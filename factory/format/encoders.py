"""Encoders of sample members, with fixed settings so that the same pixels always give the same bytes.

    encode_jpeg(rgb, quality)    (H, W, 3) uint8 → JPEG (4:2:0, baseline, no optimisation pass)
    encode_png(image, level)     8-bit grey, 16-bit grey (uint16) or RGB → PNG at a fixed compression level
    encode_depth(depth_cm)       (H, W) float depth in cm → 16-bit PNG in DEPTH_UNIT_CM steps, at COMPACT_PNG_LEVEL
    ObjWriter(faces, corner_uvs).encode(vertices)   a textured Wavefront OBJ of one mesh
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DEPTH_UNIT_CM = 0.01  # depth.png stores depth / DEPTH_UNIT_CM as uint16: 0.1 mm steps up to 6.5 m
PNG_COMPRESS_LEVEL = 1  # fixed, for identical bytes; measured here: 3× faster than level 6 for 16 % more bytes
# Depth, segmentation and heatmaps are stored for good (texture.png, with a GLB mesh, is only a step on the way), so
# they are worth zlib's level 6: lossless, at 512 px 23 % smaller depth, 30 % smaller segmentation and heatmaps than
# level 1, for +0.55 s CPU per identity (level 9: 4-8 % smaller again for 10× the time; lossless JPEG 2000 would save
# 41 % of the depth but is not a WebDataset or `datasets` default). bench/RESULTS.md, "Shard sets".
COMPACT_PNG_LEVEL = 6


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    # Fixed settings (4:2:0 subsampling, no optimisation pass, no progressive) so the same pixels give the same bytes.
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    return buffer.getvalue()


def encode_png(image: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """8-bit grey, 16-bit grey (uint16) or RGB PNG, deflated at zlib `level`."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def encode_depth(depth_cm: np.ndarray) -> bytes:
    """16-bit PNG of depth in DEPTH_UNIT_CM steps (0 stays 0: the background)."""
    return encode_png(np.round(depth_cm / DEPTH_UNIT_CM).clip(0, 65535).astype(np.uint16), COMPACT_PNG_LEVEL)


class ObjWriter:
    """Wavefront OBJ of the rendered mesh: one UV per triangle corner (deduplicated), vertex ids as in the face
    model (1-based). The UV and face lines are the same for every identity, so they are formatted once."""

    def __init__(self, faces: np.ndarray, corner_uvs: np.ndarray):
        uvs, uv_index = np.unique(np.round(corner_uvs.reshape(-1, 2), 6), axis=0, return_inverse=True)
        corners = np.stack([faces + 1, uv_index.reshape(-1, 3) + 1], axis=-1).reshape(-1)  # v/vt per corner
        self.header = "# painfactory identity mesh (cm, +y up, face toward +z); texture: texture.png\n"
        self.tail = (("vt %.6f %.6f\n" * len(uvs)) % tuple(uvs.ravel())
                     + ("f %d/%d %d/%d %d/%d\n" * len(faces)) % tuple(corners.tolist())).encode()

    def encode(self, vertices: np.ndarray) -> bytes:
        block = ("v %.4f %.4f %.4f\n" * len(vertices)) % tuple(vertices.astype(np.float64).ravel())
        return (self.header + block).encode() + self.tail
