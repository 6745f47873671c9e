"""Is the maximum attained? A cheap probe of where a finished fit stopped.

A fit can meet its stopping test at a point that is not a maximum at all: when the
log-likelihood keeps rising towards a supremum at infinity (perfect or quasi-perfect
separation in a binary regression, a count model's group with only zeros, a variance
shrinking to zero), the gradient becomes as small as the tolerance asks while the estimate
is still walking away, and the Hessian is merely nearly singular, so the fit looks converged
with enormous standard errors.

The signature of a supremum at infinity is one-sided: along the direction of escape the
log-likelihood does not decrease, however far one goes, while the opposite way it falls.
At a maximum (even a flat, weakly identified one) it decreases both ways; on a ridge of
non-identified parameters it is constant both ways. So at the estimate ``u`` (the solvers'
unconstrained coordinates) the probe takes two directions,

* the last Newton direction ``A^+ g`` (``A = -H`` the observed information, ``g`` the
  gradient): where the solver would still go, and
* the least-curvature eigenvector of ``A`` (equilibrated to unit diagonal, as
  ``_numerics.safe_inverse_pd`` does, so that the units of the parameters do not matter),

and each way ``s = +-1`` evaluates ``f(u + s t_k v)`` at ``t_1 = 1 + |u|_inf`` and
``t_2 = 2 t_1`` (far in parameter units, many standard errors for a well-posed fit). The
maximum is *not attained* when, for some direction and way, ``f`` does not decrease within
rounding (``f(t_1) >= f(u) - tol`` and ``f(t_2) >= f(t_1) - tol``, ``tol = 64 eps
(|f(u)| + 1)``) while the other way it falls by more than one log-likelihood unit. A
non-finite value never flags. The nine evaluations are one ``vmap``-ed call, inside the
compiled program, per fit of a batch: no host round trip.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mlejax._numerics import sym

__all__ = ["not_attained"]


def not_attained(fn: Callable[[jax.Array], jax.Array], u: jax.Array, hess: jax.Array,
                 g: jax.Array, batched_fn: bool = True, sequential: bool = False) -> jax.Array:
    """True where ``fn`` (maximised) still rises towards infinity from ``u``.

    Args:
      fn: the objective the solver maximised, of the flat unconstrained vector.
      u: the estimate ``(p,)``.
      hess: the Hessian of ``fn`` at ``u``.
      g: the gradient of ``fn`` at ``u``.
      batched_fn: evaluate the probe points with one ``vmap`` of ``fn`` (False: one call each,
        for objectives that must not be vmapped).
      sequential: evaluate them one after another in a ``lax.map`` (one traced copy of
        ``fn``), for objectives whose cost per point varies, each of which then stops on its
        own (a dense random-effects marginal: its inner Newton far from its warm start).

    Returns:
      A boolean scalar.
    """
    p = u.shape[-1]
    if p == 0:
        return jnp.array(False)
    a = sym(-hess)
    diag = jnp.diagonal(a)
    d = jnp.where(diag > 0, jnp.sqrt(jnp.abs(diag)), 1.0)
    w, v = jnp.linalg.eigh(a / d[:, None] / d[None, :])
    flat = v[:, 0] / d
    inv_w = jnp.where(w > 0, 1.0 / jnp.where(w > 0, w, 1.0), 0.0)
    newton = (v @ (inv_w * (v.T @ (g / d)))) / d
    dirs = jnp.stack([newton, flat])
    dirs = dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True)   # 0 -> NaN: never flags
    t1 = 1.0 + jnp.max(jnp.abs(u))
    steps = jnp.stack([t1, 2.0 * t1, -t1, -2.0 * t1]).astype(u.dtype)
    pts = u + steps[None, :, None] * dirs[:, None, :]            # (direction, step, p)
    pts = jnp.concatenate([u[None], pts.reshape(-1, p)])
    if sequential:
        vals = jax.lax.map(fn, pts)
    elif batched_fn:
        vals = jax.vmap(fn)(pts)
    else:
        vals = jnp.stack([fn(x) for x in pts])
    f0, far = vals[0], vals[1:].reshape(2, 4)
    tol = 64.0 * jnp.finfo(u.dtype).eps * (jnp.abs(f0) + 1.0)
    plus, minus = far[:, :2], far[:, 2:]

    def rises(side):     # not decreasing, within rounding, out to the farther point
        return (side[:, 0] >= f0 - tol) & (side[:, 1] >= side[:, 0] - tol)

    def falls(side):
        return jnp.any(side < f0 - 1.0, axis=1)

    flagged = (rises(plus) & falls(minus)) | (rises(minus) & falls(plus))
    return jnp.any(flagged) & jnp.isfinite(f0)
