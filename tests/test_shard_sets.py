"""Shard sets (images, layers, assets) and GLB meshes: what each set holds and weighs, that training and the
readers open only the sets they need, the GLB round trip through trimesh, the mesh conversions of `factory export`,
and the `sets` / `mesh_format` settings from the config to the files (a real renderer, 64 px; one Ray run)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from factory.cli import app
from factory.export import ExportRequest, export
from factory.format.dataset import DatasetError, open_dataset
from factory.format.glb import glb_to_obj, obj_to_glb, parse_obj, read_glb
from factory.format.manifest import Manifest, save_manifest
from factory.format.members import IMAGES, MESH, MESH_FORMATS, MESH_GLB, SETS, TEXTURE, member_set
from factory.format.sets import split_members, write_shard_sets
from factory.format.shards import ShardError, ShardPlan
from factory.format.storage import Storage
from factory.options import ConfigError
from factory.run.config import GenerateConfig
from factory.spec.expressions import ExpressionConfig
from factory.spec.plan import PlanConfig, plan_identity
from factory.spec.split import SplitConfig
from trainer.data import ShardPairs

IDENTITIES = 2
PLAN = PlanConfig(expressions=ExpressionConfig(pain_expressions=2), view_yaws=(0.0, 30.0))


@pytest.fixture(scope="module")
def renderer_and_layers():
    """A renderer (64 px) and two identities' layers, by key: (spec, layers)."""
    from factory.run.identity import IdentityRenderer, RenderConfig

    renderer = IdentityRenderer(RenderConfig(image_size=64, texture_size=128))
    return renderer, {spec.id: (spec, renderer.render(spec)) for spec in (plan_identity(index, 0, PLAN) for index in range(IDENTITIES))}


@pytest.fixture(scope="module")
def encoded(renderer_and_layers) -> dict[str, dict[str, dict[str, bytes]]]:
    """Two identities' members as the renderer encodes them, by mesh format ("obj": mesh.obj + texture.png, "glb":
    mesh.glb), then by key."""
    renderer, layers = renderer_and_layers
    return {mesh_format: {key: renderer.encode_sample(spec, one, mesh_format) for key, (spec, one) in layers.items()}
            for mesh_format in MESH_FORMATS}


@pytest.mark.parametrize("sets", [(IMAGES,), (IMAGES, "layers"), (IMAGES, "assets")])
def test_the_renderer_encodes_only_the_members_of_the_sets_asked_for(renderer_and_layers, encoded, sets):
    """A run without depth or meshes does not pay for encoding them; what it encodes is byte for byte the same."""
    renderer, layers = renderer_and_layers
    for key, (spec, one) in layers.items():
        members = renderer.encode_sample(spec, one, "glb", sets)
        assert members == {member: data for member, data in encoded["glb"][key].items() if member_set(member) in sets}
    with pytest.raises(ValueError, match="unknown shard set.* meshes; choose from images, layers, assets"):
        renderer.encode_sample(spec, one, "glb", (IMAGES, "meshes"))


@pytest.fixture(scope="module")
def rendered(encoded) -> dict[str, dict[str, bytes]]:
    return encoded["obj"]


def write(root: Path, rendered: dict, sets: tuple[str, ...] = SETS) -> Path:
    """The rendered identities' members as a dataset of one shard in `sets`, the way the workers write it."""
    storage = Storage(str(root))
    manifest = Manifest(package_version="0.1.0", seed=0, config={}, identities=IDENTITIES, sets=sets)
    (task,) = ShardPlan(IDENTITIES, IDENTITIES)
    manifest.add(write_shard_sets(storage, task, sets, rendered.items()))
    save_manifest(storage, manifest)
    return root


@pytest.fixture(scope="module")
def dataset(encoded, tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("sets") / "ds", encoded["glb"])


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_the_glb_written_from_arrays_is_obj_to_glb_of_the_obj_and_png(encoded):
    """encode_sample writes mesh.glb straight from the arrays; converting the mesh.obj and texture.png it writes
    otherwise gives the same bytes (the rest of the sample is the same too)."""
    for key, members in encoded["glb"].items():
        obj_members = encoded["obj"][key]
        assert members[MESH_GLB] == obj_to_glb(obj_members[MESH], obj_members[TEXTURE])
        assert {name: payload for name, payload in obj_members.items() if name not in (MESH, TEXTURE)} == \
            {name: payload for name, payload in members.items() if name != MESH_GLB}


def test_each_set_holds_its_members_and_the_images_set_is_the_small_one(dataset, rendered):
    manifest = Manifest.from_json((dataset / "manifest.json").read_bytes())
    (record,) = manifest.shards
    names = {name: tar_names(dataset / record.file(name).path) for name in SETS}
    for name, entries in names.items():
        assert {entry.split(".", 1)[0] for entry in entries} == set(rendered)  # the same keys in every set
        assert all(member_set(entry.split(".", 1)[1]) == name for entry in entries), name
    members = {entry.split(".", 1)[1] for entry in names[IMAGES]}
    assert "meta.json" in members and "pain01.v1.jpg" in members and "pain00.heat.png" in members
    assert {entry.split(".", 1)[1] for entry in names["assets"]} == {MESH_GLB}
    assert any(entry.endswith(".v1.depth.png") for entry in names["layers"]) and any(entry.endswith(".seg.png") for entry in names["layers"])
    sizes = {name: record.file(name).bytes / IDENTITIES for name in SETS}
    print("bytes per identity at 64 px:", {name: f"{size / 1e3:.0f} kB" for name, size in sizes.items()})
    assert sizes[IMAGES] < sizes["assets"] and sizes[IMAGES] < 0.5 * sum(sizes.values())  # what training streams


def test_the_glb_of_the_assets_set_opens_in_trimesh_with_its_texture(dataset, rendered):
    import trimesh

    members = dict(open_dataset(str(dataset)).samples(sets=("assets",)))["id-0000001"]
    original = rendered["id-0000001"]
    scene = trimesh.load(io.BytesIO(members[MESH_GLB]), file_type="glb", process=False)
    mesh = scene.to_geometry() if isinstance(scene, trimesh.Scene) else scene
    vertices, uvs, corners = parse_obj(original[MESH].decode())
    assert len(mesh.faces) == len(corners)
    assert np.allclose(mesh.vertices[mesh.faces] * 100, vertices[corners[..., 0]], atol=1e-3)  # metres, corner by corner
    assert np.allclose(mesh.visual.uv[mesh.faces], uvs[corners[..., 1]], atol=1e-6)
    texture = mesh.visual.material.baseColorTexture
    assert texture.size == Image.open(io.BytesIO(original[TEXTURE])).size == (128, 128)
    reference = np.asarray(Image.open(io.BytesIO(original[TEXTURE])).convert("RGB"), float)
    assert np.abs(np.asarray(texture.convert("RGB"), float) - reference).mean() < 6  # the same texture, as JPEG

    obj, png = glb_to_obj(members[MESH_GLB])  # and back, for `factory export --mesh obj`
    back_vertices, back_uvs, back_corners = parse_obj(obj.decode())
    assert np.allclose(back_vertices[back_corners[..., 0]], vertices[corners[..., 0]], atol=1e-3)
    assert np.allclose(back_uvs[back_corners[..., 1]], uvs[corners[..., 1]], atol=1e-6)
    assert Image.open(io.BytesIO(png)).size == (128, 128)
    assert len(members[MESH_GLB]) < len(original[MESH]) + len(original[TEXTURE])


def test_export_takes_the_mesh_from_the_assets_set_as_glb_or_obj(dataset, tmp_path):
    glb = dict(open_dataset(str(dataset)).samples(sets=("assets",)))["id-0000000"][MESH_GLB]
    export(ExportRequest(url=str(dataset), out=str(tmp_path / "glb"), layout="folder"))
    assert (tmp_path / "glb/textured_meshes/flame_sample_0000.glb").read_bytes() == glb  # copied, not converted
    export(ExportRequest(url=str(dataset), out=str(tmp_path / "obj"), layout="folder", mesh="obj"))
    assert (tmp_path / "obj/textured_meshes/flame_sample_0000.obj").read_bytes() == glb_to_obj(glb)[0]
    assert read_glb(glb).triangles.shape[1] == 3


def test_training_reads_only_the_images_set(dataset, rendered, tmp_path):
    """With the layers and assets files gone, training data still streams; verify names what is missing."""
    images_only = Path(shutil.copytree(dataset, tmp_path / "ds"))
    shutil.rmtree(images_only / "layers")
    shutil.rmtree(images_only / "assets")
    pairs = list(ShardPairs(str(images_only), SplitConfig(fractions=(1.0, 0.0, 0.0))).pairs("train"))
    expressions = len(json.loads(rendered["id-0000000"]["meta.json"])["expressions"])
    assert len(pairs) == IDENTITIES * len(PLAN.view_yaws) * expressions  # per view: each non-neutral and neutral–neutral
    result = CliRunner().invoke(app, ["verify", str(images_only), "--no-progress"])
    assert result.exit_code == 1 and "layers/shard-000000.tar: missing" in result.output
    with pytest.raises(ShardError, match=r"^assets/shard-000000.tar: missing"):
        list(open_dataset(str(images_only)).samples(sets=(IMAGES, "assets")))


def test_a_dataset_written_without_a_set_says_so(rendered, tmp_path):
    root = write(tmp_path / "images-only", rendered, sets=(IMAGES,))
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["images", "manifest.json"]
    with pytest.raises(DatasetError, match="written without the assets set"):
        list(open_dataset(str(root)).samples(sets=(IMAGES, "assets")))
    with pytest.raises(DatasetError, match="written without the assets set"):
        export(ExportRequest(url=str(root), out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert CliRunner().invoke(app, ["verify", str(root), "--no-progress"]).exit_code == 0


def test_obj_assets_keep_mesh_and_texture(rendered, tmp_path):
    root = write(tmp_path / "obj", rendered)
    assets = dict(open_dataset(str(root)).samples(sets=("assets",)))["id-0000000"]
    assert assets == {MESH: rendered["id-0000000"][MESH], TEXTURE: rendered["id-0000000"][TEXTURE]}


def test_every_kind_of_member_has_a_set():
    from factory.format.members import KINDS, SET_OF_KIND

    assert set(SET_OF_KIND) == set(KINDS) and set(SET_OF_KIND.values()) == set(SETS)
    assert [member_set(m) for m in ("meta.json", "neg00.v2.jpg", "pain00.heat.png", "neutral.v0.seg.png", "mesh.glb", "texture.png")] == \
        [IMAGES, IMAGES, IMAGES, "layers", "assets", "assets"]


def test_a_sample_without_members_for_a_set_is_refused():
    with pytest.raises(ShardError, match="id-0000000: no members for the layers set"):
        split_members("id-0000000", {"meta.json": b"{}", "neutral.v0.jpg": b""}, (IMAGES, "layers"))


@pytest.mark.parametrize("sets, message", [
    (("layers",), "sets must name images"), (("images", "meshes"), "sets must name images"), (("images", "images"), "each once"),
])
def test_bad_sets_are_refused_by_name(sets, message):
    with pytest.raises(ConfigError, match=message):
        GenerateConfig(identities=1, out="x", sets=sets)
    with pytest.raises(ConfigError, match="mesh_format must be one of glb, obj"):
        GenerateConfig(identities=1, out="x", mesh_format="fbx")
    assert GenerateConfig(identities=1, out="x", sets=("assets", "images")).sets == ("images", "assets")  # one spelling


def test_generate_writes_the_sets_it_is_asked_for(tmp_path, ray_local):
    """--sets and --mesh-format from the command line to the files; a resume with other sets is refused."""
    out = tmp_path / "ds"
    flags = ["generate", "--identities", "1", "--out", str(out), "--image-size", "32", "--workers", "1", "--no-progress"]
    (tmp_path / "c.yaml").write_text("render: {texture_size: 64}\nplan: {view_yaws: [0]}\n")
    result = CliRunner().invoke(app, [*flags, "--config", str(tmp_path / "c.yaml"), "--sets", "images,assets", "--mesh-format", "obj"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sets"] == ["images", "assets"] and manifest["config"]["mesh_format"] == "obj"
    assert sorted(p.name for p in out.iterdir() if p.name in SETS) == ["assets", "images"]  # no layers
    assert sorted(tar_names(out / "assets/shard-000000.tar")) == ["id-0000000.mesh.obj", "id-0000000.texture.png"]
    assert CliRunner().invoke(app, ["verify", str(out), "--no-progress"]).exit_code == 0
    refused = CliRunner().invoke(app, [*flags, "--config", str(tmp_path / "c.yaml")])
    assert refused.exit_code != 0 and "(mesh_format, sets differ)" in refused.output, refused.output

