"""The quasi-Newton line search (one trial point per loop step) on cases with known answers.

References are closed forms: the maximiser of each objective is known exactly. The cases
exercise the three ways a trial can go: a non-finite value (backtrack), a step far too short
(extrapolate), and an objective with no zero gradient at its maximum (a kink), where no step
can satisfy the line search and the fit must not report convergence.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj

METHODS = ["bfgs", "lbfgs"]


@pytest.mark.parametrize("method", METHODS)
def test_backtracks_from_a_non_finite_trial(method):
    # log(1 - t^2) + 2 t: finite only on |t| < 1; maximum where -2t / (1 - t^2) + 2 = 0,
    # t = (sqrt(5) - 1) / 2. From t = -0.5 the gradient is large and the first trial
    # (length 1) lands outside the domain.
    def loglik(p, _):
        t = p["t"]
        return jnp.log(1.0 - t * t) + 2.0 * t

    res = mj.fit(loglik, {"t": -0.5}, None, method=method)
    assert bool(res.converged), res.message
    np.testing.assert_allclose(float(res.params["t"]), (np.sqrt(5.0) - 1.0) / 2.0, rtol=1e-9)
    trace = np.asarray(res.trace)
    trace = trace[np.isfinite(trace)]
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[:-1]))   # never decreases


@pytest.mark.parametrize("method", METHODS)
def test_extrapolates_when_the_first_step_is_far_too_short(method):
    # -(t - 1000)^2 / 2e6 from t = 0: the first trial moves t by at most 1.
    def loglik(p, _):
        return -((p["t"] - 1000.0) ** 2) / 2e6

    res = mj.fit(loglik, {"t": 0.0}, None, method=method)
    assert bool(res.converged), res.message
    np.testing.assert_allclose(float(res.params["t"]), 1000.0, rtol=1e-8)
    assert int(res.n_steps) < 60


def test_a_kink_at_the_maximum_is_not_reported_converged():
    # -|t - 1|: the maximum is at t = 1, where the gradient is +-1, never zero.
    def loglik(p, _):
        return -jnp.abs(p["t"] - 1.0)

    res = mj.fit(loglik, {"t": 0.3}, None, method="bfgs", warn=False)
    assert not bool(res.converged)
    assert int(res.status) == int(mj.Status.LINESEARCH_FAILED), res.message
    np.testing.assert_allclose(float(res.params["t"]), 1.0, atol=1e-6)
