"""Inference: robust errors, profile intervals, delta method, LRT and bootstrap.

References, each with its tolerance:

* HC0 and cluster-robust covariances: statsmodels ``Logit`` (spector data, clustered by TUCE
  score) and Poisson ``GLM`` (cpunish data), 1e-6 relative.
* Profile-likelihood intervals: iminuit's MINOS on the same negative log-likelihood written in
  numpy (errordef 0.5, ``cl=level``), 1e-4 relative: a normal mean and (asymmetric) scale, a
  Poisson rate near its bound 0, and a zero-inflated Poisson whose zero-inflation probability
  sits near 0 (two-sided near the bound, and one-sided at it).
* Delta method: closed forms for the normal model.
* LRT: the closed-form statistic of nested normal models; p-values uniform under the null
  (Kolmogorov-Smirnov).
* Bootstrap (B = 2000): the known sampling distribution of the normal model's estimates
  (``sd(mu) = sigma / sqrt(n)``, ``sd(sigma) ~ sigma / sqrt(2 n)``), nonparametric and
  parametric (with a tenth of the simulated datasets degenerate, to check that non-converged
  replicates are counted and excluded), and coverage of percentile intervals in a small
  simulation (a batch of fits bootstrapped at once).
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.special import gammaln  # noqa: E402

import mlejax as mj  # noqa: E402
from conftest import assert_rel  # noqa: E402

sm = pytest.importorskip("statsmodels.api")
iminuit = pytest.importorskip("iminuit")

Q95 = 3.841458820694124  # chi2_1 quantile at 0.95
CONS = {"sigma": mj.positive}


# --- models ----------------------------------------------------------------------------------

def logit_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jax.nn.softplus(eta)


def poisson_reg_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jnp.exp(eta) - jax.scipy.special.gammaln(data["y"] + 1.0)


def normal_ll(params, x):
    z = (x - params["mu"]) / params["sigma"]
    return -0.5 * z**2 - jnp.log(params["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)


def normal_sigma_ll(params, x):
    """The normal model with mu = 0 (nested in normal_ll)."""
    z = x / params["sigma"]
    return -0.5 * z**2 - jnp.log(params["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)


def poisson_rate_ll(params, y):
    lam = params["lam"]
    return y * jnp.log(lam) - lam - jax.scipy.special.gammaln(y + 1.0)


def zip_ll(params, y):
    pi, lam = params["pi"], params["lam"]
    zero = jnp.log(pi + (1.0 - pi) * jnp.exp(-lam))
    pos = jnp.log1p(-pi) - lam + y * jnp.log(lam) - jax.scipy.special.gammaln(y + 1.0)
    return jnp.where(y == 0, zero, pos)


# --- references --------------------------------------------------------------------------------

def _spector():
    d = sm.datasets.spector.load_pandas()
    X = sm.add_constant(d.exog, prepend=True).to_numpy(dtype=np.float64)
    return X, d.endog.to_numpy(dtype=np.float64), d.exog["TUCE"].to_numpy()


def _cpunish():
    d = sm.datasets.cpunish.load_pandas()
    Z = d.exog.to_numpy(dtype=np.float64)
    Z = (Z - Z.mean(0)) / Z.std(0)
    return sm.add_constant(Z, prepend=True), d.endog.to_numpy(dtype=np.float64)


def _minos(nll, start, limits, level=0.95):
    """MINOS endpoints per parameter: (lower, upper, lower at limit, upper at limit)."""
    m = iminuit.Minuit(nll, name=list(start), *start.values())
    m.errordef = iminuit.Minuit.LIKELIHOOD
    for k, lim in limits.items():
        m.limits[k] = lim
    m.strategy = 2
    m.tol = 1e-8
    m.migrad()
    assert m.valid
    m.minos(cl=level)
    out = {}
    for k in start:
        me = m.merrors[k]
        out[k] = (m.values[k] + me.lower, m.values[k] + me.upper, me.at_lower_limit,
                  me.at_upper_limit)
    return out


def test_public_names():
    for name in ["robust_cov", "confint", "profile", "delta", "lrt", "bootstrap",
                 "ConfidenceIntervals", "ProfileCurve", "DeltaResult", "LRTResult",
                 "BootstrapResult", "EndpointStatus"]:
        assert hasattr(mj, name) and name in mj.__all__, name


# --- robust errors -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spector():
    X, y, tuce = _spector()
    res = mj.fit(logit_ll, {"beta": jnp.zeros(4)}, {"X": jnp.asarray(X), "y": jnp.asarray(y)})
    assert bool(res.converged)
    return X, y, tuce, res


@pytest.fixture(scope="module")
def normal_fit():
    return mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, jnp.asarray(X_NORMAL), constraints=CONS)


K_SIM, N_SIM = 200, 40


@pytest.fixture(scope="module")
def null_batch():
    """K_SIM normal datasets with mu = 1, of X_NORMAL's size (so single fits of its rows reuse
    normal_fit's compiled programs); shared by the batch, LRT and coverage tests."""
    xs = np.random.default_rng(7).normal(1.0, 1.5, (K_SIM, N_SIM))
    rb = mj.fit_batch(normal_ll, {"mu": 0.0, "sigma": 1.0}, jnp.asarray(xs), constraints=CONS)
    return xs, rb


def test_robust_logit_spector_matches_statsmodels(spector):
    X, y, tuce, res = spector
    ref = sm.Logit(y, X).fit(disp=0, cov_type="HC0")
    assert_rel(res.stderr_robust["beta"], ref.bse, 1e-6, "HC0 stderr")
    assert_rel(res.cov_robust, ref.cov_params(), 1e-6, "HC0 cov")
    ref_c = sm.Logit(y, X).fit(disp=0, cov_type="cluster", cov_kwds={"groups": tuce})
    cov_c = mj.robust_cov(res, groups=tuce)
    assert_rel(cov_c, ref_c.cov_params(), 1e-6, "cluster cov (CRV1)")
    # Clustered Wald intervals and the summary use the same matrix.
    ci = res.confint(0.95, cov="robust", groups=tuce)
    se = np.sqrt(np.diag(np.asarray(cov_c)))
    assert_rel(ci.upper - ci.estimate, 1.959963984540054 * se, 1e-9, "robust Wald")
    assert "cluster-robust" in res.summary(cov="robust", groups=tuce)


def test_robust_poisson_cpunish_matches_statsmodels():
    X, y = _cpunish()
    res = mj.fit(poisson_reg_ll, {"beta": jnp.zeros(X.shape[1])},
                 {"X": jnp.asarray(X), "y": jnp.asarray(y)})
    glm = sm.GLM(y, X, family=sm.families.Poisson())
    ref = glm.fit(tol=1e-13, cov_type="HC0")
    assert_rel(res.stderr_robust["beta"], ref.bse, 1e-6, "HC0 stderr")
    groups = np.arange(len(y)) % 5
    ref_c = glm.fit(tol=1e-13, cov_type="cluster", cov_kwds={"groups": groups})
    assert_rel(mj.robust_cov(res, groups=groups), ref_c.cov_params(), 1e-6, "cluster cov")


def test_robust_batch_equals_single_fits(spector):
    X, y, tuce, _ = spector
    idx = np.stack([np.arange(32), np.arange(32)[::-1], (np.arange(32) * 7) % 32])
    data = {"X": jnp.asarray(X[idx]), "y": jnp.asarray(y[idx])}
    rb = mj.fit_batch(logit_ll, {"beta": jnp.zeros(4)}, data)
    cb = mj.robust_cov(rb, groups=tuce[idx])
    assert np.shape(cb) == (3, 4, 4)
    for k in range(3):
        rk = mj.fit(logit_ll, {"beta": jnp.zeros(4)}, {"X": data["X"][k], "y": data["y"][k]})
        assert_rel(cb[k], mj.robust_cov(rk, groups=tuce[idx[k]]), 1e-8, f"batch {k}")
    assert np.shape(rb.stderr_robust["beta"]) == (3, 4)


def multinomial_ll(params, counts):
    """A scalar total (no per-observation terms), with a simplex parameter."""
    return jnp.sum(counts * jnp.log(params["w"]))


def test_scalar_loglik_and_simplex_limits():
    counts = jnp.asarray([3.0, 5.0, 2.0])
    res = mj.fit(multinomial_ll, {"w": jnp.ones(3) / 3}, counts, constraints={"w": mj.simplex})
    assert bool(res.converged)
    with pytest.raises(ValueError, match="per-observation"):
        res.cov_robust
    with pytest.raises(ValueError, match="per-observation"):
        mj.bootstrap(res, n=10, key=jax.random.key(0))
    # BIC needs nobs: unknown from a scalar log-likelihood, given with with_nobs.
    assert np.isnan(float(res.bic))
    assert_rel(res.with_nobs(10).bic, 2 * np.log(10) - 2 * float(res.loglik), 1e-12)
    # A simplex weight cannot be fixed alone: no profile for it (the others still work).
    with pytest.raises(ValueError, match="cannot be profiled"):
        res.confint(method="profile", which="w")
    with pytest.raises(ValueError, match="cannot be profiled"):
        mj.profile(res, "w[0]", [0.2, 0.3])
    ci = res.confint(method="profile")
    assert np.all(np.asarray(ci.status) == mj.EndpointStatus.NOT_PROFILED)
    d = res.delta(lambda p: p["w"][0] / p["w"][1])      # the delta method still applies
    assert_rel(d.estimate, 0.6, 1e-8)


# --- profile likelihood vs MINOS -----------------------------------------------------------------

X_NORMAL = np.random.default_rng(11).normal(3.0, 2.0, 40)


def test_profile_normal_matches_minos_and_closed_form(normal_fit):
    x, res = X_NORMAL, normal_fit
    ci = res.confint(0.95, method="profile")
    assert np.all(np.asarray(ci.status) == mj.EndpointStatus.FOUND)

    def nll(mu, sigma):
        return 0.5 * np.sum(((x - mu) / sigma) ** 2) + len(x) * np.log(sigma)

    ref = _minos(nll, {"mu": 1.0, "sigma": 1.5}, {"sigma": (0, None)})
    for k, name in enumerate(["mu", "sigma"]):
        assert_rel(ci.lower[k], ref[name][0], 1e-4, f"{name} lower vs MINOS")
        assert_rel(ci.upper[k], ref[name][1], 1e-4, f"{name} upper vs MINOS")
    # Closed form for mu: 2 (l_max - l_p(mu)) = n log(1 + (mu - xbar)^2 / s^2).
    n, xbar, s2 = len(x), x.mean(), x.var()
    half = np.sqrt(s2 * np.expm1(Q95 / n))
    assert_rel(ci["mu"][0], xbar - half, 1e-9, "mu lower closed form")
    assert_rel(ci["mu"][1], xbar + half, 1e-9, "mu upper closed form")
    # sigma's interval is asymmetric about the estimate (a scale).
    lo, hi = ci["sigma"]
    s_hat = float(res.params["sigma"])
    assert (hi - s_hat) > 1.2 * (s_hat - lo)
    # The profile curve crosses the threshold at the interval's endpoints.
    curve = mj.profile(res, "sigma", jnp.asarray([float(lo), s_hat, float(hi)]))
    np.testing.assert_allclose(curve.deviance, [Q95, 0.0, Q95], rtol=1e-7, atol=1e-9)
    assert_rel(curve.threshold(0.95), Q95, 1e-12)
    grid = np.asarray([1.0, 2.5, 5.0])
    curve_mu = mj.profile(res, "mu", jnp.asarray(grid))
    expect = n * np.log1p((grid - xbar) ** 2 / s2)
    np.testing.assert_allclose(curve_mu.deviance, expect, rtol=1e-8, atol=1e-9)
    assert_rel(curve_mu.params["sigma"], np.sqrt(s2 + (grid - xbar) ** 2), 1e-8)


def test_profile_poisson_rate_near_bound_matches_minos():
    # One event in 200: the rate's estimate is 0.005, its lower endpoint close to the bound 0.
    y = np.zeros(200)
    y[17] = 1.0
    res = mj.fit(poisson_rate_ll, {"lam": 1.0}, jnp.asarray(y), constraints={"lam": mj.positive})
    ci = res.confint(0.95, method="profile")
    assert np.all(np.asarray(ci.status) == mj.EndpointStatus.FOUND)

    def nll(lam):
        return -np.sum(y * np.log(lam) - lam - gammaln(y + 1.0))

    ref = _minos(nll, {"lam": 0.05}, {"lam": (0, None)})["lam"]
    assert_rel(ci.lower[0], ref[0], 1e-4, "lower vs MINOS")
    assert_rel(ci.upper[0], ref[1], 1e-4, "upper vs MINOS")
    assert float(ci.lower[0]) < 0.05 * 0.005 * 100  # within a factor of the estimate of 0
    assert (ci.upper[0] - 0.005) > 3 * (0.005 - ci.lower[0])   # strongly asymmetric


def _zip_data(extra_zeros, seed):
    y = np.random.default_rng(seed).poisson(2.0, 80).astype(np.float64)
    y[:extra_zeros] = 0.0
    return y


def _zip_nll(y):
    def nll(pi, lam):
        zero = np.log(pi + (1 - pi) * np.exp(-lam))
        pos = np.log1p(-pi) - lam + y * np.log(lam) - gammaln(y + 1.0)
        return -np.sum(np.where(y == 0, zero, pos))
    return nll


ZIP_CONS = {"pi": mj.unit_interval, "lam": mj.positive}


def test_profile_zip_near_bound_two_sided_matches_minos():
    # pi's estimate is 0.11; its profile at pi -> 0 is just above the threshold, so the lower
    # endpoint exists but lies within 2% of the estimate's distance from the bound.
    y = _zip_data(8, 6)
    res = mj.fit(zip_ll, {"pi": 0.2, "lam": 1.5}, jnp.asarray(y), constraints=ZIP_CONS)
    assert bool(res.converged)
    ci = res.confint(0.95, method="profile")
    assert np.all(np.asarray(ci.status) == mj.EndpointStatus.FOUND), ci
    ref = _minos(_zip_nll(y), {"pi": 0.2, "lam": 1.5}, {"pi": (0, 1), "lam": (0, None)})
    assert res.param_names == ("pi", "lam")   # as init was written
    for name in ["pi", "lam"]:
        assert not ref[name][2] and not ref[name][3]
        assert_rel(ci[name][0], ref[name][0], 1e-4, f"{name} lower vs MINOS")
        assert_rel(ci[name][1], ref[name][1], 1e-4, f"{name} upper vs MINOS")
    assert float(ci["pi"][0]) < 0.05 * float(res.params["pi"])  # near the bound 0


def test_profile_zip_one_sided_at_bound():
    y = _zip_data(0, 5)
    res = mj.fit(zip_ll, {"pi": 0.2, "lam": 1.5}, jnp.asarray(y), constraints=ZIP_CONS)
    assert bool(res.converged)
    ci = res.confint(0.95, method="profile")
    st = np.asarray(ci.status)
    pi, lam = res.param_names.index("pi"), res.param_names.index("lam")
    # pi: the profile at pi -> 0 stays within the threshold: one-sided, lower = the bound 0.
    assert st[pi, 0] == mj.EndpointStatus.AT_BOUND and float(ci.lower[pi]) == 0.0
    assert bool(ci.one_sided[pi, 0]) and not bool(ci.one_sided[pi, 1])
    assert np.all(st[lam] == mj.EndpointStatus.FOUND) and st[pi, 1] == mj.EndpointStatus.FOUND
    ref = _minos(_zip_nll(y), {"pi": 0.2, "lam": 1.5}, {"pi": (0, 1), "lam": (0, None)})
    assert ref["pi"][2]  # MINOS too stops at the lower limit
    assert_rel(ci.upper[pi], ref["pi"][1], 1e-4, "pi upper vs MINOS")
    assert_rel(ci.lower[lam], ref["lam"][0], 1e-4, "lam lower vs MINOS")
    assert_rel(ci.upper[lam], ref["lam"][1], 1e-4, "lam upper vs MINOS")
    text = res.summary(ci="profile")
    assert "one-sided" in text and "at bound" in repr(ci)


def test_profile_batch_equals_single_fits(null_batch):
    xs, rb = null_batch
    cb = rb.confint(0.9, method="profile")
    assert np.shape(cb.lower) == (K_SIM, 2)
    assert np.all(np.asarray(cb.status) == mj.EndpointStatus.FOUND)
    for k in range(4):
        rk = mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, jnp.asarray(xs[k]), constraints=CONS)
        ck = rk.confint(0.9, method="profile")
        assert_rel(cb.lower[k], ck.lower, 1e-8, f"fit {k} lower")
        assert_rel(cb.upper[k], ck.upper, 1e-8, f"fit {k} upper")
    # Choosing parameters: the others are reported as not profiled.
    c1 = rb.confint(0.9, method="profile", which="sigma")
    assert np.all(np.asarray(c1.status)[:, 0] == mj.EndpointStatus.NOT_PROFILED)
    assert_rel(c1.upper[:, 1], cb.upper[:, 1], 1e-12)


# --- delta method --------------------------------------------------------------------------------

def test_delta_method_closed_forms(normal_fit, null_batch):
    x, res = X_NORMAL, normal_fit
    n = len(x)
    mu, s = x.mean(), x.std()
    # var(mu) = s^2/n, var(sigma) = s^2/(2n), independent at the MLE.
    d = res.delta(lambda p: p["mu"] / p["sigma"])
    assert_rel(d.estimate, mu / s, 1e-10)
    assert_rel(d.stderr, np.sqrt(1.0 / n + mu**2 / (2.0 * n * s**2)), 1e-7, "mu/sigma")
    dv = mj.delta(res, lambda p: jnp.stack([p["mu"], p["sigma"] ** 2]))
    assert_rel(dv.stderr, [s / np.sqrt(n), np.sqrt(2.0 / n) * s**2], 1e-7, "(mu, sigma^2)")
    assert abs(float(dv.cov[0, 1])) < 1e-10
    lo, hi = d.confint(0.95)
    assert_rel(hi - d.estimate, 1.959963984540054 * d.stderr, 1e-10)
    # A batch applies fn to each fit.
    xs, rb = null_batch
    db = rb.delta(lambda p: p["mu"] / p["sigma"])
    assert_rel(db.stderr, [np.sqrt(1 / n + (xx.mean() / xx.std()) ** 2 / (2 * n)) for xx in xs],
               1e-7)


# --- likelihood-ratio test -----------------------------------------------------------------------

def test_lrt_statistic_closed_form_and_uniform_pvalues(normal_fit, null_batch):
    # Nested normal models on K_SIM datasets drawn under the null mu = 1: the full model
    # (mu, sigma) against the restricted one (mu = 1, sigma), fit by fit.
    xs, fb = null_batch

    def shifted_ll(params, x):
        return normal_sigma_ll(params, x - 1.0)

    rb = mj.fit_batch(shifted_ll, {"sigma": 1.0}, jnp.asarray(xs), constraints=CONS)
    tb = mj.lrt(fb, rb)
    assert tb.df == 1 and np.shape(tb.pvalue) == (K_SIM,)
    # 2 (l_full - l_0) = n log(mean((x - 1)^2) / var(x)).
    assert_rel(tb.statistic, N_SIM * np.log(np.mean((xs - 1.0) ** 2, 1) / xs.var(1)), 1e-7)
    assert_rel(tb.pvalue, stats.chi2.sf(np.asarray(tb.statistic), 1), 1e-9)
    # Under the null the p-values are uniform.
    assert stats.kstest(np.asarray(tb.pvalue), "uniform").pvalue > 0.01
    with pytest.raises(ValueError, match="more free parameters"):
        mj.lrt(rb, fb)
    with pytest.raises(ValueError, match="same data"):
        mj.lrt(fb, normal_fit, df=1)


# --- bootstrap -----------------------------------------------------------------------------------

N_BIG, SIGMA = 1000, 2.0


@pytest.fixture(scope="module")
def normal_big():
    x = np.random.default_rng(21).normal(5.0, SIGMA, N_BIG)
    return x, mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, jnp.asarray(x), constraints=CONS)


def test_bootstrap_nonparametric_se_normal_mean(normal_big):
    x, res = normal_big
    boot = mj.bootstrap(res, n=2000, key=jax.random.key(0))
    assert float(boot.converged_fraction) == 1.0 and int(boot.n_failed) == 0
    se = float(boot.stderr["mu"])
    assert abs(se / (SIGMA / np.sqrt(N_BIG)) - 1) < 0.10          # the truth
    assert abs(se / (x.std() / np.sqrt(N_BIG)) - 1) < 0.05        # its plug-in value
    lo, hi = boot.confint(0.95)["mu"]
    assert float(lo) < x.mean() < float(hi)
    blo, bhi = boot.confint(0.95, method="basic")["mu"]
    assert_rel(blo + hi, 2 * x.mean(), 1e-10)
    assert_rel(bhi + lo, 2 * x.mean(), 1e-10)


def degenerate_sometimes(key, params, nobs):
    """The fitted normal model, except that one draw in ten is a constant dataset (whose
    likelihood is unbounded as sigma -> 0: the refit cannot converge)."""
    k1, k2 = jax.random.split(key)
    x = params["mu"] + params["sigma"] * jax.random.normal(k1, (nobs,))
    return jnp.where(jax.random.uniform(k2) < 0.1, params["mu"], x)


def test_bootstrap_parametric_counts_and_excludes_nonconverged(normal_big):
    x, res = normal_big
    boot = mj.bootstrap(res, n=2000, key=jax.random.key(1), sample_fn=degenerate_sometimes)
    assert boot.kind == "parametric"
    conv = np.asarray(boot.converged)
    assert 100 < int(boot.n_failed) < 300 and int(boot.n_failed) == 2000 - conv.sum()
    assert_rel(boot.converged_fraction, conv.mean(), 1e-12)
    # Only converged replicates count; their spread is the sampling distribution's.
    reps = np.asarray(boot.replicates["mu"])[conv]
    assert_rel(boot.stderr["mu"], reps.std(ddof=1), 1e-10)
    assert_rel(boot.confint(0.9).lower[0], np.quantile(reps, 0.05), 1e-10)
    assert abs(float(boot.stderr["mu"]) / (SIGMA / np.sqrt(N_BIG)) - 1) < 0.10
    assert abs(float(boot.stderr["sigma"]) / (SIGMA / np.sqrt(2 * N_BIG)) - 1) < 0.10


def test_bootstrap_coverage_small_simulation(null_batch):
    # K datasets bootstrapped at once (a batch): coverage of 95% percentile intervals.
    k, b = K_SIM, 200
    _, rb = null_batch
    boot = mj.bootstrap(rb, n=b, key=jax.random.key(2))
    assert np.shape(boot.replicates["mu"]) == (k, b)
    lo, hi = boot.confint(0.95)["mu"]
    cover = float(np.mean((np.asarray(lo) < 1.0) & (1.0 < np.asarray(hi))))
    # Percentile intervals of a mean from n = 40 under-cover slightly (~0.94): allow 3 MC SEs.
    assert abs(cover - 0.945) < 3 * np.sqrt(0.95 * 0.05 / k), cover


# --- summaries and errors ------------------------------------------------------------------------

def test_summary_tables(spector):
    res = spector[3]
    text = res.summary()
    assert "P>|z|" in text and "AIC" in text and "BIC" in text
    rob = res.summary(cov="robust")
    assert "HC0" in rob


def test_summary_with_profile_intervals(normal_fit):
    prof = normal_fit.summary(ci="profile")
    assert "profile likelihood" in prof
    ci = normal_fit.confint(0.95, method="profile")
    assert f"{float(ci.upper[1]):.4g}" in prof


def test_input_errors(normal_fit):
    res = normal_fit
    with pytest.raises(ValueError, match="level"):
        res.confint(1.5)
    with pytest.raises(ValueError, match="method"):
        res.confint(0.9, method="likelihood")
    with pytest.raises(ValueError, match="not a parameter"):
        res.confint(0.9, method="profile", which="tau")
    with pytest.raises(ValueError, match="groups must give one cluster label"):
        mj.robust_cov(res, groups=np.arange(3))
    with pytest.raises(ValueError, match="grid"):
        mj.profile(res, "sigma", [-1.0, 1.0])
    with pytest.raises(ValueError, match="sample_fn"):
        mj.bootstrap(res, n=10, key=jax.random.key(0), kind="parametric")
    with pytest.raises(ValueError, match="shaped like the fit's data"):
        mj.bootstrap(res, n=10, key=jax.random.key(0),
                     sample_fn=lambda k, p, n: jax.random.normal(k, (n + 1,)))
