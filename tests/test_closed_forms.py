"""Maximum-likelihood estimates and standard errors against closed forms (float64).

Every reference here is a textbook formula evaluated with numpy on the data; nothing
is compared with mlejax's own output.

Standard errors: ``FitResult.cov`` is the inverse observed information at the MLE.
For these one-parameter-family models the observed information at the MLE has the
closed forms used below (for the Gaussian the mu/sigma cross term vanishes at the
MLE, so the matrix is diagonal: n/sigma^2 and 2n/sigma^2).
"""

import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import pytest

import mlejax as mj
from conftest import N_NORMAL, assert_rel, normal_ll

METHODS = ["newton", "bfgs", "lbfgs"]

# Tolerance on parameters and on standard errors. Newton must reach 1e-10 relative.
# The quasi-Newton methods stop on the gradient tolerance (eps^(2/3) on the scaled
# gradient) without a final full Newton step, so they do not always reach 1e-10: BFGS
# on the Gaussian ends 3e-10 relative away from the closed form. They are held to
# 1e-8 (tighter than the 1e-7 fallback allowed for them), on parameters and on the
# standard errors evaluated at those parameters.
PARAM_RTOL = {"newton": 1e-10, "bfgs": 1e-8, "lbfgs": 1e-8}
SE_RTOL = {"newton": 1e-8, "bfgs": 1e-8, "lbfgs": 1e-8}

N = N_NORMAL
_rng = np.random.default_rng(12345)
X_BERN = (_rng.uniform(size=N) < 0.3).astype(np.float64)
X_NORM = _rng.normal(1.5, 2.0, size=N)
X_POIS = _rng.poisson(3.2, size=N).astype(np.float64)
X_EXPO = _rng.exponential(1 / 0.7, size=N)


# ---- log-likelihoods, module level so that compiled solvers are reused ---------


def bernoulli_ll(params, x):
    p = params["p"]
    return x * jnp.log(p) + (1.0 - x) * jnp.log1p(-p)


def bernoulli_ll_total(params, x):
    return jnp.sum(bernoulli_ll(params, x))


def normal_ll_total(params, x):
    return jnp.sum(normal_ll(params, x))


def poisson_ll(params, x):
    lam = params["rate"]
    return x * jnp.log(lam) - lam - jsp.gammaln(x + 1.0)


def poisson_ll_total(params, x):
    return jnp.sum(poisson_ll(params, x))


def expon_ll(params, x):
    lam = params["rate"]
    return jnp.log(lam) - lam * x


def expon_ll_total(params, x):
    return jnp.sum(expon_ll(params, x))


# ---- closed forms ---------------------------------------------------------------


def bernoulli_ref(x):
    n = x.size
    p = x.mean()
    return {"p": p}, {"p": np.sqrt(p * (1 - p) / n)}


def normal_ref(x):
    n = x.size
    mu = x.mean()
    sigma = np.sqrt(np.mean((x - mu) ** 2))  # biased (1/n) MLE
    return {"mu": mu, "sigma": sigma}, {
        "mu": sigma / np.sqrt(n),
        "sigma": sigma / np.sqrt(2 * n),
    }


def poisson_ref(x):
    n = x.size
    lam = x.mean()
    return {"rate": lam}, {"rate": np.sqrt(lam / n)}


def expon_ref(x):
    n = x.size
    lam = 1.0 / x.mean()
    return {"rate": lam}, {"rate": lam / np.sqrt(n)}


CASES = {
    # name: (per-obs loglik, total loglik, data, init, constraints, reference)
    "bernoulli": (
        bernoulli_ll,
        bernoulli_ll_total,
        X_BERN,
        {"p": 0.5},
        {"p": mj.unit_interval},
        bernoulli_ref,
    ),
    "normal": (
        normal_ll,
        normal_ll_total,
        X_NORM,
        {"mu": 0.0, "sigma": 1.0},
        {"sigma": mj.positive},
        normal_ref,
    ),
    "poisson": (
        poisson_ll,
        poisson_ll_total,
        X_POIS,
        {"rate": 1.0},
        {"rate": mj.positive},
        poisson_ref,
    ),
    "exponential": (
        expon_ll,
        expon_ll_total,
        X_EXPO,
        {"rate": 1.0},
        {"rate": mj.positive},
        expon_ref,
    ),
}


def _init(d):
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in d.items()}


def _check(res, ref_params, ref_se, method, label):
    assert bool(res.converged), f"{label}: status {int(res.status)} ({res.message})"
    for k, v in ref_params.items():
        assert_rel(res.params[k], v, PARAM_RTOL[method], f"{label}: param {k}")
    se = res.stderr
    for k, v in ref_se.items():
        assert_rel(se[k], v, SE_RTOL[method], f"{label}: stderr {k}")


@pytest.mark.parametrize("model", list(CASES))
def test_closed_form_mle_and_stderr_newton(model):
    ll, _, x, init, cons, ref = CASES[model]
    ref_params, ref_se = ref(x)
    res = mj.fit(ll, _init(init), jnp.asarray(x), constraints=cons, method="newton")
    _check(res, ref_params, ref_se, "newton", f"{model}/newton")
    # The reported maximum is the log-likelihood at the closed-form MLE.
    ll_at_ref = float(np.sum(ll({k: jnp.asarray(v) for k, v in ref_params.items()}, jnp.asarray(x))))
    assert_rel(res.loglik, ll_at_ref, 1e-12, f"{model}/newton: loglik")


# The quasi-Newton methods are run on the four models at once: one log-likelihood that is
# the sum of the four independent ones, with nested params {model: {...}}. The maximum and
# the (block-diagonal) observed information decouple, so every model's closed forms hold
# exactly for the joint fit, and one compiled program per method covers all four models
# (a separate program per model and method would cost 8 more compilations).


def joint_ll(params, data):
    return sum(CASES[m][0](params[m], data[m]) for m in CASES)


@pytest.mark.parametrize("method", ["bfgs", "lbfgs"])
def test_closed_form_mle_and_stderr_quasi_newton(method):
    init = {m: _init(CASES[m][3]) for m in CASES}
    cons = {m: CASES[m][4] for m in CASES}
    data = {m: jnp.asarray(CASES[m][2]) for m in CASES}
    res = mj.fit(joint_ll, init, data, constraints=cons, method=method)
    assert bool(res.converged), f"{method}: status {int(res.status)} ({res.message})"
    total_at_ref = 0.0
    for m in CASES:
        ll, _, x, _, _, ref = CASES[m]
        ref_params, ref_se = ref(x)
        for k, v in ref_params.items():
            assert_rel(res.params[m][k], v, PARAM_RTOL[method], f"{m}/{method}: param {k}")
            assert_rel(res.stderr[m][k], ref_se[k], SE_RTOL[method], f"{m}/{method}: stderr {k}")
        total_at_ref += float(np.sum(ll({k: jnp.asarray(v) for k, v in ref_params.items()},
                                        jnp.asarray(x))))
    assert_rel(res.loglik, total_at_ref, 1e-12, f"{method}: loglik")


def test_gaussian_sigma_is_biased_not_n_minus_1():
    x = X_NORM
    res = mj.fit(normal_ll, _init({"mu": 0.0, "sigma": 1.0}), jnp.asarray(x),
                 constraints={"sigma": mj.positive}, method="newton")
    biased = np.sqrt(np.var(x, ddof=0))
    unbiased = np.sqrt(np.var(x, ddof=1))
    assert_rel(res.params["sigma"] ** 2, biased**2, 1e-10, "sigma^2 vs (1/n) sum (x-mean)^2")
    # The n-1 version differs by a factor n/(n-1) ~ 1.026 here: far outside tolerance.
    assert abs(float(res.params["sigma"]) - unbiased) > 1e-3 * unbiased


# The remaining tests check the plumbing (how the loglik is summed and weighted), not
# the solvers: Newton only, to keep the number of compiled programs (and the runtime) low.


@pytest.mark.parametrize("model", ["normal"])
def test_total_loglik_equals_per_observation(model):
    ll, ll_total, x, init, cons, ref = CASES[model]
    ref_params, ref_se = ref(x)
    r_obs = mj.fit(ll, _init(init), jnp.asarray(x), constraints=cons)
    r_tot = mj.fit(ll_total, _init(init), jnp.asarray(x), constraints=cons)
    _check(r_tot, ref_params, ref_se, "newton", f"{model}/total")
    for k in ref_params:
        assert_rel(r_tot.params[k], r_obs.params[k], 1e-10, f"{model}: {k}")
        assert_rel(r_tot.stderr[k], r_obs.stderr[k], 1e-10, f"{model}: se {k}")
    assert_rel(r_tot.loglik, r_obs.loglik, 1e-12, f"{model}: loglik")


W_INT = np.random.default_rng(7).integers(0, 4, size=N)  # integer weights, zeros included


@pytest.mark.parametrize("model", ["normal"])
def test_integer_weights_equal_repeated_observations_closed_form(model):
    """weights=w gives the closed-form MLE and standard errors of the repeated data."""
    ll, _, x, init, cons, ref = CASES[model]
    x_rep = np.repeat(x, W_INT)
    ref_params, ref_se = ref(x_rep)
    r_w = mj.fit(ll, _init(init), jnp.asarray(x), constraints=cons,
                 weights=jnp.asarray(W_INT, dtype=jnp.float64))
    _check(r_w, ref_params, ref_se, "newton", f"{model}/weighted")
    ll_rep = float(np.sum(ll({k: jnp.asarray(v) for k, v in ref_params.items()},
                             jnp.asarray(x_rep))))
    assert_rel(r_w.loglik, ll_rep, 1e-12, f"{model}: weighted loglik = repeated-data loglik")


def test_integer_weights_equal_repeated_observations_fit():
    """The same, fit against fit: weights=w versus the observations repeated w times."""
    ll, _, x, init, cons, _ = CASES["normal"]
    r_w = mj.fit(ll, _init(init), jnp.asarray(x), constraints=cons,
                 weights=jnp.asarray(W_INT, dtype=jnp.float64))
    r_rep = mj.fit(ll, _init(init), jnp.asarray(np.repeat(x, W_INT)), constraints=cons)
    assert_rel(r_w.loglik, r_rep.loglik, 1e-12, "loglik weighted vs repeated")
    for k in ("mu", "sigma"):
        assert_rel(r_w.params[k], r_rep.params[k], 1e-10, k)
        assert_rel(r_w.stderr[k], r_rep.stderr[k], 1e-10, f"stderr {k}")
    np.testing.assert_allclose(np.asarray(r_w.cov), np.asarray(r_rep.cov), rtol=1e-10,
                               atol=1e-10 * float(np.max(np.abs(r_rep.cov))))
