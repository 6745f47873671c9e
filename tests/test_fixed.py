"""``fixed=``: parameters held at given values (TMB's ``map``), for any fit.

The reference is always the same log-likelihood with the value substituted by hand (a fit of
the free parameters only, which mlejax's ``fixed`` must not be): estimates, standard errors
and log-likelihood to 1e-8 relative, for every method (newton, bfgs, lbfgs; gradient to its
own looser tolerance, 1e-4, and 3e-3 to the closed form) and for ``fit_batch``. NB2 with a fixed ``alpha`` also against
statsmodels' ``GLM(family=NegativeBinomial(alpha))``, whose coefficients are the MLE at that
alpha (1e-6). The held values stay in ``params`` with NaN ``stderr``, zero rows and columns
of ``cov``, "fixed" in the summary; ``df_model``, AIC and BIC count only the free ones.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj
from mlejax._models.glm import negbin_loglik

sm = pytest.importorskip("statsmodels.api")

RTOL = 1e-8


def _ll(p, x):
    return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])


def _ll_sigma2(p, x):
    return jax.scipy.stats.norm.logpdf(x, p["mu"], 2.0)


X = np.random.default_rng(0).normal(1.0, 2.0, 60)
XS = np.stack([X, X + 1.0, 2.0 * X])
CONS = {"sigma": mj.positive}


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs", "gradient"])
def test_fixed_equals_substitution_every_method(method):
    tol = 1e-4 if method == "gradient" else RTOL
    kw = {"max_steps": 5000} if method == "gradient" else {}
    res = mj.fit(_ll, {"mu": 0.0, "sigma": 1.0}, X, constraints=CONS, fixed={"sigma": 2.0},
                 method=method, **kw)
    ref = mj.fit(_ll_sigma2, {"mu": 0.0}, X, method=method, **kw)
    assert bool(res.converged) and bool(ref.converged)
    np.testing.assert_allclose(res.params["mu"], ref.params["mu"], rtol=tol)
    # the closed form; Adam stops at its own tolerance (eps^(1/2) on the gradient)
    np.testing.assert_allclose(res.params["mu"], X.mean(), rtol=3e-3 if method == "gradient"
                               else tol)
    np.testing.assert_allclose(res.stderr["mu"], ref.stderr["mu"], rtol=tol)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-10)
    assert float(res.params["sigma"]) == 2.0
    assert np.isnan(float(res.stderr["sigma"]))
    assert res.df_model == 1 and res.param_names == ("mu", "sigma")
    np.testing.assert_allclose(res.aic, ref.aic, rtol=1e-10)
    np.testing.assert_allclose(res.bic, ref.bic, rtol=1e-10)
    cov = np.asarray(res.cov)
    assert cov[1, 1] == 0.0 and cov[0, 1] == 0.0 and cov[1, 0] == 0.0


def test_fixed_fit_batch_equals_substitution():
    res = mj.fit_batch(_ll, {"mu": 0.0, "sigma": 1.0}, jnp.asarray(XS), constraints=CONS,
                       fixed={"sigma": 2.0})
    ref = mj.fit_batch(_ll_sigma2, {"mu": 0.0}, jnp.asarray(XS))
    np.testing.assert_allclose(res.params["mu"], ref.params["mu"], rtol=RTOL)
    np.testing.assert_allclose(res.stderr["mu"], ref.stderr["mu"], rtol=RTOL)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-10)
    np.testing.assert_array_equal(res.params["sigma"], 2.0)
    assert np.all(np.isnan(np.asarray(res.stderr["sigma"])))
    # a mask holds init's value; per-fit init (init_batched) is fine when the held values agree
    init = {"mu": jnp.zeros(3), "sigma": jnp.full(3, 2.0)}
    res2 = mj.fit_batch(_ll, init, jnp.asarray(XS), init_batched=True, constraints=CONS,
                        fixed={"sigma": True})
    np.testing.assert_allclose(res2.params["mu"], ref.params["mu"], rtol=RTOL)


def test_fixed_elements_of_a_leaf_and_restarts():
    """NaN marks the free elements of a partly held leaf; restarts draw only the free ones."""
    def ll(p, x):
        return jax.scipy.stats.norm.logpdf(x, p["m"][0] + p["m"][1], 2.0)

    res = mj.fit(ll, {"m": jnp.zeros(2)}, X, fixed={"m": np.array([np.nan, 0.5])},
                 restarts=3, key=jax.random.key(0))
    np.testing.assert_allclose(res.params["m"], [X.mean() - 0.5, 0.5], rtol=RTOL)
    se = np.asarray(res.stderr["m"])
    np.testing.assert_allclose(se[0], 2.0 / np.sqrt(X.size), rtol=RTOL)
    assert np.isnan(se[1]) and res.df_model == 1
    assert "fixed" in res.summary()


def test_fixed_inference_sees_the_reduced_model():
    res = mj.fit(_ll, {"mu": 0.0, "sigma": 1.0}, X, constraints=CONS, fixed={"sigma": 2.0})
    full = mj.fit(_ll, {"mu": 0.0, "sigma": 1.0}, X, constraints=CONS)
    t = mj.lrt(full, res)
    assert t.df == 1
    np.testing.assert_allclose(t.statistic, 2 * (full.loglik - res.loglik), rtol=1e-10)
    ci = res.confint(method="profile")
    q = 1.959963984540054
    np.testing.assert_allclose([ci.lower[0], ci.upper[0]],
                               [X.mean() - q * 2 / np.sqrt(X.size),
                                X.mean() + q * 2 / np.sqrt(X.size)], rtol=1e-7)
    text = res.summary()
    assert "fixed" in text and "singular" not in text


def test_negative_binomial_with_fixed_alpha():
    d = sm.datasets.cancer.load_pandas()
    y = d.endog.to_numpy(np.float64)
    x = np.log(d.exog["population"].to_numpy(np.float64))
    res = mj.models.NegativeBinomial().fit(x, y, fixed={"alpha": 0.5})
    assert sorted(res.param_names) == ["alpha", "const", "x1"]
    assert res.fit_result.df_model == 2
    data = {"X": jnp.column_stack([jnp.ones_like(x), x]), "y": jnp.asarray(y),
            "offset": jnp.zeros_like(y)}
    by_hand = mj.fit(lambda p, dd: negbin_loglik({"beta": p["beta"], "alpha": 0.5}, dd),
                     {"beta": jnp.zeros(2)}, data)
    np.testing.assert_allclose(res.coef, by_hand.params["beta"], rtol=RTOL)
    np.testing.assert_allclose(res.stderr["beta"], by_hand.stderr["beta"], rtol=1e-7)
    np.testing.assert_allclose(res.loglik, by_hand.loglik, rtol=1e-12)
    ref = sm.GLM(y, sm.add_constant(x), family=sm.families.NegativeBinomial(alpha=0.5)).fit(
        tol=1e-13)
    np.testing.assert_allclose(res.coef, ref.params, rtol=1e-6)
    np.testing.assert_allclose(res.loglik, ref.llf, rtol=1e-8)
    assert np.isnan(float(res.stderr["alpha"]))
    assert "fixed" in res.summary()


def test_fixed_bad_input():
    init = {"mu": 0.0, "sigma": 1.0}
    with pytest.raises(ValueError, match="not in init"):
        mj.fit(_ll, init, X, constraints=CONS, fixed={"nu": 1.0})
    with pytest.raises(ValueError, match="must be a value"):
        mj.fit(_ll, init, X, constraints=CONS, fixed={"sigma": "two"})
    with pytest.raises(ValueError, match="shape"):
        mj.fit(_ll, init, X, constraints=CONS, fixed={"sigma": np.ones(3)})
    with pytest.raises(ValueError, match="whole leaf"):
        mj.fit(lambda p, x: jnp.sum(jnp.log(p["w"][0]) * x), {"w": jnp.ones(3) / 3}, X,
               constraints={"w": mj.simplex}, fixed={"w": np.array([0.2, np.nan, np.nan])})
    with pytest.raises(ValueError, match="differ between"):
        mj.fit_batch(_ll, {"mu": jnp.zeros(3), "sigma": jnp.arange(1.0, 4.0)},
                     jnp.asarray(XS), init_batched=True, constraints=CONS,
                     fixed={"sigma": True})
