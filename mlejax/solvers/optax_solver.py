"""Any optax optimiser as a solver for the driver loop (full batch).

optax minimises, so the solver minimises ``-fn(u) / scale`` where ``scale`` is the total
observation weight: learning rates then mean the same thing whatever the sample size. The
state keeps the log-likelihood ``f`` and its gradient ``g`` on the original scale for the
loop's stopping tests. With a line search (``linesearch=True``: BFGS, L-BFGS) the value and
gradient found by the line search are reused rather than computed again, and a step that
lowers the log-likelihood reports no progress.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class OptaxSolverState(NamedTuple):
    u: jax.Array
    f: jax.Array
    g: jax.Array
    opt_state: Any


class OptaxSolver:
    """Wraps an ``optax.GradientTransformation(ExtraArgs)`` for the driver loop."""

    stochastic = False
    gradient_free = False

    def __init__(self, fn: Callable[[jax.Array], jax.Array], optimizer, *, scale=1.0,
                 linesearch: bool = False):
        self.fn = fn
        self.opt = optimizer
        self.scale = scale
        self.linesearch = linesearch
        self._loss = lambda u: -fn(u) / scale
        self._value_and_grad = jax.value_and_grad(fn)

    def init(self, u0):
        f, g = self._value_and_grad(u0)
        return OptaxSolverState(u0, f, g, self.opt.init(u0))

    def step(self, state: OptaxSolverState):
        loss, loss_grad = -state.f / self.scale, -state.g / self.scale
        updates, opt_state = self.opt.update(loss_grad, state.opt_state, state.u, value=loss,
                                             grad=loss_grad, value_fn=self._loss)
        u = optax.apply_updates(state.u, updates)
        if self.linesearch:
            f = -self.scale * optax.tree_utils.tree_get(opt_state, "value")
            g = -self.scale * optax.tree_utils.tree_get(opt_state, "grad")
            # A change within rounding of f is no decrease: it happens at the optimum.
            noise = 16.0 * jnp.finfo(f.dtype).eps * jnp.maximum(jnp.abs(state.f), 1.0)
            progress = f >= state.f - noise
        else:
            f, g = self._value_and_grad(u)
            progress = jnp.array(True)
        return OptaxSolverState(u, f, g, opt_state), progress
