"""The ordered, positive-sum-below and user-defined constraints, in the models they are for.

Each constraint is tested like the built-in ones (tests/test_constraints.py holds their round
trips): the covariance through the transform against the inverse of ``-jax.hessian`` of a
natural-scale log-likelihood written here, or a closed form; a bad ``init`` raises
``ValueError`` before the log-likelihood is ever traced; ``fit_batch`` / ``jax.vmap``; float32.

References from other libraries (float64):

* ordered probit with ``mj.ordered`` cut-points against statsmodels'
  ``OrderedModel(distr="probit")``;
* GARCH(1,1) with ``(alpha, beta)`` under ``mj.positive_sum_below(1.0)`` against the ``arch``
  package, with arch's backcast of the initial variance replicated.

Every ``init`` dict is written with its keys in sorted order, so that the flattened order of
``FitResult.cov`` is the same whether it follows JAX's (sorted) order or the written one.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import mlejax as mj
from conftest import assert_rel
from test_constraints import INCREASING_POSITIVE, SUM_TO_ZERO, assert_cov_close, independent_cov

F32_RTOL = 1e-4


# ---- ordered: normal means of ordered groups (closed form) --------------------------------

N_GROUPS = np.array([12, 15, 18])
G_ORD = np.repeat(np.arange(3), N_GROUPS)
_rng = np.random.default_rng(31)
# Four datasets whose group means are increasing (the constraint is inactive at the MLE).
Y_ORD = (np.array([-1.0, 0.5, 2.0])[G_ORD] + _rng.normal(0.0, 0.7, size=(4, G_ORD.size))
         + np.arange(4)[:, None])


def grouped_normal_ll(params, y):
    mu = params["mu"][jnp.asarray(G_ORD)]
    z = (y - mu) / params["sigma"]
    return -0.5 * z**2 - jnp.log(params["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)


def _grouped_closed_form(y):
    """MLE and inverse observed information of the grouped normal model, (mu, sigma)."""
    means = np.array([y[G_ORD == j].mean() for j in range(3)])
    s2 = np.mean((y - means[G_ORD]) ** 2)
    cov = np.diag(np.r_[s2 / N_GROUPS, s2 / (2 * y.size)])
    return means, np.sqrt(s2), cov


def test_ordered_fit_batch_closed_form():
    init = {"mu": jnp.array([-1.0, 0.0, 1.0]), "sigma": jnp.asarray(1.0)}
    res = mj.fit_batch(grouped_normal_ll, init, jnp.asarray(Y_ORD),
                       constraints={"mu": mj.ordered, "sigma": mj.positive})
    assert bool(np.all(res.converged)), res.summary()
    assert res.param_names == ("mu[0]", "mu[1]", "mu[2]", "sigma")
    for k in range(Y_ORD.shape[0]):
        means, sigma, cov = _grouped_closed_form(Y_ORD[k])
        assert np.all(np.diff(means) > 0)
        assert_rel(res.params["mu"][k], means, 1e-10, f"dataset {k}: mu = group means")
        assert_rel(res.params["sigma"][k], sigma, 1e-10, f"dataset {k}: sigma")
        assert_cov_close(res.cov[k], cov, rtol=1e-8, what=f"dataset {k}: cov vs closed form")


def test_ordered_float32():
    y32 = jnp.asarray(Y_ORD[0], jnp.float32)
    init = {"mu": jnp.array([-1.0, 0.0, 1.0], jnp.float32), "sigma": jnp.asarray(1.0, jnp.float32)}
    res = mj.fit(grouped_normal_ll, init, y32,
                 constraints={"mu": mj.ordered, "sigma": mj.positive})
    assert int(res.status) == int(mj.Status.CONVERGED), res.message
    assert res.params["mu"].dtype == jnp.float32 and res.cov.dtype == jnp.float32
    means, sigma, cov = _grouped_closed_form(np.asarray(y32, np.float64))
    assert_rel(res.params["mu"], means, F32_RTOL, "mu")
    assert_rel(res.params["sigma"], sigma, F32_RTOL, "sigma")
    assert_rel(res.stderr["mu"], np.sqrt(np.diag(cov)[:3]), F32_RTOL, "stderr mu")


# ---- ordered: ordered probit against statsmodels --------------------------------------------

_prng = np.random.default_rng(2024)
N_OP = 400
X_OP = _prng.normal(size=(N_OP, 2))
Y_OP = np.searchsorted(np.array([-0.7, 0.3, 1.2]),
                       X_OP @ np.array([0.8, -0.5]) + _prng.normal(size=N_OP))  # 4 categories


def ordered_probit_ll(params, data):
    """P(y = j) = Phi(c_j - eta) - Phi(c_{j-1} - eta), with Phi(c_{-1}) = 0 and Phi(c_k) = 1
    written by jnp.where (no infinite cut-points); the cut-points are natural parameters."""
    eta = data["X"] @ params["beta"]
    c = params["cuts"]
    k = c.shape[-1]
    y = data["y"]
    upper = jnp.where(y == k, 1.0, jax.scipy.stats.norm.cdf(c[jnp.clip(y, 0, k - 1)] - eta))
    lower = jnp.where(y == 0, 0.0, jax.scipy.stats.norm.cdf(c[jnp.clip(y - 1, 0, k - 1)] - eta))
    return jnp.log(upper - lower)


def _ordered_to_cuts(u):
    """statsmodels' threshold parameters (first cut, log increments) -> cut-points (numpy)."""
    return np.cumsum(np.r_[u[0], np.exp(u[1:])])


def _ordered_jacobian(u):
    """d cuts / d u of the map above, written out: d c_k/d u_0 = 1, d c_k/d u_j = e^{u_j}."""
    k = u.size
    jac = np.zeros((k, k))
    jac[:, 0] = 1.0
    for row in range(k):
        for j in range(1, row + 1):
            jac[row, j] = np.exp(u[j])
    return jac


def test_ordered_probit_against_statsmodels():
    """Params and standard errors within 1e-5 relative of statsmodels'.

    statsmodels estimates ``(beta, c_0, log(c_1 - c_0), log(c_2 - c_1))``: its thresholds are
    converted to cut-points, and their standard errors by the delta method with the Jacobian
    written out above; the slopes' estimates and standard errors are compared directly.
    statsmodels' Newton (numerical derivatives: a tol below 1e-10 is under their noise and
    never met) is run to tol=1e-10; its standard errors come from a numerical Hessian
    (measured agreement: estimates 1e-9, standard errors 3e-7 relative). mlejax's
    covariance is also checked against inv(-jax.hessian) of the natural-scale log-likelihood.
    """
    ordinal = pytest.importorskip("statsmodels.miscmodels.ordinal_model")
    ref = ordinal.OrderedModel(Y_OP, X_OP, distr="probit").fit(
        method="newton", tol=1e-10, maxiter=100, disp=0)
    assert ref.mle_retvals["converged"]
    sm_params, sm_cov = np.asarray(ref.params), np.asarray(ref.cov_params())
    u_ref = sm_params[2:]
    jac = _ordered_jacobian(u_ref)
    cuts_ref = _ordered_to_cuts(u_ref)
    cuts_se_ref = np.sqrt(np.diag(jac @ sm_cov[2:, 2:] @ jac.T))

    data = {"X": jnp.asarray(X_OP), "y": jnp.asarray(Y_OP)}
    init = {"beta": jnp.zeros(2), "cuts": jnp.array([-1.0, 0.0, 1.0])}
    res = mj.fit(ordered_probit_ll, init, data, constraints={"cuts": mj.ordered})
    assert bool(res.converged), res.message
    assert_rel(res.params["beta"], sm_params[:2], 1e-5, "beta vs statsmodels")
    assert_rel(res.params["cuts"], cuts_ref, 1e-5, "cut-points vs statsmodels (converted)")
    assert_rel(res.stderr["beta"], np.sqrt(np.diag(sm_cov)[:2]), 1e-5, "stderr beta")
    assert_rel(res.stderr["cuts"], cuts_se_ref, 1e-5, "stderr cut-points (delta method)")
    assert_rel(res.loglik, ref.llf, 1e-10, "log-likelihood")

    total = lambda p, d: jnp.sum(ordered_probit_ll(p, d))  # noqa: E731
    assert_cov_close(res.cov, independent_cov(total, res.params, data),
                     what="cov vs inv(-hessian) on the natural scale")


# ---- positive_sum_below: the first k - 1 of k probabilities, scaled (closed form) ----------

BOUND = 2.0
KCAT = 4
_crng = np.random.default_rng(5)
CATS = _crng.choice(KCAT, size=(3, 80), p=[0.15, 0.25, 0.35, 0.25])
ONEHOT = np.eye(KCAT)[CATS]       # (3 datasets, 80, 4)


def scaled_categorical_ll(params, x):
    """q = BOUND * (p_0, ..., p_{k-2}); the last probability is 1 - sum(q) / BOUND."""
    q = params["q"]
    probs = jnp.concatenate([q / BOUND, 1.0 - jnp.sum(q, keepdims=True) / BOUND])
    return x @ jnp.log(probs)


def _multinomial_closed_form(onehot):
    p = onehot.mean(0)
    n = onehot.shape[0]
    cov_p = (np.diag(p) - np.outer(p, p)) / n
    return BOUND * p[:-1], BOUND**2 * cov_p[:-1, :-1]


def test_positive_sum_below_fit_batch_closed_form():
    init = {"q": jnp.full((KCAT - 1,), BOUND / KCAT)}
    res = mj.fit_batch(scaled_categorical_ll, init, jnp.asarray(ONEHOT),
                       constraints={"q": mj.positive_sum_below(BOUND)})
    assert bool(np.all(res.converged)), res.summary()
    for k in range(ONEHOT.shape[0]):
        q, cov = _multinomial_closed_form(ONEHOT[k])
        assert_rel(res.params["q"][k], q, 1e-10, f"dataset {k}: q = BOUND * counts / n")
        assert_cov_close(res.cov[k], cov, what=f"dataset {k}: cov vs BOUND^2 (diag p - pp')/n")
    # and a single fit equals the batch's element (vmap equals a loop)
    one = mj.fit(scaled_categorical_ll, init, jnp.asarray(ONEHOT[1]),
                 constraints={"q": mj.positive_sum_below(BOUND)})
    assert_rel(one.params["q"], res.params["q"][1], 1e-10, "fit vs fit_batch element")
    assert_rel(one.stderr["q"], res.stderr["q"][1], 1e-8, "fit vs fit_batch element: stderr")


def test_positive_sum_below_float32():
    x32 = jnp.asarray(ONEHOT[0], jnp.float32)
    init = {"q": jnp.full((KCAT - 1,), BOUND / KCAT, jnp.float32)}
    res = mj.fit(scaled_categorical_ll, init, x32,
                 constraints={"q": mj.positive_sum_below(BOUND)})
    assert int(res.status) == int(mj.Status.CONVERGED), res.message
    assert res.params["q"].dtype == jnp.float32
    q, cov = _multinomial_closed_form(ONEHOT[0])
    assert_rel(res.params["q"], q, F32_RTOL, "q")
    assert_rel(res.stderr["q"], np.sqrt(np.diag(cov)), F32_RTOL, "stderr q")


# ---- positive_sum_below: GARCH(1,1) against arch --------------------------------------------

def _simulate_garch(n=1000, seed=7, mu=0.1, omega=0.05, alpha=0.08, beta=0.9):
    rng = np.random.default_rng(seed)
    y = np.empty(n)
    s2, e_prev = omega / (1 - alpha - beta), 0.0
    for t in range(n):
        if t:
            s2 = omega + alpha * e_prev**2 + beta * s2
        e_prev = np.sqrt(s2) * rng.normal()
        y[t] = mu + e_prev
    return y


def arch_backcast(resid):
    """arch's GARCH backcast of sigma^2_0 (``arch.univariate.volatility.GARCH.backcast``,
    power 2): exponentially weighted (0.94^i, normalised) mean of the first min(75, n)
    squared residuals. arch computes it once, from the residuals at its starting values
    (``y - mean(y)`` for a constant mean), and keeps it fixed while it maximises."""
    tau = min(75, resid.size)
    w = 0.94 ** np.arange(tau)
    return float(np.sum(resid[:tau] ** 2 * w / w.sum()))


def garch_ll(params, data):
    """sigma^2_t = omega + alpha e^2_{t-1} + beta sigma^2_{t-1}, with e^2_{-1} and sigma^2_{-1}
    both the backcast (arch's recursion); normal log-density per observation."""
    e = data["y"] - params["mu"]
    alpha, beta = params["ab"][0], params["ab"][1]

    def step(carry, e_t):
        s2_prev, e2_prev = carry
        s2 = params["omega"] + alpha * e2_prev + beta * s2_prev
        return (s2, e_t**2), s2

    bc = data["backcast"]
    _, s2 = jax.lax.scan(step, (bc, bc), e)
    return -0.5 * (jnp.log(2 * jnp.pi) + jnp.log(s2) + e**2 / s2)


def test_garch_against_arch():
    """Estimates within 1e-3 standard errors of arch's, standard errors within 1e-3 relative.

    The mean is a constant in both; arch's backcast is replicated exactly (arch_backcast, and
    arch's own value is compared with it). arch maximises with SLSQP, here to tol=1e-12;
    its classic (inverse Hessian) standard errors come from a finite-difference Hessian,
    which is why they are compared at 1e-3 relative (measured: 5e-5) while the estimates
    agree to 2e-6 standard errors. mlejax's covariance is also checked against
    inv(-jax.hessian) of the natural-scale log-likelihood at 1e-8.
    """
    arch = pytest.importorskip("arch")
    y = _simulate_garch()
    ref = arch.arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal").fit(
        disp="off", cov_type="classic", tol=1e-12, options={"maxiter": 2000, "ftol": 1e-14})
    assert ref.convergence_flag == 0
    backcast = arch_backcast(y - y.mean())
    assert_rel(ref.model._backcast, backcast, 1e-14, "arch's backcast replicated")
    p_ref = ref.params[["mu", "omega", "alpha[1]", "beta[1]"]].to_numpy()
    se_ref = ref.std_err[["mu", "omega", "alpha[1]", "beta[1]"]].to_numpy()

    data = {"backcast": jnp.asarray(backcast), "y": jnp.asarray(y)}
    init = {"ab": jnp.array([0.1, 0.8]), "mu": jnp.asarray(float(y.mean())),
            "omega": jnp.asarray(0.1 * float(y.var()))}
    res = mj.fit(garch_ll, init, data,
                 constraints={"ab": mj.positive_sum_below(1.0), "omega": mj.positive})
    assert bool(res.converged), res.message
    est = np.r_[res.params["mu"], res.params["omega"], res.params["ab"]]
    se = np.r_[res.stderr["mu"], res.stderr["omega"], res.stderr["ab"]]
    np.testing.assert_array_less(np.abs(est - p_ref) / se_ref, 1e-3,
                                 err_msg="estimates vs arch, in standard errors")
    assert_rel(se, se_ref, 1e-3, "standard errors vs arch (finite-difference Hessian)")
    assert_rel(res.loglik, ref.loglikelihood, 1e-10, "log-likelihood vs arch")

    total = lambda p, d: jnp.sum(garch_ll(p, d))  # noqa: E731
    assert_cov_close(res.cov, independent_cov(total, res.params, data),
                     what="cov vs inv(-hessian) on the natural scale")


# ---- user-defined: sum-to-zero effects (shape-changing, closed form) -------------------------

G_EFF = np.repeat(np.arange(3), 10)
Y_EFF = np.array([1.0, 2.5, 4.0])[G_EFF] + np.random.default_rng(8).normal(0, 0.5, size=30)


def effects_ll(params, y):
    mean = params["mu"] + params["effect"][jnp.asarray(G_EFF)]
    return jax.scipy.stats.norm.logpdf(y, mean, params["sigma"])


def test_user_sum_to_zero_closed_form():
    """One-way normal ANOVA, balanced (n per group, N in all): mu = ybar, a_j = ybar_j - ybar,
    Var(mu) = s2/N, Var(a_j) = s2 (1/n - 1/N), Cov(a_i, a_j) = -s2/N, Cov(mu, a) = 0,
    Var(sigma) = s2 / (2N); the (singular) covariance over all three effects."""
    init = {"effect": jnp.zeros(3), "mu": jnp.asarray(0.0), "sigma": jnp.asarray(1.0)}
    res = mj.fit(effects_ll, init, jnp.asarray(Y_EFF),
                 constraints={"effect": SUM_TO_ZERO, "sigma": mj.positive})
    assert bool(res.converged), res.message
    assert res.df_model == 4   # mu, 2 free effects, sigma
    n_all, n = Y_EFF.size, 10
    means = np.array([Y_EFF[G_EFF == j].mean() for j in range(3)])
    s2 = np.mean((Y_EFF - means[G_EFF]) ** 2)
    assert_rel(res.params["mu"], Y_EFF.mean(), 1e-10, "mu")
    assert_rel(res.params["effect"], means - Y_EFF.mean(), 1e-9, "effects")
    assert_rel(res.params["sigma"], np.sqrt(s2), 1e-10, "sigma")
    cov = np.zeros((5, 5))
    cov[:3, :3] = -s2 / n_all
    cov[:3, :3] += np.eye(3) * s2 / n
    cov[3, 3] = s2 / n_all
    cov[4, 4] = s2 / (2 * n_all)
    assert_cov_close(res.cov, cov, what="cov vs closed form")


# ---- user-defined: increasing positive rates (square, by subclassing) ------------------------

N_RATE = 30
G_RATE = np.repeat(np.arange(3), N_RATE)
Y_RATE = np.random.default_rng(9).exponential(
    1.0 / np.array([0.5, 1.5, 4.0])[G_RATE], size=(3, G_RATE.size))


def rates_ll(params, y):
    lam = params["rate"][jnp.asarray(G_RATE)]
    return jnp.log(lam) - lam * y


def _rates_closed_form(y):
    lam = N_RATE / np.array([y[G_RATE == j].sum() for j in range(3)])
    return lam, np.diag(lam**2 / N_RATE)


def _fit_rates(y):
    return mj.fit(rates_ll, {"rate": jnp.array([0.5, 1.0, 2.0], y.dtype)}, y,
                  constraints={"rate": INCREASING_POSITIVE})


def test_user_subclass_under_vmap():
    res = jax.vmap(_fit_rates)(jnp.asarray(Y_RATE))
    assert bool(np.all(res.converged))
    for k in range(Y_RATE.shape[0]):
        lam, cov = _rates_closed_form(Y_RATE[k])
        assert np.all(np.diff(lam) > 0)
        assert_rel(res.params["rate"][k], lam, 1e-10, f"dataset {k}: rate = n_j / sum_j y")
        assert_cov_close(res.cov[k], cov, what=f"dataset {k}: cov vs diag(rate^2 / n_j)")
    params0 = jax.tree_util.tree_map(lambda a: a[0], res.params)
    total = lambda p, y: jnp.sum(rates_ll(p, y))  # noqa: E731
    assert_cov_close(res.cov[0], independent_cov(total, params0, jnp.asarray(Y_RATE[0])),
                     what="cov vs inv(-hessian) on the natural scale")


def test_user_subclass_float32():
    y32 = jnp.asarray(Y_RATE[0], jnp.float32)
    res = _fit_rates(y32)
    assert int(res.status) == int(mj.Status.CONVERGED), res.message
    assert res.params["rate"].dtype == jnp.float32
    lam, cov = _rates_closed_form(np.asarray(y32, np.float64))
    assert_rel(res.params["rate"], lam, F32_RTOL, "rate")
    assert_rel(res.stderr["rate"], np.sqrt(np.diag(cov)), F32_RTOL, "stderr rate")


# ---- bad init: ValueError before anything is traced -------------------------------------------

_CALLS = {"n": 0}


def never_traced_ll(params, x):
    _CALLS["n"] += 1
    return x * sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(params))


class _NoCheckNegative(mj.Constraint):
    """A user subclass relying on the default check (inverse finite)."""

    name = "negative"

    def forward(self, u):
        return -jnp.exp(u)

    def inverse(self, x):
        return jnp.log(-x)


BAD_INIT = [
    ("ordered_not_increasing", mj.ordered, [0.0, 1.0, 1.0],
     r"init\[theta\] must be strictly increasing along the last axis for constraint ordered"),
    ("ordered_nan", mj.ordered, [0.0, np.nan, 1.0], r"init\[theta\] is not finite"),
    ("ordered_scalar", mj.ordered, 0.5,
     r"init\[theta\] must be a vector .* for constraint ordered; got shape \(\)"),
    ("sum_below_nonpositive", mj.positive_sum_below(1.0), [0.5, 0.0],
     r"init\[theta\] components must be > 0 for constraint positive_sum_below\(1\.0\)"),
    ("sum_below_sum_too_big", mj.positive_sum_below(1.0), [0.5, 0.5],
     r"init\[theta\] components must sum to < 1\.0 .*positive_sum_below\(1\.0\); got sums 1\.0"),
    ("sum_below_scalar", mj.positive_sum_below(1.0), 0.5, r"must be a vector .*got shape \(\)"),
    ("user_check", SUM_TO_ZERO, [1.0, 1.0], r"init\[theta\] must sum to 0 for constraint "
     r"sum_to_zero; got \[1\. 1\.\]\. Give a starting value inside the constraint"),
    ("user_default_check", _NoCheckNegative(), 1.0,
     r"init\[theta\] is outside the domain of constraint negative \(its inverse is not finite"),
    ("user_subclass_default_check", INCREASING_POSITIVE, [1.0, 0.5, 2.0],
     r"outside the domain of constraint increasing_positive"),
]


@pytest.mark.parametrize("name,con,value,match", BAD_INIT, ids=[b[0] for b in BAD_INIT])
def test_bad_init_raises_before_tracing(name, con, value, match):
    before = _CALLS["n"]
    with pytest.raises(ValueError, match=match):
        mj.fit(never_traced_ll, {"theta": jnp.asarray(value)}, jnp.ones(5),
               constraints={"theta": con})
    assert _CALLS["n"] == before, f"{name}: the log-likelihood was traced before the error"


def test_unhashable_user_constraint_is_a_clear_error():
    @dataclasses.dataclass          # not frozen: eq=True sets __hash__ to None
    class Mutable(mj.Constraint):
        name: str = "mutable"

        def forward(self, u):
            return jnp.exp(u)

        def inverse(self, x):
            return jnp.log(x)

    before = _CALLS["n"]
    with pytest.raises(ValueError, match=r"constraints\[theta\] \(.*Mutable.*\) is not hashable.*"
                                         r"frozen"):
        mj.fit(never_traced_ll, {"theta": jnp.asarray(1.0)}, jnp.ones(5),
               constraints={"theta": Mutable()})
    assert _CALLS["n"] == before


def test_constructors_refuse_bad_arguments():
    with pytest.raises(ValueError, match=r"finite bound > 0; got -1\.0"):
        mj.positive_sum_below(-1.0)
    with pytest.raises(ValueError, match=r"finite bound > 0; got inf"):
        mj.positive_sum_below(np.inf)
    with pytest.raises(ValueError, match=r"callable forward and inverse"):
        mj.constraint(forward=jnp.exp, inverse="log")
    with pytest.raises(ValueError, match=r"check must be a function"):
        mj.constraint(forward=jnp.exp, inverse=jnp.log, check="x > 0")
    with pytest.raises(TypeError, match=r"abstract"):
        mj.Constraint()   # forward and inverse are abstract


def test_check_messages():
    assert mj.ordered.check(np.array([[0.0, 1.0], [2.0, 3.0]])) is None    # batched rows
    assert mj.ordered.check(np.array([[0.0, 1.0], [3.0, 2.0]])) is not None
    assert "finite" in mj.ordered.check(np.array([0.0, np.nan]))
    c = mj.positive_sum_below(0.5)
    assert c.check(np.array([[0.1, 0.2], [0.2, 0.2]])) is None
    assert "sum to < 0.5" in c.check(np.array([[0.1, 0.2], [0.3, 0.2]]))
    assert "finite" in c.check(np.array([0.1, np.nan]))
    # the flattened Problem sees the user constraint's shape change through inverse
    flat, _ = ravel_pytree(SUM_TO_ZERO.inverse(jnp.array([1.0, -3.0, 2.0])))
    assert flat.shape == (2,)
