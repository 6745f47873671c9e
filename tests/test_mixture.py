"""Gaussian, Bernoulli and Poisson mixtures: against scikit-learn, restarts, batches, float32,
degenerate cases and errors.

References: scikit-learn's GaussianMixture from the same initial parameters (same final
log-likelihood and parameters, every covariance type), and from its own k-means starts
with the same number of restarts (mlejax's best is at least as good); scikit-learn's KMeans
for the k-means starts. Every fit's trace is checked to never decrease.

Few compiled shapes: every Gaussian fit uses the (N, D) data below, with K components.
"""

import jax

jax.config.update("jax_enable_x64", True)

import warnings  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGMM  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import mlejax as mj  # noqa: E402

N, D, K = 300, 2, 3
N_ITER = 400          # EM iterations in the same-start comparison (both libraries)
COV_TYPES = ["full", "tied", "diag", "spherical"]


def _make(seed, spread=1.0):
    """Three overlapping 2-D clusters with different shapes and sizes."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 2.5]]) * spread
    scales = [np.array([[1.0, 0.3], [0.3, 0.6]]), np.array([[0.5, -0.2], [-0.2, 0.8]]),
              np.array([[1.2, 0.0], [0.4, 0.7]])]
    sizes = [140, 100, 60]
    parts = [c + rng.normal(size=(m, D)) @ s for c, s, m in zip(centers, scales, sizes)]
    return np.concatenate(parts)[rng.permutation(N)]


X = _make(0)
XS = np.stack([_make(s, spread=0.8) for s in (11, 12, 13)])   # overlapping problems


def _monotone(trace, rtol=1e-12):
    t = np.asarray(trace, dtype=np.float64)
    t = t[np.isfinite(t)]
    assert t.size >= 2
    drops = np.diff(t)
    assert np.all(drops >= -rtol * np.abs(t[1:])), f"trace decreases: min step {drops.min()}"


def _match(means_a, means_b):
    """The permutation of b's components that matches a's (label switching)."""
    cost = ((np.asarray(means_a)[:, None, :] - np.asarray(means_b)[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def _start(ct):
    """Initial parameters given to both libraries (sklearn takes precisions)."""
    rng = np.random.default_rng(5)
    means = X[rng.choice(N, K, replace=False)]
    weights = np.array([0.5, 0.3, 0.2])
    base = np.array([[1.0, 0.2], [0.2, 0.8]])
    covs = {"full": np.stack([base * s for s in (1.0, 1.5, 0.7)]), "tied": base,
            "diag": np.array([[1.0, 0.8], [1.5, 1.2], [0.7, 0.6]]),
            "spherical": np.array([1.0, 1.5, 0.7])}[ct]
    prec = np.linalg.inv(covs) if ct in ("full", "tied") else 1.0 / covs
    return {"weights": weights, "means": means, "covariances": covs}, prec


def _sklearn_same_start(ct):
    init, prec = _start(ct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SkGMM(K, covariance_type=ct, max_iter=N_ITER, tol=0.0, reg_covar=1e-6,
                     weights_init=init["weights"], means_init=init["means"],
                     precisions_init=prec).fit(X)


# One model per covariance type for the same-start comparison: N_ITER iterations, stopping
# early only when an iteration leaves the log-likelihood exactly unchanged.
SAME = {ct: mj.GaussianMixture(K, ct, max_steps=N_ITER, ftol=0.0) for ct in COV_TYPES}


@pytest.mark.parametrize("ct", COV_TYPES)
def test_same_start_as_sklearn(ct):
    sk = _sklearn_same_start(ct)
    init, _ = _start(ct)
    res = SAME[ct].fit(jnp.asarray(X), init=init, warn=False)
    assert int(res.status) == mj.Status.CONVERGED or int(res.n_steps) == N_ITER
    ll_sk = sk.score(X) * N
    np.testing.assert_allclose(float(res.loglik), ll_sk, rtol=1e-6)
    np.testing.assert_allclose(float(res.loglik), ll_sk, rtol=1e-9)   # in fact far closer
    # Parameters agree to O(reg_covar): sklearn iterates on to the fixed point of the
    # regularised map, where L is lower by O(reg_covar^2); mlejax stops at the first
    # iteration that would lower L (about 1e-13 relative here), a distance O(reg_covar) away.
    perm = _match(sk.means_, res.params["means"])
    p = {k: np.asarray(v) for k, v in res.params.items()}
    np.testing.assert_allclose(p["weights"][perm], sk.weights_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p["means"][perm], sk.means_, rtol=1e-5, atol=1e-5)
    cov = p["covariances"] if ct == "tied" else p["covariances"][perm]
    np.testing.assert_allclose(cov, sk.covariances_, rtol=1e-5, atol=1e-5)
    _monotone(res.trace)
    # After the fit: the same responsibilities, densities and criteria as sklearn's.
    np.testing.assert_allclose(np.asarray(res.predict_proba(X))[:, perm], sk.predict_proba(X),
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(res.score_samples(X)), sk.score_samples(X),
                               rtol=1e-6)
    np.testing.assert_array_equal(perm[sk.predict(X)], np.asarray(res.predict(X)))
    assert res.df_model == sk._n_parameters()
    np.testing.assert_allclose(float(res.bic), sk.bic(X), rtol=1e-8)
    np.testing.assert_allclose(float(res.aic), sk.aic(X), rtol=1e-8)


def _steps(restart_trace):
    """Each start's EM iterations, from its trace (finite up to the last)."""
    return np.sum(np.isfinite(np.asarray(restart_trace)), axis=-1) - 1


def test_batch_in_cache_blocks_equals_loop(monkeypatch):
    # On CPU a large batch is fitted block after block (BLOCK_BYTES of E-step arrays
    # per block); a budget of two datasets makes these three two blocks, the last padded
    # with a copy. Each dataset's fit must be the one a loop of fit() gives.
    import importlib

    engine = importlib.import_module("mlejax.mixture._engine")
    monkeypatch.setattr(engine, "BLOCK_BYTES", 2 * N * K * 2 * XS.dtype.itemsize)
    xs = jnp.asarray(XS)
    assert engine.block_size(xs, K, 2) == 2
    gmm = mj.GaussianMixture(K, max_steps=300)
    key = jax.random.key(7)
    init, _ = _start("full")
    shared = gmm.fit_batch(xs, key=key, n_init=2, init={"weights": init["weights"]})
    own = {"means": np.stack([XS[j][:K] for j in range(3)])}
    per = gmm.fit_batch(xs, key=key, n_init=2, init=own, init_batched=True)
    keys = jax.random.split(key, 3)
    for j in range(3):
        for batch, user in ((shared, {"weights": init["weights"]}),
                            (per, {"means": own["means"][j]})):
            one = gmm.fit(xs[j], key=keys[j], n_init=2, init=user)
            np.testing.assert_allclose(np.asarray(batch.restart_loglik[j]),
                                       np.asarray(one.restart_loglik), rtol=1e-12)
            # Every start's iterations and estimate (the best of two starts that reach one
            # optimum, its components in another order, can be either: their logliks
            # differ by a rounding of the program).
            np.testing.assert_array_equal(_steps(batch.restart_trace[j]),
                                          _steps(one.restart_trace))
            for name in ("weights", "means", "covariances"):
                np.testing.assert_allclose(np.asarray(batch.restart_params[name][j]),
                                           np.asarray(one.restart_params[name]), rtol=1e-10,
                                           atol=1e-12)


def test_batch_in_concurrent_shares_equals_one_program(monkeypatch):
    # With several cores the blocks of a batch run as shares, one thread each
    # (mlejax._blocks.concurrently): six datasets in blocks of one, three shares of two.
    # The same fits to rounding (a share gathers its datasets inside its program, which XLA
    # fuses differently from the whole batch's).
    import importlib

    from mlejax import _blocks

    engine = importlib.import_module("mlejax.mixture._engine")
    monkeypatch.setattr(engine, "BLOCK_BYTES", N * K * 2 * XS.dtype.itemsize)
    xs = jnp.asarray(np.concatenate([XS, XS[:, ::-1]]))
    gmm = mj.GaussianMixture(K, max_steps=300)
    own = {"means": np.stack([np.asarray(xs[j][:K]) for j in range(6)])}
    out = {}
    for workers in ("1", "3"):
        monkeypatch.setenv(_blocks.WORKERS_ENV, workers)
        out[workers] = (gmm.fit_batch(xs, key=jax.random.key(7), n_init=2),
                        gmm.fit_batch(xs, key=jax.random.key(7), init=own, init_batched=True))
    assert _blocks.shares(6, 1, "cpu", True) == 3
    for one, shared in zip(out["1"], out["3"]):
        np.testing.assert_allclose(np.asarray(shared.restart_loglik),
                                   np.asarray(one.restart_loglik), rtol=1e-12)
        np.testing.assert_array_equal(np.asarray(shared.n_steps), np.asarray(one.n_steps))
        for name in ("weights", "means", "covariances"):
            # Every start's estimate (the best of two starts that reach one optimum with
            # the components in another order can differ by a rounding of the loglik).
            np.testing.assert_allclose(np.asarray(shared.restart_params[name]),
                                       np.asarray(one.restart_params[name]), rtol=1e-10,
                                       atol=1e-12)


def test_empty_component_is_regularised_and_warned():
    init, _ = _start("full")
    init = dict(init, means=init["means"].copy())
    init["means"][2] = [1e3, 1e3]            # a component far from every point: it empties
    with pytest.warns(mj.FitWarning, match="emptied"):
        res = SAME["full"].fit(jnp.asarray(X), init=init)
    assert bool(res.degenerate)
    for v in res.params.values():
        assert np.all(np.isfinite(np.asarray(v)))
    assert np.isfinite(float(res.loglik))
    _monotone(res.trace)


def test_best_of_restarts_beats_sklearn_and_batch_equals_loop():
    gmm = mj.GaussianMixture(K)            # full covariances, k-means starts, defaults
    key = jax.random.key(42)
    batch = gmm.fit_batch(jnp.asarray(XS), key=key, n_init=8)
    assert np.shape(batch.loglik) == (3,)
    assert np.shape(batch.params["covariances"]) == (3, K, D, D)
    assert np.shape(batch.restart_loglik) == (3, 8)
    assert np.all(np.asarray(batch.converged))
    keys = jax.random.split(key, 3)
    for j in range(3):
        one = gmm.fit(jnp.asarray(XS[j]), key=keys[j], n_init=8)
        # The batched program is the loop's computation: same starts, same optima.
        np.testing.assert_allclose(np.asarray(batch.restart_loglik[j]),
                                   np.asarray(one.restart_loglik), rtol=1e-10)
        np.testing.assert_allclose(float(batch.loglik[j]), float(one.loglik), rtol=1e-12)
        perm = _match(one.params["means"], batch.params["means"][j])
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(np.asarray(batch.params[name][j])[perm],
                                       np.asarray(one.params[name]), rtol=1e-6, atol=1e-8)
        _monotone(one.trace)
        _monotone(batch.trace[j])
        # Against sklearn from its own k-means starts, same number of restarts, run to a
        # tight tolerance (its default 1e-3 would stop it early and make this easy).
        with threadpool_limits(1):     # sklearn's threads only fight for the two cores here
            sk = SkGMM(K, n_init=8, tol=1e-10, max_iter=2000, random_state=j).fit(XS[j])
        ll_sk = sk.score(XS[j]) * N
        assert float(one.loglik) >= ll_sk - 1e-6 * abs(ll_sk), (j, float(one.loglik), ll_sk)
    # Predictions of a batch take the K datasets.
    assert batch.predict(jnp.asarray(XS)).shape == (3, N)


def test_float32_random_starts_converge():
    x32 = jnp.asarray(X, jnp.float32)
    gmm = mj.GaussianMixture(K, init_params="random")
    res = gmm.fit(x32, key=jax.random.key(1), n_init=4)
    assert res.params["means"].dtype == jnp.float32
    assert res.loglik.dtype == jnp.float32
    assert bool(res.converged)
    _monotone(res.trace, rtol=1e-5)
    ref = _sklearn_same_start("full")          # a converged float64 optimum of the same data
    np.testing.assert_allclose(float(res.loglik), ref.score(X) * N, rtol=1e-4)
    perm = _match(ref.means_, res.params["means"])
    np.testing.assert_allclose(np.asarray(res.params["means"])[perm], ref.means_, atol=1e-2)


def test_collapse_and_max_steps_are_reported():
    xd = X.copy()
    xd[:12] = [40.0, 40.0]                   # twelve identical points: a component collapses
    with pytest.warns(mj.FitWarning) as record:
        res = mj.GaussianMixture(K, max_steps=3).fit(jnp.asarray(xd))
    text = " ".join(str(w.message) for w in record)
    assert "max_steps" in text and "collapsed" in text
    assert int(res.status) == mj.Status.MAX_STEPS and int(res.n_steps) == 3
    assert not bool(res.converged)
    assert bool(res.degenerate)
    cov = np.asarray(res.params["covariances"])
    assert np.all(np.isfinite(cov))
    np.testing.assert_allclose(np.linalg.eigvalsh(cov).min(), 1e-6, rtol=1e-6)
    _monotone(res.trace)


def test_inference_standard_errors():
    init, _ = _start("full")
    res = SAME["full"].fit(jnp.asarray(X), init=init, warn=False)
    inf = res.inference(X)
    assert inf.method == "em" and int(inf.status) == mj.Status.CONVERGED
    se = {k: np.asarray(v) for k, v in inf.stderr.items()}
    assert se["means"].shape == (K, D) and se["covariances"].shape == (K, D, D)
    assert np.all(np.isfinite(se["means"])) and np.all(se["means"] > 0)
    # The mean of a component with n_j points and covariance S_j has sd about sqrt(S_jaa/n_j)
    # (the mixture's overlap adds a little to it).
    nj = np.asarray(res.params["weights"]) * N
    approx = np.sqrt(np.diagonal(np.asarray(res.params["covariances"]), axis1=1, axis2=2)
                     / nj[:, None])
    assert np.all(se["means"] >= 0.95 * approx) and np.all(se["means"] <= 1.6 * approx)
    assert "means[0,0]" in inf.summary()


# --- Bernoulli and Poisson mixtures ----------------------------------------------------
_rng = np.random.default_rng(3)
Z = _rng.integers(0, 2, 400)
P_TRUE = np.array([[0.9, 0.8, 0.1, 0.2, 0.5], [0.1, 0.2, 0.9, 0.7, 0.5]])
XB = (_rng.random((400, 5)) < P_TRUE[Z]).astype(np.float64)
XB[:, 4] = 0.0                             # a feature that never occurs: probs exactly 0


def _fixed_point(res, x, component):
    """One more M-step, written here in numpy, from the estimate leaves it where it is."""
    resp = np.asarray(res.predict_proba(x))
    again = resp.T @ x / resp.sum(0)[:, None]
    np.testing.assert_allclose(again, np.asarray(res.params[component]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(resp.mean(0), np.asarray(res.params["weights"]), rtol=1e-6)


def test_bernoulli_mixture():
    model = mj.BernoulliMixture(2)
    res = model.fit(XB, key=jax.random.key(0))
    assert bool(res.converged) and np.isfinite(float(res.loglik))
    _monotone(res.trace)
    _fixed_point(res, XB, "probs")
    probs = np.asarray(res.params["probs"])
    assert np.all(probs[:, 4] == 0.0)
    perm = _match(P_TRUE[:, :4], probs[:, :4])
    np.testing.assert_allclose(probs[perm, :4], P_TRUE[:, :4], atol=0.08)
    assert res.df_model == 1 + 2 * 5


def test_poisson_mixture():
    lam = np.array([[1.0, 5.0], [8.0, 2.0]])
    xp = _rng.poisson(lam[Z]).astype(np.int64)
    model = mj.PoissonMixture(2)
    res = model.fit(xp, key=jax.random.key(0))
    assert bool(res.converged)
    _monotone(res.trace)
    _fixed_point(res, xp.astype(np.float64), "rates")
    perm = _match(lam, res.params["rates"])
    np.testing.assert_allclose(np.asarray(res.params["rates"])[perm], lam, rtol=0.15)


# --- k-means ---------------------------------------------------------------------------
def test_kmeans_against_sklearn():
    res = mj.kmeans(X, K, key=jax.random.key(0), n_init=4)
    assert bool(res.converged)
    centers, labels = np.asarray(res.centers), np.asarray(res.labels)
    # A fixed point of Lloyd: labels are the nearest centres, centres the means of their points.
    d2 = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))
    for j in range(K):
        np.testing.assert_allclose(centers[j], X[labels == j].mean(0), rtol=1e-10)
    np.testing.assert_allclose(float(res.inertia), d2.min(1).sum(), rtol=1e-10)
    with threadpool_limits(1):
        sk = KMeans(K, n_init=4, random_state=0).fit(X)
    assert float(res.inertia) <= sk.inertia_ * (1 + 1e-9)


# --- errors before compiling -------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(n_components=0), "n_components"),
    (dict(n_components=2, covariance_type="banana"), "covariance_type"),
    (dict(n_components=2, reg_covar=-1.0), "reg_covar"),
    (dict(n_components=2, init_params="best"), "init_params"),
    (dict(n_components=2, ftol=-1.0), "ftol"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mj.GaussianMixture(**kwargs)


def test_bad_data_and_init():
    gmm = mj.GaussianMixture(K)
    with pytest.raises(ValueError, match=r"n_components=3 is larger.*n=2"):
        gmm.fit(X[:2])
    bad = X.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gmm.fit(bad)
    with pytest.raises(ValueError, match=r"2-D.*x\[:, None\]"):
        gmm.fit(X[:, 0])
    with pytest.raises(ValueError, match=r"3-D"):
        gmm.fit_batch(X)
    with pytest.raises(ValueError, match="key="):
        gmm.fit(X, n_init=4)
    with pytest.raises(ValueError, match="n_init"):
        gmm.fit(X, n_init=0)
    with pytest.raises(ValueError, match="unknown key"):
        gmm.fit(X, init={"mu": np.zeros((K, D))})
    with pytest.raises(ValueError, match=r"init\['means'\] must have shape \(3, 2\)"):
        gmm.fit(X, init={"means": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"init\['weights'\].*sum to 1"):
        gmm.fit(X, init={"weights": np.array([0.5, 0.5, 0.5])})
    with pytest.raises(ValueError, match=r"init\['covariances'\].*positive definite"):
        gmm.fit(X, init={"covariances": -np.tile(np.eye(D), (K, 1, 1))})
    with pytest.raises(ValueError, match="binary"):
        mj.BernoulliMixture(2).fit(XB * 2.0)
    with pytest.raises(ValueError, match="counts"):
        mj.PoissonMixture(2).fit(-XB)


def test_components_far_apart_match_sklearn():
    """The float64 M-step forms scatter matrices from moments about the data's mean, which
    cancels ``(|mu_j - c| / sigma_j)^2`` ulps: clusters 10,000 standard deviations apart
    (each 5,000 from the mean) must still give scikit-learn's covariances (its M-step uses
    centred differences) to 1e-6."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(150, D)) @ np.array([[1.0, 0.3], [0.0, 0.5]]) - 5000.0
    b = rng.normal(size=(150, D)) @ np.array([[0.7, 0.0], [0.2, 1.1]]) + 5000.0
    x = np.concatenate([a, b])
    init = {"weights": np.array([0.5, 0.5]), "means": np.array([[-4999.0, -5001.0],
                                                                 [5001.0, 4999.0]]),
            "covariances": np.stack([np.eye(D), np.eye(D)])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # tol=0: runs all 50
        sk = SkGMM(2, covariance_type="full", max_iter=50, tol=0.0, reg_covar=1e-6,
                   weights_init=init["weights"], means_init=init["means"],
                   precisions_init=np.linalg.inv(init["covariances"])).fit(x)
    res = mj.GaussianMixture(2, max_steps=50, ftol=0.0).fit(jnp.asarray(x), init=init,
                                                            warn=False)
    perm = _match(sk.means_, res.params["means"])
    np.testing.assert_allclose(np.asarray(res.params["covariances"])[perm], sk.covariances_,
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(res.params["means"])[perm], sk.means_, rtol=1e-12)
    np.testing.assert_allclose(float(res.loglik), sk.score(x) * x.shape[0], rtol=1e-10)
