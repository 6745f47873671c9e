"""Parameter constraints as bijections between an unconstrained space and the natural one.

Solvers work on unconstrained values ``u``; users give and receive natural values ``x``.
Each constraint maps ``u -> x`` (``forward``) and ``x -> u`` (``inverse``) and checks that a
natural value is admissible (``check``). No log-Jacobian is ever added to the objective: the
estimate is the maximum-likelihood estimate on the natural scale, and the transform is only a
reparameterisation that keeps the solver inside the parameter space.

A constraint may change the shape of a leaf: a simplex of ``k`` weights has ``k - 1`` free
coordinates and a ``d x d`` covariance matrix has ``d (d + 1) / 2``. Standard errors are mapped
back with the Jacobian of ``forward`` (the delta method), which is exact at the optimum for
square transforms and gives the correct singular covariance for the simplex and the matrix
constraints.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Constraint",
    "Real",
    "Positive",
    "Interval",
    "Simplex",
    "PositiveDefinite",
    "real",
    "positive",
    "interval",
    "unit_interval",
    "simplex",
    "positive_definite",
]


class Constraint:
    """Abstract base: a bijection between unconstrained and natural values of one leaf.

    Example:
      >>> isinstance(mj.positive, mj.Constraint), mj.positive
      (True, positive)
      >>> float(mj.positive.forward(0.0))       # u -> x
      1.0
      >>> mj.positive.check(np.array(-1.0))     # why a natural value is not admissible
      'must be > 0.0 for constraint positive'
    """

    name: str = "constraint"

    def forward(self, u: jax.Array) -> jax.Array:
        """Maps an unconstrained array to the natural scale."""
        raise NotImplementedError

    def inverse(self, x: jax.Array) -> jax.Array:
        """Maps a natural value to the unconstrained array (the inverse of ``forward``)."""
        raise NotImplementedError

    def check(self, x: np.ndarray) -> str | None:
        """Returns None when a concrete natural value is admissible, else why it is not."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True, repr=False)
class Real(Constraint):
    """No constraint: the identity map.

    Example:
      >>> float(mj.real.forward(2.5)), float(mj.real.inverse(-1.0))
      (2.5, -1.0)
    """

    name: str = "real"

    def forward(self, u):
        return u

    def inverse(self, x):
        return x

    def check(self, x):
        return None


def _softplus_inverse(x):
    # log(expm1(x)) overflows nowhere: for large x it is x + log1p(-exp(-x)).
    return x + jnp.log(-jnp.expm1(-x))


@dataclasses.dataclass(frozen=True, repr=False)
class Positive(Constraint):
    """``x > lower`` through ``x = lower + exp(u)``.

    The log map keeps Newton's quadratic convergence for scale parameters (the log-likelihood
    of a scale is close to quadratic in its logarithm), which softplus would not.

    Example:
      >>> float(mj.positive.inverse(1.0)), float(mj.Positive(lower=1.0).forward(0.0))
      (0.0, 2.0)
    """

    lower: float = 0.0
    name: str = "positive"

    def forward(self, u):
        return self.lower + jnp.exp(u)

    def inverse(self, x):
        return jnp.log(x - self.lower)

    def check(self, x):
        if np.all(x > self.lower):
            return None
        return f"must be > {self.lower} for constraint {self.name}"


@dataclasses.dataclass(frozen=True, repr=False)
class Interval(Constraint):
    """``lo < x < hi`` through a scaled logistic map.

    Example:
      >>> c = mj.interval(0.0, 10.0)
      >>> c, float(c.forward(0.0)), mj.unit_interval
      (interval(0.0, 10.0), 5.0, unit_interval)
    """

    lo: float = 0.0
    hi: float = 1.0

    @property
    def name(self) -> str:  # type: ignore[override]
        if (self.lo, self.hi) == (0.0, 1.0):
            return "unit_interval"
        return f"interval({self.lo}, {self.hi})"

    def forward(self, u):
        return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(u)

    def inverse(self, x):
        t = (x - self.lo) / (self.hi - self.lo)
        return jnp.log(t) - jnp.log1p(-t)

    def check(self, x):
        if np.all((x > self.lo) & (x < self.hi)):
            return None
        return f"must lie strictly inside ({self.lo}, {self.hi}) for constraint {self.name}"


@dataclasses.dataclass(frozen=True, repr=False)
class Simplex(Constraint):
    """Non-negative weights summing to one along the last axis (mixture weights, probabilities).

    The ``k`` weights have ``k - 1`` free coordinates: the additive log-ratio map
    ``x = softmax([u, 0])``, whose inverse is ``u_j = log x_j - log x_k``.

    Example:
      >>> [round(float(w), 4) for w in mj.simplex.forward(jnp.zeros(2))]
      [0.3333, 0.3333, 0.3333]
      >>> mj.simplex.inverse(jnp.array([0.2, 0.3, 0.5])).shape   # k - 1 free coordinates
      (2,)
    """

    name: str = "simplex"

    def forward(self, u):
        zero = jnp.zeros(u.shape[:-1] + (1,), u.dtype)
        return jax.nn.softmax(jnp.concatenate([u, zero], axis=-1), axis=-1)

    def inverse(self, x):
        logx = jnp.log(x)
        return logx[..., :-1] - logx[..., -1:]

    def check(self, x):
        if x.ndim < 1 or x.shape[-1] < 2:
            return f"must have a last axis of at least 2 weights for constraint {self.name}"
        if not np.all(x > 0):
            return f"must be strictly positive for constraint {self.name}"
        tol = 1e3 * np.finfo(x.dtype if x.dtype.kind == "f" else np.float64).eps
        if not np.allclose(x.sum(-1), 1.0, rtol=0, atol=tol):
            return f"must sum to 1 along the last axis for constraint {self.name}; got sums {x.sum(-1)}"
        return None


@dataclasses.dataclass(frozen=True, repr=False)
class PositiveDefinite(Constraint):
    """Symmetric positive-definite matrices (covariances) in the last two axes.

    ``x = L L^T`` with ``L`` lower triangular with a positive (exponentiated) diagonal; the
    free coordinates are the ``d (d + 1) / 2`` entries of ``L`` with the log of its diagonal.

    Example:
      >>> np.asarray(mj.positive_definite.forward(jnp.zeros(3))).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
      >>> mj.positive_definite.inverse(jnp.array([[2.0, 0.5], [0.5, 1.0]])).shape
      (3,)
    """

    name: str = "positive_definite"

    def forward(self, u):
        m = u.shape[-1]
        d = int(round((np.sqrt(8 * m + 1) - 1) / 2))
        rows, cols = np.tril_indices(d)
        low = jnp.zeros(u.shape[:-1] + (d, d), u.dtype).at[..., rows, cols].set(u)
        diag = jnp.diagonal(low, axis1=-2, axis2=-1)
        low = low + _diag_embed(jnp.exp(diag) - diag)
        return low @ jnp.swapaxes(low, -1, -2)

    def inverse(self, x):
        d = x.shape[-1]
        low = jnp.linalg.cholesky(x)
        diag = jnp.diagonal(low, axis1=-2, axis2=-1)
        low = low + _diag_embed(jnp.log(diag) - diag)
        rows, cols = np.tril_indices(d)
        return low[..., rows, cols]

    def check(self, x):
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            return f"must be a square matrix in its last two axes for constraint {self.name}"
        if not np.allclose(x, np.swapaxes(x, -1, -2)):
            return f"must be symmetric for constraint {self.name}"
        try:
            np.linalg.cholesky(x)
        except np.linalg.LinAlgError:
            return f"must be positive definite for constraint {self.name}"
        return None


def _diag_embed(v):
    return v[..., :, None] * jnp.eye(v.shape[-1], dtype=v.dtype)


real = Real()
positive = Positive()
unit_interval = Interval(0.0, 1.0)
simplex = Simplex()
positive_definite = PositiveDefinite()


def interval(lo: float, hi: float) -> Interval:
    """The open interval ``(lo, hi)``; ``lo < hi`` must be finite.

    Example:
      >>> c = mj.interval(-1.0, 1.0)
      >>> round(float(c.forward(2.0)), 4)
      0.7616
      >>> c.check(np.array(2.0))
      'must lie strictly inside (-1.0, 1.0) for constraint interval(-1.0, 1.0)'
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"interval(lo, hi) needs finite lo < hi; got ({lo}, {hi}). "
                         "For a one-sided bound use mj.positive or Positive(lower=...).")
    return Interval(lo, hi)


def is_constraint(x: Any) -> bool:
    return isinstance(x, Constraint)
