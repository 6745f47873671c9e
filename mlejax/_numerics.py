"""Numerically safe helpers shared by the solvers and the result assembly."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def finfo(dtype) -> jnp.finfo:
    return jnp.finfo(dtype)


def nan_to_neginf(x: jax.Array) -> jax.Array:
    """Maps NaN to -inf so that a NaN trial point is rejected by ``>`` tests, never accepted."""
    return jnp.where(jnp.isnan(x), -jnp.inf, x)


def is_concrete(tree) -> bool:
    """Whether every leaf of ``tree`` holds a value (no tracer: not inside jit or vmap), so
    host-side checks and warnings can read it."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def best_index(f: jax.Array, converged: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The best of several starts and how many reached it: the index of the largest finite
    ``f`` among the ``converged`` starts (among all of them when none converged), and the
    number of starts within ``10 sqrt(eps) max(|f_best|, 1)`` of it (``n_best``).

    The tolerance is that of agreeing to about half the digits of the dtype: two starts
    that reached one optimum differ by their stopping error, which for the solvers' and
    EM's default tolerances is well inside it (fits' restarts and mixtures' ``n_init``).
    """
    f = jnp.where(jnp.isfinite(f), f, -jnp.inf)
    best = jnp.where(jnp.any(converged), jnp.argmax(jnp.where(converged, f, -jnp.inf)),
                     jnp.argmax(f))
    f_best = f[best]
    tol = 10.0 * jnp.sqrt(jnp.finfo(f.dtype).eps) * jnp.maximum(jnp.abs(f_best), 1.0)
    return best, jnp.sum(f >= f_best - tol).astype(jnp.int32)


def normal_quantile(level: float) -> float:
    """The two-sided standard normal quantile ``z`` with ``P(|Z| <= z) = level``, by
    bisection on ``erfc`` (no scipy at runtime)."""
    target = (1.0 - level) / 2.0
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(mid / math.sqrt(2.0)) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def scaled_grad_norm(u: jax.Array, f: jax.Array, g: jax.Array) -> jax.Array:
    """max_i |g_i| max(|u_i|, 1) / max(|f|, 1): relative change of f per relative change of u.

    Invariant to the size of the log-likelihood (the number of observations) and to the scale
    of parameters larger than one, so one tolerance serves every problem.
    """
    num = jnp.max(jnp.abs(g) * jnp.maximum(jnp.abs(u), 1.0), initial=0.0)
    return num / jnp.maximum(jnp.abs(f), 1.0)


def sym(a: jax.Array) -> jax.Array:
    return 0.5 * (a + a.T)


def safe_inverse_pd(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse of a symmetric matrix that should be positive definite, and whether it is.

    Uses the eigendecomposition so a singular or indefinite matrix is detected (smallest
    eigenvalue not clearly positive relative to the largest) and answered with NaN, never
    a crash or a silently huge number. The matrix is first scaled to unit diagonal
    (``D^-1/2 A D^-1/2``, Jacobi equilibration), so the test and the inverse do not depend on
    the units of the parameters: a well-posed problem whose parameters differ by orders of
    magnitude (NIST Misra1a, unscaled covariates) is neither declared singular nor inverted
    with the relative accuracy of its worst-scaled direction.
    """
    p = a.shape[-1]
    if p == 0:
        return a, jnp.array(True)
    a = sym(a)
    diag = jnp.diagonal(a)
    d = jnp.where(diag > 0, jnp.sqrt(jnp.abs(diag)), 1.0)
    w, v = jnp.linalg.eigh(a / d[:, None] / d[None, :])
    eps = jnp.finfo(a.dtype).eps
    ok = jnp.all(jnp.isfinite(w)) & (w[0] > 100.0 * p * eps * jnp.maximum(w[-1], 0.0)) & (w[0] > 0)
    inv = ((v / w) @ v.T) / d[:, None] / d[None, :]
    return jnp.where(ok, inv, jnp.nan), ok
