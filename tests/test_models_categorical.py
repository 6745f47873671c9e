"""Categorical regressions (issue 23): multinomial logit, ordered logit and ordered probit.

References (float64):

* ``MultinomialLogit`` on statsmodels' anes96 (party identification ``PID``, 7 categories,
  on ``logpopul, selfLR, age, educ, income`` and a constant last, as statsmodels'
  ``TestMNLogitNewtonBaseZero`` loads it) against the Stata 11 results statsmodels stores
  (``results_discrete.Anes.mnlogit_basezero``: params, bse, llf, AIC, BIC and the predicted
  probabilities ``phat_mnlogit.csv``) to their stored digits, and against a tight statsmodels
  ``MNLogit`` fit (params, bse, HC0 robust bse) to 1e-6 relative.
* ``OrderedLogit`` / ``OrderedProbit`` on the UCLA ``apply`` data (``ologit_ucla.csv``, 400
  rows) against R ``MASS::polr`` as statsmodels stores it (``results_ordinal_model``), with
  statsmodels' own tolerances for R (polr's optimiser stops early: its estimates are ~1e-4
  from the MLE, its thresholds 3e-4 relative, compared at 5e-4), and against a tight
  statsmodels ``OrderedModel`` fit to 1e-6: estimates and log-likelihood directly
  (statsmodels' thresholds are ``c_0, log(c_1 - c_0)``: converted), standard errors
  through the delta method. statsmodels' ``OrderedModel`` bse come from a numerical
  Hessian with errors of ~5e-6 relative (compared at 2e-5), so the 1e-6 check of the
  standard errors is against the inverse of a central finite-difference Hessian of
  statsmodels' own ``loglike`` (4-point formula, step 3e-4: ~1e-8 accurate here).
* The ordered log-probabilities far in both tails against independent evaluations (a
  closed form for the logistic, ``quad`` of the scaled normal density for the probit).
* ``fit_batch`` equals a loop of ``fit`` (K = 3 resamples), and bad input raises clearly.

The model classes are imported from ``mlejax._models.categorical`` until ``mlejax.models``
exports them.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sm = pytest.importorskip("statsmodels.api")
pd = pytest.importorskip("pandas")

from conftest import assert_rel  # noqa: E402
from mlejax._models.categorical import ordered_logp  # noqa: E402
from mlejax.models import MultinomialLogit, OrderedLogit, OrderedProbit  # noqa: E402

RTOL = 1e-6


# ------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def anes():
    from statsmodels.discrete.tests.results.results_discrete import Anes
    d = sm.datasets.anes96.load_pandas()
    X = sm.add_constant(d.exog, prepend=False)       # as statsmodels' TestMNLogit: const last
    y = d.endog.to_numpy()
    return X, y, Anes.mnlogit_basezero


@pytest.fixture(scope="module")
def mnl_fit(anes):
    X, y, _ = anes
    return MultinomialLogit().fit(X, y)


@pytest.fixture(scope="module")
def ucla():
    from statsmodels.miscmodels.tests.results import results_ordinal_model as R
    df = R.data_store.df                 # apply: an ordered pandas Categorical
    return df[["pared", "public", "gpa"]], df["apply"], R


ORDERED = [(OrderedLogit, "logit", "res_ord_logit"), (OrderedProbit, "probit", "res_ord_probit")]


@pytest.fixture(scope="module")
def ordered_fits(ucla):
    X, y, _ = ucla
    return {cls: cls().fit(X, y) for cls, _, _ in ORDERED}


# ------------------------------------------------------------------------ multinomial logit


def test_mnlogit_anes96_matches_stata(anes, mnl_fit):
    X, y, ref = anes
    res = mnl_fit
    assert bool(res.converged)
    assert res.coef.shape == (6, 6)
    # Stata's values are stored to 8 significant digits (bse to 10, llf to 13).
    assert_rel(res.coef, ref.params, 2e-6, "params")
    assert_rel(res.stderr["beta"], ref.bse, 1e-7, "bse")
    assert_rel(res.loglik, ref.llf, 1e-9, "llf")
    assert_rel(res.aic, ref.aic, 1e-9, "aic")
    assert_rel(res.bic, ref.bic, 1e-9, "bic")
    assert int(res.nobs) == ref.nobs and res.fit_result.df_model == 36
    p = np.asarray(res.predict(X))
    assert p.shape == (944, 7)
    np.testing.assert_allclose(p, ref.phat, atol=1e-7, rtol=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_mnlogit_anes96_matches_statsmodels(anes, mnl_fit):
    X, y, _ = anes
    res = mnl_fit
    ref = sm.MNLogit(y, X).fit(disp=0, method="newton", tol=1e-12)
    assert_rel(res.coef, ref.params, RTOL, "params")
    assert_rel(res.stderr["beta"], ref.bse, RTOL, "bse")
    assert_rel(res.loglik, ref.llf, 1e-12, "llf")
    hc0 = sm.MNLogit(y, X).fit(disp=0, method="newton", tol=1e-12, cov_type="HC0")
    assert_rel(res.stderr_robust["beta"], hc0.bse, RTOL, "robust bse")
    # The Hessian does not involve y: the expected information is the observed one.
    exp = MultinomialLogit().fit(X, y, cov_type="expected")
    assert_rel(exp.cov, res.cov, 1e-8, "expected cov")


def test_mnlogit_names_summary_and_labels(anes, mnl_fit):
    X, y, _ = anes
    res = mnl_fit
    assert res.model.categories == tuple(range(7)) and res.model.n_categories == 7
    names = res.param_names
    assert len(names) == 36 and names[:2] == ("logpopul:y=1", "logpopul:y=2")
    assert names[-1] == "const:y=6"
    text = res.summary()
    assert text.startswith("Multinomial logit (7 categories, baseline y=0)")
    for k in range(1, 7):         # every non-baseline category's coefficients are listed
        assert all(f"{c}:y={k}" in text for c in X.columns)
        assert f"y={k} against y=0:" in text          # in its own block, as statsmodels
    block = text.split("y=2 against y=0:")[1].split("y=3 against y=0:")[0]
    assert all(f"{c}:y=2" in block for c in X.columns) and ":y=3" not in block
    # Labels: strings and integers that are not 0..J-1 fit the same model, named by them.
    words = np.array(["c0", "c1", "c2", "c3", "c4", "c5", "c6"])[y.astype(int)]
    res_s = MultinomialLogit().fit(X, words)
    assert res_s.model.categories == ("c0", "c1", "c2", "c3", "c4", "c5", "c6")
    assert res_s.param_names[:2] == ("logpopul:y=c1", "logpopul:y=c2")
    assert_rel(res_s.coef, res.coef, 1e-10, "string labels")
    res_p = MultinomialLogit().fit(X, y + 1)
    assert res_p.model.categories == tuple(range(1, 8))
    assert res_p.param_names[0] == "logpopul:y=2"
    assert_rel(res_p.loglik, res.loglik, 1e-12, "shifted codes")


# ------------------------------------------------------------------------ ordered models


@pytest.mark.parametrize("cls,distr,key", ORDERED)
def test_ordered_ucla_matches_r_polr(ucla, ordered_fits, cls, distr, key):
    X, y, R = ucla
    ref = getattr(R, key)
    res = ordered_fits[cls]
    assert bool(res.converged)
    assert res.model.categories == ("unlikely", "somewhat likely", "very likely")
    assert res.param_names == ("pared", "public", "gpa", "unlikely|somewhat likely",
                               "somewhat likely|very likely")
    # statsmodels' own tolerances against the same R values (test_ordinal_model.py).
    np.testing.assert_allclose(res.coef, ref.coefficients_val, atol=2e-4)
    np.testing.assert_allclose(res.stderr["beta"], ref.coefficients_stdE, rtol=3e-3,
                               atol=1e-5)
    # R stops ~3e-4 relative short of the thresholds' MLE (the tight statsmodels fit below
    # agrees with ours to 1e-8); statsmodels' test reaches its atol=4e-4 only because its
    # default fit stops short too.
    np.testing.assert_allclose(res.params["cuts"], ref.thresholds, rtol=5e-4)
    p = np.asarray(res.predict(X.iloc[:7]))
    np.testing.assert_allclose(p, ref.prob_pred, atol=5e-5)
    np.testing.assert_allclose(np.asarray(res.predict(X)).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("cls,distr,key", ORDERED)
def test_ordered_ucla_matches_statsmodels(ucla, ordered_fits, cls, distr, key):
    from statsmodels.miscmodels.ordinal_model import OrderedModel
    from statsmodels.tools.numdiff import approx_hess3
    X, y, _ = ucla
    res = ordered_fits[cls]
    model = OrderedModel(y, X, distr=distr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model.fit(method="bfgs", disp=0, gtol=1e-10, maxiter=5000)
    b = np.asarray(res.coef)
    c = np.asarray(res.params["cuts"])
    theta = np.r_[b, c[0], np.log(np.diff(c))]          # statsmodels' parameters
    assert_rel(theta, ref.params, RTOL, "params (statsmodels' scale)")
    assert_rel(c, model.transform_threshold_params(ref.params.to_numpy())[1:-1], RTOL,
               "cut-points")
    assert_rel(res.loglik, ref.llf, 1e-12, "llf")
    # d(natural)/d(theta): c_1 = c_0 + exp(theta_4).
    jac = np.eye(5)
    jac[4, 3], jac[4, 4] = 1.0, np.exp(theta[4])
    inv_jac = np.linalg.inv(jac)
    se_theta = np.sqrt(np.diag(inv_jac @ np.asarray(res.cov) @ inv_jac.T))
    assert_rel(se_theta, ref.bse, 2e-5, "bse vs statsmodels' numerical Hessian")
    cov_fd = jac @ np.linalg.inv(-approx_hess3(theta, model.loglike, epsilon=3e-4)) @ jac.T
    assert_rel(np.sqrt(np.diag(np.asarray(res.cov))), np.sqrt(np.diag(cov_fd)), RTOL,
               "natural-scale stderr vs a finite-difference Hessian of statsmodels' loglike")
    # HC0 sandwich: statsmodels' scores and Hessian are numerical (~7e-6 here).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hc0 = model.fit(method="bfgs", disp=0, gtol=1e-10, maxiter=5000, cov_type="HC0")
    se_rob = np.sqrt(np.diag(inv_jac @ np.asarray(res.cov_robust) @ inv_jac.T))
    assert_rel(se_rob, hc0.bse, 3e-5, "robust bse")
    text = res.summary()
    assert "unlikely|somewhat likely" in text and "(in order)" in text


def _logistic_logp_ref(a, b):
    """log(sigmoid(b) - sigmoid(a)) = log(e^b - e^a) - softplus(a) - softplus(b)."""
    return b + np.log(-np.expm1(a - b)) - np.logaddexp(0.0, a) - np.logaddexp(0.0, b)


def _normal_logp_ref(a, b):
    """log(Phi(b) - Phi(a)) by quadrature of the normal density scaled at the end nearer 0."""
    from scipy.integrate import quad
    if a + b < 0:                                    # lower tail: mirror
        a, b = -b, -a
    m = max(a, 0.0)
    val = quad(lambda x: np.exp(-0.5 * (x * x - m * m)), a, b, epsabs=0, epsrel=1e-13)[0]
    return -0.5 * m * m - 0.5 * np.log(2 * np.pi) + np.log(val)


def test_ordered_logp_accurate_in_the_tails():
    cuts = jnp.array([-1.0, 0.5, 2.0])
    etas = np.array([-300.0, -40.0, -3.0, 0.2, 5.0, 40.0, 300.0])
    k = jnp.arange(4)[None, :]
    ext = np.r_[-np.inf, np.asarray(cuts), np.inf]
    log_sig = lambda x: -jax.nn.softplus(-x)                      # noqa: E731
    for name, log_cdf, ref in (("logit", log_sig, _logistic_logp_ref),
                               ("probit", jax.scipy.special.log_ndtr, _normal_logp_ref)):
        got = np.asarray(ordered_logp(cuts, jnp.asarray(etas)[:, None], k, log_cdf))
        assert np.all(np.isfinite(got)), (name, got)
        for i, eta in enumerate(etas):
            for j in (1, 2):                                        # the middle categories
                want = ref(ext[j] - eta, ext[j + 1] - eta)
                assert_rel(got[i, j], want, 1e-11, f"{name} eta={eta} k={j}")
        if name == "logit":   # the end categories: log F(c_0 - eta), log S(c_2 - eta)
            assert_rel(got[:, 0], -np.logaddexp(0.0, etas - ext[1]), 1e-12, "first")
            assert_rel(got[:, 3], -np.logaddexp(0.0, ext[3] - etas), 1e-12, "last")
        grad = jax.grad(lambda c: jnp.sum(ordered_logp(c, jnp.asarray(etas)[:, None], k,
                                                       log_cdf)))(cuts)
        assert np.all(np.isfinite(np.asarray(grad))), (name, grad)


# ------------------------------------------------------------------------ batches


def _check_batch_equals_loop(model, X, ys, feature_names=None):
    batch = model.fit_batch(X, ys)
    assert batch.param_names == model.fit(X, ys[0]).param_names
    for k in range(ys.shape[0]):
        one = model.fit(X, ys[k])
        for leaf in one.params:
            assert_rel(batch.params[leaf][k], one.params[leaf], 1e-8, f"{leaf} [{k}]")
            assert_rel(batch.stderr[leaf][k], one.stderr[leaf], 1e-7, f"se {leaf} [{k}]")
        assert_rel(batch.loglik[k], one.loglik, 1e-12, f"loglik [{k}]")
    return batch


def test_fit_batch_equals_loop_mnlogit(anes, rng):
    X, y, _ = anes
    ys = np.stack([y[rng.permutation(len(y))] for _ in range(3)])
    batch = _check_batch_equals_loop(MultinomialLogit(), X, ys)
    p = np.asarray(batch.predict(X.iloc[:5]))
    assert p.shape == (3, 5, 7)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("cls", [OrderedLogit, OrderedProbit])
def test_fit_batch_equals_loop_ordered(ucla, rng, cls):
    X, y, _ = ucla
    labels = np.asarray(y.astype(str))
    ys = np.stack([labels[rng.permutation(len(labels))] for _ in range(3)])
    cats = ("unlikely", "somewhat likely", "very likely")
    batch = _check_batch_equals_loop(cls(categories=cats), X, ys)
    assert batch.model.categories == cats
    assert np.asarray(batch.predict(X.iloc[:4])).shape == (3, 4, 3)


# ------------------------------------------------------------------------ bad input


X_SMALL = np.column_stack([np.linspace(-1.0, 1.0, 12), np.cos(np.arange(12.0))])


@pytest.mark.parametrize("cls", [MultinomialLogit, OrderedLogit, OrderedProbit])
def test_bad_input_raises_clearly(cls):
    y = np.array([0, 0, 1, 0, 1, 0, 2, 1, 2, 1, 2, 2])
    with pytest.raises(ValueError, match="non-integer values such as \\[0.5\\]"):
        cls().fit(X_SMALL, np.where(y == 2, 0.5, y))
    with pytest.raises(ValueError, match="category 'b' \\(code 1\\) never occurs"):
        cls(categories=("a", "b", "c")).fit(X_SMALL, np.array(["a", "c"])[(y > 0) * 1])
    with pytest.raises(ValueError, match="category '3' \\(code 3\\) never occurs"):
        cls(n_categories=4).fit(X_SMALL, y)
    with pytest.raises(ValueError, match="n_categories=2 means y holds the codes 0..1"):
        cls(n_categories=2).fit(X_SMALL, y)
    with pytest.raises(ValueError, match="not among categories"):
        cls(categories=("a", "b")).fit(X_SMALL, np.array(["a", "b", "z"])[y])
    with pytest.raises(ValueError, match="single category"):
        cls().fit(X_SMALL, np.zeros(12))
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(X_SMALL, np.where(y == 2, np.nan, y))
    with pytest.raises(ValueError, match="n_categories=3 but categories has 2"):
        cls(n_categories=3, categories=("a", "b"))
    with pytest.raises(ValueError, match="n_categories must be an integer >= 2"):
        cls(n_categories=1)
    # J mismatch in a batch: dataset 1 lacks category 2 (fit_batch fits one J to all).
    ys = np.stack([y, np.where(y == 2, 1, y), y])
    with pytest.raises(ValueError, match=r"category '2' \(code 2\) never occurs \(in "
                                         r"datasets \[1\], 1 of 3\).*one J"):
        cls().fit_batch(X_SMALL, ys)
    # A traced y needs the number of categories.
    with pytest.raises(ValueError, match="give n_categories="):
        jax.jit(lambda yy: cls().fit(X_SMALL, yy).loglik)(jnp.asarray(y, float))


@pytest.mark.parametrize("cls", [OrderedLogit, OrderedProbit])
def test_ordered_rejects_a_constant_column(cls):
    y = np.array([0, 0, 1, 0, 1, 0, 2, 1, 2, 1, 2, 2])
    X = sm.add_constant(X_SMALL)
    with pytest.raises(ValueError, match="column 'const' of X is constant.*no intercept"):
        cls().fit(X, y, feature_names=["const", "x1", "x2"])
    with pytest.raises(ValueError, match="column 'x1' of X is constant"):
        cls().fit(X[:, :1] * 2.0, y)
    assert cls.intercept is False


def test_mnlogit_rejects_offset():
    y = np.array([0, 0, 1, 0, 1, 0, 2, 1, 2, 1, 2, 2])
    with pytest.raises(ValueError, match="no offset"):
        MultinomialLogit().fit(X_SMALL, y, offset=np.zeros(12))


def test_weight_zero_rows_make_no_category(ucla):
    # A label only in rows of weight 0 (padding) is not a category; those rows are ignored.
    X, y, _ = ucla
    labels = np.asarray(y.astype(str)).astype(object)
    w = np.ones(len(labels))
    w[-1] = 0.0
    ref = OrderedLogit().fit(X, y, weights=w)
    labels[-1] = "not a level"
    res = OrderedLogit(categories=("unlikely", "somewhat likely", "very likely")).fit(
        X, labels, weights=w)
    assert res.model.categories == ref.model.categories
    assert_rel(res.params["cuts"], ref.params["cuts"], 1e-12, "cuts")
    assert_rel(res.loglik, ref.loglik, 1e-12, "loglik")
    # specialize, the hook the fit calls, reads the categories from the rows of weight > 0.
    model = MultinomialLogit().specialize(np.array([0.0, 1.0, 2.0, 9.0]),
                                          np.array([True, True, True, False]))
    assert model.categories == (0, 1, 2) and model.n_categories == 3
