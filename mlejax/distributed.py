"""Many machines: every process fits its share of a batch; results are gathered.

The engine is ``jax.distributed``: the user's script runs once per process (per host), each
process calls :func:`jax.distributed.initialize` and then :func:`fit_batch_distributed`,
which fits rows ``process_share(K)`` of the batch on the process's local devices and gathers
every process's results (``multihost_utils.process_allgather``) so that each process,
process 0 included, holds all K. No networking of our own.

Recipe (see ``examples/distributed_fit.py``)::

    # On CPU hosts the script first sets JAX's option jax_cpu_collectives_implementation
    # to "gloo" (a cross-process collectives backend), then initialises:
    jax.distributed.initialize(coordinator_address="10.0.0.1:1234",
                               num_processes=N, process_id=i)
    res = mj.distributed.fit_batch_distributed(loglik, init, data, **fit_batch_options)
    report = res.summary() if jax.process_index() == 0 else None
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from mlejax._fit import fit_batch
from mlejax.result import FitContext, FitResult

__all__ = ["fit_batch_distributed", "process_share"]


def process_share(k: int, process_index: int | None = None,
                  process_count: int | None = None) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of a batch of ``k`` datasets that this process fits (contiguous,
    sizes differing by at most one).

    Example:
      >>> mj.distributed.process_share(10)       # a single process fits every row
      (0, 10)
      >>> [mj.distributed.process_share(10, i, 3) for i in range(3)]   # 3 processes
      [(0, 4), (4, 7), (7, 10)]
    """
    i = jax.process_index() if process_index is None else process_index
    p = jax.process_count() if process_count is None else process_count
    base, extra = divmod(k, p)
    lo = i * base + min(i, extra)
    return lo, lo + base + (1 if i < extra else 0)


def _rows(tree, lo, hi, size):
    def take(x):
        x = np.asarray(x[lo:hi])
        if x.shape[0] < size:  # equal shapes on every process for the gather
            x = np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)])
        return x
    return jax.tree_util.tree_map(take, tree)


def fit_batch_distributed(loglik_fn: Callable, init: Any, data: Any, *, weights: Any = None,
                          init_batched: bool = False, key: jax.Array | None = None,
                          **options) -> FitResult:
    """:func:`mlejax.fit_batch` over all processes of a ``jax.distributed`` run.

    Every process passes the whole batch description (``data`` may be NumPy memmaps, so only
    the share is read); each fits its rows with ``fit_batch`` (``options`` as there:
    ``datasets_per_chunk``, ``repack``, ``devices`` for its local devices, ...) and the results are
    gathered so that every process returns all K, in order. Dataset keys are numbered
    globally, so results equal a single-process ``fit_batch``.

    In a single process (no ``jax.distributed.initialize``) it is ``fit_batch``.

    Example:
      >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]])   # K = 2 datasets
      >>> loglik = lambda p, x: -0.5 * (x - p["m"]) ** 2
      >>> res = mj.distributed.fit_batch_distributed(loglik, {"m": 0.0}, x)
      >>> [round(float(m), 3) for m in res.params["m"]]
      [2.5, 5.0]
    """
    k = jax.tree_util.tree_leaves(data)[0].shape[0]
    p = jax.process_count()
    lo, hi = process_share(k)
    size = -(-k // p)
    if key is None:
        key = jax.random.key(0)
    stream = options.pop("stream", None)
    if stream is not None:   # the share's first row goes on the object, not beside it
        where = {"stream": dataclasses.replace(stream, first_index=stream.first_index + lo)}
    else:
        where = {"first_index": lo}
    part = fit_batch(loglik_fn, _rows(init, lo, hi, size) if init_batched else init,
                     _rows(data, lo, hi, size), weights=None if weights is None else
                     _rows(weights, lo, hi, size), init_batched=init_batched,
                     key=key, **where, **options)
    context = part.context
    leaves, treedef = jax.tree_util.tree_flatten(dataclasses.replace(part, context=None))
    if p > 1:
        from jax.experimental import multihost_utils

        gathered = [np.asarray(multihost_utils.process_allgather(np.asarray(x)))
                    for x in leaves]
        counts = [process_share(k, i, p) for i in range(p)]
        leaves = [np.concatenate([g[i, : hi_i - lo_i] for i, (lo_i, hi_i) in enumerate(counts)])
                  for g in gathered]
    else:
        leaves = [np.asarray(x)[: hi - lo] for x in leaves]
    res = jax.tree_util.tree_unflatten(treedef, leaves)
    return dataclasses.replace(res, context=FitContext(context.config, data, weights))
