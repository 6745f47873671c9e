"""Solver objects: a method with its own step limit and tolerances, as one value.

``mj.fit(..., method=mj.Newton(max_steps=2000))`` is the same fit as
``mj.fit(..., method="newton", max_steps=2000)``: the string and keywords are built into one
of these objects (:func:`as_method`), so the defaults of every method, per dtype, live here
and nowhere else (fits, the refits of profile likelihoods and bootstraps, EM's Newton
M-step). A field left ``None`` takes the method's default for the parameters' dtype:

============  =========  ====================  ======================  ===================
method        max_steps  gtol (scaled grad.)   ftol (relative chg.)    extra
============  =========  ====================  ======================  ===================
``Newton``    500        ``eps ** (3/4)``      ``10 eps``
``BFGS``      500        ``eps ** (2/3)``      ``10 eps``
``LBFGS``     1000       ``eps ** (2/3)``      ``10 eps``              ``memory`` (10)
``Gradient``  2000       ``eps ** (1/2)``      ``eps ** (1/2)``        ``optimizer``,
                                                                       ``minibatch``
============  =========  ====================  ======================  ===================

Newton's tighter gradient tolerance costs little (it converges quadratically) and its own
rounding-floor test relaxes it where it cannot be met; first-order ascent with a fixed
learning rate reaches about ``sqrt(eps)``.

Example:
  >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7])
  >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
  >>> init, cons = {"mu": 0.0, "sigma": 1.0}, {"sigma": mj.positive}
  >>> a = mj.fit(loglik, init, x, constraints=cons, method=mj.BFGS(max_steps=50))
  >>> b = mj.fit(loglik, init, x, constraints=cons, method="bfgs", max_steps=50)
  >>> bool(a.params["mu"] == b.params["mu"]), a.method
  (True, 'bfgs')
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp

__all__ = ["BFGS", "LBFGS", "METHOD_NAMES", "Gradient", "Method", "Newton", "as_method",
           "default_settings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Method:
    """A solver with its step limit and tolerances (``None``: the default for the dtype).

    Attributes:
      max_steps: the step limit.
      gtol: tolerance on the scaled gradient ``max_i |g_i| max(|u_i|, 1) / max(|f|, 1)``.
      ftol: tolerance on the relative change of the log-likelihood per step.

    Example:
      >>> mj.Newton().settings(jnp.float64)[0], mj.Method.__subclasses__()[0] is mj.Newton
      (500, True)
    """

    name: ClassVar[str] = ""
    default_max_steps: ClassVar[int] = 500
    max_steps: int | None = None
    gtol: float | None = None
    ftol: float | None = None

    def __post_init__(self):
        if self.max_steps is not None and (isinstance(self.max_steps, bool)
                                           or int(self.max_steps) != self.max_steps
                                           or self.max_steps < 1):
            raise ValueError(f"{type(self).__name__}: max_steps must be a positive integer; "
                             f"got {self.max_steps!r}.")
        for what in ("gtol", "ftol"):
            value = getattr(self, what)
            if value is not None and not float(value) >= 0:
                raise ValueError(f"{type(self).__name__}: {what} must be a non-negative "
                                 f"number; got {value!r}.")

    def default_tolerances(self, dtype) -> tuple[float, float]:
        """``(gtol, ftol)`` this method gets for parameters of ``dtype``."""
        eps = float(jnp.finfo(dtype).eps)
        return eps ** (2.0 / 3.0), 10.0 * eps

    def settings(self, dtype) -> tuple[int, float, float]:
        """``(max_steps, gtol, ftol)`` with the defaults for ``dtype`` filled in."""
        gtol, ftol = self.default_tolerances(dtype)
        return (int(self.default_max_steps if self.max_steps is None else self.max_steps),
                float(gtol if self.gtol is None else self.gtol),
                float(ftol if self.ftol is None else self.ftol))

    def loose_tolerance(self, gtol: float) -> float:
        """The gradient tolerance that still counts as converged at the precision floor
        (where the log-likelihood stopped changing): see each method."""
        return gtol


@dataclasses.dataclass(frozen=True, kw_only=True)
class Newton(Method):
    """Trust-region Newton-Raphson with the exact autodiff Hessian (the default method).

    At the precision floor ``10 gtol`` counts as converged: Newton's own test certifies the
    floor, and the slack covers a gradient made of rounding.

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], 1.0)
      >>> res = mj.fit(loglik, {"mu": 0.0}, jnp.array([1.0, 2.0, 4.0]),
      ...              method=mj.Newton(max_steps=20))
      >>> round(float(res.params["mu"]), 6), res.method
      (2.333333, 'newton')
    """

    name: ClassVar[str] = "newton"
    default_max_steps: ClassVar[int] = 500

    def default_tolerances(self, dtype) -> tuple[float, float]:
        eps = float(jnp.finfo(dtype).eps)
        return eps ** 0.75, 10.0 * eps

    def loose_tolerance(self, gtol: float) -> float:
        return 10.0 * gtol


@dataclasses.dataclass(frozen=True, kw_only=True)
class BFGS(Method):
    """Quasi-Newton BFGS with a weak-Wolfe line search.

    A line-search method whose log-likelihood stopped changing may still be far from the
    optimum in a parameter whose effect is below rounding (float32): no slack on ``gtol``.

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], 1.0)
      >>> res = mj.fit(loglik, {"mu": 0.0}, jnp.array([1.0, 2.0, 4.0]), method=mj.BFGS())
      >>> round(float(res.params["mu"]), 6), res.method
      (2.333333, 'bfgs')
    """

    name: ClassVar[str] = "bfgs"
    default_max_steps: ClassVar[int] = 500


@dataclasses.dataclass(frozen=True)
class LBFGS(Method):
    """Limited-memory BFGS keeping the last ``memory`` curvature pairs (weak-Wolfe line
    search), for many parameters.

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], 1.0)
      >>> x = jnp.linspace(-1.0, 1.0, 8)
      >>> res = mj.fit(loglik, {"mu": jnp.zeros(8) + 3.0}, x, method=mj.LBFGS(memory=5))
      >>> bool(jnp.allclose(res.params["mu"], x, atol=1e-4))   # each mu_i = x_i
      True
    """

    name: ClassVar[str] = "lbfgs"
    default_max_steps: ClassVar[int] = 1000
    memory: int = 10

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.memory, bool) or int(self.memory) != self.memory or self.memory < 1:
            raise ValueError(f"LBFGS: memory must be a positive integer; got {self.memory!r}.")


@dataclasses.dataclass(frozen=True)
class Gradient(Method):
    """Gradient ascent with an optax ``optimizer`` (default ``optax.adam(1e-2)`` on the mean
    log-likelihood per observation); stochastic on random minibatches of ``minibatch``
    observations (a fit then needs ``key=``).

    First-order ascent with a fixed learning rate cannot reach ``eps ** (2/3)``: its
    tolerances are ``sqrt(eps)``, and ``sqrt(gtol)`` counts as converged at the floor.

    Example:
      >>> import optax
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], 1.0)
      >>> x = jnp.linspace(0.0, 2.0, 64)
      >>> res = mj.fit(loglik, {"mu": 0.0}, x, method=mj.Gradient(optax.adam(0.1),
      ...              minibatch=16), key=jax.random.key(0), warn=False)
      >>> abs(float(res.params["mu"]) - 1.0) < 0.2
      True
    """

    name: ClassVar[str] = "gradient"
    default_max_steps: ClassVar[int] = 2000
    optimizer: Any = None
    minibatch: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.minibatch is not None and (isinstance(self.minibatch, bool)
                                           or int(self.minibatch) != self.minibatch
                                           or self.minibatch < 1):
            raise ValueError(f"Gradient: minibatch (observations per step) must be a "
                             f"positive integer; got {self.minibatch!r}.")

    def default_tolerances(self, dtype) -> tuple[float, float]:
        eps = float(jnp.finfo(dtype).eps)
        return eps ** 0.5, eps ** 0.5

    def loose_tolerance(self, gtol: float) -> float:
        return gtol ** 0.5


_BY_NAME = {cls.name: cls for cls in (Newton, BFGS, LBFGS, Gradient)}
#: The method names ``method=`` accepts as strings.
METHOD_NAMES = tuple(_BY_NAME)


def default_settings(method: str, dtype) -> tuple[int, float, float]:
    """``(max_steps, gtol, ftol)`` that ``method`` (a name) gets by default for ``dtype``."""
    return _BY_NAME[method]().settings(dtype)


def as_method(method: Any, *, optimizer: Any = None, batch_size: int | None = None,
              max_steps: int | None = None, gtol: float | None = None,
              ftol: float | None = None) -> Method:
    """The solver object of a fit's ``method=`` and keywords.

    A string with the keywords becomes its object (today's API, unchanged); a solver object
    is used as given, and a keyword given beside it is an error (one place for each
    setting), as is a keyword the method does not use.
    """
    given = {"optimizer": optimizer, "batch_size": batch_size, "max_steps": max_steps,
             "gtol": gtol, "ftol": ftol}
    given = {k: v for k, v in given.items() if v is not None}
    if isinstance(method, Method):
        if type(method) not in _BY_NAME.values():
            raise ValueError(f"method={method!r}: use one of mj.Newton, mj.BFGS, mj.LBFGS, "
                             "mj.Gradient (or their names as strings).")
        if given:
            field = {"batch_size": "minibatch"}
            raise ValueError(
                f"method={method!r} is a solver object, and "
                + ", ".join(f"{k}={v!r}" for k, v in given.items())
                + " was given beside it: set "
                + ", ".join(field.get(k, k) for k in given)
                + f" on the object (e.g. mj.{type(method).__name__}("
                + ", ".join(f"{field.get(k, k)}=..." for k in given)
                + ")), not as a keyword of the fit.")
        return method
    if not isinstance(method, str) or method not in _BY_NAME:
        raise ValueError(f"method={method!r} is not known; choose one of {METHOD_NAMES} or a "
                         "solver object (mj.Newton(), mj.BFGS(), mj.LBFGS(), "
                         "mj.Gradient(optimizer)).")
    if optimizer is not None and method != "gradient":
        raise ValueError(f"optimizer= is used only by method='gradient'; got method={method!r}. "
                         "Pass method='gradient' to ascend with an optax optimiser.")
    if batch_size is not None and method != "gradient":
        raise ValueError("batch_size= (minibatch ascent) needs method='gradient'; "
                         f"got method={method!r}.")
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
        raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}.")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size}.")
    common = dict(max_steps=None if max_steps is None else int(max_steps), gtol=gtol, ftol=ftol)
    if method == "gradient":
        return Gradient(optimizer, None if batch_size is None else int(batch_size), **common)
    return _BY_NAME[method](**common)
