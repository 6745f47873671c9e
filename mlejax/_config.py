"""The static configuration of a fit (:class:`Config`, the key of compiled-program caches).
The defaults a method gets are its solver object's (:mod:`mlejax.methods`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from mlejax._problem import Problem
from mlejax.methods import default_settings

__all__ = ["Config", "default_settings"]


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
    lbfgs_memory: int = 10              # curvature pairs kept by method="lbfgs"
    random: Any = None                  # mlejax._laplace.Laplace: the marginal's random effects
    platform: str = "cpu"               # where the data computes (_blocks.platform_of)

    @property
    def fits_in_turn(self) -> bool:
        """Whether many fits of this configuration (a batch, profile refits) run one after
        another (``lax.map``) instead of as one ``vmap``: for a random-effects marginal whose
        ``A`` is factored by LAPACK (dense, or blocks wider than the unrolled ones). Under
        ``vmap`` those factorisations and solves become batched LAPACK calls, which jaxlib
        (0.10.2) splits over XLA's intra-op thread pool; two of them running at once each
        hold a pool thread while waiting for their parts, and on a two-core CPU the program
        deadlocks (five lme4 REML fits, A 103 wide: every thread asleep in
        ``jax::ParallelBatchMap``, found with gdb). One fit at a time makes single-matrix
        calls, which never wait on the pool; a dense fit is LAPACK-bound, so little is lost.
        CPU only: a GPU's batched solvers (cuSOLVER) have no such pool, and there the batch
        stays one ``vmap``."""
        return (self.random is not None and bool(getattr(self.random, "factored", False))
                and self.platform == "cpu")
