"""Binary glTF (GLB) of an identity's textured mesh: one file any glTF viewer, trimesh or Blender opens.

    obj_to_glb(mesh_obj_bytes, texture_png_bytes) → GLB bytes     the assets set's mesh.glb, and `factory export`'s
    read_glb(glb_bytes) → GlbMesh                                  back (verify's check, the OBJ export of a GLB)
    glb_to_obj(glb_bytes) → (mesh_obj_bytes, texture_png_bytes)
    GlbWriter(obj_writer, num_vertices).encode(vertices, texture)   an identity's mesh.glb from its arrays (the same bytes)

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
from dataclasses import dataclass

import numpy as np
from PIL import Image

from factory.errors import FactoryError
from factory.format.encoders import ObjWriter, encode_png, obj_vertices

GLB_MAGIC, GLB_VERSION = b"glTF", 2
JSON_CHUNK, BIN_CHUNK = 0x4E4F534A, 0x004E4942
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125  # glTF accessor component types
COMPONENT_DTYPES = {FLOAT: np.float32, UNSIGNED_SHORT: np.uint16, UNSIGNED_INT: np.uint32}
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
CM_TO_M = 0.01
TEXTURE_JPEG_QUALITY = 90


class MeshError(FactoryError, ValueError):
    """mesh.obj or mesh.glb is not the textured triangle mesh that painfactory writes."""


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
    return SeamSplit.of(uvs, corners).glb(vertices, texture_jpeg(Image.open(io.BytesIO(texture_png)).convert("RGB")))


def texture_jpeg(texture: Image.Image | np.ndarray) -> bytes:
    """The texture as the GLB embeds it: a JPEG at TEXTURE_JPEG_QUALITY."""
    buffer = io.BytesIO()
    (texture if isinstance(texture, Image.Image) else Image.fromarray(texture)).save(buffer, format="JPEG", quality=TEXTURE_JPEG_QUALITY)
    return buffer.getvalue()


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field is ambiguous
class SeamSplit:
    """A mesh's triangles with one glTF vertex per (vertex, UV) pair their corners use: a vertex on a texture seam
    becomes one glTF vertex per side. Depends on the triangles and UVs only, so one serves every identity."""

    faces: np.ndarray  # (F, 3) vertex ids
    pairs: np.ndarray  # (G, 2) the mesh vertex and the UV of each glTF vertex
    texcoords: np.ndarray  # (G, 2) float32, v down
    indices: np.ndarray  # (F·3,) glTF vertex per corner: uint16 below 65,536 glTF vertices (18 % of an ICT GLB), else uint32

    @classmethod
    def of(cls, uvs: np.ndarray, corners: np.ndarray) -> "SeamSplit":
        """From uvs (T, 2) and corners (F, 3, 2): each corner's 0-based vertex and UV id."""
        pairs, index = np.unique(corners.reshape(-1, 2), axis=0, return_inverse=True)
        texcoords = (uvs[pairs[:, 1]] * [1.0, -1.0] + [0.0, 1.0]).astype(np.float32)
        indices = index.reshape(-1).astype(np.uint16 if len(pairs) <= 0xFFFF else np.uint32)
        return cls(corners[..., 0], pairs, texcoords, indices)

    def glb(self, vertices: np.ndarray, jpeg: bytes) -> bytes:
        """The GLB of the mesh at `vertices` (V, 3) in cm, with `jpeg` as its texture."""
        positions = (vertices[self.pairs[:, 0]] * CM_TO_M).astype(np.float32)
        normals = vertex_normals(vertices, self.faces)[self.pairs[:, 0]].astype(np.float32)
        return pack_glb(positions, normals, self.texcoords, self.indices, jpeg)


class GlbWriter:
    """mesh.glb straight from an identity's vertices and texture: byte for byte what obj_to_glb makes of the
    mesh.obj and texture.png that `obj_writer` and encode_png write, without writing and parsing them (0.2 s of CPU
    per identity). The seam split is taken once from the OBJ's own text, and the vertices are rounded as the OBJ
    stores them (through the same text), so both routes meet in the same numbers."""

    def __init__(self, obj_writer: ObjWriter, num_vertices: int):
        _, uvs, corners = parse_obj(obj_writer.encode(np.zeros((num_vertices, 3))).decode())
        self.split = SeamSplit.of(uvs, corners)

    def encode(self, vertices: np.ndarray, texture: np.ndarray) -> bytes:
        """vertices (V, 3) in cm, texture (S, S, 3) uint8 → mesh.glb."""
        return self.split.glb(obj_vertices(vertices), texture_jpeg(texture))


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
                 accessor(3, "SCALAR", len(indices), UNSIGNED_SHORT if indices.dtype == np.uint16 else UNSIGNED_INT)]
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


@dataclass(frozen=True)
class GlbMesh:
    """What read_glb finds in a GLB of pack_glb's layout: positions in metres (V, 3), texcoords (V, 2) with v down,
    triangles (F, 3) of vertex ids, and the embedded image's encoded bytes."""

    positions: np.ndarray
    texcoords: np.ndarray
    triangles: np.ndarray
    image: bytes


def read_glb(data: bytes) -> GlbMesh:
    """The mesh of a GLB as pack_glb writes it (one primitive with POSITION, TEXCOORD_0, indices and a base colour
    image), every offset and count checked against the file: MeshError for anything else."""
    try:
        magic, version, length = struct.unpack_from("<4sII", data)
        json_length, json_type = struct.unpack_from("<II", data, 12)
        document = json.loads(data[20:20 + json_length])
        bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
        binary = data[28 + json_length:28 + json_length + bin_length]
        if (magic, version, length, json_type, bin_type) != (GLB_MAGIC, GLB_VERSION, len(data), JSON_CHUNK, BIN_CHUNK) or len(binary) != bin_length:
            raise ValueError("not a GLB 2.0 file with a JSON and a binary chunk")
        primitive = document["meshes"][0]["primitives"][0]
        attributes = primitive["attributes"]
        positions = accessor_array(document, binary, attributes["POSITION"], "VEC3", FLOAT)
        texcoords = accessor_array(document, binary, attributes["TEXCOORD_0"], "VEC2", FLOAT)
        triangles = accessor_array(document, binary, primitive["indices"], "SCALAR", UNSIGNED_SHORT, UNSIGNED_INT).reshape(-1, 3)
        image = view_bytes(document, binary, document["images"][0]["bufferView"])
    except (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as error:
        raise MeshError(f"mesh.glb is not a textured GLB mesh of painfactory's layout ({type(error).__name__}: {str(error)[:120]})") from None
    if len(positions) != len(texcoords) or not len(triangles) or triangles.max() >= len(positions):
        raise MeshError("mesh.glb: its triangles refer to vertices it does not hold, or it holds none")
    return GlbMesh(positions=positions, texcoords=texcoords, triangles=triangles, image=image)


def view_bytes(document: dict, binary: bytes, index: int) -> bytes:
    view = document["bufferViews"][index]
    start, length = int(view.get("byteOffset", 0)), int(view["byteLength"])
    if start < 0 or length < 0 or start + length > len(binary):
        raise ValueError(f"bufferView {index} lies outside the binary chunk")
    return binary[start:start + length]


def accessor_array(document: dict, binary: bytes, index: int, kind: str, *components: int) -> np.ndarray:
    """Accessor `index` as a numpy array, once it is a `kind` of one of `components` and lies in its view."""
    accessor = document["accessors"][index]
    if accessor["type"] != kind or accessor["componentType"] not in components or accessor.get("byteOffset", 0):
        raise ValueError(f"accessor {index} is not a packed {kind} of component type {' or '.join(map(str, components))}")
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[kind]
    blob = view_bytes(document, binary, accessor["bufferView"])
    return np.frombuffer(blob, COMPONENT_DTYPES[accessor["componentType"]], count=int(accessor["count"]) * width).reshape(-1, width)


def glb_to_obj(glb: bytes) -> tuple[bytes, bytes]:
    """(mesh.obj, texture.png) of a GLB, as the factory writes them: centimetres, v up, the JPEG texture as PNG.
    Vertices are the GLB's (split at texture seams), so the OBJ holds a few more than a sample's mesh.obj."""
    mesh = read_glb(glb)
    corner_uvs = (mesh.texcoords.astype(np.float64) * [1.0, -1.0] + [0.0, 1.0])[mesh.triangles]
    obj = ObjWriter(mesh.triangles.astype(np.int64), corner_uvs).encode(mesh.positions.astype(np.float64) / CM_TO_M)
    texture = Image.open(io.BytesIO(mesh.image)).convert("RGB")
    return obj, encode_png(np.asarray(texture))
