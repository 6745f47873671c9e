"""The continuous families: normal, lognormal, exponential, gamma, beta, Weibull, Student-t,
Cauchy, Laplace, logistic, Pareto, uniform, von Mises and the multivariate normal (log-density,
starts and closed forms, samplers, support and boundary checks; the asymptotic covariance of
the non-regular Laplace, Pareto and uniform)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp
from jax.scipy import stats as jst

from mlejax import constraints as C
from mlejax._distributions.common import (clip_pos, wmax, wmean, wmedian, wmin, wquantile,
                                           wsum, wvar)
from mlejax._distributions.family import Distribution, entry

_EULER_GAMMA = 0.5772156649015329

_P = C.positive
_R = C.real


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



# --- normal
def _normal_logpdf(p, x):
    return jst.norm.logpdf(x, p["mu"], p["sigma"])


def _normal_mle(x, w, fixed):
    mu = fixed.get("mu", wmean(x, w))
    sigma = fixed.get("sigma", jnp.sqrt(wvar(x, w, mu)))
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
    return {"rate": 1.0 / wmean(x, w)}


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
    m = wmean(x, w)
    v = wvar(x, w, m)
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
    m = wmean(x, w)
    if "shape" in fixed:
        return {"shape": fixed["shape"], "scale": m / fixed["shape"]}
    s = jnp.log(m) - wmean(jnp.log(x), w)
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
    m = wmean(x, w)
    v = wvar(x, w, m)
    common = clip_pos(m * (1.0 - m) / v - 1.0, 1e-2)
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
    ml = wmean(lx, w)
    sl = jnp.sqrt(wvar(lx, w, ml))
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
    loc = fixed.get("loc", wmedian(x, w))
    mad = wmedian(jnp.abs(x - loc), w)
    spread = jnp.where(mad > 0, mad, jnp.sqrt(wvar(x, w)))
    scale = fixed.get("scale", mad_factor * spread)
    return loc, scale


def _t_moments(x, w, fixed):
    loc, scale = _robust_loc_scale(x, w, fixed, 1.4826)
    m = wmean(x, w)
    v = wvar(x, w, m)
    kurt = jnp.sum(w * (x - m) ** 4) / jnp.sum(w) / v ** 2 - 3.0
    df = jnp.clip(jnp.where(kurt > 0.1, 4.0 + 6.0 / kurt, 30.0), 2.5, 60.0)
    return {"loc": loc, "scale": scale, "df": fixed.get("df", df)}


def _t_sample(key, p, shape):
    dtype = jnp.result_type(p["loc"], p["scale"], p["df"])
    return p["loc"] + p["scale"] * jax.random.t(key, p["df"], shape, dtype)


def _cauchy_logpdf(p, x):
    return jst.cauchy.logpdf(x, p["loc"], p["scale"])


def _cauchy_moments(x, w, fixed):
    loc = fixed.get("loc", wmedian(x, w))
    iqr = wquantile(x, w, 0.75) - wquantile(x, w, 0.25)
    spread = jnp.where(iqr > 0, 0.5 * iqr, jnp.sqrt(wvar(x, w)))
    return {"loc": loc, "scale": fixed.get("scale", spread)}


def _cauchy_sample(key, p, shape):
    dtype = jnp.result_type(p["loc"], p["scale"])
    return p["loc"] + p["scale"] * jax.random.cauchy(key, shape, dtype)


def _laplace_logpdf(p, x):
    return -jnp.log(2.0 * p["scale"]) - jnp.abs(x - p["loc"]) / p["scale"]


def _laplace_mle(x, w, fixed):
    loc = fixed.get("loc", wmedian(x, w))
    scale = fixed.get("scale", wmean(jnp.abs(x - loc), w))
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
    m = wmean(x, w)
    loc = fixed.get("loc", m)
    scale = fixed.get("scale", jnp.sqrt(3.0 * wvar(x, w, m)) / jnp.pi)
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
    scale = fixed.get("scale", wmin(x, w))
    alpha = fixed.get("alpha", jnp.sum(w) / wsum(w, jnp.log(x / scale)))
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
    return {"low": fixed.get("low", wmin(x, w)), "high": fixed.get("high", wmax(x, w))}


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
    c, s = wmean(jnp.cos(x), w), wmean(jnp.sin(x), w)
    mu = fixed.get("mu", jnp.arctan2(s, c))
    r = jnp.clip(wmean(jnp.cos(x - mu), w), 1e-3, 1.0 - 1e-6)
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


def _unit_open(x, fixed):
    del fixed
    return (x > 0) & (x < 1)


def _pareto_support(x, fixed):
    return x >= fixed["scale"] if "scale" in fixed else x > 0


def _uniform_support(x, fixed):
    ok = np.isfinite(x)
    if "low" in fixed:
        ok &= x >= fixed["low"]
    if "high" in fixed:
        ok &= x <= fixed["high"]
    return ok


# In registry order.
CONTINUOUS: tuple[Distribution, ...] = (
    entry(
        "normal", ["mu", "sigma"], [_R, _P], _normal_logpdf, _normal_mle, _normal_mle,
        _normal_sample, _finite, "finite real values", _constant_check("mu", "sigma", "normal")
    ),
    entry(
        "lognormal", ["mu", "sigma"], [_R, _P], _lognormal_logpdf, _lognormal_mle, _lognormal_mle,
        _lognormal_sample, _positive, "strictly positive values",
        _constant_check("mu", "sigma", "lognormal")
    ),
    entry(
        "exponential", ["rate"], [_P], _exponential_logpdf, _exponential_mle, _exponential_mle,
        _exponential_sample, lambda x, f: x >= 0, "non-negative values",
        _exponential_degenerate
    ),
    entry(
        "gamma", ["shape", "scale"], [_P, _P], _gamma_logpdf, _gamma_moments, _gamma_mle,
        _gamma_sample, _positive, "strictly positive values",
        _constant_check(None, "shape", "gamma")
    ),
    entry(
        "beta", ["a", "b"], [_P, _P], _beta_logpdf, _beta_moments, None, _beta_sample, _unit_open,
        "values strictly between 0 and 1", _constant_check(None, "a", "beta")
    ),
    entry(
        "weibull", ["shape", "scale"], [_P, _P], _weibull_logpdf, _weibull_moments,
        lambda x, w, f: ({"shape": f["shape"],
                          "scale": (wmean(x ** f["shape"], w)) ** (1.0 / f["shape"])}
                         if "shape" in f and "scale" not in f else None),
        _weibull_sample, _positive, "strictly positive values",
        _constant_check(None, "shape", "Weibull")
    ),
    entry(
        "student_t", ["loc", "scale", "df"], [_R, _P, _P], _t_logpdf, _t_moments, None, _t_sample,
        _finite, "finite real values", _constant_check("loc", "scale", "Student-t")
    ),
    entry(
        "cauchy", ["loc", "scale"], [_R, _P], _cauchy_logpdf, _cauchy_moments, None,
        _cauchy_sample, _finite, "finite real values", _constant_check("loc", "scale", "Cauchy")
    ),
    entry(
        "laplace", ["loc", "scale"], [_R, _P], _laplace_logpdf, _laplace_mle, _laplace_mle,
        _laplace_sample, _finite, "finite real values", _constant_check("loc", "scale", "Laplace"),
        regular=False, cov_fn=_laplace_cov
    ),
    entry(
        "logistic", ["loc", "scale"], [_R, _P], _logistic_logpdf, _logistic_moments, None,
        _logistic_sample, _finite, "finite real values",
        _constant_check("loc", "scale", "logistic")
    ),
    entry(
        "pareto", ["alpha", "scale"], [_P, _P], _pareto_logpdf, _pareto_mle, _pareto_mle,
        _pareto_sample, _pareto_support, "values >= scale > 0", _pareto_degenerate,
        regular=False, cov_fn=_pareto_cov
    ),
    entry(
        "uniform", ["low", "high"], [_R, _R], _uniform_logpdf, _uniform_mle, _uniform_mle,
        _uniform_sample, _uniform_support, "finite values inside [low, high]", _uniform_degenerate,
        regular=False, cov_fn=_uniform_cov
    ),
    entry(
        "von_mises", ["mu", "kappa"], [_R, _P], _vonmises_logpdf, _vonmises_moments,
        lambda x, w, f: ({"mu": jnp.arctan2(wmean(jnp.sin(x), w), wmean(jnp.cos(x), w)),
                          "kappa": f["kappa"]} if "kappa" in f and "mu" not in f else None),
        _vonmises_sample, _finite, "finite angles in radians",
        _constant_check("mu", "kappa", "von Mises")
    ),
    entry(
        "multivariate_normal", ["mean", "cov"], [_R, C.positive_definite], _mvn_logpdf, _mvn_mle,
        _mvn_mle, _mvn_sample, _finite, "finite real vectors", _mvn_degenerate, event_ndim=1
    ),
)
