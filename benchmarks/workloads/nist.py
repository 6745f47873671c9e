"""nist: the 27 NIST StRD nonlinear regression problems, both starts, every method.

mlejax fits each problem as a Gaussian likelihood exactly as ``nist_lre.py`` does (its
``run_one`` and log-likelihoods are reused): ``newton``, ``bfgs`` and ``lbfgs`` (``newton``
only with ``--quick``). The peers are scipy's ``least_squares`` (its default ``trf`` and
MINPACK's ``lm``) and ``curve_fit``, on the same residuals from the same starts, with
NumPy versions of the same model functions (each of ``nist_problems``' functions run with
``numpy`` in place of ``jax.numpy``).

Per method: how many of the 2P fits converge with LRE >= 6 (the minimum over the
parameters of ``-log10 |est - cert| / |cert|``, the certified values being the optimum),
and the run time of all 2P fits (the median of ``--repeats`` passes after a first pass that
compiles). A method that misses LRE >= 6 on some fit is marked as not reaching the optimum
there: its time ratio is shown but does not count. Size P: the first P problems in NIST's
order (lower, average, higher difficulty).
"""

from __future__ import annotations

import statistics
import time
import types
import warnings

import numpy as np

from .. import harness as H
from .. import nist_lre

nist = nist_lre.nist   # the nist_problems module nist_lre imported

NAME = "nist"
SIZE_NAME = "P"
DEFAULT_SIZES = (27,)
QUICK_SIZES = (3,)
TARGET_SIZE = 27


def numpy_model(f):
    """The model function ``f(b, x)`` evaluated with NumPy (same code, ``jnp`` -> ``np``)."""
    return types.FunctionType(f.__code__, {**f.__globals__, "jnp": np}, f.__name__,
                              f.__defaults__, f.__closure__)


def _scipy_fit(kind: str, prob, start):
    opt = H.optional("scipy.optimize")
    f = numpy_model(prob.f)
    x, y = prob.x, prob.y
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if kind == "curve_fit":
                b, _ = opt.curve_fit(lambda xd, *b: f(np.asarray(b), xd), x, y, p0=start)
                return b, True
            sol = opt.least_squares(lambda b: f(b, x) - y, start, method=kind)
            return sol.x, bool(sol.success)
        except (RuntimeError, ValueError, FloatingPointError, OverflowError):
            return np.full_like(start, np.nan), False


# MGH10 (far start) takes about 2,500 trust-region Newton steps, Bennett5 up to 950;
# every method gets the same limit (as the peers' defaults allow them to run long).
MAX_STEPS = 3000


def _mlejax_pass(probs, method):
    """One pass over every problem and start: ``nist_lre.run_one``'s result of each fit."""
    with warnings.catch_warnings():
        # FitWarning for the fits that fail: their status is in the results and the table.
        warnings.simplefilter("ignore", nist_lre.mj.FitWarning)
        return [nist_lre.run_one(prob, nist_lre.make_loglik(prob.name), which, method,
                                 MAX_STEPS)
                for prob in probs for which in (1, 2)]


def run(p: int, ctx: H.Context) -> list[H.Group]:
    names = nist.PROBLEMS[: min(p, len(nist.PROBLEMS))]
    probs = [nist.load(nm) for nm in names]
    n_fits = 2 * len(probs)
    methods = ("newton",) if ctx.quick else nist_lre.ALL_METHODS
    plural = "s" if len(probs) > 1 else ""
    g = H.Group(NAME, f"{len(probs)} problem{plural} x 2 starts", unit="fit",
                params={"size": len(probs), "problems": names, "methods": list(methods)})
    detail = {}

    for method in methods:
        ctx.log(f"  {NAME}: mlejax {method} on {len(probs)} problems (first pass compiles)")
        first = _mlejax_pass(probs, method)
        passes = []
        while len(passes) < max(ctx.repeats, 1) and (not passes or sum(passes) < ctx.budget_s):
            res = _mlejax_pass(probs, method)
            passes.append(sum(r["seconds"] for r in res))
        n_pass = sum(r["pass"] for r in first)
        compile_s = max(sum(r["seconds"] for r in first) - statistics.median(passes), 0.0)
        fails = [f"{r['problem']}/{r['start']}" for r in first if not r["pass"]]
        g.rows.append(H.Row(
            f"mlejax {method}", "mlejax", runs=passes, compile_s=compile_s, work=n_fits,
            ok=n_pass == n_fits, subject=method == "newton",
            note=f"LRE >= 6 on {n_pass}/{n_fits}"
                 + (f"; misses {', '.join(fails[:6])}{' ...' if len(fails) > 6 else ''}"
                    if fails else "")))
        detail[f"mlejax {method}"] = first

    if H.optional("scipy.optimize") is None:
        for name in ("scipy least_squares (trf)", "scipy least_squares (lm)",
                     "scipy curve_fit"):
            g.rows.append(H.Row(name, "peer", skipped="scipy is not installed"))
    else:
        for name, kind in (("scipy least_squares (trf)", "trf"),
                           ("scipy least_squares (lm)", "lm"), ("scipy curve_fit", "curve_fit")):
            ctx.log(f"  {NAME}: {name}")

            def one_pass(kind=kind):
                rows = []
                for prob in probs:
                    for which, start in ((1, prob.start1), (2, prob.start2)):
                        t0 = time.perf_counter()
                        b, success = _scipy_fit(kind, prob, np.asarray(start, float))
                        secs = time.perf_counter() - t0
                        lre = float(np.min(nist.lre_modulo_symmetry(prob, b)[0]))
                        rows.append({"problem": prob.name, "start": which, "min_lre": lre,
                                     "success": success, "pass": success and lre >= 6.0,
                                     "seconds": secs})
                return rows

            t, threads = H.measure_peer(one_pass, ctx)
            res = t.out
            n_pass = sum(r["pass"] for r in res)
            g.rows.append(H.Row.from_timing(
                name, "peer", t, work=n_fits, ok=n_pass == n_fits,
                note=f"LRE >= 6 on {n_pass}/{n_fits}; {threads}"))
            detail[name] = res
    g.params["per_fit"] = detail
    g.check = ("the certified values are the optimum: a fit reaches it with LRE >= 6 "
               "(and, for mlejax, a converged status)")
    newton = g.row("mlejax newton")
    if newton is not None:
        n_pass = sum(r["pass"] for r in detail["mlejax newton"])
        g.targets.append(H.Target("newton fits with LRE >= 6", float(n_pass), ">=",
                                  float(n_fits), unit="fits"))
    return [g]
