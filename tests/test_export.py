"""`factory export` and `factory card` on a small really rendered dataset (3 identities, 2 shards, 64 px, 3 pain
expressions and a hard negative, 2 views): the 3DPain archive and folder layouts (names, annotation keys, tar
contents, splits.csv against the trainer's split, every image against its shard), GLB through trimesh, Hugging Face
Parquet and the webdataset recipe through `datasets` offline, S3 in and out (moto on loopback), reruns and errors."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from factory.cli import app
from factory.export import ExportError, ExportRequest, export
from factory.format.dataset import open_dataset
from factory.format.manifest import Manifest, save_manifest
from factory.format.members import MESH, SETS, TEXTURE, heatmap_member, view_member
from factory.format.sets import write_shard_sets
from factory.format.shards import ShardPlan
from factory.format.storage import Storage
from factory.spec.expressions import ExpressionConfig
from factory.spec.labels import PSPI_AUS, RIG_AUS
from factory.spec.plan import PlanConfig, plan_identity
from factory.spec.split import SplitConfig

IDENTITIES, PER_SHARD, PAIN, NEGATIVES, VIEWS = 3, 2, 3, 1, (0.0, 30.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset in the format of docs/DATA.md rendered by the real IdentityRenderer (no Ray: the driver is not
    what is tested here), every shard set written, the mesh as OBJ + PNG (GLB datasets: tests/test_shard_sets.py)."""
    from factory.run.identity import IdentityRenderer, RenderConfig

    root = tmp_path_factory.mktemp("export") / "ds"
    render = RenderConfig(image_size=64, texture_size=128)
    plan = PlanConfig(expressions=ExpressionConfig(pain_expressions=PAIN, hard_negatives=NEGATIVES), view_yaws=VIEWS)
    renderer, storage = IdentityRenderer(render), Storage(str(root))
    manifest = Manifest(package_version="0.1.0", seed=0, config={"render": render.to_dict()}, identities=IDENTITIES)
    for task in ShardPlan(IDENTITIES, PER_SHARD):
        specs = [plan_identity(index, 0, plan) for index in task.indices]
        samples = [(spec.id, renderer.encode_sample(spec, renderer.render(spec))) for spec in specs]
        manifest.add(write_shard_sets(storage, task, SETS, samples))
    save_manifest(storage, manifest)
    return root


@pytest.fixture(scope="module")
def samples(dataset) -> dict[str, dict]:
    return {key: {**members, "meta": json.loads(members["meta.json"])} for key, members in open_dataset(str(dataset)).samples(sets=SETS)}


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {entry.name: tar.extractfile(entry).read() for entry in tar}


def expected_files(samples: dict) -> dict[str, dict[str, bytes | dict]]:
    """kind → file name → the shard's bytes (an annotation: its expected labels), spelled out independently."""
    files = {"images": {}, "annotations": {}, "heatmaps": {}, "textured_meshes": {}}
    for members in samples.values():
        meta = members["meta"]
        identity = f"flame_sample_{meta['index']:04d}"
        others = [e for e in meta["expressions"] if e["name"] != "neutral"]
        assert [e["name"] for e in others] == [f"pain{k:02d}" for k in range(PAIN)] + [f"neg{k:02d}" for k in range(NEGATIVES)]
        named = [("neutral", f"{identity}_neutral", None)] + [(e["name"], f"{identity}_pain_{k + 1}", e) for k, e in enumerate(others)]
        for expression, base, labels in named:
            for v, view in enumerate(meta["views"]):
                files["images"][f"{base}_textured_view_{v:03d}_inpainted.jpg"] = members[view_member(expression, view["name"])]
            if labels is not None:
                files["annotations"][f"{base}_annotations.json"] = {**{au: labels["aus"].get(au, 0) for au in labels["aus"]}, "PSPI": labels["pspi"]}
                files["heatmaps"][f"{base}_heatmap.png"] = members[heatmap_member(expression)]
        files["textured_meshes"][f"{identity}.glb"] = None  # checked through trimesh
    return files


def check_annotation(name: str, data: bytes, expected: dict) -> None:
    labels = json.loads(data)
    assert labels == expected, name
    assert all(type(value) is int for value in labels.values()), name  # integers, never 3.0
    assert set(PSPI_AUS) <= set(labels), name
    assert labels["PSPI"] == labels["AU4"] + max(labels["AU6"], labels["AU7"]) + max(labels["AU9"], labels["AU10"]) + labels["AU43"]


def test_archive_layout_names_annotation_keys_and_tar_contents(dataset, samples, tmp_path):
    report = export(ExportRequest(url=str(dataset), out=str(tmp_path / "3dpain"), identities_per_chunk=2))
    assert (report.chunks_written, report.identities_written) == (2, IDENTITIES)
    out, expected = tmp_path / "3dpain", expected_files(samples)
    for kind, files in expected.items():
        archives = sorted(p.name for p in (out / kind).iterdir())
        assert archives == [f"{kind}_00000.tar.gz", f"{kind}_00001.tar.gz"]
        found = {}
        for archive in archives:
            found |= read_tar(out / kind / archive)
        assert sorted(found) == sorted(files), kind
        for name, data in found.items():
            if kind == "annotations":
                check_annotation(name, data, files[name])
            elif kind != "textured_meshes":
                assert data == files[name], name
    assert sorted(read_tar(out / "images/images_00001.tar.gz")) == sorted(n for n in expected["images"] if n.startswith("flame_sample_0002"))
    readme = (out / "README.txt").read_text()
    assert f"{IDENTITIES} identities" in readme and "AU43" in readme and "pain00 is pain_1" in readme
    again = export(ExportRequest(url=str(dataset), out=str(tmp_path / "again"), identities_per_chunk=2))
    assert again.chunks_written == 2  # same dataset, same bytes: the archives are reproducible
    for path in sorted(out.rglob("*.tar.gz")):
        assert path.read_bytes() == (tmp_path / "again" / path.relative_to(out)).read_bytes(), path


def test_glb_meshes_open_in_trimesh_with_their_texture(dataset, samples, tmp_path):
    import trimesh

    export(ExportRequest(url=str(dataset), out=str(tmp_path / "x"), identities_per_chunk=3))
    meshes = read_tar(tmp_path / "x/textured_meshes/textured_meshes_00000.tar.gz")
    assert sorted(meshes) == [f"flame_sample_{i:04d}.glb" for i in range(IDENTITIES)]
    members = samples["id-0000001"]
    scene = trimesh.load(io.BytesIO(meshes["flame_sample_0001.glb"]), file_type="glb", process=False)
    mesh = scene.to_geometry() if isinstance(scene, trimesh.Scene) else scene
    obj = [line.split() for line in members[MESH].decode().splitlines()]
    vertices = np.array([[float(x) for x in line[1:4]] for line in obj if line and line[0] == "v"])
    faces = np.array([[int(corner.split("/")[0]) - 1 for corner in line[1:]] for line in obj if line and line[0] == "f"])
    assert len(mesh.faces) == len(faces)
    # The same surface: every triangle's corners, in metres, are the OBJ's (cm) in the same order.
    assert np.allclose(mesh.vertices[mesh.faces] * 100, vertices[faces], atol=1e-3)
    texture = mesh.visual.material.baseColorTexture
    assert texture.size == Image.open(io.BytesIO(members[TEXTURE])).size
    uvs = np.array([[float(x) for x in line[1:3]] for line in obj if line and line[0] == "vt"])
    uv_ids = np.array([[int(corner.split("/")[1]) - 1 for corner in line[1:]] for line in obj if line and line[0] == "f"])
    assert np.allclose(mesh.visual.uv[mesh.faces], uvs[uv_ids], atol=1e-6)  # trimesh reads glTF's flipped v back
    reference = np.asarray(Image.open(io.BytesIO(members[TEXTURE])).convert("RGB"), float)
    assert np.abs(np.asarray(texture.convert("RGB"), float) - reference).mean() < 6  # the texture, JPEG-compressed


def test_folder_layout_reads_back_like_the_official_loader_with_the_trainers_split(dataset, samples, tmp_path):
    """Every image and annotation read back from the folder against the shards it came from; splits.csv equal to
    the trainer's identity split; pairing by the official code's name rules."""
    out = tmp_path / "folder"
    export(ExportRequest(url=str(dataset), out=str(out), layout="folder", mesh="obj", identities_per_chunk=2))
    expected = expected_files(samples)
    assert sorted(p.name for p in (out / "meshes_inpainted").iterdir()) == sorted(expected["images"])
    for name, data in expected["images"].items():
        assert (out / "meshes_inpainted" / name).read_bytes() == data, name
    assert sorted(p.name for p in (out / "annotations").iterdir()) == sorted(expected["annotations"])
    for name, labels in expected["annotations"].items():
        check_annotation(name, (out / "annotations" / name).read_bytes(), labels)
    assert (out / "textured_meshes/flame_sample_0002.obj").read_bytes() == samples["id-0000002"][MESH]
    with open(out / "splits.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["annotation_base_name", "split"]
    assert sorted(r["annotation_base_name"] + "_annotations.json" for r in rows) == sorted(expected["annotations"])
    trainer_split = {"train": "0", "val": "1", "test": "2"}
    for row in rows:
        index = int(row["annotation_base_name"].split("_")[2])
        assert row["split"] == trainer_split[SplitConfig(seed=0).split_of(f"id-{index:07d}")], row
    by_identity = {}
    for row in rows:
        by_identity.setdefault(row["annotation_base_name"].split("_pain_")[0], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_identity.values())  # identity-disjoint
    for image in (out / "meshes_inpainted").iterdir():  # the official loader's rules: strip "_textured_view_", "_neutral"
        base = image.stem.split("_textured_view_")[0]
        if "_neutral" in base:
            assert any(n.startswith(base.split("_neutral")[0] + "_pain_") for n in expected["annotations"])
        else:
            assert (out / "annotations" / f"{base}_annotations.json").exists(), image.name


def test_a_rerun_skips_finished_chunks_and_redoes_a_lost_one(dataset, tmp_path):
    out = tmp_path / "rerun"
    request = ExportRequest(url=str(dataset), out=str(out), identities_per_chunk=2)
    export(request)
    kept = out / "images/images_00000.tar.gz"
    before = kept.stat().st_mtime_ns
    (out / ".export/chunk-00001.json").unlink()  # as if the run had been killed before chunk 1 was recorded
    (out / "heatmaps/heatmaps_00001.tar.gz").unlink()
    report = export(request)
    assert (report.chunks_skipped, report.chunks_written) == (1, 1)
    assert kept.stat().st_mtime_ns == before and (out / "heatmaps/heatmaps_00001.tar.gz").exists()
    with pytest.raises(ExportError, match="other options.*layout"):
        export(ExportRequest(url=str(dataset), out=str(out), layout="folder", identities_per_chunk=2))


def test_a_chunk_that_fails_leaves_no_archive_and_no_record(dataset, tmp_path, monkeypatch):
    import factory.export.pain3d as pain3d

    calls = []

    def failing(mesh, texture):
        calls.append(1)
        if len(calls) == 2:
            raise pain3d.MeshError("mesh.obj holds no textured triangles")
        return b"glb"

    monkeypatch.setattr(pain3d, "obj_to_glb", failing)
    out = tmp_path / "failed"
    with pytest.raises(ExportError, match="id-0000001: mesh.obj holds no textured triangles"):
        export(ExportRequest(url=str(dataset), out=str(out), identities_per_chunk=2))
    assert not list(out.rglob("*.tar.gz")) and not list((out / ".export").glob("chunk-*"))
    assert not [p for p in (out / ".partial").rglob("*") if p.is_file()]  # partial files removed


def test_a_dataset_still_being_generated_exports_its_complete_chunks(dataset, tmp_path):
    import shutil

    partial = tmp_path / "growing"
    shutil.copytree(dataset, partial)
    manifest = Manifest.from_json((partial / "manifest.json").read_bytes())
    manifest.shards = manifest.shards[1:]  # identities 0 and 1 not committed yet
    save_manifest(Storage(str(partial)), manifest)
    report = export(ExportRequest(url=str(partial), out=str(tmp_path / "out"), identities_per_chunk=2))
    assert (report.chunks_written, report.chunks_waiting) == (1, 1) and "run again later" in report.text()


def test_hugging_face_parquet_loads_offline_with_typed_columns(dataset, samples, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    out = tmp_path / "hf"
    export(ExportRequest(url=str(dataset), out=str(out), format="hf", identities_per_chunk=2))
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    splits = {SplitConfig().split_of(key) for key in samples}
    assert set(loaded) == {{"val": "validation"}.get(s, s) for s in splits}
    rows = [row for split in loaded.values() for row in split]
    assert len(rows) == IDENTITIES * (PAIN + NEGATIVES) * len(VIEWS)  # one row per (pain image, neutral) pair
    features = next(iter(loaded.values())).features
    assert isinstance(features["image"], datasets.Image) and isinstance(features["neutral"], datasets.Image)
    assert features["pspi"].dtype == "int32" and features["aus"]["AU43"].dtype == "int32"
    for split, table in loaded.items():
        for row in table:
            members = samples[row["identity"]]
            assert {"validation": "val"}.get(split, split) == SplitConfig().split_of(row["identity"])
            expression = next(e for e in members["meta"]["expressions"] if e["name"] == row["expression"])
            assert row["pspi"] == expression["pspi"] and row["aus"] == {au: expression["aus"].get(au, 0) for au in RIG_AUS}
            pain = Image.open(io.BytesIO(members[view_member(row["expression"], row["view"])]))
            assert np.array_equal(np.asarray(row["image"]), np.asarray(pain))
            neutral = Image.open(io.BytesIO(members[view_member("neutral", row["view"])]))
            assert np.array_equal(np.asarray(row["neutral"]), np.asarray(neutral))
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and f"identities: {IDENTITIES}" in card and "arXiv 2509.16727" in card
    for plot in ("pspi", "aus", "demographics", "samples"):
        assert Image.open(out / f"plots/{plot}.png").size[0] > 100


def test_the_documented_webdataset_recipe_gives_typed_columns(dataset, samples, tmp_path, monkeypatch):
    """docs/DATA.md's `load_dataset("webdataset", data_files=…, features=…)` recipe, offline, pointed by a glob at
    the images set alone (the layers and assets files beside it are not read)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import Features, List, Value, load_dataset
    from datasets import Image as ImageFeature

    expression = {"name": Value("string"), "pspi": Value("int32"), "hard_negative": Value("bool"),
                  "aus": {au: Value("int32") for au in PSPI_AUS}}
    features = Features({
        "__key__": Value("string"), "neutral.v0.jpg": ImageFeature(), "pain00.v0.jpg": ImageFeature(),
        "meta.json": {"id": Value("string"), "index": Value("int32"), "expressions": List(expression),
                      "demographics": {"age": Value("int32"), "gender": Value("string"), "ethnicity": Value("string")}},
    })
    rows = load_dataset("webdataset", data_files={"train": str(dataset / "images/*.tar")}, features=features, split="train",
                        cache_dir=str(tmp_path / "hf"))
    assert rows.features == features and len(rows) == IDENTITIES
    row = rows[2]
    meta = samples[row["__key__"]]["meta"]
    assert row["meta.json"]["expressions"][1]["aus"] == {au: meta["expressions"][1]["aus"][au] for au in PSPI_AUS}
    assert row["meta.json"]["expressions"][1]["pspi"] == meta["expressions"][1]["pspi"]
    assert row["pain00.v0.jpg"].size == (64, 64)


def test_s3_in_and_out_through_the_cli(dataset, samples, s3):
    fs = s3.filesystem()
    fs.put(str(dataset), f"{s3.bucket}/ds", recursive=True)
    source, target = f"s3://{s3.bucket}/ds", f"s3://{s3.bucket}/exported"
    runner = CliRunner()
    result = runner.invoke(app, ["export", source, "--out", target, "--layout", "folder", "--identities-per-chunk", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "exported 3 identities" in result.output
    fs.invalidate_cache()
    name = "flame_sample_0001_pain_2_textured_view_001_inpainted.jpg"
    assert fs.cat_file(f"{s3.bucket}/exported/meshes_inpainted/{name}") == samples["id-0000001"][view_member("pain01", "v1")]
    assert fs.cat_file(f"{s3.bucket}/exported/splits.csv").startswith(b"annotation_base_name,split\n")
    again = runner.invoke(app, ["export", source, "--out", target, "--layout", "folder", "--identities-per-chunk", "2", "--no-progress"])
    assert again.exit_code == 0 and "0 chunks written, 2 already done" in again.output
    archive = runner.invoke(app, ["export", source, "--out", f"{target}-hf", "--format", "hf", "--no-progress"])
    assert archive.exit_code == 0, archive.output
    assert fs.exists(f"{s3.bucket}/exported-hf/README.md") and fs.exists(f"{s3.bucket}/exported-hf/plots/pspi.png")


def test_the_card_command_writes_readme_and_plots(dataset, tmp_path):
    result = CliRunner().invoke(app, ["card", str(dataset), "--out", str(tmp_path / "card"), "--no-progress"])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "card/README.md").read_text()
    assert f"identities: {IDENTITIES}" in card and "ICT FaceKit" in card and "| AU43 |" in card and '"image_size": 64' in card
    assert not card.startswith("---")
    grid = Image.open(tmp_path / "card/plots/samples.png")
    assert grid.size[0] > 200 and np.asarray(grid).std() > 10  # faces drawn, not a blank sheet


@pytest.mark.parametrize("arguments, message", [
    (["export", "{missing}", "--out", "{out}"], "not a painfactory dataset"),
    (["export", "{dataset}", "--out", "{out}", "--format", "coco"], "--format must be one of 3dpain, hf"),
    (["export", "{dataset}", "--out", "{out}", "--layout", "zip"], "--layout must be one of archive, folder"),
    (["export", "{dataset}", "--out", "{out}", "--format", "hf", "--layout", "folder"], "apply to --format 3dpain only"),
    (["export", "{dataset}", "--out", "{out}", "--identities-per-chunk", "0"], "--identities-per-chunk must be >= 1"),
])
def test_bad_input_gets_one_line(dataset, tmp_path, arguments, message):
    values = {"missing": str(tmp_path / "nothing"), "out": str(tmp_path / "out"), "dataset": str(dataset)}
    result = CliRunner().invoke(app, [a.format(**values) for a in arguments])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


@pytest.mark.parametrize("obj, message", [
    ("v 1 2 3\nvt 0 0\n" + "f 1/1 1/1 1/1 1/1\n" * 3, "a face with other corners"),
    ("v 1 2 x\nvt 0 0\nf 1/1 1/1 1/1\n", "not a triangle mesh"),
    ("v 1 2 3\nvt 0 0\nf 1/1 2/1 1/1\n", "a vertex or UV that does not exist"),
    ("# nothing\n", "no textured triangles"),
])
def test_a_broken_mesh_is_named(obj, message):
    from factory.format.glb import MeshError, obj_to_glb

    with pytest.raises(MeshError, match=message):
        obj_to_glb(obj.encode(), b"")
