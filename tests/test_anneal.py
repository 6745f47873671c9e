"""Annealing (``anneal=``, ``mj.anneal``): deterministic annealing EM and tempered direct fits.

References: scikit-learn's ``GaussianMixture`` for the best optimum of the mixture; a
dense numpy grid for the global maximum of a Cauchy location likelihood; numpy for the
tempered responsibilities; plain (un-annealed) fits from good starts for "the answer is the
MLE". (A tempered penalised fit is tested in test_penalties.py, beside the plain one.)
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlejax as mj  # noqa: E402
from mlejax.em import e_step  # noqa: E402
from test_em import exp_joint, exp_m_step  # noqa: E402  (the mj.em docstring's model)

# Six spherical clusters on a 2 x 3 grid, 25 points each: EM from k-means++ seeds often
# puts two components in one cluster and one across two (a poor local optimum).
_rng = np.random.default_rng(1)
_CENTERS = np.array([[0, 0], [4, 0], [8, 0], [0, 4], [4, 4], [8, 4.0]])
X6 = np.concatenate([_rng.normal(c, 0.9, size=(25, 2)) for c in _CENTERS])


def test_annealed_em_reaches_the_best_optimum_at_least_as_often_over_50_seeds():
    from sklearn.mixture import GaussianMixture as SkGMM

    gmm = mj.GaussianMixture(6, covariance_type="spherical", init_params="k-means++",
                             max_steps=300)
    # 50 seeds as one vmapped program each: n_init keeps every start's log-likelihood.
    plain = gmm.fit(X6, key=jax.random.key(1), n_init=50, warn=False)
    annealed = gmm.fit(X6, key=jax.random.key(1), n_init=50, warn=False,
                       anneal=mj.anneal.geometric(start=0.1, steps=6))
    ll_plain = np.asarray(plain.restart_loglik)
    ll_anneal = np.asarray(annealed.restart_loglik)
    # The best optimum, independently: scikit-learn with many starts and a tight tolerance.
    sk = SkGMM(6, covariance_type="spherical", n_init=10, tol=1e-12, max_iter=3000,
               random_state=0).fit(X6)
    best = sk.score(X6) * len(X6)
    assert max(ll_plain.max(), ll_anneal.max()) == pytest.approx(best, abs=1e-5)
    hit_plain = np.mean(ll_plain > best - 1e-3)
    hit_anneal = np.mean(ll_anneal > best - 1e-3)
    assert hit_plain <= 0.8                  # the premise: plain EM often ends lower ...
    assert hit_anneal >= hit_plain           # ... annealed EM reaches the best as often
    assert ll_anneal.mean() >= ll_plain.mean()            # and never ends lower on average
    # Every annealed start ends with plain EM at beta = 1: a converged MLE, monotone trace.
    assert np.all(np.asarray(annealed.restart_status) == mj.Status.CONVERGED)
    for t in np.asarray(annealed.restart_trace):
        t = t[np.isfinite(t)]
        assert np.all(np.diff(t) >= -1e-9 * np.abs(t[-1]))


# --- generic EM: a mixture of two exponentials (the mj.em docstring's model) -------------
_r2 = np.random.default_rng(7)
XE = np.where(_r2.random(300) < 0.4, _r2.exponential(0.5, 300), _r2.exponential(4.0, 300))


def test_tempered_e_step_and_annealed_em_end_at_the_mle():
    joint = np.log([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    f, resp = e_step(jnp.asarray(joint), None, 0.3)
    want = np.exp(0.3 * joint) / np.exp(0.3 * joint).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(resp), want, rtol=1e-12)          # r ~ p^beta
    assert float(f) == pytest.approx(np.sum(np.log(np.exp(0.3 * joint).sum(axis=1))) / 0.3)

    init = {"weights": jnp.array([0.5, 0.5]), "rate": jnp.array([3.0, 0.1])}
    cons = {"weights": mj.simplex, "rate": mj.positive}
    annealed = mj.em(exp_joint, init, XE, m_step=exp_m_step, constraints=cons, ftol=1e-13,
                     stderr=False, anneal=mj.anneal.linear(start=0.2, steps=5))
    assert bool(annealed.converged)
    # The maximum of the true likelihood (the last stage is plain EM): scipy on numpy.
    from scipy.optimize import minimize
    from scipy.special import expit, logsumexp

    def nll(v):
        w1, r1, r2 = expit(v[0]), np.exp(v[1]), np.exp(v[2])
        comp = np.stack([np.log(w1) + np.log(r1) - XE * r1,
                         np.log1p(-w1) + np.log(r2) - XE * r2])
        return -np.sum(logsumexp(comp, axis=0))

    ref = minimize(nll, [0.0, np.log(2.0), np.log(0.3)], method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    rates = np.sort(np.exp(ref.x[1:]))
    np.testing.assert_allclose(np.sort(np.asarray(annealed.params["rate"])), rates, rtol=1e-5)
    assert float(annealed.loglik) == pytest.approx(-ref.fun, abs=1e-7)
    t = np.asarray(annealed.trace)
    t = t[np.isfinite(t)]
    assert np.all(np.diff(t) >= -1e-9 * abs(t[-1]))


# --- direct fits: Gaussian smoothing on a Cauchy location likelihood ----------------------
XC = np.concatenate([np.linspace(-0.5, 0.5, 10), np.linspace(-8.3, -7.7, 6),
                     np.linspace(8.7, 9.3, 5)])


def cauchy_ll(p, x):
    return -jnp.log1p((x - p["m"]) ** 2) - jnp.log(jnp.pi)


def test_smoothed_direct_fit_escapes_a_poor_peak_and_ends_at_the_mle():
    grid = np.linspace(-12.0, 12.0, 24001)
    ll = np.sum(-np.log1p((XC[None, :] - grid[:, None]) ** 2) - np.log(np.pi), axis=1)
    m_star = grid[np.argmax(ll)]                   # the global maximum, to 1e-3
    sched = mj.anneal.geometric(start=0.1, steps=8, smoothing=6.0)
    for start in (-8.0, 9.0):
        plain = mj.fit(cauchy_ll, {"m": start}, XC)
        assert abs(float(plain.params["m"]) - m_star) > 5          # a poor local peak
        res = mj.fit(cauchy_ll, {"m": start}, XC, anneal=sched)
        assert bool(res.converged)
        assert abs(float(res.params["m"]) - m_star) < 1e-3         # the grid's maximum ...
        assert float(res.loglik) == pytest.approx(ll.max(), abs=1e-5)
    # ... and exactly the MLE: a plain fit started at the grid's maximum.
    mle = mj.fit(cauchy_ll, {"m": float(m_star)}, XC)
    assert float(res.params["m"]) == pytest.approx(float(mle.params["m"]), abs=1e-9)


def test_schedules_and_errors():
    g = mj.anneal.geometric(start=0.01, steps=3)
    np.testing.assert_allclose(g.betas, [0.01, 0.1, 1.0])
    assert mj.anneal.linear(start=0.5, steps=3).betas == (0.5, 0.75, 1.0)
    s = mj.anneal.schedule([0.2, 0.6, 1.0], smoothing=2.0)
    np.testing.assert_allclose(s.sigmas(), [2.0, 1.0])
    with pytest.raises(ValueError, match="last beta must be 1"):
        mj.anneal.schedule([0.2, 0.5])
    with pytest.raises(ValueError, match="increase"):
        mj.anneal.schedule([0.5, 0.2, 1.0])
    with pytest.raises(ValueError, match="start"):
        mj.anneal.geometric(start=1.5)
    with pytest.raises(ValueError, match="anneal="):
        mj.fit(cauchy_ll, {"m": 0.0}, XC, anneal=[0.5, 1.0])
    with pytest.raises(ValueError, match="does not move its maximum"):
        mj.fit(cauchy_ll, {"m": 0.0}, XC, anneal=mj.anneal.geometric(0.1, 5))
    with pytest.raises(ValueError, match="minibatches"):
        mj.fit(cauchy_ll, {"m": 0.0}, XC, method="gradient", batch_size=4,
               key=jax.random.key(0), anneal=mj.anneal.geometric(0.1, 5, smoothing=1.0))
    with pytest.raises(ValueError, match="repack"):
        mj.fit_batch(cauchy_ll, {"m": 0.0}, np.stack([XC, XC]), repack=5,
                     anneal=mj.anneal.geometric(0.1, 5, smoothing=1.0))
    with pytest.raises(ValueError, match="anneal="):
        mj.GaussianMixture(2).fit(X6, anneal="yes")
