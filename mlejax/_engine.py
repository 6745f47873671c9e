"""One fit from one start, restarts and the best of them: pure functions of a
:class:`~mlejax._config.Config` that run under ``jit`` and ``vmap``.

The driver loop (:mod:`mlejax._loop`) runs the solver of :func:`mlejax._objective.setup`;
a loop can also be run in resumable pieces (``loop_init`` / ``loop_advance`` /
``loop_result``), which the in-program segmentation of batches and the straggler re-packing
use.
"""

from __future__ import annotations

import dataclasses

import jax

from mlejax import _loop
from mlejax import anneal as _anneal
from mlejax._config import Config
from mlejax._loop import iterate
from mlejax._numerics import best_index
from mlejax._objective import loglik_total, penalty_at, solver_setup, to_result
from mlejax.result import FitResult
from mlejax.status import Status


def anneal_path(cfg: Config, u0, data, weights, key) -> jax.Array:
    """The annealing stages before the final fit (:mod:`mlejax.anneal`): where they end.

    Stage ``t`` maximises ``beta_t E_z[loglik(u + sigma_t z)] + penalty(u)`` from where
    stage ``t - 1`` stopped, with the fit's own solver and tolerances.
    """
    sched, problem = cfg.anneal, cfg.problem
    loglik = loglik_total(cfg, data, weights)
    z = None
    if sched.smoothing is not None:
        z = _anneal.normal_draws(jax.random.fold_in(key, 1), sched.draws, problem.n_free,
                                 problem.dtype)

    def stage(u, beta, sigma, stage_key):
        del stage_key   # the smoothing draws are common to every stage
        tempered = (_anneal.smoothed(loglik, beta, sigma, z) if z is not None
                    else (lambda v: beta * loglik(v)))

        def fn(v):
            if cfg.penalty is None:
                return tempered(v)
            return tempered(v) + penalty_at(cfg, v)

        setup = solver_setup(cfg, data, weights, key, fn=fn)
        out = iterate(setup.solver, u, max_steps=cfg.max_steps, gtol=cfg.gtol, ftol=cfg.ftol,
                      trace_len=1, loose=cfg.loose)
        return out.solver_state.u

    return _anneal.run_stages(stage, u0, sched)


def solve_one(cfg: Config, u0, data, weights, key) -> FitResult:
    """One fit from one start: the solver on the driver loop, then the observed information."""
    if cfg.anneal is not None:
        u0 = anneal_path(cfg, u0, data, weights, key)
    setup = solver_setup(cfg, data, weights, key)
    out = iterate(setup.solver, u0, max_steps=cfg.max_steps, gtol=cfg.gtol, ftol=cfg.ftol,
                  trace_len=cfg.trace_len, loose=cfg.loose)
    return to_result(cfg, setup, out, data)


def loop_until(cfg: Config, u0, data, weights, key, until):
    """One fit's loop from ``u0`` up to step ``until`` (resumable: :func:`loop_advance`)."""
    setup = solver_setup(cfg, data, weights, key)
    state = _loop.start(setup.solver, u0, gtol=cfg.gtol, trace_len=cfg.trace_len)
    return _loop.advance(setup.solver, state, max_steps=cfg.max_steps, gtol=cfg.gtol,
                         ftol=cfg.ftol, until=until, loose=cfg.loose)


def loop_init(cfg: Config, u0, data, weights, key):
    """One fit's loop state before its first step (resumable: :func:`loop_advance`)."""
    setup = solver_setup(cfg, data, weights, key)
    return _loop.start(setup.solver, u0, gtol=cfg.gtol, trace_len=cfg.trace_len)


def loop_advance(cfg: Config, state, data, weights, key, until):
    """A stopped loop resumed up to step ``until``: the same steps as one uninterrupted run."""
    setup = solver_setup(cfg, data, weights, key)
    return _loop.advance(setup.solver, state, max_steps=cfg.max_steps, gtol=cfg.gtol,
                         ftol=cfg.ftol, until=until, loose=cfg.loose)


def loop_result(cfg: Config, state, data, weights, key):
    """A finished loop's :class:`FitResult`."""
    setup = solver_setup(cfg, data, weights, key)
    return to_result(cfg, setup, _loop.finish(setup.solver, state), data)


def best_of(all_starts: FitResult) -> FitResult:
    """The best start (converged ones first), with every start kept in ``restarts``."""
    f = all_starts.loglik if all_starts.objective is None else all_starts.objective
    best, n_best = best_index(f, all_starts.status == Status.CONVERGED)
    chosen = jax.tree_util.tree_map(lambda x: x[best], all_starts)
    return dataclasses.replace(chosen, restarts=all_starts, n_best=n_best)


def starts(cfg: Config, start, key):
    """The R starting points (unconstrained, ``(R, p)``) and solver keys of one dataset."""
    problem, r = cfg.problem, cfg.restarts
    k_start, k_solve = jax.random.split(key)
    if cfg.init_fn is not None:
        def draw(k):
            return problem.to_u(jax.tree_util.tree_leaves(cfg.init_fn(k)))
        u0s = jax.vmap(draw)(jax.random.split(k_start, r))
    else:
        noise = jax.random.normal(k_start, (r, start.shape[0]), problem.dtype)
        u0s = start[None, :] + cfg.restart_scale * noise
        u0s = u0s.at[0].set(start)  # the user's own start is always one of them
    return u0s, jax.random.split(k_solve, r)


def batch_axes(cfg: Config):
    """``vmap`` axes of (start, data, weights, key) for a batch of datasets."""
    return (0 if cfg.init_batched else None, 0, 0 if cfg.has_weights else None, 0)
