"""Random effects (GLMMs by the Laplace approximation) against independent NumPy/SciPy
references, in float64.

The references are written here from scratch, never from mlejax's output: a Newton on the
random effects in NumPy (per group, vectorised), the negative Hessian ``A`` in closed form
(logistic: ``sum p(1-p) z z' + Sigma^-1``; Poisson: ``sum mu z z' + Sigma^-1``), the
log-determinant by NumPy, the exact marginal by ``scipy.integrate.quad`` per group, and the
maximum likelihood estimate by ``scipy.optimize.minimize`` (BFGS on central-difference
gradients) on a log-sd (and atanh-correlation) parametrisation, polished by two Newton steps
with a finite-difference Hessian of the NumPy marginal. BFGS alone already lands within
2e-8 standard errors of mlejax; the polish takes the reference to about 1e-10, so that its
own error is negligible, and its Hessian gives reference standard errors.

* The Laplace marginal at the estimate (``res.loglik``) and at another theta equals the
  NumPy one to 1e-8 (absolute, on log-likelihoods of -100 to -300; the agreement seen is
  1e-13): random-intercept logistic and Poisson, random intercept + slope (``u`` of shape
  ``(G, 2)``, two sds and a correlation in ``mj.interval(-1, 1)``), and a Poisson model with
  a random intercept and a per-observation overdispersion effect (two random leaves, a
  dense ``A`` of 54 x 54; the reference eliminates the per-observation effects instead).
* The estimates equal the polished SciPy maximiser to 1e-5 standard errors (seen: 1e-9),
  the standard errors the finite-difference ones to 1e-4 relative (seen: 2e-7), the modes
  and conditional standard errors of the random effects NumPy's to 1e-8.
* Adaptive Gauss-Hermite quadrature with 25 nodes equals ``quad`` per group to 1e-8 (and a
  NumPy transcription of the same rule to 1e-10); ``nodes=1`` equals Laplace to 1e-10.
* The gradient of the marginal (implicit differentiation, ``jax.grad`` of the internal
  ``marginal``) equals central differences of the NumPy marginal to 1e-6 absolute (entries
  of 4 to 72; seen: 1e-8).
* Dense and grouped fits agree to 1e-8. L-BFGS (the batch below) equals Newton to 1e-8;
  BFGS (the slope model) matches SciPy to 1e-5 standard errors and is Newton-stationary to
  1e-6 standard errors.
* ``fit_batch`` (with restarts: ``n_best >= 1``) equals a loop of ``fit`` to 1e-8; a dataset
  of the batch whose inner Newton cannot converge gets INNER_NOT_CONVERGED, the others
  are unchanged.
* float32 agrees with float64 to 1e-3 of ``max(|value|, se)`` (seen: 1e-4).
* Bad input: a clear ValueError each.

Compilation dominates the time (each fit program compiles in 4-8 s), so every model is
fitted once in a module-scoped fixture, and the two random-intercept families share one
joint and one compiled program (the family is in the data).
"""

import dataclasses

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.integrate as si  # noqa: E402
import scipy.optimize as so  # noqa: E402
import scipy.special as sp  # noqa: E402
from jax.scipy.special import gammaln  # noqa: E402

import mlejax as mj  # noqa: E402
from mlejax._laplace import Laplace, Layout, marginal  # noqa: E402

LOG2PI = np.log(2.0 * np.pi)
G, N_PER = 20, 8              # groups and observations per group (logistic, Poisson)
N = G * N_PER
G_S, N_PER_S = 20, 10         # the random-slope model
TOL_LL = 1e-8                 # marginal log-likelihoods, absolute
TOL_SE = 1e-5                 # estimates, in standard errors


# --- data ----------------------------------------------------------------------------------
# The random-intercept models (logistic and Poisson) share one joint, the family and the prior
# switched by the data: every fit of them with the same options then runs one compiled program
# (each other program costs 4-8 s of compilation, the bulk of this file's time).
def _data(x, y, g, poisson):
    """``(x, y, g, poisson flag, prior weight per group)``, the joint's data (the weights
    are all 1 but in test_unidentified_random_effect)."""
    return x, y, g, np.float64(poisson), np.ones(G)


def _logit_data(seed, b0=-0.5, b1=0.8, sd=0.9):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), N_PER)
    x = rng.normal(size=N)
    u = rng.normal(0.0, sd, G)
    y = (rng.uniform(size=N) < sp.expit(b0 + b1 * x + u[g])).astype(np.float64)
    return _data(x, y, g, 0.0)


def _poisson_data(seed, b0=0.3, b1=0.5, sd=0.6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), N_PER)
    x = rng.normal(size=N)
    u = rng.normal(0.0, sd, G)
    y = rng.poisson(np.exp(b0 + b1 * x + u[g])).astype(np.float64)
    return _data(x, y, g, 1.0)


def _slope_data(seed=7, b0=0.5, b1=0.4, sd=(0.6, 0.5), rho=0.3):
    rng = np.random.default_rng(seed)
    n = G_S * N_PER_S
    g = np.repeat(np.arange(G_S), N_PER_S)
    x = rng.uniform(-1.5, 1.5, size=n)
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    u = rng.multivariate_normal(np.zeros(2), cov, size=G_S)
    y = rng.poisson(np.exp(b0 + b1 * x + u[g, 0] + u[g, 1] * x)).astype(np.float64)
    return x, y, g


LOGIT = _logit_data(1)
LOGIT_BATCH = [LOGIT] + [_logit_data(s) for s in (2, 3, 4)]
POIS = _poisson_data(11)
G_OD = 6                     # the overdispersion model: POIS's first 6 groups (dense A: 54 x 54)
POIS_OD = tuple(a[POIS[2] < G_OD] for a in POIS[:3])
SLOPE = _slope_data()


# --- the joints (JAX) ----------------------------------------------------------------------
def glmm_joint(p, d):
    """Random-intercept logistic or Poisson regression (by the data's flag)."""
    x, y, g, poisson, prior_w = d
    eta = p["b0"] + p["b1"] * x + p["u"][g]
    obs = jnp.where(poisson > 0, y * eta - jnp.exp(eta) - gammaln(y + 1.0),
                    y * eta - jnp.logaddexp(0.0, eta))
    return jnp.sum(obs) + jnp.sum(prior_w * jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["sd"]))


def logit_joint_by_group(p, d):
    """The logistic joint, one value per group (for adaptive quadrature)."""
    x, y, g, _, _ = d
    eta = p["b0"] + p["b1"] * x + p["u"][g]
    obs = jax.ops.segment_sum(y * eta - jnp.logaddexp(0.0, eta), g,
                              num_segments=p["u"].shape[0])
    return obs + jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["sd"])


def pois_od_joint(p, d):
    """Random intercept ``u`` per group plus an overdispersion effect ``e`` per observation."""
    x, y, g = d
    eta = p["b0"] + p["b1"] * x + p["u"][g] + p["e"]
    return (jnp.sum(y * eta - jnp.exp(eta) - gammaln(y + 1.0))
            + jnp.sum(jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["sd"]))
            + jnp.sum(jax.scipy.stats.norm.logpdf(p["e"], 0.0, p["sd_e"])))


def slope_joint(p, d):
    """Poisson, random intercept and slope per group: ``u`` (G, 2) bivariate normal with
    sds ``sd`` (2,) and correlation ``rho`` (written by the scalar formula; the reference
    uses the matrix one)."""
    x, y, g = d
    u = p["u"]
    eta = p["b0"] + p["b1"] * x + u[g, 0] + u[g, 1] * x
    s0, s1, r = p["sd"][0], p["sd"][1], p["rho"]
    z0, z1 = u[:, 0] / s0, u[:, 1] / s1
    q = (z0 ** 2 - 2.0 * r * z0 * z1 + z1 ** 2) / (1.0 - r ** 2)
    prior = -jnp.log(2.0 * jnp.pi) - jnp.log(s0) - jnp.log(s1) - 0.5 * jnp.log1p(-r ** 2) - 0.5 * q
    return jnp.sum(y * eta - jnp.exp(eta) - gammaln(y + 1.0)) + jnp.sum(prior)


POS = {"sd": mj.positive}
SLOPE_CONS = {"sd": mj.positive, "rho": mj.interval(-1.0, 1.0)}
GROUPED = mj.RandomEffects(["u"], grouped=True)


def _init():
    return {"b0": 0.0, "b1": 0.0, "u": jnp.zeros(G), "sd": 1.0}


SLOPE_INIT = {"b0": 0.0, "b1": 0.0, "u": jnp.zeros((G_S, 2)), "sd": jnp.ones(2), "rho": 0.0}


# --- the NumPy references ------------------------------------------------------------------
def _norm_logpdf(u, sd):
    return -0.5 * LOG2PI - np.log(sd) - 0.5 * (u / sd) ** 2


def _intercept_terms(family, theta, data, u):
    """Per group: the joint ``f_g``, its derivative in ``u_g`` and ``a_g = -d2 f_g / du_g2``."""
    b0, b1, sd = theta
    x, y, g = data[:3]
    ng = u.shape[0]
    eta = b0 + b1 * x + u[g]
    if family == "logit":
        p = sp.expit(eta)
        obs, resid, w = y * eta - np.logaddexp(0.0, eta), y - p, p * (1.0 - p)
    else:
        mu = np.exp(eta)
        obs, resid, w = y * eta - mu - sp.gammaln(y + 1.0), y - mu, mu
    f = np.bincount(g, obs, ng) + _norm_logpdf(u, sd)
    return f, np.bincount(g, resid, ng) - u / sd ** 2, np.bincount(g, w, ng) + 1.0 / sd ** 2


def _newton(step, u):
    """Newton from ``u`` (steps clipped to 1 in each coordinate) to rounding level."""
    for it in range(200):
        d = np.clip(step(u), -1.0, 1.0)
        u = u + d
        if np.max(np.abs(d)) < 1e-14 * (1.0 + np.max(np.abs(u))):
            break
    assert it < 199, "the reference Newton did not converge"
    return u + step(u)


def np_laplace_intercept(family, theta, data):
    """The Laplace marginal (float) and the modes and ``a`` of a random-intercept GLMM."""
    terms = lambda u: _intercept_terms(family, theta, data, u)  # noqa: E731
    u = _newton(lambda v: terms(v)[1] / terms(v)[2], np.zeros(G))
    f, _, a = terms(u)
    return float(np.sum(f + 0.5 * LOG2PI - 0.5 * np.log(a))), u, a


def np_exact_intercept(family, theta, data):
    """The exact marginal ``sum_g log int exp f_g(u) du``, by ``quad`` per group."""
    _, u_hat, a = np_laplace_intercept(family, theta, data)
    x, y, g = data[:3]
    total = 0.0
    for k in range(G):
        sub = (x[g == k], y[g == k], np.zeros(int(np.sum(g == k)), dtype=int))

        def fk(v, sub=sub):
            return _intercept_terms(family, theta, sub, np.array([v]))[0][0]

        peak = fk(u_hat[k])
        half = 20.0 / np.sqrt(a[k])
        val, _ = si.quad(lambda v: np.exp(fk(v) - peak), u_hat[k] - half, u_hat[k] + half,
                         epsabs=0.0, epsrel=1e-13, limit=200, points=[u_hat[k]])
        total += peak + np.log(val)
    return total


def np_agq_intercept(family, theta, data, nodes):
    """Adaptive Gauss-Hermite quadrature written out: nodes ``u_hat + sqrt(2 / a) x_k``."""
    _, u_hat, a = np_laplace_intercept(family, theta, data)
    xs, w = np.polynomial.hermite.hermgauss(nodes)
    s = np.sqrt(2.0 / a)
    vals = np.array([_intercept_terms(family, theta, data, u_hat + s * xk)[0] for xk in xs])
    return float(np.sum(np.log(s) + sp.logsumexp(np.log(w)[:, None] + xs[:, None] ** 2 + vals,
                                                axis=0)))


def _slope_terms(theta, data, u):
    """Per group: ``f_g``, the gradient (G, 2) and ``A_g`` (G, 2, 2) of the slope model."""
    b0, b1, s0, s1, r = theta
    x, y, g = data
    cov = np.array([[s0 ** 2, r * s0 * s1], [r * s0 * s1, s1 ** 2]])
    prec = np.linalg.inv(cov)
    _, logdet = np.linalg.slogdet(cov)
    z = np.stack([np.ones_like(x), x], axis=1)                       # (n, 2)
    eta = b0 + b1 * x + np.sum(u[g] * z, axis=1)
    mu = np.exp(eta)
    prior = -LOG2PI - 0.5 * logdet - 0.5 * np.einsum("gi,ij,gj->g", u, prec, u)
    f = np.bincount(g, y * eta - mu - sp.gammaln(y + 1.0), G_S) + prior
    grad = np.stack([np.bincount(g, (y - mu) * z[:, i], G_S) for i in range(2)], 1) - u @ prec
    a = np.empty((G_S, 2, 2))
    for i in range(2):
        for j in range(2):
            a[:, i, j] = np.bincount(g, mu * z[:, i] * z[:, j], G_S) + prec[i, j]
    return f, grad, a


def np_laplace_slope(theta, data):
    terms = lambda u: _slope_terms(theta, data, u)  # noqa: E731

    def step(u):
        _, grad, a = terms(u)
        return np.linalg.solve(a, grad[..., None])[..., 0]

    u = _newton(step, np.zeros((G_S, 2)))
    f, _, a = terms(u)
    return float(np.sum(f) + G_S * LOG2PI - 0.5 * np.sum(np.linalg.slogdet(a)[1])), u, a


def np_laplace_od(theta, data):
    """Poisson with a random intercept ``u`` and an overdispersion effect ``e`` per
    observation. ``A`` over all ``G + N`` effects has diagonal blocks ``A_uu``, ``A_ee`` and
    ``(A_ue)_{g i} = mu_i [g_i = g]``, so eliminating ``e`` leaves a diagonal Schur
    complement ``S_g = A_uu,g - sum_{i in g} mu_i^2 / A_ee,i``: the Newton step by block
    elimination and ``log det A = sum log A_ee + sum log S`` (no dense algebra)."""
    b0, b1, sd, sd_e = theta
    x, y, g = data
    ng, n = int(g.max()) + 1, g.size

    def terms(u, e):
        eta = b0 + b1 * x + u[g] + e
        mu = np.exp(eta)
        f = (np.sum(y * eta - mu - sp.gammaln(y + 1.0)) + np.sum(_norm_logpdf(u, sd))
             + np.sum(_norm_logpdf(e, sd_e)))
        a_ee = mu + sd_e ** -2
        schur = np.bincount(g, mu - mu ** 2 / a_ee, ng) + sd ** -2
        return f, y - mu - e / sd_e ** 2, np.bincount(g, y - mu, ng) - u / sd ** 2, a_ee, mu, schur

    def step(v):
        _, r_e, r_u, a_ee, mu, schur = terms(v[:ng], v[ng:])
        du = (r_u - np.bincount(g, mu * r_e / a_ee, ng)) / schur
        return np.concatenate([du, (r_e - mu * du[g]) / a_ee])

    v = _newton(step, np.zeros(ng + n))
    f, _, _, a_ee, _, schur = terms(v[:ng], v[ng:])
    log_det = np.sum(np.log(a_ee)) + np.sum(np.log(schur))
    return float(f + 0.5 * (ng + n) * LOG2PI - 0.5 * log_det)


# --- finite differences and the SciPy maximiser --------------------------------------------
def fd_grad(fun, z, h=1e-5):
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = h
        out[i] = (fun(z + e) - fun(z - e)) / (2.0 * h)
    return out


def fd_hess(fun, z, h=1e-4):
    z = np.asarray(z, dtype=np.float64)
    cols = []
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = h
        cols.append((fd_grad(fun, z + e) - fd_grad(fun, z - e)) / (2.0 * h))
    hess = np.array(cols)
    return 0.5 * (hess + hess.T)


def scipy_mle(loglik, z0):
    """Maximiser of ``loglik(z)`` (unconstrained z): BFGS on central differences, then two
    Newton steps with a finite-difference Hessian. Returns ``z`` and ``cov_z``."""
    neg = lambda z: -loglik(z)  # noqa: E731
    res = so.minimize(neg, z0, jac=lambda z: fd_grad(neg, z), method="BFGS",
                      options={"gtol": 1e-9, "maxiter": 500})
    z = res.x
    for _ in range(2):
        hess = fd_hess(loglik, z)
        z = z - np.linalg.solve(hess, fd_grad(loglik, z))
    return z, np.linalg.inv(-fd_hess(loglik, z))


def _natural_se(cov_z, jac_diag):
    """Standard errors of ``theta_i = phi_i(z_i)`` (the delta method, diagonal Jacobian)."""
    j = np.diag(jac_diag)
    return np.sqrt(np.diag(j @ cov_z @ j.T))


def _vec(params, keys):
    return np.concatenate([np.ravel(np.asarray(params[k], np.float64)) for k in keys])


def _se_units(ours, ref, se):
    return np.max(np.abs(np.asarray(ours) - np.asarray(ref)) / np.asarray(se))


# --- mlejax's marginal at a given theta (the internals) ------------------------------------
def _spec(joint, names, shapes, grouped, nodes=1, per_group=False):
    return Laplace(joint, Layout(tuple(names), tuple(shapes), grouped, jnp.float64),
                   nodes=nodes, per_group=per_group)


GLMM_SPEC = _spec(glmm_joint, ["u"], [(G,)], True)
SLOPE_SPEC = _spec(slope_joint, ["u"], [(G_S, 2)], True)

# the marginal, its modes and its gradient in theta (implicit differentiation): one program
_value_grad = jax.jit(jax.value_and_grad(lambda th, spec, d, u0: marginal(spec, th, d, u0),
                                         has_aux=True), static_argnums=1)


def ml_marginal(spec, theta, data):
    """mlejax's marginal at ``theta`` (a dict), the modes ``(B, m)`` and the gradient."""
    lay = spec.layout
    u0 = jnp.zeros((lay.n_blocks, lay.size // lay.n_blocks), jnp.float64)
    th = {k: jnp.asarray(v, jnp.float64) for k, v in theta.items()}
    (value, u), grad = _value_grad(th, spec, data, u0)
    return float(value), np.asarray(u), grad


def _intercept_theta(t):
    return {"b0": t[0], "b1": t[1], "sd": t[2]}


def _slope_theta(t):
    return {"b0": t[0], "b1": t[1], "sd": np.array(t[2:4]), "rho": t[4]}


# --- module fixtures: each model fitted once -----------------------------------------------
def _converged(res):
    assert int(res.status) == 0, mj.Status(int(res.status))
    return res


@pytest.fixture(scope="module")
def fit_logit():
    return _converged(mj.fit(glmm_joint, _init(), LOGIT, random=GROUPED, constraints=POS))


@pytest.fixture(scope="module")
def fit_pois():
    """The same program as fit_logit (one joint, the family in the data)."""
    return _converged(mj.fit(glmm_joint, _init(), POIS, random=GROUPED, constraints=POS))


@pytest.fixture(scope="module")
def fit_slope():
    """By BFGS (test_bfgs_slope_estimate_is_newton_stationary)."""
    return _converged(mj.fit(slope_joint, SLOPE_INIT, SLOPE, random=GROUPED,
                             constraints=SLOPE_CONS, method="bfgs"))


KEYS = ("b0", "b1", "sd")
SLOPE_KEYS = ("b0", "b1", "sd", "rho")


# --- 1 and 2: the Laplace marginal and the estimates against NumPy/SciPy --------------------
@pytest.mark.parametrize("which", ["logit", "pois"])
def test_intercept_fit_equals_numpy_and_scipy(which, request):
    res = request.getfixturevalue(f"fit_{which}")
    data = LOGIT if which == "logit" else POIS
    est = _vec(res.params, KEYS)
    # the marginal at the estimate
    ll_np, u_np, a_np = np_laplace_intercept(which, est, data)
    assert abs(float(res.loglik) - ll_np) < TOL_LL, (float(res.loglik), ll_np)
    # the estimate and its standard errors
    ll = lambda z: np_laplace_intercept(which, (z[0], z[1], np.exp(z[2])), data)[0]  # noqa: E731
    z, cov_z = scipy_mle(ll, np.zeros(3))
    ref_est = np.array([z[0], z[1], np.exp(z[2])])
    se = _vec(res.stderr, KEYS)
    assert _se_units(est, ref_est, se) < TOL_SE, (est, ref_est, se)
    np.testing.assert_allclose(se, _natural_se(cov_z, [1.0, 1.0, ref_est[2]]), rtol=1e-4)
    # the random effects at the estimate: modes and conditional standard errors
    np.testing.assert_allclose(res.random.mode["u"], u_np, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.random.cond_stderr["u"], 1.0 / np.sqrt(a_np), rtol=1e-8)
    # TMB's standard errors add theta-hat's uncertainty: never below the conditional ones
    assert np.all(np.asarray(res.random.stderr["u"])
                  >= np.asarray(res.random.cond_stderr["u"]) - 1e-12)


# --- 1 and 4: at another theta, the marginal and its gradient -----------------------------
@pytest.mark.parametrize("which, theta", [("logit", (0.4, -0.3, 1.7)),
                                          ("pois", (-0.2, 1.1, 0.25))])
def test_marginal_and_gradient_at_another_theta(which, theta):
    """The gradient is implicit differentiation through the mode; central differences of the
    NumPy marginal (h = 1e-5) are accurate to about 1e-9 here: 1e-6 absolute."""
    data = LOGIT if which == "logit" else POIS
    value, u, grad = ml_marginal(GLMM_SPEC, _intercept_theta(theta), data)
    ref, u_np, _ = np_laplace_intercept(which, theta, data)
    assert abs(value - ref) < TOL_LL, (value, ref)
    np.testing.assert_allclose(u[:, 0], u_np, rtol=0, atol=1e-8)
    fd = fd_grad(lambda t: np_laplace_intercept(which, t, data)[0], np.array(theta))
    np.testing.assert_allclose(_vec(grad, KEYS), fd, rtol=0, atol=1e-6)
    assert np.max(np.abs(fd)) > 1.0        # far from the optimum: a real gradient


def test_poisson_overdispersion_two_random_leaves_dense_equals_numpy():
    """A random intercept and a per-observation effect, both random (dense A, 54 x 54)."""
    spec = _spec(pois_od_joint, ["u", "e"], [(G_OD,), (G_OD * N_PER,)], False)
    for theta in [(0.3, 0.5, 0.6, 0.3), (-0.1, 0.9, 1.2, 0.7)]:
        value, _, grad = ml_marginal(spec, {"b0": theta[0], "b1": theta[1], "sd": theta[2],
                                            "sd_e": theta[3]}, POIS_OD)
        assert abs(value - np_laplace_od(theta, POIS_OD)) < TOL_LL, theta
        fd = fd_grad(lambda t: np_laplace_od(t, POIS_OD), np.array(theta))
        np.testing.assert_allclose(_vec(grad, ("b0", "b1", "sd", "sd_e")), fd, rtol=0,
                                   atol=1e-6)


def test_random_slope_equals_numpy_and_scipy(fit_slope):
    res = fit_slope
    est = _vec(res.params, SLOPE_KEYS)
    ll_np, u_np, a_np = np_laplace_slope(est, SLOPE)
    assert abs(float(res.loglik) - ll_np) < TOL_LL, (float(res.loglik), ll_np)

    def ll(z):
        return np_laplace_slope((z[0], z[1], np.exp(z[2]), np.exp(z[3]), np.tanh(z[4])),
                                SLOPE)[0]

    z, cov_z = scipy_mle(ll, np.array([0.0, 0.0, np.log(0.5), np.log(0.5), 0.0]))
    ref_est = np.array([z[0], z[1], np.exp(z[2]), np.exp(z[3]), np.tanh(z[4])])
    se = _vec(res.stderr, SLOPE_KEYS)
    assert _se_units(est, ref_est, se) < TOL_SE, (est, ref_est, se)
    ref_se = _natural_se(cov_z, [1.0, 1.0, ref_est[2], ref_est[3], 1.0 - ref_est[4] ** 2])
    np.testing.assert_allclose(se, ref_se, rtol=1e-4)
    np.testing.assert_allclose(res.random.mode["u"], u_np, rtol=0, atol=1e-8)
    cond = np.sqrt(np.diagonal(np.linalg.inv(a_np), axis1=1, axis2=2))
    np.testing.assert_allclose(res.random.cond_stderr["u"], cond, rtol=1e-8)
    # another theta (2 x 2 blocks), with the gradient against central differences
    theta = (0.1, 0.7, 0.9, 0.3, -0.6)
    value, _, grad = ml_marginal(SLOPE_SPEC, _slope_theta(theta), SLOPE)
    assert abs(value - np_laplace_slope(theta, SLOPE)[0]) < TOL_LL
    fd = fd_grad(lambda t: np_laplace_slope(t, SLOPE)[0], np.array(theta))
    np.testing.assert_allclose(_vec(grad, SLOPE_KEYS), fd, rtol=0, atol=1e-6)


# --- 3: adaptive Gauss-Hermite quadrature against quad -------------------------------------
@pytest.mark.parametrize("theta", [(-0.4, 0.7, 0.9), (0.2, -0.5, 1.5)])
def test_agq_many_nodes_equals_quad_and_one_node_equals_laplace(theta):
    """25 nodes are within 1e-10 of the exact marginal at these thetas (by NumPy's own
    quadrature; at sd = 2.5 they would be 7e-8 off, a property of 25 nodes, not a fault)."""
    th = _intercept_theta(theta)
    agq = _spec(logit_joint_by_group, ["u"], [(G,)], True, nodes=25, per_group=True)
    value, _, _ = ml_marginal(agq, th, LOGIT)
    exact = np_exact_intercept("logit", theta, LOGIT)
    assert abs(value - exact) < 1e-8, (value, exact)
    assert abs(value - np_agq_intercept("logit", theta, LOGIT, 25)) < 1e-10
    one = _spec(logit_joint_by_group, ["u"], [(G,)], True, nodes=1, per_group=True)
    v1, _, _ = ml_marginal(one, th, LOGIT)
    laplace, _, _ = ml_marginal(GLMM_SPEC, th, LOGIT)
    assert abs(v1 - laplace) < 1e-10
    # the Laplace approximation is not the exact marginal here (so the test above is sharp)
    assert abs(laplace - exact) > 1e-3


# --- 5: dense against grouped, and the three solvers ---------------------------------------
def test_dense_equals_grouped(fit_logit):
    dense = _converged(mj.fit(glmm_joint, _init(), LOGIT, random=["u"], constraints=POS))
    np.testing.assert_allclose(_vec(dense.params, KEYS), _vec(fit_logit.params, KEYS),
                               rtol=0, atol=1e-8)
    assert abs(float(dense.loglik) - float(fit_logit.loglik)) < 1e-8
    np.testing.assert_allclose(_vec(dense.stderr, KEYS), _vec(fit_logit.stderr, KEYS),
                               rtol=1e-7)
    np.testing.assert_allclose(dense.random.mode["u"], fit_logit.random.mode["u"],
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(dense.random.stderr["u"], fit_logit.random.stderr["u"],
                               rtol=1e-7)


def test_dense_equals_grouped_at_sixty_groups():
    """A dense A of 60 x 60 (factored once, differentiated by formulas: _laplace's
    half_logdet) against the grouped fit of the same model (blocks of 1): the Newton fits,
    and jax.hessian of the two marginals (what BFGS's observed information is) at a theta
    away from the optimum."""
    rng = np.random.default_rng(60)
    g = np.repeat(np.arange(60), 4)
    x = rng.normal(size=240)
    u = rng.normal(size=60)
    y = (rng.uniform(size=240) < sp.expit(-0.5 + x + u[g])).astype(float)
    data = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(g), jnp.zeros(240), jnp.ones(60))
    init = {"b0": 0.0, "b1": 0.0, "u": jnp.zeros(60), "sd": 1.0}
    grouped = _converged(mj.fit(glmm_joint, init, data, random=GROUPED, constraints=POS))
    dense = _converged(mj.fit(glmm_joint, init, data, random=["u"], constraints=POS))
    np.testing.assert_allclose(_vec(dense.params, KEYS), _vec(grouped.params, KEYS),
                               rtol=0, atol=1e-8)
    assert abs(float(dense.loglik) - float(grouped.loglik)) < 1e-8
    np.testing.assert_allclose(_vec(dense.stderr, KEYS), _vec(grouped.stderr, KEYS),
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(dense.random.mode["u"], grouped.random.mode["u"],
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(dense.random.stderr["u"], grouped.random.stderr["u"],
                               rtol=0, atol=1e-8)
    theta = jnp.array([0.4, -0.3, 0.5])      # b0, b1, log sd

    def hessian(grouped_):
        spec = _spec(glmm_joint, ["u"], [(60,)], grouped_)
        u0 = jnp.zeros((60, 1) if grouped_ else (1, 60))
        fn = lambda t: marginal(spec, {"b0": t[0], "b1": t[1], "sd": jnp.exp(t[2])},  # noqa: E731
                                data, u0)[0]
        return jax.jit(jax.hessian(fn))(theta)

    h_dense, h_grouped = hessian(False), hessian(True)
    np.testing.assert_allclose(h_dense, h_grouped, rtol=1e-10, atol=1e-10)
    assert np.max(np.abs(h_dense)) > 1.0


def test_dense_fit_batch_equals_loop_of_fits():
    """The factored dense marginal (A wider than the unrolled blocks) in fit_batch: two
    datasets of 12 groups in one program equal two single fits (estimates, standard errors,
    modes) to 1e-10. On CPU the program runs the two fits one after the other
    (Config.fits_in_turn: jaxlib's batched LAPACK can deadlock); on an accelerator the
    configuration keeps them one vmap. The last dataset in float32 agrees with float64 to
    1e-3 of max(|value|, se)."""
    datasets = []
    for seed in (12, 13):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(12), 5)
        x = rng.normal(size=60)
        y = (rng.uniform(size=60) < sp.expit(-0.5 + x + rng.normal(size=12)[g])).astype(float)
        datasets.append((x, y, g, np.zeros(60), np.ones(12)))
    init = {"b0": 0.0, "b1": 0.0, "u": jnp.zeros(12), "sd": 1.0}
    batch = mj.fit_batch(glmm_joint, init, tuple(jnp.asarray(np.stack(c)) for c in
                                                 zip(*datasets)),
                         random=["u"], constraints=POS)
    assert np.all(np.asarray(batch.status) == 0), batch.status
    cfg = batch.context.config
    assert cfg.platform == "cpu" and cfg.fits_in_turn
    assert not dataclasses.replace(cfg, platform="gpu").fits_in_turn
    for k, d in enumerate(datasets):
        one = _converged(mj.fit(glmm_joint, init, tuple(map(jnp.asarray, d)), random=["u"],
                                constraints=POS))
        for tree in ("params", "stderr"):
            np.testing.assert_allclose(
                _vec(jax.tree_util.tree_map(lambda v: v[k], getattr(batch, tree)), KEYS),
                _vec(getattr(one, tree), KEYS), rtol=0, atol=1e-10)
        np.testing.assert_allclose(batch.random.mode["u"][k], one.random.mode["u"], rtol=0,
                                   atol=1e-10)
    # The factored path in float32 (the last dataset): the float32 tolerances of
    # test_float32_agrees_with_float64.
    res = _converged(mj.fit(glmm_joint, jax.tree_util.tree_map(np.float32, init),
                            tuple(jnp.asarray(a, jnp.int32 if a is d[2] else jnp.float32)
                                  for a in d),
                            random=["u"], constraints=POS))
    assert res.context.config.fits_in_turn
    _assert_float32_close(res, one)


def test_bfgs_slope_estimate_is_newton_stationary(fit_slope):
    """The slope model was fitted by BFGS (and matched the SciPy maximiser to 1e-5 standard
    errors): one Newton step -H^-1 g from its estimate (mlejax's gradient, NumPy's
    finite-difference Hessian) is below 1e-6 standard errors. L-BFGS against Newton:
    test_fit_batch_by_lbfgs_equals_loop_of_newton_fits."""
    est = _vec(fit_slope.params, SLOPE_KEYS)
    _, _, grad = ml_marginal(SLOPE_SPEC, _slope_theta(est), SLOPE)
    step = np.linalg.solve(fd_hess(lambda t: np_laplace_slope(t, SLOPE)[0], est),
                           _vec(grad, SLOPE_KEYS))
    assert np.max(np.abs(step) / _vec(fit_slope.stderr, SLOPE_KEYS)) < 1e-6


# --- 6: batches --------------------------------------------------------------------------
def test_fit_batch_by_lbfgs_equals_loop_of_newton_fits(fit_logit, fit_pois):
    """K = 6 in one program, by L-BFGS with 2 restarts each: the four logistic datasets, the
    Poisson one, and the Poisson one again with its random effects started at 60, from where
    the inner Newton (A ~ sum mu) moves about 1 a step: more than max_inner=20 allows. That
    dataset gets its own status; every other fit equals its Newton fit alone to 1e-8 (the
    two solvers' estimates differ by about 1e-10 here; one compiled program fewer than
    testing L-BFGS apart)."""
    sets = LOGIT_BATCH + [POIS, POIS]
    data = tuple(np.stack([d[i] for d in sets]) for i in range(5))
    k = len(sets)
    u0 = np.zeros((k, G))
    u0[-1] = 60.0
    init = {"b0": np.zeros(k), "b1": np.zeros(k), "u": u0, "sd": np.ones(k)}
    batch = mj.fit_batch(glmm_joint, init, data, init_batched=True, constraints=POS,
                         random=mj.RandomEffects(["u"], grouped=True, max_inner=20),
                         method="lbfgs", restarts=2, key=jax.random.key(3), warn=False)
    status = [mj.Status(int(s)) for s in np.asarray(batch.status)]
    assert status == [mj.Status.CONVERGED] * (k - 1) + [mj.Status.INNER_NOT_CONVERGED], status
    assert np.all(np.asarray(batch.n_best)[:-1] >= 1)
    alone = {0: fit_logit, 4: fit_pois}       # the others: the same program as these
    for j, d in enumerate(sets[:-1]):
        one = alone[j] if j in alone else _converged(
            mj.fit(glmm_joint, _init(), d, random=GROUPED, constraints=POS))
        for key in KEYS:
            assert abs(float(batch.params[key][j]) - float(one.params[key])) < 1e-8, (j, key)
        assert abs(float(batch.loglik[j]) - float(one.loglik)) < 1e-8, j
        np.testing.assert_allclose(batch.random.mode["u"][j], one.random.mode["u"],
                                   rtol=0, atol=1e-8)


# --- 7: float32 --------------------------------------------------------------------------
def test_float32_agrees_with_float64(fit_logit):
    """Estimates within 1e-3 of max(|value|, its standard error), standard errors and the
    log-likelihood within 1e-3 relative."""
    x, y, g, flag, w = LOGIT
    init32 = {"b0": np.float32(0.0), "b1": np.float32(0.0), "u": np.zeros(G, np.float32),
              "sd": np.float32(1.0)}
    data32 = (x.astype(np.float32), y.astype(np.float32), g.astype(np.int32),
              np.float32(flag), w.astype(np.float32))
    res = _converged(mj.fit(glmm_joint, init32, data32, random=GROUPED, constraints=POS))
    _assert_float32_close(res, fit_logit)


def _assert_float32_close(res, ref64):
    """A float32 fit against the float64 one: float32 results, estimates within 1e-3 of
    max(|value|, its standard error), standard errors and log-likelihood 1e-3 relative."""
    for key in KEYS:
        assert res.params[key].dtype == jnp.float32
        ref, se = float(ref64.params[key]), float(ref64.stderr[key])
        assert abs(float(res.params[key]) - ref) <= 1e-3 * max(abs(ref), se), key
        assert abs(float(res.stderr[key]) - se) <= 1e-3 * se, key
    assert abs(float(res.loglik) - float(ref64.loglik)) <= 1e-3 * abs(float(ref64.loglik))
    assert res.random.mode["u"].dtype == jnp.float32


# --- 8: bad input --------------------------------------------------------------------------
def test_random_name_not_in_init():
    with pytest.raises(ValueError, match=r"\['v'\] not in init"):
        mj.fit(glmm_joint, _init(), LOGIT, random=["v"], constraints=POS)


def test_constraint_on_a_random_effect():
    with pytest.raises(ValueError, match="random effects take no constraint"):
        mj.fit(glmm_joint, _init(), LOGIT, random=["u"],
               constraints={"sd": mj.positive, "u": mj.positive})


def test_grouped_declared_on_a_joint_that_couples_groups():
    def rw_joint(p, d):
        x, y, g, _, _ = d
        eta = p["b0"] + p["b1"] * x + p["u"][g]
        return (jnp.sum(y * eta - jnp.logaddexp(0.0, eta))
                - 0.5 * jnp.sum((p["u"][1:] - p["u"][:-1]) ** 2) / p["sd"] ** 2
                - 0.5 * p["u"][0] ** 2)

    with pytest.raises(ValueError, match="couples groups"):
        mj.fit(rw_joint, _init(), LOGIT, random=GROUPED, constraints=POS)


def test_unidentified_random_effect():
    """The last group's effect enters nothing: no observation of it, no prior term."""
    x, y, g, flag, w = LOGIT
    w = w.copy()
    w[-1] = 0.0
    data = (x, y, np.where(g == G - 1, 0, g), flag, w)
    with pytest.raises(ValueError, match="not strictly concave in the random effects"):
        mj.fit(glmm_joint, _init(), data, random=GROUPED, constraints=POS)


def test_quadrature_needs_a_per_group_joint():
    with pytest.raises(ValueError, match="one value per group"):
        mj.fit(glmm_joint, _init(), LOGIT, random=mj.RandomEffects(["u"], grouped=True,
                                                                   nodes=5),
               constraints=POS)


@pytest.mark.parametrize("option", [{"weights": np.ones(N)}, {"minibatch": 10}])
def test_weights_and_minibatch_refused(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"{name}= does not combine with random effects"):
        mj.fit(glmm_joint, _init(), LOGIT, random=GROUPED, constraints=POS,
               key=jax.random.key(0), **option)
