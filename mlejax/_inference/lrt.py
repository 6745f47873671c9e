"""The likelihood-ratio test between nested fits."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _validate as V
from mlejax.result import FitResult

__all__ = ["LRTResult", "lrt"]


@dataclasses.dataclass(frozen=True)
class LRTResult:
    """``statistic = 2 (loglik_full - loglik_restricted)``, its ``df`` and chi-squared p-value.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> test = mj.lrt(res, mj.fit_distribution(x, "normal", fixed={"mu": 1.0}))
      >>> test
      LRTResult(statistic=1.80735, df=1, pvalue=0.1788)
      >>> round(float(test.pvalue), 4)
      0.1788
    """

    statistic: jax.Array
    pvalue: jax.Array
    df: int = 1

    def __repr__(self) -> str:
        s = np.asarray(self.statistic)
        if s.ndim:
            return f"LRTResult(batch of {s.shape[0]}, df={self.df})"
        return (f"LRTResult(statistic={float(s):.6g}, df={self.df}, "
                f"pvalue={float(self.pvalue):.4g})")


jax.tree_util.register_dataclass(LRTResult, data_fields=["statistic", "pvalue"],
                                 meta_fields=["df"])


def lrt(full: FitResult, restricted: FitResult, *, df: int | None = None) -> LRTResult:
    """The likelihood-ratio test of a restricted model nested in a full one.

    ``statistic = 2 (loglik_full - loglik_restricted)``, referred to chi-squared with
    ``df = full.df_model - restricted.df_model`` degrees of freedom (``p = Q(df/2, stat/2)``,
    the regularised upper incomplete gamma function). Batches compare fit by fit. The chi-squared
    reference is asymptotic and assumes the restriction is not on a boundary of the parameter
    space (testing a variance = 0 gives a mixture; pass ``df`` only if you know better).

    Args:
      full, restricted: converged fits of nested models to the same data.
      df: override the degrees of freedom.

    Returns:
      :class:`LRTResult` with ``statistic``, ``df`` and ``pvalue``.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> full = mj.fit_distribution(x, "normal")                        # mu and sigma free
      >>> restricted = mj.fit_distribution(x, "normal", fixed={"mu": 1.0})
      >>> test = mj.lrt(full, restricted)               # = n log(s0^2 / s^2) here
      >>> test.df, round(float(test.statistic), 4), round(float(test.pvalue), 4)
      (1, 1.8074, 0.1788)
    """
    for name, r in (("full", full), ("restricted", restricted)):
        if not isinstance(r, FitResult):
            raise ValueError(f"lrt: {name} must be a FitResult; got {type(r).__name__}.")
        if r.penalty is not None:
            raise ValueError(f"lrt: {name} is a penalised fit ({r.penalty}); the "
                             "likelihood-ratio test compares maximised likelihoods, and its "
                             "chi-squared reference does not hold for penalised estimates.")
    if df is None:
        df = int(full.df_model) - int(restricted.df_model)
        if df <= 0:
            raise ValueError(f"lrt: the full model must have more free parameters than the "
                             f"restricted one; got {full.df_model} and {restricted.df_model}. "
                             "Pass the larger model first (lrt(full, restricted)), or df= "
                             "for a restriction the parameter counts do not show.")
    df = int(df)
    if df <= 0:
        raise ValueError(f"lrt: df must be a positive integer; got {df}.")
    if np.shape(full.loglik) != np.shape(restricted.loglik):
        raise ValueError(f"lrt: full and restricted must be fits of the same data (same batch "
                         f"shape); got {np.shape(full.loglik)} and {np.shape(restricted.loglik)}.")
    if V.is_concrete((full.nobs, restricted.nobs)):
        a, b = np.asarray(full.nobs), np.asarray(restricted.nobs)
        if np.any((a > 0) & (b > 0) & (a != b)):
            raise ValueError("lrt: full and restricted were fitted to different numbers of "
                             "observations; a likelihood-ratio test compares fits of the same "
                             "data.")
    stat = 2.0 * (jnp.asarray(full.loglik) - jnp.asarray(restricted.loglik))
    half = jnp.asarray(0.5 * df, stat.dtype)
    p = jax.scipy.special.gammaincc(half, 0.5 * jnp.maximum(stat, 0.0))
    return LRTResult(stat, p, df)
