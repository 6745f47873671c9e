"""NIST StRD nonlinear regression: log relative error (LRE) of mlejax's Gaussian MLE.

Every one of the 27 NIST StRD nonlinear least-squares problems is fitted as the Gaussian
log-likelihood  sum_i log N(y_i | f(x_i; b), sigma)  with constraints {"sigma": positive},
from both NIST starts ("Start 1" far, "Start 2" near), with each requested method.
For each fit the table gives the minimum over b_j of LRE = -log10(|est-cert|/|cert|)
(capped at 15), and n_steps. Where the model has an exact symmetry (interchangeable terms of
Lanczos1-3, Gauss1-3 and MGH17, a sign change in Eckerle4) the LRE is against the certified
values or their symmetric image, whichever is closer, and the cell says "(relabelled)": both
are the same fitted curve (nist_problems.SYMMETRIES). A fit that does not report convergence is shown as
"fail: <STATUS> (LRE x.x)" -- its LRE is still printed, but it does not count as a pass.
The summary counts, per method, how many of the 54 fits converge with LRE >= 6.

    python benchmarks/nist_lre.py [--methods newton,bfgs,lbfgs] [--max-steps 3000] [--minpack]
                                  [--peers] [--json out.json]

``--minpack`` adds MINPACK's Levenberg-Marquardt (scipy ``least_squares(method="lm")``, JAX
Jacobian, tolerances 1e-15) from the same start: its residual and Jacobian evaluation counts
(nfev, njev) beside Newton's steps (one value, gradient and Hessian each), and its LRE.

``--peers`` adds two general-purpose minimisers of the same negative log-likelihood, from the
same start with JAX derivatives: SciPy's exact-Hessian trust region (``trust-exact``,
iterations) and iminuit's MIGRAD (strategy 2, function calls); the summary counts both the
fits they report as successful with LRE >= 6 and those reaching LRE >= 6 whatever they report
(trust-exact ends most fits at the precision floor with "a bad approximation caused failure
to predict improvement").

Float64 throughout (x64 is enabled by this script). Data location: see nist_problems.py.

Figures (all three methods, --max-steps 3000, float64), 2026-11-27, on the 2-core AMD EPYC
development VM, CPU, jax/jaxlib 0.10.2; newton as of the commit that raised its acceptance
ratio to 0.1 (newton alone: 44 s, idle machine):

    newton: 54 of 54 converge with LRE >= 6 (every pass has LRE >= 10.3). MGH10 start 1
            takes ~2,400 steps, MGH17 start 1 ~2,000, Bennett5 up to ~950, Eckerle4
            start 1 39 (before that commit it stopped SINGULAR_HESSIAN: a long step with
            gain ratio 0.02 was accepted and moved the peak off the data, onto a plateau
            where every derivative is zero).
    bfgs:   23 of 54 (42 reach LRE >= 6 but end LINESEARCH_FAILED at the precision floor)
    lbfgs:  18 of 54 (43 reach LRE >= 6)

At the library's default max_steps (500), 2026-12-05, same VM (`--methods newton --minpack`,
64 s): newton 51 of 54 (MGH10 start 1, MGH17 start 1 and Bennett5 start 2 stop at
MAX_STEPS; they need 2,481, 2,025 and 934 steps); MINPACK lm needs 296, 601 and 213
evaluations there, and 765 for Bennett5 start 1 (newton 448). Table: benchmarks/RESULTS.md.

Wall time 288 s for the three methods (mostly compilation; a second start, and a problem
sharing a model and n (Lanczos1-3, Gauss1-3), reuse the compiled program).
Rerun this script for current figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.stats import norm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nist_problems as nist  # noqa: E402

import mlejax as mj  # noqa: E402

MIN_LRE = 6.0
ALL_METHODS = ("newton", "bfgs", "lbfgs")


_LOGLIKS: dict = {}


def make_loglik(name: str):
    """One function object per model function, so mlejax's compile cache is reused by both
    starts and by problems that share a model and n (Lanczos1-3, Gauss1-3)."""
    f = nist.MODELS[name]
    if f not in _LOGLIKS:

        def loglik(params, data):
            return norm.logpdf(data["y"], f(params["b"], data["x"]), params["sigma"])

        _LOGLIKS[f] = loglik
    return _LOGLIKS[f]


def make_init(prob: nist.Problem, start: np.ndarray) -> dict:
    rss0 = prob.rss(start)
    sigma0 = np.sqrt(rss0 / prob.n) if np.isfinite(rss0) and rss0 > 0 else 1.0
    return {
        "b": jnp.asarray(start, dtype=jnp.float64),
        "sigma": jnp.asarray(sigma0, dtype=jnp.float64),
    }


def status_name(status) -> str:
    s = int(status)
    try:
        return mj.Status(s).name
    except Exception:  # noqa: BLE001
        return str(s)


def run_one(prob: nist.Problem, loglik, which: int, method: str, max_steps: int | None) -> dict:
    start = prob.start1 if which == 1 else prob.start2
    data = {"x": jnp.asarray(prob.x), "y": jnp.asarray(prob.y)}
    kwargs = {} if max_steps is None else {"max_steps": max_steps}
    t0 = time.perf_counter()
    try:
        res = mj.fit(
            loglik,
            make_init(prob, start),
            data,
            constraints={"sigma": mj.positive},
            method=method,
            **kwargs,
        )
        jax.block_until_ready(res.params)
    except Exception as e:  # noqa: BLE001 -- report, don't hide
        return {
            "problem": prob.name,
            "start": which,
            "method": method,
            "error": f"{type(e).__name__}: {e}",
            "converged": False,
            "status": "EXCEPTION",
            "min_lre": 0.0,
            "pass": False,
            "seconds": time.perf_counter() - t0,
        }
    secs = time.perf_counter() - t0
    b = np.asarray(res.params["b"], dtype=np.float64)
    lre, relabelled = nist.lre_modulo_symmetry(prob, b)
    converged = bool(res.converged)
    min_lre = float(lre.min())
    return {
        "problem": prob.name,
        "start": which,
        "method": method,
        "status": status_name(res.status),
        "converged": converged,
        "n_steps": int(res.n_steps),
        "loglik": float(res.loglik),
        "b": b.tolist(),
        "sigma": float(res.params["sigma"]),
        "rss": prob.rss(b),
        "cert_rss": prob.cert_rss,
        "lre": lre.tolist(),
        "relabelled": relabelled,
        "min_lre": min_lre,
        "pass": converged and min_lre >= MIN_LRE,
        "seconds": secs,  # includes compilation on the first start
    }


def run_minpack(prob: nist.Problem, which: int) -> dict:
    """MINPACK's Levenberg-Marquardt (``scipy.optimize.least_squares(method="lm")``, the
    Jacobian from JAX) from the same start, tolerances at 1e-15: its evaluation counts beside
    Newton's steps (one Newton step is one value, gradient and Hessian)."""
    from scipy.optimize import least_squares

    f = nist.MODELS[prob.name]
    x, y = jnp.asarray(prob.x), jnp.asarray(prob.y)
    res_fn = jax.jit(lambda b: f(b, x) - y)
    jac_fn = jax.jit(jax.jacfwd(lambda b: f(b, x) - y))
    start = prob.start1 if which == 1 else prob.start2
    r = least_squares(lambda b: np.asarray(res_fn(b)), np.asarray(start, np.float64),
                      jac=lambda b: np.asarray(jac_fn(b)), method="lm", xtol=1e-15,
                      ftol=1e-15, gtol=1e-15, max_nfev=100_000)
    lre, _ = nist.lre_modulo_symmetry(prob, r.x)
    return {"nfev": int(r.nfev), "njev": int(r.njev), "min_lre": float(lre.min())}


def run_peers(prob: nist.Problem, which: int) -> dict:
    """Two general-purpose minimisers of the same negative log-likelihood in (b, log sigma)
    from the same start, with JAX derivatives: SciPy's exact-Hessian trust region
    (``minimize(method="trust-exact")``, the Moré-Sorensen algorithm newton also uses) and
    MINUIT's MIGRAD (iminuit, strategy 2, ``tol=1e-10``, ``errordef=0.5``). A fit passes when
    the minimiser reports success (MIGRAD: a valid minimum) and its LRE is >= 6."""
    from iminuit import Minuit
    from scipy.optimize import minimize

    f = nist.MODELS[prob.name]
    p = prob.p
    x, y = jnp.asarray(prob.x), jnp.asarray(prob.y)
    nll = jax.jit(lambda u: -jnp.sum(norm.logpdf(y, f(u[:p], x), jnp.exp(u[p]))))
    grad = jax.jit(jax.grad(nll))
    hess = jax.jit(jax.hessian(nll))
    start = np.asarray(prob.start1 if which == 1 else prob.start2, np.float64)
    init = make_init(prob, start)
    u0 = np.r_[start, np.log(float(init["sigma"]))]
    out = {}
    try:
        r = minimize(lambda u: float(nll(u)), u0, jac=lambda u: np.asarray(grad(u)),
                     hess=lambda u: np.asarray(hess(u)), method="trust-exact",
                     options={"maxiter": 20_000, "gtol": 1e-10})
        lre, _ = nist.lre_modulo_symmetry(prob, r.x[:p])
        out["trust_exact"] = {"nit": int(r.nit), "min_lre": float(lre.min()),
                              "success": bool(r.success),
                              "pass": bool(r.success) and float(lre.min()) >= MIN_LRE}
    except Exception as e:  # noqa: BLE001 -- report, don't hide
        out["trust_exact"] = {"nit": -1, "min_lre": 0.0, "pass": False, "success": False,
                              "error": type(e).__name__}
    m = Minuit(lambda u: float(nll(u)), u0, grad=lambda u: np.asarray(grad(u)))
    m.errordef, m.strategy, m.tol = 0.5, 2, 1e-10
    try:
        m.migrad(ncall=100_000)
        lre, _ = nist.lre_modulo_symmetry(prob, np.asarray(m.values)[:p])
        out["migrad"] = {"nfcn": int(m.nfcn), "min_lre": float(lre.min()),
                         "success": bool(m.valid),
                         "pass": bool(m.valid) and float(lre.min()) >= MIN_LRE}
    except Exception as e:  # noqa: BLE001
        out["migrad"] = {"nfcn": int(m.nfcn), "min_lre": 0.0, "pass": False, "success": False,
                         "error": type(e).__name__}
    return out


def peer_cell(r: dict, count: str) -> str:
    if "error" in r:
        return f"fail: {r['error']}"
    mark = "" if r["success"] else " (no success)"
    return f"{r[count]}, LRE {r['min_lre']:.1f}{mark}"


def cell(r: dict) -> tuple[str, str]:
    if "error" in r:
        return f"fail: exception ({r['error'][:60]})", "-"
    if not r["converged"]:
        return f"fail: {r['status']} (LRE {r['min_lre']:.1f})", str(r["n_steps"])
    mark = " (relabelled)" if r.get("relabelled") else ""
    return f"{r['min_lre']:.1f}{mark}", str(r["n_steps"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--json", type=Path, default=None, help="write per-fit results here")
    ap.add_argument("--problems", default=None, help="comma-separated subset (default: all 27)")
    ap.add_argument("--max-steps", type=int, default=None, help="passed to mj.fit (default: library default)")
    ap.add_argument("--minpack", action="store_true",
                    help="add MINPACK LM's nfev/njev (scipy least_squares method='lm') per start")
    ap.add_argument("--peers", action="store_true",
                    help="add scipy trust-exact (iterations) and iminuit MIGRAD (calls) per start")
    args = ap.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    names = nist.PROBLEMS if args.problems is None else [s.strip() for s in args.problems.split(",")]

    t_all = time.perf_counter()
    results = []
    for name in names:
        prob = nist.load(name)
        loglik = make_loglik(name)  # shared per model function: starts share a compile
        for method in methods:
            for which in (1, 2):
                r = run_one(prob, loglik, which, method, args.max_steps)
                r["difficulty"] = prob.difficulty
                if args.minpack and method == methods[0]:
                    r["minpack"] = run_minpack(prob, which)
                if args.peers and method == methods[0]:
                    r["peers"] = run_peers(prob, which)
                results.append(r)
                print(
                    f"  {name:9s} start{which} {method:6s} {r['status']:18s} "
                    f"minLRE={r['min_lre']:5.1f} {r['seconds']:6.2f}s",
                    file=sys.stderr,
                    flush=True,
                )
    total = time.perf_counter() - t_all

    by = {(r["problem"], r["start"], r["method"]): r for r in results}
    header = ["problem", "difficulty", "start"]
    for m in methods:
        header += [f"{m} min LRE", f"{m} steps"]
    if args.minpack:
        header += ["MINPACK lm nfev", "njev", "lm min LRE"]
    if args.peers:
        header += ["scipy trust-exact iterations", "iminuit MIGRAD calls"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        for which in (1, 2):
            row = [name, nist.DIFFICULTY[name], str(which)]
            for m in methods:
                row += list(cell(by[(name, which, m)]))
            if args.minpack:
                mp = by[(name, which, methods[0])]["minpack"]
                row += [str(mp["nfev"]), str(mp["njev"]), f"{mp['min_lre']:.1f}"]
            if args.peers:
                pr = by[(name, which, methods[0])]["peers"]
                row += [peer_cell(pr["trust_exact"], "nit"), peer_cell(pr["migrad"], "nfcn")]
            lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines))
    print()
    n_fits = 2 * len(names)
    summary = {}
    for m in methods:
        rs = [r for r in results if r["method"] == m]
        n_pass = sum(r["pass"] for r in rs)
        n_lre = sum(r["min_lre"] >= MIN_LRE for r in rs)
        n_conv = sum(r["converged"] for r in rs)
        summary[m] = {"pass": n_pass, "lre_ge_6": n_lre, "converged": n_conv, "fits": n_fits}
        print(
            f"{m}: {n_pass} of {n_fits} converge with LRE >= {MIN_LRE:g} "
            f"({n_lre} reach LRE >= {MIN_LRE:g} regardless of status; {n_conv} report convergence)"
        )
    if args.peers:
        for key, label in (("trust_exact", "scipy trust-exact"), ("migrad", "iminuit MIGRAD")):
            rs = [r["peers"][key] for r in results if "peers" in r]
            n_pass = sum(r["pass"] for r in rs)
            n_lre = sum(r["min_lre"] >= MIN_LRE for r in rs)
            print(f"{label}: {n_pass} of {n_fits} report success with LRE >= {MIN_LRE:g} "
                  f"({n_lre} reach LRE >= {MIN_LRE:g} regardless of status)")
    print(f"\ntotal time {total:.1f}s (includes compilation)")

    if args.json is not None:
        meta = {
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
            "total_seconds": total,
            "min_lre_threshold": MIN_LRE,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "summary": summary, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
