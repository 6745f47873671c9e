"""Penalties for penalised (MAP-like) fits: ``mj.fit(..., penalty=...)``.

A penalised fit maximises

    objective(params) = loglik(params) + penalty(params),

where ``penalty`` is a log-prior up to a constant: a number ``<= 0`` that falls away from
the values the penalty favours. It smooths a non-convex likelihood and shrinks estimates
that the data alone leave unstable. The built-ins follow the conventions of scikit-learn and
glmnet (``lam = 1 / C`` for scikit-learn's ``LogisticRegression(C=...)``):

=============================  =====================================================
``l2(lam)``                    ``-lam / 2 * sum(w ** 2)``  (ridge; a Gaussian prior)
``l1(lam)``                    ``-lam * sum(|w|)``  (lasso; a Laplace prior)
``l1(lam, smooth=s)``          ``-lam * sum(sqrt(w ** 2 + s ** 2) - s)``
``elastic_net(lam, ratio)``    ``-lam * (ratio * sum(|w|) + (1 - ratio) / 2 * sum(w ** 2))``
a function ``fn(params)``      ``fn(params)``, any differentiable JAX function
=============================  =====================================================

``on=`` chooses the parameters a built-in penalises: ``None`` (all), a key or a sequence of
keys of a dict of parameters (``on="w"``, ``on=("w", "v")``), or a function selecting them
by indexing or slicing (``on=lambda p: p["beta"][1:]`` leaves ``beta[0]``, an intercept,
unpenalised). Penalties add up: ``l2(1.0, on="w") + l1(0.5, on="v")``.

Exact zeros. ``|w|`` has no derivative at 0, where the lasso puts its zeros; a smooth
optimiser only ever gets near them. An exact ``l1`` term (``smooth=None``, also in
``elastic_net``) is therefore fitted by proximal Newton (``method="newton"``, the default;
:mod:`mlejax.solvers.proximal`): each step maximises a quadratic model of the smooth part
minus the L1 term by coordinate descent, whose soft-thresholding sets a coefficient to
exactly 0 whenever ``|d objective_smooth / d w_j| <= lam_j`` there, the optimality (KKT)
condition of a zero. The penalised parameters must then be unconstrained (``mj.real``),
since the threshold acts on the solver's coordinates. The smoothed form works with every
method but gives small non-zero values instead of zeros.

What a penalised result reports: ``res.loglik`` is the plain log-likelihood at the
estimate, ``res.objective`` the penalised objective that was maximised (``trace`` records
it), ``res.penalty`` names the penalty. ``cov`` and ``stderr`` are the inverse Hessian of
the penalised objective (labelled so in ``summary()``); the L1 term has no curvature, and
standard errors after selection ignore the selection. ``aic`` and ``bic`` raise: the
effective degrees of freedom of a penalised fit are not its parameter count; give them with
``res.with_df(df)`` (e.g. the number of non-zero coefficients of a lasso, Zou, Hastie &
Tibshirani 2007).

Example:
  >>> import jax.numpy as jnp, mlejax as mj
  >>> pen = mj.penalties.l2(2.0, on="w")
  >>> round(float(pen({"w": jnp.array([1.0, 2.0]), "b": 5.0})), 3)
  -5.0
  >>> pen + mj.penalties.l1(0.5, on="b")
  l2(2.0, on=('w',)) + l1(0.5, on=('b',))

References:
  Tibshirani (1996), the lasso. Zou & Hastie (2005), the elastic net. Lee, Sun & Saunders
  (2014), proximal Newton-type methods. Friedman, Hastie & Tibshirani (2010), glmnet.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlejax.constraints import Real

__all__ = ["Penalty", "elastic_net", "l1", "l2"]

# Markers for locating the parameters an ``on=`` function selects: leaf j's entries are
# _BASE + its coordinates in the solver's vector, so any arithmetic on them (not a pure
# selection) lands outside the range and is caught.
_BASE = 1_000_003


def _check_lam(lam, name="lam") -> float:
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0; got {lam!r}.") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0; got {lam!r}.")
    return value


def _check_on(on) -> Any:
    if on is None or callable(on):
        return on
    if isinstance(on, str):
        return (on,)
    if isinstance(on, (tuple, list)) and all(isinstance(k, str) for k in on) and on:
        return tuple(on)
    raise ValueError("on= must be None (every parameter), a key or a sequence of keys of "
                     "the params dict, or a function params -> the parameters to penalise; "
                     f"got {on!r}.")


def _select(on, params) -> list:
    """The arrays a term penalises."""
    if on is None:
        return jax.tree_util.tree_leaves(params)
    if callable(on):
        return jax.tree_util.tree_leaves(on(params))
    out = []
    for key in on:
        try:
            out += jax.tree_util.tree_leaves(params[key])
        except (KeyError, TypeError, IndexError):
            raise ValueError(f"on={on!r}: the parameters have no key {key!r}; name keys of "
                             "the params dict (or pass a function selecting them).") from None
    return out


def _sum(arrays, fn):
    total = 0.0
    for a in arrays:
        total = total + jnp.sum(fn(jnp.asarray(a)))
    return total


@dataclasses.dataclass(frozen=True)
class _L2:
    lam: float
    on: Any

    def value(self, params):
        return -0.5 * self.lam * _sum(_select(self.on, params), jnp.square)

    def __repr__(self):
        return f"l2({self.lam}" + ("" if self.on is None else f", on={_on_repr(self.on)}") + ")"


@dataclasses.dataclass(frozen=True)
class _L1:
    lam: float
    on: Any
    smooth: float | None

    def value(self, params):
        if self.smooth is None:
            return -self.lam * _sum(_select(self.on, params), jnp.abs)
        s = self.smooth
        return -self.lam * _sum(_select(self.on, params), lambda w: jnp.sqrt(w * w + s * s) - s)

    def __repr__(self):
        extra = "" if self.on is None else f", on={_on_repr(self.on)}"
        extra += "" if self.smooth is None else f", smooth={self.smooth}"
        return f"l1({self.lam}{extra})"


@dataclasses.dataclass(frozen=True)
class _Fn:
    fn: Callable

    def value(self, params):
        return self.fn(params)

    def __repr__(self):
        return f"function {getattr(self.fn, '__name__', type(self.fn).__name__)}"


def _on_repr(on) -> str:
    return getattr(on, "__name__", "function") if callable(on) else repr(on)


def _exact_l1(term) -> bool:
    return isinstance(term, _L1) and term.smooth is None


@dataclasses.dataclass(frozen=True)
class Penalty:
    """A sum of penalty terms, added to the log-likelihood; call it on the parameters.

    Build one with :func:`l2`, :func:`l1`, :func:`elastic_net`, or pass any function
    ``fn(params) -> scalar`` as ``penalty=``; ``+`` adds penalties (and functions).
    Hashable, so a fit with the same penalty reuses its compiled program.

    Example:
      >>> pen = mj.penalties.l2(1.0) + mj.penalties.l1(0.5, on="b")
      >>> type(pen).__name__, pen.has_l1
      ('Penalty', True)
      >>> params = {"w": jnp.array([3.0, 4.0]), "b": -2.0}
      >>> round(float(pen(params)), 2), round(float(pen.smooth(params)), 2)   # smooth: no L1
      (-15.5, -14.5)
    """

    terms: tuple

    def __call__(self, params) -> jax.Array:
        """The value of the penalty at ``params`` (every term, the exact L1 included)."""
        return sum((t.value(params) for t in self.terms), 0.0)

    def smooth(self, params) -> jax.Array:
        """The differentiable terms only (everything but exact L1 terms)."""
        return sum((t.value(params) for t in self.terms if not _exact_l1(t)), 0.0)

    @property
    def has_l1(self) -> bool:
        """True when an exact (non-smoothed) L1 term needs the proximal solver."""
        return any(_exact_l1(t) for t in self.terms)

    def __add__(self, other) -> "Penalty":
        return Penalty(self.terms + as_penalty(other).terms)

    def __radd__(self, other) -> "Penalty":
        return Penalty(as_penalty(other).terms + self.terms)

    def __repr__(self) -> str:
        return " + ".join(repr(t) for t in self.terms)


def l2(lam: float, *, on: Any = None) -> Penalty:
    """The ridge penalty ``-lam / 2 * sum(w ** 2)`` over the parameters ``on`` selects.

    The log-density of independent ``N(0, 1 / lam)`` priors up to a constant, so the fit is
    the MAP estimate under them; scikit-learn's ``LogisticRegression(C=c)`` is ``lam = 1/c``.

    Example:
      >>> import jax.numpy as jnp, mlejax as mj
      >>> round(float(mj.penalties.l2(1.0)({"w": jnp.array([3.0, 4.0])})), 2)
      -12.5
    """
    return Penalty((_L2(_check_lam(lam), _check_on(on)),))


def l1(lam: float, *, on: Any = None, smooth: float | None = None) -> Penalty:
    """The lasso penalty ``-lam * sum(|w|)``: exact zeros (proximal Newton), or smoothed.

    With ``smooth=None`` the fit uses proximal Newton (``method="newton"``) and returns
    exact zeros where the data support none (the KKT condition ``|grad_j| <= lam``); the
    penalised parameters must be unconstrained. ``smooth=s > 0`` replaces ``|w|`` by
    ``sqrt(w ** 2 + s ** 2) - s`` (differentiable, any method, no exact zeros).

    Example:
      >>> import jax.numpy as jnp, mlejax as mj
      >>> round(float(mj.penalties.l1(0.5)({"w": jnp.array([1.0, -3.0])})), 2)
      -2.0
    """
    if smooth is not None:
        smooth = _check_lam(smooth, "smooth")
        if smooth == 0.0:
            raise ValueError("smooth must be > 0 (or None for the exact L1 penalty).")
    return Penalty((_L1(_check_lam(lam), _check_on(on), smooth),))


def elastic_net(lam: float, l1_ratio: float = 0.5, *, on: Any = None,
                smooth: float | None = None) -> Penalty:
    """``-lam * (l1_ratio * sum(|w|) + (1 - l1_ratio) / 2 * sum(w ** 2))`` (glmnet's form).

    scikit-learn's ``LogisticRegression(penalty="elasticnet", C=c, l1_ratio=r)`` is
    ``elastic_net(1 / c, r)``. The L1 part gives exact zeros as in :func:`l1`.

    Example:
      >>> import jax.numpy as jnp, mlejax as mj
      >>> round(float(mj.penalties.elastic_net(1.0, 0.5)({"w": jnp.array([2.0])})), 2)
      -2.0
    """
    ratio = _check_lam(l1_ratio, "l1_ratio")
    if ratio > 1.0:
        raise ValueError(f"l1_ratio must lie in [0, 1]; got {l1_ratio!r}.")
    lam = _check_lam(lam)
    return l1(lam * ratio, on=on, smooth=smooth) + l2(lam * (1.0 - ratio), on=on)


def as_penalty(penalty: Any) -> Penalty | None:
    """``penalty=`` as a :class:`Penalty` (a function becomes one term); None stays None."""
    if penalty is None or isinstance(penalty, Penalty):
        return penalty
    if callable(penalty):
        return Penalty((_Fn(penalty),))
    raise ValueError("penalty= must be a penalty such as mj.penalties.l2(0.1), or a function "
                     f"params -> scalar added to the log-likelihood; got {penalty!r}.")


def check(penalty: Penalty, params) -> None:
    """Pre-trace checks: the penalty returns a finite float scalar at ``params``."""
    try:
        out = jax.eval_shape(penalty, params)
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise ValueError(f"penalty {penalty!r} failed on the parameters: {err!r}. A penalty "
                         "is a function of the params pytree (see mj.penalties).") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        raise ValueError(f"penalty {penalty!r} must return a scalar; got shape "
                         f"{getattr(out, 'shape', type(out).__name__)}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"penalty {penalty!r} must return a float; got dtype {out.dtype}.")
    leaves = jax.tree_util.tree_leaves(params)
    if not any(isinstance(x, jax.core.Tracer) for x in leaves):
        value = float(penalty(params))
        if not math.isfinite(value):
            raise ValueError(f"penalty {penalty!r} is not finite at init (got {value}); "
                             "start where the penalty is finite.")


def l1_weights(penalty: Penalty | None, problem) -> np.ndarray | None:
    """The exact-L1 strength of each unconstrained coordinate, ``(n_free,)``, or None.

    Raises ValueError where an exact L1 term penalises a constrained parameter or its
    ``on=`` function computes with the parameters instead of selecting them.
    """
    if penalty is None or not penalty.has_l1:
        return None
    markers, offset = [], 0
    for c, u_shape, nat_shape in zip(problem.constraints, problem.u_shapes,
                                     problem.nat_shapes):
        size = int(np.prod(u_shape))
        if isinstance(c, Real):
            markers.append(_BASE + offset + np.arange(size, dtype=np.int64).reshape(nat_shape))
        else:
            markers.append(np.full(nat_shape, -_BASE, dtype=np.int64))
        offset += size
    tree = problem.unflatten(markers)
    lam = np.zeros(problem.n_free)
    for term in penalty.terms:
        if not _exact_l1(term):
            continue
        for a in _select(term.on, tree):
            a = np.asarray(a)
            if a.dtype.kind not in "iu":
                raise ValueError(f"{term!r}: on= must select parameters (keys, indexing, "
                                 "slicing), not compute with them.")
            if np.any(a == -_BASE):
                raise ValueError(f"{term!r}: the exact L1 penalty (zeros by proximal Newton) "
                                 "needs unconstrained parameters (mj.real), but it selects a "
                                 "constrained one. Penalise unconstrained parameters, or use "
                                 "l1(lam, smooth=s).")
            idx = a.ravel() - _BASE
            if np.any((idx < 0) | (idx >= problem.n_free)):
                raise ValueError(f"{term!r}: on= must select parameters (keys, indexing, "
                                 "slicing), not compute with them.")
            np.add.at(lam, idx, term.lam)
    return lam
