"""Confidence intervals for every parameter: Wald (from a covariance) or profile
likelihood (the search lives in :mod:`mlejax._inference.profile`)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from mlejax._inference.common import as_fit, check_level, check_result, lead_shape, z_quantile
from mlejax._inference.intervals import ConfidenceIntervals
from mlejax._inference.profile import profile_ci
from mlejax._inference.robust import resolve_cov
from mlejax.result import FitResult

__all__ = ["confint", "wald"]


def wald(res: FitResult, level: float, cov: Any, groups: Any, source: Any = None,
          correction: Any = None) -> ConfidenceIntervals:
    c = resolve_cov(res, cov, groups, source=source, correction=correction)
    est = jnp.asarray(res.flat_params())
    se = jnp.sqrt(jnp.diagonal(c, axis1=-2, axis2=-1))
    z = z_quantile(level, est.dtype)
    status = jnp.zeros(est.shape + (2,), jnp.int32)
    return ConfidenceIntervals(est - z * se, est + z * se, est, status, level, "wald",
                               res.param_names)



def confint(res: Any, level: float = 0.95, *, method: str = "wald", which: Any = None,
            cov: Any = "observed", groups: Any = None, correction: Any = None,
            refit_method: str | None = None, max_steps: int | None = None,
            max_iter: int = 60) -> ConfidenceIntervals:
    """Confidence intervals for every parameter: Wald, or profile likelihood.

    Wald: ``estimate +- z_(1+level)/2 * stderr`` from ``cov`` (the observed information by
    default; ``cov="robust"`` for the sandwich, with ``groups=`` for clusters).

    Profile likelihood: the set ``{theta_j : 2 (loglik_max - loglik_profile(theta_j)) <= q}``
    with ``q`` the chi-squared(1) quantile at ``level`` and ``loglik_profile`` the log-likelihood
    maximised over the other parameters. Each endpoint is found by a safeguarded Newton search
    on the signed root ``r(t) = sqrt(2 (loglik_max - loglik_profile))``, nearly linear in the
    distance ``t`` from the estimate in the solver's coordinates, with derivative
    ``-dloglik/du_j / r`` (the envelope theorem); every trial point refits the other parameters,
    warm-started along the first-order path ``cov[:, j] / cov[j, j]``. All endpoints of all
    parameters (and of every fit in a batch) are one vmapped program. The search follows the
    constraints: where the profile stays within the threshold up to a constraint's bound, the
    interval is one-sided; the bound is reported with status ``AT_BOUND``.

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch``, or a model's
        :class:`~mlejax.models.RegressionResult`.
      level: the confidence level, in (0, 1).
      method: ``"wald"`` or ``"profile"``.
      which: profile only: parameter names (flat, e.g. ``"beta[1]"``, or whole leaves, e.g.
        ``"beta"``); default every parameter whose constraint is elementwise (real, positive,
        interval); the others are NaN with status ``NOT_PROFILED``.
      cov, groups, correction: Wald only: the covariance (``"observed"``, ``"robust"`` or a
        matrix); for ``"robust"``, the clusters and small-sample factor of :func:`robust_cov`
        (its default: the model's convention for a RegressionResult).
      refit_method: the solver for the profile refits (default the fit's own).
      max_steps: step limit of each refit (default the fit's).
      max_iter: trial points per endpoint.

    Returns:
      :class:`ConfidenceIntervals` (leading ``K`` axis for a batch).

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> lo, hi = mj.confint(res, 0.95, method="profile")["sigma"]
      >>> round(float(lo), 4), round(float(hi), 4)      # Wald: (0.2912, 0.8509)
      (0.3747, 1.0249)
    """
    source = res
    res, regression = as_fit(res)
    if regression is None or method != "wald":
        # A model's Wald intervals need only its estimate and a covariance (robust_cov
        # checks the fit it takes the scores from).
        check_result(res, "confint")
    level = check_level(level)
    if method == "wald":
        if which is not None:
            raise ValueError("which= selects the parameters to profile; Wald intervals are "
                             "computed for every parameter at once.")
        return wald(res, level, cov, groups, source, correction)
    if method == "profile":
        if not (isinstance(cov, str) and cov == "observed") or groups is not None \
                or correction is not None:
            raise ValueError("cov=, groups= and correction= apply to Wald intervals; a "
                             "profile interval uses the likelihood itself.")
        if res.is_batch and len(lead_shape(res)) != 1:
            raise ValueError(f"profile intervals handle one batch axis; got {lead_shape(res)}.")
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be a positive integer; got {max_iter}.")
        return profile_ci(res, level, which, refit_method, max_steps, max_iter)
    raise ValueError(f"method must be 'wald' or 'profile'; got {method!r}.")
