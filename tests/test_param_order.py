"""Parameters in the order the user wrote them (issue 20, item 6).

JAX sorts dict keys when it flattens a pytree; ``param_names``, ``cov``, ``summary()``, the
confidence-interval table, the flat vectors of a result and of a bootstrap follow the order of
the keys of ``init`` as written instead. The reference covariance is ``inv(-H)`` of the
log-likelihood written by hand over a vector in the written order (``jax.hessian``), and the
estimates are the closed-form least-squares ones.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlejax as mj  # noqa: E402
from mlejax import _validate as V  # noqa: E402

RNG = np.random.default_rng(7)
N = 60
X = RNG.normal(size=N)
Y = 1.0 + 0.5 * X + 0.3 * RNG.normal(size=N)
DATA = (jnp.asarray(X), jnp.asarray(Y))


def loglik(p, data):
    x, y = data
    return jax.scipy.stats.norm.logpdf(y, p["const"] + p["alpha"] * x, p["sigma"])


INIT = {"sigma": 1.0, "const": 0.0, "alpha": 0.0}       # not sorted: sigma, const, alpha
CONS = {"sigma": mj.positive}


@pytest.fixture(scope="module")
def res():
    return mj.fit(loglik, INIT, DATA, constraints=CONS)


def test_written_order_of_nested_trees():
    tree = {"b": {"z": 1.0, "a": [2.0, 3.0]}, "a": 4.0}
    leaves = jax.tree_util.tree_leaves(tree)
    assert [leaves[j] for j in V.written_order(tree)] == [1.0, 2.0, 3.0, 4.0]
    assert V.written_order([{"y": 1.0, "x": 2.0}, 3.0]) == (1, 0, 2)


def test_names_estimates_and_cov_follow_init(res):
    assert res.param_names == ("sigma", "const", "alpha")
    assert int(res.status) == int(mj.Status.CONVERGED)
    A = np.column_stack([np.ones(N), X])
    beta, rss = np.linalg.lstsq(A, Y, rcond=None)[:2]
    want = np.array([np.sqrt(rss[0] / N), beta[0], beta[1]])
    np.testing.assert_allclose(res.flat_params(), want, rtol=1e-8)

    def ll_vec(v):     # the written order, by hand: sigma, const, alpha
        return jnp.sum(jax.scipy.stats.norm.logpdf(DATA[1], v[1] + v[2] * DATA[0], v[0]))

    cov = np.linalg.inv(-np.asarray(jax.hessian(ll_vec)(jnp.asarray(want))))
    np.testing.assert_allclose(np.asarray(res.cov), cov, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(res.flat_stderr(), np.sqrt(np.diag(cov)), rtol=1e-6)
    assert float(res.stderr["const"]) == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-6)


def test_tables_follow_init(res):
    rows = [line.split()[0] for line in res.summary().splitlines()
            if line.split() and line.split()[0] in INIT]
    assert rows == ["sigma", "const", "alpha"]
    ci = res.confint(0.95)
    assert ci.param_names == ("sigma", "const", "alpha")
    est = np.asarray(ci.estimate)
    np.testing.assert_allclose(est, res.flat_params(), rtol=1e-12)
    prof = res.confint(0.95, method="profile")
    assert np.all(np.asarray(prof.lower) < est) and np.all(est < np.asarray(prof.upper))


def test_batch_and_bootstrap_follow_init(res):
    xs = jnp.stack([DATA[0]] * 3)
    ys = jnp.stack([DATA[1], DATA[1] + 1.0, DATA[1] - 1.0])
    batch = mj.fit_batch(loglik, INIT, (xs, ys), constraints=CONS)
    assert batch.param_names == res.param_names
    flat = batch.flat_params()
    np.testing.assert_allclose(flat[:, 1], np.asarray(batch.params["const"]), rtol=1e-12)
    np.testing.assert_allclose(flat[0], res.flat_params(), rtol=1e-8)
    boot = mj.bootstrap(res, DATA, n=8, key=jax.random.key(0))
    np.testing.assert_allclose(np.asarray(boot.flat_estimate()), res.flat_params(), rtol=1e-12)


def test_em_closed_form_m_step_follows_init():
    x = jnp.asarray(np.concatenate([RNG.normal(-2, 1, 80), RNG.normal(2, 1, 80)]))

    def joint(p, x):     # two unit-variance normals with weights w, 1 - w
        w = jnp.stack([p["w"], 1.0 - p["w"]])
        return jnp.log(w) + jax.scipy.stats.norm.logpdf(x[:, None], p["mu"], 1.0)

    def m_step(resp, x):
        return {"mu": resp.T @ x / resp.sum(0), "w": jnp.mean(resp[:, 0])}

    init = {"w": 0.5, "mu": jnp.array([-1.0, 1.0])}
    out = mj.em(joint, init, x, m_step=m_step, constraints={"w": mj.unit_interval})
    assert out.param_names == ("w", "mu[0]", "mu[1]")
    assert int(out.status) == int(mj.Status.CONVERGED)
    np.testing.assert_allclose(out.flat_params()[0], float(out.params["w"]))
