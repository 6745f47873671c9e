"""A Gaussian mixture by EM, started by k-means++: the log-likelihood rises at every step.

Three 2-D clusters with different shapes; mj.GaussianMixture fits a k-component mixture
with full covariances by EM from n_init k-means++ starts (one vmapped program) and keeps the
best. EM cannot lower the observed-data log-likelihood: the script prints the trace and
checks it step by step. scikit-learn's GaussianMixture (same model, same reg_covar, tight
tolerance), if installed, is the reference; its components are matched to ours by their
means before comparing.

Run:  python examples/gmm_em.py [--n 600] [--k 3] [--n-init 4] [--plot gmm.png]
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np

import mlejax as mj

MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
COVS = np.array([[[1.0, 0.6], [0.6, 1.0]],
                 [[0.5, 0.0], [0.0, 1.5]],
                 [[1.2, -0.5], [-0.5, 0.6]]])
WEIGHTS = np.array([0.5, 0.3, 0.2])


def sample(key, n):
    """n points from the three-component mixture above."""
    k1, k2 = jax.random.split(key)
    z = jax.random.choice(k1, 3, (n,), p=jnp.asarray(WEIGHTS))
    chol = jnp.linalg.cholesky(jnp.asarray(COVS))
    eps = jax.random.normal(k2, (n, 2))
    return jnp.asarray(MEANS)[z] + jnp.einsum("nij,nj->ni", chol[z], eps)


def match(ours, theirs):
    """The permutation of ``theirs`` closest to ``ours`` (by the means; k is small)."""
    k = ours.shape[0]
    best = min(itertools.permutations(range(k)),
               key=lambda p: np.sum((ours - theirs[list(p)]) ** 2))
    return list(best)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="observations")
    ap.add_argument("--k", type=int, default=3, help="mixture components fitted")
    ap.add_argument("--n-init", type=int, default=4, help="k-means++ starts (vmapped)")
    ap.add_argument("--plot", default=None, help="save the mixture plot (points, ellipses, "
                                                 "EM trace) here")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)   # examples may; the library never does
    x = sample(jax.random.key(0), args.n)

    gmm = mj.GaussianMixture(args.k, covariance_type="full", init_params="k-means++",
                             max_steps=500)
    res = gmm.fit(x, key=jax.random.key(1), n_init=args.n_init)
    print(f"GaussianMixture(k={args.k}, full) on n={args.n}: status "
          f"{mj.Status(int(res.status)).name}, {int(res.n_steps)} EM iterations, loglik "
          f"{float(res.loglik):.6f}, BIC {float(res.bic):.3f}")
    print(f"starts: logliks {np.round(np.asarray(res.restart_loglik), 4)}, "
          f"{int(res.n_best)} of {args.n_init} reached the best")

    trace = np.asarray(res.trace)
    trace = trace[np.isfinite(trace)]
    steps = np.diff(trace)
    shown = sorted(set(range(min(6, trace.size))) | {trace.size - 1})
    print("EM trace (observed-data log-likelihood): "
          + ", ".join(f"[{i}] {trace[i]:.4f}" for i in shown))
    rounding = 1e3 * np.finfo(np.float64).eps * np.max(np.abs(trace))
    if np.all(steps >= 0):
        print(f"never decreases: all {steps.size} changes are >= 0 (smallest {steps.min():.3e})")
    else:
        print(f"largest decrease {-steps.min():.3e} (rounding level {rounding:.1e})")
        assert -steps.min() <= rounding, "EM lowered the log-likelihood beyond rounding"

    order = np.argsort(np.asarray(res.params["weights"]))[::-1]
    print("\ncomponent   weight     mean                 (truth: weights "
          f"{WEIGHTS.tolist()}, means {MEANS.tolist()})")
    for j in order:
        m = np.asarray(res.params["means"][j])
        print(f"  {j:>5}   {float(res.params['weights'][j]):.4f}   [{m[0]:+.4f}, {m[1]:+.4f}]")

    try:
        from sklearn.mixture import GaussianMixture as SkGMM
    except ImportError:
        print("\nscikit-learn is not installed: the comparison with its GaussianMixture is "
              "skipped.")
    else:
        xn = np.asarray(x)
        sk = SkGMM(args.k, covariance_type="full", init_params="k-means++",
                   n_init=args.n_init, tol=1e-10, max_iter=2000, random_state=0).fit(xn)
        sk_ll = float(sk.score(xn) * args.n)
        perm = match(np.asarray(res.params["means"]), sk.means_)
        d_means = np.max(np.abs(np.asarray(res.params["means"]) - sk.means_[perm]))
        d_w = np.max(np.abs(np.asarray(res.params["weights"]) - sk.weights_[perm]))
        d_cov = np.max(np.abs(np.asarray(res.params["covariances"]) - sk.covariances_[perm]))
        agree = np.mean(np.asarray(res.predict(x)) == np.argsort(perm)[sk.predict(xn)])
        print(f"\nscikit-learn GaussianMixture: loglik {sk_ll:.6f} ({sk.n_iter_} iterations), "
              f"BIC {sk.bic(xn):.3f}")
        print(f"difference: loglik {abs(sk_ll - float(res.loglik)):.2e}, BIC "
              f"{abs(sk.bic(xn) - float(res.bic)):.2e}, means {d_means:.2e}, weights "
              f"{d_w:.2e}, covariances {d_cov:.2e}; labels agree on {agree:.1%} of points")
        print("(both stop near the same fixed point, each by its own tolerance: differences "
              "of the order of the stopping tolerance are expected)")

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        from mlejax import plot

        plot.mixture(res, x, path=args.plot)
        print(f"\nsaved the mixture plot to {args.plot}")


if __name__ == "__main__":
    main()
