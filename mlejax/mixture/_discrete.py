"""Mixtures of discrete data: products of independent Bernoulli variables
(:class:`BernoulliMixture`) and of independent Poisson counts (:class:`PoissonMixture`)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlog1py, xlogy

from mlejax import constraints as C
from mlejax.mixture._base import HI, Mixture, counts

__all__ = ["BernoulliMixture", "PoissonMixture"]


@dataclasses.dataclass(frozen=True)
class _ProductMixture(Mixture):
    """What both families share: the settings, and one ``(k, d)`` parameter (named by
    ``_sort_by``, constrained by ``_constraint``) beside the weights."""

    n_components: int
    init_params: str = "kmeans"
    max_steps: int = 3000
    ftol: float | None = None
    kmeans_steps: int = 100
    xtol: float | None = None
    _sort_by = ""
    _constraint = C.real

    def __post_init__(self):
        self._validate_settings()

    def param_shapes(self, d):
        return {self._sort_by: (self.n_components, d), "weights": (self.n_components,)}

    def constraints(self):
        return {self._sort_by: self._constraint, "weights": C.simplex}

    def n_parameters(self, d):
        return (self.n_components - 1) + self.n_components * d


@dataclasses.dataclass(frozen=True)
class BernoulliMixture(_ProductMixture):
    """A mixture of products of independent Bernoulli variables (binary data), by EM.

    ``log f(x_i | p_j) = sum_a x_ia log p_ja + (1 - x_ia) log(1 - p_ja)``; the M-step is
    ``p_j = sum_i r_ij x_i / n_j``. A probability may reach exactly 0 or 1 (the MLE when a
    component's observations all agree on a feature); ``0 log 0`` is taken as 0.

    Args: as :class:`GaussianMixture`, without the covariance settings.

    Example:
      >>> p = jnp.where(jnp.arange(200)[:, None] < 100, 0.9, 0.1)   # two groups, 6 features
      >>> x = (jax.random.uniform(jax.random.key(0), (200, 6)) < p).astype(float)
      >>> res = mj.BernoulliMixture(2).fit(x, key=jax.random.key(1))
      >>> res.params["probs"].shape, sorted(round(float(w), 1) for w in res.params["weights"])
      ((2, 6), [0.5, 0.5])
    """

    _sort_by = "probs"
    _constraint = C.unit_interval

    def joint_loglik(self, params, x):
        p = params["probs"]
        # xlogy: 0 log 0 = 0, so a probability at exactly 0 or 1 gives -inf, never NaN.
        lf = jnp.sum(xlogy(x[:, None, :], p[None]) + xlog1py(1.0 - x[:, None, :], -p[None]),
                     axis=-1)
        return jnp.log(params["weights"]) + lf

    def m_step(self, resp, x):
        nk = counts(resp)
        probs = jnp.matmul(resp.T, x, precision=HI) / nk[:, None]
        return {"probs": jnp.clip(probs, 0.0, 1.0), "weights": nk / jnp.sum(nk)}

    def check_values(self, x, name):
        if not np.all((x == 0) | (x == 1)):
            raise ValueError(f"{name} must be binary (0 or 1) for BernoulliMixture; found "
                             f"other values such as {x[(x != 0) & (x != 1)][:3]}.")


@dataclasses.dataclass(frozen=True)
class PoissonMixture(_ProductMixture):
    """A mixture of products of independent Poisson variables (counts), by EM.

    ``log f(x_i | lambda_j) = sum_a x_ia log lambda_ja - lambda_ja - log x_ia!``; the M-step
    is ``lambda_j = sum_i r_ij x_i / n_j``.

    Args: as :class:`GaussianMixture`, without the covariance settings.

    Example:
      >>> k1, k2 = jax.random.split(jax.random.key(2))
      >>> x = jnp.concatenate([jax.random.poisson(k1, 2.0, (100, 1)),
      ...                      jax.random.poisson(k2, 12.0, (100, 1))]).astype(float)
      >>> res = mj.PoissonMixture(2).fit(x, key=jax.random.key(0))
      >>> sorted(round(float(r)) for r in res.params["rates"][:, 0])   # rates 2 and 12
      [2, 12]
    """

    _sort_by = "rates"
    _constraint = C.positive

    def joint_loglik(self, params, x):
        lam = params["rates"]
        lf = jnp.sum(xlogy(x[:, None, :], lam[None]) - lam[None], axis=-1)
        lf = lf - jnp.sum(gammaln(x + 1.0), axis=-1)[:, None]
        return jnp.log(params["weights"]) + lf

    def m_step(self, resp, x):
        nk = counts(resp)
        return {"rates": jnp.matmul(resp.T, x, precision=HI) / nk[:, None],
                "weights": nk / jnp.sum(nk)}

    def check_values(self, x, name):
        if not np.all((x >= 0) & (x == np.round(x))):
            raise ValueError(f"{name} must hold non-negative integer counts for "
                             "PoissonMixture.")

