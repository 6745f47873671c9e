"""The compiled programs of fits: one per static configuration (cached), with batches and
restarts in CPU-sized blocks, in-program segmentation of the fits still running, shares run
at the same time on several cores, and XLA options for quick compilation of small fits."""

from __future__ import annotations

import functools

import jax
import numpy as np

from mlejax import _blocks
from mlejax import _loop
from mlejax import _validate as V
from mlejax._config import Config
from mlejax._configure import check_finite_at_init
from mlejax._engine import batch_axes, best_of, loop_advance, loop_init, loop_result, solve_one, starts
from mlejax._programs import program_cache
from mlejax._objective import solver_setup, to_result
from mlejax.result import FitResult
from mlejax.status import Status


# On CPU the datasets of a batch are fitted in blocks (mlejax._blocks) holding about this many
# bytes of data (times the restarts): 10,000 logistic regressions (n = 200, d = 6, 11 KB
# each) 1.30 s as one block against 0.79 s in blocks of 20; blocks of 10 to 50 do as well.
BLOCK_BYTES = 128 << 10


# One fit's restarts likewise, each start counting all of the data: 256 restarts of a
# two-normal mixture on 2,000 points (16 KB) with newton 9.1 s as one block against 1.05 s
# in blocks of two, bfgs 1.69 s against 0.59 s one start after another (every start stops
# on its own: under one vmap all 256 ran as long as the slowest).
RESTART_BLOCK_BYTES = 16 << 10


def batch_block(cfg: Config | None, data, weights, k: int | None = None,
                 restarts: int | None = None) -> int | None:
    """Datasets per block of ``fit_batch``'s program (for ``k`` of the datasets, default
    all; ``restarts`` per dataset, default ``cfg``'s), or None for one block."""
    k = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0]) if k is None else k
    if cfg is not None and cfg.fits_in_turn:
        return None
    restarts = cfg.restarts if cfg is not None else restarts
    return _blocks.block_size(k, _blocks.nbytes((data, weights)) * (restarts or 1),
                              BLOCK_BYTES, _blocks.platform_of(data))


def restart_block(cfg: Config, data, weights, r: int | None = None) -> int | None:
    """Starts per block of ``fit(restarts=R)``'s program (for ``r`` of the starts, default
    all), or None for one block: every start works over all of the data."""
    if cfg.restarts is None or cfg.fits_in_turn:
        return None
    return _blocks.block_size(cfg.restarts if r is None else r,
                              _blocks.nbytes((data, weights), per_item=False),
                              RESTART_BLOCK_BYTES, _blocks.platform_of(data))


# A single fit on little data runs in microseconds to milliseconds: what its user waits for
# is XLA's compilation. On CPU such a program compiles with XLA's classic fusion emitters,
# 0.4-0.7 s faster (a two-parameter normal fit in a fresh process: first call 1.4-1.8 s ->
# 1.0-1.2 s, A/B three times each). Their kernels are slower on large arrays full of
# transcendentals (256 BFGS restarts of a normal mixture: 250 -> 290-450 ms a call), so
# larger fits, restarts and batches keep XLA's default.
QUICK_COMPILE_BYTES = 1 << 20


CLASSIC_EMITTERS = (("xla_cpu_use_fusion_emitters", False),)


# Where the work of one evaluation is small too (bytes of data times free parameters: the
# Hessian costs about one pass over the data per parameter), LLVM's optimisations are
# skipped as well (backend optimisation level 0): the main program of nine custom models
# of the zoo benchmark (n = 1,000, 4 to 40 parameters) compiled in 0.25-0.53 s instead of
# 0.51-2.6 s, and their fits ran in 1-4 ms instead of 0.4-1.2 ms (IRT 2PL, 40 parameters
# on 40 kB: 40 ms instead of 16-29 ms), fresh processes, A/B alternating
# (benchmarks/RESULTS.md, issue 20). Past this work a long fit could lose more in its run
# than the compile saves.
QUICK_COMPILE_WORK = 8 << 20


QUICK_COMPILE = (("xla_backend_optimization_level", 0),) + CLASSIC_EMITTERS


# Set when this XLA does not know the options (older jaxlib: an error at compilation).
QUICK_COMPILE_UNKNOWN = []


def compile_options(cfg: Config, data, weights) -> tuple | None:
    """The XLA options (a hashable tuple of pairs) for ``cfg``'s program on this data."""
    if cfg.batched or cfg.restarts is not None:
        return None
    return quick_compile_options(data, weights, cfg.problem.n_free)


def quick_compile_options(data, weights, n_free: int) -> tuple | None:
    """The quick-compile options for one unbatched fit of ``n_free`` parameters on this
    data (also :func:`mlejax.em`'s), or None for XLA's default."""
    if (QUICK_COMPILE_UNKNOWN or _blocks.platform_of(data) != "cpu"
            or not V.is_concrete((data, weights))
            or _blocks.nbytes((data, weights), per_item=False) > QUICK_COMPILE_BYTES):
        return None
    work = _blocks.nbytes((data, weights), per_item=False) * max(n_free, 1)
    return QUICK_COMPILE if work <= QUICK_COMPILE_WORK else CLASSIC_EMITTERS


def kernel(cfg: Config, block: int | None = None, share: int | None = None,
            options: tuple | None = None):
    """The compiled program for one static configuration (cached: no recompilation); a
    batch (or one fit's restarts) runs in blocks of ``block`` when given. With ``share``
    (a batch, in blocks) the program takes a first argument ``first`` and fits the
    ``share`` datasets from it on (:func:`mlejax._blocks.concurrently`). ``options``: XLA
    compile options (:func:`compile_options`)."""
    return _kernel_cached(cfg, block, share, options)


@program_cache
def _kernel_cached(cfg: Config, block: int | None, share: int | None,
                   options: tuple | None = None):

    def one_dataset(start, data, weights, key):
        if cfg.restarts is None:
            return solve_one(cfg, start, data, weights, key)
        u0s, keys = starts(cfg, start, key)
        each = _blocks.vmap_or_map(lambda u0, k: solve_one(cfg, u0, data, weights, k),
                                   in_turn=cfg.fits_in_turn)
        if cfg.batched or block is None:
            all_starts = each(u0s, keys)
        else:   # one fit's restarts in blocks of starts
            all_starts = _blocks.in_blocks(each, block, (u0s, keys), (True, True))
        return best_of(all_starts)

    if not cfg.batched:
        if options is not None:
            try:
                return jax.jit(one_dataset, compiler_options=dict(options))
            except TypeError:   # a JAX without per-program compiler options
                pass
        return jax.jit(one_dataset)
    axes = batch_axes(cfg)
    if cfg.fits_in_turn:
        return jax.jit(_blocks.vmap_or_map(one_dataset, axes, in_turn=True))
    many = jax.vmap(one_dataset, in_axes=axes)
    if block is None:
        return jax.jit(many)
    batched = tuple(a == 0 for a in axes)
    if cfg.restarts is None and cfg.anneal is None:
        def in_segments(first, *args):
            k = jax.tree_util.tree_leaves(args[1])[0].shape[0]
            return segmented(cfg, block, k if share is None else share, first, *args)
        if share is None:
            return jax.jit(lambda *args: in_segments(0, *args))
        return jax.jit(in_segments)
    if share is None:
        return jax.jit(lambda *args: _blocks.in_blocks(many, block, args, batched))
    return jax.jit(lambda first, *args: _blocks.in_blocks(many, block, args, batched,
                                                          first, share))


# In blocks, every fit of a batch stops after this many steps; the fits still running are
# gathered, in as few blocks as they fill, and resumed from their exact loop state (the same
# steps as uninterrupted). A block then runs as long as its fits need, not as long as the
# slowest fit that happened to land in it.
SEGMENT = 4


def segmented(cfg: Config, block: int, count: int, first, start, data, weights, keys):
    """``count`` datasets of a batch from ``first`` on, fitted in blocks of ``block``,
    re-packed every ``SEGMENT`` steps (:func:`mlejax._blocks.segmented`: in the program, a
    stable sort of the fits still running, then a loop over the blocks they fill). Pure:
    runs under ``jit``."""
    axes = batch_axes(cfg)
    begin = jax.vmap(lambda s, d, w, key: loop_init(cfg, s, d, w, key), in_axes=axes)
    resume = jax.vmap(lambda st, d, w, key, until: loop_advance(cfg, st, d, w, key, until),
                      in_axes=(0,) + axes[1:] + (None,))
    finish = jax.vmap(lambda st, d, w, key: loop_result(cfg, st, d, w, key),
                      in_axes=(0,) + axes[1:])

    def running(st):
        return (st.status == Status.RUNNING) & (st.step < cfg.max_steps)

    return _blocks.segmented(
        begin, lambda st, args, until: resume(st, *args[1:], until),
        lambda st, args: finish(st, *args[1:]), running, (start, data, weights, keys),
        tuple(a == 0 for a in axes), block=block, count=count,
        segment=min(SEGMENT, cfg.max_steps), first=first)


@program_cache
def restart_kernels(cfg: Config, block: int, share: int):
    """``fit(restarts=R)`` as three programs, for running shares of the starts at the same
    time (:func:`mlejax._blocks.concurrently`): the starts, ``share`` of them fitted in
    blocks from ``first`` on, and the best of all."""
    def draw(start, key):
        return starts(cfg, start, key)

    def fit_share(first, u0s, keys, data, weights):
        each = jax.vmap(lambda u0, k: solve_one(cfg, u0, data, weights, k))
        return _blocks.in_blocks(each, block, (u0s, keys), (True, True), first, share)

    return jax.jit(draw), jax.jit(fit_share), jax.jit(best_of)


def fit_restarts_concurrently(cfg: Config, start, data, weights, key) -> FitResult:
    """``fit(restarts=R)`` on CPU with its starts in shares run at the same time (one per
    core), or as one program where that would not pay."""
    r = cfg.restarts
    block = restart_block(cfg, data, weights)
    n = _blocks.shares(r, block, _blocks.platform_of(data),
                       V.is_concrete((start, data, weights, key)))
    if n == 1:
        options = compile_options(cfg, data, weights)
        try:
            return kernel(cfg, block, options=options)(start, data, weights, key)
        except Exception as err:   # noqa: BLE001 -- an XLA without these options
            if options is None or "compile option" not in str(err):
                raise
            QUICK_COMPILE_UNKNOWN.append(options)
            return kernel(cfg, block)(start, data, weights, key)
    share = -(-r // n)
    draw, fit_share, best = restart_kernels(cfg, restart_block(cfg, data, weights, share),
                                               share)
    u0s, keys = draw(start, key)
    all_starts = _blocks.concurrently(fit_share, (u0s, keys, data, weights), r, n)
    return best(all_starts)


def fit_batch_concurrently(cfg: Config, start, data, weights, keys) -> FitResult:
    """``fit_batch``'s program on CPU with the datasets in shares run at the same time (one
    per core), or as one program where that would not pay."""
    k = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0])
    block = batch_block(cfg, data, weights)
    n = _blocks.shares(k, block, _blocks.platform_of(data),
                       V.is_concrete((start, data, weights, keys)))
    if n == 1:
        return kernel(cfg, block)(start, data, weights, keys)
    share = -(-k // n)
    return _blocks.concurrently(kernel(cfg, batch_block(cfg, data, weights, share), share),
                                (start, data, weights, keys), k, n)


@program_cache
def checked_start_kernels(cfg: Config):
    """One fit as two programs: the loop's state at init (the solver's first evaluation),
    and the loop from there with the result; together the steps of one uninterrupted
    :func:`solve_one`."""
    def rest(state, data, weights, key):
        setup = solver_setup(cfg, data, weights, key)
        state = _loop.advance(setup.solver, state, max_steps=cfg.max_steps, gtol=cfg.gtol,
                              ftol=cfg.ftol, loose=cfg.loose)
        return to_result(cfg, setup, _loop.finish(setup.solver, state), data)

    return jax.jit(functools.partial(loop_init, cfg)), jax.jit(rest)


def fit_checked_start(cfg: Config, start, data, weights, key) -> FitResult:
    """A large fit whose init is checked on the solver's first evaluation.

    The log-likelihood must be finite at init (a clear error otherwise, before the fit's
    loop is compiled or run). On large data that check was a pass of its own over every
    observation, in a program of its own: one logistic regression with n = 1e6, d = 20
    rows sharded over two host devices, 12 ms of a fit whose six Newton evaluations take
    32 ms each. Here the first of them is that program: its value is read on the host, and
    the loop goes on from its state (the same steps as in one program).
    """
    data, weights = jax.device_put((data, weights))   # once, not once per program
    init, rest = checked_start_kernels(cfg)
    state = init(start, data, weights, key)
    check_finite_at_init(state.solver_state.f)
    return rest(state, data, weights, key)
