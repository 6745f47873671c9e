"""Built-in distributions: fit any common distribution in one line, one or K datasets at once.

Each distribution in the registry carries

* its log-density (per observation, written with ``jax.scipy.stats`` / ``jax.scipy.special``),
* one constraint per parameter (``mj.positive``, ``mj.unit_interval``, ``mj.simplex`` ...),
* a data-driven starting point (the method of moments, or a robust variant of it),
* the closed-form maximum-likelihood estimate where one exists (for the gamma, the root of
  its one-dimensional score equation from the sufficient statistics), used as the starting
  point (so Newton already sits at the optimum and only the observed information is
  computed) or, for the non-regular families (uniform, Laplace, Pareto), as the estimate
  itself,
* a sampler ``sample(key, params, shape)`` for the parametric bootstrap,
* host-side checks: data outside the support and data for which the MLE sits on the boundary
  of the parameter space (constant data, under-dispersed counts, an unobserved category) raise
  a ``ValueError`` that names the problem and the fix, before anything is compiled.

``fit_distribution(x, name)`` fits ``x`` of shape ``(n,)`` (``(n, d)`` for the multivariate
normal), or ``K`` datasets at once from ``(K, n)`` (``(K, n, d)``) through :func:`mlejax.fit_batch`
(one compiled program; ragged datasets through ``weights`` with zeros for the padding).
``fixed={"df": 5}`` holds any parameter at a given value; the result's ``params`` then hold
the free parameters only (those whose ``stderr`` and ``cov`` are reported).

The log-likelihood functions are created once per (distribution, fixed names) and cached, so a
second fit of same-shaped data reuses the compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp
from jax.scipy import stats as jst

from mlejax import constraints as C
from mlejax.fit import fit, fit_batch
from mlejax.result import FitResult
from mlejax.status import Status

__all__ = [
    "Distribution",
    "bootstrap_sampler",
    "DistributionComparison",
    "DISTRIBUTIONS",
    "compare_distributions",
    "fit_distribution",
    "get",
]

_EULER_GAMMA = 0.5772156649015329


# ------------------------------------------------------------------------ the registry entry


@dataclasses.dataclass(frozen=True, eq=False)
class Distribution:
    """One family of distributions: density, constraints, starts, closed forms, sampler.

    Attributes:
      name: the registry name, e.g. ``"gamma"``.
      params: parameter names in the order of ``logpdf``'s dict keys.
      constraints: one constraint per parameter.
      logpdf: ``logpdf(params, x) -> (n,)`` per-observation log density (log mass for the
        discrete families), ``params`` a dict holding every parameter.
      moments: ``moments(x, w, fixed) -> params`` a starting point for every parameter from
        weighted moments (pure JAX, one dataset; ``fixed`` holds the fixed values).
      closed_form: ``closed_form(x, w, fixed) -> params`` the exact MLE, or ``None`` when the
        fixed parameters leave no closed form (decided from the names of ``fixed``).
      sample: ``sample(key, params, shape) -> draws`` with ``params`` broadcast against
        ``shape`` (``shape + (d,)`` for the multivariate normal).
      discrete: a probability mass function (AIC across discrete and continuous families is
        meaningless; :func:`compare_distributions` refuses to mix them).
      event_ndim: 1 when one observation is a vector (multivariate normal), else 0.
      known: parameters that must be given in ``fixed`` (the binomial's number of trials).
      regular: False where the log-likelihood is not twice differentiable at the MLE
        (uniform, Laplace, Pareto): the closed form is the estimate, and ``cov`` holds the
        asymptotic sampling covariance stated in ``cov_fn``'s docstring.
      cov_fn: for non-regular families, ``cov_fn(params, x, w, free) -> (p, p)`` over the
        flattened free parameters.
      support: a host check ``support(x_np, fixed_np) -> bool mask`` of admissible values.
      support_text: what ``support`` requires, for error messages.
      degenerate: a host check ``degenerate(x, w, fixed) -> [(row mask, reason)]`` of datasets
        whose MLE lies on the boundary of the parameter space.

    Example:
      >>> d = mj.distributions.get("gamma")               # the registry entry
      >>> d, d.discrete
      (Distribution('gamma', params=('shape', 'scale')), False)
      >>> round(float(d.logpdf({"shape": 2.0, "scale": 1.0}, jnp.array([1.0]))[0]), 4)
      -1.0
    """

    name: str
    params: tuple[str, ...]
    constraints: Mapping[str, C.Constraint]
    logpdf: Callable
    moments: Callable
    closed_form: Callable | None
    sample: Callable
    support: Callable
    support_text: str
    degenerate: Callable
    discrete: bool = False
    event_ndim: int = 0
    known: tuple[str, ...] = ()
    regular: bool = True
    cov_fn: Callable | None = None
    doc: str = ""

    def __repr__(self) -> str:
        return f"Distribution({self.name!r}, params={self.params})"


# ------------------------------------------------------------------------ weighted helpers
# All take one dataset: x (n,) [or (n, d)], w (n,) non-negative frequency weights.


def _wsum(w, v):
    return jnp.sum(w * v, axis=0)


def _wmean(x, w):
    return jnp.sum(w * x) / jnp.sum(w)


def _wvar(x, w, m=None):
    m = _wmean(x, w) if m is None else m
    return jnp.sum(w * (x - m) ** 2) / jnp.sum(w)


def _wquantile(x, w, q):
    """The smallest x with at least a fraction q of the weight at or below it."""
    order = jnp.argsort(x)
    xs, ws = x[order], w[order]
    cw = jnp.cumsum(ws)
    idx = jnp.argmax(cw >= q * cw[-1])
    return xs[idx]


def _wmedian(x, w):
    """The weighted median; with unit weights exactly ``np.median`` (mean of the middle two)."""
    order = jnp.argsort(x)
    xs, ws = x[order], w[order]
    cw = jnp.cumsum(ws)
    half = 0.5 * cw[-1]
    lo = xs[jnp.argmax(cw >= half)]
    hi = xs[jnp.argmax(cw > half)]
    return 0.5 * (lo + hi)


def _wmin(x, w):
    return jnp.min(jnp.where(w > 0, x, jnp.inf))


def _wmax(x, w):
    return jnp.max(jnp.where(w > 0, x, -jnp.inf))


def _clip_pos(v, lo=1e-3):
    return jnp.maximum(v, lo)


# ------------------------------------------------------------------------ host-side checks


def _rows_constant(x, w):
    """Datasets whose weighted-in values are all equal."""
    big = np.where(w > 0, x, -np.inf).max(axis=1)
    small = np.where(w > 0, x, np.inf).min(axis=1)
    return big == small


def _constant_check(loc: str | None, scale: str, family: str):
    """Constant data put the scale MLE at 0 (when the location is free)."""

    def check(x, w, fixed):
        if loc is not None and loc in fixed:
            return []
        if scale in fixed:
            return []
        return [(_rows_constant(x, w),
                 f"the data are constant, so the MLE of {scale!r} is 0, on the boundary of the "
                 f"parameter space, and the {family} fit does not exist; check the data, or "
                 f"hold it with fixed={{{scale!r}: value}}")]

    return check


def _integers(x):
    return np.equal(np.floor(x), x)


# ------------------------------------------------------------------------ the families


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
    return {"p": _wmean(x, w)}


def _bernoulli_sample(key, p, shape):
    return jax.random.bernoulli(key, p["p"], shape).astype(jnp.result_type(p["p"]))


# --- binomial (known number of trials n, a scalar or one per observation)
def _binomial_logpdf(p, x):
    n = p["n"]
    return (jsp.gammaln(n + 1.0) - jsp.gammaln(x + 1.0) - jsp.gammaln(n - x + 1.0)
            + jsp.xlogy(x, p["p"]) + jsp.xlog1py(n - x, -p["p"]))


def _binomial_mle(x, w, fixed):
    n = jnp.broadcast_to(fixed["n"], x.shape)
    return {"n": fixed["n"], "p": _wsum(w, x) / _wsum(w, n)}


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


def _categorical_counts(x, w, k):
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
    return {"rate": _wmean(x, w)}


def _poisson_sample(key, p, shape):
    dtype = jnp.result_type(p["rate"])
    return jax.random.poisson(key, p["rate"], shape).astype(dtype)


# --- geometric: trials up to and including the first success, support 1, 2, ...
def _geometric_logpdf(p, x):
    return jnp.log(p["p"]) + jsp.xlog1py(x - 1.0, -p["p"])


def _geometric_mle(x, w, fixed):
    del fixed
    return {"p": 1.0 / _wmean(x, w)}


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
    m = _wmean(x, w)
    v = _wvar(x, w, m)
    alpha = _clip_pos((v - m) / m ** 2, 1e-2)
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


# --- normal
def _normal_logpdf(p, x):
    return jst.norm.logpdf(x, p["mu"], p["sigma"])


def _normal_mle(x, w, fixed):
    mu = fixed.get("mu", _wmean(x, w))
    sigma = fixed.get("sigma", jnp.sqrt(_wvar(x, w, mu)))
    return {"mu": mu, "sigma": sigma}


def _normal_sample(key, p, shape):
    dtype = jnp.result_type(p["mu"], p["sigma"])
    return p["mu"] + p["sigma"] * jax.random.normal(key, shape, dtype)


# --- lognormal: log x ~ N(mu, sigma)
def _lognormal_logpdf(p, x):
    lx = jnp.log(x)
    return jst.norm.logpdf(lx, p["mu"], p["sigma"]) - lx


def _lognormal_mle(x, w, fixed):
    return _normal_mle(jnp.log(x), w, fixed)


def _lognormal_sample(key, p, shape):
    return jnp.exp(_normal_sample(key, p, shape))


# --- exponential (rate)
def _exponential_logpdf(p, x):
    return jnp.log(p["rate"]) - p["rate"] * x


def _exponential_mle(x, w, fixed):
    del fixed
    return {"rate": 1.0 / _wmean(x, w)}


def _exponential_sample(key, p, shape):
    dtype = jnp.result_type(p["rate"])
    return jax.random.exponential(key, shape, dtype) / p["rate"]


def _exponential_degenerate(x, w, fixed):
    if "rate" in fixed:
        return []
    return [(np.all(np.where(w > 0, x == 0, True), axis=1),
             "every value is 0, so the MLE of 'rate' is infinite and the exponential fit does "
             "not exist")]


# --- gamma (shape, scale)
def _gamma_logpdf(p, x):
    a, s = p["shape"], p["scale"]
    return (a - 1.0) * jnp.log(x) - x / s - jsp.gammaln(a) - a * jnp.log(s)


def _gamma_moments(x, w, fixed):
    m = _wmean(x, w)
    v = _wvar(x, w, m)
    shape = fixed.get("shape", m * m / v)
    scale = fixed.get("scale", m / shape)
    if "scale" in fixed and "shape" not in fixed:
        shape = m / scale
    return {"shape": shape, "scale": scale}


def _gamma_mle(x, w, fixed):
    """The MLE from the sufficient statistics (mean, mean log): the shape solves
    log(a) - digamma(a) = log(mean) - mean(log x), found by Minka's (2002) generalised Newton
    iteration from his closed-form approximation (converged to rounding in 4 steps; 6 run);
    then scale = mean / a."""
    if "scale" in fixed and "shape" not in fixed:
        return None
    m = _wmean(x, w)
    if "shape" in fixed:
        return {"shape": fixed["shape"], "scale": m / fixed["shape"]}
    s = jnp.log(m) - _wmean(jnp.log(x), w)
    s = jnp.maximum(s, jnp.finfo(s.dtype).tiny)
    a0 = (3.0 - s + jnp.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)

    def newton(_, a):
        g = jnp.log(a) - jsp.digamma(a) - s
        h = 1.0 / a - jsp.polygamma(1, a)
        return 1.0 / (1.0 / a + g / (a * a * h))

    a = jax.lax.fori_loop(0, 6, newton, a0)
    return {"shape": a, "scale": m / a}


def _gamma_sample(key, p, shape):
    dtype = jnp.result_type(p["shape"], p["scale"])
    return jax.random.gamma(key, p["shape"], shape, dtype) * p["scale"]


# --- beta (a, b) on (0, 1)
def _beta_logpdf(p, x):
    a, b = p["a"], p["b"]
    # log B(a, b) through gammaln: as accurate here (2e-15 relative at a, b ~ 1e6) and its
    # Hessian compiles three times faster than jax.scipy.special.betaln's.
    log_beta = jsp.gammaln(a) + jsp.gammaln(b) - jsp.gammaln(a + b)
    return (a - 1.0) * jnp.log(x) + (b - 1.0) * jnp.log1p(-x) - log_beta


def _beta_moments(x, w, fixed):
    m = _wmean(x, w)
    v = _wvar(x, w, m)
    common = _clip_pos(m * (1.0 - m) / v - 1.0, 1e-2)
    a = fixed.get("a", m * common)
    b = fixed.get("b", (1.0 - m) * common)
    return {"a": a, "b": b}


def _beta_sample(key, p, shape):
    dtype = jnp.result_type(p["a"], p["b"])
    return jax.random.beta(key, p["a"], p["b"], shape, dtype)


# --- Weibull (shape k, scale lam)
def _weibull_logpdf(p, x):
    k, lam = p["shape"], p["scale"]
    z = jnp.log(x) - jnp.log(lam)
    return jnp.log(k) - jnp.log(lam) + (k - 1.0) * z - jnp.exp(k * z)


def _weibull_moments(x, w, fixed):
    # log x is Gumbel-min: sd = pi / (k sqrt 6), mean = log(lam) - gamma_E / k.
    lx = jnp.log(x)
    ml = _wmean(lx, w)
    sl = jnp.sqrt(_wvar(lx, w, ml))
    k = fixed.get("shape", jnp.pi / (sl * jnp.sqrt(6.0)))
    lam = fixed.get("scale", jnp.exp(ml + _EULER_GAMMA / k))
    return {"shape": k, "scale": lam}


def _weibull_sample(key, p, shape):
    dtype = jnp.result_type(p["shape"], p["scale"])
    return jax.random.weibull_min(key, p["scale"], p["shape"], shape, dtype)


# --- location-scale families
def _t_logpdf(p, x):
    return jst.t.logpdf(x, p["df"], p["loc"], p["scale"])


def _robust_loc_scale(x, w, fixed, mad_factor):
    loc = fixed.get("loc", _wmedian(x, w))
    mad = _wmedian(jnp.abs(x - loc), w)
    spread = jnp.where(mad > 0, mad, jnp.sqrt(_wvar(x, w)))
    scale = fixed.get("scale", mad_factor * spread)
    return loc, scale


def _t_moments(x, w, fixed):
    loc, scale = _robust_loc_scale(x, w, fixed, 1.4826)
    m = _wmean(x, w)
    v = _wvar(x, w, m)
    kurt = jnp.sum(w * (x - m) ** 4) / jnp.sum(w) / v ** 2 - 3.0
    df = jnp.clip(jnp.where(kurt > 0.1, 4.0 + 6.0 / kurt, 30.0), 2.5, 60.0)
    return {"loc": loc, "scale": scale, "df": fixed.get("df", df)}


def _t_sample(key, p, shape):
    dtype = jnp.result_type(p["loc"], p["scale"], p["df"])
    return p["loc"] + p["scale"] * jax.random.t(key, p["df"], shape, dtype)


def _cauchy_logpdf(p, x):
    return jst.cauchy.logpdf(x, p["loc"], p["scale"])


def _cauchy_moments(x, w, fixed):
    loc = fixed.get("loc", _wmedian(x, w))
    iqr = _wquantile(x, w, 0.75) - _wquantile(x, w, 0.25)
    spread = jnp.where(iqr > 0, 0.5 * iqr, jnp.sqrt(_wvar(x, w)))
    return {"loc": loc, "scale": fixed.get("scale", spread)}


def _cauchy_sample(key, p, shape):
    dtype = jnp.result_type(p["loc"], p["scale"])
    return p["loc"] + p["scale"] * jax.random.cauchy(key, shape, dtype)


def _laplace_logpdf(p, x):
    return -jnp.log(2.0 * p["scale"]) - jnp.abs(x - p["loc"]) / p["scale"]


def _laplace_mle(x, w, fixed):
    loc = fixed.get("loc", _wmedian(x, w))
    scale = fixed.get("scale", _wmean(jnp.abs(x - loc), w))
    return {"loc": loc, "scale": scale}


def _laplace_cov(p, x, w, free):
    """Asymptotic covariance from the expected information: var = scale^2 / n for both
    (the sample median's variance 1 / (4 n f(loc)^2) and the mean absolute deviation's),
    uncorrelated. The observed information does not exist: the log-likelihood is not
    differentiable in ``loc`` at the data points."""
    del x
    n = jnp.sum(w)
    var = p["scale"] ** 2 / n
    return jnp.diag(jnp.stack([var for _ in free]))


def _laplace_sample(key, p, shape):
    dtype = jnp.result_type(p["loc"], p["scale"])
    return p["loc"] + p["scale"] * jax.random.laplace(key, shape, dtype)


def _logistic_logpdf(p, x):
    return jst.logistic.logpdf(x, p["loc"], p["scale"])


def _logistic_moments(x, w, fixed):
    m = _wmean(x, w)
    loc = fixed.get("loc", m)
    scale = fixed.get("scale", jnp.sqrt(3.0 * _wvar(x, w, m)) / jnp.pi)
    return {"loc": loc, "scale": scale}


def _logistic_sample(key, p, shape):
    dtype = jnp.result_type(p["loc"], p["scale"])
    return p["loc"] + p["scale"] * jax.random.logistic(key, shape, dtype)


# --- Pareto (type I): density alpha scale^alpha / x^(alpha+1) on x >= scale
def _pareto_logpdf(p, x):
    a, s = p["alpha"], p["scale"]
    ll = jnp.log(a) + a * jnp.log(s) - (a + 1.0) * jnp.log(x)
    return jnp.where(x >= s, ll, -jnp.inf)


def _pareto_mle(x, w, fixed):
    scale = fixed.get("scale", _wmin(x, w))
    alpha = fixed.get("alpha", jnp.sum(w) / _wsum(w, jnp.log(x / scale)))
    return {"alpha": alpha, "scale": scale}


def _pareto_cov(p, x, w, free):
    """alpha: the inverse observed information alpha^2 / n. scale: the MLE is the sample
    minimum, itself Pareto(n alpha, scale), with variance
    scale^2 n alpha / ((n alpha - 1)^2 (n alpha - 2)); the two are asymptotically
    uncorrelated (the minimum converges at rate 1/n)."""
    del x
    n = jnp.sum(w)
    a, s = p["alpha"], p["scale"]
    na = n * a
    var = {"alpha": a ** 2 / n,
           "scale": jnp.where(na > 2, s ** 2 * na / ((na - 1.0) ** 2 * (na - 2.0)), jnp.nan)}
    return jnp.diag(jnp.stack([var[k] for k in free]))


def _pareto_sample(key, p, shape):
    dtype = jnp.result_type(p["alpha"], p["scale"])
    return p["scale"] * jax.random.pareto(key, p["alpha"], shape, dtype)


def _pareto_degenerate(x, w, fixed):
    if "alpha" in fixed:
        return []
    if "scale" in fixed:
        return [(np.all(np.where(w > 0, x == fixed["scale"], True), axis=1),
                 "every value equals the fixed scale, so the MLE of 'alpha' is infinite")]
    return [(_rows_constant(x, w), "the data are constant, so the MLE of 'alpha' is infinite "
                                   "and the Pareto fit does not exist")]


# --- uniform on [low, high]
def _uniform_logpdf(p, x):
    lo, hi = p["low"], p["high"]
    return jnp.where((x >= lo) & (x <= hi), -jnp.log(hi - lo), -jnp.inf)


def _uniform_mle(x, w, fixed):
    return {"low": fixed.get("low", _wmin(x, w)), "high": fixed.get("high", _wmax(x, w))}


def _uniform_cov(p, x, w, free):
    """The exact sampling covariance of the sample minimum and maximum of n uniforms:
    (high - low)^2 / ((n + 1)^2 (n + 2)) * [[n, 1], [1, n]]. The MLE is non-regular (the
    support depends on the parameters): there is no Fisher information."""
    del x
    n = jnp.sum(w)
    c = (p["high"] - p["low"]) ** 2 / ((n + 1.0) ** 2 * (n + 2.0))
    full = jnp.stack([jnp.stack([n * c, c]), jnp.stack([c, n * c])])
    idx = [("high", "low").index(k) for k in free]  # free is in sorted (tree) order
    return full[jnp.asarray(idx)][:, jnp.asarray(idx)]


def _uniform_sample(key, p, shape):
    dtype = jnp.result_type(p["low"], p["high"])
    return p["low"] + (p["high"] - p["low"]) * jax.random.uniform(key, shape, dtype)


def _uniform_degenerate(x, w, fixed):
    if fixed:
        return []
    return [(_rows_constant(x, w), "the data are constant, so the MLE has low == high and "
                                   "the uniform fit does not exist")]


# --- von Mises (mu, kappa) on the circle
def _vonmises_logpdf(p, x):
    k = p["kappa"]
    return k * (jnp.cos(x - p["mu"]) - 1.0) - jnp.log(2.0 * jnp.pi) - jnp.log(jsp.i0e(k))


def _vonmises_moments(x, w, fixed):
    c, s = _wmean(jnp.cos(x), w), _wmean(jnp.sin(x), w)
    mu = fixed.get("mu", jnp.arctan2(s, c))
    r = jnp.clip(_wmean(jnp.cos(x - mu), w), 1e-3, 1.0 - 1e-6)
    # Best & Fisher (1981) approximation to the inverse of A(kappa) = I1(kappa) / I0(kappa).
    k = jnp.where(r < 0.53, 2.0 * r + r ** 3 + 5.0 * r ** 5 / 6.0,
                  jnp.where(r < 0.85, -0.4 + 1.39 * r + 0.43 / (1.0 - r),
                            1.0 / (r ** 3 - 4.0 * r ** 2 + 3.0 * r)))
    return {"mu": mu, "kappa": fixed.get("kappa", k)}


def _vonmises_sample(key, p, shape):
    """Best & Fisher's (1979) wrapped-Cauchy rejection sampler, all draws at once."""
    mu, kappa = p["mu"], p["kappa"]
    dtype = jnp.result_type(mu, kappa)
    kappa = jnp.broadcast_to(kappa, shape).astype(dtype)
    tau = 1.0 + jnp.sqrt(1.0 + 4.0 * kappa ** 2)
    rho = (tau - jnp.sqrt(2.0 * tau)) / (2.0 * kappa)
    r = jnp.where(kappa < 1e-5, 1.0 / kappa + kappa, (1.0 + rho ** 2) / (2.0 * rho))

    def draw(k):
        k1, k2, k3 = jax.random.split(k, 3)
        z = jnp.cos(jnp.pi * jax.random.uniform(k1, shape, dtype))
        f = (1.0 + r * z) / (r + z)
        c = kappa * (r - f)
        u2 = jax.random.uniform(k2, shape, dtype)
        ok = (c * (2.0 - c) - u2 > 0) | (jnp.log(c / u2) + 1.0 - c >= 0)
        sign = jnp.where(jax.random.uniform(k3, shape, dtype) < 0.5, -1.0, 1.0)
        return sign * jnp.arccos(jnp.clip(f, -1.0, 1.0)), ok

    def cond(c):
        return ~jnp.all(c[2])

    def body(c):
        k, theta, done = c
        k, sub = jax.random.split(k)
        new, ok = draw(sub)
        take = ~done & ok
        return k, jnp.where(take, new, theta), done | ok

    init = (key, jnp.zeros(shape, dtype), jnp.zeros(shape, bool))
    _, theta, _ = jax.lax.while_loop(cond, body, init)
    return jnp.mod(theta + mu + jnp.pi, 2.0 * jnp.pi) - jnp.pi


# --- multivariate normal (mean (d,), cov (d, d)); x is (n, d)
def _mvn_logpdf(p, x):
    return jst.multivariate_normal.logpdf(x, p["mean"], p["cov"])


def _mvn_mle(x, w, fixed):
    sw = jnp.sum(w)
    mean = fixed.get("mean", jnp.sum(w[:, None] * x, axis=0) / sw)
    r = x - mean
    cov = fixed.get("cov", (w[:, None] * r).T @ r / sw)
    return {"mean": mean, "cov": cov}


def _mvn_sample(key, p, shape):
    dtype = jnp.result_type(p["mean"], p["cov"])
    return jax.random.multivariate_normal(key, p["mean"], p["cov"], shape, dtype=dtype)


def _mvn_degenerate(x, w, fixed):
    if "cov" in fixed:
        return []
    sw = w.sum(1)
    if "mean" in fixed:
        mean = np.broadcast_to(fixed["mean"], (x.shape[0], x.shape[2]))  # shared by the batch
    else:
        mean = (w[..., None] * x).sum(1) / sw[:, None]
    r = x - mean[:, None, :]
    cov = np.einsum("kn,kni,knj->kij", w, r, r) / sw[:, None, None]
    eig = np.linalg.eigvalsh(cov)
    bad = ~(eig[:, 0] > 1e3 * np.finfo(np.float64).eps * np.maximum(eig[:, -1], 1e-300))
    return [(bad, "the sample covariance is singular (fewer observations than dimensions, "
                  "or collinear coordinates), so the MLE of 'cov' is not positive definite; "
                  "drop redundant coordinates or add observations")]


def _finite(x, fixed):
    del fixed
    return np.isfinite(x)


def _positive(x, fixed):
    del fixed
    return x > 0


def _nonneg_int(x, fixed):
    del fixed
    return (x >= 0) & _integers(x)


# ------------------------------------------------------------------------ the registry

_P = C.positive
_U = C.unit_interval
_R = C.real


def _entry(name, params, cons, logpdf, moments, closed_form, sample, support, support_text,
           degenerate, **kw) -> Distribution:
    return Distribution(name=name, params=tuple(params), constraints=dict(zip(params, cons)),
                        logpdf=logpdf, moments=moments, closed_form=closed_form, sample=sample,
                        support=support, support_text=support_text, degenerate=degenerate, **kw)


def _bernoulli_support(x, fixed):
    del fixed
    return (x == 0) | (x == 1)


def _binomial_support(x, fixed):
    n = np.broadcast_to(fixed["n"], x.shape)
    return (x >= 0) & _integers(x) & (x <= n)


def _unit_open(x, fixed):
    del fixed
    return (x > 0) & (x < 1)


def _geometric_support(x, fixed):
    del fixed
    return (x >= 1) & _integers(x)


def _pareto_support(x, fixed):
    return x >= fixed["scale"] if "scale" in fixed else x > 0


def _uniform_support(x, fixed):
    ok = np.isfinite(x)
    if "low" in fixed:
        ok &= x >= fixed["low"]
    if "high" in fixed:
        ok &= x <= fixed["high"]
    return ok


def _categorical_support(x, fixed):
    del fixed
    return (x >= 0) & _integers(x)


_REGISTRY: dict[str, Distribution] = {}


def _register(d: Distribution) -> None:
    _REGISTRY[d.name] = d


_register(_entry(
    "bernoulli", ["p"], [_U], _bernoulli_logpdf, _bernoulli_mle, _bernoulli_mle,
    _bernoulli_sample, _bernoulli_support, "values 0 or 1",
    _p_check("0", "1", "Bernoulli"), discrete=True))
_register(_entry(
    "binomial", ["n", "p"], [_P, _U], _binomial_logpdf, _binomial_mle, _binomial_mle,
    _binomial_sample, _binomial_support, "integer counts between 0 and the number of trials n",
    _binomial_degenerate, discrete=True, known=("n",)))
_register(_entry(
    "categorical", ["p"], [C.simplex], _categorical_logpdf, None, None,
    _categorical_sample, _categorical_support, "integer category codes 0, 1, ..., k - 1",
    _none_check, discrete=True))
_register(_entry(
    "poisson", ["rate"], [_P], _poisson_logpdf, _poisson_mle, _poisson_mle, _poisson_sample,
    _nonneg_int, "non-negative integer counts",
    _p_check("0", "-", "Poisson", "rate"), discrete=True))
_register(_entry(
    "geometric", ["p"], [_U], _geometric_logpdf, _geometric_mle, _geometric_mle,
    _geometric_sample, _geometric_support,
    "integers >= 1 (the number of trials up to and including the first success)",
    _geometric_degenerate, discrete=True))
_register(_entry(
    "negative_binomial", ["mu", "alpha"], [_P, _P], _negbin_logpdf, _negbin_moments, None,
    _negbin_sample, _nonneg_int, "non-negative integer counts", _negbin_degenerate,
    discrete=True))
_register(_entry(
    "normal", ["mu", "sigma"], [_R, _P], _normal_logpdf, _normal_mle, _normal_mle,
    _normal_sample, _finite, "finite real values", _constant_check("mu", "sigma", "normal")))
_register(_entry(
    "lognormal", ["mu", "sigma"], [_R, _P], _lognormal_logpdf, _lognormal_mle, _lognormal_mle,
    _lognormal_sample, _positive, "strictly positive values",
    _constant_check("mu", "sigma", "lognormal")))
_register(_entry(
    "exponential", ["rate"], [_P], _exponential_logpdf, _exponential_mle, _exponential_mle,
    _exponential_sample, lambda x, f: x >= 0, "non-negative values",
    _exponential_degenerate))
_register(_entry(
    "gamma", ["shape", "scale"], [_P, _P], _gamma_logpdf, _gamma_moments, _gamma_mle,
    _gamma_sample, _positive, "strictly positive values",
    _constant_check(None, "shape", "gamma")))
_register(_entry(
    "beta", ["a", "b"], [_P, _P], _beta_logpdf, _beta_moments, None, _beta_sample, _unit_open,
    "values strictly between 0 and 1", _constant_check(None, "a", "beta")))
_register(_entry(
    "weibull", ["shape", "scale"], [_P, _P], _weibull_logpdf, _weibull_moments,
    lambda x, w, f: ({"shape": f["shape"],
                      "scale": (_wmean(x ** f["shape"], w)) ** (1.0 / f["shape"])}
                     if "shape" in f and "scale" not in f else None),
    _weibull_sample, _positive, "strictly positive values",
    _constant_check(None, "shape", "Weibull")))
_register(_entry(
    "student_t", ["loc", "scale", "df"], [_R, _P, _P], _t_logpdf, _t_moments, None, _t_sample,
    _finite, "finite real values", _constant_check("loc", "scale", "Student-t")))
_register(_entry(
    "cauchy", ["loc", "scale"], [_R, _P], _cauchy_logpdf, _cauchy_moments, None,
    _cauchy_sample, _finite, "finite real values", _constant_check("loc", "scale", "Cauchy")))
_register(_entry(
    "laplace", ["loc", "scale"], [_R, _P], _laplace_logpdf, _laplace_mle, _laplace_mle,
    _laplace_sample, _finite, "finite real values", _constant_check("loc", "scale", "Laplace"),
    regular=False, cov_fn=_laplace_cov))
_register(_entry(
    "logistic", ["loc", "scale"], [_R, _P], _logistic_logpdf, _logistic_moments, None,
    _logistic_sample, _finite, "finite real values",
    _constant_check("loc", "scale", "logistic")))
_register(_entry(
    "pareto", ["alpha", "scale"], [_P, _P], _pareto_logpdf, _pareto_mle, _pareto_mle,
    _pareto_sample, _pareto_support, "values >= scale > 0", _pareto_degenerate,
    regular=False, cov_fn=_pareto_cov))
_register(_entry(
    "uniform", ["low", "high"], [_R, _R], _uniform_logpdf, _uniform_mle, _uniform_mle,
    _uniform_sample, _uniform_support, "finite values inside [low, high]", _uniform_degenerate,
    regular=False, cov_fn=_uniform_cov))
_register(_entry(
    "von_mises", ["mu", "kappa"], [_R, _P], _vonmises_logpdf, _vonmises_moments,
    lambda x, w, f: ({"mu": jnp.arctan2(_wmean(jnp.sin(x), w), _wmean(jnp.cos(x), w)),
                      "kappa": f["kappa"]} if "kappa" in f and "mu" not in f else None),
    _vonmises_sample, _finite, "finite angles in radians",
    _constant_check("mu", "kappa", "von Mises")))
_register(_entry(
    "multivariate_normal", ["mean", "cov"], [_R, C.positive_definite], _mvn_logpdf, _mvn_mle,
    _mvn_mle, _mvn_sample, _finite, "finite real vectors", _mvn_degenerate, event_ndim=1))

DISTRIBUTIONS: tuple[str, ...] = tuple(_REGISTRY)

_ALIASES = {
    "gaussian": "normal", "norm": "normal", "lognorm": "lognormal", "log_normal": "lognormal",
    "expon": "exponential", "exp": "exponential", "t": "student_t", "student": "student_t",
    "studentt": "student_t", "negbin": "negative_binomial", "nbinom": "negative_binomial",
    "nb": "negative_binomial", "binom": "binomial", "geom": "geometric",
    "weibull_min": "weibull", "vonmises": "von_mises", "mvn": "multivariate_normal",
    "multinormal": "multivariate_normal", "multinoulli": "categorical", "discrete": "categorical",
}


def get(name: str | Distribution) -> Distribution:
    """The registry entry of a distribution name (case-insensitive; common aliases accepted).

    Raises:
      ValueError: for an unknown name, listing the known ones.

    Example:
      >>> mj.distributions.get("Weibull_min").name, mj.distributions.get("gamma").params
      ('weibull', ('shape', 'scale'))
    """
    if isinstance(name, Distribution):
        return name
    if not isinstance(name, str):
        raise ValueError(f"dist must be a distribution name (a string); got {name!r}. Known: "
                         f"{', '.join(DISTRIBUTIONS)}.")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown distribution {name!r}; known distributions: "
                         f"{', '.join(DISTRIBUTIONS)} (aliases: {', '.join(sorted(_ALIASES))}).")
    return _REGISTRY[key]


# ------------------------------------------------------------------------ the fit


@functools.lru_cache(maxsize=None)
def _loglik_fn(dist: Distribution, fixed_names: tuple[str, ...]) -> Callable:
    """``loglik_fn(params, data)`` for the core: the fixed values travel in ``data``.

    One function object per (distribution, fixed names), so every fit of same-shaped data
    reuses one compiled program whatever the fixed values are.
    """

    def loglik_fn(params, data):
        full = dict(data["fixed"])
        full.update(params)
        return dist.logpdf(full, data["x"])

    loglik_fn.__name__ = f"{dist.name}_loglik"
    loglik_fn.__qualname__ = loglik_fn.__name__
    loglik_fn.distribution = dist  # lets later inference (bootstrap) find the sampler
    loglik_fn.fixed_names = fixed_names
    return loglik_fn


def _categorical_k(x_np, n_categories) -> int:
    if n_categories is not None:
        k = int(n_categories)
        if k < 2:
            raise ValueError(f"n_categories must be an integer >= 2; got {n_categories}.")
        return k
    if x_np is None:
        raise ValueError("categorical data inside jit: pass n_categories= (the number of "
                         "categories k cannot be read from traced data).")
    return max(int(np.max(x_np)) + 1, 2)


@functools.lru_cache(maxsize=None)
def _start_program(dist: Distribution, fixed_names: tuple[str, ...], which: str, k: int | None):
    """A jitted, vmapped ``(x, w, fixed) -> params`` for the starting values."""

    def one(x, w, fixed):
        if dist.name == "categorical":
            counts = _categorical_counts(x, w, k)
            return {"p": counts / jnp.sum(counts)}
        if which == "closed_form":
            out = dist.closed_form(x, w, fixed)
        else:
            out = dist.moments(x, w, fixed)
        return {name: out[name] for name in dist.params if name not in fixed_names}

    return jax.jit(jax.vmap(one))


def _has_closed_form(dist: Distribution, fixed_names, k) -> bool:
    if dist.name == "categorical":
        return True
    if dist.closed_form is None:
        return False
    probe = jax.ShapeDtypeStruct((4,) + ((2,) if dist.event_ndim else ()), jnp.float32)
    wprobe = jax.ShapeDtypeStruct((4,), jnp.float32)
    shapes = {"mean": (2,), "cov": (2, 2)}
    fx = {n: jax.ShapeDtypeStruct(shapes.get(n, ()) if dist.event_ndim else (), jnp.float32)
          for n in fixed_names}
    del k
    out = jax.eval_shape(dist.closed_form, probe, wprobe, fx)
    return out is not None


@functools.lru_cache(maxsize=None)
def _closed_form_program(dist: Distribution, fixed_names: tuple[str, ...]):
    """Non-regular families: the estimate, log-likelihood and covariance, vmapped."""
    free = tuple(sorted(n for n in dist.params if n not in fixed_names))

    def one(x, w, fixed):
        est = dist.closed_form(x, w, fixed)
        full = dict(fixed)
        full.update({k: est[k] for k in free})
        ll = jnp.sum(jnp.where(w > 0, w * dist.logpdf(full, x), 0.0))
        cov = dist.cov_fn(full, x, w, free)
        return {k: est[k] for k in free}, ll, cov

    return jax.jit(jax.vmap(one))


def _as_float(x, dtype=None):
    if dtype is None:
        dt = jnp.result_type(x)
        dtype = dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float)
    return jnp.asarray(x, dtype), dtype


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _where_rows(mask: np.ndarray, batched: bool) -> str:
    idx = np.flatnonzero(mask)
    if not batched:
        return "x"
    shown = ", ".join(str(i) for i in idx[:8])
    more = f" and {idx.size - 8} more" if idx.size > 8 else ""
    return f"x[k] for k in [{shown}{more}] ({idx.size} of {mask.size} datasets)"


def _host_checks(dist, x_np, w_np, fixed_np, batched, n_free):
    """Support, size and boundary checks on concrete data: ValueError naming the fix."""
    x2 = x_np if batched else x_np[None]
    w2 = w_np if batched else w_np[None]
    inside = w2 > 0
    if not np.all(np.isfinite(x2)):
        bad = int(np.sum(~np.isfinite(x2)))
        raise ValueError(f"x contains {bad} NaN or infinite value(s); remove them (or give them "
                         "weight 0 and a finite placeholder).")
    cnt = inside.sum(axis=1)
    if np.any(cnt == 0):
        raise ValueError(f"{_where_rows(cnt == 0, batched)} has no observation with positive "
                         "weight; drop it.")
    small = cnt < max(n_free, 1)
    if np.any(small):
        raise ValueError(f"{_where_rows(small, batched)} has fewer observations "
                         f"({int(cnt[small].min())}) than free parameters ({n_free}) of the "
                         f"{dist.name} distribution; give more data or fix parameters with "
                         "fixed=.")
    ok = dist.support(x2, fixed_np)
    bad_obs = (~ok) & inside.reshape(inside.shape + (1,) * dist.event_ndim)
    if dist.event_ndim:
        bad_obs = bad_obs.any(axis=-1)
    if np.any(bad_obs):
        vals = np.unique(x2[bad_obs] if not dist.event_ndim else x2[bad_obs][:, 0])[:5]
        rows = bad_obs.any(axis=1)
        raise ValueError(f"{_where_rows(rows, batched)}: {int(bad_obs.sum())} value(s) outside "
                         f"the support of the {dist.name} distribution, which needs "
                         f"{dist.support_text}; e.g. {vals.tolist()}. Remove or correct them, "
                         "or choose another distribution.")
    for mask, reason in dist.degenerate(x2, w2, fixed_np):
        mask = np.asarray(mask)
        if np.any(mask):
            raise ValueError(f"{_where_rows(mask, batched)}: {reason}.")


def _prepare_fixed(dist, fixed, dtype, x_shape, batched, k_batch):
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, Mapping):
        raise ValueError(f"fixed must be a dict of parameter values, e.g. {{'df': 5}}; got "
                         f"{fixed!r}.")
    unknown = sorted(set(fixed) - set(dist.params))
    if unknown:
        raise ValueError(f"fixed names {unknown}, which are not parameters of the {dist.name} "
                         f"distribution; its parameters are {list(dist.params)}.")
    for k in dist.known:
        if k not in fixed:
            raise ValueError(f"the {dist.name} distribution needs {k!r} given: pass "
                             f"fixed={{{k!r}: value}} (e.g. the number of trials).")
    out = {}
    for name, val in fixed.items():
        arr = jnp.asarray(val, dtype)
        if _concrete(arr):
            a = np.asarray(arr)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"fixed[{name!r}] must be finite; got {a}.")
            why = dist.constraints[name].check(a)
            if why is not None:
                raise ValueError(f"fixed[{name!r}] {why}; got {a}.")
            if name in dist.known and not np.all(_integers(a)):
                raise ValueError(f"fixed[{name!r}] must be an integer; got {a}.")
        if name in dist.known:
            # Known per-observation values (the binomial's trials): (), (n,) or x's shape.
            ok_shapes = {(), tuple(x_shape[-1:]), tuple(x_shape)}
            if arr.shape not in ok_shapes:
                raise ValueError(f"fixed[{name!r}] must be a scalar or have one value per "
                                 f"observation (shape {x_shape[-1:]} or {x_shape}); got "
                                 f"{arr.shape}.")
            if batched and arr.shape != tuple(x_shape):
                arr = jnp.broadcast_to(arr, tuple(x_shape))
        elif batched:
            arr = jnp.broadcast_to(arr, (k_batch,) + arr.shape)  # shared by every dataset
        out[name] = arr
    return out


def fit_distribution(x: Any, dist: str | Distribution, *, fixed: Mapping[str, Any] | None = None,
                     weights: Any = None, start: str | Mapping[str, Any] = "auto",
                     n_categories: int | None = None, method: str = "newton",
                     max_steps: int | None = None, gtol: float | None = None,
                     ftol: float | None = None, warn: bool = True) -> FitResult:
    """Maximum-likelihood fit of a named distribution to ``x``, one or K datasets at once.

    Maximises ``sum_i w_i log f(x_i; theta)`` over the free parameters ``theta`` (every
    parameter not in ``fixed``) with the constraint of each parameter handled by its
    bijection (see :mod:`mlejax.constraints`). The start is the closed-form MLE where it
    exists (the fit then only computes the observed information), else the method of
    moments. For the non-regular families (``uniform``, ``laplace``, ``pareto``) the closed
    form is the estimate and ``cov`` is the sampling covariance stated in the registry
    (``get(name).cov_fn``); their results carry ``method="closed_form"`` and no ``context``.

    Args:
      x: data, ``(n,)`` for one dataset or ``(K, n)`` for K datasets fitted in one compiled
        program (``(n, d)`` / ``(K, n, d)`` for ``"multivariate_normal"``). Counts may be
        integers; the fit runs in ``x``'s floating dtype, or the default float dtype.
      dist: a name from ``DISTRIBUTIONS`` (``"normal"``, ``"gamma"``, ``"student_t"`` ...).
      fixed: parameters held at given values, e.g. ``{"df": 5}``; shared by all K datasets
        of a batch. The binomial's number of trials must be given as ``{"n": N}`` (a scalar
        or one per observation).
      weights: non-negative frequency weights, ``(n,)`` or ``(K, n)``; zeros pad ragged
        datasets (the padded values need not lie in the support).
      start: ``"auto"`` (closed form if one exists, else moments), ``"moments"``,
        ``"closed_form"``, or a dict of starting values for the free parameters.
      n_categories: the number of categories k for ``"categorical"`` (default
        ``max(x) + 1``).
      method, max_steps, gtol, ftol, warn: passed to :func:`mlejax.fit`.

    Returns:
      A :class:`~mlejax.FitResult` whose ``params`` hold the free parameters (leading K axis
      for a batch).

    Raises:
      ValueError: unknown name, data outside the support (negative values for ``"gamma"``,
        a non-integer count for ``"poisson"``, non-binary data for ``"bernoulli"``), fewer
        observations than free parameters, or data whose MLE lies on the boundary of the
        parameter space (constant data, counts that are not over-dispersed for
        ``"negative_binomial"``, an unobserved category).

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma")
      >>> res.param_names, round(float(res.params["shape"]), 4)
      (('scale', 'shape'), 1.7087)
      >>> round(float(res.stderr["shape"]), 4)
      0.6411
      >>> batch = mj.fit_distribution(jnp.stack([x, 2 * x, x + 1]), "gamma")   # 3 fits at once
      >>> [round(float(s), 4) for s in batch.params["scale"]]
      [1.9947, 3.9895, 1.3521]
    """
    d = get(dist)
    if n_categories is not None and d.name != "categorical":
        raise ValueError("n_categories= applies only to the 'categorical' distribution; got "
                         f"dist={d.name!r}.")
    if not isinstance(x, jax.Array) or _concrete(x):
        x_host = np.asarray(x)
        if x_host.dtype == object or (not np.issubdtype(x_host.dtype, np.number)
                                      and x_host.dtype != bool):
            raise ValueError(f"x must be a numeric array; got dtype {x_host.dtype}.")
    xj, dtype = _as_float(x)
    ndim = xj.ndim - d.event_ndim
    if ndim not in (1, 2):
        want = "(n,) or (K, n)" if not d.event_ndim else "(n, d) or (K, n, d)"
        raise ValueError(f"x must have shape {want} for the {d.name} distribution; got "
                         f"{xj.shape}.")
    batched = ndim == 2
    k_batch = xj.shape[0] if batched else None
    obs_shape = xj.shape[:ndim]
    if weights is None:
        wj = jnp.ones(obs_shape, dtype)
        has_w = False
    else:
        wj = jnp.asarray(weights, dtype)
        has_w = True
        if wj.shape != obs_shape:
            raise ValueError(f"weights must have shape {obs_shape} (one per observation); got "
                             f"{wj.shape}.")
        if _concrete(wj):
            wn = np.asarray(wj)
            if not np.all(np.isfinite(wn)) or np.any(wn < 0):
                raise ValueError("weights must be finite and non-negative.")
    fx = _prepare_fixed(d, fixed, dtype, xj.shape, batched, k_batch)
    fixed_names = tuple(sorted(fx))
    free = tuple(sorted(n for n in d.params if n not in fx))
    if not free:
        raise ValueError(f"every parameter of the {d.name} distribution is fixed "
                         f"({list(d.params)}): nothing to estimate. To evaluate the "
                         f"log-likelihood use mj.distributions.get({d.name!r}).logpdf.")

    concrete = _concrete(xj) and _concrete(wj) and all(_concrete(v) for v in fx.values())
    x_np = np.asarray(xj) if concrete else None
    k_cat = _categorical_k(x_np, n_categories) if d.name == "categorical" else None
    if concrete:
        w_np = np.asarray(wj)
        # Host checks see each fixed value once (shared by the batch) or per observation.
        fixed_np = {k: np.asarray(v) if (k in d.known or not batched) else np.asarray(v)[0]
                    for k, v in fx.items()}
        n_free = _n_free(d, free, xj.shape, k_cat)
        _host_checks(d, x_np, w_np, fixed_np, batched, n_free)
        if d.name == "categorical":
            _check_categories(x_np, w_np, k_cat, batched)

    # Padding (weight 0) may hold values outside the support; replace them by an observed
    # value so no log-density or gradient is evaluated outside it (0 * -inf is NaN).
    if has_w:
        xj = _fill_padding(xj, wj, batched, d.event_ndim)

    xb = xj if batched else xj[None]
    wb = wj if batched else wj[None]
    fb = fx if batched else {k: v[None] for k, v in fx.items()}

    if not d.regular:
        est, ll, cov = _closed_form_program(d, fixed_names)(xb, wb, fb)
        return _closed_form_result(d, est, ll, cov, wb, free, batched)

    if isinstance(start, Mapping):
        init = _user_start(d, start, free, dtype, batched, k_batch)
    else:
        if start not in ("auto", "moments", "closed_form"):
            raise ValueError(f"start must be 'auto', 'moments', 'closed_form' or a dict of "
                             f"starting values; got {start!r}.")
        has_cf = _has_closed_form(d, fixed_names, k_cat)
        if start == "closed_form" and not has_cf:
            raise ValueError(f"the {d.name} distribution has no closed-form MLE with fixed="
                             f"{list(fixed_names)}; use start='moments'.")
        which = "closed_form" if (start != "moments" and has_cf) else "moments"
        if d.name == "categorical" and start == "moments":
            which = "moments"
        init = _start_program(d, fixed_names, which, k_cat)(xb, wb, fb)
        if not batched:
            init = {k: v[0] for k, v in init.items()}
    data = {"x": xj, "fixed": fx}
    cons = {k: d.constraints[k] for k in free}
    kw = dict(constraints=cons, weights=wj if has_w else None, method=method,
              max_steps=max_steps, gtol=gtol, ftol=ftol, warn=warn)
    loglik = _loglik_fn(d, fixed_names)
    if batched:
        return fit_batch(loglik, init, data, init_batched=True, **kw)
    return fit(loglik, init, data, **kw)


def bootstrap_sampler(res: FitResult) -> Callable:
    """``sample_fn(key, params, nobs)`` for the parametric bootstrap of a distribution fit.

    Simulates a dataset shaped like the fit's data from the family's sampler, with the fixed
    parameters of the fit held at their values, for
    ``mj.bootstrap(res, kind="parametric", sample_fn=bootstrap_sampler(res), key=...)``.

    Raises:
      ValueError: when ``res`` is not a regular fit of :func:`fit_distribution` (the
        closed-form families have no context to refit).

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma")
      >>> sample_fn = mj.distributions.bootstrap_sampler(res)
      >>> draw = sample_fn(jax.random.key(0), res.params, 5)   # one simulated dataset
      >>> sorted(draw), draw["x"].shape
      (['fixed', 'x'], (5,))
    """
    ctx = getattr(res, "context", None)
    fn = None if ctx is None else ctx.config.loglik_fn
    dist = getattr(fn, "distribution", None)
    if dist is None:
        raise ValueError("bootstrap_sampler needs a result of mj.fit_distribution for a regular "
                         "family (uniform, laplace and pareto fits are closed forms without a "
                         "refitting context).")
    fixed = ctx.data["fixed"]
    if res.is_batch:  # fixed values are shared by the batch (one value per dataset stored)
        fixed = {k: (v if k in dist.known and np.ndim(v) > 1 else v[0]) for k, v in fixed.items()}
    x_example = ctx.data["x"]
    dtype = x_example.dtype
    event = tuple(x_example.shape[-dist.event_ndim:]) if dist.event_ndim else ()

    def sample_fn(key, params, nobs):
        full = dict(fixed)
        full.update(params)
        x = dist.sample(key, full, (nobs,)).astype(dtype)
        return {"x": x.reshape((nobs,) + event), "fixed": fixed}

    return sample_fn


def _n_free(d, free, x_shape, k_cat) -> int:
    if d.name == "categorical":
        return k_cat - 1
    if d.name == "multivariate_normal":
        dim = x_shape[-1]
        return sum(dim if k == "mean" else dim * (dim + 1) // 2 for k in free)
    return len(free)


def _check_categories(x_np, w_np, k, batched):
    x2 = x_np if batched else x_np[None]
    w2 = w_np if batched else w_np[None]
    if np.any((x2 >= k) & (w2 > 0)):
        raise ValueError(f"x holds category codes >= n_categories={k}; codes must be 0..{k - 1}"
                         ".")
    counts = np.stack([np.sum(np.where(x2 == j, w2, 0.0), axis=1) for j in range(k)], axis=1)
    empty = counts == 0
    if np.any(empty):
        rows = empty.any(axis=1)
        cats = sorted(set(np.flatnonzero(empty.any(axis=0)).tolist()))
        raise ValueError(f"{_where_rows(rows, batched)}: category {cats} is never observed, so "
                         "its MLE probability is 0 (on the boundary of the simplex) and the fit "
                         "does not exist; merge or drop the empty categories (or pass a smaller "
                         "n_categories).")


def _fill_padding(xj, wj, batched, event_ndim):
    def one(x, w):
        first = jnp.argmax(w > 0)
        keep = (w > 0).reshape(w.shape + (1,) * event_ndim)
        return jnp.where(keep, x, x[first])

    return jax.vmap(one)(xj, wj) if batched else one(xj, wj)


def _user_start(d, start, free, dtype, batched, k_batch):
    missing = sorted(set(free) - set(start))
    extra = sorted(set(start) - set(free))
    if missing or extra:
        raise ValueError(f"start must give exactly the free parameters {list(free)}; missing "
                         f"{missing}, unexpected {extra}.")
    init = {}
    for k in free:
        v = jnp.asarray(start[k], dtype)
        init[k] = jnp.broadcast_to(v, (k_batch,) + v.shape) if batched else v  # shared
    return init


def _closed_form_result(d, est, ll, cov, wb, free, batched) -> FitResult:
    k = ll.shape[0]
    dtype = ll.dtype
    se = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    stderr = {name: se[:, i] for i, name in enumerate(free)}
    res = FitResult(
        params=est, loglik=ll, status=jnp.zeros(k, jnp.int32) + Status.CONVERGED,
        n_steps=jnp.zeros(k, jnp.int32), trace=ll[:, None], cov=cov, stderr=stderr,
        grad_norm=jnp.zeros(k, dtype), nobs=jnp.sum(wb > 0, axis=1).astype(jnp.int32),
        param_names=free, df_model=len(free), method="closed_form")
    if batched:
        return res
    return jax.tree_util.tree_map(lambda a: a[0], res)


# ------------------------------------------------------------------------ comparison


@dataclasses.dataclass(frozen=True)
class DistributionComparison:
    """Candidate distributions ranked by an information criterion.

    Attributes:
      names: candidate names, best first (by mean criterion over a batch).
      results: name -> FitResult (absent for candidates that could not be fitted).
      errors: name -> why a candidate could not be fitted (support, boundary ...).
      criterion: ``"aic"`` or ``"bic"``.
      values: name -> the criterion (a float, or a (K,) array for a batch).
      best: the best name (for a batch, an array of names, one per dataset).

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> table = mj.compare_distributions(x, ["gamma", "lognormal"])
      >>> type(table).__name__, table.criterion, table.best
      ('DistributionComparison', 'aic', 'gamma')
      >>> {name: round(float(w), 2) for name, w in table.weights().items()}
      {'gamma': 0.58, 'lognormal': 0.42}
    """

    names: tuple[str, ...]
    results: dict
    errors: dict
    criterion: str
    values: dict
    best: Any

    def weights(self) -> dict:
        """Akaike (or Schwarz) weights ``exp(-delta/2) / sum``, per dataset for a batch."""
        ok = [n for n in self.names if n in self.values]
        vals = np.stack([np.asarray(self.values[n], np.float64) for n in ok])
        vals = np.where(np.isfinite(vals), vals, np.inf)
        delta = vals - vals.min(axis=0)
        wts = np.exp(-0.5 * delta)
        wts = wts / wts.sum(axis=0)
        return dict(zip(ok, wts))

    def __str__(self) -> str:
        crit = self.criterion.upper()
        batch = any(np.ndim(v) for v in self.values.values())
        lines = []
        if batch:
            k = next(np.size(v) for v in self.values.values())
            lines.append(f"{'distribution':<20} {'df':>3} {'mean ' + crit:>14} "
                         f"{'mean delta':>11} {'best in':>9} {'converged':>10}")
            ok = [n for n in self.names if n in self.values]
            vals = np.stack([np.asarray(self.values[n], np.float64) for n in ok])
            delta = vals - np.nanmin(vals, axis=0)
            for i, n in enumerate(ok):
                res = self.results[n]
                wins = int(np.sum(np.asarray(self.best) == n))
                conv = float(np.mean(np.asarray(res.converged)))
                lines.append(f"{n:<20} {res.df_model:>3} {np.nanmean(vals[i]):>14.6g} "
                             f"{np.nanmean(delta[i]):>11.4g} {wins:>5}/{k:<3} {conv:>10.1%}")
        else:
            lines.append(f"{'distribution':<20} {'df':>3} {'loglik':>14} {crit:>14} "
                         f"{'delta':>10} {'weight':>8}  status")
            wts = self.weights()
            ok = [n for n in self.names if n in self.values]
            top = min(float(self.values[n]) for n in ok) if ok else np.nan
            for n in ok:
                res = self.results[n]
                v = float(self.values[n])
                lines.append(f"{n:<20} {res.df_model:>3} {float(res.loglik):>14.6g} "
                             f"{v:>14.6g} {v - top:>10.4g} {float(wts[n]):>8.3f}  "
                             f"{Status(int(res.status)).name}")
        for n, why in self.errors.items():
            lines.append(f"{n:<20} not fitted: {why}")
        return "\n".join(lines)


def compare_distributions(x: Any, candidates: Sequence[str], *, criterion: str = "aic",
                          weights: Any = None, fixed: Mapping[str, Mapping] | None = None,
                          n_categories: int | None = None,
                          warn: bool = False) -> DistributionComparison:
    """Fits every candidate to ``x`` and ranks them by AIC (or BIC), fitdistrplus-style.

    Candidates that cannot be fitted to these data (values outside the support, a boundary
    MLE) are listed with the reason rather than aborting the comparison. All candidates
    must be discrete, or all continuous: likelihoods of densities and of probability masses
    are not comparable.

    Args:
      x: ``(n,)`` or ``(K, n)`` data (a batch is ranked per dataset).
      candidates: distribution names, e.g. ``["normal", "gamma", "lognormal", "weibull"]``.
      criterion: ``"aic"`` or ``"bic"``.
      weights: frequency weights, as in :func:`fit_distribution`.
      fixed: per-candidate fixed values, e.g. ``{"student_t": {"df": 5}}``.
      n_categories: passed to a ``"categorical"`` candidate.
      warn: let each fit warn on non-convergence (off by default; the table shows the status).

    Returns:
      A :class:`DistributionComparison`; ``print`` it for the table.

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> table = mj.compare_distributions(x, ["gamma", "lognormal"])
      >>> table.best, table.names
      ('gamma', ('gamma', 'lognormal'))
      >>> print(table)
      distribution          df         loglik            AIC      delta   weight  status
      gamma                  2       -25.8307        55.6614          0    0.580  CONVERGED
      lognormal              2       -26.1539        56.3077     0.6463    0.420  CONVERGED
    """
    if criterion not in ("aic", "bic"):
        raise ValueError(f"criterion must be 'aic' or 'bic'; got {criterion!r}.")
    if isinstance(candidates, str) or not len(candidates):
        raise ValueError("candidates must be a non-empty list of distribution names, e.g. "
                         "['normal', 'gamma'].")
    dists = [get(c) for c in candidates]
    kinds = {d.discrete for d in dists}
    if len(kinds) > 1:
        disc = [d.name for d in dists if d.discrete]
        raise ValueError(f"candidates mix discrete {disc} and continuous distributions; their "
                         "log-likelihoods (mass vs density) are not comparable. Compare "
                         "within one kind.")
    fixed = dict(fixed or {})
    unknown = set(fixed) - {d.name for d in dists} - set(candidates)
    if unknown:
        raise ValueError(f"fixed names candidates {sorted(unknown)} that are not in "
                         f"candidates {list(candidates)}.")
    results, errors, values = {}, {}, {}
    for d, c in zip(dists, candidates):
        fx = fixed.get(c, fixed.get(d.name))
        try:
            res = fit_distribution(x, d, fixed=fx, weights=weights, warn=warn,
                                   n_categories=n_categories if d.name == "categorical"
                                   else None)
        except ValueError as err:
            errors[d.name] = str(err)
            continue
        results[d.name] = res
        values[d.name] = np.asarray(res.aic if criterion == "aic" else res.bic)
    if not results:
        raise ValueError("no candidate could be fitted to x:\n" + "\n".join(
            f"  {n}: {e}" for n, e in errors.items()))
    ok = list(results)
    mean_vals = [np.nanmean(np.where(np.isfinite(values[n]), values[n], np.nan))
                 for n in ok]
    order = [ok[i] for i in np.argsort(mean_vals, kind="stable")]
    stack = np.stack([np.where(np.isfinite(values[n]), values[n], np.inf) for n in ok])
    best_idx = np.argmin(stack, axis=0)
    best = np.asarray(ok, dtype=object)[best_idx] if np.ndim(best_idx) else ok[int(best_idx)]
    return DistributionComparison(names=tuple(order), results=results, errors=errors,
                                  criterion=criterion, values=values, best=best)
