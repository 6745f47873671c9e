"""zoo: the first call of ten custom likelihoods, each in a fresh process (issue 20).

A researcher fits a one-off model once: what they wait for is the first ``mj.fit`` call,
compilation included. Ten typical custom log-likelihoods, written as a user would write
them (plain JAX, NumPy data, JAX's defaults: float32), on small simulated data:

    zip           zero-inflated Poisson, logit inflation (5 parameters)
    oprobit       ordered probit, 4 categories, cut-points by cumulative exp increments (5)
    tobit         Tobit left-censored at 0 (4)
    garch         GARCH(1,1) by lax.scan (4)
    weibull_aft   Weibull accelerated failure time, right-censored (4)
    irt_2pl       IRT 2PL, 20 items, abilities integrated by Gauss-Hermite (40)
    ri_logit      random-intercept logit by Gauss-Hermite quadrature (4)
    frontier      stochastic frontier, normal-half-normal (5)
    mixreg        mixture of two linear regressions by ``mj.em`` (8)
    mnlogit       multinomial logit, 4 alternatives (9)

Each model runs in a new interpreter (``sys.executable``). Imports are excluded; the child
times the first call (``mj.fit`` or ``mj.em`` with ``block_until_ready`` on the estimates
and standard errors), then a second call on new data of the same shapes, then the peer
(``scipy.optimize.minimize`` BFGS on the same negative log-likelihood written in NumPy,
finite-difference gradient, or a statsmodels model where one exists) on both datasets.
During the first call JAX's monitoring events are recorded: how many programs were
traced, lowered and compiled by XLA, and how long each took, so the table separates XLA
compile time from the rest (Python tracing of the user's function and of mlejax's program,
the checks before the fit, the run).

Two settings, as in ``latency``: JAX's persistent compilation cache off, and on and warm
(a priming process fills a fresh cache folder with the same model first; the cache is set
by ``mj.enable_compilation_cache(path)`` in the child, the one-line opt-in).

Same optimum: the log-likelihood of mlejax's estimate and of the peer's, both evaluated by
the NumPy function in float64, agree within ``1e-5 |ll| + 1e-3`` (or mlejax's is higher).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import harness as H

NAME = "zoo"
SIZE_NAME = "n"
DEFAULT_SIZES = (1_000,)
QUICK_SIZES = (200,)
TARGET_SIZE = 1_000

MODELS = ("zip", "oprobit", "tobit", "garch", "weibull_aft", "irt_2pl", "ri_logit",
          "frontier", "mixreg", "mnlogit")


# --------------------------------------------------------------------------- the models
# Each builder returns a dict: ``data(seed)`` (the JAX fit's data, NumPy float32/int32),
# ``loglik`` (JAX), ``init``, ``constraints``, ``em`` (True: fitted by mj.em), and the
# peer: ``ll_np(params, data)`` (NumPy float64, natural parameters as a dict of arrays),
# ``unpack(theta)`` (the peer's unconstrained vector to natural parameters), ``theta0``,
# or ``peer(data) -> params`` for a statsmodels model.

def _gh(q):
    """Gauss-Hermite nodes and log weights for an expectation over N(0, 1)."""
    import numpy as np

    x, w = np.polynomial.hermite_e.hermegauss(q)
    return x, np.log(w / np.sqrt(2 * np.pi))


def _log_sigmoid_np(x):
    import numpy as np

    return -np.logaddexp(0.0, -x)


def _zip(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import gammaln

    import mlejax as mj

    def data(seed):
        rng = np.random.default_rng(seed)
        X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
        Z = np.column_stack([np.ones(n), rng.normal(size=n)])
        lam = np.exp(X @ [0.5, 0.3, -0.4])
        pi = 1 / (1 + np.exp(-(Z @ [-0.5, 0.8])))
        y = np.where(rng.uniform(size=n) < pi, 0, rng.poisson(lam))
        return {"X": X.astype(np.float32), "Z": Z.astype(np.float32), "y": y.astype(np.int32)}

    def loglik(p, d):
        y = d["y"]
        eta = d["X"] @ p["beta"]
        zeta = d["Z"] @ p["gamma"]
        log_pois = y * eta - jnp.exp(eta) - jax.scipy.special.gammaln(y + 1.0)
        zero = jnp.logaddexp(jax.nn.log_sigmoid(zeta), jax.nn.log_sigmoid(-zeta) - jnp.exp(eta))
        return jnp.where(y == 0, zero, jax.nn.log_sigmoid(-zeta) + log_pois)

    def ll_np(p, d):
        y, eta, zeta = d["y"], d["X"] @ p["beta"], d["Z"] @ p["gamma"]
        log_pois = y * eta - np.exp(eta) - gammaln(y + 1.0)
        zero = np.logaddexp(_log_sigmoid_np(zeta), _log_sigmoid_np(-zeta) - np.exp(eta))
        return float(np.sum(np.where(y == 0, zero, _log_sigmoid_np(-zeta) + log_pois)))

    def peer(d):
        from statsmodels.discrete.count_model import ZeroInflatedPoisson

        r = ZeroInflatedPoisson(d["y"], d["X"], exog_infl=d["Z"], inflation="logit").fit(
            method="bfgs", maxiter=500, disp=0)
        return {"gamma": r.params[:2], "beta": r.params[2:]}

    return dict(data=data, loglik=loglik, init={"beta": np.zeros(3, np.float32),
                                                "gamma": np.zeros(2, np.float32)},
                constraints=None, ll_np=ll_np, peer=peer, peer_name="statsmodels ZeroInflatedPoisson (bfgs)")


def _oprobit(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import ndtr

    k = 4

    def data(seed):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, 2))
        ystar = X @ [0.8, -0.5] + rng.normal(size=n)
        y = np.searchsorted(np.array([-0.5, 0.3, 1.2]), ystar)
        return {"X": X.astype(np.float32), "y": y.astype(np.int32)}

    def cuts(p, xp):
        return xp.concatenate([xp.reshape(p["cut0"], (1,)),
                               p["cut0"] + xp.cumsum(xp.exp(p["dcut"]))])

    def loglik(p, d):
        y, xb = d["y"], d["X"] @ p["beta"]
        c = cuts(p, jnp)
        upper = jnp.where(y == k - 1, 1.0,
                          jax.scipy.stats.norm.cdf(c[jnp.minimum(y, k - 2)] - xb))
        lower = jnp.where(y == 0, 0.0, jax.scipy.stats.norm.cdf(c[jnp.maximum(y - 1, 0)] - xb))
        return jnp.log(upper - lower)

    def ll_np(p, d):
        y, xb, c = d["y"], d["X"] @ p["beta"], cuts(p, np)
        upper = np.where(y == k - 1, 1.0, ndtr(c[np.minimum(y, k - 2)] - xb))
        lower = np.where(y == 0, 0.0, ndtr(c[np.maximum(y - 1, 0)] - xb))
        return float(np.sum(np.log(upper - lower)))

    def peer(d):
        from statsmodels.miscmodels.ordinal_model import OrderedModel

        r = OrderedModel(d["y"], d["X"], distr="probit").fit(method="bfgs", maxiter=500,
                                                             disp=0)
        return {"beta": r.params[:2], "cut0": r.params[2], "dcut": r.params[3:]}

    init = {"beta": np.zeros(2, np.float32), "cut0": np.float32(-1.0),
            "dcut": np.zeros(2, np.float32)}
    return dict(data=data, loglik=loglik, init=init, constraints=None, ll_np=ll_np,
                peer=peer, peer_name="statsmodels OrderedModel probit (bfgs)")


def _regressors(rng, n):
    import numpy as np

    return np.column_stack([np.ones(n), rng.normal(size=(n, 2))])


def _tobit(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import log_ndtr

    def data(seed):
        rng = np.random.default_rng(seed)
        X = _regressors(rng, n)
        y = np.maximum(0.0, X @ [-0.2, 1.0, 0.5] + rng.normal(size=n))
        return {"X": X.astype(np.float32), "y": y.astype(np.float32)}

    def loglik(p, d):
        xb = d["X"] @ p["beta"]
        return jnp.where(d["y"] <= 0, jax.scipy.special.log_ndtr(-xb / p["sigma"]),
                         jax.scipy.stats.norm.logpdf(d["y"], xb, p["sigma"]))

    def ll_np(p, d):
        xb, s = d["X"] @ p["beta"], p["sigma"]
        z = (d["y"] - xb) / s
        return float(np.sum(np.where(d["y"] <= 0, log_ndtr(-xb / s),
                                     -0.5 * np.log(2 * np.pi) - np.log(s) - 0.5 * z * z)))

    return _beta_sigma(data, loglik, ll_np)


def _beta_sigma(data, loglik, ll_np):
    """The spec of a model with 3 coefficients and a positive scale (tobit, random-intercept
    logit, stochastic frontier): init, constraint, and the peer's unconstrained vector."""
    import numpy as np

    import mlejax as mj

    return dict(data=data, loglik=loglik, init={"beta": np.zeros(3, np.float32),
                                                "sigma": np.float32(1.0)},
                constraints={"sigma": mj.positive}, ll_np=ll_np,
                unpack=lambda t: {"beta": t[:3], "sigma": np.exp(t[3])}, theta0=np.zeros(4))


def _garch(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.signal import lfilter

    import mlejax as mj

    def data(seed):
        rng = np.random.default_rng(seed)
        mu, omega, alpha, beta = 0.05, 0.1, 0.1, 0.8
        h, r = omega / (1 - alpha - beta), np.empty(n)
        for t in range(n):
            r[t] = mu + np.sqrt(h) * rng.normal()
            h = omega + alpha * (r[t] - mu) ** 2 + beta * h
        return r.astype(np.float32)

    def loglik(p, r):
        e = r - p["mu"]
        h0 = jnp.var(r)

        def step(h, e_prev):
            h = p["omega"] + p["alpha"] * e_prev ** 2 + p["beta"] * h
            return h, h

        _, h = jax.lax.scan(step, h0, e[:-1])
        h = jnp.concatenate([h0[None], h])
        return -0.5 * (jnp.log(2 * jnp.pi) + jnp.log(h) + e ** 2 / h)

    def ll_np(p, r):
        e = r - p["mu"]
        x = np.concatenate([[np.var(r)], p["omega"] + p["alpha"] * e[:-1] ** 2])
        h = lfilter([1.0], [1.0, -p["beta"]], x)
        return float(np.sum(-0.5 * (np.log(2 * np.pi) + np.log(h) + e ** 2 / h)))

    def unpack(t):
        return {"mu": t[0], "omega": np.exp(t[1]), "alpha": 1 / (1 + np.exp(-t[2])),
                "beta": 1 / (1 + np.exp(-t[3]))}

    init = {"mu": np.float32(0.0), "omega": np.float32(0.05), "alpha": np.float32(0.05),
            "beta": np.float32(0.9)}
    return dict(data=data, loglik=loglik, init=init,
                constraints={"omega": mj.positive, "alpha": mj.unit_interval,
                             "beta": mj.unit_interval},
                ll_np=ll_np, unpack=unpack,
                theta0=np.array([0.0, np.log(0.05), np.log(0.05 / 0.95), np.log(0.9 / 0.1)]))


def _weibull_aft(n):
    import jax.numpy as jnp
    import numpy as np

    import mlejax as mj

    def data(seed):
        rng = np.random.default_rng(seed)
        X = _regressors(rng, n)
        t_event = np.exp(X @ [1.0, 0.5, -0.3] + 0.7 * np.log(rng.exponential(size=n)))
        censor = rng.exponential(scale=6.0, size=n)
        return {"X": X.astype(np.float32), "t": np.minimum(t_event, censor).astype(np.float32),
                "event": (t_event <= censor).astype(np.float32)}

    def loglik(p, d):
        log_t = jnp.log(d["t"])
        z = (log_t - d["X"] @ p["beta"]) / p["sigma"]
        return d["event"] * (z - jnp.log(p["sigma"]) - log_t) - jnp.exp(z)

    def ll_np(p, d):
        log_t = np.log(d["t"])
        z = (log_t - d["X"] @ p["beta"]) / p["sigma"]
        return float(np.sum(d["event"] * (z - np.log(p["sigma"]) - log_t) - np.exp(z)))

    return _beta_sigma(data, loglik, ll_np)


def _irt_2pl(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import logsumexp

    import mlejax as mj

    items, persons = 20, max(n // 2, 50)
    nodes, logw = _gh(21)

    def data(seed):
        rng = np.random.default_rng(seed)
        a = np.linspace(0.7, 2.0, items)
        b = np.linspace(-1.5, 1.5, items)
        theta = rng.normal(size=persons)
        p = 1 / (1 + np.exp(-a * (theta[:, None] - b)))
        return (rng.uniform(size=p.shape) < p).astype(np.float32)

    def loglik(p, Y):
        logits = p["a"] * (nodes[:, None] - p["b"])            # (quadrature nodes, items)
        ll = Y @ jax.nn.log_sigmoid(logits).T + (1 - Y) @ jax.nn.log_sigmoid(-logits).T
        return jax.scipy.special.logsumexp(ll + logw, axis=1)   # one per person

    def ll_np(p, Y):
        logits = p["a"] * (nodes[:, None] - p["b"])
        ll = Y @ _log_sigmoid_np(logits).T + (1 - Y) @ _log_sigmoid_np(-logits).T
        return float(np.sum(logsumexp(ll + logw, axis=1)))

    return dict(data=data, loglik=loglik, init={"a": np.ones(items, np.float32),
                                                "b": np.zeros(items, np.float32)},
                constraints={"a": mj.positive}, ll_np=ll_np,
                unpack=lambda t: {"a": np.exp(t[:items]), "b": t[items:]},
                theta0=np.zeros(2 * items))


def _ri_logit(n):
    import jax
    import numpy as np
    from scipy.special import logsumexp

    m = 10
    groups = max(n // m, 10)
    nodes, logw = _gh(15)

    def data(seed):
        rng = np.random.default_rng(seed)
        X = np.concatenate([np.ones((groups, m, 1)), rng.normal(size=(groups, m, 2))], axis=2)
        u = 0.8 * rng.normal(size=(groups, 1))
        eta = X @ [-0.3, 0.7, -0.5] + u
        y = rng.uniform(size=eta.shape) < 1 / (1 + np.exp(-eta))
        return {"X": X.astype(np.float32), "y": y.astype(np.float32)}

    def loglik(p, d):
        eta = (d["X"] @ p["beta"])[..., None] + p["sigma"] * nodes   # (groups, m, nodes)
        y = d["y"][..., None]
        ll = y * jax.nn.log_sigmoid(eta) + (1 - y) * jax.nn.log_sigmoid(-eta)
        return jax.scipy.special.logsumexp(ll.sum(axis=1) + logw, axis=1)   # one per group

    def ll_np(p, d):
        eta = (d["X"] @ p["beta"])[..., None] + p["sigma"] * nodes
        y = d["y"][..., None]
        ll = y * _log_sigmoid_np(eta) + (1 - y) * _log_sigmoid_np(-eta)
        return float(np.sum(logsumexp(ll.sum(axis=1) + logw, axis=1)))

    return _beta_sigma(data, loglik, ll_np)


def _frontier(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import log_ndtr

    import mlejax as mj

    def data(seed):
        rng = np.random.default_rng(seed)
        X = _regressors(rng, n)
        y = X @ [1.0, 0.5, 0.3] + 0.3 * rng.normal(size=n) - np.abs(0.5 * rng.normal(size=n))
        return {"X": X.astype(np.float32), "y": y.astype(np.float32)}

    def loglik(p, d):
        eps = d["y"] - d["X"] @ p["beta"]
        s = jnp.sqrt(p["sigma_v"] ** 2 + p["sigma_u"] ** 2)
        lam = p["sigma_u"] / p["sigma_v"]
        return (jnp.log(2.0) + jax.scipy.stats.norm.logpdf(eps, 0.0, s)
                + jax.scipy.special.log_ndtr(-eps * lam / s))

    def ll_np(p, d):
        eps = d["y"] - d["X"] @ p["beta"]
        s = np.sqrt(p["sigma_v"] ** 2 + p["sigma_u"] ** 2)
        lam = p["sigma_u"] / p["sigma_v"]
        return float(np.sum(np.log(2.0) - 0.5 * np.log(2 * np.pi) - np.log(s)
                            - 0.5 * (eps / s) ** 2 + log_ndtr(-eps * lam / s)))

    init = {"beta": np.array([0.5, 0.0, 0.0], np.float32), "sigma_v": np.float32(0.5),
            "sigma_u": np.float32(0.5)}
    return dict(data=data, loglik=loglik, init=init,
                constraints={"sigma_v": mj.positive, "sigma_u": mj.positive}, ll_np=ll_np,
                unpack=lambda t: {"beta": t[:3], "sigma_v": np.exp(t[3]),
                                  "sigma_u": np.exp(t[4])},
                theta0=np.array([0.5, 0.0, 0.0, np.log(0.5), np.log(0.5)]))


def _mixreg(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import logsumexp

    import mlejax as mj

    def data(seed):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, size=n)
        first = rng.uniform(size=n) < 0.4
        y = np.where(first, 1.0 + 2.0 * x, -1.0 - x) + 0.5 * rng.normal(size=n)
        return {"X": np.column_stack([np.ones(n), x]).astype(np.float32),
                "y": y.astype(np.float32)}

    def joint(p, d):   # (n, 2): log p(y_i, z_i = k)
        mean = d["X"] @ p["B"].T
        return jnp.log(p["w"]) + jax.scipy.stats.norm.logpdf(d["y"][:, None], mean, p["sigma"])

    def ll_np(p, d):
        mean = d["X"] @ np.asarray(p["B"]).T
        s = np.asarray(p["sigma"])
        j = (np.log(p["w"]) - 0.5 * np.log(2 * np.pi) - np.log(s)
             - 0.5 * ((d["y"][:, None] - mean) / s) ** 2)
        return float(np.sum(logsumexp(j, axis=1)))

    def unpack(t):
        w1 = 1 / (1 + np.exp(-t[0]))
        return {"w": np.array([w1, 1 - w1]), "B": t[1:5].reshape(2, 2),
                "sigma": np.exp(t[5:7])}

    init = {"w": np.array([0.5, 0.5], np.float32),
            "B": np.array([[0.5, 1.0], [-0.5, -0.5]], np.float32),
            "sigma": np.ones(2, np.float32)}
    return dict(data=data, loglik=joint, init=init, em=True,
                constraints={"w": mj.simplex, "sigma": mj.positive}, ll_np=ll_np,
                unpack=unpack, theta0=np.array([0.0, 0.5, 1.0, -0.5, -0.5, 0.0, 0.0]))


def _mnlogit(n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import log_softmax

    alts = 4

    def data(seed):
        rng = np.random.default_rng(seed)
        X = _regressors(rng, n)
        B = np.array([[0.2, -0.3, 0.5], [0.8, -0.5, 0.1], [-0.4, 0.6, 0.9]])
        u = np.column_stack([np.zeros(n), X @ B]) + rng.gumbel(size=(n, alts))
        return {"X": X.astype(np.float32), "y": np.argmax(u, axis=1).astype(np.int32)}

    def loglik(p, d):
        util = d["X"] @ p["B"]
        util = jnp.concatenate([jnp.zeros((util.shape[0], 1), util.dtype), util], axis=1)
        return jnp.take_along_axis(jax.nn.log_softmax(util), d["y"][:, None], axis=1)[:, 0]

    def ll_np(p, d):
        util = d["X"] @ np.asarray(p["B"])
        util = np.column_stack([np.zeros(len(util)), util])
        return float(np.sum(log_softmax(util, axis=1)[np.arange(len(util)), d["y"]]))

    def peer(d):
        from statsmodels.discrete.discrete_model import MNLogit

        return {"B": np.asarray(MNLogit(d["y"], d["X"]).fit(disp=0).params)}

    return dict(data=data, loglik=loglik, init={"B": np.zeros((3, alts - 1), np.float32)},
                constraints=None, ll_np=ll_np, peer=peer,
                peer_name="statsmodels MNLogit (newton)")


BUILDERS = {"zip": _zip, "oprobit": _oprobit, "tobit": _tobit, "garch": _garch,
            "weibull_aft": _weibull_aft, "irt_2pl": _irt_2pl, "ri_logit": _ri_logit,
            "frontier": _frontier, "mixreg": _mixreg, "mnlogit": _mnlogit}


# --------------------------------------------------------------------------- the child
def _as64(tree):
    import numpy as np

    if isinstance(tree, dict):
        return {k: _as64(v) for k, v in tree.items()}
    a = np.asarray(tree)
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def child(model: str, n: int, cache_dir: str | None) -> dict:
    """One fresh process: the first and second call of ``model``, the compilations of the
    first, then the peer. Returns the figures (printed as JSON by ``__main__``)."""
    import time
    import warnings

    import jax
    import numpy as np
    import scipy.optimize  # noqa: F401  (imports excluded from the timings)

    import mlejax as mj

    if cache_dir is not None:
        mj.enable_compilation_cache(cache_dir)
    spec = BUILDERS[model](n)
    if "peer" in spec:
        import statsmodels.api  # noqa: F401
    d1, d2 = spec["data"](1), spec["data"](2)

    events: list = []

    def on_duration(event, duration, **kw):
        events.append((event, float(duration), str(kw.get("fun_name", ""))))

    hits: list = []
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)

    def call(d):
        kw = dict(constraints=spec["constraints"])
        if spec.get("em"):
            res = mj.em(spec["loglik"], spec["init"], d, **kw)
        else:
            res = mj.fit(spec["loglik"], spec["init"], d, **kw)
        jax.block_until_ready((res.params, res.stderr, res.loglik, res.status))
        return res

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        r1 = call(d1)
        t1 = time.perf_counter()
        first_events = list(events)
        r2 = call(d2)
        t2 = time.perf_counter()
    second_compiles = sum(1 for e in events[len(first_events):]
                          if e[0].endswith("backend_compile_duration"))

    def total(kind):
        return sum(e[1] for e in first_events if e[0].endswith(kind))

    programs = [(e[2], round(e[1], 4)) for e in first_events
                if e[0].endswith("backend_compile_duration")]
    traced = [(e[2], round(e[1], 4)) for e in first_events
              if e[0].endswith("jaxpr_trace_duration")]

    ll = spec["ll_np"]
    mine = [ll(_as64(jax.tree_util.tree_map(np.asarray, r.params)), _as64(d))
            for r, d in ((r1, d1), (r2, d2))]

    def peer_fit(d):
        d64 = _as64(d)
        if "peer" in spec:
            return spec["peer"](d64)
        res = scipy.optimize.minimize(lambda t: -ll(spec["unpack"](t), d64), spec["theta0"],
                                      method="BFGS")
        return spec["unpack"](res.x)

    t3 = time.perf_counter()
    p1 = peer_fit(d1)
    t4 = time.perf_counter()
    p2 = peer_fit(d2)
    t5 = time.perf_counter()
    theirs = [ll(p, _as64(d)) for p, d in ((p1, d1), (p2, d2))]
    ok = all(a >= b - (1e-5 * abs(b) + 1e-3) for a, b in zip(mine, theirs))
    return {"model": model, "first": t1 - t0, "second": t2 - t1,
            "compile_s": total("backend_compile_duration"),
            "lower_s": total("jaxpr_to_mlir_module_duration"),
            "trace_s": total("jaxpr_trace_duration"),
            "n_compiled": len(programs), "n_traced": len(traced), "programs": programs,
            "traced": traced, "cache_hits": len(hits), "second_compiles": second_compiles,
            "converged": [bool(r1.converged), bool(r2.converged)],
            "n_params": int(r1.df_model), "ll_mlejax": mine, "ll_peer": theirs, "ok": ok,
            "peer_first": t4 - t3, "peer_second": t5 - t4,
            "peer": spec.get("peer_name", "scipy minimize BFGS (numeric gradient)"),
            "warnings": sorted({str(w.message)[:80] for w in caught}),
            "backend": jax.default_backend()}


ROOT = str(Path(__file__).resolve().parents[2])


def _run_child(model: str, n: int, env: dict, cache_dir: str | None,
               root: str = ROOT) -> dict:
    """``child`` in a new interpreter importing mlejax from ``root`` (run there: ``-c`` puts
    the working directory first on the path)."""
    code = ("import json, sys; from benchmarks.workloads import zoo; "
            "out = zoo.child(sys.argv[1], int(sys.argv[2]), sys.argv[3] or None); "
            "print('ZOO ' + json.dumps(out))")
    out = subprocess.run([sys.executable, "-c", code, model, str(n), cache_dir or ""],
                         env=dict(env, PYTHONPATH=root), cwd=root, capture_output=True,
                         text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("ZOO "):
            return json.loads(line[4:])
    raise RuntimeError(f"the zoo subprocess for {model} failed (exit {out.returncode}):\n"
                       f"{out.stderr[-3000:]}")


def _env(ctx: H.Context) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "JAX_ENABLE_COMPILATION_CACHE", "JAX_ENABLE_X64"))}
    platform = {"gpu": "cuda", "cpu": "cpu"}.get(ctx.device, "")
    if platform:
        env["JAX_PLATFORMS"] = platform
    return env


def _models() -> tuple[str, ...]:
    """``$MLEJAX_ZOO_MODELS`` (comma-separated) picks a subset; default all ten."""
    chosen = os.environ.get("MLEJAX_ZOO_MODELS")
    if not chosen:
        return MODELS
    names = tuple(s.strip() for s in chosen.split(",") if s.strip())
    unknown = [m for m in names if m not in BUILDERS]
    if unknown:
        raise ValueError(f"MLEJAX_ZOO_MODELS: unknown model(s) {unknown}; of {MODELS}.")
    return names


def run(n: int, ctx: H.Context) -> list[H.Group]:
    reps = 1 if ctx.quick else max(1, min(ctx.repeats, 3))
    env = _env(ctx)
    groups, firsts, warm_firsts = [], [], []
    for model in _models():
        ctx.log(f"  {NAME}: {model}, {reps} fresh process(es) without a persistent cache, "
                f"then a primed cache and {reps} with it warm (load {os.getloadavg()})")
        cold = [_run_child(model, n, env, None) for _ in range(reps)]
        with tempfile.TemporaryDirectory(prefix="mlejax-zoo-cache-") as cache:
            _run_child(model, n, env, cache)
            warm = [_run_child(model, n, env, cache) for _ in range(reps)]
        c0 = cold[0]
        g = H.Group(NAME, f"{model}, n={n:,}, {c0['n_params']} params", unit="call",
                    compare=False, params={"size": n, "n": n, "model": model,
                                           "dtype": "float32 (JAX default)"})

        def med(key, runs):
            return statistics.median(r[key] for r in runs)

        ok = all(r["ok"] for r in cold + warm)
        g.rows += [
            H.Row("mlejax first call, no cache", "mlejax", runs=[r["first"] for r in cold],
                  compile_s=med("compile_s", cold), ok=ok, subject=True,
                  note=(f"{c0['n_compiled']} XLA programs ({med('compile_s', cold):.2f} s), "
                        f"traced {c0['n_traced']} ({med('trace_s', cold):.2f} s), "
                        f"lowered {med('lower_s', cold):.2f} s"),
                  extra={k: c0[k] for k in ("programs", "traced", "n_compiled", "n_traced",
                                            "trace_s", "lower_s", "warnings")}),
            H.Row("mlejax second call, new data", "mlejax", runs=[r["second"] for r in cold],
                  ok=ok, note=f"{c0['second_compiles']} compilations"),
            H.Row("mlejax first call, warm cache", "mlejax", runs=[r["first"] for r in warm],
                  compile_s=med("compile_s", warm), ok=ok,
                  note=(f"{warm[0]['cache_hits']} of {warm[0]['n_compiled']} programs read "
                        "from the cache (compile: their retrieval)")),
            H.Row(c0["peer"] + ", first call", "peer", runs=[r["peer_first"] for r in cold],
                  ok=ok, note=f"second call {med('peer_second', cold) * 1e3:.1f} ms"),
        ]
        g.check = ("mlejax's log-likelihood at least the peer's minus 1e-5 |ll| + 1e-3 (both "
                   "evaluated in NumPy float64), on both datasets; every fit converged: "
                   f"{all(all(r['converged']) for r in cold + warm)}")
        groups.append(g)
        firsts.append(med("first", cold))
        warm_firsts.append(med("first", warm))
    s = H.Group(NAME, f"all {len(firsts)} models, n={n:,}", unit="call", compare=False,
                params={"size": n, "n": n})
    s.rows += [H.Row("mlejax first call, no cache (median over models)", "mlejax",
                     runs=firsts, note=f"worst {max(firsts):.2f} s"),
               H.Row("mlejax first call, warm cache (median over models)", "mlejax",
                     runs=warm_firsts, note=f"worst {max(warm_firsts):.2f} s")]
    s.targets += [H.Target("median first call over the zoo", statistics.median(firsts), "<=",
                           1.0, unit="s"),
                  H.Target("worst first call over the zoo", max(firsts), "<=", 2.0, unit="s")]
    return groups + [s]
