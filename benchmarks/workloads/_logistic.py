"""Logistic regression pieces shared by batch_logistic, big_logistic and stragglers.

The data and mlejax's log-likelihood come from ``bench_batch_logistic.py`` (the original
script); here: the log-likelihood in NumPy (to score every method's estimate the same way),
the hand-written jit+vmap Newton (the "plain JAX" reference of the issue), and the floor
kernel (one ``X'WX`` plus ``X b`` per Newton iteration).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from ..bench_batch_logistic import logistic_loglik, make_data  # noqa: F401  (re-exported)


def loglik_np(beta, X, y) -> np.ndarray:
    """Total log-likelihood of each fit, float64 NumPy; ``beta`` (..., d), ``X`` (..., n, d)."""
    beta = np.asarray(beta, np.float64)
    eta = np.einsum("...nd,...d->...n", np.asarray(X, np.float64), beta)
    return np.sum(np.asarray(y, np.float64) * eta - np.logaddexp(0.0, eta), axis=-1)


def same_optimum(ll, ll_best, rtol: float = 1e-6) -> np.ndarray:
    """True where a log-likelihood is within ``rtol`` (relative) of the best found."""
    ll, ll_best = np.asarray(ll), np.asarray(ll_best)
    return np.isfinite(ll) & (ll >= ll_best - rtol * np.maximum(np.abs(ll_best), 1.0))


def newton_one(X, y, *, max_steps: int = 50, xtol: float = 1e-10):
    """Plain Newton-Raphson for one logistic regression: analytic gradient and ``X'WX``, a
    Cholesky solve, no line search; stops when the step is below ``xtol`` (relative)."""

    def body(c):
        b, it, _ = c
        eta = X @ b
        p = jax.nn.sigmoid(eta)
        g = X.T @ (y - p)
        h = (X * (p * (1.0 - p))[:, None]).T @ X
        step = jax.scipy.linalg.solve(h, g, assume_a="pos")
        small = jnp.max(jnp.abs(step) / (1.0 + jnp.abs(b))) <= xtol
        return b + step, it + 1, small

    b0 = jnp.zeros(X.shape[-1], X.dtype)
    b, it, _ = jax.lax.while_loop(lambda c: (c[1] < max_steps) & ~c[2], body,
                                  (b0, jnp.int32(0), jnp.array(False)))
    return b, it


newton_batch = jax.jit(jax.vmap(newton_one))
newton_single = jax.jit(newton_one)


def _xtwx_matmul(X, w, b):
    return jnp.matmul(jnp.swapaxes(X * w[..., None], -1, -2), X), jnp.einsum("...nd,...d->...n",
                                                                              X, b)


def _xtwx_written_out(X, w, b):
    # (wX)' written out (an optimisation barrier keeps XLA from folding the transpose into
    # the product), then a row-major (d, n) (n, d) product: on XLA's CPU backend faster than
    # its batched X'(wX) for small d (mlejax's Hessian under vmap does the same).
    wxt = jax.lax.optimization_barrier(jnp.swapaxes(X * w[..., None], -1, -2))
    return jnp.matmul(wxt, X), jnp.einsum("...nd,...d->...n", X, b)


def _xtwx_outer(X, w, b):
    # The same sums as elementwise products and one reduction: on XLA's CPU backend this
    # beats its batched dot for tiny d.
    h = jnp.sum((w[..., None, None] * X[..., :, None]) * X[..., None, :], axis=-3)
    return h, jnp.einsum("...nd,...d->...n", X, b)


def _xtwx_numpy(X, w, b):
    return np.matmul(np.swapaxes(X * w[..., None], -1, -2), X), np.einsum("...nd,...d->...n",
                                                                          X, b)


def floor_iteration(X, y, beta, repeats: int = 5) -> tuple[float, str]:
    """The fastest measured way on this machine to compute one Newton iteration's ``X'WX``
    and ``X b`` for these fits (JAX as a batched matmul, JAX with ``(WX)'`` written out
    first, JAX as elementwise products, NumPy ``matmul``): (median seconds, which one)."""
    Xn = np.asarray(X, np.float64)
    eta = np.einsum("...nd,...d->...n", Xn, np.asarray(beta))
    p = 1.0 / (1.0 + np.exp(-eta))
    w = p * (1.0 - p)
    bj = np.asarray(beta)
    best = (np.inf, "")
    jx, jw, jb = jnp.asarray(Xn), jnp.asarray(w), jnp.asarray(bj)
    kernels = [("JAX X'WX matmul", jax.jit(_xtwx_matmul), (jx, jw, jb)),
               ("JAX X'WX, (WX)' written out", jax.jit(_xtwx_written_out), (jx, jw, jb))]
    if Xn.shape[-1] <= 8:   # elementwise form materialises n*d*d: only for tiny d
        kernels.append(("JAX X'WX elementwise", jax.jit(_xtwx_outer), (jx, jw, jb)))
    kernels.append(("NumPy X'WX matmul", _xtwx_numpy, (Xn, w, bj)))
    for name, fn, args in kernels:
        jax.block_until_ready(fn(*args))
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            runs.append(time.perf_counter() - t0)
        med = float(np.median(runs))
        if med < best[0]:
            best = (med, name)
    return best
