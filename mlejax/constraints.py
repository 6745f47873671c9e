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

Users add their own constraints by subclassing :class:`Constraint` or, for a one-off, with
:func:`constraint` (a forward map, its inverse and a domain check); the fit treats them exactly
like the built-in ones.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

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
    "Ordered",
    "PositiveSumBelow",
    "real",
    "positive",
    "interval",
    "unit_interval",
    "simplex",
    "positive_definite",
    "ordered",
    "positive_sum_below",
    "constraint",
]


class Constraint(abc.ABC):
    """Abstract base: a bijection between unconstrained and natural values of one leaf.

    The contract a constraint fulfils, for the built-in ones and for a user's own (a subclass,
    or one built with :func:`constraint`):

    * ``forward(u)``: unconstrained array -> natural value, written in ``jax.numpy`` so that it
      traces under ``jit``, ``vmap`` and ``jax.jacfwd`` (its Jacobian maps the covariance to
      the natural scale), keeps the dtype of ``u`` (float32 stays float32) and works on any
      leading batch axes. It may change the size of the last axis (a simplex of ``k`` weights
      has ``k - 1`` free coordinates).
    * ``inverse(x)``: natural value -> unconstrained array, the inverse of ``forward`` on the
      admissible set. The fit calls it on ``init`` to find the free coordinates: their shape
      is ``jax.eval_shape(inverse, init_leaf)``, so it must work on an abstract array too.
    * ``check(x)``: a concrete numpy value -> ``None`` when admissible, else a short message
      saying why not (``"must be > 0 for constraint positive"``); the fit raises
      ``ValueError`` with it, naming the parameter, before anything is compiled. The default
      accepts a value when ``inverse(x)`` is finite; override it for a clearer message.
    * ``name``: shown in messages and ``repr``.

    Instances are part of the key of the compiled-program cache, so they must be hashable
    (a frozen dataclass, or a plain class compared by identity) and built once, not inside a
    loop. No log-Jacobian is added: the estimate is the natural-scale MLE whatever the map.

    Example:
      >>> isinstance(mj.positive, mj.Constraint), mj.positive
      (True, positive)
      >>> float(mj.positive.forward(0.0))       # u -> x
      1.0
      >>> mj.positive.check(np.array(-1.0))     # why a natural value is not admissible
      'must be > 0.0 for constraint positive'
      >>> class Negative(mj.Constraint):        # a user's own: x = -exp(u) < 0
      ...     name = "negative"
      ...     def forward(self, u):
      ...         return -jnp.exp(u)
      ...     def inverse(self, x):
      ...         return jnp.log(-x)
      ...     def check(self, x):
      ...         return None if np.all(x < 0) else "must be < 0 for constraint negative"
      >>> x = np.random.default_rng(0).normal(size=200)
      >>> def ll(p, x):
      ...     return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> res = mj.fit(ll, {"mu": 0.0, "sigma": -1.0}, x,
      ...              constraints={"sigma": Negative()})   # sigma < 0: only its sign differs
      >>> bool(abs(res.params["sigma"] + np.std(x)) < 1e-8)
      True
    """

    name: str = "constraint"

    @abc.abstractmethod
    def forward(self, u: jax.Array) -> jax.Array:
        """Maps an unconstrained array to the natural scale."""

    @abc.abstractmethod
    def inverse(self, x: jax.Array) -> jax.Array:
        """Maps a natural value to the unconstrained array (the inverse of ``forward``)."""

    def check(self, x: np.ndarray) -> str | None:
        """Returns None when a concrete natural value is admissible, else why it is not.

        The default: admissible when ``inverse(x)`` is finite."""
        return _inverse_finite(self, x)

    def __repr__(self) -> str:
        return self.name


def _inverse_finite(c: Constraint, x) -> str | None:
    try:
        u = np.asarray(c.inverse(jnp.asarray(x)))
    except (TypeError, ValueError, IndexError) as err:
        return f"cannot be mapped by the inverse of constraint {c.name} ({err})"
    if np.all(np.isfinite(u)):
        return None
    return f"is outside the domain of constraint {c.name} (its inverse is not finite there)"


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


@dataclasses.dataclass(frozen=True, repr=False)
class Ordered(Constraint):
    """A strictly increasing vector along the last axis (cut-points, thresholds, change points).

    ``x_0 = u_0`` and ``x_k = x_{k-1} + exp(u_k)``: the first value is free and each gap is
    positive through its logarithm; the inverse is ``u_0 = x_0``, ``u_k = log(x_k - x_{k-1})``.
    ``k`` values have ``k`` free coordinates (the parameterisation of statsmodels'
    ``OrderedModel`` thresholds).

    Example:
      >>> np.asarray(mj.ordered.forward(jnp.array([-1.0, 0.0, 0.0]))).tolist()
      [-1.0, 0.0, 1.0]
      >>> [round(float(v), 4) for v in mj.ordered.inverse(jnp.array([-1.0, 0.5, 2.5]))]
      [-1.0, 0.4055, 0.6931]
      >>> mj.ordered.check(np.array([0.0, 2.0, 1.0]))
      'must be strictly increasing along the last axis for constraint ordered; got differences [ 2. -1.]'
    """

    name: str = "ordered"

    def forward(self, u):
        steps = jnp.concatenate([u[..., :1], jnp.exp(u[..., 1:])], axis=-1)
        return jnp.cumsum(steps, axis=-1)

    def inverse(self, x):
        return jnp.concatenate([x[..., :1], jnp.log(jnp.diff(x, axis=-1))], axis=-1)

    def check(self, x):
        why = _finite_vector(x, self.name)
        if why is not None:
            return why
        gaps = np.diff(x, axis=-1)
        if not np.all(gaps > 0):
            return (f"must be strictly increasing along the last axis for constraint "
                    f"{self.name}; got differences {gaps}")
        return None


@dataclasses.dataclass(frozen=True, repr=False)
class PositiveSumBelow(Constraint):
    """Positive components whose sum stays below ``bound``, along the last axis.

    ``x = bound * softmax([u, 0])[:-1]``: the simplex of ``k + 1`` weights without its last
    weight (the slack ``bound - sum(x)``), so ``k`` free coordinates give ``k`` components,
    each ``> 0``, summing to ``< bound``. The inverse is ``u_j = log x_j - log(bound - sum x)``.
    For GARCH's ``alpha + beta < 1`` (covariance stationarity) and for mixture weights given
    without the last one.

    Example:
      >>> c = mj.positive_sum_below(1.0)
      >>> c, [round(float(v), 4) for v in c.forward(jnp.zeros(2))]
      (positive_sum_below(1.0), [0.3333, 0.3333])
      >>> [round(float(v), 4) for v in c.inverse(jnp.array([0.1, 0.85]))]
      [0.6931, 2.8332]
      >>> c.check(np.array([0.3, 0.8]))
      'components must sum to < 1.0 along the last axis for constraint positive_sum_below(1.0); got sums 1.1'
    """

    bound: float = 1.0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"positive_sum_below({self.bound})"

    def forward(self, u):
        zero = jnp.zeros(u.shape[:-1] + (1,), u.dtype)
        w = jax.nn.softmax(jnp.concatenate([u, zero], axis=-1), axis=-1)
        return self.bound * w[..., :-1]

    def inverse(self, x):
        slack = self.bound - jnp.sum(x, axis=-1, keepdims=True)
        return jnp.log(x) - jnp.log(slack)

    def check(self, x):
        why = _finite_vector(x, self.name)
        if why is not None:
            return why
        if not np.all(x > 0):
            return f"components must be > 0 for constraint {self.name}"
        sums = x.sum(-1)
        if not np.all(sums < self.bound):
            return (f"components must sum to < {self.bound} along the last axis for "
                    f"constraint {self.name}; got sums {np.round(sums, 6)}")
        return None


@dataclasses.dataclass(frozen=True, repr=False)
class CustomConstraint(Constraint):
    """A constraint built from functions by :func:`constraint` (see there).

    Example:
      >>> c = mj.constraint(forward=jnp.exp, inverse=jnp.log, name="my_positive")
      >>> isinstance(c, mj.Constraint), c, float(c.forward(0.0))
      (True, my_positive, 1.0)
    """

    forward_fn: Callable[[jax.Array], jax.Array]
    inverse_fn: Callable[[jax.Array], jax.Array]
    check_fn: Callable[[np.ndarray], str | None] | None = None
    name: str = "custom"

    def forward(self, u):
        return self.forward_fn(u)

    def inverse(self, x):
        return self.inverse_fn(x)

    def check(self, x):
        if self.check_fn is not None:
            why = self.check_fn(x)
            if why is not None:
                return f"{why} for constraint {self.name}"
        return _inverse_finite(self, x)


def _finite_vector(x: np.ndarray, name: str) -> str | None:
    """Why ``x`` is not a finite vector along its last axis (None when it is)."""
    if x.ndim < 1 or x.shape[-1] < 1:
        return (f"must be a vector (at least 1 value on the last axis) for constraint "
                f"{name}; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        return f"must be finite for constraint {name}"
    return None


def _diag_embed(v):
    return v[..., :, None] * jnp.eye(v.shape[-1], dtype=v.dtype)


real = Real()
positive = Positive()
unit_interval = Interval(0.0, 1.0)
simplex = Simplex()
positive_definite = PositiveDefinite()
ordered = Ordered()


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


def positive_sum_below(bound: float = 1.0) -> PositiveSumBelow:
    """Positive components summing to less than ``bound`` along the last axis (``bound > 0``).

    GARCH(1,1) keeps ``alpha + beta < 1`` with ``{"ab": mj.positive_sum_below(1.0)}``;
    ``k`` mixture weights given as their first ``k - 1`` take the same constraint.
    See :class:`PositiveSumBelow` for the map.

    Example:
      >>> c = mj.positive_sum_below(2.0)
      >>> round(float(jnp.sum(c.forward(jnp.array([5.0, 5.0, 5.0])))), 4)   # below the bound
      1.9955
      >>> c.check(np.array([0.5, -0.1]))
      'components must be > 0 for constraint positive_sum_below(2.0)'
    """
    bound = float(bound)
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"positive_sum_below(bound) needs a finite bound > 0; got {bound}.")
    return PositiveSumBelow(bound)


def constraint(forward: Callable[[jax.Array], jax.Array],
               inverse: Callable[[jax.Array], jax.Array],
               check: Callable[[np.ndarray], str | None] | None = None, *,
               name: str = "custom") -> CustomConstraint:
    """A user-defined constraint from its forward map, inverse and domain check.

    The contract (the same as :class:`Constraint`'s): ``forward(u)`` maps unconstrained values
    to the natural scale in ``jax.numpy`` (traceable, dtype-preserving, batch axes in front; it
    may change the size of the last axis); ``inverse(x)`` undoes it and gives the free
    coordinates of ``init``; ``check(x)`` takes a concrete numpy value and returns ``None`` or
    a short reason (``"must sum to 0"``), to which `` for constraint <name>`` is appended. A
    value that passes ``check`` must also have a finite ``inverse``; without ``check`` that is
    the only test. Build the constraint once (module level): it is part of the key of the
    compiled-program cache, compared by the identity of its functions.

    Args:
      forward: ``u -> x``.
      inverse: ``x -> u``.
      check: ``x -> None | str`` on concrete numpy values; optional.
      name: shown in messages.

    Returns:
      A :class:`Constraint` usable anywhere the built-in ones are.

    Example:
      >>> sum_to_zero = mj.constraint(          # k effects summing to 0: k - 1 free coordinates
      ...     forward=lambda u: jnp.concatenate([u, -u.sum(-1, keepdims=True)], axis=-1),
      ...     inverse=lambda x: x[..., :-1],
      ...     check=lambda x: None if np.allclose(x.sum(-1), 0.0) else "must sum to 0",
      ...     name="sum_to_zero")
      >>> np.asarray(sum_to_zero.forward(jnp.array([1.0, 2.0]))).tolist()
      [1.0, 2.0, -3.0]
      >>> sum_to_zero.check(np.array([1.0, 1.0]))
      'must sum to 0 for constraint sum_to_zero'
      >>> y = np.array([1.0, 1.2, 2.0, 2.2, 3.0, 3.2])    # two observations per group
      >>> g = np.array([0, 0, 1, 1, 2, 2])
      >>> def ll(p, y):
      ...     return jax.scipy.stats.norm.logpdf(y, p["mu"] + p["effect"][g], p["sigma"])
      >>> res = mj.fit(ll, {"mu": 0.0, "effect": jnp.zeros(3), "sigma": 1.0}, y,
      ...              constraints={"effect": sum_to_zero, "sigma": mj.positive})
      >>> [round(float(v), 4) for v in res.params["effect"]]   # group means - grand mean
      [-1.0, 0.0, 1.0]
    """
    if not (callable(forward) and callable(inverse)):
        raise ValueError("constraint(forward, inverse, check=None, name=...) needs callable "
                         f"forward and inverse maps; got {forward!r} and {inverse!r}.")
    if check is not None and not callable(check):
        raise ValueError(f"check must be a function x -> None | str, or None; got {check!r}.")
    return CustomConstraint(forward, inverse, check, str(name))


def check_hashable(c: Constraint, name: str) -> None:
    """A constraint is part of the key of the compiled-program cache: it must be hashable."""
    try:
        hash(c)
    except TypeError as err:
        raise ValueError(
            f"constraints[{name}] ({c!r}) is not hashable ({err}); a constraint is part of the "
            "key of the compiled-program cache. Make a dataclass subclass frozen "
            "(@dataclasses.dataclass(frozen=True)) or leave __eq__ and __hash__ to "
            "mj.Constraint.") from None


def is_constraint(x: Any) -> bool:
    return isinstance(x, Constraint)
