"""The optima map (``res.optima``, ``mj.optima``) against dense grid searches in numpy.

References: the local maxima of the log-likelihood on a dense grid (numpy, scipy's
``maximum_filter``), found independently of mlejax; scikit-learn's ``GaussianMixture`` for
the best optimum of a mixture fitted by EM.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.ndimage import maximum_filter  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

import mlejax as mj  # noqa: E402


def grid_peaks(values, axes):
    """Interior local maxima of ``values`` on a grid: coordinates and values."""
    peak = values == maximum_filter(values, size=3, mode="nearest")
    for a in range(values.ndim):
        idx = [slice(None)] * values.ndim
        idx[a] = [0, -1]
        peak[tuple(idx)] = False
    where = np.argwhere(peak)
    coords = np.stack([axes[a][where[:, a]] for a in range(values.ndim)], axis=1)
    return coords, values[peak]


# --- Cauchy location on clustered data, a batch of two datasets ---------------------------
CLUSTERS = [
    np.concatenate([np.linspace(-0.5, 0.5, 10), np.linspace(-8.3, -7.7, 6),
                    np.linspace(8.7, 9.3, 5)]),
    np.concatenate([np.linspace(-0.4, 0.4, 9), np.linspace(-6.3, -5.7, 8),
                    np.linspace(5.8, 6.2, 4)]),
]


def cauchy_ll(p, x):
    return -jnp.log1p((x - p["m"]) ** 2) - jnp.log(jnp.pi)


def test_cauchy_optima_equal_the_grid_peaks_per_dataset():
    xs = np.stack(CLUSTERS)
    r = 64

    def init(key):
        return {"m": jax.random.uniform(key, (), minval=-12.0, maxval=12.0)}

    res = mj.fit_batch(cauchy_ll, init, xs, restarts=r, key=jax.random.key(0), warn=False)
    opt = res.optima
    assert opt.is_batch and opt.params["m"].shape == (2, r)
    grid = np.linspace(-12.0, 12.0, 12001)                      # step 0.002
    for j, x in enumerate(CLUSTERS):
        ll = np.sum(-np.log1p((x[None, :] - grid[:, None]) ** 2) - np.log(np.pi), axis=1)
        where, vals = grid_peaks(ll, [grid])
        n = int(opt.n_optima[j])
        assert n == len(vals) == [3, 2][j]                        # every grid peak, no more
        order = np.argsort(-vals)
        # Each optimum at a grid peak (to the grid step), best first, log-likelihoods equal.
        np.testing.assert_allclose(np.asarray(opt.params["m"][j, :n]), where[order, 0],
                                   atol=2e-3)
        np.testing.assert_allclose(np.asarray(opt.loglik[j, :n]), vals[order], atol=1e-4)
        assert bool(opt.best[j, 0]) and not bool(opt.best[j, 1])
        assert np.all(np.asarray(opt.peak[j, :n]))
        # Basin fractions sum to the converged fraction; every start is labelled.
        count = np.asarray(opt.count[j])
        assert count[:n].min() >= 1 and count[n:].sum() == 0
        conv = np.asarray(res.restarts.converged[j])
        assert float(np.sum(opt.fraction[j])) == pytest.approx(conv.mean())
        assert int(opt.n_converged[j]) == conv.sum()
        labels = np.asarray(opt.label[j])
        np.testing.assert_array_equal(labels >= 0, conv)
        # A start's label is the optimum it reached.
        reached = np.asarray(res.restarts.params["m"][j])[conv]
        np.testing.assert_allclose(reached, np.asarray(opt.params["m"][j])[labels[conv]],
                                   atol=1e-6)
    text = opt.summary()
    assert "batch of 2" in text and "range [2, 3]" in text


# --- a two-component mixture: a spurious peak, label switching, a saddle -----------------
_rng = np.random.default_rng(5)
XMIX = np.concatenate([_rng.normal(-5, 0.6, 14), _rng.normal(0.0, 0.6, 14),
                       _rng.normal(5, 0.6, 8)])


def mix_ll(p, x):
    """0.5 N(mu_1, 1) + 0.5 N(mu_2, 1): means unknown."""
    a = jax.scipy.stats.norm.logpdf(x[:, None], p["mu"][None, :], 1.0)
    return jax.scipy.special.logsumexp(a, axis=1) + jnp.log(0.5)


def mix_init(key):
    k1, k2 = jax.random.split(key)
    mu = jax.random.uniform(k1, (2,), minval=-8.0, maxval=8.0)
    # One start in eight on the diagonal mu_1 = mu_2 (both components alike): such a fit
    # ends with one component at the mean of all the data and the other left with none,
    # on a flat ridge (its mean free): a stationary point that is not a peak.
    same = jax.random.uniform(k2) < 0.125
    return {"mu": jnp.where(same, jnp.array([mu[0], mu[0]]), mu)}


def test_mixture_map_counts_label_switched_copies_once_and_flags_the_ridge():
    g = np.linspace(-8.0, 8.0, 321)                              # step 0.05
    m1, m2 = np.meshgrid(g, g, indexing="ij")
    comp = -0.5 * (XMIX - np.stack([m1, m2])[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    ll = np.sum(logsumexp(comp, axis=0) + np.log(0.5), axis=-1)
    where, vals = grid_peaks(ll, [g, g])
    assert len(vals) == 4                   # two optima, each with its label-switched copy
    canon = where[:, 0] <= where[:, 1]
    where, vals = where[canon], vals[canon]
    order = np.argsort(-vals)
    assert vals[order][0] - vals[order][1] > 10                   # one of them is spurious

    res = mj.fit(mix_ll, mix_init, XMIX, restarts=64, key=jax.random.key(2), warn=False,
                 canonical=mj.optima.sort_components("mu"))
    opt = res.optima
    peaks = np.asarray(opt.peak)[: int(opt.n_optima)]
    mus = np.asarray(opt.params["mu"])[: int(opt.n_optima)]
    lls = np.asarray(opt.loglik)[: int(opt.n_optima)]
    # The two grid optima are the map's peaks (canonical: sorted means), best first ...
    assert int(peaks.sum()) == 2
    np.testing.assert_allclose(mus[peaks], where[order], atol=0.05)
    np.testing.assert_allclose(lls[peaks], vals[order], atol=0.05)
    assert bool(opt.best[0]) and bool(peaks[0])
    # ... and the starts on the diagonal stopped on a ridge: one optimum, not a peak, its
    # log-likelihood that of 0.5 N(mean, 1) for all the data (numpy).
    ridge = ~peaks
    assert ridge.sum() == 1
    assert np.min(np.abs(mus[ridge][0] - XMIX.mean())) < 1e-6
    one_normal = np.sum(-0.5 * (XMIX - XMIX.mean()) ** 2 - 0.5 * np.log(2 * np.pi) + np.log(0.5))
    assert lls[ridge][0] == pytest.approx(one_normal, abs=1e-6)
    status = np.asarray(res.restarts.status)
    assert np.sum(status == mj.Status.SINGULAR_HESSIAN) > 1
    n_ridge = int(np.asarray(opt.count)[np.flatnonzero(ridge)[0]])
    assert n_ridge == np.sum(status == mj.Status.SINGULAR_HESSIAN)
    assert np.sum(np.asarray(opt.fraction)) == pytest.approx(
        np.mean((status == mj.Status.CONVERGED) | (status == mj.Status.SINGULAR_HESSIAN)))
    # The starts reached both label-switched copies of each optimum (raw estimates, numpy):
    # the map counted each pair once.
    raw = np.asarray(res.restarts.params["mu"])[np.asarray(opt.label) < 2]
    for m in where[order]:
        for copy in (m, m[::-1]):
            assert np.any(np.all(np.abs(raw - copy) < 0.05, axis=1))
    text = opt.summary()
    assert text.startswith("3 optima; best reached by") and "saddle or ridge" in text


def test_em_mixture_optima_treat_permuted_components_as_one():
    from sklearn.mixture import GaussianMixture as SkGMM

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal([0, 0], 0.5, (40, 2)), rng.normal([4, 1], 0.5, (40, 2)),
                        rng.normal([1, 5], 0.5, (40, 2))])
    gmm = mj.GaussianMixture(3, covariance_type="spherical", init_params="random",
                             max_steps=300)
    res = gmm.fit(x, key=jax.random.key(0), n_init=8, warn=False)
    assert res.restart_params["means"].shape == (8, 3, 2)
    assert res.restart_trace.shape == (8, 301)          # every start's trace, for watching
    for t, n in zip(np.asarray(res.restart_trace), np.asarray(res.restart_params["means"])):
        t = t[np.isfinite(t)]
        assert np.all(np.diff(t) >= -1e-9 * np.abs(t[-1]))
    orders = {tuple(np.argsort(m[:, 0])) for m in np.asarray(res.restart_params["means"])}
    assert len(orders) > 1                     # the starts found permuted labellings ...
    opt = res.optima(x)
    conv = np.asarray(res.restart_status) == 0
    assert int(opt.n_optima) == 1 and int(opt.count[0]) == conv.sum()   # ... of one optimum
    assert bool(opt.peak[0])
    sk = SkGMM(3, covariance_type="spherical", n_init=2, tol=1e-12, max_iter=2000,
               random_state=0).fit(x)
    assert float(opt.loglik[0]) == pytest.approx(sk.score(x) * len(x), abs=1e-5)
    means = np.asarray(opt.params["means"][0])
    assert np.all(np.diff(means[:, 0]) > 0)                           # canonical order
    with pytest.raises(ValueError, match="needs the data"):
        mj.optima.find(res)


def test_optima_errors_and_canonical_forms():
    x = jnp.asarray(CLUSTERS[0])
    zero = jnp.zeros(())
    res = mj.FitResult(params={"m": zero}, loglik=zero, status=jnp.int32(0), n_steps=zero,
                       trace=zero[None], cov=zero[None, None], stderr={"m": zero},
                       grad_norm=zero, nobs=jnp.int32(x.size))      # a fit without restarts
    with pytest.raises(ValueError, match="restarts"):
        res.optima
    with pytest.raises(ValueError, match="tol"):
        mj.optima.find(res, tol=0.0)
    with pytest.raises(ValueError, match="canonical"):
        mj.fit(cauchy_ll, {"m": 0.0}, x, canonical=mj.optima.sort_components("mu"))
    with pytest.raises(ValueError, match="names"):
        mj.optima.sort_components()
    canon = mj.optima.sort_components("means", "weights")
    out = canon({"means": jnp.array([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0]]),
                 "weights": jnp.array([0.2, 0.3, 0.5]), "cov": jnp.eye(2)})
    np.testing.assert_array_equal(np.asarray(out["means"]), [[0, 1], [0, 2], [1, 0]])
    np.testing.assert_array_equal(np.asarray(out["weights"]), [0.5, 0.3, 0.2])
    np.testing.assert_array_equal(np.asarray(out["cov"]), np.eye(2))
