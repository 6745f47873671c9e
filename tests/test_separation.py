"""A maximum that is not attained is reported, never "converged" (float64).

A logistic log-likelihood written by the user, fitted to perfectly (or quasi-perfectly)
separated data, meets the stopping test at a finite point with standard errors ~1e7: the
fit must say ``Status.NOT_ATTAINED`` with a ``FitWarning`` (``mlejax/_attained.py``). The
same likelihood on ordinary data converges to statsmodels' ``Logit`` estimates (1e-6
relative); Poisson and normal fits are unaffected; in a batch only the separated dataset is
flagged.
"""

import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlejax as mj  # noqa: E402

sm = pytest.importorskip("statsmodels.api")


def logistic_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jnp.logaddexp(0.0, eta)


def poisson_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jnp.exp(eta)


N = 40
X = np.column_stack([np.ones(N), np.linspace(-2.0, 2.0, N), np.cos(np.arange(N))])
INIT = {"beta": jnp.zeros(3)}


# Quasi-separation: x1 separates the outcomes except at four exact ties x1 == 0, where both
# occur (the MLE of the x1 coefficient is +infinity; the others stay finite).
TIES = np.arange(N // 2 - 2, N // 2 + 2)
X_QUASI = X.copy()
X_QUASI[TIES, 1] = 0.0


def _data(y, x=X):
    return {"X": jnp.asarray(x), "y": jnp.asarray(y, jnp.float64)}


def _y_separated():
    return (X[:, 1] + 0.3 * X[:, 2] > 0.1).astype(np.float64)       # a combination separates


def _y_quasi():
    y = (X_QUASI[:, 1] > 0).astype(np.float64)
    y[TIES] = [0.0, 1.0, 0.0, 1.0]
    return y


def _y_ordinary():
    rng = np.random.default_rng(3)
    p = 1.0 / (1.0 + np.exp(-(0.3 + 1.1 * X[:, 1] - 0.7 * X[:, 2])))
    return (rng.uniform(size=N) < p).astype(np.float64)


def _fit(y, x=X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mj.fit(logistic_ll, INIT, _data(y, x), method="newton")
    return res, [w for w in caught if issubclass(w.category, mj.FitWarning)]


@pytest.mark.parametrize("make_y, x", [(_y_separated, X), (_y_quasi, X_QUASI)],
                         ids=["separated", "quasi"])
def test_separation_is_not_attained(make_y, x):
    res, caught = _fit(make_y(), x)
    assert mj.Status(int(res.status)) == mj.Status.NOT_ATTAINED
    assert not bool(res.converged)
    assert caught and "not attained" in str(caught[0].message)
    text = res.summary()
    assert "status=NOT_ATTAINED" in text and "maximum is not attained" in text
    assert "did NOT converge" in text


def test_ordinary_data_converge_to_statsmodels_logit():
    y = _y_ordinary()
    res, caught = _fit(y)
    assert mj.Status(int(res.status)) == mj.Status.CONVERGED and not caught
    ref = sm.Logit(y, X).fit(disp=False, tol=1e-12)
    np.testing.assert_allclose(res.params["beta"], ref.params, rtol=1e-6)
    np.testing.assert_allclose(res.stderr["beta"], ref.bse, rtol=1e-6)


def test_poisson_and_normal_fits_unaffected():
    rng = np.random.default_rng(5)
    counts = rng.poisson(np.exp(0.2 + 0.5 * X[:, 1]))
    res = mj.fit(poisson_ll, INIT, _data(counts))
    assert mj.Status(int(res.status)) == mj.Status.CONVERGED
    ref = sm.GLM(counts, X, family=sm.families.Poisson()).fit(tol=1e-12)
    np.testing.assert_allclose(res.params["beta"], ref.params, rtol=1e-6)
    x = jnp.asarray(rng.normal(1.0, 2.0, size=N))
    norm = mj.fit(lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"]),
                  {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive})
    assert mj.Status(int(norm.status)) == mj.Status.CONVERGED


def test_batch_flags_the_separated_dataset_alone():
    ys = np.stack([_y_ordinary(), _y_separated(), _y_ordinary()[::-1], _y_quasi()])
    data = {"X": jnp.asarray(np.stack([X, X, X, X_QUASI])), "y": jnp.asarray(ys)}
    with pytest.warns(mj.FitWarning, match="did not converge in 2 of 4 fits"):
        res = mj.fit_batch(logistic_ll, INIT, data)
    codes = [mj.Status(int(c)) for c in res.status]
    assert codes == [mj.Status.CONVERGED, mj.Status.NOT_ATTAINED, mj.Status.CONVERGED,
                     mj.Status.NOT_ATTAINED]
    for k in (0, 2):   # the others' fits are those of a single fit
        one, _ = _fit(ys[k])
        np.testing.assert_allclose(res.params["beta"][k], one.params["beta"], rtol=1e-10)
    assert "NOT_ATTAINED" in res.summary() and "converged: 50.0% (2/4)" in res.summary()
