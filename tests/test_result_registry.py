"""FitResult's conveniences computed above it (inference, optima) are found through the
registry in mlejax.result (issue 21: result.py imports nothing above it)."""

import jax.numpy as jnp
import pytest

import mlejax as mj
from mlejax import result

X = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])


def test_import_mlejax_registers_every_convenience():
    assert set(result._PROVIDED) == set(result.PROVIDED_BY)
    assert result._PROVIDED["confint"] is mj.confint
    assert result._PROVIDED["robust_cov"] is mj.robust_cov
    assert result._PROVIDED["optima"] is mj.optima.find


def test_provide_refuses_an_unknown_name_or_a_non_function():
    with pytest.raises(ValueError, match="not a FitResult convenience"):
        result.provide("confidence", mj.confint)
    with pytest.raises(ValueError, match="needs a function"):
        result.provide("confint", 3)


def test_a_missing_provider_says_which_module_to_import(monkeypatch):
    res = mj.fit_distribution(X, "normal")
    monkeypatch.setattr(result, "_PROVIDED", {})
    with pytest.raises(RuntimeError, match="mlejax.inference"):
        res.confint()
    with pytest.raises(RuntimeError, match="mlejax.optima"):
        res.optima


def test_the_conveniences_call_the_registered_functions():
    res = mj.fit_distribution(X, "normal")
    ci = res.confint(0.9)
    assert jnp.allclose(jnp.asarray(ci.lower), jnp.asarray(mj.confint(res, 0.9).lower))
    assert jnp.allclose(res.cov_robust, mj.robust_cov(res))
    assert jnp.allclose(res.stderr_robust["mu"], mj.inference.robust_stderr(res)["mu"])
    assert float(res.delta(lambda p: p["mu"]).estimate) == pytest.approx(float(X.mean()), 1e-6)
    assert "robust (sandwich, HC0)" in res.summary(cov="robust")
