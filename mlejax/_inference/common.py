"""What every inference routine shares: taking a result apart (a model's result unwrapped,
the checks that it can be refitted), the estimate in the solvers' coordinates, and the static
settings of a refit (the fit's own solver, warm-started at the estimate)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._config import default_settings
from mlejax.result import FitResult
from mlejax.solvers import METHODS
from mlejax.status import Status

__all__ = ["as_fit", "check_level", "check_result", "estimate_u", "lead_shape", "need_per_obs",
           "obs_count", "one_example", "refit_config", "refit_ok", "unflatten", "z_quantile"]


def as_fit(res: Any) -> tuple[Any, Any]:
    """``(FitResult, regression)``: a model's :class:`~mlejax.models.RegressionResult`
    unwrapped to its core result (``regression`` is then the RegressionResult itself, whose
    model sets the default small-sample correction); anything else as given, with None.

    A RegressionResult is recognised by its shape (not a FitResult, with ``fit_result`` and
    ``model``), not by its class: the models sit above inference and are not imported here.
    """
    if not isinstance(res, FitResult) and hasattr(res, "fit_result") and hasattr(res, "model"):
        return res.fit_result, res
    return res, None


def check_result(res: Any, what: str) -> None:
    if not isinstance(res, FitResult):
        raise ValueError(f"{what} needs a FitResult from mj.fit or mj.fit_batch (or a "
                         f"RegressionResult from a mj.models fit); got {type(res).__name__}.")
    if res.context is None:
        raise ValueError(f"{what} needs the fit's context (res.context is None): pass the "
                         "result returned by mj.fit / mj.fit_batch itself, not one rebuilt "
                         "by hand or passed through a jax transformation.")
    ctx = res.context
    if res.is_batch and ctx.data is None:
        raise ValueError(f"{what}: this batch was streamed from a generator, so its data were "
                         "not kept with the result; fit the datasets from arrays (or memmaps) "
                         "to use inference on them.")
    if ctx.config.has_weights != (ctx.weights is not None):
        raise ValueError(f"{what}: the datasets of this batch were padded into buckets (ragged "
                         "data), so the result does not hold them as one array; fit each "
                         "bucket of equal-length datasets with fit_batch to use inference.")


def check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level}.")
    return level


def z_quantile(level: float, dtype) -> jax.Array:
    """The two-sided standard normal quantile; its square is the chi2_1 quantile."""
    return jax.scipy.special.ndtri(jnp.asarray(0.5 + 0.5 * level, dtype))


def lead_shape(res: FitResult) -> tuple[int, ...]:
    return tuple(np.shape(res.loglik))


def estimate_u(res: FitResult) -> jax.Array:
    """The estimate in the solvers' unconstrained coordinates, (p,) or (K, p)."""
    problem = res.context.config.problem
    leaves = jax.tree_util.tree_leaves(res.params)
    if res.is_batch:
        return jax.vmap(lambda *ls: problem.to_u(list(ls)))(*leaves)
    return problem.to_u(leaves)


def unflatten(problem, flat: jax.Array, n_lead: int) -> Any:
    """Flat natural vectors (leading axes kept) to the structure of the parameters."""
    fn = problem.unravel_natural
    for _ in range(n_lead):
        fn = jax.vmap(fn)
    return fn(flat)


def one_example(tree, batched: bool):
    return jax.tree_util.tree_map(lambda x: x[0], tree) if batched else tree


def obs_count(res: FitResult) -> int:
    """Length of the per-observation output of the log-likelihood (one dataset)."""
    cfg = res.context.config
    params0 = one_example(res.params, res.is_batch)
    data0 = one_example(res.context.data, res.is_batch)
    return int(jax.eval_shape(cfg.loglik_fn, params0, data0).shape[0])


def need_per_obs(res: FitResult, what: str) -> None:
    if not res.context.config.per_obs:
        raise ValueError(f"{what} needs a per-observation log-likelihood: loglik_fn returns a "
                         "scalar total, so there are no per-observation terms. Return the vector "
                         "of terms instead (drop the final jnp.sum); mlejax sums it.")


def refit_config(cfg, *, method: str | None, max_steps: int | None, **changes):
    """The fit's static settings adapted to refits: one start, no batch axis, a short trace.

    Refits use the fit's own method and tolerances. A stochastic (minibatch) fit is refitted
    with full-data L-BFGS, since an accurate maximum is needed. A different ``method`` gets
    the defaults ``mj.fit`` would give it.
    """
    if method is None:
        method = cfg.method if cfg.batch_size is None else "lbfgs"
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; choose one of {METHODS}.")
    # A refit is warm-started at the estimate: no annealing path away from it. Refits of a
    # fit sharded over devices (fit(devices=...)) run as one program on the data where it
    # lies: XLA partitions them.
    # A random-effects fit's refits start each inner Newton from the fit's own start (the
    # data's "u0"): no warm start carried, the same marginal.
    new = dict(restarts=None, init_fn=None, batched=False, init_batched=False, batch_size=None,
               trace_len=1, anneal=None, obs_devices=None, random=None)
    if method != cfg.method or cfg.batch_size is not None:
        steps, gtol, ftol = default_settings(method, cfg.problem.dtype)
        new.update(method=method, gtol=float(gtol), ftol=float(ftol), max_steps=steps,
                   optimizer=cfg.optimizer if method == "gradient" else None)
    if max_steps is not None:
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive integer; got {max_steps}.")
        new["max_steps"] = int(max_steps)
    new.update(changes)
    return dataclasses.replace(cfg, **new)


def refit_ok(status: jax.Array) -> jax.Array:
    # A refit whose own Hessian is singular (a nuisance parameter not identified at that
    # point) still found the maximum of the profile: its log-likelihood is usable.
    # Likewise a refit whose Hessian has non-finite entries (NONFINITE_HESSIAN): its
    # gradient test found the maximum; only its standard errors are missing. And a refit
    # whose nuisance parameter runs to the boundary of its constraint (NOT_ATTAINED: e.g. a
    # zero-inflation probability going to 0 when lambda is held low) has reached the supremum
    # the profile is defined by: its log-likelihood is the profile's value there.
    return ((status == Status.CONVERGED) | (status == Status.SINGULAR_HESSIAN)
            | (status == Status.NONFINITE_HESSIAN) | (status == Status.NOT_ATTAINED))
