"""K independent logistic regressions: mlejax.fit_batch against a loop of statsmodels Logit.

Each of K datasets has n observations and d = 5 covariates plus an intercept. mlejax fits all
K in one compiled program (damped Newton, vmapped); statsmodels fits them one after another
(timed on a subset and extrapolated to K). Compile time is measured apart from run time
(first call minus a second call on fresh same-shaped data). Before timing counts, the
estimates are checked against statsmodels on the subset.

Run:  python benchmarks/bench_batch_logistic.py [--k 10000] [--n 200] [--peer-k 200]
      [--repeats 3] [--json out.json] [--float32]

Figures on the development machine (2 CPU cores, no GPU; 2026-11-27), default sizes:
see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np


def logistic_loglik(params, data):
    X, y = data
    eta = X @ params["beta"]
    return y * eta - jnp.logaddexp(0.0, eta)


def make_data(rng, k, n, d, dtype):
    X = np.concatenate([np.ones((k, n, 1)), rng.normal(size=(k, n, d - 1))], axis=2)
    beta = rng.normal(scale=0.5, size=(k, d))
    p = 1.0 / (1.0 + np.exp(-np.einsum("knd,kd->kn", X, beta)))
    y = (rng.uniform(size=(k, n)) < p).astype(float)
    return X.astype(dtype), y.astype(dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--d", type=int, default=6, help="columns including the intercept")
    ap.add_argument("--peer-k", type=int, default=200, help="datasets fitted by the peer loop")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    import mlejax as mj
    import statsmodels.api as sm

    dtype = np.float32 if args.float32 else np.float64
    rng = np.random.default_rng(0)
    X, y = make_data(rng, args.k, args.n, args.d, dtype)
    X2, y2 = make_data(rng, args.k, args.n, args.d, dtype)
    init = {"beta": np.zeros(args.d, dtype)}

    t0 = time.perf_counter()
    res = mj.fit_batch(logistic_loglik, init, (X, y), warn=False)
    jax.block_until_ready(res.params)
    first = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r2 = mj.fit_batch(logistic_loglik, init, (X2, y2), warn=False)
        jax.block_until_ready(r2.params)
        runs.append(time.perf_counter() - t0)
    run = float(np.median(runs))
    compile_s = max(first - run, 0.0)
    conv = float(np.mean(np.asarray(res.converged)))

    # The peer: a loop of statsmodels Logit on the first peer_k datasets.
    kk = min(args.peer_k, args.k)
    t0 = time.perf_counter()
    sm_params, sm_bse = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(kk):
            r = sm.Logit(np.asarray(y[i], float), np.asarray(X[i], float)).fit(disp=0)
            sm_params.append(r.params)
            sm_bse.append(r.bse)
    peer = time.perf_counter() - t0
    peer_per_fit = peer / kk
    ours = np.asarray(res.params["beta"][:kk], float)
    ok = np.asarray(res.converged[:kk])
    rel_p = np.max(np.abs(ours[ok] - np.array(sm_params)[ok]) / np.maximum(np.abs(np.array(sm_params)[ok]), 1e-8))
    rel_se = np.max(np.abs(np.asarray(res.stderr["beta"][:kk], float)[ok] - np.array(sm_bse)[ok])
                    / np.array(sm_bse)[ok])

    out = {
        "benchmark": "batch_logistic",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "device": str(jax.devices()[0]),
                    "jax": jax.__version__, "statsmodels": sm.__version__ if hasattr(sm, "__version__") else ""},
        "k": args.k, "n": args.n, "d": args.d, "dtype": np.dtype(dtype).name,
        "mlejax": {"compile_s": compile_s, "run_s_median": run, "run_s_min": min(runs),
                   "run_s_max": max(runs), "fits_per_s": args.k / run, "converged": conv,
                   "median_steps": float(np.median(np.asarray(res.n_steps)))},
        "statsmodels_loop": {"k_timed": kk, "s_per_fit": peer_per_fit,
                             "extrapolated_s": peer_per_fit * args.k, "fits_per_s": 1.0 / peer_per_fit},
        "agreement_with_statsmodels": {"max_rel_params": float(rel_p), "max_rel_stderr": float(rel_se)},
        "speedup_vs_statsmodels": peer_per_fit * args.k / run,
    }
    print(f"batch_logistic: K={args.k}, n={args.n}, d={args.d}, {np.dtype(dtype).name}, "
          f"device={jax.devices()[0]}")
    print(f"  mlejax fit_batch : compile {compile_s:.2f} s, run median {run:.3f} s "
          f"[{min(runs):.3f}, {max(runs):.3f}] -> {args.k / run:,.0f} fits/s, converged {conv:.1%}")
    print(f"  statsmodels loop : {peer_per_fit * 1e3:.2f} ms/fit on {kk} fits -> "
          f"{1 / peer_per_fit:,.0f} fits/s, K={args.k} extrapolated {peer_per_fit * args.k:.1f} s")
    print(f"  speed-up (run time): {out['speedup_vs_statsmodels']:.1f}x; agreement: params "
          f"{rel_p:.1e}, stderr {rel_se:.1e} (max relative)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
