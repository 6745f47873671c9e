"""gmm: Gaussian mixtures by EM, mlejax against scikit-learn's ``GaussianMixture``.

1. One mixture: n points (default 1,000,000), d = 2, k = 5, full covariances, 100 EM
   iterations from the same initial parameters in every method (data and start as in
   ``bench_gmm.py``). mlejax ``GaussianMixture(ftol=0)``; a hand-written JAX EM (the
   plain-JAX reference); scikit-learn with ``tol=0`` from the same start. Compared per EM
   iteration; for n >= 200,000 scikit-learn runs 20 iterations (its time per iteration does
   not change along the way). Same optimum: scikit-learn's log-likelihood after its last
   iteration equals mlejax's trace at that iteration to 1e-6 (relative), and the
   hand-written EM's final value equals mlejax's.
2. K = 1,000 small mixtures (n = 500, d = 2, k = 3; K = 20 with ``--quick``), each from the
   same start in both libraries (3 of its points as means, equal weights, the diagonal of
   its covariance), at most 100 iterations: mlejax ``fit_batch`` (``ftol=1e-7``,
   ``xtol=inf``) against a loop of scikit-learn (``tol=1e-6`` on the mean log-likelihood,
   about as strict), timed on the first ``peer_k`` datasets and scaled. Same optimum: final
   log-likelihoods within 1e-5 (relative) on at least 95% of the datasets (EM from the same
   start, stopped by two slightly different rules).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .. import harness as H
from ..bench_gmm import _mixture_data

NAME = "gmm"
SIZE_NAME = "n"
DEFAULT_SIZES = (1_000_000,)
QUICK_SIZES = (10_000,)
TARGET_SIZE = 1_000_000


def _start(x, k, rng):
    n, d = x.shape
    return {"weights": np.full(k, 1.0 / k), "means": x[rng.choice(n, k, replace=False)],
            "covariances": np.tile(np.cov(x.T) * np.eye(d), (k, 1, 1))}


def hand_em(x, weights, means, covs, iters: int, reg: float = 1e-6):
    """A plain JAX EM for full-covariance Gaussian mixtures: ``iters`` iterations, no tests.

    The log-densities through the inverse Cholesky factor applied to the data (one small
    contraction), the covariances from the weighted second moments. Returns the parameters
    and the log-likelihood at them.
    """
    d = x.shape[1]
    eye = jnp.eye(d, dtype=x.dtype)

    def joint(w, mu, cov):                                                  # (k, n)
        chol = jnp.linalg.cholesky(cov)
        pchol = jnp.linalg.inv(chol)                                        # (k, d, d)
        z = (jnp.einsum("nd,ked->ken", x, pchol)
             - jnp.einsum("kd,ked->ke", mu, pchol)[:, :, None])             # (k, d, n)
        logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
        return (jnp.log(w)[:, None] - logdet[:, None] - 0.5 * d * jnp.log(2 * jnp.pi)
                - 0.5 * jnp.sum(z * z, axis=1))

    def step(_, p):
        j = joint(*p)
        e = jnp.exp(j - jnp.max(j, axis=0, keepdims=True))
        r = e / jnp.sum(e, axis=0, keepdims=True)                           # (k, n)
        nk = jnp.sum(r, axis=1) + 10 * jnp.finfo(x.dtype).eps
        mu = (r @ x) / nk[:, None]
        second = jnp.einsum("kn,ni,nj->kij", r, x, x) / nk[:, None, None]
        cov = second - mu[:, :, None] * mu[:, None, :] + reg * eye
        return nk / jnp.sum(nk), mu, cov

    w, mu, cov = jax.lax.fori_loop(0, iters, step, (weights, means, covs))
    ll = jnp.sum(jax.scipy.special.logsumexp(joint(w, mu, cov), axis=0))
    return (w, mu, cov), ll


_hand_em = jax.jit(hand_em, static_argnames="iters")


def _large(n: int, ctx: H.Context, sk_cls) -> H.Group:
    import mlejax as mj

    d, k = 2, 5
    iters = 10 if ctx.quick else 100
    rng = np.random.default_rng(0)
    x = _mixture_data(rng, n, d, k)
    init = _start(x, k, rng)
    xj = jnp.asarray(x)
    g = H.Group(NAME, f"n={n:,}, d={d}, k={k}, full, {iters} iterations", unit="iteration",
                params={"size": n, "n": n, "d": d, "k": k, "iters": iters, "dtype": "float64"})

    ctx.log(f"  {NAME} n={n}: mlejax GaussianMixture")
    model = mj.GaussianMixture(k, "full", max_steps=iters, ftol=0.0)
    t = H.measure(lambda: model.fit(xj, init=init, warn=False), ctx, compiled=True)
    res = t.out
    steps = int(res.n_steps)
    trace = np.asarray(res.trace)
    subj = H.Row.from_timing("mlejax GaussianMixture", "mlejax", t, work=steps, subject=True,
                             note=f"{steps} iterations, loglik {float(res.loglik):.10g}")
    g.rows.append(subj)

    ctx.log(f"  {NAME} n={n}: hand-written JAX EM")
    args = tuple(jnp.asarray(init[key]) for key in ("weights", "means", "covariances"))
    t = H.measure(lambda: _hand_em(xj, *args, iters=iters), ctx, compiled=True)
    ll_hand = float(t.out[1])
    g.rows.append(H.Row.from_timing(
        "hand-written JAX EM", "reference", t, work=iters,
        ok=abs(ll_hand - trace[iters]) <= 1e-6 * abs(trace[iters]) if steps == iters else None,
        note=f"loglik {ll_hand:.10g}"))

    name = "scikit-learn GaussianMixture"
    if sk_cls is None:
        g.rows.append(H.Row(name, "peer", skipped="scikit-learn is not installed"))
    else:
        peer_iters = min(iters, 20) if n >= 200_000 else iters
        ctx.log(f"  {NAME} n={n}: {name} ({peer_iters} iterations)")

        def sk():
            m = sk_cls(k, covariance_type="full", max_iter=peer_iters, tol=0.0,
                       init_params="random_from_data", weights_init=init["weights"],
                       means_init=init["means"],
                       precisions_init=np.linalg.inv(init["covariances"]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # ConvergenceWarning: tol=0 never stops
                return m.fit(x)

        t, threads = H.measure_peer(sk, ctx)
        ll_sk = float(t.out.score(x) * n)
        ref = trace[int(t.out.n_iter_)]
        g.rows.append(H.Row.from_timing(
            name, "peer", t, work=int(t.out.n_iter_),
            ok=bool(abs(ll_sk - ref) <= 1e-6 * abs(ref)),
            note=f"{int(t.out.n_iter_)} iterations, loglik {ll_sk:.10g} "
                 f"(mlejax at that iteration {ref:.10g}), {threads}"))
        g.targets.append(H.Target("sklearn ms per iteration / mlejax's",
                                  g.ratios(g.rows[-1]).get("speedup"), ">=", 10))
    subj.ok = all(r.ok is not False for r in g.rows if r is not subj)
    g.check = ("same start, same algorithm: log-likelihoods at the same iteration agree to "
               "1e-6 relative (mlejax's trace at scikit-learn's last iteration)")
    return g


def _batch(ctx: H.Context, sk_cls, size: int) -> H.Group:
    import mlejax as mj

    kb = 20 if ctx.quick else 1_000
    nb, kc, d = 500, 3, 2
    peer_k = min(kb, 10 if ctx.quick else 100)
    rng = np.random.default_rng(1)
    xs = np.stack([_mixture_data(rng, nb, d, kc, spread=2.5) for _ in range(kb)])
    starts = [_start(xs[j], kc, rng) for j in range(kb)]
    init = {key: np.stack([s[key] for s in starts]) for key in starts[0]}
    g = H.Group(NAME, f"K={kb:,} mixtures, n={nb}, d={d}, k={kc}", unit="fit",
                params={"size": size, "K": kb, "n": nb, "k": kc, "d": d, "peer_k": peer_k})

    ctx.log(f"  {NAME} K={kb}: mlejax GaussianMixture.fit_batch")
    # Stopping on the change in L alone (xtol=inf), as scikit-learn's tol does: the default
    # also waits for the parameters to stop moving (EM's fixed point), more iterations.
    model = mj.GaussianMixture(kc, "full", max_steps=100, ftol=1e-7, xtol=float("inf"))
    xj = jnp.asarray(xs)
    t = H.measure(lambda: model.fit_batch(xj, init=init, init_batched=True, warn=False), ctx,
                  compiled=True)
    res = t.out
    ll = np.asarray(res.loglik)
    g.rows.append(H.Row.from_timing(
        "mlejax GaussianMixture.fit_batch", "mlejax", t, work=kb, subject=True,
        note=f"mean {np.mean(np.asarray(res.n_steps)):.1f} iterations, converged "
             f"{np.mean(np.asarray(res.converged)):.1%}"))
    name = "scikit-learn GaussianMixture loop"
    if sk_cls is None:
        g.rows.append(H.Row(name, "peer", skipped="scikit-learn is not installed"))
        return g
    ctx.log(f"  {NAME} K={kb}: {name} on {peer_k} datasets")

    def loop():
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(peer_k):
                m = sk_cls(kc, covariance_type="full", max_iter=100, tol=1e-6,
                           weights_init=init["weights"][j], means_init=init["means"][j],
                           precisions_init=np.linalg.inv(init["covariances"][j])).fit(xs[j])
                out.append((m.score(xs[j]) * nb, m.n_iter_))
        return np.asarray(out)

    t, threads = H.measure_peer(loop, ctx)
    ll_sk = t.out[:, 0]
    agree = np.abs(ll_sk - ll[:peer_k]) <= 1e-5 * np.abs(ll_sk)
    frac = float(np.mean(agree))
    g.rows.append(H.Row.from_timing(
        name, "peer", t, work=kb, scale=kb / peer_k, extrapolated_from=peer_k, ok=frac >= 0.95,
        note=f"mean {np.mean(t.out[:, 1]):.1f} iterations; same loglik on {frac:.0%}; "
             f"{threads}"))
    g.rows[0].ok = frac >= 0.95
    g.rows[0].extra["same_optimum_fraction"] = frac
    g.check = ("same start per dataset: final log-likelihoods within 1e-5 relative on >= 95% "
               f"of the first {peer_k} datasets")
    g.targets.append(H.Target("vs scikit-learn loop", g.ratios(g.rows[-1]).get("speedup"),
                              ">=", 50))
    return g


def run(n: int, ctx: H.Context) -> list[H.Group]:
    mix = H.optional("sklearn.mixture")
    sk_cls = None if mix is None else mix.GaussianMixture
    groups = [_large(n, ctx, sk_cls)]
    if ctx.once("gmm batch"):   # its size does not follow --sizes: measured once
        groups.append(_batch(ctx, sk_cls, n))
    return groups
