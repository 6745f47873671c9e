"""The discrete families: Bernoulli, binomial, categorical, Poisson, geometric, negative
binomial (log-mass, starts and closed forms, samplers, support and boundary checks)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp

from mlejax import constraints as C
from mlejax._distributions.common import clip_pos, integers, wmean, wsum, wvar
from mlejax._distributions.family import Distribution, entry

_P = C.positive
_U = C.unit_interval


def _p_check(zero_all: str, one_all: str, family: str, param: str = "p"):
    def check(x, w, fixed, *, upper=None):
        if param in fixed:
            return []
        inside = w > 0
        all_zero = np.all(np.where(inside, x == 0, True), axis=1)
        hi = 1.0 if upper is None else upper
        all_top = np.all(np.where(inside, x == hi, True), axis=1)
        return [(all_zero, f"every value is {zero_all}, so the MLE of {param!r} is 0 (on the "
                           f"boundary) and the {family} fit does not exist"),
                (all_top, f"every value is {one_all}, so the MLE of {param!r} is 1 (on the "
                          f"boundary) and the {family} fit does not exist")]

    return check


def _none_check(x, w, fixed):
    del x, w, fixed
    return []


# --- Bernoulli
def _bernoulli_logpdf(p, x):
    return jsp.xlogy(x, p["p"]) + jsp.xlog1py(1.0 - x, -p["p"])


def _bernoulli_mle(x, w, fixed):
    del fixed
    return {"p": wmean(x, w)}


def _bernoulli_sample(key, p, shape):
    return jax.random.bernoulli(key, p["p"], shape).astype(jnp.result_type(p["p"]))


# --- binomial (known number of trials n, a scalar or one per observation)
def _binomial_logpdf(p, x):
    n = p["n"]
    return (jsp.gammaln(n + 1.0) - jsp.gammaln(x + 1.0) - jsp.gammaln(n - x + 1.0)
            + jsp.xlogy(x, p["p"]) + jsp.xlog1py(n - x, -p["p"]))


def _binomial_mle(x, w, fixed):
    n = jnp.broadcast_to(fixed["n"], x.shape)
    return {"n": fixed["n"], "p": wsum(w, x) / wsum(w, n)}


def _binomial_sample(key, p, shape):
    dtype = jnp.result_type(p["p"])
    return jax.random.binomial(key, p["n"], p["p"], shape, dtype=dtype)


def _binomial_degenerate(x, w, fixed):
    if "p" in fixed:
        return []
    n = np.broadcast_to(fixed["n"], x.shape)
    inside = w > 0
    return [(np.all(np.where(inside, x == 0, True), axis=1),
             "every count is 0, so the MLE of 'p' is 0 (on the boundary) and the binomial fit "
             "does not exist"),
            (np.all(np.where(inside, x == n, True), axis=1),
             "every count equals n, so the MLE of 'p' is 1 (on the boundary) and the binomial "
             "fit does not exist")]


# --- categorical (values 0..k-1; k from the data or n_categories=)
def _categorical_logpdf(p, x):
    return jnp.take(jnp.log(p["p"]), x.astype(jnp.int32), axis=-1)


def categorical_counts(x, w, k):
    onehot = (x[:, None] == jnp.arange(k, dtype=x.dtype)).astype(w.dtype)
    return jnp.sum(w[:, None] * onehot, axis=0)


def _categorical_sample(key, p, shape):
    return jax.random.categorical(key, jnp.log(p["p"]), shape=shape).astype(
        jnp.result_type(p["p"]))


# --- Poisson
def _poisson_logpdf(p, x):
    return jsp.xlogy(x, p["rate"]) - p["rate"] - jsp.gammaln(x + 1.0)


def _poisson_mle(x, w, fixed):
    del fixed
    return {"rate": wmean(x, w)}


def _poisson_sample(key, p, shape):
    dtype = jnp.result_type(p["rate"])
    return jax.random.poisson(key, p["rate"], shape).astype(dtype)


# --- geometric: trials up to and including the first success, support 1, 2, ...
def _geometric_logpdf(p, x):
    return jnp.log(p["p"]) + jsp.xlog1py(x - 1.0, -p["p"])


def _geometric_mle(x, w, fixed):
    del fixed
    return {"p": 1.0 / wmean(x, w)}


def _geometric_sample(key, p, shape):
    dtype = jnp.result_type(p["p"])
    return jax.random.geometric(key, p["p"], shape).astype(dtype)


def _geometric_degenerate(x, w, fixed):
    if "p" in fixed:
        return []
    return [(np.all(np.where(w > 0, x == 1, True), axis=1),
             "every value is 1 (a success at the first trial), so the MLE of 'p' is 1 (on the "
             "boundary) and the geometric fit does not exist")]


# --- negative binomial: mean mu, dispersion alpha, variance mu + alpha mu^2 (NB2)
def _negbin_logpdf(p, x):
    mu, alpha = p["mu"], p["alpha"]
    r = 1.0 / alpha
    return (jsp.gammaln(x + r) - jsp.gammaln(r) - jsp.gammaln(x + 1.0)
            - r * jnp.log1p(alpha * mu) + jsp.xlogy(x, alpha * mu) - x * jnp.log1p(alpha * mu))


def _negbin_moments(x, w, fixed):
    m = wmean(x, w)
    v = wvar(x, w, m)
    alpha = clip_pos((v - m) / m ** 2, 1e-2)
    return {"mu": m, "alpha": fixed.get("alpha", alpha)}


def _negbin_sample(key, p, shape):
    k1, k2 = jax.random.split(key)
    mu, alpha = p["mu"], p["alpha"]
    dtype = jnp.result_type(mu)
    lam = jax.random.gamma(k1, 1.0 / alpha, shape, dtype) * alpha * mu
    return jax.random.poisson(k2, lam, shape).astype(dtype)


def _negbin_degenerate(x, w, fixed):
    if "alpha" in fixed:
        return [(np.all(np.where(w > 0, x == 0, True), axis=1),
                 "every count is 0, so the MLE of 'mu' is 0 (on the boundary)")]
    sw = w.sum(1)
    m = (w * x).sum(1) / sw
    v = (w * (x - m[:, None]) ** 2).sum(1) / sw
    return [(v <= m, "the counts are not over-dispersed (variance <= mean), so the MLE of "
                     "'alpha' is 0 (the Poisson limit, on the boundary) and the negative "
                     "binomial fit does not exist; fit 'poisson' instead")]



def _nonneg_int(x, fixed):
    del fixed
    return (x >= 0) & integers(x)



def _bernoulli_support(x, fixed):
    del fixed
    return (x == 0) | (x == 1)


def _binomial_support(x, fixed):
    n = np.broadcast_to(fixed["n"], x.shape)
    return (x >= 0) & integers(x) & (x <= n)


def _geometric_support(x, fixed):
    del fixed
    return (x >= 1) & integers(x)


def _categorical_support(x, fixed):
    del fixed
    return (x >= 0) & integers(x)


# In registry order.
DISCRETE: tuple[Distribution, ...] = (
    entry(
        "bernoulli", ["p"], [_U], _bernoulli_logpdf, _bernoulli_mle, _bernoulli_mle,
        _bernoulli_sample, _bernoulli_support, "values 0 or 1",
        _p_check("0", "1", "Bernoulli"), discrete=True
    ),
    entry(
        "binomial", ["n", "p"], [_P, _U], _binomial_logpdf, _binomial_mle, _binomial_mle,
        _binomial_sample, _binomial_support, "integer counts between 0 and the number of trials n",
        _binomial_degenerate, discrete=True, known=("n",)
    ),
    entry(
        "categorical", ["p"], [C.simplex], _categorical_logpdf, None, None,
        _categorical_sample, _categorical_support, "integer category codes 0, 1, ..., k - 1",
        _none_check, discrete=True
    ),
    entry(
        "poisson", ["rate"], [_P], _poisson_logpdf, _poisson_mle, _poisson_mle, _poisson_sample,
        _nonneg_int, "non-negative integer counts",
        _p_check("0", "-", "Poisson", "rate"), discrete=True
    ),
    entry(
        "geometric", ["p"], [_U], _geometric_logpdf, _geometric_mle, _geometric_mle,
        _geometric_sample, _geometric_support,
        "integers >= 1 (the number of trials up to and including the first success)",
        _geometric_degenerate, discrete=True
    ),
    entry(
        "negative_binomial", ["mu", "alpha"], [_P, _P], _negbin_logpdf, _negbin_moments, None,
        _negbin_sample, _nonneg_int, "non-negative integer counts", _negbin_degenerate,
        discrete=True
    ),
)
