"""Any optax optimiser as a solver for the driver loop (full batch).

optax minimises, so the solver minimises ``-fn(u) / scale`` where ``scale`` is the total
observation weight: learning rates then mean the same thing whatever the sample size. The
state keeps the log-likelihood ``f`` and its gradient ``g`` on the original scale for the
loop's stopping tests. (BFGS and L-BFGS have their own solver with a line search:
:mod:`mlejax.solvers.quasi_newton`.)
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

    def __init__(self, fn: Callable[[jax.Array], jax.Array], optimizer, *, scale=1.0):
        self.fn = fn
        self.opt = optimizer
        self.scale = scale
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
        f, g = self._value_and_grad(u)
        return OptaxSolverState(u, f, g, opt_state), jnp.array(True)
