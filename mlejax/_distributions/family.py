"""The registry entry of one family of distributions (:class:`Distribution`) and its builder."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

from mlejax import constraints as C


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


def entry(name, params, cons, logpdf, moments, closed_form, sample, support, support_text,
          degenerate, **kw) -> Distribution:
    """A :class:`Distribution` from positional fields, one constraint per parameter."""
    return Distribution(name=name, params=tuple(params), constraints=dict(zip(params, cons)),
                        logpdf=logpdf, moments=moments, closed_form=closed_form, sample=sample,
                        support=support, support_text=support_text, degenerate=degenerate, **kw)
