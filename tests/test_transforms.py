"""mj.fit under JAX transformations, compilation caching, and float32.

* ``jax.jit`` of a function that calls ``mj.fit`` gives the same result as no jit;
* ``jax.vmap`` of such a function over datasets gives the same result as fit_batch;
* a second fit on new data of the same shape does not trace the log-likelihood again;
* float32 data and init give a converged float32 fit close to the float64 answer
  (closed form for the Gaussian, statsmodels Logit for the logistic regression).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj
from conftest import N_NORMAL, assert_rel, normal_ll

RTOL = 1e-10
CONS = {"sigma": mj.positive}

_rng = np.random.default_rng(77)
X1 = _rng.normal(0.7, 1.3, size=N_NORMAL)
X2 = _rng.normal(-0.4, 0.6, size=N_NORMAL)
KB = 5
XB = _rng.normal(0.0, 1.0, size=(KB, N_NORMAL)) * np.linspace(0.5, 2.0, KB)[:, None] + 1.0


def _init(dtype=jnp.float64):
    return {"mu": jnp.asarray(0.0, dtype), "sigma": jnp.asarray(1.0, dtype)}


def _fit(x):
    return mj.fit(normal_ll, _init(), x, constraints=CONS)


def _same(a, b, what, rtol=RTOL):
    for k in ("mu", "sigma"):
        assert_rel(a.params[k], b.params[k], rtol, f"{what}: {k}")
        assert_rel(a.stderr[k], b.stderr[k], rtol, f"{what}: stderr {k}")
    assert_rel(a.loglik, b.loglik, rtol, f"{what}: loglik")
    np.testing.assert_allclose(np.asarray(a.cov), np.asarray(b.cov), rtol=rtol,
                               atol=rtol * float(np.max(np.abs(b.cov))), err_msg=f"{what}: cov")
    np.testing.assert_array_equal(np.asarray(a.status), np.asarray(b.status), err_msg=what)


def test_jit_of_fit_equals_no_jit():
    eager = _fit(jnp.asarray(X1))
    jitted = jax.jit(_fit)(jnp.asarray(X1))
    assert bool(eager.converged), eager.message
    assert_rel(eager.params["mu"], X1.mean(), 1e-10, "mu closed form")
    _same(jitted, eager, "jit vs no jit")
    assert int(jitted.n_steps) == int(eager.n_steps)


def test_vmap_of_fit_equals_fit_batch():
    vm = jax.vmap(_fit)(jnp.asarray(XB))
    fb = mj.fit_batch(normal_ll, _init(), jnp.asarray(XB), constraints=CONS)
    assert np.shape(vm.params["mu"]) == (KB,)
    _same(vm, fb, "vmap vs fit_batch")
    assert_rel(vm.params["mu"], XB.mean(1), 1e-10, "mu closed form")
    assert_rel(vm.params["sigma"], XB.std(1), 1e-10, "sigma closed form")


_TRACES = {"fit": 0}


def _counting(slot):
    def ll(params, x):
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(params)):
            _TRACES[slot] += 1
        return normal_ll(params, x)

    return ll


COUNTED_FIT_LL = _counting("fit")


def test_second_fit_same_shapes_does_not_retrace():
    r1 = mj.fit(COUNTED_FIT_LL, _init(), jnp.asarray(X1), constraints=CONS)
    n1 = _TRACES["fit"]
    assert n1 > 0
    r2 = mj.fit(COUNTED_FIT_LL, _init(), jnp.asarray(X2), constraints=CONS)
    assert _TRACES["fit"] == n1, f"loglik traced {_TRACES['fit'] - n1} more times on the 2nd fit"
    # new init values of the same shape: no retrace either
    r3 = mj.fit(COUNTED_FIT_LL, {"mu": jnp.asarray(0.3), "sigma": jnp.asarray(2.0)},
                jnp.asarray(X1), constraints=CONS)
    assert _TRACES["fit"] == n1, f"loglik traced {_TRACES['fit'] - n1} more times on the 3rd fit"
    # and the results are the right ones (not stale from the cache)
    assert_rel(r1.params["mu"], X1.mean(), 1e-10, "fit 1")
    assert_rel(r2.params["mu"], X2.mean(), 1e-10, "fit 2")
    assert_rel(r3.params["sigma"], X1.std(), 1e-10, "fit 3")


# ---- float32 -----------------------------------------------------------------------

F32_RTOL = 1e-4
X32 = np.random.default_rng(3).normal(1.0, 2.0, size=200)

_lrng = np.random.default_rng(11)
XL = np.column_stack([np.ones(300), _lrng.normal(size=(300, 3))])
BETA_TRUE = np.array([0.3, 1.0, -0.7, 0.4])
YL = (_lrng.uniform(size=300) < 1 / (1 + np.exp(-XL @ BETA_TRUE))).astype(np.float64)


def logit_ll(params, data):
    eta = data["X"] @ params["beta"]
    return data["y"] * eta - jax.nn.softplus(eta)


@pytest.mark.parametrize("method", ["newton"])
def test_float32_gaussian(method):
    x = jnp.asarray(X32, dtype=jnp.float32)
    res = mj.fit(normal_ll, _init(jnp.float32), x, constraints=CONS, method=method)
    assert int(res.status) == int(mj.Status.CONVERGED), res.message
    assert res.params["mu"].dtype == jnp.float32
    assert res.params["sigma"].dtype == jnp.float32
    # float64 closed form of the float32-rounded data
    x64 = np.asarray(x, dtype=np.float64)
    assert_rel(res.params["mu"], x64.mean(), F32_RTOL, "mu")
    assert_rel(res.params["sigma"], x64.std(), F32_RTOL, "sigma")
    assert_rel(res.stderr["mu"], x64.std() / np.sqrt(x64.size), F32_RTOL, "stderr mu")


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs"])
def test_float32_logistic(method):
    sm = pytest.importorskip("statsmodels.api")
    X32l = np.asarray(XL, dtype=np.float32)
    ref = sm.Logit(YL, X32l.astype(np.float64)).fit(disp=0)
    data = {"X": jnp.asarray(X32l), "y": jnp.asarray(YL, dtype=jnp.float32)}
    res = mj.fit(logit_ll, {"beta": jnp.zeros(4, jnp.float32)}, data, method=method)
    assert int(res.status) == int(mj.Status.CONVERGED), res.message
    assert res.params["beta"].dtype == jnp.float32
    assert_rel(res.params["beta"], np.asarray(ref.params), F32_RTOL, "beta")
    assert_rel(res.stderr["beta"], np.asarray(ref.bse), F32_RTOL, "stderr beta")
