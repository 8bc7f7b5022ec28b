"""A restricted unpickler for FLAME model files: numbers and arrays come out, nothing else runs.

FLAME 2020's `generic_model.pkl` was written by Python 2 with chumpy objects (`chumpy.ch.Ch`, which only wrap an
array) and a scipy sparse matrix (`J_regressor`); FLAME 2023's pickles hold plain numpy arrays. Loading a pickle
calls whatever globals it names, so a pickle is a program: this unpickler resolves a global only from the small
table below and refuses every other name before anything is called, naming it.

    data = load_pickle(Path("generic_model.pkl"))      # {'v_template': ndarray, 'J_regressor': ndarray, …}

chumpy and scipy are not needed (nor imported): their classes map to stand-ins that keep the array and do nothing
else, and `plain` turns those into numpy arrays (a sparse matrix into a dense one). The numpy globals allowed are
the ones numpy itself pickles arrays, dtypes and scalars with, under their numpy 1 and numpy 2 module names.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from factory.errors import FactoryError


class UnsafePickleError(FactoryError, pickle.UnpicklingError):
    """The pickle names a global this loader does not allow (it could run code), or is not a FLAME-style file."""


class ChumpyArray:
    """Stands in for `chumpy.ch.Ch`: a pickled Ch is a dict of bookkeeping around its array `x`; only `x` is kept."""

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict) or "x" not in state:
            raise UnsafePickleError("a chumpy object without its array 'x'")
        self.array = np.asarray(state["x"])


MAX_DENSE_ENTRIES = 50_000_000  # a densified sparse matrix larger than this is no FLAME J_regressor (5 × 5,023)


class SparseMatrix:
    """Stands in for a pickled scipy sparse matrix (CSC, CSR or COO), kept as its index arrays until `dense()`."""

    layout = ""

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError(f"a {self.layout} sparse matrix without its arrays")
        self.state = state

    def dense(self) -> np.ndarray:
        state = self.state
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape", ())))
        if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > MAX_DENSE_ENTRIES:
            raise UnsafePickleError(f"a sparse matrix of shape {shape}: FLAME's are (joints, vertices), far smaller")
        data = np.asarray(state["data"], dtype=np.float64)
        out = np.zeros(shape, dtype=np.float64)
        if self.layout == "coo":
            coords = state["coords"] if "coords" in state else (state["row"], state["col"])
            np.add.at(out, (np.asarray(coords[0]), np.asarray(coords[1])), data)
            return out
        indices, indptr = np.asarray(state["indices"]), np.asarray(state["indptr"])
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))  # the column (CSC) or row (CSR) of each entry
        rows, cols = (indices, major) if self.layout == "csc" else (major, indices)
        np.add.at(out, (rows, cols), data)
        return out


class CscMatrix(SparseMatrix):
    layout = "csc"


class CsrMatrix(SparseMatrix):
    layout = "csr"


class CooMatrix(SparseMatrix):
    layout = "coo"


STAND_INS = (ChumpyArray, CscMatrix, CsrMatrix, CooMatrix)


def reconstruct(cls, base, state):
    """`copyreg._reconstructor`, limited to creating a stand-in: how protocol-2 pickles make plain class instances."""
    if cls not in STAND_INS or base is not object or state is not None:
        raise UnsafePickleError(f"refusing to reconstruct {getattr(cls, '__name__', cls)!r} from {getattr(base, '__name__', base)!r}")
    return object.__new__(cls)


def latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode`, which protocol-2 pickles written by Python 3 use for bytes (numpy's raw array data); only
    the latin-1 round trip that pickle itself relies on is allowed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    """numpy's own pickling helpers, under the module names numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) write."""
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer

    table: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{package}.multiarray", "scalar")] = scalar
        table[(f"{package}.numeric", "_frombuffer")] = _frombuffer  # protocol-5 pickles of contiguous arrays
    return table


# (module, name) → the object it resolves to. Python 2 spellings (copy_reg, __builtin__) are listed as written.
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    **{(module, "_reconstructor"): reconstruct for module in ("copy_reg", "copyreg")},
    **{(module, "object"): object for module in ("__builtin__", "builtins")},
    **{(module, "set"): set for module in ("__builtin__", "builtins")},
    **{(module, "frozenset"): frozenset for module in ("__builtin__", "builtins")},
    ("_codecs", "encode"): latin1_bytes,
    ("chumpy.ch", "Ch"): ChumpyArray,
    **{(f"scipy.sparse.{module}", f"{layout}_matrix"): stand_in
       for layout, stand_in in (("csc", CscMatrix), ("csr", CsrMatrix), ("coo", CooMatrix))
       for module in (layout, f"_{layout}")},
    **_numpy_globals(),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals from ALLOWED_GLOBALS only; Python 2 strings are read as latin-1 (what numpy expects)."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load {module}.{name}: FLAME files hold only arrays, chumpy arrays and "
                                    "sparse matrices, and this name could run code") from None

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a pickle with persistent references")


def load_pickle(source: Path | bytes) -> object:
    """The object a pickle file (or its bytes) holds, with stand-ins turned into numpy arrays by `plain`."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return plain(RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load())
    except UnsafePickleError:
        raise
    except Exception as error:  # a damaged or truncated file, or stand-ins with bad arrays: one line naming it
        raise UnsafePickleError(f"not a readable pickle: {type(error).__name__}: {error}") from None


def plain(value: object) -> object:
    """Stand-ins → numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(value, ChumpyArray):
        return value.array
    if isinstance(value, SparseMatrix):
        return value.dense()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value
