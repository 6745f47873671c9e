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

A block's kernels are too small for XLA to spread over the CPU's cores, and XLA runs one
program's loops one after another, so a blocked program uses one core. :func:`concurrently`
runs it on shares of the batch from as many threads as the process has cores (executions
of one compiled program run in parallel on XLA's CPU client, each on its calling thread;
JAX's asynchronous dispatch from one thread runs them one after another). On the 2-core
VM: 10,000 logistic regressions 0.63 s in one share, 0.36 s in two; 256 restarts of a
two-normal mixture with BFGS 0.65 s and 0.32 s; the results are the same. The shares read
the same input buffers (each block gathers its own items), so nothing is copied.
:data:`WORKERS_ENV` sets the number of threads.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
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


def vmap_or_map(fn: Callable, in_axes: Any = 0, in_turn: bool = False) -> Callable:
    """``jax.vmap(fn, in_axes)``, or with ``in_turn`` the same function computed by
    ``lax.map``, one item at a time (``in_axes`` a tuple of 0 or None per argument, or 0 for
    all): for computations that must not be batched (``Config.fits_in_turn``)."""
    if not in_turn:
        return jax.vmap(fn, in_axes=in_axes)

    def each_in_turn(*args):
        axes = (in_axes,) * len(args) if not isinstance(in_axes, tuple) else in_axes
        mapped = [a for a, ax in zip(args, axes) if ax == 0]

        def one(xs):
            it = iter(xs)
            return fn(*(next(it) if ax == 0 else a for a, ax in zip(args, axes)))

        return jax.lax.map(one, mapped)

    return each_in_turn


def in_blocks(fn: Callable, size: int, args: tuple, batched: tuple, first: Any = 0,
              count: int | None = None) -> Any:
    """``fn(*args)`` (vmapped over the leading axis of the ``args`` marked ``batched``)
    applied to blocks of ``size`` items one after another, for the ``count`` items from
    ``first`` on (all of them by default; ``first`` may be traced); each block gathers its
    own items, the last one padded with copies of the last item, whose results are
    dropped. Pure: runs under ``jit``."""
    k = jax.tree_util.tree_leaves([a for a, b in zip(args, batched) if b])[0].shape[0]
    count = k if count is None else count
    n_blocks = -(-count // size)

    def body(i):
        return fn(*take(args, batched, first + i * size, size))

    out = jax.lax.map(body, jnp.arange(n_blocks))
    return jax.tree_util.tree_map(
        lambda a: a.reshape((n_blocks * size,) + a.shape[2:])[:count], out)


def segmented(begin: Callable, resume: Callable, finish: Callable, running: Callable,
              args: tuple, batched: tuple, *, block: int, count: int, segment: int,
              first: Any = 0) -> Any:
    """``count`` items of a batch from ``first`` on (``first`` may be traced), each run by
    a resumable loop, in blocks of ``block`` items re-packed every ``segment`` steps.

    Every item's loop stops after ``segment`` steps; the items still running are gathered
    (a stable sort: in their order) into as few blocks as they fill, padded with a repeat
    of the first (advancing a copy again changes nothing), and resumed from their exact
    state. A block then runs as long as its items need, not as long as the slowest item
    that happened to land in it, and the results are those of uninterrupted loops. The
    loop's step is compiled once (in ``resume``): the first segment is a phase too.

    The callables work on one block (vmapped by the caller); ``block_args`` are the
    ``args`` of the block's items (those marked ``batched`` gathered, the others as they
    are):

    * ``begin(*block_args) -> state``: the loop states before the first step;
    * ``resume(state, block_args, until) -> state``: the loops advanced up to step
      ``until``;
    * ``finish(state, block_args) -> result``: the finished loops' results;
    * ``running(state) -> (items,) bool``: which items still have steps to run.

    Pure: runs under ``jit``. Used by ``fit_batch`` (:func:`mlejax._kernels.segmented`)
    and by mixtures' batches (:mod:`mlejax.mixture._engine`).
    """
    k = jax.tree_util.tree_leaves([a for a, b in zip(args, batched) if b])[0].shape[0]
    n_blocks = -(-count // block)
    within = jnp.arange(block)

    def at(loc):   # the arguments of the items at positions ``loc`` of the share
        return gather(args, batched, jnp.minimum(first + loc, k - 1))

    def pick(tree, loc):
        return jax.tree_util.tree_map(lambda x: x[loc], tree)

    def by_block(fn):
        out = jax.lax.map(lambda i: fn(jnp.minimum(i * block + within, count - 1)),
                          jnp.arange(n_blocks))
        return jax.tree_util.tree_map(
            lambda a: a.reshape((n_blocks * block,) + a.shape[2:])[:count], out)

    def phase(carry):
        st, until = carry
        until = until + segment
        run = running(st)
        order = jnp.argsort(jnp.where(run, 0, 1), stable=True)
        order = jnp.concatenate([order, jnp.broadcast_to(order[0], (n_blocks * block - count,))])

        def one_block(i, st):
            loc = jax.lax.dynamic_slice(order, (i * block,), (block,))
            sub = resume(pick(st, loc), at(loc), until)
            return jax.tree_util.tree_map(lambda a, b: a.at[loc].set(b), st, sub)

        n_run = jnp.sum(run.astype(jnp.int32))
        return jax.lax.fori_loop(0, (n_run + block - 1) // block, one_block, st), until

    st = by_block(lambda loc: begin(*at(loc)))
    st, _ = jax.lax.while_loop(lambda c: jnp.any(running(c[0])), phase, (st, jnp.int32(0)))
    return by_block(lambda loc: finish(pick(st, loc), at(loc)))


#: Environment variable: how many shares of a blocked batch :func:`concurrently` runs at
#: once on CPU (default: the cores this process may run on; ``1`` turns it off).
WORKERS_ENV = "MLEJAX_CPU_WORKERS"


def cpu_workers() -> int:
    """Threads :func:`concurrently` uses: ``$MLEJAX_CPU_WORKERS``, else the cores this process
    may run on."""
    env = os.environ.get(WORKERS_ENV)
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer; got {env!r}.") from None
        if n < 1:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer; got {env!r}.")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def shares(k: int, block: int | None, platform: str, concrete: bool) -> int:
    """How many shares :func:`concurrently` should split a batch of ``k`` items fitted in
    blocks of ``block`` into: one (no split) off CPU, under tracing, for one block, or with
    one core; else one per core, each share holding at least two blocks. (More shares than
    cores, for balance between shares of unequal work, measured no faster: 256 restarts
    of 50 to 170 steps 264 ms in two shares, 276 ms in eight, on two cores.)"""
    if platform != "cpu" or not concrete or block is None:
        return 1
    return max(1, min(cpu_workers(), k // (2 * block)))


def gather(args: tuple, batched: tuple, idx: jax.Array) -> tuple:
    """The items ``idx`` of the ``args`` marked ``batched`` (the others as they are)."""
    return tuple(jax.tree_util.tree_map(lambda x: x[idx], a) if b else a
                 for a, b in zip(args, batched))


def take(args: tuple, batched: tuple, first: Any, count: int) -> tuple:
    """The ``count`` items from ``first`` on (``first`` may be traced) of the ``args`` marked
    ``batched``, past the end padded with copies of the last item: a share of a batch for a
    program that works on whole batches (:func:`concurrently`)."""
    k = jax.tree_util.tree_leaves([a for a, b in zip(args, batched) if b])[0].shape[0]
    return gather(args, batched, jnp.minimum(first + jnp.arange(count), k - 1))


@functools.partial(jax.jit, static_argnums=(1,))
def _join(outs, k):
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[:k], *outs)


_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _pool(n: int) -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != n:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="mlejax")
    return _POOL


def concurrently(share_fn: Callable, args: tuple, k: int, n: int) -> Any:
    """The results for ``k`` items computed as ``n`` shares by up to :func:`cpu_workers`
    threads at the same time, then joined: ``share_fn(first, *args)`` is a jitted program
    computing the items ``first .. first + ceil(k / n) - 1`` (an :func:`in_blocks` with
    ``count``), all shares reading the same input buffers. Eager only: it waits for the
    shares."""
    share = -(-k // n)
    firsts = [jnp.asarray(i * share, jnp.int32) for i in range(n)]
    # Compile once here, before the threads would each compile the same program.
    compiled = share_fn.lower(firsts[0], *args).compile()
    pool = _pool(min(n, cpu_workers()))
    outs = list(pool.map(lambda f: jax.block_until_ready(compiled(f, *args)), firsts))
    return _join(outs, k)
