"""FLAME files are read without chumpy or scipy, through an unpickler that refuses anything else, naming it; a
pickle that would run code is refused before it runs anything."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from factory.face.flame.files import FlameFileError, read_flame, read_flame_uv, read_landmark_embedding
from factory.face.flame.unpickle import UnsafePickleError, load_pickle
from tests.flame_files import arrays, look_alike_modules, write_flame, write_landmarks, write_uv_obj

EXPECTED_SHAPES = {"v_template": (3,), "shapedirs": (3, 300), "exprdirs": (3, 100), "posedirs": (3, 36), "weights": (5,)}


@pytest.fixture(scope="module")
def variants(tmp_path_factory, flame_2020):
    """The same synthetic head as a 2020 pickle (chumpy, scipy.sparse.csc), a 2023 pickle (scipy.sparse._csc,
    protocol 4) and an .npz (dense J_regressor, a landmark embedding inside)."""
    folder = tmp_path_factory.mktemp("variants")
    return {"2020": flame_2020, "2023": write_flame(folder / "flame2023.pkl", "2023"),
            "npz": write_flame(folder / "flame.npz", "npz", embed_landmarks=True)}


def test_every_variant_reads_to_the_same_arrays(variants):
    data, truth = arrays()
    for name, synthetic in variants.items():
        flame = read_flame(synthetic.path)
        vertices = len(truth.source_vertex)
        for key, tail in EXPECTED_SHAPES.items():
            assert getattr(flame, key).shape == (vertices, *tail), (name, key)
        assert flame.j_regressor.shape == (5, vertices) and flame.faces.dtype == np.int64
        assert np.array_equal(flame.v_template, data["v_template"]), name
        assert np.array_equal(flame.shapedirs, data["shapedirs"][..., :300]) and np.array_equal(flame.exprdirs, data["shapedirs"][..., 300:])
        assert np.allclose(flame.j_regressor, data["J_regressor"], rtol=0, atol=1e-15), name  # the sparse matrix, densified
        assert flame.parents.tolist() == [-1, 0, 1, 1, 1]  # root's parent stored as 2**32 - 1
        assert flame.sha256 == hashlib.sha256(synthetic.path.read_bytes()).hexdigest()
    assert variants["npz"].path.suffix == ".npz" and read_flame(variants["npz"].path).landmarks is not None
    assert read_flame(variants["2020"].path).landmarks is None


def test_the_2020_variant_really_holds_chumpy_and_scipy_globals(variants):
    raw = variants["2020"].path.read_bytes()
    assert b"chumpy.ch" in raw and b"scipy.sparse.csc" in raw and b"csc_matrix" in raw
    assert b"scipy.sparse._csc" in variants["2023"].path.read_bytes()


def test_landmark_embedding_and_uv_files(tmp_path, flame_2020):
    write_landmarks(tmp_path / "landmark_embedding.npy", flame_2020)  # a pickled dict inside a .npy, as DECA ships it
    embedding, digest = read_landmark_embedding(tmp_path / "landmark_embedding.npy", len(flame_2020.faces))
    assert embedding.numbers.tolist() == list(range(68)) and embedding.bary.shape == (68, 3) and len(digest) == 64
    write_uv_obj(tmp_path / "head_template.obj", flame_2020)
    uv = read_flame_uv(tmp_path / "head_template.obj", len(flame_2020.faces))
    assert uv.face_uvs.shape == (len(flame_2020.faces), 3) and 0 <= uv.uvs.min() and uv.uvs.max() <= 1


class RunsCode:
    """A pickle of this calls os.system when loaded."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class OpensFile:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("payload", ["system", "open", "nested"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, payload):
    marker = tmp_path / "pwned"
    bait = {"system": RunsCode(f"touch {marker}"), "open": OpensFile(str(marker)),
            "nested": {"v_template": np.zeros((3, 3)), "shapedirs": [RunsCode(f"touch {marker}")]}}[payload]
    evil = tmp_path / "generic_model.pkl"
    evil.write_bytes(pickle.dumps(bait, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix\.system|io\.open)"):
        read_flame(evil)
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # and the same bytes through plain pickle do run it
    assert marker.exists()


def test_other_chumpy_classes_and_unknown_modules_are_refused_by_name(tmp_path):
    class Add:  # chumpy.ch_ops.add: a computed chumpy node, not an array
        pass

    with look_alike_modules({"chumpy": {}, "chumpy.ch_ops": {"add": Add}}):
        data = pickle.dumps({"shapedirs": Add()}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing to load chumpy\.ch_ops\.add"):
        load_pickle(data)
    with pytest.raises(UnsafePickleError, match="refusing to reconstruct"):
        # copyreg._reconstructor (protocol 0/1's way to make instances) with a class it may not make
        load_pickle(b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.")


def test_a_sparse_matrix_too_large_for_flame_is_refused_before_it_is_allocated(tmp_path):
    from tests.flame_files import sparse_csc

    matrix = sparse_csc(np.eye(3), {})
    matrix.__dict__["_shape"] = (10**6, 10**6)  # a terabyte once dense
    with look_alike_modules({"scipy": {}, "scipy.sparse": {}, "scipy.sparse.csc": {"csc_matrix": type(matrix)}}):
        data = pickle.dumps({"J_regressor": matrix}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"sparse matrix of shape \(1000000, 1000000\)"):
        load_pickle(data)


def test_npy_with_code_and_npz_with_object_arrays_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "landmark_embedding.npy"
    np.save(evil, np.array([RunsCode(f"touch {marker}")], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=r"refusing to load posix\.system"):
        read_landmark_embedding(evil, 10)
    objects = tmp_path / "flame.npz"
    np.savez(objects, v_template=np.array([RunsCode(f"touch {marker}")], dtype=object))
    with pytest.raises(FlameFileError, match="not a plain .npz of arrays"):
        read_flame(objects)
    assert not marker.exists()


def test_a_file_missing_a_key_or_with_a_wrong_shape_is_named(tmp_path):
    data, _ = arrays()
    del data["weights"]
    np.savez(tmp_path / "no_weights.npz", **data)
    with pytest.raises(FlameFileError, match="has no 'weights'"):
        read_flame(tmp_path / "no_weights.npz")
    data, _ = arrays()
    data["posedirs"] = data["posedirs"][:, :, :30]
    np.savez(tmp_path / "short.npz", **data)
    with pytest.raises(FlameFileError, match=r"'posedirs' .* has shape"):
        read_flame(tmp_path / "short.npz")
    with pytest.raises(FlameFileError, match="cannot read the FLAME model"):
        read_flame(tmp_path / "absent.pkl")
    (tmp_path / "broken.pkl").write_bytes(pickle.dumps(data, protocol=2)[:1000])
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        read_flame(tmp_path / "broken.pkl")
