"""Expectation-maximisation for any model with a discrete latent variable.

The user writes the complete-data log-likelihood of each observation for each value of the
latent variable, ``joint_loglik_fn(params, data) -> (n, K)`` with entries
``log p(x_i, z_i = k | params)``. The observed-data log-likelihood maximised is

    L(params) = sum_i w_i log sum_k exp(joint_ik),

and each EM iteration, from the responsibilities ``r_ik = p(z_i = k | x_i, params_t)``
(the softmax over ``k``, the E-step), maximises

    Q(params) = sum_ik w_i r_ik log p(x_i, z_i = k | params)        (the M-step)

either in closed form, when the user passes ``m_step(responsibilities, data) -> params``
(responsibilities already multiplied by the observation weights ``w_i``), or numerically:
a few trust-region Newton steps (:class:`mlejax.solvers.Newton`) on ``Q`` in the unconstrained
coordinates of the core's constraints, each accepted only if it increases ``Q``
(generalised EM). Either way ``L`` never decreases (Dempster, Laird & Rubin 1977): the trace
is monotone up to rounding, and a step that would lower ``L`` beyond rounding is refused and
ends the fit.

EM runs on the one driver loop (:func:`mlejax._loop.iterate`) as a gradient-free solver: it
stops at its fixed point, when an iteration changes ``L`` by at most ``ftol * max(|L|, 1)``
and moves every coordinate of the parameter vector by at most ``xtol * (1 + |u_i|)`` (both
defaults scale with the dtype's eps, :func:`em_tolerance` and :func:`em_xtol`). The change in
``L`` alone would stop it short: EM converges linearly, and ``L`` is flat (quadratic) near
its maximum, so a change of ``ftol`` in ``L`` leaves the parameters about ``sqrt(ftol)``
from the fixed point. It also stops when a step would lower ``L`` beyond rounding (see
:class:`EM`), reports ``MAX_STEPS`` when it runs out of iterations and ``NONFINITE``
(keeping the last finite estimate) when ``L`` becomes NaN or infinite.

References:
  Dempster, Laird & Rubin (1977), Maximum likelihood from incomplete data via the EM
  algorithm. Lange (1995), A gradient algorithm locally equivalent to the EM algorithm
  (Newton steps in the M-step). McLachlan & Krishnan, The EM Algorithm and Extensions.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _validate as V
from mlejax import anneal as _anneal
from mlejax._loop import (STEP_AT_OPTIMUM, STEP_NO_PROGRESS, STEP_PROGRESS, LoopResult,
                          default_tolerances, iterate)
from mlejax._configure import configure
from mlejax._kernels import QUICK_COMPILE_UNKNOWN, quick_compile_options
from mlejax._numerics import is_concrete, nan_to_neginf, scaled_grad_norm
from mlejax._problem import Problem, make_problem
from mlejax._programs import program_cache
from mlejax._warnings import warn_fits
from mlejax.result import FitContext, FitResult
from mlejax.solvers import Newton
from mlejax.status import Status

__all__ = ["EM", "EMState", "ObservedLoglik", "e_step", "em", "em_iterate", "em_tolerance",
           "em_xtol", "observed_cov", "refit_context"]

# A step may lower L by this many ulps of |L| (rounding of the sums), never more.
_NOISE_ULPS = 64.0
# EM's fixed point can take thousands of iterations where components overlap (its rate of
# convergence near 1): 200 small mixtures of the gmm benchmark's kind, 31 at 1000 iterations,
# 5 at 3000. The per-iteration cost does not depend on it (the trace is max_steps + 1 long).
_DEFAULT_MAX_STEPS = 3000
# Up to this many observations EM keeps its (K, n) responsibilities component-major: the
# reductions then run along rows of n, where (n, K) with a small K vectorises poorly under
# vmap (1,000 three-component mixtures of 500 points: 12 ms per EM iteration against 21 ms).
# For large n the observation-major (n, K) is faster (n = 1e6, k = 5: 51 ms against 134 ms
# for an iteration). The transposes a model writes (.T of its (K, n) densities, resp.T @ x
# in its M-step) cancel against these.
_COMPONENT_MAJOR_MAX_N = 16384


def em_tolerance(dtype) -> float:
    """Default ``ftol`` of EM: ``eps ** (2/3)`` of the dtype (3.7e-11 in float64, 2.4e-5 in
    float32). EM converges linearly, so the error left in ``L`` is a multiple of the last
    change; this keeps the estimate accurate to about ``eps ** (1/3)`` relative."""
    return float(jnp.finfo(dtype).eps) ** (2.0 / 3.0)


def em_xtol(dtype) -> float:
    """Default ``xtol`` of EM: ``eps ** (2/3)`` of the dtype (3.7e-11 in float64, 2.4e-5 in
    float32), on the step ``|u_new - u_old| <= xtol * (1 + |u_new|)`` of each coordinate.
    EM's error after a step of size ``s`` is about ``s r / (1 - r)`` (``r`` its rate of linear
    convergence, the fraction of missing information), so this leaves the estimate well
    within ``1e-6`` of the fixed point in float64 unless ``r > 0.9999``; in float32 it stays
    above the rounding of an M-step (a few eps), so a float32 fit stops."""
    return float(jnp.finfo(dtype).eps) ** (2.0 / 3.0)


class EMState(NamedTuple):
    u: jax.Array      # flat parameter vector, in the coordinates the M-step works in
    f: jax.Array      # observed-data log-likelihood L at u
    g: jax.Array      # zeros like u: EM keeps no gradient (the loop's start reads g with u)
    resp: jax.Array   # responsibilities at u, times the observation weights: (n, K), or
    #                   (K, n) where n <= _COMPONENT_MAJOR_MAX_N (see EM)


def e_step(joint: jax.Array, weights: jax.Array | None = None, beta=None):
    """The E-step: ``(L, w_i r_ik)`` from the ``(n, K)`` joint log-densities.

    A row that is ``-inf`` everywhere (an observation no component can produce) makes ``L``
    non-finite, which the driver loop reports as ``NONFINITE``. With ``beta`` (deterministic
    annealing, :mod:`mlejax.anneal`) the responsibilities are proportional to
    ``p(x_i, z_i = k)^beta`` and ``L`` is the tempered ``(1/beta) sum_i w_i log sum_k
    p_ik^beta``, which EM at that ``beta`` increases monotonically.
    """
    return _e_step(joint, weights, beta, axis=1)


# Up to this many components the component-major E-step writes out its max and sum.
_UNROLL_MAX_K = 8


def _e_step(joint: jax.Array, weights, beta, axis: int):
    """:func:`e_step` with the components along ``axis`` of ``joint`` (1: ``(n, K)``; 0:
    the ``(K, n)`` transpose, responsibilities returned in the same layout)."""
    if beta is not None:
        f, resp = _e_step(beta * joint, weights, None, axis)
        return f / beta, resp
    # One pass of exp serves both the log-sum-exp and the responsibilities.
    if axis == 0 and joint.shape[0] <= _UNROLL_MAX_K:
        # Few components in rows: maxima and sums written out over the rows are elementwise
        # work that XLA fuses with the exp (reductions over a short axis run as kernels of
        # their own, each a pass over the array).
        top = joint[0]
        for j in range(1, joint.shape[0]):
            top = jnp.maximum(top, joint[j])
        top = jax.lax.stop_gradient(top)[None]
        e = jnp.exp(joint - top)
        total = e[0]
        for j in range(1, joint.shape[0]):
            total = total + e[j]
        total = total[None]
    else:
        top = jax.lax.stop_gradient(jnp.max(joint, axis=axis, keepdims=True))
        e = jnp.exp(joint - top)
        total = jnp.sum(e, axis=axis, keepdims=True)
    ll = jnp.squeeze(top + jnp.log(total), axis)
    resp = e / total
    if weights is None:
        return jnp.sum(ll), resp
    # Weight-0 rows count for nothing, even where they are impossible (ll = -inf).
    w = jnp.expand_dims(weights, axis)
    return (jnp.sum(jnp.where(weights > 0, weights * ll, 0.0)),
            jnp.where(w > 0, resp * w, 0.0))


class EM:
    """EM as a gradient-free solver for :func:`mlejax._loop.iterate`.

    Args:
      joint_fn: ``u -> (n, K)`` joint log-densities ``log p(x_i, z_i = k)`` at the flat
        parameter vector ``u``.
      m_step_fn: ``(u, weighted responsibilities) -> u_new``, a point that does not lower
        ``Q`` (its exact maximiser for EM, an improvement for generalised EM).
      weights: optional ``(n,)`` observation weights.
      beta: optional inverse temperature of a deterministic-annealing stage (tempered
        responsibilities; None is plain EM).
      ftol, xtol: the fixed-point test. A step that changes ``L`` by at most
        ``ftol * max(|L|, 1)`` and every coordinate ``u_i`` by at most
        ``xtol * (1 + |u_i|)`` reports ``STEP_AT_OPTIMUM`` (the driver loop, run with
        ``ftol=None``, then stops). ``xtol=None`` leaves the test to ``L`` alone.
    """

    stochastic = False
    gradient_free = True

    def __init__(self, joint_fn: Callable, m_step_fn: Callable, weights=None, beta=None, *,
                 ftol: float = 0.0, xtol: float | None = None):
        self.joint_fn, self.m_step_fn, self.weights = joint_fn, m_step_fn, weights
        self.beta, self.ftol, self.xtol = beta, ftol, xtol

    def _component_major(self, u) -> bool:
        """Whether this EM keeps ``(K, n)`` responsibilities (a static choice by ``n``)."""
        n = jax.eval_shape(self.joint_fn, u).shape[0]
        return n <= _COMPONENT_MAJOR_MAX_N

    def _e(self, u):
        # The barrier keeps the joint log-densities one materialised array: without it XLA
        # fuses their computation (Cholesky solves, logs) into each consumer of the E-step
        # and computes them several times over (a Gaussian mixture's E-step at n = 1e6,
        # k = 5: 115 ms fused, 28 ms with the barrier).
        joint = self.joint_fn(u)
        if self._component_major(u):
            return _e_step(jax.lax.optimization_barrier(joint.T), self.weights, self.beta,
                           axis=0)
        return _e_step(jax.lax.optimization_barrier(joint), self.weights, self.beta, axis=1)

    def init(self, u0):
        f, resp = self._e(u0)
        return EMState(u0, f, jnp.zeros_like(u0), resp)

    def step(self, state: EMState):
        resp = state.resp.T if self._component_major(state.u) else state.resp
        u = self.m_step_fn(state.u, resp)
        f, resp = self._e(u)
        noise = _NOISE_ULPS * jnp.finfo(f.dtype).eps * jnp.maximum(jnp.abs(state.f), 1.0)
        # EM cannot lower L beyond rounding. A larger drop (a wrong user M-step, or a
        # regularised M-step such as reg_covar's near its fixed point, which lies
        # O(reg_covar) from the maximum) is refused: the loop keeps the old state and stops.
        progress = nan_to_neginf(f) >= state.f - noise
        # The fixed point: L flat and the parameters still (a change in L alone stops EM
        # about sqrt(ftol) short of it, L being quadratic near its maximum).
        done = jnp.abs(f - state.f) <= self.ftol * jnp.maximum(jnp.abs(f), 1.0)
        if self.xtol is not None:
            done &= jnp.all(jnp.abs(u - state.u) <= self.xtol * (1.0 + jnp.abs(u)))
        code = jnp.where(progress, jnp.where(done, STEP_AT_OPTIMUM, STEP_PROGRESS),
                         STEP_NO_PROGRESS)
        return EMState(u, f, state.g, resp), code


def newton_m_step(joint_fn: Callable, newton_steps: int, dtype) -> Callable:
    """A generalised M-step: ``newton_steps`` trust-region Newton steps on ``Q`` from ``u``."""
    # The core's Newton tolerances: the M-step's maximiser to the precision of the dtype.
    _, ftol = default_tolerances(dtype)
    gtol = float(jnp.finfo(dtype).eps) ** 0.75

    def m_step(u, resp):
        def q(v):
            joint = joint_fn(v)
            # r = 0 where a component is impossible (joint = -inf): no 0 * inf.
            return jnp.sum(jnp.where(resp > 0, resp * jnp.where(resp > 0, joint, 0.0), 0.0))

        out = iterate(Newton(q), u, max_steps=newton_steps, gtol=gtol, ftol=ftol, trace_len=1)
        return out.solver_state.u

    return m_step


def em_iterate(joint_fn: Callable, m_step_fn: Callable, u0: jax.Array, *, weights=None,
               max_steps: int, ftol: float, trace_len: int, xtol: float | None = None,
               anneal=None, key: jax.Array | None = None,
               anneal_m_step_fn: Callable | None = None) -> LoopResult:
    """EM from ``u0`` on the driver loop (pure: runs under ``jit`` and ``vmap``), stopped at
    its fixed point by ``ftol`` and ``xtol`` (:class:`EM`).

    With ``anneal`` (a :class:`mlejax.anneal.Schedule`), EM first runs to convergence at
    each ``beta < 1`` of the schedule in turn (tempered E-steps, up to ``max_steps``
    iterations each; on the change in ``L`` alone, a stage's end being only the next
    one's start), then from there at ``beta = 1``: the result is that last stage's.
    ``anneal_m_step_fn`` replaces the M-step in the stages before the last (a model may
    restrict its shape there; see ``GaussianMixture``).
    """
    if anneal is not None:
        stage_m_step = m_step_fn if anneal_m_step_fn is None else anneal_m_step_fn

        def stage(u, beta, sigma, stage_key):
            del sigma   # smoothing is for direct fits; EM tempers the responsibilities
            u = _jitter(joint_fn, stage_m_step, u, weights, beta, stage_key, anneal.jitter)
            out = iterate(EM(joint_fn, stage_m_step, weights, beta, ftol=ftol),
                          u, max_steps=anneal.stage_steps or max_steps,
                          gtol=0.0, ftol=None, trace_len=1)
            return out.solver_state.u

        u0 = _anneal.run_stages(stage, u0, anneal, key)
        u0 = _jitter(joint_fn, m_step_fn, u0, weights, 1.0,
                     jax.random.fold_in(jax.random.key(0) if key is None else key, 1),
                     anneal.jitter)
    return iterate(EM(joint_fn, m_step_fn, weights, ftol=ftol, xtol=xtol), u0,
                   max_steps=max_steps, gtol=0.0, ftol=None, trace_len=trace_len)


def _jitter(joint_fn, m_step_fn, u, weights, beta, key, size):
    """One M-step from responsibilities perturbed by ``exp(size z)``, ``z ~ N(0, 1)``.

    Components that merged at a high temperature are identical, and EM keeps identical
    components identical: a symmetric point is a fixed point at every beta (a saddle at
    beta = 1, where EM's small steps would stop). A small random perturbation of the
    responsibilities breaks the symmetry, so that components split where the data ask
    for it as beta rises (Rose 1998, on the phase transitions of annealing).
    """
    if size == 0:
        return u
    _, resp = e_step(joint_fn(u), weights, beta)
    noisy = resp * jnp.exp(size * jax.random.normal(key, resp.shape, resp.dtype))
    total = jnp.sum(noisy, axis=-1, keepdims=True)
    noisy = noisy * (jnp.sum(resp, axis=-1, keepdims=True) / jnp.where(total > 0, total, 1.0))
    u_new = m_step_fn(u, noisy)
    return jnp.where(jnp.all(jnp.isfinite(u_new)), u_new, u)


@dataclasses.dataclass(frozen=True)
class ObservedLoglik:
    """``loglik_fn(params, data)`` of the observed data, ``log sum_k exp(joint_ik)`` per
    observation, for :func:`mlejax.fit` (inference and refits from an EM result)."""

    joint_fn: Callable

    def __call__(self, params, data):
        return jax.scipy.special.logsumexp(self.joint_fn(params, data), axis=-1)


def refit_context(loglik_fn: Callable, params: Any, data: Any, *, constraints: Any,
                  weights: Any = None, batched: bool = False) -> FitContext | None:
    """The context :func:`mlejax.fit` keeps for a Newton fit of the observed-data
    ``loglik_fn`` from ``params``, so that inference which refits (profiles, bootstrap) works
    on an EM result. None where ``mj.fit`` could not start there (an estimate on the
    boundary of its constraints, such as a probability of exactly 0)."""
    try:
        cfg = configure(loglik_fn, params, data, constraints=constraints, weights=weights,
                       method="newton", optimizer=None, batch_size=None, max_steps=None,
                       gtol=None, ftol=None, restarts=None, key=None, restart_scale=1.0,
                       trace_len=None, batched=batched, init_batched=batched)[0]
    except ValueError:
        return None
    return FitContext(cfg, data, weights)


@dataclasses.dataclass(frozen=True)
class _EMConfig:
    """The static settings of an EM fit: the key of the compiled-program cache."""

    joint_fn: Callable
    m_step: Callable | None
    problem: Problem
    has_weights: bool
    max_steps: int
    ftol: float
    xtol: float
    trace_len: int
    newton_steps: int
    stderr: bool
    anneal: Any = None


def _solve(cfg: _EMConfig, start: jax.Array, data, weights) -> FitResult:
    problem, dtype = cfg.problem, cfg.problem.dtype
    closed_form = cfg.m_step is not None
    # Closed form: u is the flat natural vector (no transform, no round trip through the
    # constraints); Newton M-step: u is the core's unconstrained vector.
    to_params = problem.unravel_natural if closed_form else problem.to_natural

    def joint_u(u):
        return cfg.joint_fn(to_params(u), data).astype(dtype)

    if closed_form:
        def m_step(u, resp):
            del u
            return problem.flat_natural(cfg.m_step(resp, data))
    else:
        m_step = newton_m_step(joint_u, cfg.newton_steps, dtype)

    out = em_iterate(joint_u, m_step, start, weights=weights, max_steps=cfg.max_steps,
                     ftol=cfg.ftol, xtol=cfg.xtol, trace_len=cfg.trace_len, anneal=cfg.anneal)
    state = out.solver_state
    params = to_params(state.u)

    def observed(p_nat):
        return e_step(cfg.joint_fn(p_nat, data).astype(dtype), weights)[0]

    if cfg.stderr:
        cov, pd, grad_norm = observed_cov(observed, problem, params, state.f)
        status = jnp.where(pd | (out.status != Status.CONVERGED), out.status,
                           jnp.int32(Status.SINGULAR_HESSIAN))
    else:
        m = sum(int(np.prod(sh)) for sh in problem.nat_shapes)
        cov = jnp.full((m, m), jnp.nan, dtype)
        grad_norm = jnp.full((), jnp.nan, dtype)
        status = out.status
    n_obs = jax.eval_shape(joint_u, state.u).shape[0]
    nobs = (jnp.sum(weights > 0).astype(jnp.int32) if weights is not None
            else jnp.int32(n_obs))
    return FitResult(
        params=params, loglik=state.f, status=status, n_steps=out.n_steps, trace=out.trace,
        cov=cov, stderr=problem.unravel_natural(jnp.sqrt(jnp.diagonal(cov))),
        grad_norm=grad_norm, nobs=nobs, restarts=None, n_best=None,
        param_names=problem.param_names, df_model=problem.n_free, method="em",
        leaf_order=problem.order)


def observed_cov(total_fn: Callable, problem: Problem, params: Any, f: jax.Array):
    """The inverse observed information at ``params``, on the natural scale.

    ``total_fn(params) -> L`` is the observed-data log-likelihood. Its autodiff Hessian is
    taken in the core's unconstrained coordinates (``problem``), inverted where it is
    negative definite (NaN otherwise) and mapped to the natural parameters with the
    Jacobian of the constraints (the delta method) by
    :meth:`~mlejax._problem.Problem.natural_cov`, as :func:`mlejax.fit` does. Returns
    ``(cov, positive_definite, scaled_grad_norm)``.
    """
    u_hat = problem.to_u(jax.tree_util.tree_leaves(params))

    def fn(v):
        return total_fn(problem.to_natural(v))

    grad = jax.grad(fn)(u_hat)
    cov, pd = problem.natural_cov(u_hat, jax.hessian(fn)(u_hat))
    return cov, pd, scaled_grad_norm(u_hat, f, grad)


@program_cache
def _kernel(cfg: _EMConfig, options: tuple | None = None):
    if options is not None:
        return jax.jit(functools.partial(_solve, cfg), compiler_options=dict(options))
    return jax.jit(functools.partial(_solve, cfg))


def _compile_options(cfg: _EMConfig, data, weights) -> tuple | None:
    """XLA's quick-compile options for one small EM fit on CPU, as for one small
    :func:`mlejax.fit` (its latency is the compile; benchmarks/RESULTS.md, issue 20)."""
    return quick_compile_options(data, weights, cfg.problem.n_free)


# The checks before the fit run as one compiled call each, not op by op (every eagerly run
# operation compiles a program of its own: 30 of them, 0.7 s, for a mixture of regressions).
@functools.partial(jax.jit, static_argnums=0)
def _observed_at(joint_fn, params, data):
    return jax.scipy.special.logsumexp(joint_fn(params, data), axis=-1)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _start(problem: Problem, natural: bool, leaves):
    """The starting vector: natural (closed-form M-step) or unconstrained (Newton)."""
    if natural:
        return problem.flat_natural(jax.tree_util.tree_unflatten(problem.treedef, leaves))
    return problem.to_u(leaves)


def _check_joint(joint_fn, params, data, weights):
    try:
        out = jax.eval_shape(joint_fn, params, data)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"joint_loglik_fn(params, data) failed on init and data: {err}"
                         ) from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.ndim != 2:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError("joint_loglik_fn must return one (n, K) array of log p(x_i, z_i = k "
                         f"| params), one row per observation and one column per value of the "
                         f"latent variable; got {shape}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"joint_loglik_fn must return floating values; got dtype {out.dtype}.")
    if weights is not None and tuple(np.shape(weights)) != (out.shape[0],):
        raise ValueError(f"weights has shape {np.shape(weights)} but joint_loglik_fn returns "
                         f"{out.shape[0]} observations; give one weight per observation.")
    return out


def _check_m_step(m_step, params, data, out, dtype):
    resp = jax.ShapeDtypeStruct(out.shape, dtype)
    try:
        new = jax.eval_shape(m_step, resp, data)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"m_step(responsibilities, data) failed with responsibilities of "
                         f"shape {out.shape}: {err}") from err
    want = jax.tree_util.tree_structure(params)
    got = jax.tree_util.tree_structure(new)
    if want != got:
        raise ValueError(f"m_step must return params with the structure of init: {want}; "
                         f"got {got}.")
    for name, a, b in zip(V.leaf_names(params), jax.tree_util.tree_leaves(params),
                          jax.tree_util.tree_leaves(new)):
        if tuple(np.shape(a)) != tuple(b.shape):
            raise ValueError(f"m_step returns {name} with shape {tuple(b.shape)}; init has "
                             f"shape {tuple(np.shape(a))}. Return the same shapes as init.")


def em(joint_loglik_fn: Callable, init: Any, data: Any = None, *,
       m_step: Callable | None = None, constraints: Any = None, weights: Any = None,
       max_steps: int | None = None, ftol: float | None = None, xtol: float | None = None,
       newton_steps: int = 5,
       trace_len: int | None = None, stderr: bool = True, anneal: Any = None,
       warn: bool = True) -> FitResult:
    """Maximum likelihood by EM for a model with a discrete latent variable.

    Maximises ``L(params) = sum_i w_i log sum_k exp(joint_loglik_fn(params, data)[i, k])``.
    Each iteration computes the responsibilities ``r_ik`` (softmax over ``k``) and then
    maximises ``Q = sum_ik w_i r_ik joint_ik``: with ``m_step`` in closed form; without, by
    ``newton_steps`` trust-region Newton steps on ``Q`` (generalised EM; steps accepted only when
    they increase ``Q``), in the unconstrained coordinates given by ``constraints``.
    ``L`` never decreases; ``trace`` records it after every iteration. EM stops at its fixed
    point: when an iteration changes ``L`` by at most ``ftol * max(|L|, 1)`` and moves each
    coordinate ``u_i`` of the parameter vector by at most ``xtol * (1 + |u_i|)`` (natural
    parameters with ``m_step``, the unconstrained ones of ``constraints`` without).

    Standard errors come from the autodiff Hessian of ``L`` at the estimate, mapped to the
    natural scale through the constraints (as :func:`mlejax.fit` does).

    Args:
      joint_loglik_fn: ``joint_loglik_fn(params, data)`` returning the ``(n, K)`` array of
        ``log p(x_i, z_i = k | params)``.
      init: starting values on the natural scale (a pytree).
      data: any pytree, passed to the user's functions untouched.
      m_step: optional ``m_step(responsibilities, data) -> params``, the closed-form
        maximiser of ``Q``; ``responsibilities`` is ``(n, K)``, already times the weights.
      constraints: a pytree prefix of ``init`` (``mj.simplex`` for mixture weights,
        ``mj.positive``, ``mj.positive_definite``, ...). Used by the Newton M-step and by
        the standard errors.
      weights: optional non-negative ``(n,)`` observation weights.
      max_steps: at most this many EM iterations (default 3000; ``MAX_STEPS`` if hit).
      ftol: the fixed-point test on ``L``: an iteration changes it by at most
        ``ftol * max(|L|, 1)`` (default ``eps ** (2/3)`` of the dtype).
      xtol: the fixed-point test on the parameters: an iteration moves each coordinate by at
        most ``xtol * (1 + |u_i|)`` (default ``eps ** (2/3)`` of the dtype,
        :func:`em_xtol`); ``float("inf")`` stops on ``ftol`` alone.
      newton_steps: trust-region Newton steps per generalised M-step (without ``m_step``).
      trace_len: length of the trace (default ``max_steps + 1``).
      stderr: compute the observed information and standard errors.
      anneal: a deterministic-annealing schedule (:mod:`mlejax.anneal`, e.g.
        ``mj.anneal.geometric(start=0.1, steps=20)``): EM runs to convergence with tempered
        responsibilities ``r_ik ~ p(x_i, z_i = k)^beta`` at each ``beta`` in turn, then at
        ``beta = 1``, so the answer is the MLE reached along the annealing path.
      warn: warn on the host when the fit did not converge.

    Returns:
      A :class:`~mlejax.FitResult` with ``method="em"``.

    Example:
      >>> import jax, jax.numpy as jnp, mlejax as mj
      >>> x = jnp.concatenate([jax.random.exponential(jax.random.key(0), (300,)) * 0.5,
      ...                      jax.random.exponential(jax.random.key(1), (300,)) * 4.0])
      >>> def joint(p, x):   # mixture of two exponentials
      ...     rate = p["rate"]
      ...     return jnp.log(p["weights"]) + jnp.log(rate) - x[:, None] * rate
      >>> res = mj.em(joint, {"weights": jnp.array([0.5, 0.5]), "rate": jnp.array([3.0, 0.1])},
      ...             x, constraints={"weights": mj.simplex, "rate": mj.positive})
      >>> bool(res.converged)
      True

    References:
      Dempster, Laird & Rubin (1977); Lange (1995).
    """
    if not callable(joint_loglik_fn):
        raise ValueError("joint_loglik_fn must be a function joint_loglik_fn(params, data) "
                         "returning the (n, K) array of log p(x_i, z_i = k | params).")
    if m_step is not None and not callable(m_step):
        raise ValueError("m_step must be a function m_step(responsibilities, data) -> params, "
                         "or None for a numerical (Newton) M-step.")
    if isinstance(newton_steps, bool) or int(newton_steps) < 1:
        raise ValueError(f"newton_steps must be a positive integer; got {newton_steps!r}.")
    steps = _DEFAULT_MAX_STEPS if max_steps is None else int(max_steps)
    if steps < 0:
        raise ValueError(f"max_steps must be >= 0; got {max_steps}.")
    if ftol is not None and not float(ftol) >= 0:
        raise ValueError(f"ftol must be >= 0; got {ftol}.")
    if xtol is not None and not float(xtol) >= 0:
        raise ValueError(f"xtol must be >= 0; got {xtol}.")
    anneal = _anneal.as_schedule(anneal)

    names, leaves, dtype, treedef, cons = V.check_params(init, constraints)
    V.check_data_finite(data)
    if weights is not None:
        weights = jnp.asarray(weights, dtype)
        V.check_data_finite(weights, "weights")
        if is_concrete(weights) and np.any(np.asarray(weights) < 0):
            raise ValueError("weights must be non-negative.")
    params0 = jax.tree_util.tree_unflatten(treedef, leaves)
    out = _check_joint(joint_loglik_fn, params0, data, weights)
    if m_step is not None:
        _check_m_step(m_step, params0, data, out, dtype)
    if is_concrete((leaves, data)):
        ll = _observed_at(joint_loglik_fn, params0, data)
        bad = ~np.isfinite(np.asarray(ll))
        if weights is not None:
            bad &= np.asarray(weights) > 0
        if np.any(bad):
            raise ValueError(f"the log-likelihood is not finite at init for {int(bad.sum())} "
                             f"observation(s) (first: {int(np.argmax(bad))}); choose starting "
                             "values under which every observation has positive density.")

    problem = make_problem(leaves, treedef, cons, names, dtype, V.written_order(init))
    cfg = _EMConfig(
        joint_fn=joint_loglik_fn, m_step=m_step, problem=problem,
        has_weights=weights is not None, max_steps=steps,
        ftol=float(em_tolerance(dtype) if ftol is None else ftol),
        xtol=float(em_xtol(dtype) if xtol is None else xtol),
        trace_len=int(steps + 1 if trace_len is None else trace_len),
        newton_steps=int(newton_steps), stderr=bool(stderr), anneal=anneal)
    start = _start(problem, m_step is not None, leaves)
    options = _compile_options(cfg, data, weights)
    try:
        res = _kernel(cfg, options)(start, data, weights)
    except Exception as err:   # noqa: BLE001 -- an XLA without these options (as in fit)
        if options is None or "compile option" not in str(err):
            raise
        QUICK_COMPILE_UNKNOWN.append(options)
        res = _kernel(cfg)(start, data, weights)
    context = None
    if is_concrete(res.params):
        context = refit_context(ObservedLoglik(joint_loglik_fn), res.params, data,
                                constraints=constraints, weights=weights)
    res = dataclasses.replace(res, context=context)
    if warn and is_concrete(res.status):
        warn_fits(res)
    return res
