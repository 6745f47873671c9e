"""Fitting very many datasets: streamed chunks, straggler re-packing, devices, ragged data.

``fit_batch`` comes here when it is asked to stream (``chunk_size=``), re-pack stragglers
(``repack=``), shard (``devices=``), show progress, checkpoint, or when the datasets are
ragged (:func:`ragged`) or arrive as a generator of chunks.

* **Chunks.** K datasets go through one compiled program of a fixed chunk shape (the last
  chunk is padded with copies of its last dataset, whose results are dropped), so there is
  one compilation however many chunks. The next chunk is sliced on the host (a NumPy memmap
  is read one chunk at a time) and transferred while the current one computes: JAX dispatch
  is asynchronous, and the host blocks on a chunk's result only after the next is in flight.
  Results are assembled on the host.
* **Stragglers.** With ``repack=S`` every fit runs ``S`` steps; the ones still running are
  gathered into a smaller batch (sizes chunk/8, chunk/64, ...: few compilations) and resumed
  from their exact loop state for ``S`` more, until none is left. Results are identical to
  an uninterrupted run; the batch costs what its typical member costs. On CPU a chunk of
  more than one cache-sized block runs in blocks instead (:mod:`mlejax._blocks`: each block
  stops with its own fits, and the blocks run in shares on all cores), which costs less.
* **Devices.** ``devices=`` shards the batch axis over a 1-D mesh; each device fits its share.
* **Ragged.** Datasets of different lengths are padded into a few length buckets (powers of
  two) with weight 0 on the padding; results equal fitting each alone.
* **Progress, checkpoints, interrupts.** A tqdm bar per chunk (never per step); with
  ``checkpoint=DIR`` each finished chunk is saved and a rerun skips it, once it has checked
  that the checkpoint is this problem's (:class:`_Checkpoint`: fingerprints of the data,
  weights, init, log-likelihood and settings; another problem's is refused, naming what
  differs; an unreadable chunk file is fitted again, with a warning); Ctrl-C returns what
  was fitted, the rest marked ``Status.NOT_RUN``.
* **Memory.** What a stream holds does not depend on K, except its results. The pages of a
  memmap read for a chunk are released from the process once the chunk is copied (the OS
  page cache keeps them; ``madvise(MADV_DONTNEED)`` on a read-only or shared mapping), so
  reading a file of any size leaves the resident set flat. Results held in host memory
  take about ``8 (trace_len + p^2 + 2p + 2)`` bytes a fit (float64, ``p`` parameters;
  times ``R + 1`` with R restarts); a warning says when they would take more than half of
  the memory available. With ``out=DIR`` they are written as each chunk finishes to one
  ``.npy`` file per result array (``params.beta.npy``, ``loglik.npy``, ``trace.npy`` ...)
  through memmaps whose pages are released the same way, and the result returned holds
  read-only memmaps of the files: host memory stays flat in K. :func:`open_results`
  reopens such a directory later.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import mmap
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _blocks
from mlejax import fit as _fit
from mlejax.fit import (FitResult, _batch_block, _best_of, _Config, _fit_batch_concurrently,
                        _kernel, _loop_advance, _loop_result, _loop_start, _starts,
                        batch_axes, dataset_keys)
from mlejax.result import FitContext
from mlejax.status import Status

__all__ = ["Ragged", "open_results", "ragged"]


@dataclasses.dataclass(frozen=True)
class Ragged:
    """Datasets of different lengths: a sequence of per-dataset pytrees whose leaves share
    their leading (observation) axis, and optional per-dataset weight vectors.

    Made by :func:`mlejax.ragged`; :func:`mlejax.fit_batch` pads them into a few length
    buckets with weight 0 on the padding.

    Example:
      >>> data = mj.ragged([np.zeros(3), np.ones(5)])
      >>> len(data), [x.shape for x in data.datasets]
      (2, [(3,), (5,)])
    """

    datasets: tuple
    weights: tuple | None = None

    def __len__(self) -> int:
        return len(self.datasets)


def ragged(datasets, weights=None) -> Ragged:
    """Marks a list of per-dataset pytrees of different lengths for :func:`mlejax.fit_batch`.

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> xs = [np.random.default_rng(n).normal(size=n) for n in (20, 30, 25)]
      >>> res = mj.fit_batch(loglik, {"mu": 0.0, "sigma": 1.0}, mj.ragged(xs),
      ...                    constraints={"sigma": mj.positive})
      >>> res.params["mu"].shape, bool(np.all(res.converged))
      ((3,), True)
      >>> bool(np.allclose(res.params["mu"], [x.mean() for x in xs]))   # as if fitted alone
      True
    """
    if isinstance(datasets, (np.ndarray, jax.Array)) and np.ndim(datasets) == 0:
        raise ValueError("ragged() takes a list of datasets (one pytree each); got a scalar.")
    datasets = tuple(datasets)
    if not datasets:
        raise ValueError("ragged() got an empty list: it needs at least one dataset (a list "
                         "of per-dataset pytrees whose leaves share their leading axis).")
    for i, d in enumerate(datasets):
        shapes = [np.shape(x) for x in jax.tree_util.tree_leaves(d)]
        if not shapes or any(len(s) == 0 for s in shapes):
            what = "no arrays" if not shapes else "a scalar leaf"
            raise ValueError(f"ragged(): dataset {i} has {what}; every leaf of a dataset "
                             "needs the observation axis first.")
        if len({s[0] for s in shapes}) != 1:
            raise ValueError(f"ragged(): the leaves of dataset {i} have different lengths "
                             f"{[s[0] for s in shapes]}; the leaves of one dataset share "
                             "their leading (observation) axis.")
    if weights is not None:
        weights = tuple(np.asarray(w) for w in weights)
        if len(weights) != len(datasets):
            raise ValueError(f"ragged(): {len(weights)} weight vectors for {len(datasets)} "
                             "datasets; give one per dataset.")
        for i, (d, w) in enumerate(zip(datasets, weights)):
            n = np.shape(jax.tree_util.tree_leaves(d)[0])[0]
            if w.shape != (n,):
                raise ValueError(f"ragged(): the weights of dataset {i} have shape {w.shape}; "
                                 f"the dataset has {n} observations: give one weight each.")
    return Ragged(datasets, weights)


# --------------------------------------------------------------------------------------
# Compiled pieces for re-packing (cached per static configuration).

_CACHE: dict = {}


def _compiled(kind: str, cfg: _Config, shared: bool = False, block: int | None = None):
    """jit(vmap(...)) over elements (one dataset-and-start each), cached per configuration.

    ``shared``: every element fits the same single dataset (``fit``'s restarts), which is
    then passed once rather than gathered per element. ``block``: on CPU, the elements (the
    datasets for ``"start"``) run in blocks of this many (:mod:`mlejax._blocks`)."""
    if (kind, cfg, shared, block) in _CACHE:
        return _CACHE[kind, cfg, shared, block]
    has_w = cfg.has_weights and not shared
    w_axis = 0 if has_w else None
    d_axis = None if shared else 0

    def blocked(fn, batched):
        if block is None:
            return fn
        return lambda *args: _blocks.in_blocks(fn, block, args, batched)

    if kind == "start":
        def fn(start, data, weights, key, until):
            if cfg.restarts is None:
                return _loop_start(cfg, start, data, weights, key, until)
            u0s, keys = _starts(cfg, start, key)
            return jax.vmap(lambda u, k: _loop_start(cfg, u, data, weights, k, until))(u0s, keys)
        axes = batch_axes(cfg) + (None,)
        out = jax.jit(blocked(jax.vmap(fn, in_axes=axes), tuple(a == 0 for a in axes)))
    elif kind == "round":
        advance = blocked(
            jax.vmap(lambda s, d, w, k, until: _loop_advance(cfg, s, d, w, k, until),
                     in_axes=(0, d_axis, w_axis, 0, 0)),
            (True, not shared, has_w, True, True))

        def fn(state, data, weights, keys, idx, d_idx, segment):
            """One re-packing round: the elements ``idx`` gathered, advanced ``segment``
            steps, and put back -- one dispatch."""
            sub = _take(state, idx)
            if not shared:
                data = _take(data, d_idx)
                weights = None if weights is None else _take(weights, d_idx)
            sub = advance(sub, data, weights, _take(keys, idx), sub.step + segment)
            # Padding repeats idx[0]; its copies are advanced identically, so the
            # duplicate writes agree.
            return _put(state, idx, sub)
        out = jax.jit(fn)
    else:  # "result"
        out = jax.jit(blocked(
            jax.vmap(lambda s, d, w, k: _loop_result(cfg, s, d, w, k),
                     in_axes=(0, d_axis, w_axis, 0)),
            (True, not shared, has_w, True)))
    _CACHE[kind, cfg, shared, block] = out
    return out


def _take(tree, idx):
    # Indexing (the indices are in range): jnp.take's default mode needs a fill value, which
    # JAX 0.7 has none of for PRNG keys, and its mode="clip" failed XLA's verifier on
    # sharded data in JAX 0.5.3.
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


def _put(tree, idx, sub):
    return jax.tree_util.tree_map(lambda x, y: x.at[idx].set(y), tree, sub)


_take_jit = jax.jit(_take)


@jax.jit
def _best_of_each(res: FitResult) -> FitResult:
    return jax.vmap(_best_of)(res)


def _bucket(m: int, full: int, multiple: int, shrink: int = 8) -> int:
    """The smallest of full, full/shrink, full/shrink^2, ... (a multiple of ``multiple``)
    holding m. Each size is one more compiled program."""
    size = full
    while size // shrink >= max(m, multiple) and (size // shrink) % multiple == 0:
        size //= shrink
    return size


def _fit_repacked(cfg: _Config, start, data, weights, keys, segment: int,
                  multiple: int, shrink: int = 8, blocks: bool = True) -> FitResult:
    """One chunk with straggler re-packing; identical results to an uninterrupted run.

    The batch shrinks by factors of ``shrink`` (see :func:`_bucket`): 8 for batches of
    datasets, whose sizes run to millions (few sizes to compile); ``fit``'s restarts use 2,
    since R is small and every start costs a pass over all the data (256 restarts of a
    two-normal mixture with BFGS: 0.52 s with halving against 0.94 s with eighths). Once
    the batch is at its smallest size, the fits left run to the end in one call: another
    round could not make it smaller, only add a host round trip every ``segment`` steps (a
    lone start that runs to ``max_steps`` = 500 took 56 of them)."""
    r = cfg.restarts or 1
    k = jax.tree_util.tree_leaves(data)[0].shape[0]
    shared = k == 1 and r > 1
    platform = _blocks.platform_of(data) if blocks else "none"
    per = _blocks.nbytes((data, weights))   # one dataset: what every element works over
    budget = _fit._RESTART_BLOCK_BYTES if shared else _fit._BLOCK_BYTES

    def block_for(n: int) -> int | None:
        return _blocks.block_size(n, per, budget, platform)

    state = _compiled("start", cfg, block=_blocks.block_size(
        k, per * r, _fit._BLOCK_BYTES, platform))(start, data, weights, keys, segment)
    if r > 1:  # one element per (dataset, start)
        state = jax.tree_util.tree_map(lambda x: x.reshape((k * r,) + x.shape[2:]), state)
    elem_keys = jax.random.split(keys[0], k * r)  # unused by resumed solvers: state has keys
    data_index = np.repeat(np.arange(k), r)
    total = k * r
    smallest = _bucket(1, total, multiple, shrink)
    if shared:
        data = jax.tree_util.tree_map(lambda x: x[0], data)
        weights = None if weights is None else jax.tree_util.tree_map(lambda x: x[0], weights)
    while True:
        status, step = jax.device_get((state.status, state.step))
        todo = np.nonzero((status == Status.RUNNING) & (step < cfg.max_steps))[0]
        if todo.size == 0:
            break
        size = _bucket(todo.size, total, multiple, shrink)
        idx = np.concatenate([todo, np.full(size - todo.size, todo[0])])
        rounds = cfg.max_steps if size == smallest else segment
        state = _compiled("round", cfg, shared, block_for(size))(
            state, data, weights, elem_keys, idx, data_index[idx], rounds)
    if shared or r == 1:
        d_all, w_all = data, weights
    else:
        d_all = _take_jit(data, data_index)
        w_all = None if weights is None else _take_jit(weights, data_index)
    res = _compiled("result", cfg, shared, block_for(total))(state, d_all, w_all, elem_keys)
    if r > 1:
        res = jax.tree_util.tree_map(lambda x: x.reshape((k, r) + x.shape[1:]), res)
        res = _best_of_each(res)
    return res


# --------------------------------------------------------------------------------------
# Streaming.

@dataclasses.dataclass
class _Chunk:
    index: np.ndarray    # (chunk_size,) dataset numbers; padding repeats the last one
    count: int           # real datasets in the chunk (the rest is padding)
    start: Any
    data: Any
    weights: Any


def _pad_rows(x, size):
    x = np.asarray(x)
    if x.shape[0] == size:
        return x
    reps = np.repeat(x[-1:], size - x.shape[0], axis=0)
    return np.concatenate([x, reps], axis=0)


def _rows(tree, rows, size):
    return jax.tree_util.tree_map(lambda x: _pad_rows(x[rows], size), tree)


def _nan_datasets(chunk: _Chunk) -> list[int]:
    bad = np.zeros(chunk.count, bool)
    for x in jax.tree_util.tree_leaves(chunk.data):
        x = np.asarray(x)[: chunk.count]
        if x.dtype.kind in "fc":
            bad |= ~np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
    return [int(i) for i in chunk.index[: chunk.count][bad]]


def _shared_mmap(x) -> mmap.mmap | None:
    """The ``mmap`` behind a NumPy memmap (or a view of one) when its pages can be dropped
    from this process without losing anything: a read-only or shared mapping (modes "r",
    "r+", "w+"; a copy-on-write "c" mapping holds private changes and is left alone)."""
    for _ in range(32):  # walk the chain of views down to the memmap
        raw = getattr(x, "_mmap", None)
        if isinstance(raw, mmap.mmap):
            return raw if getattr(x, "mode", "c") in ("r", "r+", "w+") else None
        x = getattr(x, "base", None)
        if x is None:
            return None
    return None


def _drop_pages(tree) -> None:
    """Releases from this process the pages of the memmapped leaves of ``tree``.

    Reading (or writing) a memmap maps its pages into the process, and they count in its
    resident set until unmapped: a stream over an 11 GB file would end with 11 GB resident.
    ``MADV_DONTNEED`` on a read-only or shared mapping only unmaps them (the OS page cache
    keeps them, dirty pages included, and writes those back); a later access maps them
    again, so this is safe at any time and costs nothing but page faults.
    """
    if not hasattr(mmap, "MADV_DONTNEED"):  # not on this platform: nothing to release
        return
    seen = set()
    for x in jax.tree_util.tree_leaves(tree):
        raw = _shared_mmap(x) if isinstance(x, np.ndarray) else None
        if raw is not None and id(raw) not in seen:
            seen.add(id(raw))
            try:
                raw.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # closed, or refused: only memory is at stake
                pass


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


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
    after every chunk (:func:`_drop_pages`), so it can be far larger than memory. Its
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
            _drop_pages(self.map)
            self.map = None

    def open_read(self) -> np.ndarray:
        if self.size * self.row_bytes == 0:
            return np.zeros((self.size,) + self.row_shape, self.dtype)
        return np.load(self.path, mmap_mode="r")


_MANIFEST = "fit_batch.json"
# Where mlejax before version 2 of the manifest kept the result's structure, as a pickle:
# never loaded (unpickling a crafted file runs code), only named in an error and removed.
_OLD_PICKLE = "fit_batch.treedef.pkl"


class _NoJSON(Exception):
    """A part of a result that the JSON description of its structure cannot hold."""


def _encode_structure(res: FitResult) -> dict:
    """The pytree structure of a result as JSON: each node by its kind (the FitResult with
    its fields and static fields, dicts with their keys, lists, tuples, None), and each leaf
    by its index in the list of leaf files. Raises :class:`_NoJSON` for any other node (a
    named tuple or registered class in params: rebuilding one would mean importing code
    named in a file)."""
    from mlejax import result as _result

    n = len(jax.tree_util.tree_leaves(res))
    numbered = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(res),
                                            [_LeafNo(i) for i in range(n)])

    def node(x):
        if isinstance(x, _LeafNo):
            return {"leaf": x.i}
        if x is None:
            return {"none": None}
        if isinstance(x, FitResult):
            meta = {}
            for name in _result._META_FIELDS:
                if name != "context":
                    meta[name] = static(getattr(x, name))
            return {"fit_result": {"fields": {name: node(getattr(x, name))
                                              for name in _result._DATA_FIELDS},
                                   "static": meta}}
        if type(x) is dict:
            items = []
            for k, v in x.items():
                if type(k) not in (str, int):
                    raise _NoJSON(f"a dict key {k!r} of type {type(k).__name__}")
                items.append([k, node(v)])
            return {"dict": items}
        if type(x) in (list, tuple):
            return {type(x).__name__: [node(v) for v in x]}
        raise _NoJSON(f"a node of type {type(x).__module__}.{type(x).__qualname__}")

    def static(v):
        if v is None or type(v) in (str, int, float, bool):
            return v
        if type(v) in (tuple, list):
            return {type(v).__name__: [static(u) for u in v]}
        raise _NoJSON(f"a static field of type {type(v).__name__}")

    return node(numbered)


class _LeafNo:
    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i


def _decode_structure(desc, arrays: list, where: str) -> FitResult:
    """The result described by :func:`_encode_structure`, with ``arrays`` as its leaves.
    Only the kinds of node it writes are read; anything else is a ``ValueError``."""
    from mlejax import result as _result

    used = set()

    def bad(why: str) -> ValueError:
        return ValueError(f"{where}: the structure of the result is not one mlejax writes "
                          f"({why}); the file was changed or written by something else. Read "
                          f"the .npy files it lists with np.load(..., mmap_mode='r').")

    def one(d):
        if not isinstance(d, dict) or len(d) != 1:
            raise bad(f"a node {d!r:.80}")
        return next(iter(d.items()))

    def node(d):
        kind, v = one(d)
        if kind == "leaf":
            if type(v) is not int or not 0 <= v < len(arrays) or v in used:
                raise bad(f"leaf {v!r}")
            used.add(v)
            return arrays[v]
        if kind == "none" and v is None:
            return None
        if kind == "fit_result" and isinstance(v, dict) and set(v) == {"fields", "static"}:
            fields, meta = v["fields"], v["static"]
            if not (isinstance(fields, dict) and set(fields) <= set(_result._DATA_FIELDS)
                    and isinstance(meta, dict)
                    and set(meta) <= set(_result._META_FIELDS) - {"context"}):
                raise bad("the fields of a FitResult")
            return FitResult(**{k: node(x) for k, x in fields.items()},
                             **{k: static(x) for k, x in meta.items()})
        if kind == "dict" and isinstance(v, list):
            out = {}
            for item in v:
                if not (isinstance(item, list) and len(item) == 2
                        and type(item[0]) in (str, int)):
                    raise bad(f"a dict item {item!r:.80}")
                out[item[0]] = node(item[1])
            return out
        if kind in ("list", "tuple") and isinstance(v, list):
            items = [node(x) for x in v]
            return items if kind == "list" else tuple(items)
        raise bad(f"a node of kind {kind!r}")

    def static(v):
        if v is None or type(v) in (str, int, float, bool):
            return v
        kind, items = one(v)
        if kind in ("list", "tuple") and isinstance(items, list):
            out = [static(u) for u in items]
            return out if kind == "list" else tuple(out)
        raise bad(f"a static value {v!r:.80}")

    res = node(desc)
    if not isinstance(res, FitResult) or len(used) != len(arrays):
        raise bad("not a FitResult whose leaves are every file listed")
    return res


class _Assembler:
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
        avail = _available_memory()
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
                    _drop_pages(f.map)
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
            manifest["structure"] = _encode_structure(res)
        except _NoJSON as err:
            manifest["structure"] = None
            manifest["structure_unsaved"] = f"the result holds {err}"
        _write_json(os.path.join(self.out, _MANIFEST), manifest)
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
      >>> res = mj.fit_batch(loglik, {"mu": 0.0, "sigma": 1.0}, xs, chunk_size=16,
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
    return _decode_structure(manifest["structure"], arrays, manifest_path)


class Streamer:
    """Runs chunks of one static configuration through one compiled program."""

    def __init__(self, cfg: _Config, key: jax.Array, *, chunk_size: int, repack: int | None,
                 devices, progress: bool, checkpoint: str | None, n_total: int,
                 first_index: int = 0, out=None):
        self.cfg, self.key, self.chunk_size, self.repack = cfg, key, chunk_size, repack
        self.first_index = first_index
        self.multiple = 1
        self.sharding = None
        if devices is not None:
            devices = list(devices)
            self.multiple = len(devices)
            mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
            self.sharding = jax.sharding.NamedSharding(mesh,
                                                       jax.sharding.PartitionSpec("batch"))
        self.checkpoint = checkpoint
        self.out_dir = out
        self.n_total = n_total
        self.progress = progress
        self.nan_seen: list[int] = []
        self.out: _Assembler | None = None
        self.bar = None
        self.ckpt: _Checkpoint | None = None
        self.chunk_no = 0
        self.n_done = self.n_conv = 0
        self.interrupted = False

    def _to_device(self, tree):
        if tree is None:
            return None
        return jax.device_put(tree, self.sharding) if self.sharding is not None else \
            jax.device_put(tree)

    def _args(self, ch: _Chunk):
        keys = dataset_keys(self.key, self.first_index + ch.index)
        start = self._to_device(ch.start) if self.cfg.init_batched else jnp.asarray(ch.start)
        return (start, self._to_device(ch.data), self._to_device(ch.weights),
                self._to_device(keys))

    def _launch(self, ch: _Chunk):
        args = self._args(ch)
        if self.sharding is not None:
            if self.repack is None:
                return _kernel(self.cfg)(*args)
            return _fit_repacked(self.cfg, *args, segment=self.repack,
                                 multiple=self.multiple, blocks=False)
        # On CPU a chunk of more than one block runs in blocks that each stop with their own
        # fits, in shares on all cores (mlejax._blocks): re-packing has nothing left to do
        # there (10,000 fits with 1% stragglers: 1.31x the batch without them, against
        # 2.4x re-packed), so it runs only where the chunk is one block.
        if self.repack is None or _batch_block(self.cfg, args[1], args[2]) is not None:
            # From a background thread: the shares wait for their results, and the host
            # reads the next chunk and stores the last one's results meanwhile.
            return _launcher().submit(_fit_batch_concurrently, self.cfg, *args)
        return _fit_repacked(self.cfg, *args, segment=self.repack, multiple=self.multiple,
                             blocks=True)

    def _template(self, ch: _Chunk) -> FitResult:
        """The result structure of a chunk, without compiling (``jax.eval_shape``)."""
        def spec(tree):
            return jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), tree)
        start = spec(ch.start) if self.cfg.init_batched else jnp.asarray(ch.start)
        return jax.eval_shape(_kernel(self.cfg), start, spec(ch.data), spec(ch.weights),
                              dataset_keys(self.key, self.first_index + ch.index))

    def run(self, chunks: Iterator[_Chunk]) -> None:
        """Fits every chunk into the shared host buffers; stops early on Ctrl-C."""
        chunks = iter(chunks)
        first = next(chunks, None)
        if first is None or self.interrupted:
            return
        if self.out is None:
            from tqdm.auto import tqdm

            self.out = _Assembler(self.n_total, self._template(first), out=self.out_dir)
            self.bar = tqdm(total=self.n_total, unit="fit", disable=not self.progress,
                            dynamic_ncols=True)
            if self.checkpoint:
                self.ckpt = _Checkpoint(self.checkpoint, self.cfg, self.n_total,
                                        self.chunk_size, self.key, self.first_index)
        pending = None
        chunks = itertools.chain([first], chunks)
        del first  # no reference to a chunk's host arrays outlives its dispatch
        try:
            for ch in chunks:
                i = self.chunk_no
                self.chunk_no += 1
                inputs = None
                if self.ckpt is not None:
                    inputs = self.ckpt.fingerprint(ch)
                    leaves = self.ckpt.load(i, inputs, ch.count, self.out.specs)
                    if leaves is not None:
                        self._collect(ch, leaves)
                        continue
                self.nan_seen += _nan_datasets(ch)[: max(0, 20 - len(self.nan_seen))]
                res = self._launch(ch)  # dispatched asynchronously
                ch = dataclasses.replace(ch, start=None, data=None, weights=None)
                if pending is not None:
                    self._finish(*pending)  # blocks on the previous chunk while this one runs
                pending = (i, ch, res, inputs)
            if pending is not None:
                self._finish(*pending)
        except KeyboardInterrupt:
            self.interrupted = True
            if pending is not None:  # already dispatched: keep it unless interrupted again
                try:
                    self._finish(*pending)
                except KeyboardInterrupt:
                    pass

    def _collect(self, ch: _Chunk, leaves: list) -> None:
        self.out.put(ch.index[: ch.count], leaves)
        status = np.asarray(jax.tree_util.tree_unflatten(self.out.treedef, leaves).status)
        self.n_conv += int(np.sum(status[: ch.count] == Status.CONVERGED))
        self.n_done += ch.count
        self.bar.update(ch.count)
        self.bar.set_postfix(converged=f"{self.n_conv / max(self.n_done, 1):.1%}")

    def _finish(self, i: int, ch: _Chunk, res, inputs: dict | None) -> None:
        if isinstance(res, concurrent.futures.Future):
            res = res.result()
        leaves = [np.asarray(x)[: ch.count]
                  for x in jax.tree_util.tree_leaves(jax.device_get(res))]
        if self.ckpt is not None:
            self.ckpt.save(i, leaves, inputs)
        self._collect(ch, leaves)

    def result(self) -> FitResult:
        if self.bar is not None:
            self.bar.close()
        if self.out is None:
            raise ValueError("fit_batch received no datasets.")
        return self.out.result()


_LAUNCHER: concurrent.futures.ThreadPoolExecutor | None = None


def _launcher() -> concurrent.futures.ThreadPoolExecutor:
    """One background thread that runs a stream's chunks one after another."""
    global _LAUNCHER
    if _LAUNCHER is None:
        _LAUNCHER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlejax-stream")
    return _LAUNCHER


def _write_json(path: str, obj) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically: to a temporary file in the same
    directory, then ``os.replace`` -- a reader sees the old file or the new, never a part."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# What each entry of a checkpoint's fingerprint is, in the words of an error message.
_WHAT = {"n_total": "the number of datasets", "chunk_size": "chunk_size",
         "param_names": "the parameters (init's structure)", "method": "method",
         "restarts": "restarts", "loglik_fn": "the log-likelihood function (loglik_fn)",
         "key": "the PRNG key", "first_index": "first_index",
         "datasets": "the datasets it holds", "data": "the data", "weights": "the weights",
         "init": "the starting values (init)"}


class _Checkpoint:
    """One ``.npz`` file per finished chunk, and a ``meta.json`` naming the problem.

    A checkpoint is resumed only by the problem that wrote it. ``meta.json`` records the
    run's shape (K, chunk size, parameter names, method, restarts) and fingerprints
    (:mod:`mlejax._fingerprint`: content digests, the same in every process) of the
    log-likelihood function (its module, name, bytecode and the values it closes over), of
    every other static setting (constraints, tolerances, step limit, optimiser, penalty,
    ...), and of the PRNG key; each chunk file records the fingerprints of its own inputs
    (which datasets, their data, weights and starting values), computed from the chunk as it
    streams past. A checkpoint of another problem is refused with a ``ValueError`` naming
    what differs; a chunk file that cannot be read (truncated, corrupt) is fitted again,
    with a warning naming it. Files are replaced atomically, so an interrupted write leaves
    the old file or none.
    """

    def __init__(self, path: str, cfg: _Config, n_total: int | None, chunk_size: int,
                 key, first_index: int = 0):
        from mlejax import _fingerprint

        os.makedirs(path, exist_ok=True)
        self.path = path
        fn = cfg.loglik_fn
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        settings = {}
        for f in dataclasses.fields(cfg):
            if f.name == "loglik_fn":
                continue
            value = getattr(cfg, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                for g in dataclasses.fields(value):   # the Problem: name its parts apart
                    settings[f"{f.name}.{g.name}"] = _fingerprint.digest(getattr(value, g.name))
            else:
                settings[f.name] = _fingerprint.digest(value)
        key_data = (jax.random.key_data(key)
                    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
        meta = {"format": "mlejax fit_batch checkpoint", "version": 2, "n_total": n_total,
                "chunk_size": chunk_size, "param_names": list(cfg.problem.param_names),
                "method": cfg.method, "restarts": cfg.restarts,
                "loglik_fn": {"name": name, "digest": _fingerprint.digest(fn)},
                "settings": settings, "key": _fingerprint.digest(key_data),
                "first_index": int(first_index)}
        meta_path = os.path.join(path, "meta.json")
        if os.path.exists(meta_path):
            try:
                with open(meta_path) as fh:
                    old = json.load(fh)
            except (OSError, ValueError) as err:
                raise ValueError(f"checkpoint={path!r}: {meta_path} cannot be read ({err}); "
                                 "its chunks cannot be checked against this problem. Delete "
                                 "the directory to fit afresh, or use another.") from None
            self._compare(old, meta)
        else:
            if any(f.startswith("chunk_") for f in os.listdir(path)):
                raise ValueError(f"checkpoint={path!r} holds chunk files but no meta.json "
                                 "saying which problem they belong to; delete the directory "
                                 "to fit afresh, or use another.")
            _write_json(meta_path, meta)

    def _refuse(self, where: str, what: list[str]) -> ValueError:
        return ValueError(
            f"checkpoint={self.path!r} holds the fits of another problem: {where} differs from "
            f"this call's in {', '.join(what)}. Its results would be returned as this "
            "problem's, so they are not used: pass another checkpoint directory, or delete "
            f"{self.path!r} to fit this problem afresh.")

    def _compare(self, old: dict, meta: dict) -> None:
        if not isinstance(old, dict) or old.get("version") != meta["version"]:
            raise ValueError(
                f"checkpoint={self.path!r} was written by another version of mlejax, which "
                "did not record the fingerprint of its problem (data, init, log-likelihood, "
                "weights, settings), so its results cannot be checked against this call. "
                "Delete the directory to fit afresh, or use another.")
        what = []
        for entry in meta:
            if entry == "settings":
                new, prev = meta[entry], old.get(entry) or {}
                what += [f"the setting {name}" for name in sorted(set(new) | set(prev))
                         if new.get(name) != prev.get(name)]
            elif entry == "loglik_fn":
                if old.get(entry) != meta[entry]:
                    prev = (old.get(entry) or {}).get("name")
                    what.append(_WHAT[entry] + (f" ({prev} then, {meta[entry]['name']} now)"
                                                if prev != meta[entry]["name"] else
                                                f" ({prev}: its code or the values it uses)"))
            elif old.get(entry) != meta[entry]:
                what.append(_WHAT.get(entry, entry) + (
                    f" ({old.get(entry)!r} then, {meta[entry]!r} now)"
                    if entry in ("n_total", "chunk_size", "method", "restarts", "param_names",
                                 "first_index") else ""))
        if what:
            raise self._refuse("meta.json", what)

    def fingerprint(self, ch: _Chunk) -> dict:
        """The fingerprints of a chunk's inputs."""
        from mlejax import _fingerprint

        return {"datasets": _fingerprint.digest((ch.index, ch.count)),
                "data": _fingerprint.digest(ch.data),
                "weights": _fingerprint.digest(ch.weights),
                "init": _fingerprint.digest(ch.start)}

    def _file(self, i: int) -> str:
        return os.path.join(self.path, f"chunk_{i:07d}.npz")

    def save(self, i: int, leaves: list, inputs: dict) -> None:
        tmp = self._file(i) + ".tmp.npz"
        np.savez(tmp, *leaves, fingerprint=np.array(json.dumps(inputs)))
        os.replace(tmp, self._file(i))

    def load(self, i: int, inputs: dict, count: int, specs: list) -> list | None:
        """The saved results of chunk ``i``, or None when it is to be fitted: not saved, or
        unreadable (with a warning). Saved for other inputs: ``ValueError``."""
        path = self._file(i)
        if not os.path.exists(path):
            return None
        try:
            # allow_pickle=False (NumPy's default, said here on purpose): an object array
            # in a crafted file is refused, never unpickled.
            with np.load(path, allow_pickle=False) as z:
                stored = json.loads(str(z["fingerprint"])) if "fingerprint" in z.files \
                    else None
                n = sum(1 for f in z.files if f.startswith("arr_"))
                leaves = [z[f"arr_{j}"] for j in range(n)]
            if stored is not None and not isinstance(stored, dict):
                raise ValueError("its fingerprint is not a JSON object")
            if stored is not None and stored == inputs:
                good = len(leaves) == len(specs) and all(
                    x.shape == (count,) + shape and x.dtype == dt
                    for x, (shape, dt) in zip(leaves, specs))
                if not good:
                    raise ValueError("its arrays are not the shapes and dtypes of this fit's "
                                     "results")
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                zlib.error) as err:
            warnings.warn(f"checkpoint file {path} cannot be read ({type(err).__name__}: "
                          f"{err}); its chunk is fitted again and the file rewritten. (To "
                          "recompute it by hand, delete that file.)", stacklevel=6)
            return None
        if stored is None:
            raise ValueError(f"checkpoint file {path} records no fingerprint of its inputs "
                             "(another version of mlejax wrote it), so it cannot be checked "
                             f"against this problem: delete it to fit its chunk afresh, or "
                             f"use another checkpoint directory.")
        what = [_WHAT.get(k, k) for k in sorted(set(inputs) | set(stored))
                if inputs.get(k) != stored.get(k)]
        if what:
            raise self._refuse(f"chunk {i} ({path})", what)
        return leaves


def array_chunks(start, data, weights, k: int, chunk_size: int, init_batched: bool,
                 ids: np.ndarray | None = None) -> Iterator[_Chunk]:
    """Chunks of a batch of ``k`` datasets held in arrays (a NumPy memmap is read one chunk
    at a time); ``ids`` numbers the datasets in the result (default ``0 .. k-1``)."""
    ids = np.arange(k) if ids is None else np.asarray(ids)
    for lo in range(0, k, chunk_size):
        rows = np.arange(lo, min(lo + chunk_size, k))
        count = rows.size
        chunk = _Chunk(
            index=_pad_rows(ids[rows], chunk_size), count=count,
            start=_rows(start, rows, chunk_size) if init_batched else start,
            data=_rows(data, rows, chunk_size),
            weights=None if weights is None else _rows(weights, rows, chunk_size))
        _drop_pages((start, data, weights))  # the chunk is a copy: release what was read
        yield chunk
        del chunk


def generator_chunks(items, start, chunk_size: int) -> Iterator[_Chunk]:
    """Chunks from an iterable of batched pytrees, each padded to ``chunk_size``."""
    offset = 0
    for item in items:
        n = jax.tree_util.tree_leaves(item)[0].shape[0]
        if n > chunk_size:
            raise ValueError(f"a chunk from the generator holds {n} datasets, more than "
                             f"chunk_size={chunk_size}; pass a larger chunk_size.")
        if n == 0:   # an empty chunk holds nothing to fit
            continue
        rows = np.arange(n)
        chunk = _Chunk(_pad_rows(np.arange(offset, offset + n), chunk_size), n, start,
                       _rows(item, rows, chunk_size), None)
        _drop_pages(item)
        del item
        yield chunk
        del chunk
        offset += n


def _check_weights_streamed(weights, k: int, size: int) -> None:
    """Every dataset's weights finite and >= 0, read ``size`` datasets at a time (a memmap's
    pages released as it is read), before anything is compiled; the error names them all."""
    from mlejax import _validate as V

    bad: list[int] = []
    for lo in range(0, k, size):
        bad += (lo + V.bad_weight_rows(np.asarray(weights[lo:lo + size]))).tolist()
        _drop_pages(weights)
    if bad:
        raise V.weights_error(bad, np.asarray(weights[bad[0]]))


def bucket_length(n: int, minimum: int = 8) -> int:
    """The padded length of a dataset of ``n`` observations: the next power of two."""
    return max(minimum, 1 << max(0, int(n - 1).bit_length()))


def pad_dataset(tree, weights, length: int):
    """Pads every leaf along axis 0 to ``length`` (repeating the last row, so values stay
    finite) and gives the padding weight 0."""
    n = jax.tree_util.tree_leaves(tree)[0].shape[0]
    padded = jax.tree_util.tree_map(lambda x: _pad_rows(x, length), tree)
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    return padded, np.concatenate([w, np.zeros(length - n)])


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def fit_many(loglik_fn, init, data, *, weights, init_batched: bool, key, chunk_size,
             repack, devices, progress, checkpoint, prepare: Callable,
             first_index: int = 0, out=None) -> FitResult:
    """``fit_batch`` for streams, ragged datasets, re-packing, devices and checkpoints;
    ``out=DIR`` writes the results to ``.npy`` files in DIR (see the module docstring).

    ``prepare(init, data, weights)`` runs the host-side checks of ``fit_batch`` on a probe
    (the first chunk) and returns the static configuration and the probe's arrays.
    """
    from mlejax import _validate as V

    if key is None:
        key = jax.random.key(0)
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size}.")
    multiple = len(list(devices)) if devices is not None else 1

    def round_up(c):
        return -(-int(c) // multiple) * multiple

    def full_start(cfg):
        names = V.leaf_names(init)
        leaves, _ = V.as_float_leaves(init, names)
        V.check_init_values(leaves, cfg.problem.tree_constraints, names)
        if init_batched:
            return np.asarray(jax.vmap(cfg.problem.to_u)(leaves))
        return cfg.problem.to_u(leaves)

    def probe_init(rows):
        if not init_batched:
            return init
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[rows], init)

    if isinstance(data, Ragged):
        k = len(data.datasets)
        if data.weights is not None:
            bad = [i for i, w in enumerate(data.weights) if V.bad_weight_rows(w[None]).size]
            if bad:
                raise V.weights_error(bad, data.weights[bad[0]])
        lengths = [jax.tree_util.tree_leaves(d)[0].shape[0] for d in data.datasets]
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(bucket_length(n), []).append(i)
        padded = {}
        for length, ids in groups.items():
            parts = [pad_dataset(data.datasets[i], None if data.weights is None
                                 else data.weights[i], length) for i in ids]
            padded[length] = (_stack([p[0] for p in parts]), np.stack([p[1] for p in parts]))
        first_len = next(iter(groups))
        d0, w0 = padded[first_len]
        cfg, start0, _, _, _ = prepare(probe_init([groups[first_len][0]]),
                                  jax.tree_util.tree_map(lambda x: x[:1], d0), w0[:1])
        start = start0 if callable(init) else full_start(cfg)
        streamer = Streamer(cfg, key, chunk_size=1, repack=repack, devices=devices,
                            progress=progress, checkpoint=checkpoint, n_total=k,
                            first_index=first_index, out=out)
        for length, ids in groups.items():
            ids = np.asarray(ids)
            d, w = padded[length]
            size = round_up(min(chunk_size or ids.size, ids.size))
            streamer.chunk_size = size
            st = start[ids] if init_batched else start
            streamer.run(array_chunks(st, d, w, ids.size, size, init_batched, ids=ids))
        res = streamer.result()
        ctx_data, ctx_w = data, None
    elif isinstance(data, Iterator):
        if init_batched:
            raise ValueError("init_batched=True needs the datasets in arrays, not a generator.")
        if weights is not None:
            raise ValueError("weights= cannot be combined with a generator of chunks; put "
                             "the weights in the data and use them in loglik_fn.")
        first = next(data, None)
        if first is None:
            raise ValueError("the generator of chunks yielded nothing.")
        n_first = V.batch_size_of(first, None)
        size = round_up(chunk_size or n_first)
        cfg, start0, _, _, _ = prepare(init, first, None)
        start = start0 if callable(init) else full_start(cfg)
        streamer = Streamer(cfg, key, chunk_size=size, repack=repack, devices=devices,
                            progress=progress, checkpoint=checkpoint, n_total=None,
                            first_index=first_index, out=out)
        streamer.run(generator_chunks(itertools.chain([first], data), start, size))
        res = streamer.result()
        ctx_data, ctx_w = None, None
    else:
        k = V.batch_size_of(data, weights)
        size = round_up(min(chunk_size or k, k))
        if weights is not None and V.is_concrete(weights):
            _check_weights_streamed(weights, k, size)
        rows = np.arange(min(size, k))
        cfg, start0, _, _, _ = prepare(
            probe_init(rows), jax.tree_util.tree_map(lambda x: np.asarray(x[:rows.size]), data),
            None if weights is None else np.asarray(weights[:rows.size]))
        start = start0 if callable(init) else full_start(cfg)
        w = None if weights is None else weights
        streamer = Streamer(cfg, key, chunk_size=size, repack=repack, devices=devices,
                            progress=progress, checkpoint=checkpoint, n_total=k,
                            first_index=first_index, out=out)
        streamer.run(array_chunks(start, data, w, k, size, init_batched))
        res = streamer.result()
        ctx_data, ctx_w = data, weights

    if streamer.nan_seen:
        warnings.warn(f"datasets {streamer.nan_seen} contain NaN or infinite values; their "
                      "fits are flagged in their status.", stacklevel=3)
    if streamer.interrupted:
        warnings.warn(f"interrupted after {streamer.n_done} fits; the rest are marked NOT_RUN"
                      + (f"; rerun with checkpoint={checkpoint!r} to resume" if checkpoint
                         else ""), stacklevel=3)
    return dataclasses.replace(res, context=FitContext(cfg, ctx_data, ctx_w))
