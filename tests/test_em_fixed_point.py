"""EM stops at its fixed point (issue 20, item 3), not only where the log-likelihood is flat.

References: scikit-learn's GaussianMixture run from the same start to its own fixed point
(the iris data, three components, every covariance type, reg_covar=0 on both sides), and
one further EM step written independently (scikit-learn's for Gaussians, numpy's for the
exponential and Poisson mixtures) from mlejax's estimate.

Tolerance, for every parameter array ``a`` against its reference ``b``:
``max|a - b| <= 1e-6 * max(1, max|b|)`` (``_close``).

scikit-learn runs with tol=0 (all of its max_iter iterations): its own criterion is the
change in the mean log-likelihood, and with tol=1e-10 it stops up to 6e-5 (relative, full
covariances on iris) short of its fixed point; it reaches the fixed point in under 500.
"""

import jax

jax.config.update("jax_enable_x64", True)

import warnings  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGMM  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import mlejax as mj  # noqa: E402

RTOL = 1e-6
IRIS = load_iris().data
K = 3
SK_ITER = 1000


def _close(a, b, rtol=RTOL, what=""):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = np.max(np.abs(a - b))
    assert err <= rtol * max(1.0, np.max(np.abs(b))), f"{what}: max abs diff {err:.3e}"


def _monotone(trace, rtol=1e-12):
    t = np.asarray(trace, np.float64)
    t = t[np.isfinite(t)]
    assert t.size >= 2
    assert np.all(np.diff(t) >= -rtol * np.abs(t[1:])), np.diff(t).min()


def _start(ct):
    """Three iris rows as means, equal weights, the data's (co)variance for every component."""
    cov = np.cov(IRIS.T)
    covs = {"full": np.stack([cov] * K), "tied": cov,
            "diag": np.tile(np.diag(cov), (K, 1)),
            "spherical": np.full(K, np.mean(np.diag(cov)))}[ct]
    return {"weights": np.full(K, 1.0 / K), "means": IRIS[[10, 70, 130]],
            "covariances": covs}


def _precisions(ct, covs):
    return np.linalg.inv(covs) if ct in ("full", "tied") else 1.0 / covs


def _sklearn(ct, init, max_iter):
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SkGMM(K, covariance_type=ct, tol=0.0, max_iter=max_iter, reg_covar=0.0,
                     weights_init=init["weights"], means_init=init["means"],
                     precisions_init=_precisions(ct, init["covariances"])).fit(IRIS)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gaussian_mixture_reaches_sklearns_fixed_point(ct):
    init = _start(ct)
    sk = _sklearn(ct, init, SK_ITER)
    res = mj.GaussianMixture(K, ct, reg_covar=0.0).fit(jnp.asarray(IRIS), init=init)
    assert int(res.status) == mj.Status.CONVERGED, res.message
    _monotone(res.trace)
    perm = linear_sum_assignment(((sk.means_[:, None] - np.asarray(res.params["means"])[None])
                                  ** 2).sum(-1))[1]
    p = {k: np.asarray(v) for k, v in res.params.items()}
    cov = p["covariances"] if ct == "tied" else p["covariances"][perm]
    _close(p["weights"][perm], sk.weights_, what="weights")
    _close(p["means"][perm], sk.means_, what="means")
    _close(cov, sk.covariances_, what="covariances")
    np.testing.assert_allclose(float(res.loglik), sk.score(IRIS) * IRIS.shape[0], rtol=1e-12)
    # One more EM iteration (scikit-learn's, from mlejax's estimate) leaves it in place.
    again = _sklearn(ct, {"weights": p["weights"], "means": p["means"],
                          "covariances": p["covariances"]}, 1)
    _close(again.weights_, p["weights"], what="weights after a step")
    _close(again.means_, p["means"], what="means after a step")
    _close(again.covariances_, p["covariances"], what="covariances after a step")


def test_float32_fit_still_stops():
    init = {k: np.asarray(v, np.float32) for k, v in _start("full").items()}
    x32 = jnp.asarray(IRIS, jnp.float32)
    res = mj.GaussianMixture(K, reg_covar=0.0).fit(x32, init=init)
    assert res.params["means"].dtype == jnp.float32
    assert int(res.status) == mj.Status.CONVERGED and int(res.n_steps) < 1000
    _monotone(res.trace, rtol=1e-5)
    ref = mj.GaussianMixture(K, reg_covar=0.0).fit(jnp.asarray(IRIS), init=_start("full"))
    np.testing.assert_allclose(np.asarray(res.params["means"]),
                               np.asarray(ref.params["means"]), atol=1e-3)


# --- mj.em: a further EM step, written in numpy, moves the estimate less than 1e-6 ----------
_rng = np.random.default_rng(7)
XE = np.where(_rng.random(400) < 0.4, _rng.exponential(0.5, 400), _rng.exponential(4.0, 400))


from test_em import exp_joint, exp_m_step  # noqa: E402  (the exponential mixture's EM)


def _np_exp_step(w, rate, x):
    logp = np.log(w) + np.log(rate) - x[:, None] * rate
    r = np.exp(logp - np.logaddexp.reduce(logp, axis=1, keepdims=True))
    nk = r.sum(0)
    return nk / nk.sum(), nk / (r * x[:, None]).sum(0)


def test_em_closed_form_stops_at_the_fixed_point():
    init = {"weights": jnp.array([0.5, 0.5]), "rate": jnp.array([3.0, 0.1])}
    res = mj.em(exp_joint, init, jnp.asarray(XE), m_step=exp_m_step,
                constraints={"weights": mj.simplex, "rate": mj.positive}, stderr=False)
    _assert_fixed_point(res, _np_exp_step, XE, "rate")


def poisson_joint(params, x):
    lam = params["rates"]
    lf = jnp.sum(x[:, None, :] * jnp.log(lam)[None] - lam[None], axis=-1)
    return (jnp.log(params["weights"]) + lf
            - jnp.sum(jax.scipy.special.gammaln(x + 1.0), axis=-1)[:, None])


def _np_poisson_step(w, lam, x):
    logp = np.log(w) + (x[:, None, :] * np.log(lam)[None] - lam[None]).sum(-1)
    r = np.exp(logp - np.logaddexp.reduce(logp, axis=1, keepdims=True))
    nk = r.sum(0)
    return nk / nk.sum(), r.T @ x / nk[:, None]


def _poisson_data():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 2, 400)
    return rng.poisson(np.array([[1.0, 5.0], [3.0, 2.0]])[z]).astype(np.float64)


def _assert_poisson_fixed_point(res, xp):
    _assert_fixed_point(res, _np_poisson_step, xp, "rates")


def _assert_fixed_point(res, np_step, x, rate_name):
    """Converged, monotone, and one more EM step (numpy) moves the estimate < 1e-6."""
    assert bool(res.converged), res.message
    _monotone(res.trace)
    w, rate = np.asarray(res.params["weights"]), np.asarray(res.params[rate_name])
    w2, rate2 = np_step(w, rate, x)
    _close(w2, w, what="weights")
    _close(rate2, rate, what=rate_name)


def test_em_newton_m_step_stops_at_the_fixed_point():
    xp = _poisson_data()
    init = {"weights": jnp.array([0.5, 0.5]), "rates": jnp.array([[2.0, 3.0], [4.0, 3.5]])}
    res = mj.em(poisson_joint, init, jnp.asarray(xp), stderr=False,
                constraints={"weights": mj.simplex, "rates": mj.positive})
    _assert_poisson_fixed_point(res, xp)


def test_poisson_mixture_stops_at_the_fixed_point():
    xp = _poisson_data()
    res = mj.PoissonMixture(2).fit(xp, key=jax.random.key(0))
    _assert_poisson_fixed_point(res, xp)


def test_bad_xtol():
    with pytest.raises(ValueError, match="xtol"):
        mj.GaussianMixture(2, xtol=-1.0)
    with pytest.raises(ValueError, match="xtol"):
        mj.em(exp_joint, {"weights": jnp.array([0.5, 0.5]), "rate": jnp.array([3.0, 0.1])},
              jnp.asarray(XE), m_step=exp_m_step, xtol=-1.0)
