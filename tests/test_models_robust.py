"""Robust errors of the regression models, against Stata's numbers and statsmodels (float64).

* Cluster-robust standard errors with each model's default small-sample factor reproduce the
  Stata results statsmodels ships (``statsmodels/discrete/tests/results/
  results_count_robust_cluster.py``, the ships data of ``test_sandwich_cov.py``):
  ``poisson``/``nbreg ..., vce(cluster ship)``, with and without ``exposure(service)``, whose
  factor is ``G/(G-1)``; and ``regress invest mvalue kstock, vce(cluster company)``
  (``results_grunfeld_ols_robust_cluster.py``, ``test_robustcov.py``'s Grunfeld data), whose
  factor is ``G/(G-1) (N-1)/(N-K)``. ``vce(robust)`` of the ML commands is ``correction="ml"``
  without groups (``N/(N-1)``), ivreg2's large-sample cluster errors ``correction="none"``.
* HC0 (``res.stderr_robust``) equals statsmodels' ``cov_type="HC0"``; ``correction="linear"``
  equals statsmodels' cluster default for a discrete model.
* ``mj.confint`` and ``mj.robust_cov`` take a ``RegressionResult``; ``Nonlinear`` (fitted in
  rescaled coordinates) gives the same robust errors as ``Linear`` for a straight line.

Tolerances: Poisson 1e-9 relative (the stored values have 14 digits; the difference is Stata's
convergence); NB 1e-7 for the standard errors, 1e-6 for the estimates (Stata's nbreg stops
earlier: its estimates differ from the exact MLE by ~2e-8 absolute); Grunfeld 1e-7 (the data statsmodels ships differ from Stata's in the last digits:
statsmodels' own OLS estimates differ from Stata's by 1e-8); statsmodels 1e-8.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pd = pytest.importorskip("pandas")
sm = pytest.importorskip("statsmodels.api")
import statsmodels  # noqa: E402
from statsmodels.discrete.tests.results import results_count_robust_cluster as stata  # noqa: E402
from statsmodels.regression.tests.results import (  # noqa: E402
    results_grunfeld_ols_robust_cluster as stata_ols)


import mlejax as mj  # noqa: E402
from mlejax import models as M  # noqa: E402


def assert_rel(actual, expected, rtol, what=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=0, err_msg=what)


# Stata's tables list the constant last; mlejax prepends it.
STATA_ORDER = [2, 0, 1]


@pytest.fixture(scope="module")
def ships():
    path = os.path.join(os.path.dirname(statsmodels.__file__), "discrete", "tests", "results",
                        "ships.csv")
    d = pd.read_csv(path).dropna()
    return (d[["yr_con", "op_75_79"]], d["accident"].to_numpy(np.float64),
            d["ship"].to_numpy(int), d["service"].to_numpy(np.float64))


@pytest.fixture(scope="module")
def grunfeld():
    d = sm.datasets.grunfeld.load_pandas()
    exog, endog = d.exog[:200], d.endog[:200].to_numpy(np.float64)   # Stata's 10 firms
    firm = np.unique(np.asarray(exog[["firm"]], "S20"), return_inverse=True)[1].ravel()
    return exog[["value", "capital"]], endog, firm


@pytest.mark.parametrize("name, model, exposed, rtol", [
    ("poisson_clu", M.Poisson(), False, 1e-9),
    ("poisson_exposure_clu", M.Poisson(), True, 1e-9),
    ("negbin_clu", M.NegativeBinomial(), False, 1e-7),
    ("negbin_exposure_clu", M.NegativeBinomial(), True, 1e-7),
])
def test_cluster_default_matches_stata(ships, name, model, exposed, rtol):
    X, y, ship, service = ships
    ref = getattr(stata, "results_" + name)
    assert ref.N == 34 and ref.N_clust == 5 and "vce(cluster ship)" in ref.cmdline
    res = model.fit(X, y, exposure=service if exposed else None)
    assert bool(res.converged)
    b, se = ref.params_table[:, 0], ref.params_table[:, 1]
    # Stata's nbreg estimate of yr_con (-0.035) is 2e-8 from the MLE: 6e-7 relative.
    assert_rel(res.params["beta"], b[STATA_ORDER], max(rtol, 1e-6), "params")
    rob = mj.robust_cov(res, groups=ship)                      # the model's default: G/(G-1)
    got = mj.inference.robust_stderr(res, groups=ship)
    assert_rel(got["beta"], se[STATA_ORDER], rtol, "cluster stderr")
    assert_rel(np.sqrt(np.diag(np.asarray(rob)))[res.param_names.index("const")], se[2], rtol)
    if "alpha" in res.params:   # nbreg's alpha row: the delta method from lnalpha
        assert_rel(got["alpha"], se[-1], rtol, "alpha stderr")
        assert_rel(res.params["alpha"], b[-1], rtol, "alpha")
    # Wald intervals from the same covariance (Stata's ll, ul).
    ci = mj.confint(res, cov="robust", groups=ship)
    assert_rel(ci["op_75_79"][0], ref.params_table[1, 4], max(rtol, 1e-6), "lower")
    assert_rel(res.confint(cov="robust", groups=ship)["op_75_79"][1], ref.params_table[1, 5],
               max(rtol, 1e-6), "upper")


@pytest.mark.parametrize("name, exposed", [("poisson_hc1", False),
                                           ("poisson_exposure_hc1", True)])
def test_ml_robust_matches_stata_vce_robust(ships, name, exposed):
    X, y, _, service = ships
    ref = getattr(stata, "results_" + name)
    assert "vce(robust)" in ref.cmdline
    res = M.Poisson().fit(X, y, exposure=service if exposed else None)
    got = mj.inference.robust_stderr(res, correction="ml")           # N/(N-1)
    assert_rel(got["beta"], ref.params_table[STATA_ORDER, 1], 1e-9, "vce(robust)")


def test_hc0_and_linear_correction_match_statsmodels(ships):
    X, y, ship, service = ships
    exog = sm.add_constant(X.to_numpy(np.float64))
    res = M.Poisson().fit(X, y, exposure=service)
    mod = sm.Poisson(y, exog, exposure=service)
    hc0 = mod.fit(disp=False, cov_type="HC0")
    assert_rel(res.stderr_robust["beta"], hc0.bse, 1e-8, "HC0 stderr")
    assert_rel(res.cov_robust, hc0.cov_params(), 1e-8, "HC0 cov")
    clu = mod.fit(disp=False, cov_type="cluster", cov_kwds={"groups": ship})
    assert_rel(mj.robust_cov(res, groups=ship, correction="linear"), clu.cov_params(), 1e-8,
               "statsmodels' cluster default")
    # The default differs from statsmodels' exactly by its (N-1)/(N-K) factor.
    n, k = 34.0, 3.0
    assert_rel(mj.robust_cov(res, groups=ship), clu.cov_params() * (n - k) / (n - 1.0), 1e-8)
    # Overrides: none, and a given factor.
    g = 5.0
    assert_rel(mj.robust_cov(res, groups=ship, correction="none") * g / (g - 1.0),
               mj.robust_cov(res, groups=ship), 1e-12)
    assert_rel(mj.robust_cov(res, groups=ship, correction=2.0),
               2.0 * mj.robust_cov(res, groups=ship, correction=False), 1e-12)
    with pytest.raises(ValueError, match="correction must be one of"):
        mj.robust_cov(res, groups=ship, correction="stata")


def test_linear_cluster_matches_stata_regress(grunfeld):
    X, y, firm = grunfeld
    res = M.Linear().fit(X, y)
    names = res.param_names[:3]
    # The beta block, in Stata's order (mvalue, kstock, _cons).
    pos = [names.index("value"), names.index("capital"), names.index("const")]
    for ref, corr in [(stata_ols.results_cluster, None),          # regress: the default
                      (stata_ols.results_cluster_large, "none")]:  # ivreg2, no small-sample
        assert ref.N == 200 and ref.N_clust == 10
        cov = np.asarray(mj.robust_cov(res, groups=firm, correction=corr))
        assert_rel(cov[np.ix_(pos, pos)], ref.cov, 1e-7, ref.cmdline)
        se = mj.inference.robust_stderr(res, groups=firm, correction=corr)["beta"]
        assert_rel(se, ref.params_table[STATA_ORDER, 1], 1e-7, ref.cmdline)
    exog = sm.add_constant(X.to_numpy(np.float64))
    ols = sm.OLS(y, exog)
    clu = ols.fit(cov_type="cluster", cov_kwds={"groups": firm})
    assert_rel(mj.inference.robust_stderr(res, groups=firm)["beta"], clu.bse, 1e-8, "OLS")
    assert_rel(res.stderr_robust["beta"], ols.fit(cov_type="HC0").bse, 1e-8, "HC0")
    text = res.summary(cov="robust", groups=firm)
    assert "cluster-robust (sandwich, linear correction)" in text


def test_logistic_cluster_default_is_g_over_g_minus_1():
    d = sm.datasets.spector.load_pandas()
    tuce = d.exog["TUCE"].to_numpy()
    res = M.Logistic().fit(d.exog, d.endog)
    exog = sm.add_constant(d.exog.to_numpy(np.float64))
    clu = sm.Logit(d.endog.to_numpy(np.float64), exog).fit(
        disp=False, cov_type="cluster", cov_kwds={"groups": tuce})
    n, k = 32.0, 4.0
    assert_rel(mj.robust_cov(res, groups=tuce), clu.cov_params() * (n - k) / (n - 1.0), 1e-7)
    assert M.Logistic.cluster_correction == M.Probit.cluster_correction == "ml"
    assert M.Gamma().cluster_correction == M.StudentT().cluster_correction == "ml"
    assert M.Linear.cluster_correction == "linear"


def test_nonlinear_straight_line_equals_linear(grunfeld):
    X, y, firm = grunfeld
    x = X.to_numpy(np.float64)
    lin = M.Linear().fit(x, y)
    nl = M.Nonlinear(lambda x, b: b[0] + x @ b[1:]).fit(x, y, init=[0.0, 0.1, 0.1])
    for kw in ({}, {"groups": firm}):
        a = mj.inference.robust_stderr(lin, **kw)
        b = mj.inference.robust_stderr(nl, **kw)
        assert_rel(b["b"], a["beta"], 1e-6, f"Nonlinear vs Linear {kw.keys()}")
        assert_rel(b["sigma"], a["sigma"], 1e-6)
    assert_rel(nl.confint(cov="robust", groups=firm)["b[1]"][0],
               lin.confint(cov="robust", groups=firm)["x1"][0], 1e-6)


def test_batch_equals_single_fits(ships):
    X, y, ship, service = ships
    x = X.to_numpy(np.float64)
    ys = np.stack([y, y[::-1]])
    rb = M.Poisson().fit_batch(x, ys, exposure=np.stack([service, service]))
    cb = mj.robust_cov(rb, groups=ship)
    for k in range(2):
        rk = M.Poisson().fit(x, ys[k], exposure=service)
        assert_rel(cb[k], mj.robust_cov(rk, groups=ship), 1e-8, f"batch {k}")
    assert np.shape(rb.stderr_robust["beta"]) == (2, 3)
    assert np.shape(rb.confint(cov="robust", groups=ship).lower) == (2, 3)
