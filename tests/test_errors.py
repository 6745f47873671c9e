"""Bad inputs raise ValueError naming the problem; degenerate fits report, not crash."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj
from mlejax import _validate
from conftest import N_NORMAL, assert_rel, normal_ll

_rng = np.random.default_rng(0)
X = _rng.normal(1.0, 2.0, size=N_NORMAL)
CONS = {"sigma": mj.positive}


def _init(mu=0.0, sigma=1.0):
    return {"mu": jnp.asarray(mu), "sigma": jnp.asarray(sigma)}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_data(bad):
    x = X.copy()
    x[3] = bad
    with pytest.raises(ValueError, match=r"(?i)nan|inf|finite"):
        mj.fit(normal_ll, _init(), jnp.asarray(x), constraints=CONS)


def test_nonfinite_data_in_a_nested_leaf():
    def ll(params, data):
        return normal_ll(params, data["x"]) * data["w"]

    data = {"x": jnp.asarray(X), "w": jnp.asarray(np.where(np.arange(X.size) == 5, np.nan, 1.0))}
    with pytest.raises(ValueError, match=r"(?i)nan|inf|finite"):
        mj.fit(ll, _init(), data, constraints=CONS)


def test_nonfinite_data_in_a_large_device_array():
    """Arrays over 1 MB are checked on their device: still an error that names the leaf."""
    x = jnp.asarray(np.concatenate([X, np.full(200_000, 1.0)]))   # 1.6 MB
    _validate.check_data_finite({"x": x})                          # finite: passes
    bad = {"x": x.at[200_003].set(np.nan)}
    with pytest.raises(ValueError, match=r"data\['x'\] contains 1 NaN"):
        _validate.check_data_finite(bad)


def test_init_outside_constraint():
    with pytest.raises(ValueError, match=r"(?i)sigma"):
        mj.fit(normal_ll, _init(sigma=-1.0), jnp.asarray(X), constraints=CONS)


def test_init_outside_interval():
    with pytest.raises(ValueError, match=r"(?i)mu"):
        mj.fit(normal_ll, _init(mu=5.0), jnp.asarray(X),
               constraints={"mu": mj.interval(-1.0, 1.0), "sigma": mj.positive})


def test_constraint_key_not_in_init():
    with pytest.raises(ValueError, match=r"(?i)tau"):
        mj.fit(normal_ll, _init(), jnp.asarray(X), constraints={"tau": mj.positive})


def test_constraint_leaf_not_a_constraint():
    with pytest.raises(ValueError, match=r"(?i)sigma|constraint"):
        mj.fit(normal_ll, _init(), jnp.asarray(X), constraints={"sigma": "positive"})


def int_ll(params, x):
    return jnp.sum(x > params["mu"]).astype(jnp.int32)


def test_loglik_returns_int():
    with pytest.raises(ValueError, match=r"(?i)float|dtype|int"):
        mj.fit(int_ll, _init(), jnp.asarray(X), constraints=CONS)


def wide_ll(params, x):
    ll = normal_ll(params, x)
    return jnp.stack([ll, ll], axis=1)  # (n, 2)


def test_loglik_wrong_shape():
    with pytest.raises(ValueError, match=r"(?i)shape"):
        mj.fit(wide_ll, _init(), jnp.asarray(X), constraints=CONS)


def wrong_length_ll(params, x):
    return normal_ll(params, x)[:-1]  # (n - 1,): does not match the weights


def test_loglik_length_does_not_match_weights():
    with pytest.raises(ValueError, match=r"(?i)shape|length|weights"):
        mj.fit(wrong_length_ll, _init(), jnp.asarray(X), constraints=CONS,
               weights=jnp.ones(X.size))


def log_mu_ll(params, x):
    return x * jnp.log(params["mu"]) - params["mu"]


def test_loglik_not_finite_at_start():
    # real-valued mu started at -1: log(-1) = NaN at the starting point
    with pytest.raises(ValueError, match=r"(?i)finite|nan|inf|start|init"):
        mj.fit(log_mu_ll, {"mu": jnp.asarray(-1.0)}, jnp.asarray(np.abs(X)))


def test_loglik_not_finite_at_start_on_large_data(monkeypatch):
    """Over 1 MB of data the check reads the solver's first evaluation (no pass of its own):
    the same error, raised before the loop's program runs; a finite start fits as before."""
    from mlejax import _kernels

    x = jnp.asarray(np.abs(np.concatenate([X, np.full(200_000, 1.0)])))   # 1.6 MB
    loops = []
    kernels = _kernels.checked_start_kernels

    def spy(cfg):
        init, rest = kernels(cfg)
        return init, lambda *a: loops.append(1) or rest(*a)

    monkeypatch.setattr(_kernels, "checked_start_kernels", spy)
    with pytest.raises(ValueError, match="not finite at init"):
        mj.fit(log_mu_ll, {"mu": jnp.asarray(-1.0)}, x)
    assert loops == []
    res = mj.fit(log_mu_ll, {"mu": jnp.asarray(0.5)}, x)   # Poisson-like: mu-hat = mean
    assert loops == [1] and res.converged
    assert_rel(res.params["mu"], np.mean(np.asarray(x)), 1e-6)


def test_fit_batch_inconsistent_leading_sizes():
    def ll(params, data):
        return normal_ll(params, data["x"]) + 0.0 * jnp.sum(data["y"])

    data = {"x": jnp.asarray(np.ones((5, 10))), "y": jnp.asarray(np.ones((4, 10)))}
    with pytest.raises(ValueError, match=r"(?i)leading|axis|size|batch"):
        mj.fit_batch(ll, _init(), data, constraints=CONS)


def test_unknown_method():
    with pytest.raises(ValueError, match=r"newtonn"):
        mj.fit(normal_ll, _init(), jnp.asarray(X), constraints=CONS, method="newtonn")


# ---- singular Hessian ---------------------------------------------------------------


def sum_ll(params, x):
    # a and b enter only as a + b: not identified separately
    return -0.5 * (x - params["a"] - params["b"]) ** 2


def test_singular_hessian_reports_nan_stderr_and_warns():
    with pytest.warns(Warning, match=r"(?i)singular|hessian|identif"):
        res = mj.fit(sum_ll, {"a": jnp.asarray(0.0), "b": jnp.asarray(0.0)}, jnp.asarray(X))
    assert int(res.status) == int(mj.Status.SINGULAR_HESSIAN), res.message
    assert not bool(res.converged)
    assert np.isnan(float(res.stderr["a"])) and np.isnan(float(res.stderr["b"]))
    # The fit still moved to the ridge of maxima: a + b = mean(x).
    assert_rel(res.params["a"] + res.params["b"], X.mean(), 1e-8, "a + b on the ridge")


# ---- x64 -----------------------------------------------------------------------------


def test_import_does_not_enable_x64():
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    code = (
        "import jax, mlejax\n"
        "import mlejax as mj\n"
        "import jax.numpy as jnp\n"
        "r = mj.fit(lambda p, x: -0.5 * (x - p['mu']) ** 2, {'mu': 0.0}, jnp.arange(3.0))\n"
        "print(jax.config.jax_enable_x64, r.params['mu'].dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "float32"], out.stdout
