"""Penalised fits (``penalty=``, ``mj.penalties``) against scikit-learn and numpy.

References: scikit-learn's ``LogisticRegression`` (lbfgs for L2, saga and liblinear for L1,
saga for the elastic net; its ``C`` is ``1 / lam``, its intercept unpenalised), and the
plain and penalised objectives recomputed in numpy at the estimate.
"""

import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import mlejax as mj  # noqa: E402

N, P = 120, 5
_rng = np.random.default_rng(0)
X = _rng.normal(size=(N, P))
BETA = np.array([1.5, -1.0, 0.0, 0.0, 0.4])
Y = (_rng.uniform(size=N) < 1.0 / (1.0 + np.exp(-(X @ BETA + 0.3)))).astype(float)
INIT = {"w": jnp.zeros(P), "b": 0.0}


def logistic_ll(params, d):
    x, y = d
    eta = x @ params["w"] + params["b"]
    return y * eta - jnp.logaddexp(0.0, eta)


def np_loglik(w, b, x=X, y=Y):
    eta = x @ w + b
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _sk_version():
    return tuple(int(v) for v in sklearn.__version__.split(".")[:2])


def sklearn_logistic(c, kind, x=X, y=Y, l1_ratio=None):
    """scikit-learn's fit, tolerances tight; the ``penalty=`` argument is deprecated from
    1.8 on (``l1_ratio`` names the penalty), so both spellings are handled."""
    if kind == "liblinear":
        # liblinear penalises the intercept; a large intercept_scaling makes that negligible.
        opts = dict(solver="liblinear", tol=1e-10, max_iter=100_000, intercept_scaling=1e4)
    else:
        opts = dict(solver="saga" if kind != "l2" else "lbfgs", tol=1e-12, max_iter=200_000)
    ratio = {"l2": 0.0, "l1": 1.0, "saga": 1.0, "liblinear": 1.0}.get(kind, l1_ratio)
    if _sk_version() >= (1, 8):
        model = LogisticRegression(C=c, l1_ratio=ratio, **opts)
    else:
        name = {0.0: "l2", 1.0: "l1"}.get(ratio, "elasticnet")
        extra = {"l1_ratio": ratio} if name == "elasticnet" else {}
        model = LogisticRegression(C=c, penalty=name, **opts, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def test_l2_logistic_equals_sklearn_and_reports_both_objectives():
    c = 0.5
    res = mj.fit(logistic_ll, INIT, (X, Y), penalty=mj.penalties.l2(1.0 / c, on="w"))
    assert bool(res.converged)
    w_sk, b_sk = sklearn_logistic(c, "l2")
    # The bar: scikit-learn's estimate to 1e-6 (absolute, coefficients of size ~1).
    np.testing.assert_allclose(np.asarray(res.params["w"]), w_sk, atol=1e-6, rtol=0)
    assert abs(float(res.params["b"]) - b_sk) < 1e-6
    # loglik is the plain log-likelihood, objective the penalised one (numpy recomputation).
    w, b = np.asarray(res.params["w"]), float(res.params["b"])
    assert abs(float(res.loglik) - np_loglik(w, b)) < 1e-9
    assert abs(float(res.objective) - (np_loglik(w, b) - 0.5 / c * w @ w)) < 1e-9
    assert float(res.trace[0]) == pytest.approx(np_loglik(np.zeros(P), 0.0), abs=1e-9)
    assert res.penalty == "l2(2.0, on=('w',))"
    # Standard errors come from the penalised Hessian: X'WX + lam I on w (numpy), labelled.
    eta = X @ w + b
    v = 1.0 / (1.0 + np.exp(-eta))
    v = v * (1 - v)
    xa = np.column_stack([X, np.ones(N)])              # param_names order (INIT's): w[0..4], b
    info = xa.T @ (v[:, None] * xa) + np.diag([1.0 / c] * P + [0.0])
    np.testing.assert_allclose(np.asarray(res.cov), np.linalg.inv(info), rtol=1e-6)
    text = res.summary()
    assert "penalised objective" in text and "inverse Hessian of the penalised objective" in text
    assert "AIC, BIC: n/a" in text
    # AIC/BIC refuse a penalised fit unless the degrees of freedom are given.
    with pytest.raises(ValueError, match="effective"):
        res.aic
    with pytest.raises(ValueError, match="with_df"):
        res.bic
    r3 = res.with_df(3.5)
    assert float(r3.aic) == pytest.approx(7.0 - 2.0 * np_loglik(w, b), abs=1e-9)
    assert float(r3.bic) == pytest.approx(3.5 * np.log(N) - 2.0 * np_loglik(w, b), abs=1e-9)
    # A penalised fit has no likelihood-ratio test or profile interval.
    with pytest.raises(ValueError, match="penalised"):
        mj.lrt(res, res, df=1)
    with pytest.raises(ValueError, match="penalised"):
        res.confint(method="profile")

    # Any function of the params is a penalty: the same ridge written by hand.
    res_fn = mj.fit(logistic_ll, INIT, (X, Y), penalty=lambda p: -0.5 / c * p["w"] @ p["w"])
    np.testing.assert_allclose(np.asarray(res_fn.params["w"]), w_sk, atol=1e-6, rtol=0)
    assert res_fn.penalty.startswith("function")


@pytest.mark.parametrize("c", [0.1])
def test_l1_exact_zeros_where_sklearn_has_them(c):
    res = mj.fit(logistic_ll, INIT, (X, Y), penalty=mj.penalties.l1(1.0 / c, on="w"))
    assert bool(res.converged)
    w = np.asarray(res.params["w"])
    w_saga, b_saga = sklearn_logistic(c, "saga")
    w_lib, _ = sklearn_logistic(c, "liblinear")
    zeros = w_saga == 0.0
    assert 0 < zeros.sum() < P                       # a case with zeros and non-zeros
    # Exact zeros (not small numbers) exactly where both scikit-learn solvers put them.
    np.testing.assert_array_equal(w == 0.0, zeros)
    np.testing.assert_array_equal(w_lib == 0.0, zeros)
    # saga solves the same problem (intercept unpenalised): values to 1e-6.
    np.testing.assert_allclose(w, w_saga, atol=1e-6, rtol=0)
    assert abs(float(res.params["b"]) - b_saga) < 1e-6
    # KKT at the zeros, from numpy: |d loglik / d w_j| <= lam.
    eta = X @ w + float(res.params["b"])
    grad = X.T @ (Y - 1.0 / (1.0 + np.exp(-eta)))
    assert np.all(np.abs(grad[zeros]) <= 1.0 / c + 1e-9)
    np.testing.assert_allclose(grad[~zeros], np.sign(w[~zeros]) / c, atol=1e-6)
    assert float(res.objective) == pytest.approx(
        np_loglik(w, float(res.params["b"])) - np.abs(w).sum() / c, abs=1e-9)
    # The count of non-zero coefficients is the lasso's effective df (Zou et al. 2007).
    df = 1 + int(np.sum(w != 0))
    assert float(res.with_df(df).aic) == pytest.approx(2 * df - 2 * float(res.loglik))


def test_l1_and_elastic_net_in_a_batch_equal_sklearn_per_dataset():
    """vmap over datasets with the proximal solver: each dataset's zeros and values equal
    scikit-learn's (saga) fitted alone."""
    k, c, ratio = 3, 0.2, 0.6
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(k, N, P))
    ys = (rng.uniform(size=(k, N)) < 1 / (1 + np.exp(-(xs @ BETA)))).astype(float)
    pen = mj.penalties.elastic_net(1.0 / c, ratio, on="w")
    res = mj.fit_batch(logistic_ll, INIT, (xs, ys), penalty=pen)
    assert np.all(np.asarray(res.converged))
    n_zero = 0
    for j in range(k):
        w_sk, b_sk = sklearn_logistic(c, "elasticnet", xs[j], ys[j], l1_ratio=ratio)
        w = np.asarray(res.params["w"][j])
        np.testing.assert_array_equal(w == 0.0, w_sk == 0.0)
        np.testing.assert_allclose(w, w_sk, atol=1e-6, rtol=0)
        assert abs(float(res.params["b"][j]) - b_sk) < 1e-6
        n_zero += int(np.sum(w == 0.0))
    assert n_zero > 0


def test_tempered_penalised_fit_ends_at_the_penalised_optimum():
    """anneal= without smoothing scales the log-likelihood by beta: a path from the
    penalty (the prior) to the penalised likelihood, ending at the same optimum."""
    pen = mj.penalties.l2(2.0, on="w")          # the program of the first test, reused
    plain = mj.fit(logistic_ll, INIT, (X, Y), penalty=pen)
    tempered = mj.fit(logistic_ll, INIT, (X, Y), penalty=pen,
                      anneal=mj.anneal.linear(start=0.25, steps=4))
    assert bool(tempered.converged)
    np.testing.assert_allclose(np.asarray(tempered.params["w"]),
                               np.asarray(plain.params["w"]), atol=1e-9, rtol=0)
    assert float(tempered.objective) == pytest.approx(float(plain.objective), abs=1e-10)


def test_penalised_fit_in_float32_matches_float64():
    c = 0.5
    pen = mj.penalties.l2(1.0 / c, on="w")
    init32 = {"w": jnp.zeros(P, jnp.float32), "b": jnp.float32(0.0)}
    data32 = (jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    res32 = mj.fit(logistic_ll, init32, data32, penalty=pen)
    assert res32.params["w"].dtype == jnp.float32 and res32.objective.dtype == jnp.float32
    assert bool(res32.converged)
    w_sk, _ = sklearn_logistic(c, "l2")
    np.testing.assert_allclose(np.asarray(res32.params["w"]), w_sk, atol=2e-4, rtol=0)


def test_penalty_values_and_errors():
    p = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
    assert float(mj.penalties.l2(2.0)(p)) == pytest.approx(-(1 + 4 + 9))
    assert float(mj.penalties.l1(0.5, on="w")(p)) == pytest.approx(-1.5)
    sm = mj.penalties.l1(1.0, on="w", smooth=1e-3)(p)
    assert float(sm) == pytest.approx(-3.0, abs=2e-3)
    en = mj.penalties.elastic_net(2.0, 0.25, on=lambda q: q["w"][1:])(p)
    assert float(en) == pytest.approx(-2.0 * (0.25 * 2 + 0.75 / 2 * 4))
    both = mj.penalties.l2(1.0, on="w") + (lambda q: -q["b"] ** 2)
    assert float(both(p)) == pytest.approx(-2.5 - 9.0)
    with pytest.raises(ValueError, match="lam"):
        mj.penalties.l2(-1.0)
    with pytest.raises(ValueError, match="l1_ratio"):
        mj.penalties.elastic_net(1.0, 1.5)
    with pytest.raises(ValueError, match="on="):
        mj.penalties.l2(1.0, on=3)
    with pytest.raises(ValueError, match="penalty="):
        mj.fit(logistic_ll, INIT, (X, Y), penalty="l2")
    with pytest.raises(ValueError, match="no key"):
        mj.fit(logistic_ll, INIT, (X, Y), penalty=mj.penalties.l2(1.0, on="beta"))
    # Exact zeros need Newton's proximal variant and unconstrained parameters.
    with pytest.raises(ValueError, match="proximal Newton"):
        mj.fit(logistic_ll, INIT, (X, Y), penalty=mj.penalties.l1(1.0), method="bfgs")
    x = jnp.linspace(0.5, 2.0, 20)

    def normal_ll(q, x):
        return jax.scipy.stats.norm.logpdf(x, q["mu"], q["sigma"])

    with pytest.raises(ValueError, match="unconstrained"):
        mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive},
               penalty=mj.penalties.l1(1.0))
    with pytest.raises(ValueError, match="select"):
        mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive},
               penalty=mj.penalties.l1(1.0, on=lambda q: q["mu"] * 2))
    with pytest.raises(ValueError, match="scalar"):
        mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive},
               penalty=lambda q: jnp.zeros(2))
