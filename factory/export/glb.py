"""Binary glTF (GLB) of an identity's textured mesh: one file any glTF viewer, trimesh or Blender opens.

    obj_to_glb(mesh_obj_bytes, texture_png_bytes) → GLB bytes

The mesh is the sample's `mesh.obj` (centimetres, +y up, the face toward +z) and its `texture.png`, embedded as a
JPEG. glTF wants metres, one UV per vertex and UV (0, 0) at the image's top-left, so vertices are scaled by 0.01,
split where a vertex carries two UVs (a texture seam), and v is flipped. Smooth normals are included (area-weighted
over the vertex's triangles, seams ignored so the surface stays smooth across them). Written by hand: GLB is a
12-byte header, a JSON chunk and a binary chunk (glTF 2.0 spec, "GLB File Format Specification").
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
from PIL import Image

GLB_MAGIC, GLB_VERSION = b"glTF", 2
JSON_CHUNK, BIN_CHUNK = 0x4E4F534A, 0x004E4942
FLOAT, UNSIGNED_INT = 5126, 5125  # glTF accessor component types
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
CM_TO_M = 0.01
TEXTURE_JPEG_QUALITY = 90


class MeshError(ValueError):
    """mesh.obj is not the triangle mesh with UVs that painfactory writes."""


def parse_obj(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (V, 3), uvs (T, 2), corners (F, 3, 2) 0-based vertex and uv ids) of a triangulated OBJ with `v/vt`
    faces, as factory.format.encoders.ObjWriter writes it. Parsed a record type at a time with numpy (a Python loop
    over a 512 px identity's 100,000 lines took a second)."""
    records: dict[str, list[str]] = {"v": [], "vt": [], "f": []}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in records:
            records[kind].append(rest)
    if not all(face.count("/") == 3 for face in records["f"]):  # v/vt corners of triangles: three slashes a line
        raise MeshError("mesh.obj is not a triangle mesh of v/vt faces (a face with other corners)")
    try:
        vertices = np.array(" ".join(records["v"]).split(), np.float64).reshape(-1, 3)
        uvs = np.array(" ".join(records["vt"]).split(), np.float64).reshape(-1, 2)
        corners = np.array(" ".join(records["f"]).replace("/", " ").split(), np.int64).reshape(-1, 3, 2) - 1
    except ValueError as error:  # a number that is not one, or rows of other lengths (quads, v//vn faces, …)
        raise MeshError(f"mesh.obj is not a triangle mesh of v/vt faces ({error})") from None
    if not len(vertices) or not len(uvs) or not len(corners):
        raise MeshError("mesh.obj holds no textured triangles")
    if corners.min() < 0 or corners[..., 0].max() >= len(vertices) or corners[..., 1].max() >= len(uvs):
        raise MeshError("mesh.obj: a face refers to a vertex or UV that does not exist")
    return vertices, uvs, corners


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit normals of each vertex (a vertex in no triangle gets +z)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)  # length = twice the area: the weight
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.where(length > 0, length, 1), [0.0, 0.0, 1.0])


def obj_to_glb(mesh_obj: bytes, texture_png: bytes) -> bytes:
    vertices, uvs, corners = parse_obj(mesh_obj.decode())
    pairs, index = np.unique(corners.reshape(-1, 2), axis=0, return_inverse=True)  # one glTF vertex per (v, vt)
    positions = (vertices[pairs[:, 0]] * CM_TO_M).astype(np.float32)
    normals = vertex_normals(vertices, corners[..., 0])[pairs[:, 0]].astype(np.float32)
    texcoords = (uvs[pairs[:, 1]] * [1.0, -1.0] + [0.0, 1.0]).astype(np.float32)
    indices = index.reshape(-1).astype(np.uint32)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(texture_png)).convert("RGB").save(buffer, format="JPEG", quality=TEXTURE_JPEG_QUALITY)
    return pack_glb(positions, normals, texcoords, indices, buffer.getvalue())


def pack_glb(positions, normals, texcoords, indices, jpeg: bytes) -> bytes:
    blobs = [positions.tobytes(), normals.tobytes(), texcoords.tobytes(), indices.tobytes(), jpeg]
    views, binary = [], b""
    for number, blob in enumerate(blobs):
        view = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(blob)}
        if number < 4:
            view["target"] = ELEMENT_ARRAY_BUFFER if number == 3 else ARRAY_BUFFER
        views.append(view)
        binary += blob + b"\0" * (-len(blob) % 4)  # every view starts 4-byte aligned
    accessor = lambda view, kind, count, component=FLOAT: {"bufferView": view, "componentType": component, "count": count, "type": kind}  # noqa: E731
    accessors = [accessor(0, "VEC3", len(positions)) | {"min": positions.min(0).tolist(), "max": positions.max(0).tolist()},
                 accessor(1, "VEC3", len(normals)), accessor(2, "VEC2", len(texcoords)),
                 accessor(3, "SCALAR", len(indices), UNSIGNED_INT)]
    document = {
        "asset": {"version": "2.0", "generator": "painfactory"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 1.0}}],
        "textures": [{"source": 0, "sampler": 0}], "samplers": [{}],
        "images": [{"bufferView": 4, "mimeType": "image/jpeg"}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(binary)}],
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), JSON_CHUNK) + text + struct.pack("<II", len(binary), BIN_CHUNK) + binary
    return struct.pack("<4sII", GLB_MAGIC, GLB_VERSION, 12 + len(chunks)) + chunks
