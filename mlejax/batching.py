"""Fitting very many datasets: streamed chunks, straggler re-packing, devices, ragged data.

``fit_batch`` comes here when it is asked to stream (``datasets_per_chunk=``), re-pack stragglers
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
  that the checkpoint is this problem's (:class:`mlejax._checkpoint.Checkpoint`: fingerprints of the data,
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

Where each part lives: :mod:`mlejax._repack` (straggler re-packing), :mod:`mlejax._chunks`
(chunk iterators and their host-side checks), :mod:`mlejax._host_memory` (memmap pages,
available memory), :mod:`mlejax._results_io` (results in memory or ``.npy`` files, the
manifest, :func:`open_results`) with :mod:`mlejax._result_structure` (the result's structure
as JSON), :mod:`mlejax._checkpoint` and :mod:`mlejax._stream` (the streamer). This module
keeps the public face: :class:`Ragged`, :func:`ragged`, :func:`open_results`, and
``fit_streamed``, which ``fit_batch`` calls.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Iterator
from typing import Callable

import jax
import numpy as np

from mlejax import _validate as V
from mlejax._chunks import array_chunks, check_weights_streamed, generator_chunks, pad_rows
from mlejax._repack import fit_repacked
from mlejax._results_io import open_results
from mlejax._stream import Streamer
from mlejax.result import FitContext, FitResult

__all__ = ["Ragged", "Stream", "open_results", "ragged"]

# fit's restarts re-pack through mlejax._repack.fit_repacked; named here too for callers of
# the old path (mlejax._fit calls batching.fit_repacked).
fit_repacked = fit_repacked


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stream:
    """How :func:`mlejax.fit_batch` streams a large batch, as one value.

    ``fit_batch(..., stream=mj.Stream(datasets_per_chunk=10_000, checkpoint="ck"))`` is the
    same fit as ``fit_batch(..., datasets_per_chunk=10_000, checkpoint="ck")``: the six
    streaming keywords of ``fit_batch`` grouped, as a solver object groups a method's
    settings, so a call that streams reads as one option and the rest of the call is the
    fit itself. Giving ``stream=`` always streams (``mj.Stream()`` picks the chunk size
    itself); a streaming keyword given beside it is an error (one place for each setting).

    Attributes:
      datasets_per_chunk: datasets per compiled chunk (``None``: chosen from the memory
        available; not ``obs_chunk``, which is rows of one dataset).
      devices: devices to shard each chunk's batch of fits over (``None``: the default
        device).
      progress: show a tqdm bar that advances once per chunk.
      checkpoint: a directory where each finished chunk is saved, and from which a rerun of
        the same problem resumes (another problem's checkpoint is refused).
      out: a directory for the results, one ``.npy`` file per result array, written as each
        chunk finishes; the result holds read-only memmaps of them (host memory flat in K).
      first_index: the row of the first dataset in a larger batch (dataset j draws its
        random numbers from ``fold_in(key, first_index + j)``).

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> xs = jax.random.normal(jax.random.key(0), (10, 20))
      >>> init, cons = {"mu": 0.0, "sigma": 1.0}, {"sigma": mj.positive}
      >>> a = mj.fit_batch(loglik, init, xs, constraints=cons,
      ...                  stream=mj.Stream(datasets_per_chunk=4))
      >>> b = mj.fit_batch(loglik, init, xs, constraints=cons, datasets_per_chunk=4)
      >>> bool(np.array_equal(a.params["mu"], b.params["mu"]))
      True
    """

    datasets_per_chunk: int | None = None
    devices: object = None
    progress: bool = False
    checkpoint: str | None = None
    out: str | None = None
    first_index: int = 0

    def __post_init__(self):
        if self.datasets_per_chunk is not None and (
                isinstance(self.datasets_per_chunk, bool)
                or int(self.datasets_per_chunk) != self.datasets_per_chunk
                or self.datasets_per_chunk < 1):
            raise ValueError(f"Stream: datasets_per_chunk must be a positive integer; got "
                             f"{self.datasets_per_chunk!r}.")
        if (isinstance(self.first_index, bool) or int(self.first_index) != self.first_index
                or self.first_index < 0):
            raise ValueError(f"Stream: first_index must be a non-negative integer; got "
                             f"{self.first_index!r}.")
        if not isinstance(self.progress, bool):
            raise ValueError(f"Stream: progress must be True or False; got "
                             f"{self.progress!r}.")

    def options(self, **given) -> dict:
        """The streaming options of a fit given ``stream=self`` and the keywords ``given``
        (their values in the call, defaults included): this object's fields, after checking
        that no keyword was set beside it."""
        defaults = {f.name: f.default for f in dataclasses.fields(Stream)}
        clash = {k: v for k, v in given.items() if v is not defaults[k] and v != defaults[k]}
        if clash:
            raise ValueError(
                f"stream={self!r} was given, and "
                + ", ".join(f"{k}={v!r}" for k, v in clash.items())
                + " beside it: set " + ", ".join(clash) + " on the object (mj.Stream("
                + ", ".join(f"{k}=..." for k in clash) + ")), not as a keyword of fit_batch.")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Stream)}


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


def bucket_length(n: int, minimum: int = 8) -> int:
    """The padded length of a dataset of ``n`` observations: the next power of two."""
    return max(minimum, 1 << max(0, int(n - 1).bit_length()))


def pad_dataset(tree, weights, length: int):
    """Pads every leaf along axis 0 to ``length`` (repeating the last row, so values stay
    finite) and gives the padding weight 0."""
    n = jax.tree_util.tree_leaves(tree)[0].shape[0]
    padded = jax.tree_util.tree_map(lambda x: pad_rows(x, length), tree)
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    return padded, np.concatenate([w, np.zeros(length - n)])


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def fit_streamed(loglik_fn, init, data, *, weights, init_batched: bool, key,
                 datasets_per_chunk, repack, devices, progress, checkpoint, prepare: Callable,
                 first_index: int = 0, out=None) -> FitResult:
    """``fit_batch`` for streams, ragged datasets, re-packing, devices and checkpoints;
    ``out=DIR`` writes the results to ``.npy`` files in DIR (see the module docstring).

    ``prepare(init, data, weights)`` runs the host-side checks of ``fit_batch`` on a probe
    (the first chunk) and returns the static configuration and the probe's arrays.
    """
    if key is None:
        key = jax.random.key(0)
    if datasets_per_chunk is not None and int(datasets_per_chunk) < 1:
        raise ValueError(f"datasets_per_chunk must be a positive integer; got "
                         f"{datasets_per_chunk}.")
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
            size = round_up(min(datasets_per_chunk or ids.size, ids.size))
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
        size = round_up(datasets_per_chunk or n_first)
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
        size = round_up(min(datasets_per_chunk or k, k))
        if weights is not None and V.is_concrete(weights):
            check_weights_streamed(weights, k, size)
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
