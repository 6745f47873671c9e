"""Proximal Newton for an objective with an L1 term, so that zeros come out exact.

Maximises ``F(u) = f(u) - sum_j lam_j |u_j|`` with ``f`` smooth (the log-likelihood plus
the smooth part of a penalty, :mod:`mlejax.penalties`). With ``g`` and ``H`` the gradient
and Hessian of ``f`` at ``u``, and ``B = |A| + mu D`` built from ``A = -H`` (Jacobi-scaled,
absolute eigenvalues where indefinite, ``D = diag(|A_jj|)``, Levenberg-Marquardt damping
``mu``; the non-smooth term rules out :mod:`mlejax.solvers.newton`'s trust-region step, whose
model has no L1 part), each step maximises the model

    m(d) = g.d - d.B.d / 2 - sum_j lam_j |u_j + d_j|

by cyclic coordinate descent: coordinate ``j`` moves to
``z_j = soft(u_j + c_j / B_jj, lam_j / B_jj)`` with ``c_j`` its partial gradient of the
quadratic, and ``soft(x, t) = sign(x) max(|x| - t, 0)`` returns exactly 0 when ``|x| <= t``.
The step ``u + d`` is taken only if it does not lower ``F`` (``mu = 0`` first, then the
damping that last worked, times 10 per try), so every coefficient the model sets to zero is
exactly zero in the iterate, and near the optimum, on the right set of zeros, the steps are
Newton steps on the non-zero coefficients (quadratic convergence).

The optimality residual the driver loop tests (``state.g``) is the minimum-norm
supergradient of ``F``: ``g_j - lam_j sign(u_j)`` where ``u_j != 0`` and
``sign(g_j) max(|g_j| - lam_j, 0)`` where ``u_j = 0``; it is zero exactly at the KKT point
(``|g_j| <= lam_j`` at every zero).

References:
  Lee, Sun & Saunders (2014), Proximal Newton-type methods for minimizing composite
  functions. Friedman, Hastie & Tibshirani (2010), coordinate descent for GLMs (glmnet).
  Yuan, Ho & Lin (2012), an improved GLMNET for L1-regularized logistic regression.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mlejax._loop import STEP_AT_OPTIMUM, STEP_NO_PROGRESS, STEP_PROGRESS
from mlejax._numerics import nan_to_neginf, sym

_MAX_TRIES = 40
_LAM_MIN = 1e-6
_LAM_ZERO = 1e-10
_MAX_SWEEPS = 200   # coordinate-descent sweeps per trial step
_CD_RTOL = 1e-8     # a sweep moving no coordinate by more than this (relative) ends the solve


class ProxNewtonState(NamedTuple):
    u: jax.Array
    f: jax.Array      # F(u): the composite objective, smooth part minus the L1 term
    g: jax.Array      # the optimality residual (minimum-norm supergradient of F)
    hess: jax.Array   # Hessian of the smooth part at u
    grad: jax.Array   # gradient of the smooth part at u
    lam: jax.Array    # the damping that last worked


def soft_threshold(x: jax.Array, t: jax.Array) -> jax.Array:
    """``sign(x) max(|x| - t, 0)``: exactly 0 where ``|x| <= t``."""
    return jnp.where(jnp.abs(x) <= t, 0.0, x - jnp.sign(x) * t)


def residual(u: jax.Array, grad: jax.Array, l1: jax.Array) -> jax.Array:
    """The minimum-norm supergradient of ``f(u) - sum lam |u|`` (zero at the optimum)."""
    moving = grad - l1 * jnp.sign(u)
    at_zero = jnp.sign(grad) * jnp.maximum(jnp.abs(grad) - l1, 0.0)
    return jnp.where(l1 > 0, jnp.where(u == 0, at_zero, moving), grad)


def _coordinate_descent(u, g, b, l1, noise):
    """Maximises ``g.d - d.b.d / 2 - sum l1 |u + d|`` over ``d``; returns ``z = u + d``."""
    p = u.shape[0]
    diag = jnp.diagonal(b)

    def sweep(carry):
        d, bd, _, n = carry

        def coord(j, c):
            d, bd, change = c
            cj = g[j] - bd[j] + diag[j] * d[j]
            zj = soft_threshold(u[j] + cj / diag[j], l1[j] / diag[j])
            delta = (zj - u[j]) - d[j]
            return (d.at[j].add(delta), bd + b[:, j] * delta,
                    jnp.maximum(change, jnp.abs(delta) * jnp.sqrt(diag[j])))

        d, bd, change = jax.lax.fori_loop(0, p, coord, (d, bd, jnp.zeros((), u.dtype)))
        return d, bd, change, n + 1

    def cond(carry):
        d, bd, change, n = carry
        size = jnp.sqrt(jnp.maximum(jnp.dot(d, bd), 0.0))
        return (n < _MAX_SWEEPS) & (change > _CD_RTOL * size) & (change * change > noise)

    zero = jnp.zeros_like(u)
    init = (zero, zero, jnp.full((), jnp.inf, u.dtype), jnp.int32(0))
    d, bd, _, _ = jax.lax.while_loop(cond, sweep, init)
    return u + d, d, bd


class ProximalNewton:
    """Damped proximal Newton ascent on ``fn(u) - sum_j l1[j] |u_j|``."""

    stochastic = False
    gradient_free = False

    def __init__(self, fn: Callable[[jax.Array], jax.Array], l1):
        self.fn = fn
        self.l1 = l1

        def grad_with_value(u):
            f, g = jax.value_and_grad(fn)(u)
            return g, (f, g)

        self._hess_value_grad = jax.jacfwd(grad_with_value, has_aux=True)

    def _l1(self, u):
        return jnp.asarray(self.l1, u.dtype)

    def _state(self, u, lam):
        h, (fs, gs) = self._hess_value_grad(u)
        l1 = self._l1(u)
        f = fs - jnp.sum(l1 * jnp.abs(u))
        return ProxNewtonState(u, f, residual(u, gs, l1), sym(h), gs, lam)

    def init(self, u0):
        return self._state(u0, jnp.zeros((), u0.dtype))

    def step(self, state: ProxNewtonState):
        u, f, g = state.u, state.f, state.grad
        l1 = self._l1(u)
        a = -state.hess
        diag = jnp.abs(jnp.diagonal(a))
        ok_diag = jnp.isfinite(diag) & (diag > 0)
        typical = jnp.where(jnp.any(ok_diag), jnp.max(jnp.where(ok_diag, diag, 0.0)), 1.0)
        s = 1.0 / jnp.sqrt(jnp.where(ok_diag, diag, typical))
        w, v = jnp.linalg.eigh(a * s[:, None] * s[None, :])
        definite = w[0] > 0
        floor = jnp.finfo(u.dtype).eps * jnp.maximum(jnp.max(jnp.abs(w)),
                                                      jnp.finfo(u.dtype).tiny)
        absw = jnp.maximum(jnp.abs(w), floor)
        # |A| in the original units, and the damping's metric D = diag(1 / s^2).
        a_abs = sym((v * absw) @ v.T) / s[:, None] / s[None, :]
        metric = 1.0 / (s * s)
        noise = 16.0 * jnp.finfo(u.dtype).eps * jnp.maximum(jnp.abs(f), 1.0)
        l1_u = jnp.sum(l1 * jnp.abs(u))

        def trial(mu):
            b = a_abs + mu * jnp.diag(metric)
            z, d, bd = _coordinate_descent(u, g, b, l1, noise)
            ok = jnp.all(jnp.isfinite(z))
            z = jnp.where(ok, z, u)
            f_new = jnp.where(ok, nan_to_neginf(self.fn(z) - jnp.sum(l1 * jnp.abs(z))),
                              -jnp.inf)
            gain = jnp.dot(g, d) - 0.5 * jnp.dot(d, bd) - (jnp.sum(l1 * jnp.abs(z)) - l1_u)
            return z, f_new, jnp.where(ok, gain, jnp.inf), ok

        def cond(c):
            tries, mu, z, f_new, gain, accepted, hopeless = c
            return (~accepted) & (~hopeless) & (tries < _MAX_TRIES)

        def body(c):
            tries, mu, _, _, _, _, _ = c
            z, f_new, gain, ok = trial(mu)
            at_floor = gain <= noise
            accepted = ok & ((f_new >= f) | (at_floor & (f_new >= f - noise)))
            hopeless = ok & (~accepted) & at_floor
            mu_next = jnp.where(tries == 0, jnp.maximum(state.lam, _LAM_MIN),
                                jnp.maximum(10.0 * mu, _LAM_MIN))
            mu_next = jnp.where(accepted, mu, mu_next)
            return tries + 1, mu_next, z, f_new, gain, accepted, hopeless

        init = (jnp.int32(0), jnp.zeros((), u.dtype), u, f, jnp.full((), jnp.inf, u.dtype),
                jnp.array(False), jnp.array(False))
        _, mu, z, _, gain, accepted, _ = jax.lax.while_loop(cond, body, init)

        at_optimum = accepted & definite & (mu == 0) & (gain <= noise)
        mu_new = jnp.where(mu / 10.0 < _LAM_ZERO, 0.0, mu / 10.0).astype(u.dtype)
        new = self._state(jnp.where(accepted, z, u), mu_new)
        usable = (jnp.isfinite(new.f) & jnp.all(jnp.isfinite(new.grad))
                  & jnp.all(jnp.isfinite(new.hess)))
        retry = state._replace(lam=jnp.maximum(10.0 * mu, _LAM_MIN).astype(u.dtype))
        new = jax.tree_util.tree_map(lambda a_, b_: jnp.where(usable, a_, b_), new, retry)
        at_optimum = at_optimum & usable
        code = jnp.where(at_optimum, STEP_AT_OPTIMUM,
                         jnp.where(accepted, STEP_PROGRESS, STEP_NO_PROGRESS))
        return new, code
