"""Cache-sized blocks for batched programs on CPU.

A batch of small fits vmapped as one block runs every operation of every iteration over
the whole batch: each array of the batch streams through memory once per operation, and on
XLA's CPU backend the small per-fit kernels (matrix-vector products, Cholesky and eigen
decompositions) pay their overhead on arrays too big for cache. Fitting the batch in blocks
of a few datasets, one block after another inside the same program (``lax.map`` over
blocks, ``vmap`` within one), keeps each block's arrays in cache for all of its
iterations, and each block stops when its own fits have converged rather than when the
slowest of the whole batch has. On accelerators the batch stays one block: they want it as
wide as possible.

Measured on the 2-core development VM (float64): 10,000 logistic regressions (n = 200,
d = 6) with Newton 1.30 s as one block, 0.79 s in blocks of 20; 1,000 Gaussian mixtures
(n = 500, k = 3) by EM 16-19 us per fit and iteration as one block, 10 us in blocks of ~170.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def platform_of(x: Any) -> str:
    """The platform (``"cpu"``, ``"gpu"``, ``"tpu"``) that computes on ``x``: the device of a
    concrete JAX array, JAX's default backend otherwise (NumPy data, tracers)."""
    leaves = jax.tree_util.tree_leaves(x)
    for leaf in leaves:
        if isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer):
            return next(iter(leaf.devices())).platform
    return jax.default_backend()


def nbytes(tree: Any, per_item: bool = True) -> int:
    """Bytes of the arrays of ``tree``: of one item (one index of every leaf's leading axis)
    when ``per_item``, of all of it otherwise. Shapes only: works on tracers."""
    skip = 1 if per_item else 0
    return sum(np.dtype(leaf.dtype).itemsize * int(np.prod(np.shape(leaf)[skip:]))
               for leaf in jax.tree_util.tree_leaves(tree))


def block_size(k: int, bytes_per_item: int, budget: int, platform: str) -> int | None:
    """Items per block so that a block's arrays take about ``budget`` bytes (balanced: the
    padding is below one item a block), or None for one block (not CPU, or one block
    already)."""
    if platform != "cpu" or k <= 1:
        return None
    size = max(1, budget // max(int(bytes_per_item), 1))
    n_blocks = -(-k // size)
    if n_blocks <= 1:
        return None
    return -(-k // n_blocks)


def in_blocks(fn: Callable, size: int, args: tuple, batched: tuple) -> Any:
    """``fn(*args)`` (vmapped over the leading axis of the ``args`` marked ``batched``)
    applied to blocks of ``size`` items one after another; the last block is padded with
    copies of the last item, whose results are dropped. Pure: runs under ``jit``."""
    k = jax.tree_util.tree_leaves([a for a, b in zip(args, batched) if b])[0].shape[0]
    n_blocks = -(-k // size)
    idx = jnp.minimum(jnp.arange(n_blocks * size), k - 1)

    def blocked(a):
        return a[idx].reshape((n_blocks, size) + a.shape[1:])

    split = tuple(jax.tree_util.tree_map(blocked, a) if b else a
                  for a, b in zip(args, batched))
    mapped = tuple(a for a, b in zip(split, batched) if b)

    def body(blk):
        it = iter(blk)
        return fn(*(next(it) if b else a for a, b in zip(split, batched)))

    out = jax.lax.map(body, mapped)
    return jax.tree_util.tree_map(
        lambda a: a.reshape((n_blocks * size,) + a.shape[2:])[:k], out)
