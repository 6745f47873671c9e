"""Damped Newton-Raphson with the exact autodiff Hessian (Levenberg-Marquardt damping).

With ``A = -H`` the negative Hessian of the log-likelihood ``f``, ``g`` its gradient and
``S = diag(|A_ii|)^(-1/2)`` (Jacobi scaling, so nothing depends on the units of the
parameters), write ``S A S = V W V^T``. Each step is

    d = S V (|W| + lam I)^(-1) V^T S g

and is accepted only if ``f(u + d) >= f(u)``: every accepted step increases the
log-likelihood (up to rounding, once the predicted gain ``g.d`` is itself below rounding).
With ``lam = 0`` and ``A`` positive definite this is the pure Newton step (quadratic
convergence near the optimum). Where ``A`` is indefinite (far from the optimum, near a
saddle) the absolute eigenvalues keep ``d`` an ascent direction whose length follows the
curvature. Every step tries ``lam = 0`` first; a rejected trial moves to the damping that
worked at the previous step, then multiplies it by 10 per try (large ``lam`` gives a short,
scaled gradient step); the damping that worked is divided by 10 and carried forward.

The step reports the optimum itself when a full Newton step on a negative-definite Hessian
predicts a gain below rounding: the point it reaches is the maximum to the precision of the
dtype even where the gradient is dominated by rounding.

References:
  Levenberg (1944), Marquardt (1963); Nocedal & Wright, Numerical Optimization, ch. 3 and 10.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mlejax._loop import STEP_AT_OPTIMUM, STEP_NO_PROGRESS, STEP_PROGRESS
from mlejax._numerics import nan_to_neginf, sym

_MAX_TRIES = 40
_LAM_MIN = 1e-6     # first non-zero damping
_LAM_ZERO = 1e-10   # below this an accepted step resets damping to pure Newton


class NewtonState(NamedTuple):
    u: jax.Array
    f: jax.Array
    g: jax.Array
    hess: jax.Array   # Hessian of f at u (negative definite near a maximum)
    lam: jax.Array    # the Marquardt damping that last worked, where the next search resumes


class Newton:
    """Damped Newton-Raphson ascent on an unconstrained objective ``fn(u) -> scalar``."""

    stochastic = False
    gradient_free = False

    def __init__(self, fn: Callable[[jax.Array], jax.Array]):
        self.fn = fn

        def grad_with_value(u):
            f, g = jax.value_and_grad(fn)(u)
            return g, (f, g)

        # Forward-over-reverse in one pass: the Hessian, with f and g as by-products.
        self._hess_value_grad = jax.jacfwd(grad_with_value, has_aux=True)

    def _derivatives(self, u):
        h, (f, g) = self._hess_value_grad(u)
        return f, g, sym(h)

    def init(self, u0):
        f, g, h = self._derivatives(u0)
        return NewtonState(u0, f, g, h, jnp.zeros((), u0.dtype))

    def step(self, state: NewtonState):
        u, f, g = state.u, state.f, state.g
        a = -state.hess
        # Jacobi scaling: the damped system is solved for z = d / s in units where A has a
        # unit diagonal, so the damping and the eigenvalue test do not depend on the units of
        # the parameters (a parameter of size 1e-4 next to one of size 1e3 is not frozen).
        diag = jnp.abs(jnp.diagonal(a))
        ok_diag = jnp.isfinite(diag) & (diag > 0)
        typical = jnp.where(jnp.any(ok_diag), jnp.max(jnp.where(ok_diag, diag, 0.0)), 1.0)
        s = 1.0 / jnp.sqrt(jnp.where(ok_diag, diag, typical))
        w, v = jnp.linalg.eigh(a * s[:, None] * s[None, :])
        gv = v.T @ (g * s)
        definite = w[0] > 0
        # |eigenvalues|: along a direction of positive curvature of f (a saddle or a valley
        # far from the optimum) the step still ascends, with length set by the curvature.
        floor = jnp.finfo(u.dtype).eps * jnp.maximum(jnp.max(jnp.abs(w)), jnp.finfo(u.dtype).tiny)
        absw = jnp.maximum(jnp.abs(w), floor)
        # Below this predicted gain the change in f is lost in rounding.
        noise = 16.0 * jnp.finfo(u.dtype).eps * jnp.maximum(jnp.abs(f), 1.0)

        # The pure Newton step's predicted gain is below rounding: we are at the maximum.
        floor0 = definite & (jnp.sum(gv * gv / absw) <= noise)

        def trial(lam):
            d = s * (v @ (gv / (absw + lam)))
            ok = jnp.all(jnp.isfinite(d))
            d = jnp.where(ok, d, 0.0)
            f_new = jnp.where(ok, nan_to_neginf(self.fn(u + d)), -jnp.inf)
            return d, f_new, ok

        def cond(c):
            tries, lam, d, f_new, accepted, hopeless = c
            return (~accepted) & (~hopeless) & (tries < _MAX_TRIES)

        def body(c):
            tries, lam, _, _, _, _ = c
            d, f_new, ok = trial(lam)
            # At the precision floor (predicted gain below rounding) a step that changes f by
            # no more than rounding is still taken: it sharpens the estimate.
            at_floor = jnp.dot(g, d) <= noise
            # At the floor of a full Newton step on a definite Hessian, a fall in f is
            # rounding too (cancellation can make it larger than eps |f|): take the step.
            slack = jnp.where(floor0 & (tries == 0), 1e4 * noise, noise)
            accepted = ok & ((f_new >= f) | (at_floor & (f_new >= f - slack)))
            hopeless = ok & (~accepted) & at_floor
            # After a failed pure-Newton first try, resume from the damping that last worked.
            lam_next = jnp.where(tries == 0, jnp.maximum(state.lam, _LAM_MIN),
                                 jnp.maximum(10.0 * lam, _LAM_MIN))
            lam_next = jnp.where(accepted, lam, lam_next)
            return tries + 1, lam_next, d, f_new, accepted, hopeless

        # Every step first tries the pure Newton step (lam = 0): near the optimum that gives
        # quadratic convergence, which a damping left over from far away would spoil.
        init = (jnp.int32(0), jnp.zeros((), u.dtype), jnp.zeros_like(u), f, jnp.array(False),
                jnp.array(False))
        _, lam, d, _, accepted, _ = jax.lax.while_loop(cond, body, init)

        # A full Newton step on a negative-definite Hessian whose predicted gain is below
        # rounding: the point reached is the maximum to the precision of the dtype, even
        # where the gradient itself is dominated by rounding (tiny residuals, cancellation).
        at_optimum = accepted & floor0 & (lam == 0)
        u_new = u + d
        f_new, g_new, h_new = self._derivatives(u_new)
        lam_new = jnp.where(lam / 10.0 < _LAM_ZERO, 0.0, lam / 10.0).astype(u.dtype)
        new = NewtonState(u_new, f_new, g_new, h_new, lam_new)
        # A point with a finite value but non-finite derivatives (an overflow in the
        # gradient) is not taken: stay, and search with more damping next step.
        usable = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new)) & jnp.all(jnp.isfinite(h_new))
        retry = state._replace(lam=jnp.maximum(10.0 * lam, _LAM_MIN).astype(u.dtype))
        new = jax.tree_util.tree_map(lambda a_, b_: jnp.where(usable, a_, b_), new, retry)
        at_optimum = at_optimum & usable
        code = jnp.where(at_optimum, STEP_AT_OPTIMUM,
                         jnp.where(accepted, STEP_PROGRESS, STEP_NO_PROGRESS))
        return new, code
