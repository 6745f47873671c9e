"""Linear mixed models by ``mj.fit(random=...)`` against lme4, on the data statsmodels ships.

statsmodels ships twelve simulated datasets (``statsmodels/regression/tests/results/
lme00.csv ... lme11.csv``: 100 groups, 230-269 rows, 1-3 fixed and 1-2 random effects) and
lme4's results for them (``lme_r_results.py``, written by ``lme_results.R``):

* ``drf``: ``lmer(endog ~ 0 + exog_fe_* + (0 + exog_re_* | groups))``, a full covariance of
  the random effects; ``irf`` (two random effects only): ``(0 + exog_re_0 | groups) +
  (0 + exog_re_1 | groups)``, independent random effects (a diagonal covariance);
* each by ML (``REML=FALSE``) and REML.

The model is ``y = X beta + sum_j Z_j u_gj + e``, ``e ~ N(0, sigma^2)``, ``u_g ~ N(0,
cov_re)``; its joint log-density is written below with ``jax.scipy.stats`` and the random
effects ``u`` (shape ``(G, pr)``) integrated out by the Laplace approximation, which is exact
for this Gaussian joint, so lme4's numbers are reproduced to the digits R printed (~7
significant). ML: ``random=RandomEffects(["u"], grouped=True)``; REML: the fixed effects
also random, with a flat prior, ``random=["u", "beta"]`` (dense: ``beta`` has no group axis).

What is compared (every tolerance is also stated where it is asserted):

* estimates: ``coef`` (ML ``res.params["beta"]``, REML ``res.random.mode["beta"]``),
  ``scale = sigma^2``, ``cov_re`` and ``loglike`` (the marginal log-likelihood; for REML
  lme4's REML log-likelihood, equal with no constant offset: see ``test_reml``), to 1e-5
  relative (R printed 7 significant digits) with an absolute floor of 1e-7 for entries that
  are 0 (the off-diagonal of ``irf``) or near it;
* ``vcov`` (lme4's ``(X' V^-1 X)^-1`` at the estimate): ML as the inverse of the
  ``beta``-block of the observed information, REML as ``cond_stderr["beta"]**2`` (diagonal);
* the random effects of the first group (the R script stores ``ranef(md)$groups[1, ]`` and
  ``postVar[, , 1]``, group 0 here; lme4 gives them for ``drf`` only): ``ranef_mean`` vs
  ``res.random.mode["u"][0]``; ``ranef_condvar`` (ML) vs ``res.random.cond_stderr["u"][0]**2``
  and, for both ML and REML, against an independent NumPy formula at our estimate;
* lme01, where lme4's ``cov_re`` is exactly 0 (the boundary): the fit says so honestly;
* float32 data and start: a float32 fit, to 1e-3 relative.

Every compiled program costs ~6-9 s on the 2-core test machine (tracing and compiling the
outer Newton, which differentiates the Laplace marginal to third order in the joint), so the
datasets are fitted as batches, one ``fit_batch`` program per family of equal dimensions: the
rows padded to a common length with zero weight, the fixed effects padded to three columns of
zeros whose coefficients carry a term of their own that leaves the likelihood unchanged (ML:
``-beta^2 / 2``, 0 at their estimate 0, and a block of the information of its own; REML: a
N(0, 1) density, which integrates to 1). Six programs (ML and REML; one random effect ``drf``;
two, ``drf`` and ``irf``) cover all twelve datasets' 44 lme4 fits but lme01's; each test
checks one family, naming the dataset that fails. lme01 (the boundary; ML, and REML),
lme00 in float32 and the dense fits are single fits of the unpadded data.
``MLEJAX_FULL_LME=1`` adds dense ML fits (``random=["u"]``) equal to the grouped ones.
"""

import dataclasses
import functools
import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.scipy import stats as jss  # noqa: E402

pytest.importorskip("statsmodels")
import statsmodels  # noqa: E402
from statsmodels.regression.tests.results import lme_r_results as R  # noqa: E402

import mlejax as mj  # noqa: E402

RESULTS = os.path.join(os.path.dirname(statsmodels.__file__), "regression", "tests", "results")
FULL = bool(os.environ.get("MLEJAX_FULL_LME"))
full_only = pytest.mark.skipif(not FULL, reason="set MLEJAX_FULL_LME=1 for the dense fits")

# lme4's values carry 7 significant digits: 1e-5 relative leaves room for the last printed
# digit's rounding (relative 5e-7 .. 5e-6 for a leading digit of 1 .. 9) and the optimisers'
# tolerances (ours converges to ~1e-9); the absolute floor covers entries that are 0.
RTOL, ATOL = 1e-5, 1e-7
N_ROWS = 272  # every dataset's rows padded to this (at most 269), with zero weight
N_GROUPS = 100


# The families of datasets with equal dimensions (lme01, the boundary, has tests of its own):
# (number of random effects, rf) -> datasets.
FAMILIES = {(1, "drf"): (0, 2, 3, 4, 5), (2, "drf"): (6, 7, 8, 9, 10, 11),
            (2, "irf"): (6, 7, 8, 9, 10, 11)}
PF = 3   # fixed effects padded to this many columns


def _family_params():
    return [pytest.param(pr, rf, id=f"{rf}-{pr}re") for pr, rf in FAMILIES]


# ------------------------------------------------------------------------------ data, model

@functools.lru_cache(maxsize=None)
def load(i, dtype=np.float64):
    """lme{i}.csv as ``(X, Z, y, g, w)``, rows padded to N_ROWS (``w`` 1 on the data, 0 on
    the padding, whose rows are zeros in group 0 and so contribute nothing)."""
    a = np.genfromtxt(os.path.join(RESULTS, f"lme{i:02d}.csv"), delimiter=",", names=True)
    cols = a.dtype.names
    x = np.column_stack([a[c] for c in cols if c.startswith("exog_fe")])
    z = np.column_stack([a[c] for c in cols if c.startswith("exog_re")])
    g = a["groups"].astype(np.int32)
    assert sorted(set(g)) == list(range(N_GROUPS))
    n = len(g)
    assert n <= N_ROWS

    def pad(m, dt):
        return np.concatenate([np.asarray(m, dt), np.zeros((N_ROWS - n,) + m.shape[1:], dt)])

    return (pad(x, dtype), pad(z, dtype), pad(a["endog"], dtype), pad(g, np.int32),
            pad(np.ones(n), dtype))


def _loglik_y(p, d):
    x, z, y, g, w = d
    resid = y - x @ p["beta"] - jnp.sum(z * p["u"][g], axis=1)
    return jnp.sum(w * jss.norm.logpdf(resid, 0.0, p["sigma"]))


def joint_drf(p, d):
    """log p(y | u, beta, sigma) + log p(u | cov): u_g ~ N(0, cov), a full covariance."""
    zero = jnp.zeros(p["u"].shape[1], p["u"].dtype)
    return _loglik_y(p, d) + jnp.sum(jss.multivariate_normal.logpdf(p["u"], zero, p["cov"]))


def joint_irf(p, d):
    """As joint_drf with independent random effects: u_gj ~ N(0, sd_j^2)."""
    return _loglik_y(p, d) + jnp.sum(jss.norm.logpdf(p["u"], 0.0, p["sd"]))


RANDOM = {"ml": mj.RandomEffects(["u"], grouped=True), "ml_dense": ["u"],
          "reml": ["u", "beta"]}


def load_padded(i):
    """:func:`load` with the fixed effects padded to ``PF`` zero columns, and their mask."""
    x, z, y, g, w = load(i)
    pf = x.shape[1]
    x = np.concatenate([x, np.zeros((x.shape[0], PF - pf))], axis=1)
    return x, z, y, g, w, (np.arange(PF) < pf).astype(np.float64)


def _padding_term(beta, mask, reml):
    """The padded coefficients' own term: ML ``-beta^2 / 2`` (0 at their estimate 0, which
    leaves the maximised likelihood as it is); REML (they are integrated out) the N(0, 1)
    density, whose integral is 1."""
    pad = 1.0 - mask
    if reml:
        return jnp.sum(pad * jss.norm.logpdf(beta))
    return -0.5 * jnp.sum(pad * beta ** 2)


def _padded(joint, reml):
    def padded_joint(p, d):
        return joint(p, d[:5]) + _padding_term(p["beta"], d[5], reml)
    return padded_joint


PADDED = {(rf, meth): _padded(joint_drf if rf == "drf" else joint_irf, meth == "reml")
          for rf in ("drf", "irf") for meth in ("ml", "reml")}


@functools.lru_cache(maxsize=None)
def family(meth, rf, pr):
    """One ``fit_batch`` of the family's datasets (padded): ``{i: result of lme{i}}``."""
    ids = FAMILIES[(pr, rf)]
    data = tuple(np.stack(cols) for cols in zip(*(load_padded(i) for i in ids)))
    init = {"beta": jnp.zeros(PF), "sigma": jnp.asarray(1.0), "u": jnp.zeros((N_GROUPS, pr))}
    if rf == "drf":
        init["cov"] = jnp.eye(pr)
        cons = {"sigma": mj.positive, "cov": mj.positive_definite}
    else:
        init["sd"] = jnp.ones(pr)
        cons = {"sigma": mj.positive, "sd": mj.positive}
    # REML's dense A (100 pr + 3 wide) in a batch: the fits run one after another inside the
    # program (Config.fits_in_turn, on CPU); as one vmap, five of them deadlocked jaxlib's
    # batched LAPACK on two cores. This family is the regression test of that.
    batch = mj.fit_batch(PADDED[(rf, meth)], init, data, random=RANDOM[meth], constraints=cons)
    batch = dataclasses.replace(batch, context=None)
    return {i: jax.tree_util.tree_map(lambda v, k=k: v[k], batch) for k, i in enumerate(ids)}


def each_in_family(meth, pr, rf, check):
    """``check(res, i)`` for every dataset of the family, the failing one named."""
    for i, res in family(meth, rf, pr).items():
        try:
            check(res, i)
        except AssertionError as err:
            raise AssertionError(f"lme{i:02d} ({rf}, {meth}): {err}") from err


@functools.lru_cache(maxsize=None)
def fit(i, meth, rf, dtype=np.float64):
    """The fit of lme{i} by ``meth`` ("ml", "ml_dense" or "reml"), ``rf`` "drf" or "irf"."""
    d = load(i, dtype)
    pf, pr = d[0].shape[1], d[1].shape[1]
    init = {"beta": jnp.zeros(pf, dtype), "sigma": jnp.asarray(1.0, dtype),
            "u": jnp.zeros((N_GROUPS, pr), dtype)}
    if rf == "drf":
        init["cov"] = jnp.eye(pr, dtype=dtype)
        joint, cons = joint_drf, {"sigma": mj.positive, "cov": mj.positive_definite}
    else:
        init["sd"] = jnp.ones(pr, dtype)
        joint, cons = joint_irf, {"sigma": mj.positive, "sd": mj.positive}
    return mj.fit(joint, init, d, random=RANDOM[meth], constraints=cons)


def ref(what, meth, rf, i):
    return np.asarray(getattr(R, f"{what}_{meth}_{rf}_{i}"), dtype=np.float64)


def cov_re(res, rf):
    p = res.params
    return np.asarray(p["cov"] if rf == "drf" else np.diag(np.asarray(p["sd"]) ** 2), np.float64)


def close(actual, expected, what, rtol=RTOL, atol=ATOL):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64).reshape(actual.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def condvar_numpy(i, scale, cov, group=0):
    """lme4's conditional covariance of one group's random effects given beta and the
    variance parameters, by an independent formula: (Z_g' Z_g / scale + cov^-1)^-1."""
    x, z, y, g, w = load(i)
    zg = z[(g == group) & (w > 0)]
    return np.linalg.inv(zg.T @ zg / scale + np.linalg.inv(cov))


def check_estimates(res, beta, meth, rf, i):
    """coef, scale, cov_re and loglike against lme4 (1e-5 relative, 1e-7 absolute)."""
    close(beta, ref("coef", meth, rf, i), "coef")
    close(np.asarray(res.params["sigma"]) ** 2, ref("scale", meth, rf, i), "scale")
    close(cov_re(res, rf), ref("cov_re", meth, rf, i), "cov_re")
    close(res.loglik, ref("loglike", meth, rf, i), "loglike")


# ------------------------------------------------------------------------------------ ML

@pytest.mark.parametrize("pr, rf", _family_params())
def test_ml(pr, rf):
    each_in_family("ml", pr, rf, lambda res, i: check_ml(res, i, rf))


def check_ml(res, i, rf):
    assert int(res.status) == 0, res.message
    pf = load(i)[0].shape[1]
    check_estimates(res, res.params["beta"][:pf], "ml", rf, i)

    # lme4's vcov is (X' V^-1 X)^-1 (V the marginal covariance of y) at the estimate, the
    # inverse of the beta-block of the observed information alone (for fixed variance
    # parameters), not the beta-block of res.cov, which also carries the variance
    # parameters' uncertainty. That block is inv(res.cov)[beta, beta]: the information is
    # the same in any coordinates of the other parameters. res.cov holds all pr^2 entries
    # of the symmetric cov (a singular matrix), so it is inverted over the free ones: beta,
    # sigma and the lower triangle of cov (or sd), a smooth chart of the parameters.
    pr = load(i)[1].shape[1]
    pos = {name: k for k, name in enumerate(res.param_names)}  # res.cov's order
    free = ([f"beta[{j}]" for j in range(pf)] + ["sigma"]
            + ([f"cov[{a},{b}]" for a, b in zip(*np.tril_indices(pr))] if rf == "drf"
               else [f"sd[{j}]" for j in range(pr)]))
    keep = [pos[name] for name in free]
    info = np.linalg.inv(np.asarray(res.cov)[np.ix_(keep, keep)])
    nb = pf
    close(np.linalg.inv(info[:nb, :nb]), ref("vcov", "ml", rf, i), "vcov (1e-5 relative)",
          atol=1e-9)

    if rf == "drf":  # lme4 gives ranef(condVar=TRUE) for drf only (the R script)
        u0 = np.asarray(res.random.mode["u"][0])
        close(u0, ref("ranef_mean", "ml", rf, i), "ranef_mean (1e-5 relative)")
        condvar = ref("ranef_condvar", "ml", rf, i).reshape(pr, pr)
        # ML: A is the u-block only (beta is a parameter), which is lme4's postVar: its
        # diagonal is cond_stderr^2; all of it equals the NumPy formula at our estimate.
        close(np.asarray(res.random.cond_stderr["u"][0]) ** 2, np.diag(condvar),
              "ranef_condvar vs cond_stderr^2 (1e-5 relative)")
        close(condvar_numpy(i, float(res.params["sigma"]) ** 2, cov_re(res, rf)), condvar,
              "ranef_condvar vs (Z'Z/scale + cov^-1)^-1 (1e-5 relative)")


@full_only
@pytest.mark.parametrize("i, rf", [pytest.param(6, "drf", id="lme06-drf"),
                                   pytest.param(8, "irf", id="lme08-irf")])
def test_ml_dense_equals_grouped(i, rf):
    """random=["u"] (a dense Hessian in all G * pr effects) finds the grouped fit."""
    dense, grouped = fit(i, "ml_dense", rf), fit(i, "ml", rf)
    assert int(dense.status) == 0, dense.message
    check_estimates(dense, dense.params["beta"], "ml", rf, i)
    # The same maximum of the same function: to the solvers' tolerance (1e-6 relative).
    close(dense.loglik, grouped.loglik, "loglik", rtol=1e-10, atol=0)
    for leaf in dense.params:
        close(dense.params[leaf], grouped.params[leaf], leaf, rtol=1e-6, atol=1e-9)
    close(dense.random.mode["u"], grouped.random.mode["u"], "mode", rtol=1e-6, atol=1e-9)
    close(dense.random.cond_stderr["u"], grouped.random.cond_stderr["u"], "cond_stderr",
          rtol=1e-6, atol=1e-9)


def test_ml_boundary_lme01():
    """lme01: lme4's ML estimate of cov_re is exactly 0 (a variance on the boundary).

    Our ``cov`` (through positive_definite, log of its Cholesky diagonal) can only approach
    0; what the fit must do is say so: an estimate indistinguishable from 0 (relative to the
    residual scale 4.05), and either a converged status (the log-likelihood is flat in the
    last steps towards 0) or an honest NOT_ATTAINED / MAX_STEPS, never a wrong number
    elsewhere. The other estimates are those of lme4 (at cov_re = 0, OLS), to 1e-5.
    """
    check_boundary(fit(1, "ml", "drf"), "ml")


def test_reml_boundary_lme01():
    """As test_ml_boundary_lme01, by REML (lme4: cov_re 2.8e-14, ranef 2.4e-14)."""
    check_boundary(fit(1, "reml", "drf"), "reml")


def check_boundary(res, meth):
    assert int(res.status) in (mj.Status.CONVERGED, mj.Status.NOT_ATTAINED,
                               mj.Status.MAX_STEPS), res.message
    assert float(res.params["cov"][0, 0]) < 1e-6 * ref("scale", meth, "drf", 1)[0]
    beta = res.params["beta"] if meth == "ml" else res.random.mode["beta"]
    close(beta, ref("coef", meth, "drf", 1), "coef")
    close(float(res.params["sigma"]) ** 2, ref("scale", meth, "drf", 1), "scale")
    close(res.loglik, ref("loglike", meth, "drf", 1), "loglike")
    # With no group variance the modes are 0 (lme4: 0, or 2e-14).
    assert abs(float(res.random.mode["u"][0, 0])) < 1e-5


# ---------------------------------------------------------------------------------- REML

@pytest.mark.parametrize("pr, rf", _family_params())
def test_reml(pr, rf):
    """REML: the fixed effects integrated out too, with a flat prior.

    The marginal is then ``L_R(theta) = int int p(y | u, beta) p(u) du dbeta``, which is
    exactly lme4's REML likelihood: with ``r^2(beta) = pwrss + |R_X (beta - beta_hat)|^2``
    (Bates et al. 2015, J. Stat. Softw. 67(1), sec. 3.4), the beta-integral of the ML
    likelihood is ``(2 pi sigma^2)^(-(n-p)/2) |L_theta|^-1 |R_X|^-1 exp(-pwrss / 2 sigma^2)``,
    whose -2 log is lme4's REML criterion (eq. 42 at its sigma). So ``res.loglik`` equals
    ``logLik(md)`` with no constant (no 0.5 log det X'X, no p/2 log 2 pi) to 1e-5; the
    observed differences are ~1e-8 relative.
    """
    each_in_family("reml", pr, rf, lambda res, i: check_reml(res, i, rf))


def check_reml(res, i, rf):
    assert int(res.status) == 0, res.message
    pf = load(i)[0].shape[1]
    check_estimates(res, res.random.mode["beta"][:pf], "reml", rf, i)
    # lme4's vcov for REML, (X' V^-1 X)^-1 at the REML estimate, is the beta-block of A^-1
    # (A the negative Hessian of the joint in (u, beta): the posterior covariance of beta
    # under a flat prior); cond_stderr gives its diagonal.
    close(np.asarray(res.random.cond_stderr["beta"][:pf]) ** 2,
          np.diag(ref("vcov", "reml", rf, i)), "vcov diagonal (1e-5 relative)", atol=1e-9)
    if rf == "drf":
        pr = load(i)[1].shape[1]
        close(res.random.mode["u"][0], ref("ranef_mean", "reml", rf, i),
              "ranef_mean (1e-5 relative)")
        # lme4's postVar conditions on beta-hat: the u-block of A only, not
        # cond_stderr["u"] (which is of A^-1 over (u, beta), so includes beta's
        # uncertainty). This compares the NumPy formula at our REML estimate with lme4:
        # it checks our theta-hat, not our cond_stderr.
        close(condvar_numpy(i, float(res.params["sigma"]) ** 2, cov_re(res, rf)),
              ref("ranef_condvar", "reml", rf, i).reshape(pr, pr),
              "ranef_condvar (1e-5 relative)")
        # cond_stderr["u"]^2 includes beta's uncertainty, so it is at least lme4's.
        assert np.all(np.asarray(res.random.cond_stderr["u"][0]) ** 2
                      >= np.diag(ref("ranef_condvar", "reml", rf, i).reshape(pr, pr))
                      * (1 - RTOL))


# ------------------------------------------------------------------------------- float32

def test_float32_lme00():
    """float32 data and start: the fit stays in float32 and finds lme4's ML estimate to
    1e-3 relative (float32's 1e-7 rounding, amplified by the Hessians' conditioning)."""
    res = fit(0, "ml", "drf", np.float32)
    assert int(res.status) == 0, res.message
    for leaf in ("beta", "sigma", "cov"):
        assert res.params[leaf].dtype == jnp.float32, leaf
    assert res.random.mode["u"].dtype == jnp.float32
    check = functools.partial(close, rtol=1e-3, atol=1e-6)
    check(res.params["beta"], ref("coef", "ml", "drf", 0), "coef")
    check(np.asarray(res.params["sigma"]) ** 2, ref("scale", "ml", "drf", 0), "scale")
    check(res.params["cov"], ref("cov_re", "ml", "drf", 0), "cov_re")
    check(res.loglik, ref("loglike", "ml", "drf", 0), "loglike")
    check(res.random.mode["u"][0], ref("ranef_mean", "ml", "drf", 0), "ranef_mean")
    check(np.asarray(res.random.cond_stderr["u"][0]) ** 2, ref("ranef_condvar", "ml", "drf", 0),
          "ranef_condvar")


def test_reml_profile_interval_runs_one_refit_at_a_time():
    """Profile-likelihood intervals of a dense marginal (REML, A 102 wide) finish: their
    endpoint searches run one after another (Config.fits_in_turn); as one vmap they
    deadlocked jaxlib's batched LAPACK on two cores. sigma's interval brackets the estimate
    and agrees with the Wald interval to 15% of its width (a smooth, nearly quadratic
    profile with 100 groups)."""
    res = fit(2, "reml", "drf")
    assert int(res.status) == 0, res.message
    k = list(res.param_names).index("sigma")
    prof = mj.confint(res, method="profile", which=["sigma"])
    wald = mj.confint(res)
    lo, hi = float(prof.lower[k]), float(prof.upper[k])
    sigma = float(res.params["sigma"])
    assert lo < sigma < hi
    width = float(wald.upper[k]) - float(wald.lower[k])
    assert abs(lo - float(wald.lower[k])) < 0.15 * width
    assert abs(hi - float(wald.upper[k])) < 0.15 * width
