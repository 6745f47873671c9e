"""The pieces of the GLM families that are not a model: links, the numerically stable
log-probabilities of the binomial links, the densities that ``jax.scipy`` lacks (inverse
Gaussian, Tweedie's compound Poisson-gamma) and a feasible start for links whose linear
predictor is restricted.

A :class:`Link` maps the linear predictor ``eta`` to the mean ``mu`` and gives
``log |dmu/deta|`` (the expected information's weight ``(dmu/deta)^2 / Var(y)`` is built from
it); ``domain`` says where ``eta`` must lie (``"real"``, ``"positive"``: ``mu = 1 / eta``,
``eta``, ``eta^-1/2`` for positive responses; ``"negative"``: the binomial log link,
``mu = exp(eta) < 1``). A :class:`BinomialLink` adds ``log mu`` and ``log(1 - mu)`` computed
without cancellation, so the binomial log-likelihood stays finite and accurate far in the
tails (``-softplus``, ``log_ndtr``, ``log(1 - exp(-t))``, ``arctan2``).

Tweedie (``1 < p < 2``) has no closed-form density: :func:`tweedie_logpdf` sums the series
``W(y, phi, p) = sum_j W_j`` of Dunn & Smyth (2005) over a window of ``TWEEDIE_TERMS`` terms
around its largest term ``j_max = y^(2-p) / ((2-p) phi)``: ``log W_j`` is concave in ``j``
with curvature ``-1 / ((p-1) j)``, so the terms beyond ``10 sd + 15`` of ``j_max``
(``sd = sqrt((p-1) j_max)``) are below ``exp(-50)`` of the largest and are left out. When that
window is wider than ``TWEEDIE_TERMS`` (``j_max`` in the hundreds or more) it is sampled with
a stride ``s`` and the sum is ``s`` times the sampled one: the terms are a smooth, Gaussian-like
function of ``j`` whose standard deviation is at least 11 strides there, so the two sums
differ by about ``exp(-2 pi^2 (sd / s)^2)`` relative (Poisson summation), far below rounding.
``y = 0`` is the exact point mass ``exp(-mu^(2-p) / (phi (2-p)))``.

References:
  McCullagh & Nelder, Generalized Linear Models (1989), ch. 2, 4, 8; Dunn & Smyth (2005),
  Series evaluation of Tweedie exponential dispersion model densities, Statistics and
  Computing 15, 267-280.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp
from jax.scipy import stats as jst

from mlejax._models.common import in_datasets, wls

__all__ = ["Link", "BinomialLink", "LINKS", "BINOMIAL_LINKS", "log1mexp", "tweedie_logpdf",
           "inverse_gaussian_logpdf", "gamma_logpdf", "feasible_start", "irls_start",
           "TWEEDIE_TERMS", "linear_predictor", "var_weights_of", "gamma_loglik_fn",
           "binomial_loglik_fn", "inverse_gaussian_loglik_fn", "tweedie_loglik",
           "check_binomial_counts", "xtwx", "link_weight"]

_LOG_PI = math.log(math.pi)
_LOG2 = math.log(2.0)


def log1mexp(t):
    """``log(1 - exp(-t))`` for ``t > 0``, accurate at both ends (Maechler 2012)."""
    small = t < _LOG2
    ts = jnp.where(t > 0, t, 1.0)
    return jnp.where(small, jnp.log(-jnp.expm1(-ts)), jnp.log1p(-jnp.exp(-ts)))


@dataclasses.dataclass(frozen=True)
class Link:
    """A link: ``mu = inverse(eta)``, ``eta = link(mu)``, ``log |dmu/deta|`` as a function of
    ``eta``, and the ``domain`` of ``eta`` (``"real"``, ``"positive"`` or ``"negative"``)."""

    name: str
    inverse: Callable
    link: Callable
    log_dmu: Callable
    domain: str = "real"

    def valid(self, eta):
        if self.domain == "positive":
            return eta > 0
        if self.domain == "negative":
            return eta < 0
        return jnp.isfinite(eta)

    def safe(self, eta):
        """``eta`` where valid, an interior placeholder elsewhere (the double-``where``
        trick: the log-likelihood's gradient stays finite where it is set to -inf)."""
        if self.domain == "real":
            return eta
        return jnp.where(self.valid(eta), eta, 1.0 if self.domain == "positive" else -1.0)


# Links of the positive responses (Gamma, inverse Gaussian, Tweedie).
LINKS = {
    "log": Link("log", jnp.exp, jnp.log, lambda e: e),
    "identity": Link("identity", lambda e: e, lambda m: m, jnp.zeros_like, "positive"),
    "inverse": Link("inverse", lambda e: 1.0 / e, lambda m: 1.0 / m,
                    lambda e: -2.0 * jnp.log(e), "positive"),
    "inverse_squared": Link("inverse_squared", lambda e: 1.0 / jnp.sqrt(e),
                            lambda m: 1.0 / (m * m),
                            lambda e: -_LOG2 - 1.5 * jnp.log(e), "positive"),
}


@dataclasses.dataclass(frozen=True)
class BinomialLink(Link):
    """A link of the binomial probability with ``log_probs(eta) = (log mu, log(1 - mu))``
    computed without cancellation."""

    log_probs: Callable = None   # type: ignore[assignment]


def _logit_probs(eta):
    return -jax.nn.softplus(-eta), -jax.nn.softplus(eta)


def _probit_probs(eta):
    return jsp.log_ndtr(eta), jsp.log_ndtr(-eta)


def _cloglog_probs(eta):
    # mu = 1 - exp(-exp(eta)): log(1 - mu) = -exp(eta) exactly; log mu = log1mexp(exp(eta)),
    # which is eta - exp(eta) / 2 to rounding once exp(eta) < 1e-8 (and never underflows).
    t = jnp.exp(eta)
    tiny = eta < -18.0
    return jnp.where(tiny, eta - 0.5 * t, log1mexp(jnp.where(tiny, 1.0, t))), -t


def _log_probs(eta):
    # mu = exp(eta), eta < 0: log(1 - mu) = log1mexp(-eta).
    es = jnp.where(eta < 0, eta, -1.0)
    return eta, jnp.where(eta < 0, log1mexp(-es), -jnp.inf)


def _cauchit_probs(eta):
    # mu = 1/2 + atan(eta)/pi = atan2(1, -eta)/pi, and 1 - mu = atan2(1, eta)/pi: no
    # cancellation in either tail.
    return (jnp.log(jnp.arctan2(1.0, -eta)) - _LOG_PI,
            jnp.log(jnp.arctan2(1.0, eta)) - _LOG_PI)


def _probs_link(log_probs):
    return lambda e: jnp.exp(log_probs(e)[0])


BINOMIAL_LINKS = {
    "logit": BinomialLink("logit", jax.nn.sigmoid, jsp.logit,
                          lambda e: -jax.nn.softplus(-e) - jax.nn.softplus(e),
                          log_probs=_logit_probs),
    "probit": BinomialLink("probit", jsp.ndtr, jsp.ndtri, jst.norm.logpdf,
                           log_probs=_probit_probs),
    "cloglog": BinomialLink("cloglog", _probs_link(_cloglog_probs),
                            lambda m: jnp.log(-jnp.log1p(-m)), lambda e: e - jnp.exp(e),
                            log_probs=_cloglog_probs),
    "log": BinomialLink("log", jnp.exp, jnp.log, lambda e: e, "negative",
                        log_probs=_log_probs),
    "cauchit": BinomialLink("cauchit", _probs_link(_cauchit_probs),
                            lambda m: jnp.tan(math.pi * (m - 0.5)),
                            lambda e: -_LOG_PI - jnp.log1p(e * e), log_probs=_cauchit_probs),
}


# ------------------------------------------------------------------------ densities


def gamma_logpdf(y, mu, shape):
    """Gamma log-density with mean ``mu`` and shape ``shape`` (variance ``mu^2 / shape``)."""
    return (shape * jnp.log(shape / mu) + (shape - 1.0) * jnp.log(y) - shape * y / mu
            - jsp.gammaln(shape))


def inverse_gaussian_logpdf(y, mu, phi):
    """Inverse Gaussian log-density with mean ``mu`` and dispersion ``phi`` (variance
    ``phi mu^3``): statsmodels' ``InverseGaussian.loglike_obs`` with ``scale = phi``."""
    r = y - mu
    return -0.5 * (r * r / (phi * y * mu * mu) + jnp.log(2.0 * math.pi * phi * y ** 3))


#: The number of terms of the Tweedie series evaluated per observation (static).
TWEEDIE_TERMS = 256


def tweedie_logpdf(y, mu, phi, p, terms: int = TWEEDIE_TERMS):
    """Tweedie log-density (``1 < p < 2``, mean ``mu``, dispersion ``phi``: variance
    ``phi mu^p``), by the series of Dunn & Smyth (2005); exact point mass at ``y = 0``.

    ``log f = log W - log y + (y mu^(1-p) / (1-p) - mu^(2-p) / (2-p)) / phi`` with
    ``W = sum_{j>=1} z^j / (j! Gamma(-j alpha))``, ``alpha = (2-p)/(1-p)`` and
    ``z = (p-1)^alpha / ((2-p) y^alpha phi^(1-alpha))`` (see the module docstring for the
    window of terms). ``log W``'s window is chosen without gradient (it is piecewise
    constant); the derivatives are those of the sum.
    """
    pos = y > 0
    ys = jnp.where(pos, y, 1.0)
    p = jnp.broadcast_to(p, jnp.shape(ys))    # a per-row copy under obs_chunk
    alpha = (2.0 - p) / (1.0 - p)
    logz = (-alpha * jnp.log(ys) + alpha * jnp.log(p - 1.0) - (1.0 - alpha) * jnp.log(phi)
            - jnp.log(2.0 - p))
    # The window (no gradient): centre j_max, half-width 10 sd + 15, stride so that
    # `terms` samples cover it.
    jmax = jax.lax.stop_gradient(jnp.exp((2.0 - p) * jnp.log(ys) - jnp.log((2.0 - p) * phi)))
    sd = jnp.sqrt((p - 1.0) * jmax)
    half = 10.0 * sd + 15.0
    stride = jnp.maximum(1.0, jnp.ceil((2.0 * half + 1.0) / terms))
    lo = jnp.maximum(1.0, jnp.floor(jmax - 0.5 * stride * (terms - 1)))
    j = lo[..., None] + stride[..., None] * jnp.arange(terms, dtype=jnp.result_type(y))
    logw = (j * logz[..., None] - jsp.gammaln(j + 1.0) - jsp.gammaln(-alpha[..., None] * j))
    log_w = jax.nn.logsumexp(logw, axis=-1) + jnp.log(stride)
    mu1 = mu ** (1.0 - p)
    mu2 = mu ** (2.0 - p)
    dens = log_w - jnp.log(ys) + (ys * mu1 / (1.0 - p) - mu2 / (2.0 - p)) / phi
    return jnp.where(pos, dens, -mu2 / ((2.0 - p) * phi))


# ------------------------------------------------------------------------ log-likelihoods
# One function object per link (cached), so same-shaped fits reuse one compiled program.


def linear_predictor(params, data):
    """``eta = X beta + offset``."""
    return data["X"] @ params["beta"] + data["offset"]


def var_weights_of(data):
    """statsmodels GLM's ``var_weights`` (observation ``i`` has dispersion ``phi / v_i``),
    1 when not given."""
    return data.get("var_weights", 1.0)


def _mean_of(link, eta):
    """The mean, and whether ``eta`` is inside the link's domain (the log-likelihood is -inf
    outside; the mean there is computed at a placeholder so the gradient stays finite)."""
    return link.inverse(link.safe(eta)), link.valid(eta)


@functools.cache
def gamma_loglik_fn(link: str):
    """The Gamma log-likelihood with ``link`` (one function object per link)."""
    lk = LINKS[link]

    def gamma_loglik(params, data):
        mu, ok = _mean_of(lk, linear_predictor(params, data))
        ll = gamma_logpdf(data["y"], mu, params["shape"] * var_weights_of(data))
        return jnp.where(ok, ll, -jnp.inf)

    return gamma_loglik


@functools.cache
def binomial_loglik_fn(link: str):
    """The binomial log-likelihood (with the binomial coefficient) with ``link``."""
    lk = BINOMIAL_LINKS[link]

    def binomial_loglik(params, data):
        eta = linear_predictor(params, data)
        ok = lk.valid(eta)
        log_p, log_q = lk.log_probs(lk.safe(eta))
        y, n = data["y"], data["trials"]
        ll = (jsp.gammaln(n + 1.0) - jsp.gammaln(y + 1.0) - jsp.gammaln(n - y + 1.0)
              + y * log_p + (n - y) * log_q)
        return jnp.where(ok, ll * var_weights_of(data), -jnp.inf)

    return binomial_loglik


@functools.cache
def inverse_gaussian_loglik_fn(link: str):
    """The inverse Gaussian log-likelihood with ``link``."""
    lk = LINKS[link]

    def inverse_gaussian_loglik(params, data):
        mu, ok = _mean_of(lk, linear_predictor(params, data))
        ll = inverse_gaussian_logpdf(data["y"], mu, params["phi"] / var_weights_of(data))
        return jnp.where(ok, ll, -jnp.inf)

    return inverse_gaussian_loglik


def tweedie_loglik(params, data):
    mu = jnp.exp(linear_predictor(params, data))
    return tweedie_logpdf(data["y"], mu, params["phi"] / var_weights_of(data), data["power"])


def xtwx(X, W):
    """``X' diag(W) X``: the coefficients' expected information with GLM weights ``W``."""
    return (X * W[:, None]).T @ X


def link_weight(link: Link, eta):
    """``(dmu/deta)^2`` from the link's ``log |dmu/deta|``."""
    return jnp.exp(2.0 * link.log_dmu(link.safe(eta)))


# ------------------------------------------------------------------------ checks


def check_binomial_counts(y, trials, inside, batched: bool, name: str) -> np.ndarray:
    """Host checks of binomial data ``y`` successes out of ``trials`` (``(K, n)``, rows
    with ``inside`` counted): positive integer trials, integer successes ``0 <= y <= trials``
    (proportions are refused with the way to pass them), and both outcomes present. Returns
    per dataset whether every observation is all-or-nothing (``y`` 0 or ``trials``)."""
    if not np.all(np.isfinite(trials)):
        raise ValueError("trials contains NaN or infinite values.")
    bad = inside & ~((trials >= 1) & (np.floor(trials) == trials))
    if np.any(bad):
        raise ValueError(f"trials must be positive integers; got values such as "
                         f"{np.unique(trials[bad])[:5].tolist()}"
                         f"{in_datasets(bad.any(1), batched)} "
                         "(give a row weight 0 to leave it out).")
    bad = inside & ~((y >= 0) & (np.floor(y) == y))
    if np.any(bad):
        hint = (" They look like proportions: pass the counts y = proportion * trials "
                "with trials=." if np.all((y[inside] >= 0) & (y[inside] <= 1)) else "")
        raise ValueError(f"y must hold the numbers of successes (non-negative integers) "
                         f"for {name}; got values such as {np.unique(y[bad])[:5].tolist()}"
                         f"{in_datasets(bad.any(1), batched)}.{hint}")
    bad = inside & (y > trials)
    if np.any(bad):
        k = np.argwhere(bad)[0]
        raise ValueError(f"successes exceed trials: y = {y[tuple(k)]:g} > trials = "
                         f"{trials[tuple(k)]:g} at observation {k[-1]}"
                         f"{in_datasets(bad.any(1), batched)} (trials defaults to 1, Bernoulli; "
                         "pass trials= for counts out of several trials).")
    for what, at in (("0 successes", y == 0), ("all successes", y == trials)):
        same = np.all(np.where(inside, at, True), axis=1)
        if np.any(same):
            raise ValueError(f"every observation has {what}{in_datasets(same, batched)}: the "
                             f"intercept's MLE is infinite and {name} has no MLE.")
    return np.all(np.where(inside, (y == 0) | (y == trials), True), axis=1)


# ------------------------------------------------------------------------ starts


def feasible_start(X, beta, offset, w, domain: str, margin):
    """``beta`` moved so that ``eta = X beta + offset`` is inside ``domain`` on the rows with
    ``w > 0``: shifted along the intercept direction ``c`` (``X c = 1``) by the least amount
    that leaves ``margin`` (``eta >= margin`` for ``"positive"``, ``<= -margin`` for
    ``"negative"``); without a constant in the column space, ``beta`` scaled towards 0 (so
    ``eta`` towards ``offset``) by the largest power of 1/2 that is inside. Pure JAX.
    """
    if domain == "real":
        return beta
    sign = 1.0 if domain == "positive" else -1.0
    inside = w > 0
    eta = X @ beta + offset
    worst = jnp.min(jnp.where(inside, sign * eta, jnp.inf))      # needs worst >= margin
    ones = jnp.ones(X.shape[0], X.dtype)
    c = jnp.linalg.lstsq(X, ones)[0]
    has_const = jnp.max(jnp.abs(X @ c - 1.0)) < 1e-6
    delta = jnp.maximum(0.0, margin - worst)
    shifted = beta + sign * delta * c
    scales = 0.5 ** jnp.arange(12, dtype=X.dtype)
    ok = jax.vmap(lambda t: jnp.all(~inside | (sign * (t * (X @ beta) + offset) >= margin)))(
        scales)
    t = jnp.where(jnp.any(ok), scales[jnp.argmax(ok)], 0.0)
    return jnp.where(has_const, shifted, t * beta)


def irls_start(X, y, offset, w, link: Link, mu0, var0):
    """One iteratively reweighted least-squares step from the means ``mu0`` (variances
    ``var0``): the weighted least-squares fit of the working response
    ``g(mu0) + (y - mu0) / (dmu/deta) - offset`` with weights ``w (dmu/deta)^2 / var0``."""
    eta0 = link.link(mu0)
    _, dmu = jax.jvp(link.inverse, (eta0,), (jnp.ones_like(eta0),))
    return wls(X, eta0 + (y - mu0) / dmu - offset, w * dmu * dmu / var0)
