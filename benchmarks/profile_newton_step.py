"""Where a Newton step's time goes on batch_logistic: mlejax's own pieces, jitted and vmapped.

K logistic regressions (n = 200, d = 6 by default), float64: the solver's init and one step,
the derivatives (value, gradient, Hessian of the user's log-likelihood), the value and the
value-and-gradient alone, ``eigh`` and ``cholesky`` of the Hessians, the analytic
``f, g, X'WX`` and one step of a hand-written Newton (analytic Hessian, Cholesky solve), and
the derivatives again with ``logaddexp(0, eta)`` written as ``max(eta, 0) + log(1 +
exp(-|eta|))`` (float64 ``log1p`` is slow on XLA CPU). Minimum of 5 timed calls each.

    python benchmarks/profile_newton_step.py [--k 10000] [--n 200] [--d 6]

Figures (idle 2-core VM, 2026-11-27, K = 10,000): init 178 ms, step 199 ms, derivatives
154 ms, value 22 ms, value-and-gradient 49 ms, eigh 24 ms, cholesky 1.8 ms, analytic
f/g/X'WX 114 ms, hand-written step 100 ms; log form: value 9.7 ms, derivatives 136 ms,
step 192 ms. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlejax.solvers.newton import Newton  # noqa: E402


def loglik(b, X, y):
    eta = X @ b
    return jnp.sum(y * eta - jnp.logaddexp(0.0, eta))


def loglik_log_form(b, X, y):
    eta = X @ b
    return jnp.sum(y * eta - jnp.maximum(eta, 0.0) - jnp.log(1.0 + jnp.exp(-jnp.abs(eta))))


def analytic(b, X, y):
    eta = X @ b
    p = jax.nn.sigmoid(eta)
    w = p * (1 - p)
    return jnp.sum(y * eta - jnp.logaddexp(0.0, eta)), X.T @ (y - p), -(X.T * w) @ X


def hand_written_step(b, X, y):
    _, g, h = analytic(b, X, y)
    return b + jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(-h), g)


def bench(name, f, *args):
    f = jax.jit(f)
    out = f(*args)
    jax.block_until_ready(out)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    print(f"{name:40s} {1e3 * min(times):8.1f} ms", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--d", type=int, default=6)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(a.k, a.n, a.d)))
    y = jnp.asarray((rng.uniform(size=(a.k, a.n)) < 0.5).astype(float))
    b = jnp.asarray(rng.normal(size=(a.k, a.d)) * 0.1)
    print(f"K={a.k:,} logistic regressions, n={a.n}, d={a.d}, float64, "
          f"{jax.devices()[0].platform}")
    for label, fn in (("", loglik), (" (log form)", loglik_log_form)):
        def solver(X, y, fn=fn):
            return Newton(lambda u: fn(u, X, y))
        state = bench("init" + label, jax.vmap(lambda b, X, y: solver(X, y).init(b)), b, X, y)
        bench("step" + label, jax.vmap(lambda s, X, y: solver(X, y).step(s)), state, X, y)
        bench("derivatives" + label,
              jax.vmap(lambda b, X, y: solver(X, y)._derivatives(b)), b, X, y)
        bench("value" + label, jax.vmap(fn), b, X, y)
        bench("value_and_grad" + label, jax.vmap(jax.value_and_grad(fn)), b, X, y)
        if not label:
            bench("eigh", jax.vmap(jnp.linalg.eigh), -state.hess)
            bench("cholesky", jax.vmap(jnp.linalg.cholesky), -state.hess)
            bench("analytic f, g, X'WX", jax.vmap(analytic), b, X, y)
            bench("hand-written Newton step", jax.vmap(hand_written_step), b, X, y)


if __name__ == "__main__":
    main()
