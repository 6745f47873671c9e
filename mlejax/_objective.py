"""What the solvers maximise, and what a finished loop reports.

The objective of one dataset as a function of the unconstrained vector ``u`` (plain,
penalised, summed over chunks of observations or sharded rows, or a minibatch estimate),
the solver chosen for it (:func:`setup`), and the :class:`~mlejax.result.FitResult` at the
optimum with the observed information on the natural scale (:func:`to_result`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _laplace
from mlejax import penalties as _penalties
from mlejax._attained import not_attained
from mlejax._config import Config
from mlejax._loop import LoopResult
from mlejax._numerics import safe_inverse_pd, scaled_grad_norm
from mlejax._obs_chunks import ChunkedSum, value_grad_hessian
from mlejax.result import FitResult, RandomEffectsResult
from mlejax.solvers import MinibatchGradient, Newton, bfgs, gradient, lbfgs
from mlejax.solvers.proximal import ProximalNewton
from mlejax.status import Status


def loglik_sum(cfg: Config, u, data, weights) -> jax.Array:
    """The log-likelihood of ``data`` at ``u``: the weighted sum of the per-observation
    values (or the total ``loglik_fn`` returns)."""
    ll = cfg.loglik_fn(cfg.problem.to_natural(u), data)
    if not cfg.per_obs:
        return ll.astype(cfg.problem.dtype)
    if weights is not None:
        ll = jnp.where(weights > 0, weights * ll, 0.0)
    return jnp.sum(ll).astype(cfg.problem.dtype)


def penalty_at(cfg: Config, u) -> jax.Array:
    """The smooth part of ``cfg.penalty`` at ``u`` (an exact L1 term is the proximal
    solver's own)."""
    return jnp.asarray(cfg.penalty.smooth(cfg.problem.to_natural(u)), cfg.problem.dtype)


def loglik_total(cfg: Config, data, weights) -> Callable[[jax.Array], jax.Array]:
    """The plain (weighted, summed) log-likelihood as a function of ``u``."""
    return lambda u: loglik_sum(cfg, u, data, weights)


def objective(cfg: Config, data, weights) -> Callable[[jax.Array], jax.Array]:
    """What the solvers maximise: the log-likelihood plus the smooth part of the penalty
    (an exact L1 term is the proximal solver's own, :mod:`mlejax.solvers.proximal`)."""
    loglik = loglik_total(cfg, data, weights)
    if cfg.penalty is None:
        return loglik
    return lambda u: loglik(u) + penalty_at(cfg, u)


def chunked_sum(cfg: Config, data, weights, penalised: bool) -> ChunkedSum:
    """The log-likelihood (plus the penalty's smooth part when ``penalised``) as a sum over
    chunks of ``cfg.obs_chunk`` observations (:mod:`mlejax._obs_chunks`)."""
    extra = None
    if penalised and cfg.penalty is not None:
        extra = functools.partial(penalty_at, cfg)
    n = int(jax.tree_util.tree_leaves(data)[0].shape[0])
    mesh = None
    if cfg.obs_devices is not None:
        mesh = jax.sharding.Mesh(np.array(cfg.obs_devices), ("obs",))
    size = cfg.obs_chunk or -(-n // len(cfg.obs_devices))   # devices alone: one chunk each
    return ChunkedSum(functools.partial(loglik_sum, cfg), data, weights, size, n, extra, mesh)


def minibatch_objective(cfg: Config, data, weights, n: int):
    b = cfg.batch_size

    def fn(u, key):
        idx = jax.random.randint(key, (b,), 0, n)
        sub = jax.tree_util.tree_map(lambda x: x[idx], data)
        total = loglik_sum(cfg, u, sub, None if weights is None else weights[idx]) * (n / b)
        if cfg.penalty is not None:
            total = total + penalty_at(cfg, u)
        return total

    return fn


class Setup(NamedTuple):
    solver: Any
    fn: Callable[[jax.Array], jax.Array]
    nobs: jax.Array
    loglik: Callable[[jax.Array], jax.Array] | None = None   # plain, when fn is penalised
    warm_fn: Callable | None = None   # random effects: the objective from an inner start w


def solver_setup(cfg: Config, data, weights, key, fn=None) -> Setup:
    """The solver for one dataset, its objective, and the number of observations.

    ``fn`` replaces the objective (an annealing stage's tempered one).
    """
    problem = cfg.problem
    if cfg.obs_chunk is None and cfg.obs_devices is None:
        loglik = loglik_total(cfg, data, weights)
        if fn is None:
            fn = objective(cfg, data, weights) if cfg.penalty is not None else loglik
    else:
        loglik = chunked_sum(cfg, data, weights, penalised=False)
        if fn is None:
            fn = chunked_sum(cfg, data, weights, penalised=True) if cfg.penalty is not None else loglik
    chunked = isinstance(fn, ChunkedSum)
    l1 = _penalties.l1_weights(cfg.penalty, problem)
    n_obs = None
    if cfg.per_obs:
        u_any = jnp.zeros(problem.n_free, problem.dtype)
        n_obs = jax.eval_shape(cfg.loglik_fn, problem.to_natural(u_any), data).shape[0]
    if cfg.has_weights:
        scale = jnp.maximum(jnp.sum(weights), 1.0)
        nobs = jnp.sum(weights > 0).astype(jnp.int32)
    else:
        scale = float(n_obs) if n_obs else 1.0
        nobs = jnp.int32(n_obs if n_obs is not None else -1)

    def make_solver(fn):
        if l1 is not None:   # exact zeros: proximal Newton (method="newton", checked in configure)
            return ProximalNewton(fn, l1)
        if cfg.method == "newton":
            return Newton(fn, fn.value_grad_hessian if chunked else None)
        if cfg.method == "bfgs":
            return bfgs(fn, scale, value_and_grad=fn.value_and_grad if chunked else None)
        if cfg.method == "lbfgs":
            return lbfgs(fn, scale, cfg.lbfgs_memory,
                         value_and_grad=fn.value_and_grad if chunked else None)
        if cfg.batch_size is None:
            return gradient(fn, scale, cfg.optimizer)
        return MinibatchGradient(fn, minibatch_objective(cfg, data, weights, n_obs), key,
                                 scale, cfg.optimizer, gtol=cfg.gtol)

    if cfg.random is None:
        return Setup(make_solver(fn), fn, nobs, loglik)
    # Random effects (mlejax._laplace): the objective is the marginal, whose inner Newton
    # starts from data["u0"]; the solver carries the last mode forward as that start.
    spec = cfg.random

    def warm_fn(w):
        warm_data = dict(data, u0=w)
        if cfg.penalty is None:
            return loglik_total(cfg, warm_data, weights)
        return objective(cfg, warm_data, weights)

    def mode_at(u, w):
        m, converged, _ = _laplace.inner_newton(spec, problem.to_natural(u), data["data"], w)
        return jax.lax.stop_gradient(jnp.where(converged, m, w))

    def make_warm_solver(w):
        if cfg.method == "newton" and l1 is None:
            # One traced program for the derivatives of the marginal, shared by the solver's
            # first evaluation and its steps (a nested jit is traced once per shape).
            return Newton(warm_fn(w), functools.partial(marginal_derivatives, cfg, w=w,
                                                        data=data))
        return make_solver(warm_fn(w))

    solver = _laplace.WarmStarted(make_warm_solver, mode_at, data["u0"])
    return Setup(solver, fn, nobs, loglik, warm_fn)


@functools.partial(jax.jit, static_argnums=0)
def marginal_derivatives(cfg: Config, u, *, w, data):
    """The value, gradient and Hessian in ``u`` of a random-effects fit's objective whose
    inner Newton starts at ``w``."""
    warm_data = dict(data, u0=w)
    fn = (loglik_total(cfg, warm_data, None) if cfg.penalty is None
          else objective(cfg, warm_data, None))
    return value_grad_hessian(fn, u)


def to_result(cfg: Config, setup: Setup, out: LoopResult, data=None) -> FitResult:
    """The observed information at the optimum, on the natural scale, and the result
    (with random effects, ``data`` is the fit's: their modes and errors are reported)."""
    problem = cfg.problem
    state = out.solver_state
    u_hat = state.u
    fn = setup.fn if setup.warm_fn is None else setup.warm_fn(state.warm)
    if cfg.method == "newton":
        hess = state.hess
    elif isinstance(fn, ChunkedSum):
        hess = fn.value_grad_hessian(u_hat)[2]
    else:
        hess = jax.hessian(fn)(u_hat)
    # Newton's hess is a BFGS model where the autodiff Hessian had non-finite entries: no
    # standard errors from it (its ``exact`` flag); other solvers' Hessian is evaluated here.
    exact = getattr(state, "exact", None)
    finite_h = jnp.all(jnp.isfinite(hess)) if exact is None else exact
    cov, pd = problem.natural_cov(u_hat, hess)
    cov = jnp.where(finite_h, cov, jnp.nan)
    # A converged fit whose Hessian is not finite found the maximum (the gradient test) but
    # has no standard errors: NONFINITE_HESSIAN, its own diagnosis, never SINGULAR_HESSIAN.
    converged = out.status == Status.CONVERGED
    status = jnp.where(converged & ~finite_h, jnp.int32(Status.NONFINITE_HESSIAN),
                       jnp.where(pd | ~converged, out.status,
                                 jnp.int32(Status.SINGULAR_HESSIAN)))
    if cfg.penalty is None:   # a stop on the way to a supremum at infinity (_attained.py)
        # A dense random-effects marginal: the probe points one after another, each inner
        # Newton (far from its warm start: tens of O(q^3) steps) stopping on its own, not
        # all nine running as long as the slowest in one vmap.
        escaping = not_attained(fn, u_hat, hess, state.g,
                                batched_fn=not isinstance(fn, ChunkedSum),
                                sequential=cfg.fits_in_turn)
        status = jnp.where(escaping & ((status == Status.CONVERGED)
                                       | (status == Status.SINGULAR_HESSIAN)),
                           jnp.int32(Status.NOT_ATTAINED), status)
    random = None
    if cfg.random is not None:
        random, status = random_effects_at(cfg, u_hat, hess, data, state.warm, status)
    stderr = problem.unravel_natural(jnp.sqrt(jnp.diagonal(cov)))
    # A penalised fit maximised loglik + penalty (state.f): report both, apart.
    penalised = cfg.penalty is not None and setup.loglik is not None
    return FitResult(
        params=problem.to_natural(u_hat),
        loglik=setup.loglik(u_hat) if penalised else state.f, status=status,
        n_steps=out.n_steps, trace=out.trace, cov=cov, stderr=stderr,
        grad_norm=scaled_grad_norm(u_hat, state.f, state.g), nobs=setup.nobs, restarts=None,
        n_best=None, objective=state.f if penalised else None,
        param_names=problem.param_names, df_model=problem.n_free, method=cfg.method,
        penalty=repr(cfg.penalty) if penalised else None, leaf_order=problem.order,
        random=random)


def random_effects_at(cfg: Config, u_hat, hess, data, warm, status):
    """The random effects at the estimate (:func:`mlejax._laplace.report`) as a
    :class:`~mlejax.result.RandomEffectsResult`, and the status with the inner Newton's
    diagnosis: ``INNER_NOT_CONVERGED`` or ``INNER_NOT_DEFINITE`` where the mode at the
    estimate was not found or is not a strict maximum (the marginal is not defined there)."""
    spec = cfg.random
    cov_u, _ = safe_inverse_pd(-hess)
    rep = _laplace.report(spec, cfg.problem.to_natural, u_hat, cov_u, data["data"], warm)
    unflat = spec.layout.unflatten
    status = jnp.where(~rep.converged, jnp.int32(Status.INNER_NOT_CONVERGED),
                       jnp.where(~rep.definite, jnp.int32(Status.INNER_NOT_DEFINITE), status))
    return RandomEffectsResult(mode=unflat(rep.mode), stderr=unflat(rep.stderr),
                               cond_stderr=unflat(rep.cond_stderr)), status
