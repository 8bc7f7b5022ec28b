"""Encoders of sample members, with fixed settings so that the same pixels always give the same bytes.

    encode_jpeg(rgb, quality)    (H, W, 3) uint8 → JPEG (4:2:0, baseline, no optimisation pass)
    encode_png(image, level)     8-bit grey, 16-bit grey (uint16) or 8-bit RGB → PNG (Up filter, zlib-ng at a fixed level)
    encode_depth(depth_cm)       (H, W) float depth in cm → 16-bit PNG in DEPTH_UNIT_CM steps, at COMPACT_PNG_LEVEL
    ObjWriter(faces, corner_uvs).encode(vertices)   a textured Wavefront OBJ of one mesh
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

DEPTH_UNIT_CM = 0.01  # depth.png stores depth / DEPTH_UNIT_CM as uint16: 0.1 mm steps up to 6.5 m
# PNGs are deflated by zlib-ng (a faster zlib with the same format; its own bytes, fixed by its version): for one
# 512 px identity's 33 depth, 33 segmentation and 10 heatmap PNGs, zlib-ng at level 4 takes 0.59× the CPU time of
# zlib at level 4 for 3 % fewer bytes (bench/RESULTS.md, "Identity"). Levels are fixed, for identical bytes.
PNG_COMPRESS_LEVEL = 2  # texture.png beside mesh.obj: zlib-ng's level 1 is a much weaker quick mode
# Depth, segmentation and heatmaps are stored for good, so they get a higher level. With the Up filter (and zlib)
# level 4 against 6: 0.21 against 0.57 s CPU, 2.34 against 2.18 MB (level 1: 0.12 s, 2.95 MB); lossless JPEG 2000
# would be smaller still but is no WebDataset or `datasets` default. bench/RESULTS.md, "Shard sets".
COMPACT_PNG_LEVEL = 4
OBJ_COORDINATE = "%.4f"  # mesh.obj's vertex coordinates, cm: 0.1 mm steps
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {2: 0, 3: 2}  # array dimensions → PNG colour type: (H, W) grey, (H, W, 3) RGB
PNG_UP_FILTER = 2  # each byte minus the one above it


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    # Fixed settings (4:2:0 subsampling, no optimisation pass, no progressive) so the same pixels give the same bytes.
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    return buffer.getvalue()


def encode_png(image: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """8-bit grey, 16-bit grey (uint16) or 8-bit RGB (H, W, 3) PNG, deflated at zlib-ng `level`.

    Written here, not through Pillow: every row gets PNG's Up filter (the byte above subtracted, so smooth depth,
    masks and textures deflate well) in one numpy subtraction, then zlib-ng at `level`. Pillow tries five
    filters on every row and keeps the best, which here took twice the time for files no smaller (depth maps,
    segmentation, heatmaps and textures of a 512 px identity: 0.37 s with Pillow against 0.16 s, 4 % fewer bytes).
    """
    colour_type = PNG_COLOUR_TYPES.get(image.ndim)
    if colour_type is None or image.dtype not in (np.uint8, np.uint16) or (image.ndim == 3 and image.shape[2] != 3) \
            or (image.ndim == 3 and image.dtype != np.uint8):
        raise ValueError(f"encode_png takes 8- or 16-bit grey (H, W) or 8-bit RGB (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    rows = np.ascontiguousarray(image, dtype=">u2" if image.dtype == np.uint16 else np.uint8).view(np.uint8).reshape(height, -1)
    filtered = np.empty((height, 1 + rows.shape[1]), dtype=np.uint8)  # each row: its filter type, then its bytes
    filtered[:, 0] = PNG_UP_FILTER
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps modulo 256, as PNG's filters do
    header = struct.pack(">IIBBBBB", width, height, 8 * image.itemsize, colour_type, 0, 0, 0)  # no interlacing
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib_ng.compress(filtered, level)) \
        + png_chunk(b"IEND", b"")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, kind, data and the CRC-32 of kind and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


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
        block = (f"v {OBJ_COORDINATE} {OBJ_COORDINATE} {OBJ_COORDINATE}\n" * len(vertices)) % tuple(vertices.astype(np.float64).ravel())
        return (self.header + block).encode() + self.tail


def obj_vertices(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) vertices as a reader of mesh.obj gets them back: their OBJ text parsed (float64)."""
    text = f"{OBJ_COORDINATE} " * vertices.size % tuple(vertices.astype(np.float64).ravel())
    return np.array(text.split(), np.float64).reshape(-1, 3)
