"""Annealing schedules: deterministic annealing for EM, tempering for direct fits.

A schedule is an increasing sequence of inverse temperatures ``beta_1 < ... < beta_S = 1``.
The fit runs to convergence at each ``beta`` in turn, each stage starting where the last one
stopped. The last stage is the true objective, so the answer is the maximum-likelihood (or
penalised) estimate, reached along a path through smoother surfaces where a poor peak has
not yet formed. ``res.trace``, ``n_steps`` and the status are those of the last stage.

EM (``gmm.fit(x, anneal=...)``, ``mj.em(..., anneal=...)``; Ueda & Nakano 1998): at
``beta`` the E-step uses tempered responsibilities ``r_ik`` proportional to
``p(x_i, z_i = k)^beta``, and EM maximises the tempered objective

    F_beta = (1 / beta) sum_i w_i log sum_k p(x_i, z_i = k)^beta,

as monotonically as plain EM maximises ``L = F_1`` (each iteration is coordinate ascent on
the free energy ``E_r[log p(x, z)] + H(r) / beta``). At small ``beta`` every observation is
shared almost evenly among the components and the surface has few optima; as ``beta``
rises the components separate where the data ask for it, not where a start put them.
Components that merged when hot are identical, and EM keeps identical components
identical, so each stage starts from responsibilities perturbed by ``exp(jitter z)``
(Rose's symmetry breaking at the phase transitions). A Gaussian mixture anneals with one
shared isotropic covariance, the start's pooled variance, freed at the last stage: a free
covariance would absorb the temperature (``N^beta`` is a Gaussian of covariance
``Sigma / beta``) and the merged component would not split before ``beta = 1``
(``GaussianMixture.anneal_m_step``). Annealing is a heuristic: the splits are binary, and
clusters that cannot be halved evenly (a 3 x 3 grid) can be split wrongly, where restarts
do better; the optima map (:mod:`mlejax.optima`) shows which happened.

Direct fits (``mj.fit(..., anneal=...)``): stage ``t`` maximises

    O_t(u) = beta_t E_z[loglik(u + sigma_t z)] + penalty(u),    z ~ N(0, I),

in the solvers' unconstrained coordinates ``u``, with ``sigma_t = smoothing * (1 - beta_t) /
(1 - beta_1)`` (``smoothing`` at the first stage, 0 at the last). The expectation uses
``draws`` fixed antithetic normal draws, common to every stage and step, so each ``O_t`` is
a deterministic smooth function the usual solvers maximise. Gaussian smoothing (graduated
optimisation) removes narrow peaks first: it helps where the poor optima are narrower than
the good one. Without ``smoothing`` the log-likelihood is only scaled by ``beta``, which
moves the optimum only relative to a penalty (a path from the prior to the penalised
likelihood); without a penalty as well it would change nothing, and ``mj.fit`` refuses it.

Example:
  >>> import mlejax as mj
  >>> [round(b, 3) for b in mj.anneal.geometric(start=0.1, steps=4).betas]
  [0.1, 0.215, 0.464, 1.0]

References:
  Ueda & Nakano (1998), Deterministic annealing EM algorithm. Rose (1998), Deterministic
  annealing for clustering, compression, classification, regression. Mobahi & Fisher (2015),
  on the link between Gaussian homotopy continuation and convex envelopes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Schedule", "geometric", "linear", "schedule"]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """An annealing schedule (hashable: a fit with the same schedule reuses its program).

    Attributes:
      betas: increasing inverse temperatures in ``(0, 1]``, the last exactly 1.
      smoothing: direct fits only: the Gaussian smoothing scale of the first stage, in
        unconstrained coordinates (None: no smoothing, the log-likelihood scaled by beta).
      draws: direct fits with smoothing: normal draws estimating the smoothed objective.
      stage_steps: EM only: at most this many iterations per stage before the last
        (default: the fit's ``max_steps``, i.e. each stage to convergence).
      jitter: EM only: the size of the random perturbation ``exp(jitter z)`` of the
        responsibilities at the start of each stage, which breaks the symmetry of
        components that merged when hot (0: none).

    Example:
      >>> sched = mj.anneal.linear(start=0.5, steps=3, smoothing=1.0)   # made by a builder
      >>> type(sched).__name__, sched.betas, sched.sigmas().tolist()
      ('Schedule', (0.5, 0.75, 1.0), [1.0, 0.5])
    """

    betas: tuple
    smoothing: float | None = None
    draws: int = 16
    stage_steps: int | None = None
    jitter: float = 0.1

    def sigmas(self) -> np.ndarray:
        """The smoothing scale of each stage before the last (zeros without smoothing)."""
        b = np.asarray(self.betas[:-1], dtype=np.float64)
        if self.smoothing is None or b.size == 0:
            return np.zeros_like(b)
        span = 1.0 - self.betas[0]
        return self.smoothing * (1.0 - b) / span


def _validate(betas, smoothing, draws, stage_steps=None, jitter=0.1) -> Schedule:
    try:
        b = tuple(float(x) for x in betas)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a sequence of numbers; got {betas!r}.") from None
    if not b:
        raise ValueError("an annealing schedule needs at least one beta (ending at 1).")
    if not all(math.isfinite(x) and 0.0 < x <= 1.0 for x in b):
        raise ValueError(f"every beta must lie in (0, 1]; got {b}.")
    if any(y <= x for x, y in zip(b, b[1:])):
        raise ValueError(f"betas must increase strictly; got {b}.")
    if b[-1] != 1.0:
        raise ValueError(f"the last beta must be 1 (the true objective), so that the answer "
                         f"is the MLE; got {b[-1]}.")
    if smoothing is not None:
        smoothing = float(smoothing)
        if not (math.isfinite(smoothing) and smoothing > 0.0):
            raise ValueError(f"smoothing must be a number > 0 (or None); got {smoothing!r}.")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 2:
        raise ValueError(f"draws must be an integer >= 2; got {draws!r}.")
    if stage_steps is not None and (isinstance(stage_steps, bool) or not isinstance(
            stage_steps, (int, np.integer)) or stage_steps < 1):
        raise ValueError(f"stage_steps must be a positive integer (or None); got "
                         f"{stage_steps!r}.")
    jitter = float(jitter)
    if not (math.isfinite(jitter) and jitter >= 0.0):
        raise ValueError(f"jitter must be a number >= 0; got {jitter!r}.")
    return Schedule(b, smoothing, int(draws), None if stage_steps is None else int(stage_steps),
                    jitter)


def _check_steps(start, steps):
    start = float(start)
    if not (math.isfinite(start) and 0.0 < start < 1.0):
        raise ValueError(f"start must lie in (0, 1); got {start!r}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (the last is beta = 1); got {steps!r}.")
    return start, int(steps)


def geometric(start: float = 0.1, steps: int = 20, *, smoothing: float | None = None,
              draws: int = 16, stage_steps: int | None = None,
              jitter: float = 0.1) -> Schedule:
    """``steps`` inverse temperatures from ``start`` to 1, evenly spaced in ``log beta``.

    Example:
      >>> import mlejax as mj
      >>> len(mj.anneal.geometric(start=0.1, steps=20).betas)
      20
    """
    start, steps = _check_steps(start, steps)
    betas = [start ** (1.0 - i / (steps - 1)) for i in range(steps)]
    betas[-1] = 1.0
    return _validate(betas, smoothing, draws, stage_steps, jitter)


def linear(start: float = 0.1, steps: int = 20, *, smoothing: float | None = None,
           draws: int = 16, stage_steps: int | None = None,
           jitter: float = 0.1) -> Schedule:
    """``steps`` inverse temperatures from ``start`` to 1, evenly spaced.

    Example:
      >>> import mlejax as mj
      >>> mj.anneal.linear(start=0.5, steps=3).betas
      (0.5, 0.75, 1.0)
    """
    start, steps = _check_steps(start, steps)
    return _validate([start + (1.0 - start) * i / (steps - 1) for i in range(steps)],
                     smoothing, draws, stage_steps, jitter)


def schedule(betas, *, smoothing: float | None = None, draws: int = 16,
             stage_steps: int | None = None, jitter: float = 0.1) -> Schedule:
    """A schedule from explicit inverse temperatures (increasing, ending at 1).

    Example:
      >>> import mlejax as mj
      >>> mj.anneal.schedule([0.2, 0.6, 1.0]).betas
      (0.2, 0.6, 1.0)
    """
    return _validate(betas, smoothing, draws, stage_steps, jitter)


def as_schedule(anneal) -> Schedule | None:
    """``anneal=`` checked: None or a :class:`Schedule`."""
    if anneal is None or isinstance(anneal, Schedule):
        return anneal
    raise ValueError("anneal= must be a schedule such as mj.anneal.geometric(start=0.1, "
                     f"steps=20) (or None); got {anneal!r}.")


def run_stages(stage_fn: Callable, u0: jax.Array, sched: Schedule,
               key: jax.Array | None = None) -> jax.Array:
    """Runs ``u = stage_fn(u, beta, sigma, key)`` over every stage before the last
    (``lax.scan``; one key per stage, split from ``key``).

    Pure and traceable: one compiled stage serves every temperature.
    """
    n = len(sched.betas) - 1
    if n == 0:
        return u0
    betas = jnp.asarray(sched.betas[:-1], u0.dtype)
    sigmas = jnp.asarray(sched.sigmas(), u0.dtype)
    keys = jax.random.split(jax.random.key(0) if key is None else key, n)

    def body(u, xs):
        beta, sigma, k = xs
        return stage_fn(u, beta, sigma, k), None

    u, _ = jax.lax.scan(body, u0, (betas, sigmas, keys))
    return u


def normal_draws(key: jax.Array, n: int, p: int, dtype) -> jax.Array:
    """``n`` antithetic standard normal draws of dimension ``p`` (pairs ``z, -z``)."""
    half = jax.random.normal(key, ((n + 1) // 2, p), dtype)
    return jnp.concatenate([half, -half])[:n]


def smoothed(fn: Callable, beta, sigma, z: jax.Array) -> Callable:
    """``u -> beta * mean_m fn(u + sigma z_m)``: the tempered, Gaussian-smoothed ``fn``."""
    def out(u):
        return beta * jnp.mean(jax.vmap(lambda zm: fn(u + sigma * zm))(z))
    return out
