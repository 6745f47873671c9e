"""mixed: random effects integrated out by the Laplace approximation (issue 22).

1. A linear mixed model: 1,000 groups of 10 observations (50 groups with ``--quick``), a
   random intercept per group, three fixed effects (intercept and two normal covariates),
   fitted by maximum likelihood: mlejax ``fit(..., random=RandomEffects(["u"],
   grouped=True))`` (Newton outside; for a Gaussian joint the Laplace approximation is
   exact) against statsmodels ``MixedLM(y, X, groups).fit(reml=False)``. Same optimum: the
   two log-likelihoods within 1e-6 (relative); statsmodels' ``llf`` with ``reml=False`` is
   the ML log-likelihood with all its constants (``-n/2 log 2 pi`` included), the same
   quantity as mlejax's ``loglik`` of the joint written with ``norm.logpdf`` (they agree
   to about 1e-12 on this problem). Measured once, whatever ``--sizes``.
2. A random-intercept logistic regression with G groups of 5 observations (``--sizes`` sets
   G; 100,000 by default, 1,000 with ``--quick``), one covariate: mlejax ``fit`` with
   ``grouped=True``. No likelihood peer (statsmodels' ``BinomialBayesMixedGLM`` is a
   variational Bayes fit, not this likelihood). Check: mlejax's ``loglik`` equals the Laplace
   marginal recomputed at its estimate by an independent NumPy code (each group's mode by
   Newton, vectorised over groups), to 1e-8 relative, and the fit converged. Peak memory:
   a fresh process (``sys.executable``) builds the same data, records its resident memory
   (``VmRSS``), fits once (compilation included) and reports its peak resident memory
   (``ru_maxrss``; on a GPU also the device's ``peak_bytes_in_use``): the suite itself
   measures memory for no other workload, and a process of its own keeps the other
   workloads' memory out of the figure.
3. K = 1,000 small GLMMs (K = 20 with ``--quick``): random-intercept logistic regressions
   of 20 groups x 5 observations, one program by ``fit_batch(..., random=
   RandomEffects(["u"], grouped=True))``: fits per second; against a loop of ``mj.fit`` on
   the first ``peer_k`` datasets (one model at a time, compiled once; scaled to K), the
   reference. Same optimum: the same log-likelihood (1e-6 relative) on >= 99% of the
   datasets looped, and the batch's log-likelihoods equal the NumPy Laplace marginal at
   its estimates (1e-8 relative). With 20 groups, some datasets (about 7%) have their
   maximum at sd = 0, outside the open parameter space: mlejax reports those fits
   ``NOT_ATTAINED`` (sd near 0); they count among the K fits like the others. Measured
   once, whatever ``--sizes``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import harness as H

NAME = "mixed"
SIZE_NAME = "G"
DEFAULT_SIZES = (100_000,)
QUICK_SIZES = (1_000,)
# No TARGET_SIZE: the one target (the linear mixed model against statsmodels) does not depend
# on G, so the suite keeps it whatever --sizes.
OBS_PER_GROUP = 5          # the logistic GLMMs (parts 2 and 3)
LMM_GROUPS, LMM_QUICK_GROUPS, LMM_OBS = 1_000, 50, 10
BATCH_K, BATCH_QUICK_K, BATCH_GROUPS = 1_000, 20, 20


# ------------------------------------------------------------------------------ models
def lmm_joint(p, d):
    """Linear mixed model, random intercept: y = X beta + u[g] + e."""
    X, y, g = d
    mu = X @ p["beta"] + p["u"][g]
    return (jnp.sum(jax.scipy.stats.norm.logpdf(y, mu, p["sd_e"]))
            + jnp.sum(jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["sd_u"])))


def glmm_joint(p, d):
    """Random-intercept logistic regression: logit P(y = 1) = b0 + b1 x + u[g]."""
    x, y, g = d
    eta = p["b0"] + p["b1"] * x + p["u"][g]
    return (jnp.sum(y * eta - jnp.logaddexp(0.0, eta))
            + jnp.sum(jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["sd"])))


GROUPED = None   # mj.RandomEffects(["u"], grouped=True), made on first use (import order)


def _spec():
    global GROUPED
    if GROUPED is None:
        import mlejax as mj

        GROUPED = mj.RandomEffects(["u"], grouped=True)
    return GROUPED


def lmm_data(groups: int, m: int = LMM_OBS, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = groups * m
    g = np.repeat(np.arange(groups), m)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    u = 0.8 * rng.normal(size=groups)
    y = X @ np.array([1.0, 0.5, -0.3]) + u[g] + 1.2 * rng.normal(size=n)
    return X, y, g


def glmm_data(groups: int, m: int = OBS_PER_GROUP, seed: int = 0, k: int | None = None):
    """(x, y, g) of a random-intercept logistic model (b0 = -0.5, b1 = 1, sd = 1); with
    ``k``, K datasets stacked on a leading axis (g repeated)."""
    rng = np.random.default_rng(seed)
    shape = (groups * m,) if k is None else (k, groups * m)
    g = np.broadcast_to(np.repeat(np.arange(groups), m), shape).copy()
    x = rng.normal(size=shape)
    u = rng.normal(size=shape[:-1] + (groups,))
    eta = -0.5 + x + np.take_along_axis(u, g, axis=-1)
    y = (rng.uniform(size=shape) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return x, y, g


def glmm_init(groups: int) -> dict:
    return {"b0": 0.0, "b1": 0.0, "u": jnp.zeros(groups), "sd": 1.0}


def fit_glmm(data, groups: int):
    import mlejax as mj

    return mj.fit(glmm_joint, glmm_init(groups), data, random=_spec(),
                  constraints={"sd": mj.positive}, warn=False)


def laplace_np(b0, b1, sd, x, y, g, groups: int) -> np.ndarray:
    """The Laplace marginal log-likelihood of the logistic GLMM, per dataset, in NumPy.

    Independent of mlejax: each group's mode of ``sum_j [y eta - log(1 + e^eta)] +
    log N(u; 0, sd)`` by Newton's method (vectorised over groups and datasets), then
    ``f(u_hat) + log(2 pi) / 2 - log(A) / 2`` summed over groups. Leading axes of ``x``,
    ``y``, ``g`` (and of ``b0``, ``b1``, ``sd``) are datasets.
    """
    x, y, g = (np.asarray(a) for a in (x, y, g))
    lead = x.shape[:-1]
    b0, b1, sd = (np.broadcast_to(np.asarray(v, np.float64), lead)[..., None]
                  for v in (b0, b1, sd))
    flat = (np.arange(int(np.prod(lead, dtype=np.int64))).reshape(lead + (1,)) * groups
            + g).ravel()
    nb = int(np.prod(lead, dtype=np.int64)) * groups
    fixed = (b0 + b1 * x).ravel()
    yv = y.ravel()
    s2 = np.broadcast_to(sd ** 2, lead + (groups,)).ravel()
    u = np.zeros(nb)

    def parts(u):
        eta = fixed + u[flat]
        p = 1.0 / (1.0 + np.exp(-eta))
        grad = np.bincount(flat, yv - p, nb) - u / s2
        a = np.bincount(flat, p * (1.0 - p), nb) + 1.0 / s2
        return eta, grad, a

    for _ in range(100):
        _, grad, a = parts(u)
        step = grad / a
        u = u + step
        if np.max(np.abs(step)) < 1e-13:
            break
    eta, _, a = parts(u)
    f = (np.bincount(flat, yv * eta - np.logaddexp(0.0, eta), nb)
         - 0.5 * u ** 2 / s2 - 0.5 * np.log(2 * np.pi * s2))
    per_group = f + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(a)
    return per_group.reshape(lead + (groups,)).sum(axis=-1)


def _rel(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) / np.maximum(np.abs(b), 1.0)


# --------------------------------------------------------------------- 1. linear mixed
def _lmm(ctx: H.Context, size: int) -> H.Group:
    import mlejax as mj

    groups = LMM_QUICK_GROUPS if ctx.quick else LMM_GROUPS
    m = LMM_OBS
    X, y, g = lmm_data(groups, m)
    data = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(g))
    init = {"beta": jnp.zeros(3), "u": jnp.zeros(groups), "sd_u": 1.0, "sd_e": 1.0}
    grp = H.Group(NAME, f"linear mixed model, {groups:,} groups x {m}, 3 fixed effects, ML",
                  unit="fit", params={"size": size, "groups": groups, "obs_per_group": m,
                                      "fixed": 3, "dtype": "float64"})

    ctx.log(f"  {NAME} LMM {groups} groups: mlejax fit(random=grouped)")

    def mine():
        return mj.fit(lmm_joint, init, data, random=_spec(), warn=False,
                      constraints={"sd_u": mj.positive, "sd_e": mj.positive})

    t = H.measure(mine, ctx, compiled=True)
    res = t.out
    ll = float(res.loglik)
    subj = H.Row.from_timing(
        "mlejax fit (Laplace, grouped; newton)", "mlejax", t, work=1, subject=True,
        note=f"{int(res.n_steps)} Newton steps, status {int(res.status)}, loglik {ll:.10g}")
    grp.rows.append(subj)

    name = "statsmodels MixedLM(reml=False)"
    sm = H.optional("statsmodels.api")
    if sm is None:
        grp.rows.append(H.Row(name, "peer", skipped="statsmodels is not installed"))
        return grp
    ctx.log(f"  {NAME} LMM {groups} groups: {name}")
    model = sm.MixedLM(y, X, groups=g)

    def peer():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # convergence chatter; the optimum is checked
            return model.fit(reml=False)

    tp, threads = H.measure_peer(peer, ctx)
    llf = float(tp.out.llf)
    rel = float(_rel(ll, llf))
    same = bool(rel <= 1e-6)
    subj.ok = same and bool(res.converged)
    grp.rows.append(H.Row.from_timing(
        name, "peer", tp, work=1, ok=same,
        note=f"llf {llf:.10g} (relative difference {rel:.1e}), "
             f"converged {bool(tp.out.converged)}; {threads}"))
    grp.check = ("mlejax's log-likelihood and statsmodels' llf (ML, reml=False, the same "
                 "constants) within 1e-6 relative")
    grp.targets.append(H.Target("vs statsmodels MixedLM", grp.ratios(grp.rows[-1]).get(
        "speedup"), ">=", 10, note="issue 22"))
    return grp


# ------------------------------------------------------------------- 2. logistic GLMM
CHILD = r"""
import json, os, resource, sys, time
groups = int(sys.argv[1])
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import mlejax as mj
from benchmarks.workloads import mixed as M

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None

x, y, g = M.glmm_data(groups)
data = tuple(jnp.asarray(a) for a in (x, y, g))
jax.block_until_ready(data)
before = rss_mb()
t0 = time.perf_counter()
res = M.fit_glmm(data, groups)
jax.block_until_ready(res.params)
wall = time.perf_counter() - t0
# ru_maxrss: KiB on Linux, bytes on macOS
scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
dev = jax.devices()[0]
stats = dev.memory_stats() if dev.platform != "cpu" else None
print("MIXEDMEM " + json.dumps({
    "rss_before_fit_mb": before, "peak_rss_mb": peak, "first_fit_s": wall,
    "device_peak_mb": (stats or {}).get("peak_bytes_in_use", 0) / 2**20 if stats else None,
    "status": int(res.status), "loglik": float(res.loglik)}))
"""


def _memory_child(groups: int, ctx: H.Context) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])   # this checkout's mlejax and benchmarks
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    plat = {"gpu": "cuda", "cpu": "cpu"}.get(ctx.device)
    if plat:
        env["JAX_PLATFORMS"] = plat
    out = subprocess.run([sys.executable, "-c", CHILD, str(groups)], env=env,
                         capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("MIXEDMEM "):
            return json.loads(line[len("MIXEDMEM "):])
    raise RuntimeError(f"the mixed memory child failed (exit {out.returncode}):\n"
                       f"{out.stderr[-2000:]}")


def _glmm(groups: int, ctx: H.Context) -> H.Group:
    m = OBS_PER_GROUP
    x, y, g = glmm_data(groups, m)
    data = tuple(jnp.asarray(a) for a in (x, y, g))
    grp = H.Group(NAME, f"logistic GLMM, G={groups:,} groups x {m}, random intercept",
                  unit="fit", params={"size": groups, "groups": groups, "obs_per_group": m,
                                      "dtype": "float64"})
    ctx.log(f"  {NAME} G={groups}: mlejax fit(random=grouped)")
    t = H.measure(lambda: fit_glmm(data, groups), ctx, compiled=True)
    res = t.out
    p = {k: float(v) for k, v in res.params.items()}
    ll = float(res.loglik)
    ref = float(laplace_np(p["b0"], p["b1"], p["sd"], x, y, g, groups))
    rel = float(_rel(ll, ref))
    row = H.Row.from_timing(
        "mlejax fit (Laplace, grouped; newton)", "mlejax", t, work=1, subject=True,
        ok=bool(rel <= 1e-8) and bool(res.converged),
        note=f"{int(res.n_steps)} Newton steps, status {int(res.status)}; b0 {p['b0']:.3f} "
             f"b1 {p['b1']:.3f} sd {p['sd']:.3f} (true -0.5, 1, 1)")
    row.extra.update(loglik=ll, loglik_numpy_laplace=ref)
    grp.rows.append(row)
    grp.check = (f"no peer: converged, and the log-likelihood equals the NumPy Laplace "
                 f"marginal at the estimate (relative difference {rel:.1e}, <= 1e-8)")

    ctx.log(f"  {NAME} G={groups}: peak memory in a fresh process")
    try:
        mem = _memory_child(groups, ctx)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        grp.notes.append(f"peak memory not measured: {str(e).splitlines()[0]}")
        return grp
    row.extra["memory"] = mem
    data_mb = sum(a.nbytes for a in (x, y, g)) / 2**20
    dev = (f"; device peak {mem['device_peak_mb']:,.0f} MiB"
           if mem.get("device_peak_mb") is not None else "")
    row.note += f"; peak RSS {mem['peak_rss_mb']:,.0f} MiB"
    grp.notes.append(
        f"memory (a fresh process: data, then one fit with its compilation): peak resident "
        f"{mem['peak_rss_mb']:,.0f} MiB, {mem['rss_before_fit_mb']:,.0f} MiB before the fit "
        f"(Python, JAX, the data: {data_mb:,.1f} MiB as NumPy); the fit added "
        f"{mem['peak_rss_mb'] - mem['rss_before_fit_mb']:,.0f} MiB at most{dev}; that "
        f"process's first fit {mem['first_fit_s']:.2f} s")
    return grp


# ------------------------------------------------------------------- 3. K small GLMMs
def _batch(ctx: H.Context, size: int) -> H.Group:
    import mlejax as mj

    k = BATCH_QUICK_K if ctx.quick else BATCH_K
    groups, m = BATCH_GROUPS, OBS_PER_GROUP
    peer_k = min(k, 5 if ctx.quick else 50)
    x, y, g = glmm_data(groups, m, seed=1, k=k)
    data = tuple(jnp.asarray(a) for a in (x, y, g))
    grp = H.Group(NAME, f"K={k:,} logistic GLMMs, {groups} groups x {m}", unit="fit",
                  params={"size": size, "K": k, "groups": groups, "obs_per_group": m,
                          "peer_k": peer_k, "dtype": "float64"})
    ctx.log(f"  {NAME} K={k}: mlejax fit_batch(random=grouped)")
    t = H.measure(lambda: mj.fit_batch(glmm_joint, glmm_init(groups), data, random=_spec(),
                                       constraints={"sd": mj.positive}, warn=False),
                  ctx, compiled=True)
    res = t.out
    ll = np.asarray(res.loglik)
    conv = np.asarray(res.converged)
    ps = {key: np.asarray(v) for key, v in res.params.items()}
    ref = laplace_np(ps["b0"], ps["b1"], ps["sd"], x, y, g, groups)
    rel = _rel(ll, ref)
    ok_np = np.isfinite(ll) & (rel <= 1e-8)
    status = np.asarray(res.status)
    boundary = status == int(mj.Status.NOT_ATTAINED)
    subj = H.Row.from_timing(
        "mlejax fit_batch (Laplace, grouped; newton)", "mlejax", t, work=k, subject=True,
        note=f"converged {np.mean(conv):.1%}, NOT_ATTAINED {np.mean(boundary):.1%}"
             + (f" (sd -> 0: at most {np.max(ps['sd'][boundary]):.0e})" if boundary.any()
                else "")
             + f"; Newton steps mean {np.mean(np.asarray(res.n_steps)):.1f}")
    grp.rows.append(subj)

    ctx.log(f"  {NAME} K={k}: loop of mlejax fit on {peer_k} datasets")

    def loop():
        out = []
        for j in range(peer_k):
            r = fit_glmm(tuple(a[j] for a in data), groups)
            out.append(float(r.loglik))
        return np.asarray(out)

    tl = H.measure(loop, ctx, compiled=True)
    same = ll[:peer_k] >= tl.out - 1e-6 * np.maximum(np.abs(tl.out), 1.0)
    frac = float(np.mean(same))
    subj.ok = frac >= 0.99 and float(np.mean(ok_np)) >= 0.99
    subj.extra.update(same_optimum_fraction=frac, numpy_laplace_fraction=float(np.mean(ok_np)))
    grp.rows.append(H.Row.from_timing(
        "mlejax fit loop (one model at a time)", "reference", tl, work=k, scale=k / peer_k,
        extrapolated_from=peer_k, ok=frac >= 0.99,
        note=f"same loglik as the batch on {frac:.0%}"))
    grp.check = (f"the batch's log-likelihood >= the loop's - 1e-6 (relative) on >= 99% of the "
                 f"first {peer_k} datasets ({frac:.0%}), and equal to the NumPy Laplace "
                 f"marginal at its estimates (1e-8 relative) on >= 99% of the K "
                 f"({np.mean(ok_np):.1%})")
    return grp


def run(groups: int, ctx: H.Context) -> list[H.Group]:
    out = []
    if ctx.once("mixed lmm"):     # its size does not follow --sizes: measured once
        out.append(_lmm(ctx, groups))
    out.append(_glmm(groups, ctx))
    if ctx.once("mixed batch"):
        out.append(_batch(ctx, groups))
    return out
