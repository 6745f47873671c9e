"""big_logistic: one logistic regression, n = 1,000,000 observations, d = 20 columns.

mlejax ``fit`` (trust-region Newton; the subject sums the data in chunks of 1,000
observations, ``obs_chunk=1000``, and the default whole-data fit is shown too) against
statsmodels ``Logit`` (Newton) and scikit-learn ``LogisticRegression`` (unpenalised;
``newton-cholesky`` and ``lbfgs`` at their default tolerance), with the hand-written JAX
Newton as the plain-JAX reference. The floor is one ``X'WX`` plus ``X b`` (the fastest of
JAX and NumPy) per Newton iteration mlejax made.

Same optimum: the log-likelihood of every estimate within 1e-6 (relative) of the best.
Accuracy (the issue's "tighter accuracy"): the largest gradient component ``|X'(y - p)|``
per observation at each estimate, and its log-likelihood below the best.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from .. import harness as H
from . import _logistic as L

NAME = "big_logistic"
SIZE_NAME = "n"
DEFAULT_SIZES = (1_000_000,)
QUICK_SIZES = (20_000,)
TARGET_SIZE = 1_000_000
D = 20
OBS_CHUNK = 1_000   # observations per chunk of the subject's fit (fit(obs_chunk=...))


def make_data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([np.ones((n, 1)), rng.normal(size=(n, d - 1))], axis=1)
    beta = np.linspace(-0.5, 0.5, d)
    p = 1.0 / (1.0 + np.exp(-(X @ beta)))
    y = (rng.uniform(size=n) < p).astype(np.float64)
    return X, y


def grad_per_obs(beta, X, y) -> float:
    """``max |X'(y - p)| / n`` at ``beta``: zero at the exact optimum."""
    p = 1.0 / (1.0 + np.exp(-(X @ np.asarray(beta, np.float64))))
    return float(np.max(np.abs(X.T @ (y - p))) / X.shape[0])


def run(n: int, ctx: H.Context) -> list[H.Group]:
    import mlejax as mj

    d = D
    X, y = make_data(n, d)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    g = H.Group(NAME, f"n={n:,}, d={d}", unit="fit",
                params={"size": n, "n": n, "d": d, "dtype": "float64"})
    est = {}

    # The subject: the Newton fit with the data summed in chunks of observations (the
    # option for large n); the default fit (the whole data in one pass) is the next row.
    subj = None
    for label, kw in ((f"mlejax fit (newton, obs_chunk={OBS_CHUNK:,})", {"obs_chunk": OBS_CHUNK}),
                      ("mlejax fit (newton)", {})):
        ctx.log(f"  {NAME} n={n}: {label}")
        t = H.measure(lambda kw=kw: mj.fit(L.logistic_loglik, {"beta": jnp.zeros(d)}, (Xj, yj),
                                           warn=False, **kw), ctx, compiled=True)
        res = t.out
        row = H.Row.from_timing(label, "mlejax", t, subject=subj is None,
                                note=f"{mj.Status(int(res.status)).name}, "
                                     f"{int(res.n_steps)} Newton steps")
        g.rows.append(row)
        est[row.method] = np.asarray(res.params["beta"])
        if subj is None:
            subj, steps = row, int(res.n_steps)

    ctx.log(f"  {NAME} n={n}: hand-written JAX Newton")
    t = H.measure(lambda: L.newton_single(Xj, yj), ctx, compiled=True)
    g.rows.append(H.Row.from_timing("hand-written jit Newton", "reference", t,
                                    note=f"{int(t.out[1])} steps"))
    est["hand-written jit Newton"] = np.asarray(t.out[0])

    sm = H.optional("statsmodels.api")
    name = "statsmodels Logit (newton)"
    if sm is None:
        g.rows.append(H.Row(name, "peer", skipped="statsmodels is not installed"))
    else:
        ctx.log(f"  {NAME} n={n}: {name}")
        t, threads = H.measure_peer(lambda: sm.Logit(y, X).fit(disp=0), ctx)
        g.rows.append(H.Row.from_timing(name, "peer", t,
                                        note=f"{t.out.mle_retvals.get('iterations', '?')} "
                                             f"iterations, {threads}"))
        est[name] = np.asarray(t.out.params)

    lm = H.optional("sklearn.linear_model")
    for solver in ("newton-cholesky", "lbfgs"):
        name = f"scikit-learn {solver}"
        if lm is None:
            g.rows.append(H.Row(name, "peer", skipped="scikit-learn is not installed"))
            continue
        ctx.log(f"  {NAME} n={n}: {name}")

        def sk(solver=solver):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # ConvergenceWarning: accuracy shown below
                return lm.LogisticRegression(C=np.inf, fit_intercept=False,
                                             solver=solver).fit(X, y)

        t, threads = H.measure_peer(sk, ctx)
        g.rows.append(H.Row.from_timing(name, "peer", t,
                                        note=f"default tol, {int(t.out.n_iter_[0])} "
                                             f"iterations, {threads}"))
        est[name] = np.asarray(t.out.coef_[0])

    sec, how = L.floor_iteration(X, y, est[subj.method])
    g.rows.append(H.Row(f"floor: X'WX + Xb x {steps} iterations", "floor",
                        runs=[sec * steps],
                        note=f"{how}, {sec * 1e3:.1f} ms per iteration"))

    ll = {m: float(L.loglik_np(b, X, y)) for m, b in est.items()}
    best = max(ll.values())
    for r in g.rows:
        if r.method in est:
            gr = grad_per_obs(est[r.method], X, y)
            gap = best - ll[r.method]
            r.ok = bool(L.same_optimum(ll[r.method], best))
            r.extra.update(grad_per_obs=gr, loglik=ll[r.method], loglik_below_best=gap)
            r.note = (r.note + "; " if r.note else "") + \
                f"max|grad|/n {gr:.1e}, loglik {gap:.1e} below best"
    g.check = ("log-likelihood of every estimate (float64 NumPy) within 1e-6 relative of the "
               "best; accuracy = max|X'(y-p)|/n at the estimate")

    floor_ratio = g.ratios(g.rows[-1]).get("vs_floor")
    sk_rows = [r for r in g.rows if r.method.startswith("scikit-learn") and r.runs]
    fastest = min(sk_rows, key=lambda r: r.median) if sk_rows else None
    g.targets.append(H.Target("time per Newton iteration / X'WX floor", floor_ratio, "<=", 1.1))
    if fastest is not None:
        g.targets.append(H.Target(f"vs fastest scikit-learn ({fastest.method[13:]})",
                                  g.ratios(fastest).get("speedup"), ">=", 1.0))
        acc = fastest.extra["grad_per_obs"] / max(subj.extra["grad_per_obs"], 1e-300)
        g.targets.append(H.Target("accuracy: its max|grad| / mlejax's", acc, ">=", 1.0,
                                  note="above 1: mlejax's estimate is the more accurate"))
    return [g]
