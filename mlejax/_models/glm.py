"""Regressions on the GLM families, fitted by maximum likelihood with a design matrix.

Each model maximises ``sum_i w_i log f(y_i | eta_i, ...)`` with the linear predictor
``eta = X beta + offset`` (``offset`` includes ``log(exposure)``; ``w`` the frequency
``weights``):

=====================  ===============================  ===================================
model                  mean (links)                     extra parameters
=====================  ===============================  ===================================
``Linear``             ``eta``                          ``sigma`` (MLE: RSS / n, not n - p)
``Logistic``           ``1 / (1 + exp(-eta))``          none
``Probit``             ``Phi(eta)``                     none
``Poisson``            ``exp(eta)``                     none
``NegativeBinomial``   ``exp(eta)``                     ``alpha``: var = mu + alpha mu^2
``Gamma``              log, inverse, identity           ``shape`` nu: var = mu^2 / nu
``Binomial``           logit, probit, cloglog, log,     none (``trials=`` per observation)
                       cauchit
``InverseGaussian``    inverse_squared, log, inverse,   ``phi``: var = phi mu^3
                       identity
``Tweedie``            log                              ``phi``: var = phi mu^p (p fixed)
=====================  ===============================  ===================================

``var_weights=v`` (Linear, Poisson, Gamma, Binomial, InverseGaussian, Tweedie) is statsmodels
GLM's: observation ``i`` has dispersion ``phi / v_i`` (Linear ``sigma^2 / v_i``, Gamma shape
``v_i nu``), and for Poisson and Binomial its log-likelihood is multiplied by ``v_i``; the
log-likelihood equals statsmodels' ``GLM(var_weights=v).loglike`` at the same scale.

Standard errors are the inverse observed information by default. ``cov_type="expected"``
takes them from the expected (Fisher) information, block diagonal: ``X' W X`` for the
coefficients, ``W_i = w_i (dmu_i/deta_i)^2 / Var(y_i)`` (with the dispersion and
``var_weights`` ``v``), the information R's ``glm`` and ``glm.nb`` report for the coefficients
(R's ``glm`` scales it by the Pearson dispersion, mlejax by the ML one; Binomial, Poisson and
NB have none to estimate and agree). It equals the observed information for Linear and the
canonical links (Logistic, Poisson, Gamma inverse, Binomial logit, InverseGaussian
inverse_squared), and differs for the others (probit, cloglog, Gamma log, ...):

====================  ====================================  ===============================
model                 ``W``                                 the extra parameter's block
====================  ====================================  ===============================
``Linear``            ``v / sigma^2``                       ``2 sum w / sigma^2``
``Logistic``          ``mu (1 - mu)``
``Probit``            ``phi(eta)^2 / (Phi (1 - Phi))``
``Poisson``           ``v mu``
``NegativeBinomial``  ``mu / (1 + alpha mu)``               observed (MASS's ``theta.ml``)
``Gamma``             ``v nu (dmu/deta)^2 / mu^2``          ``sum w v^2 (psi'(v nu) - 1/(v
                                                            nu))`` (= observed)
``Binomial``          ``v n (dmu/deta)^2 / (mu (1 - mu))``
``InverseGaussian``   ``v (dmu/deta)^2 / (phi mu^3)``       ``sum w / (2 phi^2)``
``Tweedie``           ``v mu^(2-p) / phi``                  observed
====================  ====================================  ===============================

``res.stderr_robust`` / ``res.cov_robust`` are the HC0 sandwich; ``mj.robust_cov(res,
groups=...)`` the cluster-robust one, whose default small-sample factor is Stata's for the
model's command (``G`` clusters, ``N`` observations, ``K`` coefficients; overridden with
``correction=``, see :func:`mlejax.robust_cov`):

========================  =======================  =========================================
model                     cluster factor           as
========================  =======================  =========================================
``Linear``                G/(G-1) (N-1)/(N-K)      ``regress, vce(cluster)``; statsmodels OLS
every other model         G/(G-1)                  ``logit``, ``probit``, ``poisson``,
                                                   ``nbreg``, ``glm, vce(cluster)``
========================  =======================  =========================================

(statsmodels' discrete models and GLM apply ``G/(G-1) (N-1)/(N-K)`` to every class by
default, ``K`` counting every parameter: ``correction="linear"`` gives theirs.)

The links, the densities (Tweedie's series) and the family log-likelihoods are in
:mod:`mlejax._models.families`.

References:
  McCullagh & Nelder, Generalized Linear Models (1989); Cameron & Trivedi, Regression
  Analysis of Count Data (2013), ch. 3 (NB2); Dunn & Smyth (2005), Series evaluation of
  Tweedie exponential dispersion model densities (Tweedie).
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp
from jax.scipy import stats as jst

from mlejax import constraints as C
from mlejax._models.base import Model, separation_flags
from mlejax._models.common import check_exact_fit, in_datasets, wls
from mlejax._models.families import (BINOMIAL_LINKS, LINKS, binomial_loglik_fn,
                                     check_binomial_counts, feasible_start, gamma_loglik_fn,
                                     inverse_gaussian_loglik_fn, irls_start, link_weight,
                                     tweedie_loglik, var_weights_of, xtwx)
from mlejax._models.families import linear_predictor as _eta
from mlejax._warnings import FitWarning

__all__ = ["Linear", "Logistic", "Probit", "Poisson", "NegativeBinomial", "Gamma", "Binomial",
           "InverseGaussian", "Tweedie"]


# ------------------------------------------------------------------------ log-likelihoods
# Module level (or cached per link): one function object each, so every fit with
# same-shaped data reuses one compiled program. ``var_weights`` (statsmodels GLM's: the
# dispersion of observation i is phi / var_weights[i]) is read from ``data`` when given.
_vw = var_weights_of


def linear_loglik(params, data):
    sd = params["sigma"]
    if "var_weights" in data:
        sd = sd / jnp.sqrt(data["var_weights"])
    return jst.norm.logpdf(data["y"], _eta(params, data), sd)


def logistic_loglik(params, data):
    eta = _eta(params, data)
    return data["y"] * eta - jax.nn.softplus(eta)


def probit_loglik(params, data):
    eta = _eta(params, data)
    y = data["y"]
    return y * jsp.log_ndtr(eta) + (1.0 - y) * jsp.log_ndtr(-eta)


def poisson_loglik(params, data):
    eta = _eta(params, data)
    y = data["y"]
    return (y * eta - jnp.exp(eta) - jsp.gammaln(y + 1.0)) * _vw(data)


def negbin_loglik(params, data):
    eta = _eta(params, data)
    y, alpha = data["y"], params["alpha"]
    r = 1.0 / alpha
    a_mu = alpha * jnp.exp(eta)
    return (jsp.gammaln(y + r) - jsp.gammaln(r) - jsp.gammaln(y + 1.0)
            - (r + y) * jnp.log1p(a_mu) + y * (jnp.log(alpha) + eta))


# ------------------------------------------------------------------------ shared checks


def _check_binary(y, inside, batched, name):
    bad = inside & ~((y == 0) | (y == 1))
    if np.any(bad):
        vals = np.unique(y[bad])[:5].tolist()
        raise ValueError(f"y must be binary (0 or 1) for {name}; got values such as {vals}"
                         f"{in_datasets(bad.any(1), batched)}. Recode the response.")
    for v in (0, 1):
        same = np.all(np.where(inside, y == v, True), axis=1)
        if np.any(same):
            raise ValueError(f"every y is {v}{in_datasets(same, batched)}: the intercept's MLE is "
                             f"{'-' if v == 0 else '+'}infinity and {name} has no MLE. Both "
                             "outcomes must occur.")


def _check_counts(y, inside, batched, name):
    bad = inside & ~((y >= 0) & (np.floor(y) == y))
    if np.any(bad):
        vals = np.unique(y[bad])[:5].tolist()
        raise ValueError(f"y must hold non-negative integer counts for {name}; got values such "
                         f"as {vals}{in_datasets(bad.any(1), batched)}. Use Gamma or Linear for "
                         "continuous responses.")
    zero = np.all(np.where(inside, y == 0, True), axis=1)
    if np.any(zero):
        raise ValueError(f"every count is 0{in_datasets(zero, batched)}: the MLE of the rate is 0 "
                         f"(the intercept goes to -infinity) and {name} has no MLE.")


def _single_column_separation(X, y, inside, names, batched, name):
    """A column whose values split y = 0 from y = 1 (possibly with ties at the split): its
    coefficient's MLE is infinite. Exact for one column; ``separation_flags`` checks the
    fit for separation by a combination of columns."""
    big, small = np.inf, -np.inf
    for j in range(X.shape[-1]):
        x = X[..., j]
        xin = np.where(inside, x, np.nan)
        const = np.nanmax(xin, axis=1) == np.nanmin(xin, axis=1)
        m0_hi = np.max(np.where(inside & (y == 0), x, small), axis=1)
        m0_lo = np.min(np.where(inside & (y == 0), x, big), axis=1)
        m1_hi = np.max(np.where(inside & (y == 1), x, small), axis=1)
        m1_lo = np.min(np.where(inside & (y == 1), x, big), axis=1)
        sep = ~const & ((m0_hi <= m1_lo) | (m1_hi <= m0_lo))
        if np.any(sep):
            k = int(np.flatnonzero(sep)[0])
            up = m0_hi[k] <= m1_lo[k]
            split = m0_hi[k] if up else m1_hi[k]
            rel = (f"every y=1 has {names[j]} >= {split:.6g} >= every y=0" if up else
                   f"every y=0 has {names[j]} >= {split:.6g} >= every y=1")
            raise ValueError(f"perfect separation{in_datasets(sep, batched)}: {rel}, so the "
                             f"coefficient of {names[j]!r} diverges to "
                             f"{'+' if up else '-'}infinity and {name} has no MLE. Drop or "
                             "merge that variable, or use a penalised fit.")


# ------------------------------------------------------------------------ the models


@dataclasses.dataclass(frozen=True)
class Linear(Model):
    """Gaussian linear regression ``y ~ N(X beta + offset, sigma^2)`` by maximum likelihood.

    The MLE of ``sigma^2`` is ``RSS / n`` (not the unbiased ``RSS / (n - p)``), and the
    standard errors of ``beta`` are ``sigma_mle (X'X)^-1/2``: statsmodels' OLS ones times
    ``sqrt((n - p) / n)``. The start is the least-squares solution itself.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([-1.1, -0.4, 0.6, 0.3, 1.5, 1.4, 2.6, 3.1])
      >>> res = mj.models.Linear().fit(x, y)            # x (n,) or (n, d); const prepended
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'sigma'), [1.0, 2.0])
      >>> [round(float(p), 3) for p in res.predict(np.array([0.0, 1.0]))]
      [1.0, 3.0]
      >>> print(res.summary())
      Linear (Gaussian) regression
      mlejax fit: method=newton, status=CONVERGED
      ...
    """

    intercept: bool = True
    cluster_correction = "linear"    # Stata's regress: G/(G-1) (N-1)/(N-K)
    var_weights_ok = True

    def describe(self) -> str:
        return "Linear (Gaussian) regression"

    def robust_k(self, res):
        return res.df_model - 1     # the coefficients: sigma is not counted, as in regress

    def constraints(self):
        return {"sigma": C.positive}

    def loglik_fn(self):
        return linear_loglik

    def n_extra_params(self) -> int:
        return 1

    def start(self, X, y, offset, w):
        beta = wls(X, y - offset, w)
        r = y - offset - X @ beta
        return {"beta": beta, "sigma": jnp.sqrt(jnp.sum(w * r * r) / jnp.sum(w))}

    def initial(self, X, y, offset, w, extra):
        vw = extra.get("var_weights", 1.0)
        beta = wls(X, y - offset, w * vw)
        r = y - offset - X @ beta
        return {"beta": beta, "sigma": jnp.sqrt(jnp.sum(w * vw * r * r) / jnp.sum(w))}

    def expected_information(self, params, data, w):
        s2 = params["sigma"] ** 2
        return {"beta": xtwx(data["X"], w * _vw(data) / s2),
                "sigma": 2.0 * jnp.sum(w) / s2}

    def mean(self, params, X, offset):
        return X @ params["beta"] + offset

    def check_separation(self, X, y, inside, names, batched):
        del names
        check_exact_fit(X, y, inside, batched, "the linear regression")


class _Binary(Model):
    """Shared by Logistic and Probit: 0/1 response, separation checks."""

    def constraints(self):
        return {}

    def start(self, X, y, offset, w):
        del y, offset, w
        return {"beta": jnp.zeros(X.shape[-1], X.dtype)}

    def check_y(self, y, inside, batched):
        _check_binary(y, inside, batched, self.describe())

    def check_separation(self, X, y, inside, names, batched):
        _single_column_separation(X, y, inside, names, batched, self.describe())

    def extra_of(self, res, design, warn):
        return {"separated": separation_flags(res.params["beta"], design, warn)}


@dataclasses.dataclass(frozen=True)
class Logistic(_Binary):
    """Logistic regression ``P(y = 1) = 1 / (1 + exp(-(X beta + offset)))``.

    Perfect separation by one column raises ``ValueError`` naming the column; separation by a
    combination of columns is detected after the fit (``extra["separated"]``) with a
    :class:`SeparationWarning` naming the diverging coefficient.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([0, 0, 1, 0, 1, 1, 1, 1])
      >>> res = mj.models.Logistic().fit(x, y)
      >>> res.param_names, [round(float(b), 3) for b in res.coef], bool(res.extra["separated"])
      (('const', 'x1'), [1.282, 4.418], False)
      >>> [round(float(p), 3) for p in res.predict(np.array([0.0, 1.0]))]   # P(y = 1)
      [0.783, 0.997]
    """

    intercept: bool = True

    def describe(self) -> str:
        return "Logistic regression"

    def loglik_fn(self):
        return logistic_loglik

    def expected_information(self, params, data, w):
        eta = _eta(params, data)
        return {"beta": xtwx(data["X"], w * jax.nn.sigmoid(eta) * jax.nn.sigmoid(-eta))}

    def mean(self, params, X, offset):
        return jax.nn.sigmoid(X @ params["beta"] + offset)


@dataclasses.dataclass(frozen=True)
class Probit(_Binary):
    """Probit regression ``P(y = 1) = Phi(X beta + offset)`` (separation as for Logistic).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([0, 0, 1, 0, 1, 1, 1, 1])
      >>> res = mj.models.Probit().fit(x, y)
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1'), [0.776, 2.7])
    """

    intercept: bool = True

    def describe(self) -> str:
        return "Probit regression"

    def loglik_fn(self):
        return probit_loglik

    def expected_information(self, params, data, w):
        eta = _eta(params, data)
        return {"beta": xtwx(data["X"], w * jnp.exp(2.0 * jst.norm.logpdf(eta)
                                                     - jsp.log_ndtr(eta) - jsp.log_ndtr(-eta)))}

    def mean(self, params, X, offset):
        return jsp.ndtr(X @ params["beta"] + offset)


@dataclasses.dataclass(frozen=True)
class Poisson(Model):
    """Poisson regression ``y ~ Poisson(exposure * exp(X beta + offset))`` (log link).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> counts = np.array([1, 0, 2, 1, 3, 2, 4, 6])
      >>> res = mj.models.Poisson().fit(x, counts, exposure=np.full(8, 10.0))
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1'), [-1.686, 1.103])
      >>> [round(float(m), 2) for m in res.predict(np.array([0.0]), exposure=np.array([100.0]))]
      [18.53]
    """

    intercept: bool = True
    log_link = True
    var_weights_ok = True

    def describe(self) -> str:
        return "Poisson regression (log link)"

    def loglik_fn(self):
        return poisson_loglik

    def start(self, X, y, offset, w):
        return {"beta": wls(X, jnp.log(y + 0.5) - offset, w)}

    def initial(self, X, y, offset, w, extra):
        return self.start(X, y, offset, w * extra.get("var_weights", 1.0))

    def expected_information(self, params, data, w):
        return {"beta": xtwx(data["X"], w * _vw(data) * jnp.exp(_eta(params, data)))}

    def check_y(self, y, inside, batched):
        _check_counts(y, inside, batched, "Poisson regression")

    def mean(self, params, X, offset):
        return jnp.exp(X @ params["beta"] + offset)


@dataclasses.dataclass(frozen=True)
class NegativeBinomial(Model):
    """Negative binomial (NB2) regression: mean ``exp(X beta + offset)``, variance
    ``mu + alpha mu^2``, ``alpha > 0`` estimated with ``beta`` (statsmodels'
    ``NegativeBinomial(loglike_method="nb2")``).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> counts = np.array([0, 5, 1, 0, 9, 2, 12, 3])    # over-dispersed
      >>> res = mj.models.NegativeBinomial().fit(x, counts)
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('alpha', 'const', 'x1'), [1.252, 0.858])
      >>> round(float(res.params["alpha"]), 3)
      0.838
    """

    intercept: bool = True
    log_link = True

    def describe(self) -> str:
        return "Negative binomial (NB2) regression (log link)"

    def constraints(self):
        return {"alpha": C.positive}

    def loglik_fn(self):
        return negbin_loglik

    def n_extra_params(self) -> int:
        return 1

    def start(self, X, y, offset, w):
        beta = wls(X, jnp.log(y + 0.5) - offset, w)
        mu = jnp.exp(X @ beta + offset)
        alpha = jnp.sum(w * ((y - mu) ** 2 - mu)) / jnp.sum(w * mu * mu)
        return {"alpha": jnp.clip(alpha, 0.05, 5.0), "beta": beta}

    def expected_information(self, params, data, w):
        mu = jnp.exp(_eta(params, data))
        # alpha: its expected information is an infinite sum; the observed block is used,
        # as MASS's theta.ml (glm.nb) does for theta.
        return {"beta": xtwx(data["X"], w * mu / (1.0 + params["alpha"] * mu)), "alpha": None}

    def check_y(self, y, inside, batched):
        _check_counts(y, inside, batched, "negative binomial regression")

    def mean(self, params, X, offset):
        return jnp.exp(X @ params["beta"] + offset)


class _PositiveGLM(Model):
    """Shared by Gamma and InverseGaussian: ``y > 0``, a link of ``LINKS``, one dispersion
    leaf, ``var_weights``; the start is least squares of ``g(y)`` moved inside the link's
    domain, and the Pearson dispersion at it."""

    family = ""
    links: tuple[str, ...] = ()
    var_weights_ok = True
    link: str

    def __post_init__(self):
        if self.link not in self.links:
            raise ValueError(f"{self.family}(link=...) must be one of "
                             f"{', '.join(repr(k) for k in self.links)}; got {self.link!r}.")

    @property
    def log_link(self) -> bool:  # type: ignore[override]
        return self.link == "log"

    def describe(self) -> str:
        return f"{self.family} regression ({self.link} link)"

    def n_extra_params(self) -> int:
        return 1

    def initial(self, X, y, offset, w, extra):
        lk = LINKS[self.link]
        vw = extra.get("var_weights", 1.0)
        g = lk.link(y)
        beta = wls(X, g - offset, w * vw)
        margin = 0.1 * jnp.min(jnp.where(w > 0, g, jnp.inf))
        beta = feasible_start(X, beta, offset, w, lk.domain, margin)
        mu = lk.inverse(lk.safe(X @ beta + offset))
        phi = jnp.sum(w * vw * (y - mu) ** 2 / self.variance(mu)) / jnp.sum(w)
        return {"beta": beta, **self.dispersion_start(phi)}

    def check_y(self, y, inside, batched):
        bad = inside & ~(y > 0)
        if np.any(bad):
            vals = np.unique(y[bad])[:5].tolist()
            raise ValueError(f"y must be strictly positive for {self.family} regression; got "
                             f"values such as {vals}{in_datasets(bad.any(1), batched)}.")

    def mean(self, params, X, offset):
        return LINKS[self.link].inverse(X @ params["beta"] + offset)

    def expected_information(self, params, data, w):
        lk = LINKS[self.link]
        eta = _eta(params, data)
        mu = lk.inverse(lk.safe(eta))
        W = w * _vw(data) * link_weight(lk, eta) / (self.variance(mu) * self.phi(params))
        return {"beta": xtwx(data["X"], W), **self.dispersion_information(params, data, w)}


@dataclasses.dataclass(frozen=True)
class Gamma(_PositiveGLM):
    """Gamma regression: ``y > 0`` with mean ``mu = g^-1(X beta + offset)`` for the link
    ``g``: ``"log"`` (the default), ``"inverse"`` (canonical, ``mu = 1 / eta``) or
    ``"identity"`` (``mu = eta``; the last two need ``eta > 0``), and shape ``nu`` (variance
    ``mu^2 / nu``, dispersion ``1 / nu``) estimated by maximum likelihood with ``beta``.

    The score for ``beta`` does not involve ``nu``, so ``beta`` equals statsmodels'
    ``GLM(family=Gamma(link))`` estimate; statsmodels' default scale is the Pearson
    estimate, not the MLE ``1 / nu``. ``var_weights=v`` gives observation ``i`` the shape
    ``v_i nu`` (statsmodels' GLM ``var_weights``).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([0.6, 1.3, 0.8, 1.9, 1.2, 2.8, 1.7, 3.5])
      >>> res = mj.models.Gamma().fit(x, y)                  # link="log"
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'shape'), [0.443, 0.703])
      >>> round(float(res.params["shape"]), 2)
      10.71
      >>> res = mj.models.Gamma(link="identity").fit(x, y)
      >>> [round(float(b), 3) for b in res.coef]
      [1.716, 1.061]
    """

    intercept: bool = True
    link: str = "log"
    family = "Gamma"
    links = ("log", "inverse", "identity")

    def constraints(self):
        return {"shape": C.positive}

    def loglik_fn(self):
        return gamma_loglik_fn(self.link)

    @staticmethod
    def variance(mu):
        return mu * mu

    @staticmethod
    def phi(params):
        return 1.0 / params["shape"]

    @staticmethod
    def dispersion_start(phi):
        return {"shape": jnp.clip(1.0 / phi, 0.1, 1e4)}

    @staticmethod
    def dispersion_information(params, data, w):
        # d^2 l / d nu^2 = -v^2 (trigamma(v nu) - 1 / (v nu)) does not involve y: expected
        # and observed agree.
        k = params["shape"] * _vw(data) * jnp.ones_like(data["y"])
        v = k / params["shape"]
        return {"shape": jnp.sum(w * v * v * (jsp.polygamma(1, k) - 1.0 / k))}


@dataclasses.dataclass(frozen=True)
class InverseGaussian(_PositiveGLM):
    """Inverse Gaussian regression: ``y > 0`` with mean ``mu = g^-1(X beta + offset)`` and
    variance ``phi mu^3``; the link ``"inverse_squared"`` (canonical, ``mu = eta^-1/2``, the
    default), ``"log"``, ``"inverse"`` or ``"identity"`` (all but ``"log"`` need
    ``eta > 0``); the dispersion ``phi`` is estimated by maximum likelihood with ``beta``
    (statsmodels' ``GLM(family=InverseGaussian(link))`` estimates ``beta`` alike, and its
    ``scale`` by Pearson's statistic instead). ``var_weights=v``: dispersion ``phi / v_i``.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([0.6, 1.3, 0.8, 1.9, 1.2, 2.8, 1.7, 3.5])
      >>> res = mj.models.InverseGaussian(link="log").fit(x, y)
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'phi'), [0.448, 0.733])
    """

    intercept: bool = True
    link: str = "inverse_squared"
    family = "InverseGaussian"
    links = ("inverse_squared", "log", "inverse", "identity")

    def constraints(self):
        return {"phi": C.positive}

    def loglik_fn(self):
        return inverse_gaussian_loglik_fn(self.link)

    @staticmethod
    def variance(mu):
        return mu ** 3

    @staticmethod
    def phi(params):
        return params["phi"]

    @staticmethod
    def dispersion_start(phi):
        return {"phi": jnp.clip(phi, 1e-6, 1e6)}

    @staticmethod
    def dispersion_information(params, data, w):
        del data
        return {"phi": 0.5 * jnp.sum(w) / params["phi"] ** 2}


@dataclasses.dataclass(frozen=True)
class Binomial(Model):
    """Binomial regression: ``y_i`` successes out of ``trials_i`` (keyword ``trials=``, per
    observation; default 1, Bernoulli) with success probability ``mu = g^-1(X beta +
    offset)``, the link ``"logit"`` (default), ``"probit"``, ``"cloglog"``
    (``1 - exp(-exp(eta))``), ``"log"`` (``exp(eta)``, needs ``eta < 0``) or ``"cauchit"``
    (``1/2 + atan(eta) / pi``).

    The log-likelihood includes the binomial coefficient (statsmodels' ``GLM(family=
    Binomial(link))`` llf with ``endog = [successes, failures]``). ``y`` must hold counts:
    for proportions ``p_i`` of ``n_i`` trials pass ``y = p * n`` and ``trials=n``.
    ``var_weights=v`` multiplies observation ``i``'s log-likelihood by ``v_i``
    (statsmodels' meaning). ``predict`` returns probabilities, or the expected counts
    ``trials * mu`` when given ``trials=``.

    The log link starts inside ``eta < 0`` (the start is shifted along the intercept) and the
    log-likelihood is ``-inf`` outside, so no step leaves it; a fit whose estimate sits on the
    boundary (a fitted probability of 1) warns with a :class:`~mlejax.FitWarning`
    (``extra["boundary"]``); ``predict`` is NaN where a new ``eta >= 0``.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 6)
      >>> successes, trials = np.array([1, 2, 4, 3, 7, 8]), np.array([9, 8, 10, 6, 9, 9])
      >>> res = mj.models.Binomial(link="probit").fit(x, successes, trials=trials)
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1'), [-0.023, 1.198])
      >>> [round(float(p), 3) for p in res.predict(np.array([0.0]))]
      [0.491]
    """

    intercept: bool = True
    link: str = "logit"
    inputs = ("trials",)
    var_weights_ok = True

    def __post_init__(self):
        if self.link not in BINOMIAL_LINKS:
            raise ValueError(f"Binomial(link=...) must be one of "
                             f"{', '.join(repr(k) for k in BINOMIAL_LINKS)}; got {self.link!r}.")

    @property
    def log_link(self) -> bool:  # type: ignore[override]
        return self.link == "log"

    def describe(self) -> str:
        return f"Binomial regression ({self.link} link)"

    def loglik_fn(self):
        return binomial_loglik_fn(self.link)

    def prepare_inputs(self, inputs, design, predict):
        trials = inputs["trials"]
        xp = jnp if design.traced else np
        dt = np.dtype(design.dtype)
        rows = design.X.shape[:-1]
        if predict:
            return ({}, {}) if trials is None else (
                {"trials": xp.broadcast_to(xp.asarray(trials, dtype=dt), rows)}, {})
        t = xp.ones(rows, dt) if trials is None else xp.asarray(trials, dtype=dt)
        if t.shape != rows:
            raise ValueError(f"trials must have the shape of y, {rows}; got {t.shape}.")
        if not design.traced:
            self._check_counts(design, t)
        return {"trials": t}, {}

    def _check_counts(self, design, t):
        b = design.batched
        y, w = design.y if b else design.y[None], design.weights
        inside = np.isfinite(y) & (True if w is None else (w if b else w[None]) > 0)
        extreme = check_binomial_counts(y, t if b else t[None], inside, b, self.describe())
        X = design.X if b else design.X[None]
        if np.all(extreme) and np.all(np.isfinite(X)):
            _single_column_separation(X, (y == (t if b else t[None])).astype(float), inside,
                                      design.names, b, self.describe())

    def initial(self, X, y, offset, w, extra):
        lk = BINOMIAL_LINKS[self.link]
        n = extra["trials"]
        mu0 = (y + 0.5) / (n + 1.0)
        beta = irls_start(X, y / n, offset, w * n * extra.get("var_weights", 1.0), lk, mu0,
                          mu0 * (1.0 - mu0))
        return {"beta": feasible_start(X, beta, offset, w, lk.domain, 0.05)}

    def mean_at(self, params, X, offset, extra):
        mu = self.mean(params, X, offset)
        return mu * extra["trials"] if "trials" in extra else mu

    def mean(self, params, X, offset):
        lk = BINOMIAL_LINKS[self.link]
        eta = X @ params["beta"] + offset
        return jnp.where(lk.valid(eta), jnp.exp(lk.log_probs(lk.safe(eta))[0]), jnp.nan)

    def expected_information(self, params, data, w):
        lk = BINOMIAL_LINKS[self.link]
        eta = lk.safe(_eta(params, data))
        log_p, log_q = lk.log_probs(eta)
        W = (w * _vw(data) * data["trials"]
             * jnp.exp(2.0 * lk.log_dmu(eta) - log_p - log_q))
        return {"beta": xtwx(data["X"], W)}

    def extra_of(self, res, design, warn):
        y01 = design.y / design.extra["trials"]
        if self.link != "log":
            d01 = dataclasses.replace(design, y=y01)
            return {"separated": separation_flags(res.params["beta"], d01, warn)}
        eta = jnp.einsum("...nd,...d->...n", design.X, res.params["beta"]) + design.offset
        inside = True if design.weights is None else design.weights > 0
        top = np.asarray(jnp.max(jnp.where(inside, eta, -jnp.inf), axis=-1))
        edge = top > -1e-6
        if warn and np.any(edge):
            warnings.warn(f"Binomial(link='log'): a fitted probability reaches 1 (max eta = "
                          f"{float(np.max(top)):.3g}; the link needs eta < 0)"
                          f"{in_datasets(np.atleast_1d(edge), design.batched)}: the MLE is on "
                          "the boundary of the parameter space and its standard errors do not "
                          "apply. Use another link (logit, cloglog), or fix the model.",
                          FitWarning, stacklevel=4)
        return {"boundary": jnp.asarray(edge)}


@dataclasses.dataclass(frozen=True)
class Tweedie(Model):
    """Tweedie regression, ``1 < power < 2``: the compound Poisson-gamma distribution (an
    exact mass at 0, continuous above) with mean ``mu = exp(X beta + offset)`` and variance
    ``phi mu^power``; ``power`` is fixed (static), the dispersion ``phi`` estimated by
    maximum likelihood with ``beta``. The density is the series of Dunn & Smyth (2005) (see
    :mod:`mlejax._models.families`). ``beta``'s score does not involve ``phi``, so ``beta``
    equals statsmodels' ``GLM(family=Tweedie(var_power=power))`` estimate.
    ``var_weights=v``: dispersion ``phi / v_i``.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([0.0, 1.3, 0.0, 1.9, 1.2, 0.0, 1.7, 3.5])
      >>> res = mj.models.Tweedie(power=1.5).fit(x, y)
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'phi'), [0.001, 0.932])
      >>> round(float(res.params["phi"]), 3)
      1.785
    """

    power: float
    link: str = "log"
    intercept: bool = True
    log_link = True
    var_weights_ok = True

    def __post_init__(self):
        if not 1.0 < float(self.power) < 2.0:
            raise ValueError(f"Tweedie(power=...) must be strictly between 1 and 2 (the "
                             f"compound Poisson-gamma range); got {self.power}.")
        if self.link != "log":
            raise ValueError(f"Tweedie(link=...) must be 'log'; got {self.link!r}.")

    def describe(self) -> str:
        return f"Tweedie regression (power {float(self.power):g}, log link)"

    def constraints(self):
        return {"phi": C.positive}

    def loglik_fn(self):
        return tweedie_loglik

    def extra_data(self, dtype) -> dict:
        return {"power": jnp.asarray(self.power, dtype)}

    def n_extra_params(self) -> int:
        return 1

    def initial(self, X, y, offset, w, extra):
        vw = extra.get("var_weights", 1.0)
        p = float(self.power)
        mu0 = 0.5 * (y + jnp.sum(w * y) / jnp.sum(w))
        beta = irls_start(X, y, offset, w * vw, LINKS["log"], mu0, mu0 ** p)
        mu = jnp.exp(X @ beta + offset)
        phi = jnp.sum(w * vw * (y - mu) ** 2 / mu ** p) / jnp.sum(w)
        return {"beta": beta, "phi": jnp.clip(phi, 1e-6, 1e6)}

    def check_y(self, y, inside, batched):
        bad = inside & ~(y >= 0)
        if np.any(bad):
            raise ValueError(f"y must be non-negative for Tweedie regression; got values such "
                             f"as {np.unique(y[bad])[:5].tolist()}"
                             f"{in_datasets(bad.any(1), batched)}.")
        zero = np.all(np.where(inside, y == 0, True), axis=1)
        if np.any(zero):
            raise ValueError(f"every y is 0{in_datasets(zero, batched)}: the mean's MLE is 0 "
                             "and Tweedie regression has no MLE.")

    def mean(self, params, X, offset):
        return jnp.exp(X @ params["beta"] + offset)

    def expected_information(self, params, data, w):
        mu = jnp.exp(_eta(params, data))
        # phi: its expected information needs the series' second moments; the observed
        # block is used.
        W = w * _vw(data) * mu ** (2.0 - data["power"]) / params["phi"]
        return {"beta": xtwx(data["X"], W), "phi": None}
