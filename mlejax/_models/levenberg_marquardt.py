"""Levenberg-Marquardt for least squares, on the core's driver loop (``mlejax._loop``).

Used by :class:`~mlejax.models.Nonlinear` to reach the least-squares solution (the Gaussian
MLE of ``b``) from far starts, where Newton on the full likelihood in ``(b, sigma)`` can wander
into regions of negative curvature or parameter "evaporation". The objective the loop sees
(maximised) is the profile log-likelihood of ``b`` up to a constant,

    f(b) = -(W / 2) log(RSS(b) / W),   RSS(b) = sum_i w_i (y_i - mu_i(b))^2,  W = sum_i w_i,

so the loop's scale-free stopping tests apply unchanged.

Each step is More's (1978) trust-region form of Levenberg-Marquardt: with ``D`` the running
maximum of the column norms of ``J`` (the scaling, so the method is invariant to the units of
the parameters), the step ``d`` minimises ``||r - J d||`` subject to ``||D d|| <= Delta``. It is
computed from one SVD of ``J D^-1`` (never forming ``J'J``, which squares the condition
number): the Gauss-Newton step if it fits inside the region, else ``d(lam)`` with ``lam``
solving ``||D d(lam)|| = Delta`` by bisection in ``log lam``. A trial is accepted when the
ratio ``rho`` of the actual to the predicted reduction of ``RSS`` exceeds ``1e-4``; ``Delta``
shrinks to a quarter of the step after a rejected trial or a poor one (``rho < 1/4``) and
grows to twice the step after a good one (``rho > 3/4``). The initial radius is
``||D b0||`` (MINPACK uses 100 times that; the smaller first region keeps the far NIST starts
of BoxBOD and MGH10 from jumping onto a plateau where a parameter no longer matters). A step
reports the optimum (``STEP_AT_OPTIMUM``) when the reduction of ``RSS`` the full Gauss-Newton
step predicts, ``||P_J r||^2``, is below rounding (``16 eps RSS``).

References:
  Levenberg (1944); Marquardt (1963); More (1978), The Levenberg-Marquardt algorithm:
  implementation and theory, Lecture Notes in Mathematics 630; Nocedal & Wright (2006),
  Numerical Optimization, ch. 10.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mlejax._loop import STEP_AT_OPTIMUM, STEP_NO_PROGRESS, STEP_PROGRESS


_MAX_TRIES = 40
_BISECT = 64
_FACTOR = 1.0


class LevenbergMarquardtState(NamedTuple):
    u: jax.Array      # the coefficients b
    f: jax.Array      # profile log-likelihood -(W/2) log(RSS/W)
    g: jax.Array      # its gradient
    delta: jax.Array  # trust-region radius in the scaled norm ||D d||
    dscale: jax.Array  # D: running maximum of the column norms of sqrt(w) J


class LevenbergMarquardt:
    """Trust-region Levenberg-Marquardt ascent of the profile log-likelihood of ``b``.

    Args:
      mean_fn: ``b -> (n,)`` the model mean at the data (a closure over x).
      y: ``(n,)`` responses.
      w: ``(n,)`` non-negative frequency weights (0 marks padding).
    """

    stochastic = False
    gradient_free = False

    def __init__(self, mean_fn: Callable[[jax.Array], jax.Array], y: jax.Array, w: jax.Array):
        self.mean_fn = mean_fn
        self.y = y
        self.w = w
        self.sw = jnp.sqrt(w)
        self.total = jnp.sum(w)

    def _residuals(self, b):
        # Weighted residuals sqrt(w) (y - mu); zero where w = 0 (padding never matters).
        return jnp.where(self.w > 0, self.sw * (self.y - self.mean_fn(b)), 0.0)

    def _profile(self, rss):
        return -0.5 * self.total * jnp.log(rss / self.total)

    def _derivatives(self, b):
        r = self._residuals(b)
        jac = jax.jacfwd(lambda bb: -self._residuals(bb))(b)  # d(sqrt(w) mu) / db
        rss = jnp.sum(r * r)
        g = (self.total / rss) * (jac.T @ r)
        return rss, g, jac, r

    def init(self, u0):
        rss, g, jac, _ = self._derivatives(u0)
        norms = jnp.sqrt(jnp.sum(jac * jac, axis=0))
        dscale = jnp.where(norms > 0, norms, 1.0)
        size = jnp.linalg.norm(dscale * u0)
        delta = jnp.where(size > 0, _FACTOR * size, _FACTOR)
        return LevenbergMarquardtState(u0, self._profile(rss), g, delta.astype(u0.dtype),
                                       dscale)

    def step(self, state: LevenbergMarquardtState):
        b = state.u
        rss, _, jac, r = self._derivatives(b)
        norms = jnp.sqrt(jnp.sum(jac * jac, axis=0))
        dscale = jnp.maximum(state.dscale, norms)
        js = jac / dscale
        u_svd, sv, vt = jnp.linalg.svd(js, full_matrices=False)
        proj = u_svd.T @ r
        tiny = jnp.finfo(b.dtype).tiny
        eps = jnp.finfo(b.dtype).eps
        # Gauss-Newton step (minimum norm where J is numerically rank deficient).
        keep = sv > eps * max(js.shape) * sv[0]
        inv_sv = jnp.where(keep, 1.0 / jnp.where(keep, sv, 1.0), 0.0)
        coef_gn = inv_sv * proj
        gn_norm = jnp.linalg.norm(coef_gn)
        noise = 16.0 * eps * rss

        def step_for(delta):
            """The scaled step of length <= delta (coefficients in the V basis)."""
            def norm_at(log_lam):
                lam = jnp.exp(log_lam)
                return jnp.linalg.norm(sv / (sv * sv + lam) * proj)

            hi0 = jnp.log(jnp.maximum(jnp.linalg.norm(sv * proj) / delta, tiny)) + 1.0
            lo0 = hi0 - 120.0

            def bisect(_, bounds):
                lo, hi = bounds
                mid = 0.5 * (lo + hi)
                longer = norm_at(mid) > delta
                return jnp.where(longer, mid, lo), jnp.where(longer, hi, mid)

            _, hi = jax.lax.fori_loop(0, _BISECT, bisect, (lo0, hi0))
            lam = jnp.exp(hi)
            coef = jnp.where(gn_norm <= delta, coef_gn, sv / (sv * sv + lam) * proj)
            return coef

        def cond(c):
            tries, _, _, _, accepted, hopeless = c
            return (~accepted) & (~hopeless) & (tries < _MAX_TRIES)

        def body(c):
            tries, delta, _, _, _, _ = c
            coef = step_for(delta)
            d_scaled = vt.T @ coef
            d = d_scaled / dscale
            step_len = jnp.linalg.norm(coef)
            jd = sv * coef                           # J d in the U basis
            pred = 2.0 * jnp.dot(proj, jd) - jnp.dot(jd, jd)
            r_new = self._residuals(b + d)
            rss_new = jnp.sum(r_new * r_new)
            rss_new = jnp.where(jnp.isfinite(rss_new), rss_new, jnp.inf)
            actual = rss - rss_new
            rho = actual / jnp.where(pred > 0, pred, tiny)
            at_floor = pred <= noise
            accepted = jnp.where(at_floor, rss_new <= rss + noise, rho > 1e-4)
            hopeless = (~accepted) & at_floor
            delta_next = jnp.where(
                ~accepted, 0.25 * jnp.minimum(delta, step_len),
                jnp.where(rho < 0.25, 0.25 * step_len,
                          jnp.where(rho > 0.75, jnp.maximum(delta, 2.0 * step_len), delta)))
            delta_next = jnp.maximum(delta_next, tiny)
            return tries + 1, delta_next, d, rss_new, accepted, hopeless

        init = (jnp.int32(0), state.delta, jnp.zeros_like(b), rss, jnp.array(False),
                jnp.array(False))
        _, delta, d, _, accepted, _ = jax.lax.while_loop(cond, body, init)
        # The least-squares optimality test: the reduction the full Gauss-Newton step
        # predicts, ||P_J r||^2, is below rounding (J'r = 0 to the precision of the data).
        at_optimum = jnp.sum(jnp.where(keep, proj, 0.0) ** 2) <= noise
        d = jnp.where(accepted, d, 0.0)
        b_new = b + d
        rss_new, g, _, _ = self._derivatives(b_new)
        new = LevenbergMarquardtState(b_new, self._profile(rss_new), g, delta, dscale)
        code = jnp.where(at_optimum, STEP_AT_OPTIMUM,
                         jnp.where(accepted, STEP_PROGRESS, STEP_NO_PROGRESS))
        return new, code.astype(jnp.int32)
