"""NIST StRD nonlinear regression: the Gaussian MLE of b must match the certified values.

For y = f(x; b) + e with e ~ N(0, sigma^2), the MLE of b is the least-squares solution
that NIST certifies, and the MLE of sigma^2 is RSS/n. Every one of the 27 problems is
fitted with method="newton" from both NIST starts; each b_j must reach a log relative
error LRE = -log10(|est - cert| / |cert|) >= 6 and the fit must report convergence.
Where a model has an exact symmetry (interchangeable exponential or Gaussian terms in
Lanczos1-3, Gauss1-3 and MGH17; a joint sign change in Eckerle4), the LRE is taken against
the certified values or their symmetric image, whichever is closer: both are the same fitted
curve and the same maximum of the likelihood (nist_problems.SYMMETRIES).

Data: ``<repo>/data/nist-strd``, inside the repository (see benchmarks/nist_problems.py).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.scipy.stats import norm  # noqa: E402

import mlejax as mj  # noqa: E402

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(_BENCH) not in sys.path:
    sys.path.insert(0, str(_BENCH))

import nist_problems as nist  # noqa: E402

MIN_LRE = 6.0
# MGH10 from its far start needs about 2,500 trust-region steps, Bennett5 about 450 and 950
# from its two starts, MGH17 about 2,000 from its far start (measured 2026-12-05: 2,481, 448,
# 934, 2,025): above the default limit of 500, so the test still sets its own limit (issue
# 20 item 2, 54/54 at the defaults, is open: benchmarks/RESULTS.md, "Issue 20: NIST").
# MINPACK's Levenberg-Marquardt needs 296, 765, 213 and 601 evaluations there.
MAX_STEPS = 3000



@lru_cache(maxsize=None)
def _loglik_for(f):
    """One log-likelihood function object per model function: both starts of a problem, and
    problems sharing a model and n (Lanczos1-3, Gauss1-3), reuse one compiled program."""

    def loglik(params, data):
        return norm.logpdf(data["y"], f(params["b"], data["x"]), params["sigma"])

    return loglik


def _loglik(name: str):
    return _loglik_for(nist.MODELS[name])


def _init(prob: nist.Problem, start: np.ndarray) -> dict:
    rss0 = prob.rss(start)
    sigma0 = np.sqrt(rss0 / prob.n) if np.isfinite(rss0) and rss0 > 0 else 1.0
    return {
        "b": jnp.asarray(start, dtype=jnp.float64),
        "sigma": jnp.asarray(sigma0, dtype=jnp.float64),
    }


def _fit(prob: nist.Problem, which: int):
    start = prob.start1 if which == 1 else prob.start2
    data = {"x": jnp.asarray(prob.x), "y": jnp.asarray(prob.y)}
    kwargs = {} if MAX_STEPS is None else {"max_steps": MAX_STEPS}
    return mj.fit(
        _loglik(prob.name),
        _init(prob, start),
        data,
        constraints={"sigma": mj.positive},
        method="newton",
        **kwargs,
    )


def _cases():
    for name in nist.PROBLEMS:
        for start in (1, 2):
            yield pytest.param(name, start, id=f"{name}-start{start}")


@pytest.mark.parametrize("name, start", list(_cases()))
def test_nist_newton(name, start):
    prob = nist.load(name)
    res = _fit(prob, start)

    b = np.asarray(res.params["b"], dtype=np.float64)
    sigma = float(res.params["sigma"])
    lre, relabelled = nist.lre_modulo_symmetry(prob, b)
    detail = (
        f"{name} start{start}: status={int(res.status)} ({res.message}) "
        f"n_steps={int(res.n_steps)} loglik={float(res.loglik):.10g}\n"
        f"  b     = {np.array2string(b, precision=10)}\n"
        f"  cert  = {np.array2string(prob.cert, precision=10)}\n"
        f"  LRE   = {np.array2string(lre, precision=2)}"
        f"{' (against a relabelling of cert)' if relabelled else ''}\n"
        f"  RSS   = {prob.rss(b):.10e} (certified {prob.cert_rss:.10e}), sigma = {sigma:.6e}"
    )
    assert res.params["b"].dtype == jnp.float64, detail
    assert bool(res.converged), detail
    assert np.all(lre >= MIN_LRE), detail

    # The MLE of sigma^2 is RSS(b_hat)/n (profile score in sigma is zero).
    # Lanczos1's residuals (rms ~8e-14 on y ~ 1) carry ~1e-2 relative rounding noise, so its
    # RSS, and sigma^2 = RSS/n, are only reproducible to a few digits (NIST README).
    rss_hat = prob.rss(b)
    rtol = 1e-2 if name == "Lanczos1" else 1e-6
    np.testing.assert_allclose(sigma**2, rss_hat / prob.n, rtol=rtol, err_msg=detail)
    if name != "Lanczos1":  # certified RSS ~1.4e-25 is below double-precision rounding
        np.testing.assert_allclose(rss_hat, prob.cert_rss, rtol=1e-6, err_msg=detail)


def test_a_fit_stopped_at_the_default_limit_says_so():
    """At the default max_steps (500) newton does not finish MGH10 from its far start (issue
    20 item 2: it needs ~2,400 steps): the fit reports MAX_STEPS, not convergence, in its
    status and its summary, and the message names the remedies, Levenberg-Marquardt among
    them (mj.models.Nonlinear, which solves it:
    test_models.py::test_nonlinear_reproduces_nist)."""
    prob = nist.load("MGH10")
    res = mj.fit(_loglik("MGH10"), _init(prob, prob.start1),
                 {"x": jnp.asarray(prob.x), "y": jnp.asarray(prob.y)},
                 constraints={"sigma": mj.positive}, method="newton", warn=False)
    assert int(res.status) == int(mj.Status.MAX_STEPS) and not bool(res.converged)
    assert int(res.n_steps) == 500
    assert "max_steps" in res.message and "mj.models.Nonlinear" in res.message
    assert "not converged" in res.summary()
