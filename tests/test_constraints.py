"""Constraints: bijection round trips, and standard errors on the natural scale.

``FitResult.cov`` must be the inverse observed information of the *natural-scale*
log-likelihood (no log-Jacobian, no unconstrained-scale covariance leaking out). The
references are the inverse of ``-jax.hessian`` of a natural-scale log-likelihood
written here independently, evaluated at ``res.params``, and closed forms where they
exist (multinomial covariance, multivariate normal MLE).
"""

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import mlejax as mj
from conftest import N_NORMAL, assert_rel, flat_index, normal_ll

COV_RTOL = 1e-8


def assert_cov_close(actual, expected, rtol=COV_RTOL, what=""):
    """Relative to the largest entry, so exact zeros (e.g. cross terms at the MLE) compare."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * np.max(np.abs(expected)), err_msg=what)


def independent_cov(natural_total_ll, params, data):
    """inv(-H) of a natural-scale total log-likelihood over the flattened params."""
    flat, unravel = ravel_pytree(params)
    H = jax.jit(jax.hessian(lambda v: natural_total_ll(unravel(v), data)))(flat)
    return np.linalg.inv(-np.asarray(H))


def _spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


# ---- user-defined constraints (the two routes of the documented API) ---------------

# By the helper: k effects summing to zero, k - 1 free coordinates (the last axis shrinks).
SUM_TO_ZERO = mj.constraint(
    forward=lambda u: jnp.concatenate([u, -jnp.sum(u, axis=-1, keepdims=True)], axis=-1),
    inverse=lambda x: x[..., :-1],
    check=lambda x: None if np.allclose(x.sum(-1), 0.0, atol=1e-9) else "must sum to 0",
    name="sum_to_zero")


class IncreasingPositive(mj.Constraint):
    """By subclassing: 0 < x_0 < x_1 < ..., x = cumsum(exp(u)) (no check: the default one)."""

    name = "increasing_positive"

    def forward(self, u):
        return jnp.cumsum(jnp.exp(u), axis=-1)

    def inverse(self, x):
        return jnp.log(jnp.diff(x, axis=-1, prepend=0.0))


INCREASING_POSITIVE = IncreasingPositive()


# ---- round trips ------------------------------------------------------------------

ROUND_TRIP = [
    ("real", mj.real, np.array([-3.0, 0.0, 2.5, 1e6])),
    ("positive", mj.positive, np.array([1e-3, 1.0, 50.0])),
    ("interval", mj.interval(-2.0, 5.0), np.array([-1.9, 0.0, 4.99])),
    ("unit_interval", mj.unit_interval, np.array([0.01, 0.5, 0.99])),
    ("simplex", mj.simplex, np.array([0.2, 0.3, 0.5])),
    ("simplex_batched", mj.simplex, np.array([[0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])),
    ("positive_definite", mj.positive_definite, _spd(3, 0)),
    ("positive_definite_1x1", mj.positive_definite, np.array([[2.5]])),
    ("ordered", mj.ordered, np.array([-1.5, -0.2, 0.4, 3.0])),
    ("ordered_batched", mj.ordered, np.array([[-1.0, 0.0, 5.0], [2.0, 2.5, 2.6]])),
    ("ordered_one", mj.ordered, np.array([0.7])),
    ("positive_sum_below", mj.positive_sum_below(1.0), np.array([0.08, 0.9])),
    ("positive_sum_below_batched", mj.positive_sum_below(2.5),
     np.array([[0.5, 1.0, 0.2], [1e-3, 2.0, 0.4]])),
    ("sum_to_zero_user", SUM_TO_ZERO, np.array([1.0, -3.0, 0.5, 1.5])),
    ("increasing_positive_user", INCREASING_POSITIVE, np.array([0.2, 0.9, 4.0])),
]


@pytest.mark.parametrize("name,c,x", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_forward_inverse_round_trip(name, c, x):
    x = jnp.asarray(x)
    u = c.inverse(x)
    assert bool(jnp.all(jnp.isfinite(u))), f"{name}: inverse not finite: {u}"
    np.testing.assert_allclose(np.asarray(c.forward(u)), np.asarray(x), rtol=1e-12, atol=1e-12)
    # and the other way round, from the unconstrained side
    np.testing.assert_allclose(np.asarray(c.inverse(c.forward(u))), np.asarray(u),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,c,x", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_forward_lands_inside_constraint(name, c, x):
    u = np.random.default_rng(1).normal(scale=2.0, size=np.shape(c.inverse(jnp.asarray(x))))
    y = np.asarray(c.forward(jnp.asarray(u)))
    if name == "positive":
        assert np.all(y > 0)
    elif name == "interval":
        assert np.all((y > -2.0) & (y < 5.0))
    elif name == "unit_interval":
        assert np.all((y > 0) & (y < 1))
    elif name.startswith("simplex"):
        assert np.all(y > 0)
        np.testing.assert_allclose(y.sum(-1), 1.0, rtol=0, atol=1e-14)
    elif name.startswith("positive_definite"):
        np.testing.assert_allclose(y, y.T, rtol=0, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(y) > 0)
    elif name.startswith("ordered"):
        assert y.shape == np.shape(x) and np.all(np.diff(y, axis=-1) > 0)
    elif name.startswith("positive_sum_below"):
        bound = c.bound
        assert y.shape == np.shape(x) and np.all(y > 0) and np.all(y.sum(-1) < bound)
    elif name == "sum_to_zero_user":
        assert y.shape == np.shape(x)
        np.testing.assert_allclose(y.sum(-1), 0.0, rtol=0, atol=1e-12)
    elif name == "increasing_positive_user":
        assert y[0] > 0 and np.all(np.diff(y) > 0)
    assert c.check(y) is None, f"{name}: forward's output fails check: {c.check(y)}"


# ---- natural-scale covariance ------------------------------------------------------

_rng = np.random.default_rng(99)
X_NORM = _rng.normal(1.2, 0.8, size=N_NORMAL)
_zero = _rng.uniform(size=80) < 0.3
X_ZIP = np.where(_zero, 0.0, _rng.poisson(2.5, size=80)).astype(np.float64)
K = 4
_cats = _rng.choice(K, size=60, p=[0.1, 0.2, 0.3, 0.4])
X_CAT = np.eye(K)[_cats]  # one-hot
D = 3
_true_cov = np.array([[1.0, 0.5, -0.3], [0.5, 2.0, 0.4], [-0.3, 0.4, 1.5]])
X_MVN = _rng.multivariate_normal([0.5, -1.0, 2.0], _true_cov, size=60)


def normal_total(params, x):
    return jnp.sum(normal_ll(params, x))


def zip_ll(params, x):
    """Zero-inflated Poisson: P(0) = pi + (1-pi) e^-lam, P(k) = (1-pi) Pois(k; lam)."""
    pi, lam = params["pi"], params["lam"]
    pois = x * jnp.log(lam) - lam - jsp.gammaln(x + 1.0)
    return jnp.where(x == 0, jnp.log(pi + (1 - pi) * jnp.exp(-lam)), jnp.log1p(-pi) + pois)


def zip_total(params, x):
    return jnp.sum(zip_ll(params, x))


def categorical_ll(params, x):
    return x @ jnp.log(params["probs"])


def mvn_ll(params, x):
    L = jnp.linalg.cholesky(params["cov"])
    z = jax.scipy.linalg.solve_triangular(L, (x - params["mean"]).T, lower=True)
    d = x.shape[-1]
    return (-0.5 * jnp.sum(z**2, axis=0) - jnp.sum(jnp.log(jnp.diagonal(L)))
            - 0.5 * d * jnp.log(2 * jnp.pi))


@pytest.mark.parametrize(
    "mu_constraint", [mj.real, mj.interval(-1.0, 3.0)], ids=["real", "interval"]
)
def test_normal_cov_real_and_interval_mean(mu_constraint):
    init = {"mu": jnp.asarray(0.5), "sigma": jnp.asarray(1.0)}
    res = mj.fit(normal_ll, init, jnp.asarray(X_NORM),
                 constraints={"mu": mu_constraint, "sigma": mj.positive})
    assert bool(res.converged), res.message
    assert_rel(res.params["mu"], X_NORM.mean(), 1e-10, "mu")
    assert_rel(res.params["sigma"], X_NORM.std(), 1e-10, "sigma")
    ref = independent_cov(normal_total, res.params, jnp.asarray(X_NORM))
    assert_cov_close(res.cov, ref, what="cov vs inv(-hessian)")
    n, s = X_NORM.size, X_NORM.std()
    assert_cov_close(res.cov, np.diag([s**2 / n, s**2 / (2 * n)]), what="closed form")
    assert_rel(res.stderr["mu"], np.sqrt(ref[0, 0]), COV_RTOL, "stderr mu")
    assert_rel(res.stderr["sigma"], np.sqrt(ref[1, 1]), COV_RTOL, "stderr sigma")


def test_interval_mean_near_bound_cov_is_natural_scale():
    # mean close to the upper bound of the interval: the logistic Jacobian is far from 1,
    # so an unconstrained-scale covariance would be off by orders of magnitude.
    x = X_NORM - X_NORM.mean() + 2.9
    init = {"mu": jnp.asarray(2.0), "sigma": jnp.asarray(1.0)}
    res = mj.fit(normal_ll, init, jnp.asarray(x),
                 constraints={"mu": mj.interval(-1.0, 3.0), "sigma": mj.positive})
    assert bool(res.converged), res.message
    assert_rel(res.params["mu"], x.mean(), 1e-10, "mu")
    ref = independent_cov(normal_total, res.params, jnp.asarray(x))
    assert_cov_close(res.cov, ref, what="cov vs inv(-hessian)")


def test_zero_inflated_poisson_unit_interval_and_positive():
    # keys in sorted order: cov's order is the same whether it follows JAX's or the written one
    init = {"lam": jnp.asarray(1.0), "pi": jnp.asarray(0.5)}
    res = mj.fit(zip_ll, init, jnp.asarray(X_ZIP),
                 constraints={"pi": mj.unit_interval, "lam": mj.positive})
    assert bool(res.converged), res.message
    ref = independent_cov(zip_total, res.params, jnp.asarray(X_ZIP))
    assert abs(ref[0, 1]) > 1e-3 * np.sqrt(ref[0, 0] * ref[1, 1])  # non-trivial correlation
    assert_cov_close(res.cov, ref, what="cov vs inv(-hessian)")
    idx = flat_index(res.params)
    assert_rel(res.stderr["pi"], np.sqrt(ref[idx["pi"], idx["pi"]]), COV_RTOL, "se pi")
    assert_rel(res.stderr["lam"], np.sqrt(ref[idx["lam"], idx["lam"]]), COV_RTOL, "se lam")


def test_simplex_categorical_cov_on_free_coordinates():
    init = {"probs": jnp.full((K,), 1.0 / K)}
    res = mj.fit(categorical_ll, init, jnp.asarray(X_CAT), constraints={"probs": mj.simplex})
    assert bool(res.converged), res.message
    n = X_CAT.shape[0]
    p_hat = X_CAT.mean(0)
    assert_rel(res.params["probs"], p_hat, 1e-10, "probs = counts / n")
    assert np.shape(res.cov) == (K, K)

    # Free coordinates: the first k-1 probabilities, the last = 1 - sum.
    counts = jnp.asarray(X_CAT.sum(0))

    def reduced_ll(q):
        p = jnp.concatenate([q, 1.0 - jnp.sum(q, keepdims=True)])
        return counts @ jnp.log(p)

    q = jnp.asarray(res.params["probs"][: K - 1])
    ref_block = np.linalg.inv(-np.asarray(jax.jit(jax.hessian(reduced_ll))(q)))
    assert_cov_close(np.asarray(res.cov)[: K - 1, : K - 1], ref_block,
                     what="(k-1)x(k-1) block vs inv(-hessian of reduced loglik)")
    # Closed form over all k coordinates: the (singular) multinomial covariance.
    assert_cov_close(res.cov, (np.diag(p_hat) - np.outer(p_hat, p_hat)) / n,
                     what="full cov vs (diag(p) - p p^T)/n")
    assert_rel(res.stderr["probs"], np.sqrt(p_hat * (1 - p_hat) / n), COV_RTOL, "stderr")


def test_positive_definite_mvn_closed_form():
    n, d = X_MVN.shape
    init = {"cov": jnp.eye(d), "mean": jnp.zeros(d)}   # sorted keys, as above
    res = mj.fit(mvn_ll, init, jnp.asarray(X_MVN), constraints={"cov": mj.positive_definite})
    assert bool(res.converged), res.message
    xbar = X_MVN.mean(0)
    S = (X_MVN - xbar).T @ (X_MVN - xbar) / n  # biased sample covariance
    assert_rel(res.params["mean"], xbar, 1e-10, "mean")
    assert_rel(res.params["cov"], S, 1e-9, "cov = biased sample covariance")
    assert_rel(res.stderr["mean"], np.sqrt(np.diag(S) / n), 1e-8, "stderr mean")
    # Var(S_ij) = (S_ii S_jj + S_ij^2) / n at the MLE (observed = expected information here).
    se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / n)
    assert_rel(res.stderr["cov"], se_cov, 1e-8, "stderr cov entries")

    # The whole covariance in closed form: mean block S/n, mean-Sigma block 0, and
    # Cov(S_ij, S_kl) = (S_ik S_jl + S_il S_jk) / n over the d*d entries of Sigma (its
    # symmetric entries are one parameter, so their rows coincide).
    idx = flat_index(res.params)
    p = np.asarray(res.cov).shape[0]
    assert p == d + d * d
    ref = np.zeros((p, p))
    m = idx["mean"]
    ref[np.ix_(m, m)] = S / n
    for i in range(d):
        for j in range(d):
            for k in range(d):
                for l in range(d):
                    ref[idx["cov"][i, j], idx["cov"][k, l]] = (S[i, k] * S[j, l]
                                                               + S[i, l] * S[j, k]) / n
    assert_cov_close(res.cov, ref, what="cov vs closed form (mean, Sigma)")
