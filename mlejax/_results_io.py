"""The results of a stream: assembled chunk by chunk in host memory or in ``.npy`` files, and
reopened from disk.

``fit_batch(..., out=DIR)`` writes one ``.npy`` file per result array (``params.beta.npy``,
``loglik.npy``, ``trace.npy`` ...) through memmaps whose pages are released after each chunk,
so host memory stays flat in K, and at the end a JSON manifest (``fit_batch.json``: the
files, their shapes and dtypes, and the structure of the result, :mod:`mlejax._result_structure`).
:func:`open_results` reopens such a directory as a result of read-only memmaps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings

import jax
import numpy as np

from mlejax import _host_memory
from mlejax._host_memory import drop_pages
from mlejax._result_structure import NoJSON, decode_structure, encode_structure
from mlejax.result import FitResult
from mlejax.status import Status

__all__ = ["Assembler", "open_results", "write_json"]


def _leaf_file_names(paths) -> list[str]:
    """File names for the result leaves: ``.params['beta']`` -> ``params.beta``."""
    names = []
    for path in paths:
        name = re.sub(r"[^A-Za-z0-9_.-]+", ".", jax.tree_util.keystr(path)).strip(".")
        name = re.sub(r"\.+", ".", name) or "leaf"
        while name in names:
            name += "_"
        names.append(name)
    return names


class _NpyFile:
    """A ``.npy`` file of ``size`` rows filled through a memmap whose pages are released
    after every chunk (:func:`mlejax._host_memory.drop_pages`), so it can be far larger than memory. Its
    leading size can change in place: NumPy pads the header for that."""

    def __init__(self, path: str, row_shape: tuple, dtype: np.dtype, size: int):
        self.path, self.row_shape, self.dtype = path, row_shape, dtype
        self.row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
        self.map: np.memmap | None = None
        if os.path.exists(path):  # a new file: an earlier result may still map the old one
            os.remove(path)
        with open(path, "xb") as fh:
            self.offset = self._header(fh, size)
        self.size = -1
        self.resize(size)

    def _header(self, fh, size: int) -> int:
        fh.seek(0)
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                 "shape": (size,) + self.row_shape})
        return fh.tell()

    def resize(self, size: int) -> None:
        self.close()
        with open(self.path, "r+b") as fh:
            if self._header(fh, size) != self.offset:
                raise RuntimeError(f"could not resize {self.path} in place: its .npy header "
                                   "changed length.")
            fh.truncate(self.offset + size * self.row_bytes)  # sparse: no data written
        self.size = size
        if size * self.row_bytes:
            self.map = np.memmap(self.path, self.dtype, "r+", self.offset,
                                 (size,) + self.row_shape)

    def close(self) -> None:
        if self.map is not None:
            self.map.flush()
            drop_pages(self.map)
            self.map = None

    def open_read(self) -> np.ndarray:
        if self.size * self.row_bytes == 0:
            return np.zeros((self.size,) + self.row_shape, self.dtype)
        return np.load(self.path, mmap_mode="r")


_MANIFEST = "fit_batch.json"
# Where mlejax before version 2 of the manifest kept the result's structure, as a pickle:
# never loaded (unpickling a crafted file runs code), only named in an error and removed.
_OLD_PICKLE = "fit_batch.treedef.pkl"


class Assembler:
    """The results of K datasets, filled chunk by chunk: in host memory, or (``out=DIR``)
    in ``.npy`` files of DIR. Grown on demand when K is not known in advance, as with a
    generator of chunks."""

    def __init__(self, k: int | None, template: FitResult, out=None):
        with_paths, self.treedef = jax.tree_util.tree_flatten_with_path(template)
        self.specs = [(tuple(x.shape[1:]), np.dtype(x.dtype)) for _, x in with_paths]
        self.names = _leaf_file_names([p for p, _ in with_paths])
        # What a dataset not fitted (interrupted) holds: NaN, 0, and NOT_RUN as its status.
        self.fills = [np.int32(Status.NOT_RUN) if name.split(".")[-1] == "status"
                      else (np.nan if dt.kind == "f" else 0)
                      for name, (_, dt) in zip(self.names, self.specs)]
        self.known = k is not None
        self.filled = np.zeros(k or 0, bool)
        self.row_bytes = sum(int(np.prod(shape, dtype=np.int64)) * dt.itemsize
                             for shape, dt in self.specs)
        self.warned = False
        self.out = None if out is None else os.fspath(out)
        self.files: list[_NpyFile] = []
        if self.out is None:
            self._check_memory(k or 0)
            self.leaves = [self._empty(k or 0, spec, fill)
                           for spec, fill in zip(self.specs, self.fills)]
        else:
            os.makedirs(self.out, exist_ok=True)
            for stale in (_MANIFEST, _OLD_PICKLE):  # a finished run's; rewritten at the end
                if os.path.exists(os.path.join(self.out, stale)):
                    os.remove(os.path.join(self.out, stale))
            self.files = [_NpyFile(os.path.join(self.out, name + ".npy"), shape, dt, k or 0)
                          for name, (shape, dt) in zip(self.names, self.specs)]

    def _check_memory(self, k: int) -> None:
        need = k * self.row_bytes
        avail = _host_memory.available_memory()
        if self.warned or avail is None or need <= avail / 2:
            return
        self.warned = True
        warnings.warn(f"the results of {k:,} fits take {need / 2**30:.1f} GiB of host memory "
                      f"({self.row_bytes:,} bytes a fit), more than half of the "
                      f"{avail / 2**30:.1f} GiB available: pass out=DIR to write them to disk "
                      "as they are fitted (host memory then stays flat), or a smaller "
                      "trace_len.", stacklevel=6)

    @staticmethod
    def _empty(k, spec, fill):
        shape, dt = spec
        return np.full((k,) + shape, fill, dt)

    def _grow(self, n: int):
        size = max(n, 2 * self.filled.size)
        if self.out is None:
            self._check_memory(size)
            self.leaves = [np.concatenate([b, self._empty(size - b.shape[0], spec, fill)])
                           for b, spec, fill in zip(self.leaves, self.specs, self.fills)]
        else:
            for f in self.files:
                f.resize(size)
        self.filled = np.concatenate([self.filled, np.zeros(size - self.filled.size, bool)])

    def put(self, index: np.ndarray, leaves: list):
        if index.size and index.max() >= self.filled.size:
            self._grow(int(index.max()) + 1)
        if self.out is None:
            for buf, x in zip(self.leaves, leaves):
                buf[index] = np.asarray(x)[: index.size]
        else:
            for f, x in zip(self.files, leaves):
                if f.map is not None:
                    f.map[index] = np.asarray(x)[: index.size]
                    drop_pages(f.map)
        self.filled[index] = True

    def result(self) -> FitResult:
        n = self.filled.size if self.known else (int(np.nonzero(self.filled)[0].max()) + 1
                                                 if self.filled.any() else 0)
        if self.out is None:
            res = jax.tree_util.tree_unflatten(self.treedef, [b[:n] for b in self.leaves])
            status = np.where(self.filled[:n], res.status, np.int32(Status.NOT_RUN))
            return dataclasses.replace(res, status=status.astype(np.int32))
        return self._finish_files(n)

    def _finish_files(self, n: int) -> FitResult:
        """Marks the datasets not fitted (NaN, ``NOT_RUN``), flushes the files, writes the
        manifest, and returns a result of read-only memmaps."""
        if n != self.filled.size:
            for f in self.files:
                f.resize(n)
        missing = np.flatnonzero(~self.filled[:n])
        for f, fill in zip(self.files, self.fills):
            if f.map is not None and missing.size:
                for lo in range(0, missing.size, 65536):
                    f.map[missing[lo:lo + 65536]] = fill
            f.close()
        arrays = [f.open_read() for f in self.files]
        res = jax.tree_util.tree_unflatten(self.treedef, arrays)
        manifest = {
            "format": "mlejax fit_batch results", "version": 2, "k": n,
            "complete": bool(self.filled[:n].all()), "method": res.method,
            "param_names": list(res.param_names),
            "leaves": [{"file": name + ".npy", "shape": [n, *shape], "dtype": dt.str}
                       for name, (shape, dt) in zip(self.names, self.specs)]}
        try:
            manifest["structure"] = encode_structure(res)
        except NoJSON as err:
            manifest["structure"] = None
            manifest["structure_unsaved"] = f"the result holds {err}"
        write_json(os.path.join(self.out, _MANIFEST), manifest)
        return res


def open_results(path) -> FitResult:
    """Reopens the results that ``fit_batch(..., out=path)`` wrote: a :class:`FitResult`
    whose arrays are read-only memmaps of the ``.npy`` files in ``path``.

    The structure of the result (the keys and nesting of ``params``, which fields are
    present) is read from ``fit_batch.json``, plain JSON: nothing in the directory is
    unpickled or imported, and the ``.npy`` files are read with ``allow_pickle=False``. A
    directory written by an older mlejax, which kept the structure in a pickle
    (``fit_batch.treedef.pkl``), is refused with a ``ValueError`` rather than unpickled. The
    result has no ``context`` (no log-likelihood or data), so inference that refits
    (profiles, bootstrap) needs the original call. Params built of named tuples or other
    registered classes cannot be described in JSON: their ``.npy`` files are read alone.

    Example:
      >>> import tempfile
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> xs = np.random.default_rng(0).normal(2.0, 1.0, size=(30, 20))
      >>> folder = tempfile.mkdtemp()
      >>> res = mj.fit_batch(loglik, {"mu": 0.0, "sigma": 1.0}, xs, datasets_per_chunk=16,
      ...                    constraints={"sigma": mj.positive}, out=folder)
      >>> type(res.params["mu"]).__name__, res.params["mu"].shape
      ('memmap', (30,))
      >>> again = mj.batching.open_results(folder)
      >>> bool(np.array_equal(again.params["mu"], res.params["mu"])), again.param_names
      (True, ('mu', 'sigma'))
      >>> import shutil; shutil.rmtree(folder)
    """
    path = os.fspath(path)
    manifest_path = os.path.join(path, _MANIFEST)
    fallback = (f"read the .npy files listed in {manifest_path} with "
                "np.load(..., mmap_mode='r')")
    if not os.path.exists(manifest_path):
        old = (f" It holds {_OLD_PICKLE}, written by an older mlejax, which is not loaded: "
               "unpickling a file runs code. Fit again with out= to rewrite the directory."
               if os.path.exists(os.path.join(path, _OLD_PICKLE)) else "")
        raise ValueError(f"{path!r} holds no finished fit_batch(out=...) results (no "
                         f"{_MANIFEST}).{old}")
    try:
        with open(manifest_path) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as err:
        raise ValueError(f"{manifest_path} cannot be read ({err}); fit again with out= to "
                         "rewrite it.") from None
    if not isinstance(manifest, dict) or "structure" not in manifest:
        raise ValueError(
            f"{manifest_path} was written by an older mlejax, which kept the structure of the "
            f"result in a pickle ({_OLD_PICKLE}); mlejax no longer unpickles it, since "
            "unpickling a crafted file runs code. Fit again with out= to rewrite the "
            f"directory, or {fallback}.")
    if manifest["structure"] is None:
        why = manifest.get("structure_unsaved", "a part JSON cannot describe")
        raise ValueError(f"{path!r}: the structure of the result could not be saved ({why}); "
                         f"{fallback}.")
    leaves = manifest.get("leaves")
    if not isinstance(leaves, list):
        raise ValueError(f"{manifest_path} lists no leaves; fit again with out= to rewrite "
                         "it.")
    arrays = []
    for leaf in leaves:
        try:
            name, shape, dt = leaf["file"], tuple(leaf["shape"]), np.dtype(leaf["dtype"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{manifest_path}: a leaf entry {leaf!r:.80} is not one mlejax "
                             f"writes ({err}).") from None
        if (not isinstance(name, str) or os.path.basename(name) != name
                or not name.endswith(".npy") or dt.hasobject):
            raise ValueError(f"{manifest_path}: a leaf entry {leaf!r:.80} is not one mlejax "
                             "writes (a .npy file in the directory, of a numeric dtype).")
        if not int(np.prod(shape, dtype=np.int64)):
            arrays.append(np.zeros(shape, dt))
            continue
        file = os.path.join(path, name)
        try:
            x = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"{file} cannot be read ({err}); fit again with out= to "
                             "rewrite the directory.") from None
        if x.shape != shape or x.dtype != dt:
            raise ValueError(f"{file} holds {x.dtype} {x.shape}, but {_MANIFEST} lists "
                             f"{dt} {shape}; the directory was changed after the fit: fit "
                             "again with out= to rewrite it.")
        arrays.append(x)
    return decode_structure(manifest["structure"], arrays, manifest_path)


def write_json(path: str, obj) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically: to a temporary file in the same
    directory, then ``os.replace`` -- a reader sees the old file or the new, never a part."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)

