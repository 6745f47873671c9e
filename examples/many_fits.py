"""Ten thousand fits at once: fit_batch streams K small datasets through one compiled program.

Every dataset is a small logistic regression (n = 50, an intercept and one covariate) or,
with --model normal, a normal sample; each gets its own Newton iterations, stopping,
status and standard errors, inside one vmapped program that is streamed through in chunks
of --chunk-size with a progress bar. The first call compiles; a second call with the same
shapes reuses the program, which is the rate to expect in a loop over many batches. The
same script runs unchanged on a GPU when JAX sees one.

References: the normal model has a closed form (mean, sd with divisor n) for every dataset;
the logistic fits of the first datasets are refitted one by one with statsmodels' Logit if
it is installed.

Run:  python examples/many_fits.py [--k 10000] [--n 50] [--chunk-size 2048] [--model logistic]
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import mlejax as mj

BETA = np.array([-0.5, 1.0])


def logistic_loglik(params, data):
    """Per-observation Bernoulli log-likelihood, P(y = 1) = sigmoid(X beta)."""
    X, y = data
    eta = X @ params["beta"]
    return y * eta - jnp.logaddexp(0.0, eta)


def normal_loglik(params, x):
    return jax.scipy.stats.norm.logpdf(x, params["mu"], params["sigma"])


def make_data(model, key, k, n):
    k1, k2 = jax.random.split(key)
    if model == "normal":
        return 2.0 + 1.5 * jax.random.normal(k1, (k, n))
    X = jnp.concatenate([jnp.ones((k, n, 1)), jax.random.normal(k1, (k, n, 1))], axis=2)
    y = jax.random.bernoulli(k2, jax.nn.sigmoid(X @ jnp.asarray(BETA))).astype(X.dtype)
    return X, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=10_000, help="datasets (independent fits)")
    ap.add_argument("--n", type=int, default=50, help="observations per dataset")
    ap.add_argument("--chunk-size", type=int, default=2048, help="fits per compiled chunk")
    ap.add_argument("--model", choices=["logistic", "normal"], default="logistic")
    ap.add_argument("--check", type=int, default=20,
                    help="logistic: datasets refitted one by one with statsmodels")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)   # examples may; the library never does
    devices = jax.devices()
    print(f"JAX backend: {jax.default_backend()}; devices: "
          + ", ".join(f"{d.platform}:{d.id} ({d.device_kind})" for d in devices))
    data = make_data(args.model, jax.random.key(0), args.k, args.n)
    if args.model == "normal":
        fn, init, cons = normal_loglik, {"mu": 0.0, "sigma": 1.0}, {"sigma": mj.positive}
    else:
        fn, init, cons = logistic_loglik, {"beta": jnp.zeros(2)}, None
    print(f"{args.k} {args.model} fits of n={args.n}, chunks of {args.chunk_size}")

    times = []
    for label in ("first call (compiles)", "second call (same shapes)"):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:   # counted below, not hidden
            warnings.simplefilter("always", mj.FitWarning)
            res = mj.fit_batch(fn, init, data, constraints=cons,
                               datasets_per_chunk=args.chunk_size, progress=True)
        jax.block_until_ready(res.loglik)
        times.append(time.perf_counter() - t0)
        print(f"  {label}: {times[-1]:.2f} s, {args.k / times[-1]:,.0f} fits/second")
    for w in caught:
        print(f"  FitWarning: {w.message}")

    conv = np.asarray(res.converged)
    print(f"converged: {conv.mean():.2%} ({int(conv.sum())} of {args.k}); "
          f"steps: median {np.median(np.asarray(res.n_steps)):.0f}, "
          f"max {np.max(np.asarray(res.n_steps))}")
    print(res.summary())

    if args.model == "normal":
        x = np.asarray(data)
        d_mu = np.max(np.abs(np.asarray(res.params["mu"]) - x.mean(1)))
        d_sd = np.max(np.abs(np.asarray(res.params["sigma"]) - x.std(1)))
        print(f"closed form (mean, sd with divisor n) over all {args.k} fits: max |difference| "
              f"mu {d_mu:.1e}, sigma {d_sd:.1e}")
        return
    try:
        import statsmodels.api as sm
    except ImportError:
        print("statsmodels is not installed: the comparison with Logit is skipped.")
        return
    X, y = np.asarray(data[0]), np.asarray(data[1])
    est, se = np.asarray(res.params["beta"]), np.asarray(res.stderr["beta"])
    idx = [i for i in range(args.k) if conv[i]][: args.check]
    d_est = d_se = 0.0
    for i in idx:
        r = sm.Logit(y[i], X[i]).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
        d_est = max(d_est, float(np.max(np.abs(r.params - est[i]))))
        d_se = max(d_se, float(np.max(np.abs(r.bse - se[i]))))
    print(f"statsmodels Logit on the first {len(idx)} converged datasets: max |difference| "
          f"estimates {d_est:.1e}, standard errors {d_se:.1e}")
    print(f"mean estimate over the converged fits {np.round(est[conv].mean(0), 4)} "
          f"(truth {BETA.tolist()}; the logistic MLE is biased away from 0 at n={args.n})")


if __name__ == "__main__":
    main()
