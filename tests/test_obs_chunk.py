"""``obs_chunk=``: the log-likelihood and its derivatives summed over chunks of observations.

References: statsmodels ``Logit`` (parameters, standard errors, log-likelihood to 1e-6
relative in float64, 1e-3 in float32), the closed-form normal MLE (mean, biased variance), and
the same fit without chunks (to 1e-9: the sums differ only in the order of the additions).
Sizes are chosen so a remainder chunk is left over (n = 403 in chunks of 50, 97 or 7).
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj
from conftest import assert_rel

sm = pytest.importorskip("statsmodels.api")

N, D = 403, 4


def logit_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jax.nn.softplus(eta)


@pytest.fixture(scope="module")
def logit_data():
    rng = np.random.default_rng(3)
    X = np.concatenate([np.ones((N, 1)), rng.normal(size=(N, D - 1))], axis=1)
    beta = np.array([0.3, -0.8, 0.5, 0.0])
    y = (rng.uniform(size=N) < 1.0 / (1.0 + np.exp(-X @ beta))).astype(np.float64)
    return X, y


def _fit(data, dtype=jnp.float64, **kw):
    X, y = data
    return mj.fit(logit_ll, {"beta": jnp.zeros(D, dtype)},
                  {"X": jnp.asarray(X, dtype), "y": jnp.asarray(y, dtype)}, **kw)


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs"])
def test_chunked_logit_matches_statsmodels(logit_data, method):
    X, y = logit_data
    ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
    res = _fit(logit_data, method=method, obs_chunk=50)
    assert res.converged
    assert_rel(res.params["beta"], ref.params, 1e-6, "params")
    assert_rel(res.stderr["beta"], ref.bse, 1e-6, "standard errors")
    assert_rel(res.loglik, ref.llf, 1e-10, "log-likelihood")
    assert int(res.nobs) == N


def test_chunked_logit_float32(logit_data):
    X, y = logit_data
    ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
    res = _fit(logit_data, jnp.float32, obs_chunk=97)
    assert res.converged and res.params["beta"].dtype == jnp.float32
    np.testing.assert_allclose(res.params["beta"], ref.params, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(res.stderr["beta"], ref.bse, rtol=1e-3)


def test_chunks_equal_whole_data_with_weights_and_penalty(logit_data):
    w = np.random.default_rng(4).uniform(0.0, 2.0, size=N)
    w[::7] = 0.0   # zero weights drop observations, inside chunks too
    kw = dict(weights=w, penalty=mj.penalties.l2(2.0))
    whole = _fit(logit_data, **kw)
    chunked = _fit(logit_data, obs_chunk=50, **kw)
    assert whole.converged and chunked.converged
    assert_rel(chunked.params["beta"], whole.params["beta"], 1e-9, "params")
    assert_rel(chunked.stderr["beta"], whole.stderr["beta"], 1e-9, "standard errors")
    assert_rel(chunked.loglik, whole.loglik, 1e-12, "log-likelihood (unpenalised)")
    assert_rel(chunked.objective, whole.objective, 1e-12, "penalised objective")
    assert int(chunked.nobs) == int(whole.nobs) == int(np.sum(w > 0))


def test_chunked_normal_closed_form():
    x = np.random.default_rng(5).normal(2.0, 1.5, size=50)

    def ll(p, x):
        return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])

    res = mj.fit(ll, {"mu": 0.0, "sigma": 1.0}, jnp.asarray(x),
                 constraints={"sigma": mj.positive}, obs_chunk=7)
    assert res.converged
    assert_rel(res.params["mu"], x.mean(), 1e-10, "mu = mean")
    assert_rel(res.params["sigma"] ** 2, x.var(), 1e-10, "sigma^2 = biased variance")
    assert_rel(res.stderr["mu"], x.std() / np.sqrt(x.size), 1e-8, "se(mu) = sigma/sqrt(n)")


def test_chunked_batch_and_restarts_equal_unchunked(logit_data):
    X, y = logit_data
    rng = np.random.default_rng(6)
    Xs = np.stack([X, X[::-1], X[rng.permutation(N)]])
    ys = np.stack([y, y[::-1], y[rng.permutation(N)]])
    data = {"X": jnp.asarray(Xs), "y": jnp.asarray(ys)}
    init = {"beta": jnp.zeros(D)}
    kw = dict(restarts=3, key=jax.random.key(0), restart_scale=0.5)
    whole = mj.fit_batch(logit_ll, init, data, **kw)
    chunked = mj.fit_batch(logit_ll, init, data, obs_chunk=97, **kw)
    assert bool(np.all(chunked.converged))
    np.testing.assert_allclose(chunked.params["beta"], whole.params["beta"], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(chunked.stderr["beta"], whole.stderr["beta"], rtol=1e-9)


@pytest.mark.parametrize("bad, match", [
    (0, "positive integer"),
    (2.5, "positive integer"),
    (True, "positive integer"),
])
def test_obs_chunk_must_be_a_positive_integer(logit_data, bad, match):
    with pytest.raises(ValueError, match=match):
        _fit(logit_data, obs_chunk=bad)


def test_obs_chunk_needs_per_observation_values(logit_data):
    X, y = logit_data

    def total(params, data):
        return jnp.sum(logit_ll(params, data))

    with pytest.raises(ValueError, match="per-observation values"):
        mj.fit(total, {"beta": jnp.zeros(D)}, {"X": jnp.asarray(X), "y": jnp.asarray(y)},
               obs_chunk=50)


def test_obs_chunk_needs_observations_on_axis_0(logit_data):
    X, y = logit_data

    def ll(params, data):
        return logit_ll(params, {"X": data["Xt"].T, "y": data["y"]})

    with pytest.raises(ValueError, match=r"axis 0 of every data leaf.*\['Xt'\]"):
        mj.fit(ll, {"beta": jnp.zeros(D)}, {"Xt": jnp.asarray(X.T), "y": jnp.asarray(y)},
               obs_chunk=50)


def test_obs_chunk_does_not_combine_with_minibatches(logit_data):
    with pytest.raises(ValueError, match="batch_size"):
        _fit(logit_data, method="gradient", batch_size=32, key=jax.random.key(0),
             obs_chunk=50)


def test_models_take_obs_chunk(logit_data):
    X, y = logit_data
    ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
    res = mj.models.Logistic().fit(X, y, obs_chunk=50)   # X holds the constant
    assert res.converged
    assert_rel(res.params["beta"], ref.params, 1e-6, "Logistic params")
    assert_rel(res.stderr["beta"], ref.bse, 1e-6, "Logistic standard errors")
    # A model reading a fixed value from data (StudentT's df) gets one copy per row.
    z = X[:, 1:] @ np.array([1.0, -0.5, 0.25]) + np.random.default_rng(7).standard_t(4, N)
    whole = mj.models.StudentT(df=4).fit(X[:, 1:], z)
    chunked = mj.models.StudentT(df=4).fit(X[:, 1:], z, obs_chunk=97)
    assert_rel(chunked.params["beta"], whole.params["beta"], 1e-9, "StudentT params")
    assert_rel(chunked.stderr["sigma"], whole.stderr["sigma"], 1e-9, "StudentT se(sigma)")


def test_inference_after_a_chunked_fit_equals_unchunked():
    """Profile intervals, sandwich errors and the bootstrap from a chunked fit equal those
    of the whole-data fit (profile refits evaluate the whole data; bootstrap refits are
    chunked like the fit)."""
    x = np.random.default_rng(8).gamma(2.0, 1.5, size=203)

    def ll(p, x):
        return jax.scipy.stats.gamma.logpdf(x, p["a"], scale=p["s"])

    cons = {"a": mj.positive, "s": mj.positive}
    whole = mj.fit(ll, {"a": 1.0, "s": 1.0}, jnp.asarray(x), constraints=cons)
    chunked = mj.fit(ll, {"a": 1.0, "s": 1.0}, jnp.asarray(x), constraints=cons, obs_chunk=50)
    a, b = whole.confint(method="profile"), chunked.confint(method="profile")
    np.testing.assert_allclose(b.lower, a.lower, rtol=1e-8)
    np.testing.assert_allclose(b.upper, a.upper, rtol=1e-8)
    for k in ("a", "s"):
        assert_rel(chunked.stderr_robust[k], whole.stderr_robust[k], 1e-9, f"robust se {k}")
    ba = mj.bootstrap(whole, n=20, key=jax.random.key(1))
    bb = mj.bootstrap(chunked, n=20, key=jax.random.key(1))
    np.testing.assert_allclose(bb.replicates["a"], ba.replicates["a"], rtol=1e-8)


def test_obs_chunk_needs_the_observations_in_data(logit_data):
    X, y = logit_data
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def closure(params, data):
        del data
        return logit_ll(params, {"X": Xj, "y": yj})

    with pytest.raises(ValueError, match="pass the observations as data="):
        mj.fit(closure, {"beta": jnp.zeros(D)}, None, obs_chunk=50)


def test_rows_sharded_over_three_host_devices():
    """fit(devices=...) in a process with three host devices: n = 403 rows (padded to 405
    at weight 0), chunked and not, equal statsmodels and the one-device fit; sandwich
    errors after it too."""
    code = textwrap.dedent("""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=3"
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        import mlejax as mj
        import statsmodels.api as sm
        assert len(jax.devices()) == 3
        rng = np.random.default_rng(3)
        X = np.concatenate([np.ones((403, 1)), rng.normal(size=(403, 3))], axis=1)
        p = 1.0 / (1.0 + np.exp(-X @ np.array([0.3, -0.8, 0.5, 0.0])))
        y = (rng.uniform(size=403) < p).astype(np.float64)
        def ll(params, d):
            eta = d["X"] @ params["beta"]
            return d["y"] * eta - jax.nn.softplus(eta)
        data, init = {"X": X, "y": y}, {"beta": jnp.zeros(4)}
        ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
        one = mj.fit(ll, init, data)
        for kw in (dict(obs_chunk=50), {}):
            res = mj.fit(ll, init, data, devices=jax.devices(), **kw)
            assert bool(res.converged) and int(res.nobs) == 403, kw
            np.testing.assert_allclose(res.params["beta"], ref.params, rtol=1e-6)
            np.testing.assert_allclose(res.stderr["beta"], ref.bse, rtol=1e-6)
            np.testing.assert_allclose(res.params["beta"], one.params["beta"], rtol=1e-9,
                                       atol=1e-10)
        res = mj.fit(ll, init, data, devices=jax.devices(), obs_chunk=50)
        np.testing.assert_allclose(res.stderr_robust["beta"], one.stderr_robust["beta"],
                                   rtol=1e-9)
        try:
            mj.fit(ll, init, data, devices=jax.devices(), restarts=2, key=jax.random.key(0))
            raise AssertionError("restarts with devices= must be refused")
        except ValueError as err:
            assert "restarts" in str(err)
        print("sharded rows ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sharded rows ok" in out.stdout


def test_devices_must_be_jax_devices(logit_data):
    with pytest.raises(ValueError, match="list of JAX devices"):
        _fit(logit_data, devices=["cpu:0"])
    with pytest.raises(ValueError, match="list of JAX devices"):
        _fit(logit_data, devices=[])
    one = _fit(logit_data, devices=jax.devices()[:1])   # one device: nothing to shard
    assert one.converged
