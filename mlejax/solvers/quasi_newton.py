"""Quasi-Newton ascent: dense BFGS for small problems, L-BFGS for large ones.

The search direction comes from an optax transformation: :func:`scale_by_bfgs` (below) keeps
the full ``p x p`` inverse-Hessian approximation ``B`` of the objective being minimised
(``-loglik``) and updates it with

    B <- (I - rho s y^T) B (I - rho y s^T) + rho s s^T,     rho = 1 / (y^T s),

skipping the update when the curvature ``y^T s`` is not positive (which keeps ``B`` positive
definite), and scaling the first ``B`` by ``y^T s / y^T y`` (Nocedal & Wright eq. 6.20);
L-BFGS is optax's ``optax.scale_by_lbfgs`` (the two-loop recursion over the last
``memory_size`` pairs).

The line search is this module's own, and evaluates one trial point per loop step. A line
search with an inner loop (optax's zoom) costs, under ``vmap``, the worst element's number of
trials at every step: on a batch of restarts where a few starts chase a collapsing mixture
component, each step of all 256 starts paid up to 30 evaluations. Here a trial that is not
yet acceptable is the loop code ``STEP_RETRY`` (the point stays, the step length changes),
so each element of a batch runs its own line search at the loop's pace:

* accept the trial ``u + alpha d`` when it satisfies the weak Wolfe conditions (sufficient
  increase ``f_t >= f + 1e-4 alpha g.d`` and curvature ``g_t.d <= 0.9 g.d``, which keeps
  ``y^T s > 0``), or, where ``f`` is rounding noise, the approximate Wolfe conditions of
  Hager & Zhang (2005) as in Newton;
* a trial with too little increase (or a non-finite value) shrinks ``alpha`` by safeguarded
  quadratic interpolation into ``[lo + 0.1 (alpha - lo), lo + 0.5 (alpha - lo)]``;
* a trial with enough increase but a slope still steep extrapolates (``alpha x 4``, or
  bisects towards a known failed length); after ``_MAX_EXTRAPOLATIONS`` such trials it is
  accepted, and the curvature memory restarts if the step saw no positive curvature
  (``g_t.d >= g.d``: no valid secant pair), keeps the pair otherwise;
* a step length shrunk to rounding of ``u`` reports no progress (the loop then says
  ``CONVERGED`` where the gradient is at its noise floor, ``LINESEARCH_FAILED`` otherwise).

Each loop step costs one value and gradient. A direction that is not an ascent direction
(rounding in a near-singular ``B``) restarts the memory with the gradient.

References:
  Nocedal & Wright, Numerical Optimization (2006), ch. 3, 6 and 7.
  Hager & Zhang, SIAM J. Optim. 16 (2005): the approximate Wolfe conditions.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mlejax._loop import STEP_NO_PROGRESS, STEP_PROGRESS, STEP_RETRY
from mlejax._numerics import nan_to_neginf


class ScaleByBFGSState(NamedTuple):
    count: jax.Array
    inv_hess: jax.Array
    prev_params: jax.Array
    prev_updates: jax.Array


def scale_by_bfgs() -> optax.GradientTransformationExtraArgs:
    """The dense BFGS step ``B g`` as an optax transformation over a flat vector (the
    preconditioned gradient, as ``optax.scale_by_lbfgs`` returns it: the descent step on the
    minimised objective is its negative)."""

    def init_fn(params):
        p = params.shape[0]
        return ScaleByBFGSState(jnp.zeros((), jnp.int32), jnp.eye(p, dtype=params.dtype),
                                jnp.zeros_like(params), jnp.zeros_like(params))

    def update_fn(updates, state, params, **extra_args):
        del extra_args
        g = updates
        s = params - state.prev_params
        y = g - state.prev_updates
        sy = jnp.dot(s, y)
        eps = jnp.finfo(params.dtype).eps
        good = (state.count > 0) & (sy > eps * jnp.linalg.norm(s) * jnp.linalg.norm(y))
        b = jnp.where(state.count == 1, jnp.eye(s.shape[0], dtype=s.dtype)
                      * sy / jnp.maximum(jnp.dot(y, y), jnp.finfo(s.dtype).tiny), state.inv_hess)
        rho = 1.0 / jnp.where(good, sy, 1.0)
        eye = jnp.eye(s.shape[0], dtype=s.dtype)
        left = eye - rho * jnp.outer(s, y)
        b_new = left @ b @ left.T + rho * jnp.outer(s, s)
        b = jnp.where(good, 0.5 * (b_new + b_new.T), state.inv_hess)
        return b @ g, ScaleByBFGSState(state.count + 1, b, params, g)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


_C1 = 1e-4                # sufficient increase
_C2 = 0.9                 # curvature (weak Wolfe)
_MAX_EXTRAPOLATIONS = 8   # trials with enough increase but a steep slope before accepting


class QuasiNewtonState(NamedTuple):
    u: jax.Array
    f: jax.Array
    g: jax.Array
    d: jax.Array          # search direction (ascent) at u
    alpha: jax.Array      # step length of the next trial
    lo: jax.Array         # longest length found with enough increase (0: none yet)
    hi: jax.Array         # shortest length found with too little increase (inf: none yet)
    extrapolations: jax.Array
    opt_state: Any        # the direction transformation's state (curvature memory)


class QuasiNewton:
    """Quasi-Newton ascent on ``fn(u) -> scalar`` with a one-trial-per-step line search.

    Args:
      fn: the objective (the log-likelihood on the unconstrained vector).
      direction: an optax transformation mapping the gradient of the minimised objective
        to the quasi-Newton step ``B g`` (:func:`scale_by_bfgs` or ``optax.scale_by_lbfgs``).
      scale: the objective is divided by this (the total observation weight) for the
        direction's memory, so its first step means the same whatever the sample size.
      value_and_grad: ``u -> (fn(u), grad fn(u))`` when not ``jax.value_and_grad(fn)``
        (sums over chunks of observations, :mod:`mlejax._obs_chunks`).
    """

    stochastic = False
    gradient_free = False

    def __init__(self, fn: Callable[[jax.Array], jax.Array], direction, *, scale=1.0,
                 value_and_grad: Callable | None = None):
        self.fn = fn
        self.direction = direction
        self.scale = scale
        self._value_and_grad = value_and_grad or jax.value_and_grad(fn)

    def _fresh(self, u, g):
        """The first direction from ``u``: the transformation's, from an empty memory, with
        a step length that moves ``u`` by at most 1 (the gradient's size is arbitrary)."""
        opt_state = self.direction.init(u)
        p, opt_state = self.direction.update(-g / self.scale, opt_state, u)
        d = -p
        size = jnp.sqrt(jnp.sum(d * d))
        alpha = jnp.where(size > 1.0, 1.0 / size, 1.0)
        return d, alpha.astype(u.dtype), opt_state

    def init(self, u0):
        f, g = self._value_and_grad(u0)
        d, alpha, opt_state = self._fresh(u0, g)
        zero = jnp.zeros((), u0.dtype)
        return QuasiNewtonState(u0, f, g, d, alpha, zero, jnp.asarray(jnp.inf, u0.dtype),
                                jnp.int32(0), opt_state)

    def step(self, state: QuasiNewtonState):
        u, f, g, d, alpha = state.u, state.f, state.g, state.d, state.alpha
        dtype = u.dtype
        eps = jnp.finfo(dtype).eps
        slope0 = jnp.dot(g, d)
        ut = u + alpha * d
        ft, gt = self._value_and_grad(ut)
        ft = nan_to_neginf(ft)
        finite = jnp.isfinite(ft) & jnp.all(jnp.isfinite(gt))
        slope_t = jnp.dot(gt, d)
        gain = ft - f
        enough = finite & (gain >= _C1 * alpha * slope0)
        flat = slope_t <= _C2 * slope0
        approx_wolfe = (finite & flat & (slope_t >= -0.8 * slope0)
                        & (gain >= -(eps ** (2.0 / 3.0)) * jnp.maximum(jnp.abs(f), 1.0)))
        forced = enough & ~flat & (state.extrapolations >= _MAX_EXTRAPOLATIONS)
        accepted = (enough & flat) | approx_wolfe | forced

        # Accepted: the next direction from the memory (restarted where the pair is no
        # secant pair, or the direction would not ascend).
        p, opt_next = self.direction.update(-gt / self.scale, state.opt_state, ut)
        d_next = -p
        d_fresh, alpha_fresh, opt_fresh = self._fresh(ut, gt)
        # A forced step with no positive curvature along d is no secant pair.
        no_curvature = forced & ~(slope_t < slope0)
        restart = no_curvature | ~(jnp.dot(gt, d_next) > 0) | ~jnp.all(jnp.isfinite(d_next))
        pick = lambda a, b: jax.tree_util.tree_map(  # noqa: E731
            lambda x, y: jnp.where(restart, x, y), a, b)
        d_next, alpha_next, opt_next = pick((d_fresh, alpha_fresh, opt_fresh),
                                            (d_next, jnp.ones((), dtype), opt_next))
        zero = jnp.zeros((), dtype)
        moved = QuasiNewtonState(ut, ft, gt, d_next, alpha_next, zero,
                                 jnp.asarray(jnp.inf, dtype), jnp.int32(0), opt_next)

        # Not accepted: too little increase shrinks towards lo by safeguarded quadratic
        # interpolation; enough increase with a steep slope extrapolates (or bisects
        # towards a failed length).
        lo = state.lo
        curv = (gain - alpha * slope0) / (alpha * alpha)        # < 0 when increase is short
        cand = jnp.where(finite & (curv < 0), -slope0 / (2.0 * jnp.where(curv < 0, curv, -1.0)),
                         lo + 0.1 * (alpha - lo))
        shrunk = jnp.clip(cand, lo + 0.1 * (alpha - lo), lo + 0.5 * (alpha - lo))
        hi_next = jnp.where(enough, state.hi, alpha)
        grown = jnp.where(jnp.isfinite(state.hi), 0.5 * (alpha + state.hi), 4.0 * alpha)
        alpha_retry = jnp.where(enough, grown, shrunk)
        lo_next = jnp.where(enough, alpha, lo)
        retry = state._replace(alpha=alpha_retry.astype(dtype), lo=lo_next.astype(dtype),
                               hi=hi_next.astype(dtype),
                               extrapolations=state.extrapolations + enough.astype(jnp.int32))
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(accepted, a, b), moved, retry)

        # The step length has shrunk to rounding of u (or the direction does not ascend):
        # no representable step increases f along d.
        size = alpha_retry * jnp.sqrt(jnp.sum(d * d))
        collapsed = ~(slope0 > 0) | (size <= eps * jnp.maximum(jnp.linalg.norm(u), 1.0))
        # (No optimum test of Newton's kind here: g.Bg / 2 below rounding of f also happens
        # far from the optimum where B underestimates the inverse curvature -- NIST Thurber
        # from its second start -- so the loop decides on the gradient alone.)
        code = jnp.where(accepted, STEP_PROGRESS,
                         jnp.where(collapsed, STEP_NO_PROGRESS, STEP_RETRY))
        return new, code


def bfgs(fn, scale, value_and_grad=None) -> QuasiNewton:
    """Dense BFGS with the one-trial-per-step weak-Wolfe line search, ascending ``fn``."""
    return QuasiNewton(fn, scale_by_bfgs(), scale=scale, value_and_grad=value_and_grad)


def lbfgs(fn, scale, memory_size: int = 10, value_and_grad=None) -> QuasiNewton:
    """L-BFGS (``optax.scale_by_lbfgs``) with the same line search, ascending ``fn``."""
    return QuasiNewton(fn, optax.scale_by_lbfgs(memory_size=memory_size), scale=scale,
                       value_and_grad=value_and_grad)
