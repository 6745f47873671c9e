"""A likelihood with several peaks: one start gets stuck, restarts find the top.

Data from a two-component normal mixture, 0.7 N(-1, 1) + 0.3 N(3, 1), fitted directly (no
EM) for the two means with the weights and unit variances known. The log-likelihood over
(mu1, mu2) has two peaks: the right one, and the labels swapped (mu1 on the small cluster,
mu2 on the large one), which is a genuine local maximum because the weights differ. Newton
from a start on the wrong side climbs the nearer, lower peak and converges there: the
gradient is zero, the status is CONVERGED, and nothing in that one fit says it is not the
MLE. ``restarts=R, key=`` runs R starts as one compiled program and keeps the best;
``res.restarts`` holds every start and ``res.n_best`` counts those that reached the top.
The reference is a brute-force grid of the log-likelihood (NumPy), polished by SciPy.

Run:  python examples/multimodal.py [--n 300] [--restarts 16] [--plot surface.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import mlejax as mj

WEIGHT = 0.7   # of the first component, known
TRUE = {"mu1": -1.0, "mu2": 3.0}


def mixture_loglik(params, x):
    """Per-observation log-density of WEIGHT N(mu1, 1) + (1 - WEIGHT) N(mu2, 1)."""
    a = jnp.log(WEIGHT) + jax.scipy.stats.norm.logpdf(x, params["mu1"], 1.0)
    b = jnp.log1p(-WEIGHT) + jax.scipy.stats.norm.logpdf(x, params["mu2"], 1.0)
    return jnp.logaddexp(a, b)


def numpy_loglik(m1, m2, x):
    """The same log-likelihood in NumPy, for the grid reference (m1, m2 broadcast)."""
    c = -0.5 * np.log(2 * np.pi)
    a = np.log(WEIGHT) + c - 0.5 * (x - m1[..., None]) ** 2
    b = np.log1p(-WEIGHT) + c - 0.5 * (x - m2[..., None]) ** 2
    return np.logaddexp(a, b).sum(-1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="observations")
    ap.add_argument("--restarts", type=int, default=16, help="starts in the multi-start fit")
    ap.add_argument("--grid", type=int, default=201, help="points per axis of the reference grid")
    ap.add_argument("--plot", default=None,
                    help="save the likelihood surface with the paths here (and the restarts' "
                         "traces next to it, *_trace.png)")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)   # examples may; the library never does
    k1, k2 = jax.random.split(jax.random.key(0))
    n1 = int(WEIGHT * args.n)
    x = jnp.concatenate([TRUE["mu1"] + jax.random.normal(k1, (n1,)),
                         TRUE["mu2"] + jax.random.normal(k2, (args.n - n1,))])
    lo, hi = float(x.min()), float(x.max())
    print(f"{args.n} points from {WEIGHT} N({TRUE['mu1']}, 1) + {1 - WEIGHT:.1f} "
          f"N({TRUE['mu2']}, 1); fitting (mu1, mu2)\n")

    # 1. One start on the wrong side of the ridge: converged, but to the lower peak.
    bad_start = {"mu1": 4.0, "mu2": -2.0}
    good_start = {"mu1": 0.0, "mu2": 2.0}
    stuck = mj.fit(mixture_loglik, bad_start, x)
    fine = mj.fit(mixture_loglik, good_start, x)
    for name, start, r in (("start A", bad_start, stuck), ("start B", good_start, fine)):
        print(f"{name} (mu1={start['mu1']:+.1f}, mu2={start['mu2']:+.1f}): status "
              f"{mj.Status(int(r.status)).name}, mu1={float(r.params['mu1']):+.4f}, "
              f"mu2={float(r.params['mu2']):+.4f}, loglik {float(r.loglik):.4f}")
    print(f"start A converged to a local peak {float(fine.loglik - stuck.loglik):.2f} "
          "log-likelihood units below start B's: a zero gradient is not a global maximum.\n")

    # 2. R starts drawn uniformly over the data's range, one compiled program.
    def draw(key):
        u = jax.random.uniform(key, (2,), minval=lo, maxval=hi)
        return {"mu1": u[0], "mu2": u[1]}

    res = mj.fit(mixture_loglik, draw, x, restarts=args.restarts, key=jax.random.key(1))
    ll = np.asarray(res.restarts.loglik)
    conv = np.asarray(res.restarts.converged)
    print(f"{args.restarts} restarts: {int(conv.sum())} converged; the distinct peaks they "
          "reached:")
    peaks, counts = np.unique(np.round(ll, 6), return_counts=True)
    for value, count in sorted(zip(peaks, counts), reverse=True):
        at = np.asarray(res.restarts.params["mu1"])[np.argmin(np.abs(ll - value))]
        print(f"  loglik {value:>12.4f}  reached by {count:>3} start(s)  (mu1 = {at:+.4f})")
    print(f"best kept: mu1={float(res.params['mu1']):+.6f}, mu2={float(res.params['mu2']):+.6f}"
          f", loglik {float(res.loglik):.6f}; n_best = {int(res.n_best)} of {args.restarts}\n")

    # 3. The reference: the log-likelihood on a grid over the data's range, then Nelder-Mead.
    g = np.linspace(lo, hi, args.grid)
    G1, G2 = np.meshgrid(g, g, indexing="ij")
    xn = np.asarray(x)
    Z = numpy_loglik(G1, G2, xn)
    i, j = np.unravel_index(np.argmax(Z), Z.shape)
    ref = np.array([g[i], g[j]])
    try:
        from scipy.optimize import minimize
    except ImportError:
        print("scipy is not installed: the grid maximum is not polished.")
        ref_ll = float(Z[i, j])
    else:
        opt = minimize(lambda t: -numpy_loglik(np.array(t[0]), np.array(t[1]), xn), ref,
                       method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
        ref, ref_ll = opt.x, -float(opt.fun)
    est = np.array([float(res.params["mu1"]), float(res.params["mu2"])])
    print(f"reference (grid of {args.grid}^2 + Nelder-Mead): mu1={ref[0]:+.6f}, "
          f"mu2={ref[1]:+.6f}, loglik {ref_ll:.6f}")
    print(f"difference to the best restart: |mu| {np.max(np.abs(ref - est)):.1e}, "
          f"loglik {abs(ref_ll - float(res.loglik)):.1e}")
    print(f"grid maximum on the other side of the diagonal (the local peak): "
          f"{np.max(np.where(G1 > G2, Z, -np.inf)):.4f} (start A found "
          f"{float(stuck.loglik):.4f})")

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        from mlejax import plot

        path = Path(args.plot)
        plot.surface(res, "mu1", "mu2", starts=[bad_start, good_start], x_range=(lo, hi),
                     y_range=(lo, hi), path=str(path))
        trace_path = path.with_name(path.stem + "_trace" + (path.suffix or ".png"))
        plot.trace(res, path=str(trace_path))
        print(f"\nsaved the surface with both paths to {path} and the restarts' traces to "
              f"{trace_path}")


if __name__ == "__main__":
    main()
