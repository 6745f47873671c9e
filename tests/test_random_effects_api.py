"""Random effects (``random=``) through the rest of the API: the summary, profile intervals,
the likelihood-ratio test, the delta method, the optima map, jit, the statuses and the
options that do not combine with a marginal likelihood.

The numbers themselves are proven against lme4 (tests/test_random_effects_lmm.py) and
against independent SciPy computations (tests/test_random_effects_glmm.py); here one small
random-intercept Poisson model (12 groups of 6) is fitted once and read many ways.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj

jax.config.update("jax_enable_x64", True)

G, N = 12, 6
SPEC = mj.RandomEffects(["u"], grouped=True)


def joint(p, d):
    x, y, g = d
    eta = p["beta"][0] + p["beta"][1] * x + p["u"][g]
    terms = y * eta - jnp.exp(eta) - jax.scipy.special.gammaln(y + 1.0)
    return jnp.sum(terms) + jnp.sum(jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["sd_u"]))


def joint_no_slope(p, d):
    x, y, g = d
    return joint({"beta": jnp.stack([p["b0"], 0.0 * p["b0"]]), "u": p["u"],
                  "sd_u": p["sd_u"]}, d)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(G), N)
    x = rng.normal(size=G * N)
    u = 0.7 * rng.normal(size=G)
    y = rng.poisson(np.exp(0.4 + 0.5 * x + u[g])).astype(float)
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(g)


def init():
    return {"beta": jnp.zeros(2), "u": jnp.zeros(G), "sd_u": 1.0}


@pytest.fixture(scope="module")
def res(data):
    """The fit, from three starts (one compiled program serves every test below)."""
    return mj.fit(joint, init(), data, random=SPEC, constraints={"sd_u": mj.positive},
                  restarts=3, key=jax.random.key(1))


def test_result_and_summary(res):
    assert res.converged
    assert res.param_names == ("beta[0]", "beta[1]", "sd_u")   # u is not a parameter
    assert set(res.random.mode) == {"u"} and res.random.mode["u"].shape == (G,)
    # TMB's standard errors add theta-hat's uncertainty (a positive semi-definite term) to
    # the conditional ones.
    se, cond = np.asarray(res.random.stderr["u"]), np.asarray(res.random.cond_stderr["u"])
    assert np.all(np.isfinite(cond)) and np.all(se >= cond - 1e-12)
    text = res.summary()
    assert "marginal likelihood over the random effects u (12,) (Laplace)" in text
    assert "sd_u" in text and "CONVERGED" in text
    # The joint is one total: BIC needs the number of observations.
    assert np.isnan(float(res.bic))
    assert np.isfinite(float(res.with_nobs(G * N).bic))


def test_inference_on_the_marginal(res, data):
    ci = res.confint(method="profile")
    lo, hi = np.asarray(ci.lower), np.asarray(ci.upper)
    est = res.flat_params()
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
    assert np.all(lo < est) and np.all(est < hi)
    # Profile endpoints lie where the marginal has dropped by chi2_1(0.95)/2 = 1.92: the
    # interval is not the Wald one (sd_u's is skewed).
    wald = res.confint()
    assert not np.allclose(np.asarray(wald.lower)[2], lo[2], rtol=1e-3)
    reduced = mj.fit(joint_no_slope, {"b0": 0.0, "u": jnp.zeros(G), "sd_u": 1.0}, data,
                     random=SPEC, constraints={"sd_u": mj.positive})
    test = mj.lrt(res, reduced)
    assert test.df == 1
    np.testing.assert_allclose(float(test.statistic),
                               2.0 * (float(res.loglik) - float(reduced.loglik)), rtol=1e-12)
    d = res.delta(lambda p: p["beta"][1] / p["sd_u"])
    assert np.isfinite(float(d.stderr)) and float(d.stderr) > 0


def test_restarts_and_optima(res):
    r = res
    assert r.converged and int(r.n_best) >= 1
    assert r.restarts.random.mode["u"].shape == (3, G)
    assert len(r.optima.loglik) >= 1


def test_under_jit(res, data):
    """A fit with random effects is a pure function of the data: it runs under jit (the
    checks that need values are skipped on tracers) and gives the same estimate."""
    fit = jax.jit(lambda d: mj.fit(joint, init(), d, random=SPEC,
                                   constraints={"sd_u": mj.positive}, warn=False).params)
    params = fit(data)
    np.testing.assert_allclose(np.asarray(params["beta"]), np.asarray(res.params["beta"]),
                               rtol=1e-10)


def test_statuses_have_messages():
    assert "inner Newton" in mj.Status.INNER_NOT_CONVERGED.name.replace("_", " ").lower() \
        or "inner Newton" in mj.status.message(mj.Status.INNER_NOT_CONVERGED)
    assert "concave" in mj.status.message(mj.Status.INNER_NOT_DEFINITE)


@pytest.mark.parametrize("kwargs, match", [
    (dict(weights=jnp.ones(G * N)), "weights= does not combine with random effects"),
    (dict(minibatch=8, key=jax.random.key(0)), "minibatch= does not combine"),
    (dict(obs_chunk=10), "obs_chunk= does not combine"),
])
def test_options_that_do_not_combine(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mj.fit(joint, init(), data, random=SPEC, constraints={"sd_u": mj.positive}, **kwargs)


def test_batch_streaming_and_bootstrap_are_refused(res, data):
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), data)
    with pytest.raises(ValueError,
                       match="datasets_per_chunk is not available with random effects"):
        mj.fit_batch(joint, init(), batch, random=SPEC, constraints={"sd_u": mj.positive},
                     datasets_per_chunk=1)
    with pytest.raises(ValueError, match="bootstrap of a fit with random effects"):
        mj.bootstrap(res, n=10, key=jax.random.key(0))


@pytest.mark.parametrize("make, match", [
    (lambda: mj.RandomEffects([]), "takes the names"),
    (lambda: mj.RandomEffects(["u", "u"]), "given twice"),
    (lambda: mj.RandomEffects(["u"], nodes=0), "positive integer"),
    (lambda: mj.RandomEffects(["u"], nodes=5), "declare grouped=True"),
    (lambda: mj.RandomEffects(["u"], max_inner=0), "max_inner"),
])
def test_spec_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_random_must_name_keys_of_a_dict(data):
    with pytest.raises(ValueError, match="random= takes the names"):
        mj.fit(joint, init(), data, random=3)
    with pytest.raises(ValueError, match="must then be a dict"):
        mj.fit(lambda p, d: jnp.sum(p[0]), [jnp.zeros(2)], data, random=["u"])
    with pytest.raises(ValueError, match="nothing is left to estimate"):
        mj.fit(lambda p, d: -jnp.sum(p["u"] ** 2), {"u": jnp.zeros(3)}, data, random=["u"])
