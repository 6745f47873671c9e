"""Generic EM (``mj.em``): closed-form and Newton M-steps, against scipy and PoissonMixture.

References: the observed-data log-likelihood maximised directly with scipy.optimize (an
independent numpy implementation), a numpy finite-difference Hessian for the standard
errors, and ``mj.PoissonMixture``'s closed-form M-step for the generic (Newton) path.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import expit, gammaln, logsumexp  # noqa: E402

import mlejax as mj  # noqa: E402

_rng = np.random.default_rng(7)
N = 400
Z = _rng.random(N) < 0.4
XE = np.where(Z, _rng.exponential(0.5, N), _rng.exponential(4.0, N))
CONS = {"weights": mj.simplex, "rate": mj.positive}
INIT = {"weights": jnp.array([0.5, 0.5]), "rate": jnp.array([3.0, 0.1])}
FTOL = 1e-14   # run EM close to the optimum: it converges linearly


def exp_joint(params, x):
    """log p(x_i, z_i = k) for a mixture of two exponential distributions."""
    rate = params["rate"]
    return jnp.log(params["weights"]) + jnp.log(rate) - x[:, None] * rate


def exp_m_step(resp, x):
    nk = jnp.sum(resp, axis=0)
    return {"weights": nk / jnp.sum(nk), "rate": nk / jnp.sum(resp * x[:, None], axis=0)}


def _np_loglik(w1, r1, r2, x=XE):
    return float(np.sum(np.logaddexp(np.log(w1) + np.log(r1) - r1 * x,
                                     np.log1p(-w1) + np.log(r2) - r2 * x)))


def _monotone(trace, rtol=1e-12):
    t = np.asarray(trace)
    t = t[np.isfinite(t)]
    assert t.size >= 2 and np.all(np.diff(t) >= -rtol * np.abs(t[1:])), np.diff(t).min()


@pytest.fixture(scope="module")
def fits():
    closed = mj.em(exp_joint, INIT, jnp.asarray(XE), m_step=exp_m_step, constraints=CONS,
                   ftol=FTOL)
    newton = mj.em(exp_joint, INIT, jnp.asarray(XE), constraints=CONS, ftol=FTOL)
    return closed, newton


def test_newton_m_step_reaches_the_closed_form_optimum(fits):
    closed, newton = fits
    for res in fits:
        assert bool(res.converged), res.message
        assert res.method == "em"
        _monotone(res.trace)
    np.testing.assert_allclose(float(newton.loglik), float(closed.loglik), rtol=1e-12)
    for name in ("weights", "rate"):
        np.testing.assert_allclose(np.asarray(newton.params[name]),
                                   np.asarray(closed.params[name]), rtol=1e-6)


def test_against_scipy_direct_maximisation(fits):
    closed, _ = fits

    def negll(v):
        return -_np_loglik(expit(v[0]), np.exp(v[1]), np.exp(v[2]))

    opt = minimize(negll, np.array([0.0, np.log(3.0), np.log(0.1)]), method="Nelder-Mead",
                   options={"xatol": 1e-12, "fatol": 1e-13, "maxiter": 20000,
                            "maxfev": 40000})
    ll_ref = -opt.fun
    assert float(closed.loglik) >= ll_ref - 1e-10 * abs(ll_ref)
    np.testing.assert_allclose(float(closed.loglik), ll_ref, rtol=1e-10)
    w1, r1, r2 = expit(opt.x[0]), np.exp(opt.x[1]), np.exp(opt.x[2])
    np.testing.assert_allclose(np.asarray(closed.params["rate"]), [r1, r2], rtol=1e-4)
    np.testing.assert_allclose(float(closed.params["weights"][0]), w1, rtol=1e-4)


def test_standard_errors_against_finite_differences(fits):
    closed, _ = fits
    w1 = float(closed.params["weights"][0])
    r1, r2 = (float(v) for v in closed.params["rate"])
    theta = np.array([w1, r1, r2])
    h = 1e-4 * theta
    hess = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            def f(da, db):
                t = theta.copy()
                t[a] += da * h[a]
                t[b] += db * h[b]
                return _np_loglik(*t)
            hess[a, b] = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (4 * h[a] * h[b])
    se = np.sqrt(np.diag(np.linalg.inv(-hess)))
    np.testing.assert_allclose(np.asarray(closed.stderr["rate"]), se[1:], rtol=1e-4)
    # The two weights sum to one: both have the standard error of the first.
    np.testing.assert_allclose(np.asarray(closed.stderr["weights"]), [se[0], se[0]], rtol=1e-4)
    assert closed.df_model == 3 and int(closed.nobs) == N


def poisson_joint(params, x):
    """A Poisson mixture written only as its joint log-density (no M-step)."""
    lam = params["rates"]
    lf = jnp.sum(x[:, None, :] * jnp.log(lam)[None] - lam[None], axis=-1)
    return (jnp.log(params["weights"]) + lf
            - jnp.sum(jax.scipy.special.gammaln(x + 1.0), axis=-1)[:, None])


def test_generic_em_matches_poisson_mixture():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 2, 400)
    lam = np.array([[1.0, 5.0], [8.0, 2.0]])
    xp = rng.poisson(lam[z]).astype(np.float64)
    closed = mj.PoissonMixture(2).fit(xp, key=jax.random.key(0))
    init = {"weights": jnp.array([0.5, 0.5]), "rates": jnp.array([[2.0, 3.0], [4.0, 3.5]])}
    generic = mj.em(poisson_joint, init, jnp.asarray(xp),
                    constraints={"weights": mj.simplex, "rates": mj.positive})
    assert bool(closed.converged) and bool(generic.converged)
    _monotone(generic.trace)
    np.testing.assert_allclose(float(generic.loglik), float(closed.loglik), rtol=1e-10)
    # From different starts, both stop at EM's fixed point (ftol on L and xtol on the
    # parameters; ftol alone left them about sqrt(ftol) apart, 1e-4 relative).
    order = np.argsort(np.asarray(closed.params["rates"])[:, 0])
    gorder = np.argsort(np.asarray(generic.params["rates"])[:, 0])
    np.testing.assert_allclose(np.asarray(generic.params["rates"])[gorder],
                               np.asarray(closed.params["rates"])[order], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(generic.params["weights"])[gorder],
                               np.asarray(closed.params["weights"])[order], rtol=1e-6)
    # The log-likelihood of the generic fit, recomputed in numpy.
    w, r = np.asarray(generic.params["weights"]), np.asarray(generic.params["rates"])
    parts = (np.log(w) + (xp[:, None, :] * np.log(r)[None] - r[None]
                          - gammaln(xp + 1)[:, None, :]).sum(-1))
    np.testing.assert_allclose(float(generic.loglik), logsumexp(parts, axis=1).sum(),
                               rtol=1e-12)


def test_weights_count_observations(fits):
    closed, _ = fits
    res = mj.em(exp_joint, INIT, jnp.asarray(XE), m_step=exp_m_step, constraints=CONS,
                ftol=FTOL, weights=jnp.full(N, 2.0))
    np.testing.assert_allclose(float(res.loglik), 2.0 * float(closed.loglik), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.params["rate"]),
                               np.asarray(closed.params["rate"]), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(res.stderr["rate"]),
                               np.asarray(closed.stderr["rate"]) / np.sqrt(2.0), rtol=1e-6)


def test_max_steps_is_reported():
    with pytest.warns(mj.FitWarning, match="max_steps"):
        res = mj.em(exp_joint, INIT, jnp.asarray(XE), m_step=exp_m_step, constraints=CONS,
                    max_steps=2, stderr=False)
    assert int(res.status) == mj.Status.MAX_STEPS and int(res.n_steps) == 2
    assert not bool(res.converged)
    _monotone(res.trace)


def test_errors_before_compiling():
    x = jnp.asarray(XE)
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        mj.em(lambda p, x: jnp.sum(exp_joint(p, x), axis=1), INIT, x, constraints=CONS)
    with pytest.raises(ValueError, match="structure of init"):
        mj.em(exp_joint, INIT, x, m_step=lambda r, x: {"rate": r[0]}, constraints=CONS)
    with pytest.raises(ValueError, match=r"m_step returns rate with shape \(\)"):
        mj.em(exp_joint, INIT, x, constraints=CONS,
              m_step=lambda r, x: {"weights": r[0], "rate": jnp.sum(r)})
    with pytest.raises(ValueError, match=r"init\[rate\].*> 0"):
        mj.em(exp_joint, {"weights": INIT["weights"], "rate": jnp.array([1.0, -1.0])}, x,
              constraints=CONS)
    def impossible_above_5(p, x):   # no component can produce an x above 5
        return exp_joint(p, x) - jnp.where(x[:, None] > 5.0, jnp.inf, 0.0)

    with pytest.raises(ValueError, match="not finite at init"):
        mj.em(impossible_above_5, INIT, x, constraints=CONS)
    with pytest.raises(ValueError, match="NaN"):
        mj.em(exp_joint, INIT, x.at[3].set(jnp.nan), constraints=CONS)
    with pytest.raises(ValueError, match="newton_steps"):
        mj.em(exp_joint, INIT, x, constraints=CONS, newton_steps=0)
    with pytest.raises(ValueError, match="joint_loglik_fn must be a function"):
        mj.em("exp", INIT, x)
    with pytest.raises(ValueError, match="weights has shape"):
        mj.em(exp_joint, INIT, x, constraints=CONS, weights=jnp.ones(3))
