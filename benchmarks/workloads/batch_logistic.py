"""batch_logistic: K independent logistic regressions (n = 200, d = 5 + intercept).

mlejax ``fit_batch`` (damped Newton, one vmapped program) against: the hand-written
jit+vmap Newton (the plain-JAX reference), optimistix BFGS under vmap, and loops of
statsmodels ``Logit``, scipy BFGS (analytic gradient) and scikit-learn
``LogisticRegression`` (unpenalised, its default lbfgs solver). The loops run on the first
``peer_k`` datasets and are scaled to K. The floor is one ``X'WX`` plus ``X b`` for all K
fits (the fastest of JAX and NumPy), times mlejax's mean number of Newton iterations.

Same optimum: every method's estimate is scored by the same float64 NumPy log-likelihood;
a method agrees on a fit when it is within 1e-6 (relative) of the best of all methods, and
counts when it agrees on at least 99% of the fits checked.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .. import harness as H
from . import _logistic as L

NAME = "batch_logistic"
SIZE_NAME = "K"
DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200,)
TARGET_SIZE = 10_000
N_OBS, D = 200, 6


def _optimistix_program(optx, d):
    def nll(b, args):
        X, y = args
        eta = X @ b
        return jnp.mean(jnp.logaddexp(0.0, eta) - y * eta)

    solver = optx.BFGS(rtol=1e-8, atol=1e-8)

    def one(X, y):
        sol = optx.minimise(nll, solver, jnp.zeros(d, X.dtype), (X, y), max_steps=256,
                            throw=False)
        return sol.value, sol.stats["num_steps"]

    return jax.jit(jax.vmap(one))


def _loops(X, y):
    """(name, module, fit one dataset -> estimate) for every installed loop peer."""
    out = []
    sm = H.optional("statsmodels.api")
    out.append(("statsmodels Logit loop", sm,
                None if sm is None else lambda Xi, yi: sm.Logit(yi, Xi).fit(disp=0).params))
    opt = H.optional("scipy.optimize")
    special = H.optional("scipy.special")

    def scipy_bfgs(Xi, yi):
        def nll(b):
            eta = Xi @ b
            return np.sum(np.logaddexp(0.0, eta) - yi * eta)

        def grad(b):
            return Xi.T @ (special.expit(Xi @ b) - yi)

        return opt.minimize(nll, np.zeros(Xi.shape[1]), jac=grad, method="BFGS").x

    out.append(("scipy BFGS loop", opt, None if opt is None else scipy_bfgs))
    lm = H.optional("sklearn.linear_model")
    out.append(("scikit-learn LogisticRegression loop", lm, None if lm is None else (
        lambda Xi, yi: lm.LogisticRegression(C=np.inf, fit_intercept=False)
        .fit(Xi, yi).coef_[0])))
    return out


def run(k: int, ctx: H.Context) -> list[H.Group]:
    import mlejax as mj

    n, d = N_OBS, D
    peer_k = min(k, 20 if ctx.quick else 200)
    rng = np.random.default_rng(0)
    X, y = L.make_data(rng, k, n, d, np.float64)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    init = {"beta": np.zeros(d)}
    g = H.Group(NAME, f"K={k:,}, n={n}, d={d}", unit="fit",
                params={"size": k, "K": k, "n": n, "d": d, "peer_k": peer_k,
                        "dtype": "float64"})
    est = {}   # method -> (estimates on all K or on the subset, rows covered)

    ctx.log(f"  {NAME} K={k}: mlejax fit_batch")
    t = H.measure(lambda: mj.fit_batch(L.logistic_loglik, init, (Xj, yj), warn=False), ctx,
                  compiled=True)
    res = t.out
    steps = np.asarray(res.n_steps)
    conv = float(np.mean(np.asarray(res.converged)))
    g.rows.append(H.Row.from_timing(
        "mlejax fit_batch (newton)", "mlejax", t, work=k, subject=True,
        note=f"converged {conv:.1%}, Newton steps mean {steps.mean():.1f} max {steps.max()}"))
    est["mlejax fit_batch (newton)"] = np.asarray(res.params["beta"])

    ctx.log(f"  {NAME} K={k}: hand-written JAX Newton")
    t = H.measure(lambda: L.newton_batch(Xj, yj), ctx, compiled=True)
    g.rows.append(H.Row.from_timing(
        "hand-written jit+vmap Newton", "reference", t, work=k,
        note=f"steps mean {np.mean(np.asarray(t.out[1])):.1f}"))
    est["hand-written jit+vmap Newton"] = np.asarray(t.out[0])

    optx = H.optional("optimistix")
    name = "optimistix BFGS under vmap"
    if optx is None:
        g.rows.append(H.Row(name, "peer", skipped="optimistix is not installed"))
    else:
        ctx.log(f"  {NAME} K={k}: {name}")
        prog = _optimistix_program(optx, d)
        t = H.measure(lambda: prog(Xj, yj), ctx, compiled=True)
        g.rows.append(H.Row.from_timing(name, "peer", t, work=k,
                                        note=f"steps mean {np.mean(np.asarray(t.out[1])):.1f}"))
        est[name] = np.asarray(t.out[0])

    for name, mod, fit_one in _loops(X, y):
        if mod is None:
            g.rows.append(H.Row(name, "peer", skipped="not installed"))
            continue
        ctx.log(f"  {NAME} K={k}: {name} on {peer_k} datasets")

        def loop(fit_one=fit_one):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # convergence chatter; checked below
                return np.stack([np.asarray(fit_one(X[i], y[i])) for i in range(peer_k)])

        t, threads = H.measure_peer(loop, ctx)
        g.rows.append(H.Row.from_timing(name, "peer", t, work=k, scale=k / peer_k,
                                        extrapolated_from=peer_k, note=threads))
        est[name] = t.out

    # The floor: X'WX + X b for all K fits, per Newton iteration mlejax made.
    sec, how = L.floor_iteration(X, y, est["mlejax fit_batch (newton)"])
    g.rows.append(H.Row(f"floor: X'WX + Xb x {steps.mean():.1f} iterations", "floor",
                        runs=[sec * float(steps.mean())], work=k,
                        note=f"{how}, {sec * 1e3:.1f} ms per iteration for all K"))

    # Same optimum: score every estimate with one log-likelihood.
    ll = {m: L.loglik_np(b, X[: b.shape[0]], y[: b.shape[0]]) for m, b in est.items()}
    best = np.max(np.stack([v[:peer_k] for v in ll.values()]), axis=0)
    best_full = np.max(np.stack([v for v in ll.values() if v.shape[0] == k]), axis=0)
    for r in g.rows:
        if r.method in ll:
            v = ll[r.method]
            ref = best_full if v.shape[0] == k else best
            frac = float(np.mean(L.same_optimum(v, ref[: v.shape[0]])))
            r.ok = frac >= 0.99
            r.extra["same_optimum_fraction"] = frac
            if frac < 1.0:
                r.note = (r.note + "; " if r.note else "") + f"at the optimum on {frac:.1%}"
    g.check = ("log-likelihood of every estimate (float64 NumPy) within 1e-6 relative of the "
               f"best method's, per fit, on >= 99% of fits (loops: first {peer_k} datasets)")

    s = g.subject()
    rate = s.throughput if s else None

    def speedup(method):
        r = g.row(method)
        return g.ratios(r).get("speedup") if r is not None and r.runs else None

    floor_ratio = g.ratios(g.rows[-1]).get("vs_floor")
    g.targets += [
        H.Target("fits per second", rate, ">=", 20_000, unit="fits/s"),
        H.Target("vs statsmodels Logit loop", speedup("statsmodels Logit loop"), ">=", 20),
        H.Target("vs hand-written JAX Newton", speedup("hand-written jit+vmap Newton"), ">=",
                 2.5),
        H.Target("time / flop floor", floor_ratio, "<=", 3),
        H.Target("compile", s.compile_s if s else None, "<=", 3, unit="s"),
    ]
    return [g]
