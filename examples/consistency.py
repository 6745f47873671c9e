"""Consistency: as n grows the estimates close in on the truth and the standard errors
shrink like 1/sqrt(n), and the mean reported stderr matches the spread across datasets.

Run:  python examples/consistency.py [--sizes 10,100,1000] [--k 500]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import mlejax as mj

TRUE = {"shape": 2.0, "scale": 3.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000", help="sample sizes n")
    ap.add_argument("--k", type=int, default=500, help="datasets per size (fitted at once)")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    print(f"gamma(shape={TRUE['shape']}, scale={TRUE['scale']}): {args.k} datasets per n")
    print(f"{'n':>7} {'param':>6} {'mean est':>10} {'sd est':>9} {'mean se':>9} "
          f"{'sd*sqrt(n)':>11} {'converged':>10}")
    for i, n in enumerate(int(s) for s in args.sizes.split(",")):
        key = jax.random.key(i)
        xs = jax.random.gamma(key, TRUE["shape"], (args.k, n)) * TRUE["scale"]
        res = mj.fit_distribution(xs, "gamma")
        ok = np.asarray(res.converged)
        for name in ("shape", "scale"):
            est = np.asarray(res.params[name])[ok]
            se = np.asarray(res.stderr[name])[ok]
            print(f"{n:>7} {name:>6} {est.mean():>10.4f} {est.std():>9.4f} {np.mean(se):>9.4f} "
                  f"{est.std() * np.sqrt(n):>11.3f} {ok.mean():>10.1%}")


if __name__ == "__main__":
    main()
