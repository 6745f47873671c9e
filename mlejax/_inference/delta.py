"""The delta method: the estimate and standard error of any function of the parameters."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from mlejax._inference.common import check_level, check_result, z_quantile
from mlejax._inference.robust import resolve_cov
from mlejax._numerics import sym
from mlejax.result import FitResult

__all__ = ["DeltaResult", "delta"]


@dataclasses.dataclass(frozen=True)
class DeltaResult:
    """A function of the parameters, its delta-method standard error and covariance.

    Attributes:
      estimate: ``fn(params)``, with the structure ``fn`` returns.
      stderr: standard errors, same structure.
      cov: ``(m, m)`` covariance of the ``m`` flattened outputs (``(K, m, m)`` for a batch).
      jacobian: ``(m, p)`` derivative of the outputs with respect to the flattened parameters.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> d = res.delta(lambda p: {"cv": p["sigma"] / p["mu"], "var": p["sigma"] ** 2})
      >>> round(float(d.estimate["var"]), 4), round(float(d.stderr["var"]), 4)
      (0.3261, 0.163)
      >>> d.cov.shape, d.jacobian.shape
      ((2, 2), (2, 2))
    """

    estimate: Any
    stderr: Any
    cov: jax.Array
    jacobian: jax.Array

    def confint(self, level: float = 0.95) -> tuple[Any, Any]:
        """Wald interval ``estimate +- z stderr`` (lower, upper), with ``fn``'s structure."""
        level = check_level(level)

        def z_of(x):
            return z_quantile(level, jnp.result_type(x))

        lo = jax.tree_util.tree_map(lambda e, s: e - z_of(e) * s, self.estimate, self.stderr)
        hi = jax.tree_util.tree_map(lambda e, s: e + z_of(e) * s, self.estimate, self.stderr)
        return lo, hi

    @property
    def z(self) -> Any:
        """Wald statistics ``estimate / stderr``."""
        return jax.tree_util.tree_map(lambda e, s: e / s, self.estimate, self.stderr)

    @property
    def pvalue(self) -> Any:
        """Two-sided p-values of the Wald statistics against zero."""
        return jax.tree_util.tree_map(
            lambda t: 2.0 * jax.scipy.special.ndtr(-jnp.abs(t)), self.z)


jax.tree_util.register_dataclass(DeltaResult,
                                 data_fields=["estimate", "stderr", "cov", "jacobian"],
                                 meta_fields=[])


def _delta_one(problem, fn, flat, cov):
    def flat_fn(x):
        return ravel_pytree(fn(problem.unravel_natural(x)))[0]

    out = fn(problem.unravel_natural(flat))
    vec, unravel = ravel_pytree(out)
    jac = jax.jacfwd(flat_fn)(flat).reshape(vec.shape[0], flat.shape[0])
    c = sym(jac @ cov @ jac.T)
    se = unravel(jnp.sqrt(jnp.diagonal(c)))
    return DeltaResult(out, se, c, jac)


def delta(res: FitResult, fn: Callable, *, cov: Any = "observed",
          groups: Any = None) -> DeltaResult:
    """The delta method: the estimate and standard error of any function of the parameters.

    For ``g = fn(params)`` (a scalar, an array or a pytree of them), with ``J = dg/dtheta`` by
    autodiff at the estimate, ``cov(g) = J cov(theta) J^T``.

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch`` (``fn`` is applied to each fit).
      fn: a JAX function of the parameter pytree (natural scale).
      cov: ``"observed"`` (``res.cov``), ``"robust"`` (sandwich; ``groups=`` for clusters), or
        a ``(p, p)`` matrix.

    Returns:
      :class:`DeltaResult`.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> d = mj.delta(res, lambda p: p["mu"] / p["sigma"])   # or res.delta(...)
      >>> round(float(d.estimate), 4), round(float(d.stderr), 4)
      (2.2546, 0.6654)
      >>> [round(float(v), 4) for v in d.confint(0.95)]
      [0.9505, 3.5587]
    """
    check_result(res, "delta")
    if not callable(fn):
        raise ValueError("delta needs fn, a function of the parameter pytree, e.g. "
                         "lambda p: p['mu'] / p['sigma'].")
    problem = res.context.config.problem
    c = resolve_cov(res, cov, groups)
    flat = jnp.asarray(res.flat_params())
    one = functools.partial(_delta_one, problem, fn)
    try:
        jax.eval_shape(one, flat[(0,) * (flat.ndim - 1)], c[(0,) * (c.ndim - 2)])
    except (TypeError, ValueError, IndexError, KeyError) as err:
        raise ValueError(f"delta: fn(params) failed on the parameters: {err}") from err
    for _ in range(flat.ndim - 1):
        one = jax.vmap(one)
    return one(flat, c)
