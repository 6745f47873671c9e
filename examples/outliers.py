"""Outliers: the Gaussian MLE of location is pulled by them, the Student-t MLE is not.

Run:  python examples/outliers.py [--n 200] [--outliers 10]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import mlejax as mj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="clean observations, N(5, 1)")
    ap.add_argument("--outliers", type=int, default=10, help="gross errors near 40")
    ap.add_argument("--plot", default=None, help="save the Student-t fit with a QQ plot here")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    k1, k2 = jax.random.split(jax.random.key(0))
    clean = 5.0 + jax.random.normal(k1, (args.n,))
    x = jnp.concatenate([clean, 40.0 + jax.random.normal(k2, (args.outliers,))])
    gauss = mj.fit_distribution(x, "normal")
    t = mj.fit_distribution(x, "student_t")
    print(gauss.summary(), "\n")
    print(t.summary(), "\n")
    print(f"true location 5; Gaussian MLE {float(gauss.params['mu']):.3f} "
          f"(pulled by {args.outliers} outliers), Student-t MLE {float(t.params['loc']):.3f} "
          f"(df {float(t.params['df']):.2f}: heavy tails absorb them); median "
          f"{float(np.median(np.asarray(x))):.3f}")
    print(mj.compare_distributions(x, ["normal", "student_t"]))
    if args.plot:
        from mlejax import plot
        plot.density(x, t, "student_t", path=args.plot)


if __name__ == "__main__":
    main()
