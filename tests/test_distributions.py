"""mj.fit_distribution / mj.compare_distributions against closed forms and scipy.stats.

For every distribution in the registry, on data generated with numpy (float64):

* the MLE equals scipy.stats' fit (location fixed at 0 where scipy adds one; Nelder-Mead
  polished to 1e-12 where scipy optimises numerically) to 1e-5 relative,
* the maximised log-likelihood equals the sum of scipy's logpdf / logpmf at the estimate,
* where a closed-form MLE exists, the numeric fit started away from it equals the textbook
  formula (evaluated here with numpy) to 1e-10 relative, and the standard errors equal the
  closed-form inverse observed information.

Plus: batches equal loops (ragged through weights), fixed parameters, float32, jit, the
samplers (Kolmogorov-Smirnov against scipy), the comparison table, and every bad input.
Each log-likelihood is compiled once per (distribution, data shape): fits are cached.
"""

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ss = pytest.importorskip("scipy.stats")
import scipy.optimize as so  # noqa: E402

import mlejax as mj  # noqa: E402
from mlejax import distributions as D  # noqa: E402

N = 200
_rng = np.random.default_rng(20240611)
DATA = {
    "bernoulli": (_rng.uniform(size=N) < 0.3).astype(np.float64),
    "binomial": _rng.binomial(10, 0.3, N).astype(np.float64),
    "categorical": _rng.choice(4, N, p=[0.1, 0.2, 0.3, 0.4]).astype(np.float64),
    "poisson": _rng.poisson(3.0, N).astype(np.float64),
    "geometric": _rng.geometric(0.3, N).astype(np.float64),
    "negative_binomial": _rng.negative_binomial(3, 0.4, N).astype(np.float64),
    "normal": _rng.normal(1.0, 2.0, N),
    "lognormal": _rng.lognormal(0.5, 0.8, N),
    "exponential": _rng.exponential(2.0, N),
    "gamma": _rng.gamma(2.5, 1.5, N),
    "beta": _rng.beta(2.0, 5.0, N),
    "weibull": 2.0 * _rng.weibull(1.7, N),
    "student_t": 1.0 + 2.0 * _rng.standard_t(4.0, N),
    "cauchy": 1.0 + 2.0 * _rng.standard_cauchy(N),
    "laplace": _rng.laplace(1.0, 2.0, N),
    "logistic": _rng.logistic(1.0, 2.0, N),
    "pareto": 2.0 * (_rng.pareto(3.0, N) + 1.0),
    "uniform": _rng.uniform(-1.0, 3.0, N),
    "von_mises": _rng.vonmises(0.5, 2.0, N),
    "multivariate_normal": _rng.multivariate_normal([0.5, 1.0], [[2.0, 0.6], [0.6, 1.0]], N),
}
FIXED = {"binomial": {"n": 10}}


@functools.lru_cache(maxsize=None)
def fitted(name: str):
    return mj.fit_distribution(DATA[name], name, fixed=FIXED.get(name))


def _np(tree):
    return {k: np.asarray(v, np.float64) for k, v in tree.items()}


def assert_params(got, want, rtol, what=""):
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k], np.float64), want[k], rtol=rtol, atol=0,
                                   err_msg=f"{what} {k}")


# ---------------------------------------------------------------- scipy as the reference


def _fmin(func, x0, args=(), disp=0):
    # scipy's default optimiser stops at xtol=1e-4; polish to 1e-12 so that scipy's answer
    # is a reference at the 1e-5 level.
    return so.fmin(func, x0, args=args, disp=0, xtol=1e-12, ftol=1e-14, maxiter=40000,
                   maxfun=40000)


def _discrete_fit(dist, x, bounds, guess):
    """scipy.stats.fit (the only scipy fit of discrete distributions) with a tight optimiser:
    bounded Brent for one free parameter, Nelder-Mead for more."""
    def opt(fun, bounds, integrality):
        del integrality
        lo = np.array([b[0] for b in bounds], dtype=float)
        hi = np.array([b[1] for b in bounds], dtype=float)
        free = lo < hi
        x0 = np.array([guess.get(i, b[0]) for i, b in enumerate(bounds)], dtype=float)

        def sub(z):
            full = x0.copy()
            full[free] = z
            return fun(full)

        if free.sum() == 1:
            i = int(np.flatnonzero(free)[0])
            z = so.minimize_scalar(lambda t: sub(np.array([t])), bounds=(lo[i], hi[i]),
                                   method="bounded", options={"xatol": 1e-13}).x
            z = np.array([z])
        else:
            z = so.minimize(sub, x0[free], method="Powell", bounds=list(zip(lo[free], hi[free])),
                            options={"xtol": 1e-12, "ftol": 1e-15, "maxiter": 20000}).x
        full = x0.copy()
        full[free] = z
        return so.OptimizeResult(x=full, success=True, fun=fun(full))

    return ss.fit(dist, x, bounds, optimizer=opt).params


def _scipy_mle(name, x):
    if name == "bernoulli":
        return {"p": _discrete_fit(ss.bernoulli, x, {"p": (1e-6, 1 - 1e-6)}, {0: 0.5}).p}
    if name == "binomial":
        return {"p": _discrete_fit(ss.binom, x, {"n": (10, 10), "p": (1e-6, 1 - 1e-6)},
                                   {0: 10, 1: 0.5}).p}
    if name == "poisson":
        return {"rate": _discrete_fit(ss.poisson, x, {"mu": (1e-6, 50)}, {0: 1.0}).mu}
    if name == "geometric":
        return {"p": _discrete_fit(ss.geom, x, {"p": (1e-6, 1 - 1e-6)}, {0: 0.5}).p}
    if name == "negative_binomial":
        m, v = x.mean(), x.var()
        r0 = m * m / (v - m)
        fitp = _discrete_fit(ss.nbinom, x, {"n": (0.01, 1e3), "p": (1e-6, 1 - 1e-6)},
                             {0: r0, 1: r0 / (r0 + m)})
        return {"mu": fitp.n * (1 - fitp.p) / fitp.p, "alpha": 1.0 / fitp.n}
    if name == "normal":
        mu, sigma = ss.norm.fit(x)
        return {"mu": mu, "sigma": sigma}
    if name == "lognormal":
        s, _, scale = ss.lognorm.fit(x, floc=0)
        return {"mu": np.log(scale), "sigma": s}
    if name == "exponential":
        _, scale = ss.expon.fit(x, floc=0)
        return {"rate": 1.0 / scale}
    if name == "gamma":
        a, _, scale = ss.gamma.fit(x, floc=0)
        return {"shape": a, "scale": scale}
    if name == "beta":
        a, b, _, _ = ss.beta.fit(x, floc=0, fscale=1, optimizer=_fmin)
        return {"a": a, "b": b}
    if name == "weibull":
        c, _, scale = ss.weibull_min.fit(x, floc=0, optimizer=_fmin)
        return {"shape": c, "scale": scale}
    if name == "student_t":
        df, loc, scale = ss.t.fit(x, optimizer=_fmin)
        return {"loc": loc, "scale": scale, "df": df}
    if name in ("cauchy", "laplace", "logistic"):
        loc, scale = getattr(ss, name).fit(x, optimizer=_fmin)
        return {"loc": loc, "scale": scale}
    if name == "pareto":
        b, _, scale = ss.pareto.fit(x, floc=0)
        return {"alpha": b, "scale": scale}
    if name == "uniform":
        loc, scale = ss.uniform.fit(x)
        return {"low": loc, "high": loc + scale}
    if name == "von_mises":
        kappa, loc, _ = ss.vonmises.fit(x, fscale=1)
        return {"mu": loc, "kappa": kappa}
    if name == "multivariate_normal":
        mean, cov = ss.multivariate_normal.fit(x)
        return {"mean": mean, "cov": cov}
    raise KeyError(name)


def _scipy_logpdf(name, x, p):
    if name == "bernoulli":
        return ss.bernoulli.logpmf(x, p["p"])
    if name == "binomial":
        return ss.binom.logpmf(x, 10, p["p"])
    if name == "categorical":
        onehot = (x[:, None] == np.arange(p["p"].size)).astype(int)
        return ss.multinomial.logpmf(onehot, 1, p["p"])
    if name == "poisson":
        return ss.poisson.logpmf(x, p["rate"])
    if name == "geometric":
        return ss.geom.logpmf(x, p["p"])
    if name == "negative_binomial":
        r = 1.0 / p["alpha"]
        return ss.nbinom.logpmf(x, r, r / (r + p["mu"]))
    if name == "normal":
        return ss.norm.logpdf(x, p["mu"], p["sigma"])
    if name == "lognormal":
        return ss.lognorm.logpdf(x, p["sigma"], scale=np.exp(p["mu"]))
    if name == "exponential":
        return ss.expon.logpdf(x, scale=1.0 / p["rate"])
    if name == "gamma":
        return ss.gamma.logpdf(x, p["shape"], scale=p["scale"])
    if name == "beta":
        return ss.beta.logpdf(x, p["a"], p["b"])
    if name == "weibull":
        return ss.weibull_min.logpdf(x, p["shape"], scale=p["scale"])
    if name == "student_t":
        return ss.t.logpdf(x, p["df"], p["loc"], p["scale"])
    if name in ("cauchy", "laplace", "logistic"):
        return getattr(ss, name).logpdf(x, p["loc"], p["scale"])
    if name == "pareto":
        return ss.pareto.logpdf(x, p["alpha"], scale=p["scale"])
    if name == "uniform":
        return ss.uniform.logpdf(x, p["low"], p["high"] - p["low"])
    if name == "von_mises":
        return ss.vonmises.logpdf(x, p["kappa"], loc=p["mu"])
    if name == "multivariate_normal":
        return ss.multivariate_normal.logpdf(x, p["mean"], p["cov"])
    raise KeyError(name)


SCIPY_FIT = [n for n in D.DISTRIBUTIONS if n != "categorical"]  # scipy has no categorical


def test_registry_covers_the_issue():
    want = {"bernoulli", "binomial", "categorical", "poisson", "geometric",
            "negative_binomial", "normal", "lognormal", "exponential", "gamma", "beta",
            "weibull", "student_t", "cauchy", "laplace", "logistic", "pareto", "von_mises",
            "multivariate_normal", "uniform"}
    assert want <= set(D.DISTRIBUTIONS)
    assert set(DATA) == set(D.DISTRIBUTIONS)
    assert D.get("Gaussian").name == "normal" and D.get("t").name == "student_t"


@pytest.mark.parametrize("name", SCIPY_FIT)
def test_mle_equals_scipy_fit(name):
    res = fitted(name)
    assert bool(res.converged), f"{name}: {res.message}"
    assert_params(res.params, _scipy_mle(name, DATA[name]), 1e-5, name)


@pytest.mark.parametrize("name", D.DISTRIBUTIONS)
def test_loglik_equals_scipy_logpdf_sum(name):
    res = fitted(name)
    full = {**_np(res.params), **{k: float(v) for k, v in FIXED.get(name, {}).items()}}
    want = float(np.sum(_scipy_logpdf(name, DATA[name], full)))
    np.testing.assert_allclose(float(res.loglik), want, rtol=1e-11)
    assert int(res.nobs) == N


# ---------------------------------------------------------------- closed forms


def _closed_form(name, x):
    if name == "bernoulli":
        return {"p": x.mean()}
    if name == "binomial":
        return {"p": x.sum() / (10 * x.size)}
    if name == "categorical":
        return {"p": np.bincount(x.astype(int), minlength=4) / x.size}
    if name == "poisson":
        return {"rate": x.mean()}
    if name == "geometric":
        return {"p": 1.0 / x.mean()}
    if name == "normal":
        return {"mu": x.mean(), "sigma": x.std()}
    if name == "lognormal":
        return {"mu": np.log(x).mean(), "sigma": np.log(x).std()}
    if name == "exponential":
        return {"rate": 1.0 / x.mean()}
    if name == "multivariate_normal":
        return {"mean": x.mean(0), "cov": np.cov(x.T, bias=True)}
    if name == "uniform":
        return {"low": x.min(), "high": x.max()}
    if name == "laplace":
        m = np.median(x)
        return {"loc": m, "scale": np.abs(x - m).mean()}
    if name == "pareto":
        return {"alpha": x.size / np.log(x / x.min()).sum(), "scale": x.min()}
    raise KeyError(name)


# Starting values away from the optimum: the numeric fit must find the closed form itself.
OFF_START = {
    "bernoulli": {"p": 0.5}, "binomial": {"p": 0.5}, "categorical": {"p": np.full(4, 0.25)},
    "poisson": {"rate": 1.0}, "geometric": {"p": 0.5}, "normal": {"mu": 0.0, "sigma": 1.0},
    "lognormal": {"mu": 0.0, "sigma": 1.0}, "exponential": {"rate": 1.0},
    "multivariate_normal": {"mean": np.zeros(2), "cov": np.eye(2)},
}


@pytest.mark.parametrize("name", list(OFF_START) + ["uniform", "laplace", "pareto"])
def test_mle_equals_closed_form(name):
    x = DATA[name]
    start = OFF_START.get(name, "auto")
    res = mj.fit_distribution(x, name, fixed=FIXED.get(name), start=start)
    assert bool(res.converged), f"{name}: {res.message}"
    if name in OFF_START:
        assert int(res.n_steps) >= 2  # it iterated: the start was not the answer
    assert_params(res.params, _closed_form(name, x), 1e-10, name)


def test_default_start_is_the_closed_form():
    res = fitted("normal")
    assert int(res.n_steps) <= 1


def test_stderr_equals_closed_form_information():
    n = N
    p = _np(fitted("normal").params)
    assert_params(fitted("normal").stderr, {"mu": p["sigma"] / np.sqrt(n),
                                            "sigma": p["sigma"] / np.sqrt(2 * n)}, 1e-8)
    p = _np(fitted("poisson").params)
    assert_params(fitted("poisson").stderr, {"rate": np.sqrt(p["rate"] / n)}, 1e-8)
    p = _np(fitted("exponential").params)
    assert_params(fitted("exponential").stderr, {"rate": p["rate"] / np.sqrt(n)}, 1e-8)
    p = _np(fitted("bernoulli").params)
    assert_params(fitted("bernoulli").stderr, {"p": np.sqrt(p["p"] * (1 - p["p"]) / n)}, 1e-8)
    p = _np(fitted("geometric").params)
    assert_params(fitted("geometric").stderr,
                  {"p": np.sqrt(p["p"] ** 2 * (1 - p["p"]) / n)}, 1e-8)
    p = _np(fitted("categorical").params)
    assert_params(fitted("categorical").stderr, {"p": np.sqrt(p["p"] * (1 - p["p"]) / n)},
                  1e-8)


# ---------------------------------------------------------------- batches, fixed, dtypes


def test_batch_equals_loop_and_ragged_weights():
    # The second dataset has 150 observations; its padding is -1, outside the support, and
    # must not matter. The first dataset is the one fitted alone in fitted("gamma").
    x = np.stack([DATA["gamma"], _rng.gamma(4.0, 0.5, N)])
    w = np.ones((2, N))
    w[1, 150:] = 0.0
    x[1, 150:] = -1.0
    batch = mj.fit_distribution(x, "gamma", weights=w)
    assert batch.params["shape"].shape == (2,)
    assert bool(np.all(np.asarray(batch.converged)))
    one = fitted("gamma")
    for k in ("shape", "scale"):
        np.testing.assert_allclose(batch.params[k][0], one.params[k], rtol=1e-10)
        np.testing.assert_allclose(batch.stderr[k][0], one.stderr[k], rtol=1e-8)
    a, _, scale = ss.gamma.fit(x[1, :150], floc=0)
    np.testing.assert_allclose(batch.params["shape"][1], a, rtol=1e-5)
    np.testing.assert_allclose(batch.params["scale"][1], scale, rtol=1e-5)
    assert list(np.asarray(batch.nobs)) == [N, 150]
    assert "batch of 2 fits" in batch.summary()


def test_fixed_parameter_student_t_df():
    x = DATA["student_t"]
    res = mj.fit_distribution(x, "student_t", fixed={"df": 5.0})
    assert sorted(res.params) == ["loc", "scale"] and res.df_model == 2
    _, loc, scale = ss.t.fit(x, fdf=5.0, optimizer=_fmin)
    assert_params(res.params, {"loc": loc, "scale": scale}, 1e-5)
    # Another fixed value reuses the compiled program and moves the estimate.
    res3 = mj.fit_distribution(x, "student_t", fixed={"df": 3.0})
    _, loc3, scale3 = ss.t.fit(x, fdf=3.0, optimizer=_fmin)
    assert_params(res3.params, {"loc": loc3, "scale": scale3}, 1e-5)


def test_fixed_parameter_closed_forms():
    res = mj.fit_distribution(DATA["pareto"], "pareto", fixed={"scale": 1.5})
    xp = DATA["pareto"]
    assert_params(res.params, {"alpha": xp.size / np.log(xp / 1.5).sum()}, 1e-10)


def test_float32_and_jit():
    x32 = DATA["gamma"].astype(np.float32)
    res = mj.fit_distribution(x32, "gamma")
    assert res.params["shape"].dtype == jnp.float32
    assert bool(res.converged)
    np.testing.assert_allclose(res.params["shape"], fitted("gamma").params["shape"], rtol=1e-4)

    @jax.jit
    def mu_hat(x):
        return mj.fit_distribution(x, "normal").params["mu"]

    np.testing.assert_allclose(mu_hat(jnp.asarray(DATA["normal"])), DATA["normal"].mean(),
                               rtol=1e-10)


# ---------------------------------------------------------------- samplers


TRUE = {
    "bernoulli": {"p": 0.3}, "binomial": {"n": 10.0, "p": 0.3},
    "categorical": {"p": np.array([0.1, 0.2, 0.3, 0.4])}, "poisson": {"rate": 3.0},
    "geometric": {"p": 0.3}, "negative_binomial": {"mu": 4.5, "alpha": 1.0 / 3.0},
    "normal": {"mu": 1.0, "sigma": 2.0}, "lognormal": {"mu": 0.5, "sigma": 0.8},
    "exponential": {"rate": 0.5}, "gamma": {"shape": 2.5, "scale": 1.5},
    "beta": {"a": 2.0, "b": 5.0}, "weibull": {"shape": 1.7, "scale": 2.0},
    "student_t": {"loc": 1.0, "scale": 2.0, "df": 4.0}, "cauchy": {"loc": 1.0, "scale": 2.0},
    "laplace": {"loc": 1.0, "scale": 2.0}, "logistic": {"loc": 1.0, "scale": 2.0},
    "pareto": {"alpha": 3.0, "scale": 2.0}, "uniform": {"low": -1.0, "high": 3.0},
    "von_mises": {"mu": 0.5, "kappa": 2.0},
    "multivariate_normal": {"mean": np.array([0.5, 1.0]),
                            "cov": np.array([[2.0, 0.6], [0.6, 1.0]])},
}


def _scipy_cdf(name, p):
    table = {
        "normal": lambda x: ss.norm.cdf(x, p["mu"], p["sigma"]),
        "lognormal": lambda x: ss.lognorm.cdf(x, p["sigma"], scale=np.exp(p["mu"])),
        "exponential": lambda x: ss.expon.cdf(x, scale=1 / p["rate"]),
        "gamma": lambda x: ss.gamma.cdf(x, p["shape"], scale=p["scale"]),
        "beta": lambda x: ss.beta.cdf(x, p["a"], p["b"]),
        "weibull": lambda x: ss.weibull_min.cdf(x, p["shape"], scale=p["scale"]),
        "student_t": lambda x: ss.t.cdf(x, p["df"], p["loc"], p["scale"]),
        "cauchy": lambda x: ss.cauchy.cdf(x, p["loc"], p["scale"]),
        "laplace": lambda x: ss.laplace.cdf(x, p["loc"], p["scale"]),
        "logistic": lambda x: ss.logistic.cdf(x, p["loc"], p["scale"]),
        "pareto": lambda x: ss.pareto.cdf(x, p["alpha"], scale=p["scale"]),
        "uniform": lambda x: ss.uniform.cdf(x, p["low"], p["high"] - p["low"]),
        "von_mises": lambda x: ss.vonmises.cdf(x, p["kappa"], loc=p["mu"]),
    }
    return table.get(name)


def _scipy_pmf(name, p, support):
    table = {
        "bernoulli": lambda k: ss.bernoulli.pmf(k, p["p"]),
        "binomial": lambda k: ss.binom.pmf(k, 10, p["p"]),
        "categorical": lambda k: p["p"][k.astype(int)],
        "poisson": lambda k: ss.poisson.pmf(k, p["rate"]),
        "geometric": lambda k: ss.geom.pmf(k, p["p"]),
        "negative_binomial": lambda k: ss.nbinom.pmf(k, 1 / p["alpha"],
                                                     1 / (1 + p["alpha"] * p["mu"])),
    }
    return table[name](support)


@functools.lru_cache(maxsize=None)
def _all_draws():
    # Every sampler in one compiled program (half the compile time of twenty).
    @jax.jit
    def draw(key):
        keys = jax.random.split(key, len(D.DISTRIBUTIONS))
        return {name: D.get(name).sample(k, jax.tree_util.tree_map(jnp.asarray, TRUE[name]),
                                         (4000,))
                for k, name in zip(keys, D.DISTRIBUTIONS)}

    return {k: np.asarray(v, np.float64) for k, v in draw(jax.random.key(1)).items()}


@pytest.mark.parametrize("name", D.DISTRIBUTIONS)
def test_sampler_matches_the_distribution(name):
    dist = D.get(name)
    p = TRUE[name]
    draws = _all_draws()[name]
    if name == "multivariate_normal":
        assert draws.shape == (4000, 2)
        np.testing.assert_allclose(draws.mean(0), p["mean"], atol=0.1)
        np.testing.assert_allclose(np.cov(draws.T), p["cov"], atol=0.15)
        return
    assert draws.shape == (4000,)
    assert np.all(dist.support(draws, {"n": 10.0} if name == "binomial" else {}))
    cdf = _scipy_cdf(name, p)
    if cdf is not None:
        assert ss.kstest(draws, cdf).pvalue > 1e-3
    else:  # chi-square goodness of fit over the observed values (merged tail)
        vals, counts = np.unique(draws, return_counts=True)
        probs = _scipy_pmf(name, p, vals)
        keep = probs * draws.size >= 5
        obs = np.append(counts[keep], counts[~keep].sum())
        exp = np.append(probs[keep], 1 - probs[keep].sum()) * draws.size
        ok = exp > 0
        assert ss.chisquare(obs[ok], exp[ok] * obs[ok].sum() / exp[ok].sum()).pvalue > 1e-3


# ---------------------------------------------------------------- comparison table


def test_compare_distributions_ranks_by_aic():
    x = DATA["gamma"]
    table = mj.compare_distributions(x, ["normal", "gamma", "lognormal", "weibull"])
    assert table.names[0] in ("gamma", "weibull")
    assert table.names[-1] == "normal"
    for n in table.names:
        np.testing.assert_allclose(table.values[n], table.results[n].aic)
    assert abs(sum(table.weights().values()) - 1.0) < 1e-12
    text = str(table)
    assert "gamma" in text and "AIC" in text
    # A candidate that cannot fit these data is listed with the reason, not an abort.
    shifted = mj.compare_distributions(x - 1.0, ["normal", "gamma"])
    assert "gamma" in shifted.errors and "support" in shifted.errors["gamma"]
    assert shifted.best == "normal"


def test_compare_distributions_batch_and_bad_mix():
    x = np.stack([DATA["gamma"], _rng.gamma(4.0, 0.5, N)])
    table = mj.compare_distributions(x, ["gamma", "lognormal"], criterion="bic",
                                     weights=np.ones_like(x))
    assert np.shape(table.best) == (2,)
    assert "best in" in str(table)
    with pytest.raises(ValueError, match="discrete"):
        mj.compare_distributions(DATA["poisson"], ["poisson", "normal"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name,x,fixed,pattern", [
    ("gamma", [1.0, -2.0, 3.0], None, r"support of the gamma.*strictly positive.*-2"),
    ("poisson", [1.0, 2.5, 3.0], None, r"support of the poisson.*integer.*2\.5"),
    ("bernoulli", [0.0, 1.0, 2.0], None, r"support of the bernoulli.*0 or 1"),
    ("beta", [0.2, 1.0, 0.5], None, r"strictly between 0 and 1"),
    ("normal", [2.0, 2.0, 2.0], None, r"constant.*'sigma'.*boundary"),
    ("bernoulli", [1.0, 1.0, 1.0], None, r"every value is 1.*'p' is 1"),
    ("poisson", [0.0, 0.0, 0.0], None, r"every value is 0"),
    ("negative_binomial", [1.0, 2.0, 1.0, 2.0], None, r"not over-dispersed.*'poisson'"),
    ("student_t", [1.0, 2.0], None, r"fewer observations \(2\) than free parameters \(3\)"),
    ("binomial", [1.0, 2.0], None, r"needs 'n' given.*fixed=\{'n'"),
    ("binomial", [1.0, 12.0], {"n": 10}, r"between 0 and the number of trials"),
    ("normal", [1.0, 2.0, 3.0], {"tau": 1.0}, r"'tau'.*parameters are \['mu', 'sigma'\]"),
    ("normal", [1.0, 2.0, 3.0], {"sigma": -1.0}, r"fixed\['sigma'\] must be > 0"),
    ("exponential", [1.0, 2.0], {"rate": 1.0}, r"every parameter .* is fixed"),
    ("categorical", [0.0, 2.0, 2.0], None, r"category \[1\] is never observed"),
    ("normal", [1.0, np.nan, 3.0], None, r"NaN"),
    ("weibul", [1.0, 2.0], None, r"unknown distribution 'weibul'.*gamma.*weibull"),
])
def test_bad_input_names_the_problem(name, x, fixed, pattern):
    with pytest.raises(ValueError, match=pattern):
        mj.fit_distribution(np.asarray(x), name, fixed=fixed)


def test_bad_input_in_a_batch_names_the_datasets():
    x = np.stack([DATA["gamma"][:20], np.full(20, 3.0), DATA["gamma"][20:40]])
    with pytest.raises(ValueError, match=r"x\[k\] for k in \[1\] \(1 of 3 datasets\).*constant"):
        mj.fit_distribution(x, "gamma")
    with pytest.raises(ValueError, match=r"weights must have shape \(3, 20\)"):
        mj.fit_distribution(x, "gamma", weights=np.ones(20))
    with pytest.raises(ValueError, match=r"start must be"):
        mj.fit_distribution(DATA["gamma"], "gamma", start="guess")
