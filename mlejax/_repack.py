"""Straggler re-packing: a batch of fits that runs ``segment`` steps at a time, the fits still
running gathered into a smaller batch after each segment and resumed from their exact loop
state, until none is left.

Results are identical to an uninterrupted run, and the batch costs what its typical member
costs rather than what its slowest costs. The batch sizes are the full one divided by powers
of ``shrink`` (few sizes, so few compilations); each compiled piece (start, one round,
result) is cached per static configuration in a bounded cache
(:func:`mlejax._programs.program_cache`). Used by :func:`mlejax.fit_batch` (``repack=``,
through :mod:`mlejax._stream`) and by ``fit``'s restarts (:mod:`mlejax._fit`).
"""

from __future__ import annotations

import jax
import numpy as np

from mlejax import _blocks
from mlejax import _kernels
from mlejax._config import Config
from mlejax._engine import batch_axes, best_of, loop_advance, loop_result, loop_until, starts
from mlejax._programs import program_cache
from mlejax.result import FitResult
from mlejax.status import Status

__all__ = ["fit_repacked"]


def _compiled(kind: str, cfg: Config, shared: bool = False, block: int | None = None):
    """jit(vmap(...)) over elements (one dataset-and-start each), cached per configuration.

    ``shared``: every element fits the same single dataset (``fit``'s restarts), which is
    then passed once rather than gathered per element. ``block``: on CPU, the elements (the
    datasets for ``"start"``) run in blocks of this many (:mod:`mlejax._blocks`)."""
    return _compiled_cached(kind, cfg, shared, block)


@program_cache
def _compiled_cached(kind: str, cfg: Config, shared: bool, block: int | None):
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
                return loop_until(cfg, start, data, weights, key, until)
            u0s, keys = starts(cfg, start, key)
            return jax.vmap(lambda u, k: loop_until(cfg, u, data, weights, k, until))(u0s, keys)
        axes = batch_axes(cfg) + (None,)
        out = jax.jit(blocked(jax.vmap(fn, in_axes=axes), tuple(a == 0 for a in axes)))
    elif kind == "round":
        advance = blocked(
            jax.vmap(lambda s, d, w, k, until: loop_advance(cfg, s, d, w, k, until),
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
            jax.vmap(lambda s, d, w, k: loop_result(cfg, s, d, w, k),
                     in_axes=(0, d_axis, w_axis, 0)),
            (True, not shared, has_w, True)))
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
    return jax.vmap(best_of)(res)


def _bucket(m: int, full: int, multiple: int, shrink: int = 8) -> int:
    """The smallest of full, full/shrink, full/shrink^2, ... (a multiple of ``multiple``)
    holding m. Each size is one more compiled program."""
    size = full
    while size // shrink >= max(m, multiple) and (size // shrink) % multiple == 0:
        size //= shrink
    return size


def fit_repacked(cfg: Config, start, data, weights, keys, segment: int,
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
    budget = _kernels.RESTART_BLOCK_BYTES if shared else _kernels.BLOCK_BYTES

    def block_for(n: int) -> int | None:
        return _blocks.block_size(n, per, budget, platform)

    state = _compiled("start", cfg, block=_blocks.block_size(
        k, per * r, _kernels.BLOCK_BYTES, platform))(start, data, weights, keys, segment)
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

