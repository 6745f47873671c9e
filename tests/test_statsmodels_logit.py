"""Regression fits against statsmodels on datasets shipped with statsmodels (float64).

References: statsmodels ``Logit`` (spector data) and ``GLM`` with the Poisson family
(cpunish data); parameters and standard errors (``.params`` / ``.bse``) to 1e-6
relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sm = pytest.importorskip("statsmodels.api")

import mlejax as mj  # noqa: E402
from conftest import assert_rel  # noqa: E402

METHODS = ["newton", "bfgs", "lbfgs"]
RTOL = 1e-6


def logit_ll(params, data):
    eta = data["X"] @ params["beta"]
    # Bernoulli log-likelihood with a logit link, per observation.
    return data["y"] * eta - jax.nn.softplus(eta)


def poisson_reg_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jnp.exp(eta) - jax.scipy.special.gammaln(data["y"] + 1.0)


def _spector():
    d = sm.datasets.spector.load_pandas()
    X = sm.add_constant(d.exog, prepend=True).to_numpy(dtype=np.float64)
    y = d.endog.to_numpy(dtype=np.float64)
    return X, y


def _cpunish():
    d = sm.datasets.cpunish.load_pandas()
    Z = d.exog.to_numpy(dtype=np.float64)
    Z = (Z - Z.mean(0)) / Z.std(0)  # well scaled covariates
    X = sm.add_constant(Z, prepend=True)
    y = d.endog.to_numpy(dtype=np.float64)
    return X, y


@pytest.fixture(scope="module")
def spector():
    X, y = _spector()
    ref = sm.Logit(y, X).fit(disp=0)
    return X, y, np.asarray(ref.params), np.asarray(ref.bse), float(ref.llf)


@pytest.fixture(scope="module")
def cpunish():
    X, y = _cpunish()
    # GLM's IRLS reports bse from the weights of its last iteration; at the default tol=1e-8
    # those are ~4e-7 relative away from the inverse Hessian at the returned params, which
    # is too close to the 1e-6 budget: tighten it, and cross-check with the discrete Poisson.
    ref = sm.GLM(y, X, family=sm.families.Poisson()).fit(tol=1e-13)
    alt = sm.Poisson(y, X).fit(disp=0)
    np.testing.assert_allclose(ref.params, alt.params, rtol=1e-9)
    np.testing.assert_allclose(ref.bse, alt.bse, rtol=1e-9)
    return X, y, np.asarray(ref.params), np.asarray(ref.bse), float(ref.llf)


@pytest.mark.parametrize("method", METHODS)
def test_logit_spector_matches_statsmodels(spector, method):
    X, y, ref_params, ref_bse, ref_llf = spector
    data = {"X": jnp.asarray(X), "y": jnp.asarray(y)}
    res = mj.fit(logit_ll, {"beta": jnp.zeros(X.shape[1])}, data, method=method)
    assert bool(res.converged), f"{method}: status {int(res.status)} ({res.message})"
    assert_rel(res.params["beta"], ref_params, RTOL, f"{method}: params")
    assert_rel(res.stderr["beta"], ref_bse, RTOL, f"{method}: stderr")
    assert_rel(res.loglik, ref_llf, 1e-9, f"{method}: loglik")
    assert res.param_names == tuple(f"beta[{i}]" for i in range(X.shape[1]))
    assert np.shape(res.cov) == (X.shape[1], X.shape[1])


# Newton only here: the solvers are already compared with statsmodels on the logit.
@pytest.mark.parametrize("method", ["newton"])
def test_poisson_glm_cpunish_matches_statsmodels(cpunish, method):
    X, y, ref_params, ref_bse, ref_llf = cpunish
    data = {"X": jnp.asarray(X), "y": jnp.asarray(y)}
    res = mj.fit(poisson_reg_ll, {"beta": jnp.zeros(X.shape[1])}, data, method=method)
    assert bool(res.converged), f"{method}: status {int(res.status)} ({res.message})"
    assert_rel(res.params["beta"], ref_params, RTOL, f"{method}: params")
    assert_rel(res.stderr["beta"], ref_bse, RTOL, f"{method}: stderr")
    assert_rel(res.loglik, ref_llf, 1e-9, f"{method}: loglik")
