"""A Hessian with non-finite entries is diagnosed (NONFINITE_HESSIAN), not mistaken for a
singular one, and Newton still climbs to the maximum.

The ordered probit below pads its cut-points with -inf/+inf; the log-likelihood and its
gradient are finite, but the autodiff second derivative of ``norm.cdf(inf - eta)`` holds
``inf * 0`` (NaN). The reference is statsmodels' ``OrderedModel(distr="probit")``, whose
cut-points are the first cut and then log-increments (converted here).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

import mlejax as mj

N, K = 300, 4
BETA = np.array([0.8, -0.5])
CUTS = np.array([-0.7, 0.2, 1.1])


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 2))
    latent = x @ BETA + rng.standard_normal(N)
    y = np.searchsorted(CUTS, latent)          # categories 0..3
    return x, y


def _loglik(params, data):
    inf = jnp.asarray(jnp.inf, params["cuts"].dtype)
    cuts = jnp.concatenate([-inf[None], params["cuts"], inf[None]])
    eta = data["x"] @ params["beta"]
    y = data["y"]
    p = norm.cdf(cuts[y + 1] - eta) - norm.cdf(cuts[y] - eta)
    return jnp.log(p)


def _init(dtype):
    return {"beta": jnp.zeros(2, dtype), "cuts": jnp.asarray([-1.0, 0.0, 1.0], dtype)}


@pytest.fixture(scope="module")
def reference():
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    x, y = _data()
    res = OrderedModel(y, x, distr="probit").fit(method="bfgs", disp=False, maxiter=2000,
                                                 gtol=1e-8)
    assert res.mle_retvals["converged"]
    th = np.asarray(res.params)
    inc = np.exp(th[3:])
    cuts = np.concatenate([[th[2]], th[2] + np.cumsum(inc)])
    # Delta method to the natural cut-points: d cuts / d (c0, l1, l2).
    jac = np.zeros((5, 5))
    jac[:2, :2] = np.eye(2)
    jac[2:, 2] = 1.0
    for j in range(2):
        jac[3 + j:, 3 + j] = inc[j]
    cov = jac @ np.asarray(res.cov_params()) @ jac.T
    return np.concatenate([th[:2], cuts]), np.sqrt(np.diag(cov)), float(res.llf)


def test_the_autodiff_hessian_is_nonfinite():
    # The premise: finite log-likelihood and gradient, NaN in the Hessian.
    x, y = _data()
    data = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    params = _init(jnp.float64)
    total = lambda p: jnp.sum(_loglik(p, data))  # noqa: E731
    assert np.isfinite(float(total(params)))
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(jax.grad(total)(params)))
    h = jax.hessian(total)(params)
    assert not all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves(h))


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs"])
def test_reaches_statsmodels_optimum_and_says_why_no_stderr(method, reference):
    ref, ref_se, ref_llf = reference
    x, y = _data()
    data = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    with pytest.warns(mj.FitWarning, match="non-finite") as rec:
        res = mj.fit(_loglik, _init(jnp.float64), data, method=method)
    status = mj.Status(int(res.status))
    assert status == mj.Status.NONFINITE_HESSIAN, (status, res.message, int(res.n_steps))
    assert "second derivatives are not finite" in res.message
    assert not any("singular" in str(w.message) for w in rec)
    assert not any("did not converge" in str(w.message) for w in rec)
    est = np.concatenate([np.asarray(res.params["beta"]), np.asarray(res.params["cuts"])])
    np.testing.assert_array_less(np.abs(est - ref) / ref_se, 1e-6)
    np.testing.assert_allclose(float(res.loglik), ref_llf, rtol=1e-10)
    assert np.all(np.isnan(np.asarray(res.stderr["beta"])))
    assert np.all(np.isnan(np.asarray(res.stderr["cuts"])))
    assert np.all(np.isnan(np.asarray(res.cov)))
    assert not bool(res.converged)   # documented: the estimate is usable, the SEs are not


def test_float32_runs():
    x, y = _data()
    data = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mj.FitWarning)
        res = mj.fit(_loglik, _init(jnp.float32), data, method="newton")
    assert res.params["beta"].dtype == jnp.float32
    assert int(res.status) in (mj.Status.NONFINITE_HESSIAN, mj.Status.CONVERGED), res.message
    est = np.asarray(res.params["beta"])
    assert np.all(np.isfinite(est))
    np.testing.assert_allclose(est, BETA, atol=0.3)


def test_batched_equals_one_by_one():
    # Under vmap the BFGS fallback runs as one batch-level conditional (_model_where).
    xs, ys = zip(*(_data(seed) for seed in (1, 2)))
    data = {"x": jnp.asarray(np.stack(xs)), "y": jnp.asarray(np.stack(ys))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mj.FitWarning)
        batch = mj.fit_batch(_loglik, _init(jnp.float64), data, method="newton")
        for i in range(2):
            one = mj.fit(_loglik, _init(jnp.float64), {"x": data["x"][i], "y": data["y"][i]},
                         method="newton")
            assert int(batch.status[i]) == int(one.status) == mj.Status.NONFINITE_HESSIAN
            np.testing.assert_allclose(np.asarray(batch.params["beta"][i]),
                                       np.asarray(one.params["beta"]), rtol=1e-9)
