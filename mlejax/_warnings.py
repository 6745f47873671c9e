"""The host-side warnings of fits: one place for what a failed or singular fit says."""

from __future__ import annotations

import warnings

import numpy as np

from mlejax.status import Status

__all__ = ["FitWarning", "renamed", "warn_fits"]


class FitWarning(UserWarning):
    """A fit that did not converge, or whose standard errors are NaN.

    Example:
      >>> import warnings
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     res = mj.fit(loglik, {"mu": 0.0, "sigma": 1.0}, x,
      ...                  constraints={"sigma": mj.positive}, max_steps=2)
      >>> caught[0].category is mj.FitWarning, mj.Status(int(res.status)).name
      (True, 'MAX_STEPS')
    """


def warn_fits(res, *, see: str = "result.summary() for the status counts") -> None:
    """Warns on the host about the fits of ``res`` (one or a batch: anything with ``status``
    and ``message``) that did not converge or whose standard errors are NaN; for a batch,
    the warning says where to look (``see``: a result without ``summary()``, such as a
    :class:`~mlejax.MixtureResult`, names its own fields)."""
    codes = np.asarray(res.status).ravel()
    n = codes.size
    singular = int(np.sum(codes == Status.SINGULAR_HESSIAN))
    nonfinite_h = int(np.sum(codes == Status.NONFINITE_HESSIAN))
    failed = int(np.sum((codes != Status.CONVERGED) & (codes != Status.SINGULAR_HESSIAN)
                        & (codes != Status.NONFINITE_HESSIAN)))
    where = "" if n == 1 else f" in {{}} of {n} fits"
    if singular:
        warnings.warn("the Hessian is singular or not negative definite at the estimate"
                      + where.format(singular) + ": standard errors are NaN (parameters may "
                      "not be identified). See result.status / summary().", FitWarning,
                      stacklevel=3)
    if nonfinite_h:
        warnings.warn("the Hessian has non-finite (NaN or inf) entries at the estimate"
                      + where.format(nonfinite_h) + " although the log-likelihood and its "
                      "gradient are finite (usually inf * 0 in autodiff, e.g. cut-points padded "
                      "with -inf/+inf): the estimate is the maximum found by the gradient test, "
                      "standard errors are NaN. See result.status / summary().", FitWarning,
                      stacklevel=3)
    if failed:
        msg = res.message if n == 1 else f"see {see}"
        warnings.warn("the fit did not converge" + where.format(failed) + f": {msg}",
                      FitWarning, stacklevel=3)


def renamed(old: str, old_value, new: str, new_value, *, stacklevel: int = 3):
    """The value of a keyword renamed from ``old`` to ``new``: the old one still works, with
    a ``DeprecationWarning`` naming the new; giving both is an error."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ValueError(f"{old}= is the old name of {new}=: give only {new}=.")
    warnings.warn(f"{old}= is renamed {new}= (same meaning); {old}= will be removed.",
                  DeprecationWarning, stacklevel=stacklevel)
    return old_value
