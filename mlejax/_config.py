"""The static configuration of a fit (:class:`Config`, the key of compiled-program caches),
and the defaults a method gets."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from mlejax._problem import Problem

__all__ = ["Config", "DEFAULT_MAX_STEPS", "loose_tolerance"]


DEFAULT_MAX_STEPS = {"newton": 500, "bfgs": 500, "lbfgs": 1000, "gradient": 2000}


@dataclasses.dataclass(frozen=True)
class Config:
    """Every static setting of a fit: the key of the compiled-program cache."""

    loglik_fn: Callable
    problem: Problem
    per_obs: bool
    has_weights: bool
    method: str
    optimizer: Any
    batch_size: int | None
    max_steps: int
    gtol: float
    ftol: float
    trace_len: int
    loose: float        # gradient tolerance at the precision floor (see _loop)
    restarts: int | None
    init_fn: Callable | None
    restart_scale: float
    batched: bool
    init_batched: bool
    penalty: Any = None      # mj.penalties.Penalty added to the objective (None: plain MLE)
    anneal: Any = None       # mj.anneal.Schedule of stages run before the final fit
    canonical: Callable | None = None   # params -> canonical params, for the optima map
    obs_chunk: int | None = None        # sum the objective over chunks of observations
    obs_devices: tuple | None = None    # ... with the rows sharded over these devices
    checked_start: bool = False         # init checked on the solver's first evaluation
    init_in_trace: bool = False         # ... read from the fit's trace[0] after the program


def loose_tolerance(method: str, gtol: float) -> float:
    """The gradient tolerance that still counts as converged at the precision floor.

    First-order ascent cannot do better than ``sqrt(gtol)``; a line-search method whose
    log-likelihood stopped changing may still be far from the optimum in a parameter whose
    effect on ``f`` is below rounding (float32), so it gets no slack; Newton's own test
    certifies the floor, and ``10 gtol`` covers a gradient made of rounding.
    """
    if method == "gradient":
        return gtol ** 0.5
    if method in ("bfgs", "lbfgs"):
        return gtol
    return 10.0 * gtol
