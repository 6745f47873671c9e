"""Damped Newton-Raphson with the exact autodiff Hessian (Levenberg-Marquardt damping).

With ``A = -H`` the negative Hessian of the log-likelihood ``f`` and ``g`` its gradient, each
step solves

    (A + lam * D) d = g,        D = diag(|A_ii|) (Marquardt's scaling, so lam is unit-free)

and accepts ``u + d`` only if ``f(u + d) >= f(u)``: every accepted step increases the
log-likelihood (up to rounding, once the predicted gain ``g.d`` is itself below rounding). ``lam`` starts at 0 (a pure Newton step, quadratic convergence near the
optimum); a rejected trial, or an ``A + lam D`` that is not positive definite (Cholesky fails,
as where the Hessian is not negative definite far from the optimum), moves to the damping that
worked at the previous step, then multiplies it by 10 per try; the damping that worked is
divided by 10 and carried to the next step, which again tries ``lam = 0`` first.
Large ``lam`` turns the step into a short, scaled gradient step, so the method still moves
where Newton's direction is not an ascent direction.

References:
  Levenberg (1944), Marquardt (1963); Nocedal & Wright, Numerical Optimization, ch. 3 and 10.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

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
        diag = jnp.abs(jnp.diagonal(a))
        floor = jnp.maximum(jnp.mean(diag), jnp.finfo(u.dtype).tiny)
        scale = jnp.where(diag > 1e-12 * floor, diag, floor)
        # Below this predicted gain the change in f is lost in rounding: stop trying.
        noise = 16.0 * jnp.finfo(u.dtype).eps * jnp.maximum(jnp.abs(f), 1.0)

        def trial(lam):
            chol = jnp.linalg.cholesky(a + lam * jnp.diag(scale))
            d = jax.scipy.linalg.cho_solve((chol, True), g)
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
            accepted = ok & ((f_new >= f) | (at_floor & (f_new >= f - noise)))
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

        u_new = u + d
        f_new, g_new, h_new = self._derivatives(u_new)
        lam_new = jnp.where(lam / 10.0 < _LAM_ZERO, 0.0, lam / 10.0).astype(u.dtype)
        new = NewtonState(u_new, f_new, g_new, h_new, lam_new)
        return new, accepted
