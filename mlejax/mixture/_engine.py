"""The EM engine of the mixtures: one start on the generic EM solver (:mod:`mlejax.em`),
the best of ``n_init`` starts, and the compiled programs of ``fit`` and ``fit_batch`` (a
batch in CPU-sized blocks re-packed in the program, shares run at the same time).

Every function takes the mixture ``model`` (a hashable :class:`~mlejax.mixture._base.Mixture`:
``joint_loglik``, ``m_step``, ``anneal_m_step``, ``param_shapes``, ``n_parameters``,
``component_degenerate``, ``start_params`` and its settings) and is pure: it runs under
``jit`` and ``vmap``.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mlejax import _blocks, _kernels, _loop
from mlejax._numerics import best_index
from mlejax._programs import program_cache
from mlejax._warnings import FitWarning
from mlejax.em import EM, em_iterate, em_tolerance, em_xtol
from mlejax.mixture._result import MixtureResult
from mlejax.status import Status

__all__ = ["BLOCK_BYTES", "block_size", "program", "warn_degenerate"]


def _ftol(model, x) -> float:
    return em_tolerance(x.dtype) if model.ftol is None else float(model.ftol)


def _xtol(model, x) -> float:
    return em_xtol(x.dtype) if model.xtol is None else float(model.xtol)


def _fit_start(model, x, key, user, anneal=None) -> MixtureResult:
    """EM from one start (pure); annealed first when ``anneal`` is a schedule."""
    params0 = model.start_params(key, x, user)
    u0, unravel = ravel_pytree(params0)
    out = em_iterate(lambda u: model.joint_loglik(unravel(u), x),
                     lambda u, r: ravel_pytree(model.m_step(r, x))[0], u0,
                     max_steps=int(model.max_steps), ftol=_ftol(model, x),
                     xtol=_xtol(model, x), trace_len=int(model.max_steps) + 1, anneal=anneal,
                     key=jax.random.fold_in(key, 1),
                     anneal_m_step_fn=lambda u, r: ravel_pytree(
                         model.anneal_m_step(unravel(u), r, x))[0])
    return _result(model, out, x, unravel)


def _unravel(model, x):
    """The flat parameter vector's layout (that of ``start_params``'s dict, keys sorted)."""
    shapes = model.param_shapes(x.shape[-1])
    return ravel_pytree({name: jnp.zeros(shape, x.dtype)
                         for name, shape in shapes.items()})[1]


def _em(model, x, unravel) -> EM:
    return EM(lambda u: model.joint_loglik(unravel(u), x),
              lambda u, r: ravel_pytree(model.m_step(r, x))[0],
              ftol=_ftol(model, x), xtol=_xtol(model, x))


def _result(model, out: _loop.LoopResult, x, unravel) -> MixtureResult:
    params = unravel(out.solver_state.u)
    return MixtureResult(
        params=params, loglik=out.solver_state.f, status=out.status, n_steps=out.n_steps,
        trace=out.trace, nobs=jnp.int32(x.shape[0]),
        degenerate=jnp.any(model.component_degenerate(params, x)), model=model,
        df_model=model.n_parameters(x.shape[1]))


# The same EM in three pieces (plain EM only, no annealing), so a batch can stop every fit
# after a few iterations and resume the ones still running in fewer blocks (_segmented):
# identical results to the uninterrupted _fit_start.
def _loop_start(model, x, key, user) -> _loop.LoopState:
    params0 = model.start_params(key, x, user)
    u0, unravel = ravel_pytree(params0)
    return _loop.start(_em(model, x, unravel), u0, gtol=0.0,
                       trace_len=int(model.max_steps) + 1)


def _loop_advance(model, state: _loop.LoopState, x, until) -> _loop.LoopState:
    return _loop.advance(_em(model, x, _unravel(model, x)), state,
                         max_steps=int(model.max_steps), gtol=0.0, ftol=None, until=until)


def _loop_result(model, state: _loop.LoopState, x) -> MixtureResult:
    unravel = _unravel(model, x)
    return _result(model, _loop.finish(_em(model, x, unravel), state), x, unravel)


def _fit_one(model, n_init, x, key, user, anneal=None) -> MixtureResult:
    """``n_init`` starts as one vmapped program; the best is kept (converged ones first)."""
    if n_init == 1:   # no vmap, no key split: a smaller program to compile
        return _single(_fit_start(model, x, key, user, anneal))
    return _best(jax.vmap(lambda kk: _fit_start(model, x, kk, user, anneal))(
        jax.random.split(key, n_init)))


def _single(one: MixtureResult) -> MixtureResult:
    """A one-start fit with its restart fields (leading axis 1)."""
    return dataclasses.replace(
        one, restart_loglik=one.loglik[None], restart_status=one.status[None],
        n_best=jnp.int32(1), restart_trace=one.trace[None],
        restart_params=jax.tree_util.tree_map(lambda a: a[None], one.params))


def _best(outs: MixtureResult) -> MixtureResult:
    """The best of ``n_init`` starts (leading axis), converged ones first, with every
    start's log-likelihood, status, estimate and trace (:func:`mlejax._numerics.best_index`,
    as fits' restarts)."""
    best, n_best = best_index(outs.loglik, outs.status == Status.CONVERGED)
    chosen = jax.tree_util.tree_map(lambda a: a[best], outs)
    return dataclasses.replace(chosen, restart_loglik=outs.loglik,
                               restart_status=outs.status, n_best=n_best,
                               restart_params=outs.params, restart_trace=outs.trace)


# On CPU a batch of mixtures is fitted in blocks (mlejax._blocks) whose E-step arrays (n x k
# per start) take about this many bytes together. K = 1,000 mixtures of n = 500, k = 3
# (float64): 16-19 us per mixture and iteration vmapped as one block, 10 us in blocks of 167
# to 250 (measured on the 2-core development VM).
BLOCK_BYTES = 2 << 20


def block_size(xs, k: int, n_init: int, count: int | None = None) -> int | None:
    """The number of datasets per block of a batched fit (of ``count`` of its datasets,
    default all), or None for one block."""
    return _blocks.block_size(xs.shape[0] if count is None else count,
                              xs.shape[1] * k * n_init * xs.dtype.itemsize,
                              BLOCK_BYTES, _blocks.platform_of(xs))


def _segmented(model, n_init: int, block: int, init_batched: bool, count: int, first,
               xs, keys, user):
    """:func:`program`'s batch (``count`` datasets from ``first`` on) in blocks, re-packed
    every :data:`mlejax._kernels.SEGMENT` EM iterations, as fits' batches are
    (:func:`mlejax._blocks.segmented`; plain EM). Results are identical to running each fit
    uninterrupted."""
    max_steps = int(model.max_steps)

    def start(x, key, u):
        if n_init == 1:
            return jax.tree_util.tree_map(lambda a: a[None], _loop_start(model, x, key, u))
        return jax.vmap(lambda kk: _loop_start(model, x, kk, u))(jax.random.split(key, n_init))

    def advance(st, x, until):
        return jax.vmap(lambda one: _loop_advance(model, one, x, until))(st)

    def result(st, x):
        outs = jax.vmap(lambda one: _loop_result(model, one, x))(st)
        if n_init == 1:
            return _single(jax.tree_util.tree_map(lambda a: a[0], outs))
        return _best(outs)

    def running(st):   # a dataset runs while any of its starts does
        return jnp.any((st.status == Status.RUNNING) & (st.step < max_steps), axis=1)

    begin = jax.vmap(start, in_axes=(0, 0, 0 if init_batched else None))
    resume = jax.vmap(advance, in_axes=(0, 0, None))
    finish = jax.vmap(result)
    return _blocks.segmented(
        begin, lambda st, args, until: resume(st, args[0], until),
        lambda st, args: finish(st, args[0]), running, (xs, keys, user),
        (True, True, init_batched), block=block, count=count,
        segment=min(_kernels.SEGMENT, max_steps), first=first)


@program_cache
def program(model, n_init: int, batched: bool, init_batched: bool, anneal=None,
            block: int | None = None, share: int | None = None):
    """The compiled program for one static configuration (cached: no recompilation). With
    ``share`` (a batch in blocks) it takes a first argument ``first`` and fits the ``share``
    datasets from it on (:func:`mlejax._blocks.concurrently`)."""
    one = functools.partial(_fit_one, model, n_init, anneal=anneal)
    if not batched:
        return jax.jit(one)
    many = jax.vmap(one, in_axes=(0, 0, 0 if init_batched else None))
    if block is None:
        return jax.jit(many)
    batched_args = (True, True, init_batched)
    if anneal is None:
        def part(first, count, xs, keys, user):
            return _segmented(model, n_init, block, init_batched, count, first, xs, keys, user)
    else:
        def part(first, count, xs, keys, user):
            return _blocks.in_blocks(many, block, (xs, keys, user), batched_args, first,
                                     count)
    if share is None:
        return jax.jit(lambda xs, keys, user: part(0, xs.shape[0], xs, keys, user))
    return jax.jit(lambda first, *args: part(first, share, *args))


def warn_degenerate(res: MixtureResult) -> None:
    """Warns on the host about components that emptied or collapsed (the fits that did not
    converge are :func:`mlejax._warnings.warn_fits`'s)."""
    codes = np.asarray(res.status).ravel()
    where = "" if codes.size == 1 else f" in {{}} of {codes.size} fits"
    degen = int(np.sum(np.asarray(res.degenerate)))
    if degen:
        warnings.warn("a mixture component emptied (less than one observation's weight) or "
                      "collapsed (its covariance reduced to reg_covar)" + where.format(degen)
                      + ": it was regularised, not dropped; fewer components, a larger "
                      "reg_covar or other starts (n_init) may fit better.", FitWarning,
                      stacklevel=3)
