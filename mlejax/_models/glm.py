"""Regressions on the GLM families, fitted by maximum likelihood with a design matrix.

Each model maximises ``sum_i w_i log f(y_i | eta_i, ...)`` with the linear predictor
``eta = X beta + offset`` (``offset`` includes ``log(exposure)``):

========================  ==========================  ======================================
model                     mean                        extra parameters
========================  ==========================  ======================================
``Linear``                ``eta``                     ``sigma`` (MLE: RSS / n, not n - p)
``Logistic``              ``1 / (1 + exp(-eta))``     none
``Probit``                ``Phi(eta)``                none
``Poisson``               ``exp(eta)``                none
``NegativeBinomial``      ``exp(eta)``                ``alpha``: var = mu + alpha mu^2 (NB2)
``Gamma``                 ``exp(eta)`` (or 1 / eta)   ``shape`` nu: var = mu^2 / nu
========================  ==========================  ======================================

Standard errors are the inverse observed information at the estimate (for the canonical
links, Logistic and Poisson, it equals the expected information statsmodels reports).
``res.stderr_robust`` / ``res.cov_robust`` are the HC0 sandwich; ``mj.robust_cov(res,
groups=...)`` the cluster-robust one, whose default small-sample factor is Stata's for the
model's command (``G`` clusters, ``N`` observations, ``K`` coefficients; overridden with
``correction=``, see :func:`mlejax.robust_cov`):

========================  =======================  =========================================
model                     cluster factor           as
========================  =======================  =========================================
``Linear``                G/(G-1) (N-1)/(N-K)      ``regress, vce(cluster)``; statsmodels OLS
``Logistic``, ``Probit``  G/(G-1)                  ``logit`` / ``probit, vce(cluster)``
``Poisson``               G/(G-1)                  ``poisson, vce(cluster)``
``NegativeBinomial``      G/(G-1)                  ``nbreg, vce(cluster)``
``Gamma``                 G/(G-1)                  ``glm, vce(cluster)``
========================  =======================  =========================================

(statsmodels' discrete models and GLM apply ``G/(G-1) (N-1)/(N-K)`` to every class by
default, ``K`` counting every parameter: ``correction="linear"`` gives theirs.)

References:
  McCullagh & Nelder, Generalized Linear Models (1989); Cameron & Trivedi, Regression
  Analysis of Count Data (2013), ch. 3 (NB2).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp
from jax.scipy import stats as jst

from mlejax import constraints as C
from mlejax._models.base import Model, separation_flags
from mlejax._models.common import check_exact_fit, in_datasets, wls

__all__ = ["Linear", "Logistic", "Probit", "Poisson", "NegativeBinomial", "Gamma"]


def _eta(params, data):
    return data["X"] @ params["beta"] + data["offset"]


# ------------------------------------------------------------------------ log-likelihoods
# Module level: one function object each, so every fit with same-shaped data reuses one
# compiled program.


def linear_loglik(params, data):
    return jst.norm.logpdf(data["y"], _eta(params, data), params["sigma"])


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
    return y * eta - jnp.exp(eta) - jsp.gammaln(y + 1.0)


def negbin_loglik(params, data):
    eta = _eta(params, data)
    y, alpha = data["y"], params["alpha"]
    r = 1.0 / alpha
    a_mu = alpha * jnp.exp(eta)
    return (jsp.gammaln(y + r) - jsp.gammaln(r) - jsp.gammaln(y + 1.0)
            - (r + y) * jnp.log1p(a_mu) + y * (jnp.log(alpha) + eta))


def _gamma_ll(y, mu, nu):
    return nu * jnp.log(nu / mu) + (nu - 1.0) * jnp.log(y) - nu * y / mu - jsp.gammaln(nu)


def gamma_log_loglik(params, data):
    return _gamma_ll(data["y"], jnp.exp(_eta(params, data)), params["shape"])


def gamma_inverse_loglik(params, data):
    return _gamma_ll(data["y"], 1.0 / _eta(params, data), params["shape"])


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

    def describe(self) -> str:
        return "Poisson regression (log link)"

    def loglik_fn(self):
        return poisson_loglik

    def start(self, X, y, offset, w):
        return {"beta": wls(X, jnp.log(y + 0.5) - offset, w)}

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

    def check_y(self, y, inside, batched):
        _check_counts(y, inside, batched, "negative binomial regression")

    def mean(self, params, X, offset):
        return jnp.exp(X @ params["beta"] + offset)


@dataclasses.dataclass(frozen=True)
class Gamma(Model):
    """Gamma regression: ``y > 0`` with mean ``mu = exp(X beta + offset)`` (``link="log"``,
    the default) or ``1 / (X beta + offset)`` (``link="inverse"``, canonical), and shape
    ``nu`` (variance ``mu^2 / nu``) estimated by maximum likelihood with ``beta``.

    The score for ``beta`` does not involve ``nu``, so ``beta`` equals statsmodels'
    ``GLM(family=Gamma(link))`` estimate; statsmodels' default scale is the Pearson
    estimate, not the MLE ``1 / nu``.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([0.6, 1.3, 0.8, 1.9, 1.2, 2.8, 1.7, 3.5])
      >>> res = mj.models.Gamma().fit(x, y)                  # link="log"
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'shape'), [0.443, 0.703])
      >>> round(float(res.params["shape"]), 2)
      10.71
    """

    intercept: bool = True
    link: str = "log"

    def __post_init__(self):
        if self.link not in ("log", "inverse"):
            raise ValueError(f"Gamma(link=...) must be 'log' or 'inverse'; got {self.link!r}.")

    @property
    def log_link(self) -> bool:  # type: ignore[override]
        return self.link == "log"

    def describe(self) -> str:
        return f"Gamma regression ({self.link} link)"

    def constraints(self):
        return {"shape": C.positive}

    def loglik_fn(self):
        return gamma_log_loglik if self.link == "log" else gamma_inverse_loglik

    def n_extra_params(self) -> int:
        return 1

    def start(self, X, y, offset, w):
        if self.link == "log":
            beta = wls(X, jnp.log(y) - offset, w)
            mu = jnp.exp(X @ beta + offset)
        else:
            beta = wls(X, 1.0 / y - offset, w)
            mu = 1.0 / (X @ beta + offset)
        phi = jnp.sum(w * ((y - mu) / mu) ** 2) / jnp.sum(w)
        return {"beta": beta, "shape": jnp.clip(1.0 / phi, 0.1, 1e4)}

    def check_y(self, y, inside, batched):
        bad = inside & ~(y > 0)
        if np.any(bad):
            vals = np.unique(y[bad])[:5].tolist()
            raise ValueError(f"y must be strictly positive for Gamma regression; got values "
                             f"such as {vals}{in_datasets(bad.any(1), batched)}.")

    def mean(self, params, X, offset):
        eta = X @ params["beta"] + offset
        return jnp.exp(eta) if self.link == "log" else 1.0 / eta
