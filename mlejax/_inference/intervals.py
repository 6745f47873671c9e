"""The result of every interval routine (Wald, profile, bootstrap): the endpoints with a
status code per endpoint."""

from __future__ import annotations

import dataclasses
import enum

import jax
import numpy as np

__all__ = ["ConfidenceIntervals", "EndpointStatus"]



class EndpointStatus(enum.IntEnum):
    """How an interval endpoint was found (one code per endpoint).

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> ci = res.confint(0.95)
      >>> [mj.EndpointStatus(int(c)).name for c in ci.status[1]]   # sigma: (lower, upper)
      ['FOUND', 'FOUND']
    """

    FOUND = 0              # the endpoint solves the interval equation (Wald: always)
    AT_BOUND = 1           # one-sided: the profile stays within the threshold up to the
                           # constraint's bound, which is reported as the endpoint
    UNBOUNDED = 2          # the profile stays within the threshold as far as searched on a
                           # side with no bound: +-inf reported (a flat, weakly identified profile)
    REFIT_FAILED = 3       # a refit of the other parameters did not converge
    MAX_ITER = 4           # the search ran out of iterations
    FIT_NOT_CONVERGED = 5  # the fit itself did not converge (or its Hessian is singular)
    NOT_PROFILED = 6       # not requested, or the parameter's constraint is not elementwise


_ENDPOINT_TEXT = {
    EndpointStatus.FOUND: "",
    EndpointStatus.AT_BOUND: "at bound",
    EndpointStatus.UNBOUNDED: "unbounded",
    EndpointStatus.REFIT_FAILED: "refit failed",
    EndpointStatus.MAX_ITER: "max iter",
    EndpointStatus.FIT_NOT_CONVERGED: "fit not converged",
    EndpointStatus.NOT_PROFILED: "not profiled",
}


@dataclasses.dataclass(frozen=True)
class ConfidenceIntervals:
    """Confidence intervals for every flattened parameter (in ``param_names`` order).

    Attributes:
      lower, upper: endpoints, ``(p,)`` or ``(K, p)`` for a batch.
      estimate: the point estimate (flattened), same shape.
      status: :class:`EndpointStatus` codes, ``(..., p, 2)`` for (lower, upper). ``AT_BOUND``
        marks a one-sided interval: the endpoint is the constraint's bound.
      level, method, param_names: what was computed.

    ``np.asarray(ci)`` gives the ``(..., p, 2)`` array of endpoints; ``ci["sigma"]`` the pair
    for one parameter.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> ci = res.confint(0.95)                        # Wald; method="profile" also
      >>> np.asarray(ci).round(4).tolist()              # (parameter, (lower, upper))
      [[0.8918, 1.6832], [0.2912, 0.8509]]
      >>> print(ci)
      95% wald confidence intervals
      parameter     estimate        lower        upper  note
      mu              1.2875     0.891792      1.68321
      sigma         0.571046     0.291239     0.850854
    """

    lower: jax.Array
    upper: jax.Array
    estimate: jax.Array
    status: jax.Array
    level: float = 0.95
    method: str = "wald"
    param_names: tuple[str, ...] = ()

    @property
    def one_sided(self) -> jax.Array:
        """True per (parameter, side) where the endpoint is a constraint's bound."""
        return self.status == EndpointStatus.AT_BOUND

    @property
    def ok(self) -> jax.Array:
        """True per (parameter, side) where the endpoint is usable (found or at a bound)."""
        return ((self.status == EndpointStatus.FOUND) | (self.status == EndpointStatus.AT_BOUND)
                | (self.status == EndpointStatus.UNBOUNDED))

    def __array__(self, dtype=None, copy=None):
        out = np.stack([np.asarray(self.lower), np.asarray(self.upper)], axis=-1)
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, name: str) -> tuple[jax.Array, jax.Array]:
        if name not in self.param_names:
            raise KeyError(f"{name!r} is not a parameter; parameters: {self.param_names}")
        i = self.param_names.index(name)
        return self.lower[..., i], self.upper[..., i]

    def __repr__(self) -> str:
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        if lo.ndim > 1:
            return (f"ConfidenceIntervals(batch of {lo.shape[0]}, level={self.level}, "
                    f"method={self.method!r})")
        est, st = np.asarray(self.estimate), np.asarray(self.status)
        w = max([len(n) for n in self.param_names] + [9])
        lines = [f"{self.level:.0%} {self.method} confidence intervals",
                 f"{'parameter':<{w}} {'estimate':>12} {'lower':>12} {'upper':>12}  note"]
        for i, name in enumerate(self.param_names):
            notes = [f"{side}: {_ENDPOINT_TEXT[EndpointStatus(int(c))]}"
                     for side, c in zip(("lower", "upper"), st[i]) if int(c) != 0]
            lines.append(f"{name:<{w}} {est[i]:>12.6g} {lo[i]:>12.6g} {hi[i]:>12.6g}  "
                         + "; ".join(notes))
        return "\n".join(lines)


jax.tree_util.register_dataclass(ConfidenceIntervals,
                                 data_fields=["lower", "upper", "estimate", "status"],
                                 meta_fields=["level", "method", "param_names"])
