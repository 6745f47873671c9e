"""The optima map of a mixture's ``n_init`` starts (:meth:`MixtureResult.optima`,
:func:`mlejax.optima.find`): each start's observed information from the data it was fitted
to, its components in the model's canonical order, then the grouping of
:func:`mlejax.optima.group`. ``mlejax.mixture`` registers it with
:func:`mlejax.optima.register`."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import optima
from mlejax._programs import program_cache
from mlejax.kmeans import check_matrix
from mlejax.mixture._result import MixtureResult, mixture_problem
from mlejax.status import Status

__all__ = ["find_mixture_optima"]


@program_cache
def _mixture_program(model, problem, tol: float, ftol: float, batched: bool):
    canonical = model.canonical()

    def one(params, x, loglik, status):
        def total(p):
            return jnp.sum(model.loglik(p, x))

        canon, u, se, definite = jax.vmap(
            functools.partial(optima.coordinates, problem, canonical, total))(params)
        status = jnp.where((~definite) & (status == Status.CONVERGED),
                           jnp.int32(Status.SINGULAR_HESSIAN), status)
        return optima.group(u, se, loglik, loglik, status, canon, tol=tol, ftol=ftol)

    return jax.jit(jax.vmap(one) if batched else one)


def find_mixture_optima(res: MixtureResult, x: Any = None, *, canonical: Any = None,
                        tol: float, ftol: float) -> optima.Optima:
    """:func:`mlejax.optima.find` for a :class:`MixtureResult` (``tol`` and ``ftol``
    checked there): the data ``x`` it was fitted to are needed."""
    if x is None:
        raise ValueError("the optima map of a mixture needs the data it was fitted to: "
                         "res.optima(x).")
    if res.restart_params is None:
        raise ValueError("this MixtureResult holds no per-start estimates "
                         "(restart_params); refit it with this version of mlejax.")
    model = res.model
    x = check_matrix(x, "x", model.data_ndim + (1 if res.is_batch else 0))
    if x.shape[-2] != np.asarray(res.nobs).ravel()[0]:
        raise ValueError(f"x has {x.shape[-2]} observations but the mixture was fitted to "
                         f"{int(np.asarray(res.nobs).ravel()[0])}; pass the same data.")
    problem = mixture_problem(model, x.shape[-1], x.dtype)
    if canonical is not None:
        model = _Recanonical(model, canonical)
    out = _mixture_program(model, problem, tol, ftol, res.is_batch)(
        res.restart_params, x, res.restart_loglik, res.restart_status)
    return optima.Optima(**out, param_names=problem.param_names)


@dataclasses.dataclass(frozen=True)
class _Recanonical:
    """A mixture model whose canonical form the user replaced (hashable, for the cache)."""

    model: Any
    canon: Any

    def canonical(self):
        return self.canon

    def loglik(self, params, x):
        return self.model.loglik(params, x)
