"""fit_batch against a Python loop of fit, isolation of bad fits, and random restarts.

References: a loop of independent ``mj.fit`` calls (fit_batch must be the same
computation, batched), and for the restarts a scipy.optimize multi-start run on the
same mixture likelihood written in numpy/scipy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so
from scipy.special import expit
from scipy.stats import norm

import mlejax as mj
from conftest import N_NORMAL, assert_rel, normal_ll

RTOL = 1e-10
KB, NB = 5, N_NORMAL

_rng = np.random.default_rng(2024)
X_BATCH = _rng.normal(loc=np.linspace(-2, 2, KB)[:, None], scale=np.linspace(0.5, 3, KB)[:, None],
                      size=(KB, NB))
X_BAD = X_BATCH.copy()
X_BAD[2] = 1.25  # all identical: sigma -> 0, the log-likelihood is unbounded above
CONS = {"sigma": mj.positive}


INIT = {"mu": jnp.asarray(0.0), "sigma": jnp.asarray(1.0)}


def _compare(rb, k, rk, what):
    """Element k of a batched result against a single-fit result."""
    for name in ("mu", "sigma"):
        assert_rel(rb.params[name][k], rk.params[name], RTOL, f"{what}[{k}] {name}")
        assert_rel(rb.stderr[name][k], rk.stderr[name], RTOL, f"{what}[{k}] stderr {name}")
    assert_rel(rb.loglik[k], rk.loglik, RTOL, f"{what}[{k}] loglik")
    np.testing.assert_allclose(np.asarray(rb.cov[k]), np.asarray(rk.cov), rtol=RTOL,
                               atol=RTOL * float(np.max(np.abs(rk.cov))), err_msg=f"{what}[{k}] cov")
    assert int(rb.status[k]) == int(rk.status), f"{what}[{k}] status"
    assert int(rb.n_steps[k]) == int(rk.n_steps), f"{what}[{k}] n_steps"


# Newton (the default) only: the batching is what is tested here, not the solver, and
# every distinct solver configuration costs a compilation.
@pytest.mark.parametrize("method", ["newton"])
def test_fit_batch_equals_loop(method):
    rb = mj.fit_batch(normal_ll, INIT, jnp.asarray(X_BATCH), constraints=CONS, method=method)
    assert np.shape(rb.loglik) == (KB,)
    assert np.shape(rb.params["mu"]) == (KB,)
    assert np.shape(rb.cov) == (KB, 2, 2)
    for k in range(KB):
        rk = mj.fit(normal_ll, INIT, jnp.asarray(X_BATCH[k]), constraints=CONS, method=method)
        assert bool(rk.converged), rk.message
        # closed form as a sanity anchor for the loop itself
        assert_rel(rk.params["mu"], X_BATCH[k].mean(), 1e-7, "loop mu")
        _compare(rb, k, rk, "fit_batch")


def test_fit_batch_per_dataset_init():
    inits = {"mu": jnp.asarray(np.linspace(-1.0, 1.0, KB)),
             "sigma": jnp.asarray(np.linspace(0.5, 2.0, KB))}
    rb = mj.fit_batch(normal_ll, inits, jnp.asarray(X_BATCH), constraints=CONS,
                      init_batched=True)
    for k in range(KB):
        init_k = {"mu": inits["mu"][k], "sigma": inits["sigma"][k]}
        rk = mj.fit(normal_ll, init_k, jnp.asarray(X_BATCH[k]), constraints=CONS)
        _compare(rb, k, rk, "fit_batch(init_batched)")


@pytest.mark.filterwarnings("ignore::mlejax.FitWarning")
def test_bad_dataset_does_not_poison_others():
    rb = mj.fit_batch(normal_ll, INIT, jnp.asarray(X_BAD), constraints=CONS)
    for k in range(KB):
        if k == 2:
            continue
        rk = mj.fit(normal_ll, INIT, jnp.asarray(X_BAD[k]), constraints=CONS)
        assert bool(rk.converged), rk.message
        assert int(rb.status[k]) == int(mj.Status.CONVERGED)
        _compare(rb, k, rk, "fit_batch with a bad member")


def test_bad_dataset_is_not_reported_converged():
    # sigma -> 0 on identical observations: the supremum is +inf, there is no maximum.
    with pytest.warns(mj.FitWarning, match="did not converge in 1 of 5"):
        rb = mj.fit_batch(normal_ll, INIT, jnp.asarray(X_BAD), constraints=CONS)
    assert int(rb.status[2]) != int(mj.Status.CONVERGED), (
        f"degenerate fit reported converged: sigma={float(rb.params['sigma'][2])}, "
        f"loglik={float(rb.loglik[2])}")


# ---- restarts on a two-component normal mixture ------------------------------------

_mrng = np.random.default_rng(5)
X_MIX = np.concatenate([_mrng.normal(-2.0, 0.6, 80), _mrng.normal(2.0, 1.0, 120)])
MIX_CONS = {"w": mj.unit_interval, "s1": mj.positive, "s2": mj.positive}
BAD_START = {"w": 0.5, "mu1": 3.0, "mu2": 3.0, "s1": 2.0, "s2": 2.0}


def mixture_ll(params, x):
    def lnorm(m, s):
        return -0.5 * ((x - m) / s) ** 2 - jnp.log(s) - 0.5 * jnp.log(2 * jnp.pi)

    a = jnp.log(params["w"]) + lnorm(params["mu1"], params["s1"])
    b = jnp.log1p(-params["w"]) + lnorm(params["mu2"], params["s2"])
    return jnp.logaddexp(a, b)


def _scipy_multistart(x):
    """Independent reference: BFGS from a grid of starts on the unconstrained scale."""

    def nll(u):
        w = expit(u[0])
        a = np.log(w) + norm.logpdf(x, u[1], np.exp(u[3]))
        b = np.log1p(-w) + norm.logpdf(x, u[2], np.exp(u[4]))
        return -np.sum(np.logaddexp(a, b))

    best = None
    for m1 in (-3.0, 0.0, 3.0):
        for m2 in (-3.0, 0.0, 3.0):
            for ls in (np.log(0.5), np.log(2.0)):
                r = so.minimize(nll, [0.0, m1, m2, ls, ls], method="BFGS",
                                options={"gtol": 1e-9})
                if best is None or r.fun < best.fun:
                    best = r
    u = best.x
    return -best.fun, {"w": expit(u[0]), "mu1": u[1], "mu2": u[2],
                       "s1": np.exp(u[3]), "s2": np.exp(u[4])}


@pytest.fixture(scope="module")
def mixture_reference():
    return _scipy_multistart(X_MIX)


def _init(d):
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in d.items()}


def _sorted_components(p):
    """Undo label switching: order the two components by their means."""
    p = {k: float(v) for k, v in p.items()}
    if p["mu1"] > p["mu2"]:
        p = {"w": 1 - p["w"], "mu1": p["mu2"], "mu2": p["mu1"], "s1": p["s2"], "s2": p["s1"]}
    return p


# A Cauchy location model on three clusters has a genuine local maximum at each cluster
# (damped Newton escapes saddles, so a saddle would not show the point): one start near a
# small cluster ends at its local maximum; restarts find the global one. The reference is a
# dense grid of the log-likelihood.
X_CAUCHY = np.concatenate([np.random.default_rng(5).normal(c, 0.3, size=m)
                           for c, m in ((-10.0, 8), (0.0, 20), (9.0, 6))])


def cauchy_ll(params, x):
    return -jnp.log1p((x - params["m"]) ** 2) - jnp.log(jnp.pi)


def _cauchy_grid():
    grid = np.linspace(-15.0, 15.0, 300001)
    ll = np.sum(-np.log1p((X_CAUCHY[None, :] - grid[:, None]) ** 2), axis=1) \
        - X_CAUCHY.size * np.log(np.pi)
    peaks = np.nonzero((ll[1:-1] > ll[:-2]) & (ll[1:-1] > ll[2:]))[0] + 1
    return grid[peaks], ll[peaks]


def test_bad_start_stuck_restarts_find_global():
    locs, peaks = _cauchy_grid()
    assert peaks.size == 3  # the grid sees three local maxima
    res = mj.fit(cauchy_ll, {"m": 8.2}, jnp.asarray(X_CAUCHY))
    assert bool(res.converged)
    assert abs(float(res.params["m"]) - locs[2]) < 1e-4  # the start's own local maximum
    assert float(res.loglik) < peaks.max() - 1.0
    many = mj.fit(cauchy_ll, {"m": 8.2}, jnp.asarray(X_CAUCHY), restarts=16,
                  key=jax.random.key(0), restart_scale=8.0)
    assert abs(float(many.params["m"]) - locs[np.argmax(peaks)]) < 1e-4
    assert_rel(many.loglik, peaks.max(), 1e-9, "restarts reach the grid's global maximum")
    assert int(many.n_best) >= 1


def test_mixture_restarts_find_global_maximum(mixture_reference):
    ref_ll, ref_p = mixture_reference
    res = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), constraints=MIX_CONS,
                 restarts=32, key=jax.random.key(0))
    assert res.restarts is not None
    assert np.shape(res.restarts.loglik) == (32,)
    for leaf in jax.tree_util.tree_leaves(res.restarts.params):
        assert np.shape(leaf)[0] == 32
    assert int(res.n_best) >= 1
    assert bool(res.converged), res.message
    assert_rel(res.loglik, ref_ll, 1e-9, "best restart loglik vs scipy multi-start")
    got = _sorted_components(res.params)
    want = _sorted_components(ref_p)
    for k in want:
        assert_rel(got[k], want[k], 1e-6, f"mixture param {k}")
    # The reported best is the maximum over the restarts that converged.
    ok = np.asarray(res.restarts.status) == int(mj.Status.CONVERGED)
    assert ok.any()
    assert_rel(res.loglik, np.max(np.asarray(res.restarts.loglik)[ok]), 1e-12, "best = max")
    assert 1 <= int(res.n_best) <= int(ok.sum())


def test_mixture_restarts_bfgs_repacked_equal_plain(mixture_reference, monkeypatch):
    """BFGS restarts reach the scipy multi-start maximum, and re-packing the starts still
    running (``repack=``) changes the schedule only: every start ends where it did, with the
    same status (a smaller batch is another compiled program, so the last bits of a long
    trajectory may differ: a start that wanders at the precision floor before its line
    search gives up may take dozens of steps more or fewer, ending at the same value)."""
    ref_ll, _ = mixture_reference
    # Re-packing serves restarts that run as one batch: on CPU they run in blocks (and
    # repack= is not used) unless the block budget covers them all, as here.
    import importlib

    monkeypatch.setattr(importlib.import_module("mlejax._kernels"), "RESTART_BLOCK_BYTES", 1 << 40)
    kw = dict(constraints=MIX_CONS, restarts=16, key=jax.random.key(1), method="bfgs",
              warn=False)
    plain = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), **kw)
    packed = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), repack=3, **kw)
    assert_rel(plain.loglik, ref_ll, 1e-9, "bfgs best restart vs scipy multi-start")
    np.testing.assert_array_equal(np.asarray(packed.restarts.status),
                                  np.asarray(plain.restarts.status))
    np.testing.assert_allclose(np.asarray(packed.restarts.loglik),
                               np.asarray(plain.restarts.loglik), rtol=1e-10)
    assert int(packed.n_best) == int(plain.n_best)
    with pytest.raises(ValueError, match="restarts=R"):
        mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), constraints=MIX_CONS,
               repack=3)
    with pytest.raises(ValueError, match="positive integer"):
        mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), constraints=MIX_CONS,
               restarts=4, key=jax.random.key(0), repack=0)


def _assert_same_starts(a, b):
    """Every start of two restart fits ends in the same place with the same status."""
    np.testing.assert_array_equal(np.asarray(a.restarts.status), np.asarray(b.restarts.status))
    np.testing.assert_allclose(np.asarray(a.restarts.loglik), np.asarray(b.restarts.loglik),
                               rtol=1e-12)
    for name in ("w", "mu1", "mu2", "s1", "s2"):
        np.testing.assert_allclose(np.asarray(a.restarts.params[name]),
                                   np.asarray(b.restarts.params[name]), rtol=1e-9)


def test_restarts_in_cpu_blocks_equal_one_block(monkeypatch):
    """On CPU one fit's restarts run in cache-sized blocks of starts (fit._RESTART_BLOCK_BYTES
    of data per start); a budget of three starts makes three blocks of 3, the last padded.
    Every start ends where the one vmapped over all starts does, with the same status (a
    block is another compiled program of another width, so the last bits may differ and a
    start at the precision floor may take a step more or fewer)."""
    import importlib

    kernels = importlib.import_module("mlejax._kernels")
    kw = dict(constraints=MIX_CONS, restarts=8, key=jax.random.key(3), warn=False)
    monkeypatch.setattr(kernels, "RESTART_BLOCK_BYTES", 3 * X_MIX.nbytes)
    blocked = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), **kw)
    assert kernels.restart_block(blocked.context.config, jnp.asarray(X_MIX), None) == 3
    monkeypatch.setattr(kernels, "RESTART_BLOCK_BYTES", 1 << 40)
    whole = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), **kw)
    _assert_same_starts(blocked, whole)
    assert_rel(blocked.loglik, whole.loglik, 1e-12, "best start")


def test_restarts_in_concurrent_shares_equal_one_program(monkeypatch):
    """With several cores one fit's blocked restarts run as shares of the starts, one
    thread each (mlejax._blocks.concurrently): the same starts, the same result per start
    and the same best (to rounding: the starts and the choice of the best are programs of
    their own here, so XLA fuses them differently)."""
    import importlib

    from mlejax import _blocks

    kernels = importlib.import_module("mlejax._kernels")
    kw = dict(constraints=MIX_CONS, restarts=8, key=jax.random.key(3), warn=False)
    monkeypatch.setattr(kernels, "RESTART_BLOCK_BYTES", X_MIX.nbytes)
    monkeypatch.setenv(_blocks.WORKERS_ENV, "1")
    one = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), **kw)
    monkeypatch.setenv(_blocks.WORKERS_ENV, "3")   # shares of 3, 3, 2 (+ a padded copy)
    shared = mj.fit(mixture_ll, _init(BAD_START), jnp.asarray(X_MIX), **kw)
    _assert_same_starts(shared, one)
    for name in ("w", "mu1", "mu2", "s1", "s2"):
        np.testing.assert_allclose(np.asarray(shared.stderr[name]),
                                   np.asarray(one.stderr[name]), rtol=1e-7)
    assert int(shared.n_best) == int(one.n_best)
    assert shared.optima is not None and shared.restarts.loglik.shape == (8,)
