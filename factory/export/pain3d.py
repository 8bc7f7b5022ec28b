"""`--format 3dpain`: the published 3DPain layout (`--layout archive`) or the official ViTPain code's (`--layout folder`).

archive (as 3DPain is published): one `<kind>_NNNNN.tar.gz` per chunk of identities in each kind's folder, and
README.txt:

    images/images_00000.tar.gz                    flame_sample_0000_pain_1_textured_view_000_inpainted.jpg, …_neutral_…
    annotations/annotations_00000.tar.gz          flame_sample_0000_pain_1_annotations.json, …
    heatmaps/heatmaps_00000.tar.gz                flame_sample_0000_pain_1_heatmap.png, …
    textured_meshes/textured_meshes_00000.tar.gz  flame_sample_0000.glb (or .obj + .png with --mesh obj)

folder (what TaatiTeam/Pain-in-3D's `Pain3DDataset` reads): the same files unpacked, images in `meshes_inpainted/`,
plus `splits.csv` (`annotation_base_name,split`, 0 train, 1 val, 2 test) holding the trainer's identity split.
Names and annotation keys: factory/export/names.py.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass

from factory.export.card import LabelCounts
from factory.export.chunks import Chunk, ExportError, Identity
from factory.export.names import annotation, annotation_name, expression_names, heatmap_name, identity_name, image_name
from factory.format.glb import MeshError, glb_to_obj, obj_to_glb
from factory.format.members import ASSETS, IMAGES, MESH, MESH_GLB, TEXTURE, heatmap_member, view_member
from factory.format.storage import Storage
from factory.spec.expressions import NEUTRAL
from factory.spec.split import SPLITS, SplitConfig

KINDS = ("images", "annotations", "heatmaps", "textured_meshes")
FOLDERS = {"images": "meshes_inpainted", "annotations": "annotations", "heatmaps": "heatmaps", "textured_meshes": "textured_meshes"}
LAYOUTS = ("archive", "folder")
MESH_FORMATS = ("glb", "obj")
SPLIT_IDS = {name: number for number, name in enumerate(SPLITS)}  # the official code's 0 train, 1 val, 2 test
TAR_MTIME = 0  # fixed times in tar and gzip headers: the same dataset gives the same archives


def identity_files(identity: Identity, mesh: str) -> Iterable[tuple[str, str, bytes]]:
    """(kind, file name, bytes) of every file one identity contributes."""
    meta, members = identity.meta, identity.members
    names = expression_names(meta)
    where = meta["id"]

    def member(name: str) -> bytes:
        try:
            return members[name]
        except KeyError:
            raise ExportError(f"{where}: the sample has no member {name}, which the 3DPain layout needs") from None

    for expression in meta["expressions"]:
        base = names[expression["name"]]
        for number, view in enumerate(meta["views"]):
            yield "images", image_name(base, number), member(view_member(expression["name"], view["name"]))
        if expression["name"] != NEUTRAL:
            try:
                labels = annotation(expression)
            except ValueError as error:
                raise ExportError(f"{where}: {error}") from None
            yield "annotations", annotation_name(base), (json.dumps(labels, indent=1) + "\n").encode()
            yield "heatmaps", heatmap_name(base), member(heatmap_member(expression["name"]))
    name = identity_name(meta["index"])
    try:
        for extension, data in mesh_files(members, mesh, member):
            yield "textured_meshes", f"{name}.{extension}", data
    except MeshError as error:
        raise ExportError(f"{where}: {error}") from None


def mesh_files(members: dict[str, bytes], mesh: str, member) -> list[tuple[str, bytes]]:
    """(extension, bytes) of the textured mesh as `mesh` asks ("glb", or "obj" with its "png"), from the assets
    set's mesh.glb or mesh.obj + texture.png, converted where they differ (`member(name)` reads one)."""
    if mesh == "glb":
        return [("glb", members[MESH_GLB] if MESH_GLB in members else obj_to_glb(member(MESH), member(TEXTURE)))]
    obj, png = glb_to_obj(members[MESH_GLB]) if MESH_GLB in members else (member(MESH), member(TEXTURE))
    return [("obj", obj), ("png", png)]


class ArchiveOutput:
    """A chunk's files as one deterministic tar.gz per kind, each streamed into the store and committed at the end."""

    def __init__(self, out: Storage, chunk: Chunk, stack: ExitStack) -> None:
        self.out, self.chunk, self.stack, self.tars = out, chunk, stack, {}
        self.paths: list[str] = []

    def add(self, kind: str, name: str, data: bytes) -> None:
        if kind not in self.tars:
            path = f"{kind}/{kind}_{self.chunk.number:05d}.tar.gz"
            sink = self.stack.enter_context(self.out.committing(path))
            zipped = self.stack.enter_context(gzip.GzipFile(fileobj=sink, mode="wb", mtime=TAR_MTIME, filename=""))
            self.tars[kind] = self.stack.enter_context(tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT))
            self.paths.append(path)
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o444
        self.tars[kind].addfile(info, io.BytesIO(data))


class FolderOutput:
    """A chunk's files unpacked, each replaced whole (a rename locally, one PUT on S3)."""

    def __init__(self, out: Storage, chunk: Chunk, stack: ExitStack) -> None:
        self.out = out
        self.paths: list[str] = []

    def add(self, kind: str, name: str, data: bytes) -> None:
        path = f"{FOLDERS[kind]}/{name}"
        self.out.write_bytes(path, data)
        self.paths.append(path)


@dataclass(frozen=True)
class Pain3DExporter:
    layout: str = "archive"
    mesh: str = "glb"
    split: SplitConfig = SplitConfig()
    sets = (IMAGES, ASSETS)  # the shard sets it reads

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ExportError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.mesh not in MESH_FORMATS:
            raise ExportError(f"--mesh must be one of {', '.join(MESH_FORMATS)}, got {self.mesh!r}")

    def options(self) -> dict:
        return {"format": "3dpain", "layout": self.layout, "mesh": self.mesh, "split_seed": self.split.seed, "split_fractions": list(self.split.fractions)}

    def write_chunk(self, out: Storage, chunk: Chunk, identities: Iterable[Identity]) -> dict:
        """Write one chunk; returns its record: files, label counts and the splits.csv rows of its annotations."""
        counts, rows = LabelCounts(), []
        with ExitStack() as stack:
            output = (ArchiveOutput if self.layout == "archive" else FolderOutput)(out, chunk, stack)
            for identity in identities:
                split = self.split.split_of(identity.meta["id"])
                counts.add(identity.meta, identity.members, split)
                for kind, name, data in identity_files(identity, self.mesh):
                    output.add(kind, name, data)
                    if kind == "annotations":
                        rows.append([name.removesuffix("_annotations.json"), SPLIT_IDS[split]])
        return {"files": output.paths, "counts": counts.to_dict(), "split_rows": rows}

    def finish(self, out: Storage, context, records: list[dict]) -> None:
        """README.txt, and for the folder layout splits.csv, from every finished chunk's record."""
        if self.layout == "folder":
            rows = sorted(row for record in records for row in record["split_rows"])
            out.write_bytes("splits.csv", ("annotation_base_name,split\n" + "".join(f"{name},{split}\n" for name, split in rows)).encode())
        out.write_bytes("README.txt", readme_text(self, context, records).encode())


def readme_text(exporter: Pain3DExporter, context, records: list[dict]) -> str:
    counts = LabelCounts()
    for record in records:
        counts.merge(LabelCounts.from_dict(record["counts"]))
    folder = exporter.layout == "folder"
    where = {kind: (f"{FOLDERS[kind]}/" if folder else f"{kind}/{kind}_NNNNN.tar.gz") for kind in KINDS}
    mesh = "binary glTF (.glb, metres, texture embedded as JPEG)" if exporter.mesh == "glb" else "Wavefront OBJ (cm) + PNG texture"
    return f"""Synthetic 3D pain faces in the 3DPain layout, exported by painfactory {context.manifest.package_version}
from {context.source} (dataset seed {context.manifest.seed}).

{counts.identities} identities, {counts.images} images, {sum(counts.pspi.values())} annotated expressions.
Identity flame_sample_XXXX is painfactory identity id-XXXXXXX (XXXX: its index, zero-padded), whatever face model made it.

{where['images']}  RGB renders: flame_sample_XXXX_pain_Y_textured_view_00V_inpainted.jpg (Y = 1..N, V = view index,
    0 frontal) and flame_sample_XXXX_neutral_textured_view_00V_inpainted.jpg (the neutral reference, PSPI 0).
{where['annotations']}  flame_sample_XXXX_pain_Y_annotations.json: integer AU4, AU6, AU7, AU9, AU10, AU43 and PSPI,
    and every other AU that was set (AU1, AU12, AU25, ...). PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43.
    pain_Y is painfactory's Y-th non-neutral expression: pain00 is pain_1; hard negatives (PSPI 0) follow the pain ones.
{where['heatmaps']}  flame_sample_XXXX_pain_Y_heatmap.png: per-vertex displacement from the neutral face, frontal view.
{where['textured_meshes']}  flame_sample_XXXX.{exporter.mesh}: the neutral textured mesh, {mesh}.
{"splits.csv  annotation_base_name,split (0 train, 1 val, 2 test): identity-disjoint, the painfactory trainer's split " +
 f"(seed {exporter.split.seed}, fractions {list(exporter.split.fractions)})." if folder else ""}
Files per chunk: .export/chunk-NNNNN.json (ignored by readers).
"""
