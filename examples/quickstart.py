"""Quickstart: fit a few models with mlejax and print their summaries.

Run:  python examples/quickstart.py [--n 500] [--k 1000]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import mlejax as mj


def normal_loglik(params, x):
    """Per-observation log-density of N(mu, sigma^2)."""
    return jax.scipy.stats.norm.logpdf(x, params["mu"], params["sigma"])


def logistic_loglik(params, data):
    """Per-observation Bernoulli log-likelihood of a logistic regression."""
    X, y = data
    eta = X @ params["beta"]
    return y * eta - jnp.logaddexp(0.0, eta)


def mixture_loglik(params, x):
    """A two-component normal mixture written directly (no EM)."""
    w = params["w"]
    a = jnp.log(w) + jax.scipy.stats.norm.logpdf(x, params["mu1"], params["s1"])
    b = jnp.log1p(-w) + jax.scipy.stats.norm.logpdf(x, params["mu2"], params["s2"])
    return jnp.logaddexp(a, b)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="observations per dataset")
    parser.add_argument("--k", type=int, default=1000, help="datasets in the batch example")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # examples may; the library never does
    key = jax.random.key(0)
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)

    # 1. A normal model: mu = mean, sigma^2 = biased variance.
    x = 3.0 + 2.0 * jax.random.normal(k1, (args.n,))
    res = mj.fit(normal_loglik, {"mu": 0.0, "sigma": 1.0}, x,
                 constraints={"sigma": mj.positive})
    print(res.summary())
    print(f"closed form: mean {float(x.mean()):.10g}, sd (1/n) {float(x.std()):.10g}\n")

    # 2. Logistic regression by damped Newton.
    X = jnp.column_stack([jnp.ones(args.n), jax.random.normal(k2, (args.n, 3))])
    beta_true = jnp.array([-0.5, 1.0, -2.0, 0.5])
    y = jax.random.bernoulli(k3, jax.nn.sigmoid(X @ beta_true)).astype(X.dtype)
    res = mj.fit(logistic_loglik, {"beta": jnp.zeros(4)}, (X, y))
    print(res.summary(), "\n")

    # 3. A bimodal likelihood: 32 restarts as one compiled program find the global maximum.
    z = jnp.concatenate([jax.random.normal(k4, (args.n // 2,)) - 2.0,
                         0.5 * jax.random.normal(k5, (args.n - args.n // 2,)) + 3.0])
    init = {"w": 0.5, "mu1": 8.0, "mu2": 8.0, "s1": 1.0, "s2": 1.0}
    cons = {"w": mj.unit_interval, "s1": mj.positive, "s2": mj.positive}
    res = mj.fit(mixture_loglik, init, z, constraints=cons, restarts=32, key=key,
                 restart_scale=2.0)
    print(res.summary(), "\n")

    # 4. A thousand independent normal fits in one program.
    xs = 1.0 + 3.0 * jax.random.normal(k1, (args.k, 50))
    batch = mj.fit_batch(normal_loglik, {"mu": 0.0, "sigma": 1.0}, xs,
                         constraints={"sigma": mj.positive})
    print(batch.summary())


if __name__ == "__main__":
    main()
