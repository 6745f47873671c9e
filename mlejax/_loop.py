"""The one driver loop every solver runs on.

A solver supplies ``init(u0) -> state`` and ``step(state) -> (state, progress)``; its state is a
NamedTuple with at least ``u`` (the unconstrained parameter vector), ``f`` (the log-likelihood,
maximised) and ``g`` (its gradient). The loop owns everything else: the step counter and
``max_steps``, the stopping tests, non-finite detection, the status code and the trace. It is a
``lax.while_loop``, so under ``vmap`` each element stops on its own test: a converged element's
state is frozen (the batched loop selects its old state) while the others go on.

Stopping tests, with ``s = scaled_grad_norm(u, f, g)`` (see ``_numerics``):

* converged when ``s <= gtol``;
* or when an accepted step changed ``f`` by at most ``ftol * max(|f|, 1)`` and
  ``s <= loose`` (the precision floor of the dtype reached; ``loose`` is ``10 gtol`` by
  default and ``sqrt(gtol)`` for first-order ascent, which cannot do better);
* a solver may report that its own test found the optimum (``STEP_AT_OPTIMUM``: Newton's
  predicted gain below rounding on a negative-definite Hessian);
* a step that could make no progress (``progress=False``: the line search or damping found no
  increase) counts as converged when ``s <= loose``, the gradient being at the noise floor,
  and as ``LINESEARCH_FAILED`` otherwise; a rejected trust-region trial that shrank the
  region (``STEP_RETRY``) keeps the loop running from the same point;
* a gradient-free solver converges when a step changes ``f`` by at most
  ``ftol * max(|f|, 1)`` (with ``ftol=None``, never by this test alone), when its step says
  ``STEP_AT_OPTIMUM`` (its own test: EM's fixed point), or when it can make no progress;
* a non-finite log-likelihood or gradient stops with ``NONFINITE`` and keeps the last finite
  state; ``MAX_STEPS`` when the counter runs out.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from mlejax._numerics import scaled_grad_norm
from mlejax.status import Status


class Solver(Protocol):
    """What the driver loop needs from a solver."""

    stochastic: bool  # True when f and g are minibatch estimates: only max_steps stops it
    gradient_free: bool  # True when g is not maintained (EM): stop on the change in f only

    def init(self, u0: jax.Array) -> Any: ...

    def step(self, state: Any) -> tuple[Any, jax.Array]: ...  # (state, STEP_* code or bool)

    # Stochastic solvers only: full-data f and g, and the final status, after the loop.
    def finalize(self, state: Any, status: jax.Array) -> tuple[Any, jax.Array]: ...


# What a solver's step reports (a bool is read as NO_PROGRESS / PROGRESS).
STEP_NO_PROGRESS = 0   # no acceptable step was found; the state is unchanged
STEP_PROGRESS = 1      # an accepted step
STEP_AT_OPTIMUM = 2    # an accepted step after which the solver's own test says: converged
STEP_RETRY = 3         # no move, but the solver's state changed (a trust region shrank): go on


class LoopState(NamedTuple):
    solver_state: Any
    step: jax.Array      # int32
    status: jax.Array    # int32, Status.RUNNING while iterating
    trace: jax.Array     # (trace_len,) log-likelihood after each step, NaN where not reached


class LoopResult(NamedTuple):
    solver_state: Any
    n_steps: jax.Array
    status: jax.Array
    trace: jax.Array


def default_tolerances(dtype) -> tuple[float, float]:
    """(gtol, ftol) scaled to the dtype: eps^(2/3) on the gradient, 10 eps on the change in f."""
    eps = float(jnp.finfo(dtype).eps)
    return eps ** (2.0 / 3.0), 10.0 * eps


def start(solver: Solver, u0: jax.Array, *, gtol: float, trace_len: int) -> LoopState:
    """The loop's state before the first step: the solver initialised at ``u0``."""
    running = jnp.int32(Status.RUNNING)
    s0 = solver.init(u0)
    finite0 = jnp.isfinite(s0.f) & jnp.all(jnp.isfinite(s0.g))
    if solver.stochastic or solver.gradient_free:
        at_optimum = jnp.array(False)
    else:
        at_optimum = scaled_grad_norm(s0.u, s0.f, s0.g) <= gtol
    status0 = jnp.where(~finite0, jnp.int32(Status.NONFINITE),
                        jnp.where(at_optimum, jnp.int32(Status.CONVERGED), running))
    trace0 = jnp.full((trace_len,), jnp.nan, s0.f.dtype).at[0].set(s0.f)
    return LoopState(s0, jnp.int32(0), status0, trace0)


def advance(solver: Solver, state: LoopState, *, max_steps: int, gtol: float,
            ftol: float | None,
            until: jax.Array | int | None = None, loose: float | None = None) -> LoopState:
    """Steps while running, up to ``max_steps`` in all (and to step ``until`` when given).

    Stopping at ``until`` leaves the status ``RUNNING``, so a fit can be resumed later in
    another batch (straggler re-packing) with results identical to an uninterrupted run.
    """
    running = jnp.int32(Status.RUNNING)
    loose = 10.0 * gtol if loose is None else loose
    trace_len = state.trace.shape[0]
    limit = max_steps if until is None else jnp.minimum(max_steps, until)

    def cond(c: LoopState):
        return (c.status == running) & (c.step < limit)

    def body(c: LoopState):
        old = c.solver_state
        new, code = solver.step(old)
        code = jnp.asarray(code).astype(jnp.int32)
        progress = (code == STEP_PROGRESS) | (code == STEP_AT_OPTIMUM)
        retry = code == STEP_RETRY
        step = c.step + 1
        finite = jnp.isfinite(new.f) & jnp.all(jnp.isfinite(new.g))
        small_change = (jnp.abs(new.f - old.f) <= ftol * jnp.maximum(jnp.abs(new.f), 1.0)
                        if ftol is not None else jnp.array(False))
        if solver.stochastic:
            status = jnp.where(finite, running, jnp.int32(Status.NONFINITE))
        elif solver.gradient_free:
            status = jnp.where(~finite, jnp.int32(Status.NONFINITE),
                               jnp.where(small_change | ~progress | (code == STEP_AT_OPTIMUM),
                                         jnp.int32(Status.CONVERGED), running))
        else:
            sg = scaled_grad_norm(new.u, new.f, new.g)
            converged = ((sg <= gtol) | (progress & small_change & (sg <= loose))
                         | (code == STEP_AT_OPTIMUM))
            stuck = jnp.where(sg <= loose, jnp.int32(Status.CONVERGED),
                              jnp.int32(Status.LINESEARCH_FAILED))
            status = jnp.where(
                ~finite, jnp.int32(Status.NONFINITE),
                jnp.where(retry, running,
                          jnp.where(~progress, stuck,
                                    jnp.where(converged, jnp.int32(Status.CONVERGED), running))))
        # A non-finite or failed step leaves the last good state in place.
        keep_old = (~finite) | ((~progress) & (~retry))
        solver_state = jax.tree_util.tree_map(lambda a, b: jnp.where(keep_old, a, b), old, new)
        # Written as a select over the trace, not a scatter at ``step``: under ``vmap`` a
        # scatter at a per-element index is three small kernels a step where this is one
        # (10,000 logistic regressions: 3% of the fit). Past ``trace_len`` nothing is written.
        trace = jnp.where(jnp.arange(trace_len) == step, solver_state.f, c.trace)
        return LoopState(solver_state, step, status, trace)

    return jax.lax.while_loop(cond, body, state)


def finish(solver: Solver, state: LoopState) -> LoopResult:
    """Turns a stopped loop into a result: a fit still running has hit ``max_steps``."""
    status = jnp.where(state.status == Status.RUNNING, jnp.int32(Status.MAX_STEPS), state.status)
    solver_state = state.solver_state
    if solver.stochastic:
        solver_state, status = solver.finalize(solver_state, status)
    return LoopResult(solver_state, state.step, status, state.trace)


def iterate(solver: Solver, u0: jax.Array, *, max_steps: int, gtol: float, ftol: float,
            trace_len: int, loose: float | None = None) -> LoopResult:
    """Runs ``solver`` from ``u0`` until a stopping test holds or ``max_steps`` steps."""
    state = start(solver, u0, gtol=gtol, trace_len=trace_len)
    state = advance(solver, state, max_steps=max_steps, gtol=gtol, ftol=ftol, loose=loose)
    return finish(solver, state)


ObjectiveFn = Callable[[jax.Array], jax.Array]
