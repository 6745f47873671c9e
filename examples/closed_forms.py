"""Bernoulli and Gaussian: the numeric MLE equals the closed form, and the n-divisor's bias.

The MLE of a Bernoulli p is the sample mean; of a Gaussian (mu, sigma^2) the sample mean and
the variance over n (not n - 1). Its bias, -sigma^2 / n, shows at small n by simulation:
K datasets fitted at once with fit_batch.

Run:  python examples/closed_forms.py [--n 200] [--k 4000] [--small-n 5]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import mlejax as mj


def normal_loglik(params, x):
    return jax.scipy.stats.norm.logpdf(x, params["mu"], params["sigma"])


def bernoulli_loglik(params, y):
    return y * jnp.log(params["p"]) + (1 - y) * jnp.log1p(-params["p"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="observations")
    ap.add_argument("--k", type=int, default=4000, help="simulated datasets for the bias")
    ap.add_argument("--small-n", type=int, default=5, help="size of each simulated dataset")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)

    y = jax.random.bernoulli(k1, 0.3, (args.n,)).astype(jnp.float64)
    res = mj.fit(bernoulli_loglik, {"p": 0.5}, y, constraints={"p": mj.unit_interval})
    print(res.summary())
    print(f"closed form p = mean(y) = {float(y.mean()):.10f}; numeric {float(res.params['p']):.10f}\n")

    x = 3.0 + 2.0 * jax.random.normal(k2, (args.n,))
    res = mj.fit(normal_loglik, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive})
    print(res.summary())
    print(f"mean {float(x.mean()):.10f} vs mu {float(res.params['mu']):.10f}; "
          f"var/n {float(x.var()):.10f} vs sigma^2 {float(res.params['sigma'] ** 2):.10f} "
          f"(var/(n-1) would be {float(x.var(ddof=1)):.10f})\n")

    n = args.small_n
    xs = 2.0 * jax.random.normal(k3, (args.k, n))          # true sigma^2 = 4
    batch = mj.fit_batch(normal_loglik, {"mu": 0.0, "sigma": 1.0}, xs,
                         constraints={"sigma": mj.positive})
    s2 = np.asarray(batch.params["sigma"]) ** 2
    print(f"{args.k} datasets of n={n}: mean of the MLE sigma^2 = {s2.mean():.3f}; theory "
          f"sigma^2 (n-1)/n = {4.0 * (n - 1) / n:.3f}; the unbiased n/(n-1) correction gives "
          f"{s2.mean() * n / (n - 1):.3f} (truth 4); converged: "
          f"{float(np.mean(np.asarray(batch.converged))):.0%}")


if __name__ == "__main__":
    main()
