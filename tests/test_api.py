"""The public contract: names exist, results are pytrees, summaries say what happened."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj

jax.config.update("jax_enable_x64", True)

CONTRACT = ["fit", "fit_batch", "positive", "interval", "unit_interval", "simplex", "real",
            "positive_definite", "Status", "FitResult"]
RESULT_FIELDS = ["params", "loglik", "converged", "status", "n_steps", "trace", "stderr", "cov",
                 "param_names", "summary", "restarts"]


def normal_loglik(p, x):
    return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])


def test_public_names():
    for name in CONTRACT:
        assert hasattr(mj, name), name
    for name in mj.__all__:
        assert hasattr(mj, name), name


def test_result_fields_and_pytree():
    x = jnp.linspace(-1.0, 2.0, 30)
    res = mj.fit(normal_loglik, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive})
    for name in RESULT_FIELDS:
        assert hasattr(res, name), name
    assert res.param_names == ("mu", "sigma")
    leaves = jax.tree_util.tree_leaves(res)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    doubled = jax.tree_util.tree_map(lambda a: a, res)
    assert float(doubled.loglik) == float(res.loglik)
    text = res.summary()
    for word in ("mu", "sigma", "CONVERGED", "log-likelihood", "std err", "AIC", "BIC"):
        assert word in text
    # The trace starts at the initial value, rises, and is NaN past the last step.
    trace = np.asarray(res.trace)
    steps = int(res.n_steps)
    assert np.all(np.diff(trace[: steps + 1]) >= -1e-12 * np.abs(trace[steps]))
    assert np.all(np.isnan(trace[steps + 1:]))


def test_failed_fit_says_so():
    x = jnp.linspace(-1.0, 2.0, 30)
    with pytest.warns(mj.FitWarning, match="did not converge"):
        res = mj.fit(normal_loglik, {"mu": 50.0, "sigma": 1.0}, x,
                     constraints={"sigma": mj.positive}, max_steps=2)
    assert int(res.status) == mj.Status.MAX_STEPS
    assert not bool(res.converged)
    assert "did NOT converge" in res.summary()
    assert "max_steps" in res.message


def test_import_leaves_x64_alone():
    code = ("import jax; import mlejax; "
            "assert not jax.config.jax_enable_x64, 'mlejax enabled x64'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_small_single_fits_compile_with_the_quick_options():
    """A single fit on under 1 MB of data on CPU compiles with XLA's classic emitters (its
    latency is the compile); restarts, batches and large data keep XLA's default."""
    from mlejax import _configure, _kernels as K

    def cfg_of(data, **kw):
        opts = dict(constraints=None, weights=None, method="newton", optimizer=None,
                    batch_size=None, max_steps=None, gtol=None, ftol=None, restarts=None,
                    key=None, restart_scale=1.0, trace_len=None, batched=False,
                    init_batched=False)
        opts.update(kw)
        return _configure.configure(lambda p, x: -0.5 * (x - p["mu"]) ** 2, {"mu": 0.0}, data, **opts)[0]

    small, large = jnp.zeros(1000), jnp.zeros(300_000)
    if jax.default_backend() == "cpu" and not K.QUICK_COMPILE_UNKNOWN:
        # (an older XLA that does not know the options: a fit found out and dropped them)
        assert K.compile_options(cfg_of(small), small, None) == K.QUICK_COMPILE
    assert K.compile_options(cfg_of(large), large, None) is None
    assert K.compile_options(cfg_of(small, restarts=4, key=jax.random.key(0)), small,
                              None) is None
    res = mj.fit(lambda p, x: -0.5 * (x - p["mu"]) ** 2, {"mu": 0.0}, small + 2.0)
    assert res.converged and float(res.params["mu"]) == pytest.approx(2.0)
    if K.QUICK_COMPILE_UNKNOWN:   # the fit above compiled without them, and says so
        assert K.compile_options(cfg_of(small), small, None) is None
