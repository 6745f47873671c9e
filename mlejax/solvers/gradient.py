"""Gradient ascent with any optax optimiser: full batch, or stochastic on minibatches.

Full batch runs through :class:`~mlejax.solvers.optax_solver.OptaxSolver` and stops on the
driver loop's tests. Minibatch ascent samples ``batch_size`` observations (with replacement)
each step and follows the unbiased estimate ``(n / b) sum_{i in batch} w_i l_i`` of the
log-likelihood's gradient; estimates are too noisy for gradient tests, so it runs
``max_steps`` steps and ``finalize`` then judges convergence once, on the full data.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mlejax._numerics import scaled_grad_norm
from mlejax.solvers.optax_solver import OptaxSolver
from mlejax.status import Status


def default_optimizer() -> optax.GradientTransformation:
    """Adam with learning rate 0.01 on the mean log-likelihood per observation."""
    return optax.adam(1e-2)


def gradient(fn, scale, optimizer=None) -> OptaxSolver:
    return OptaxSolver(fn, optimizer if optimizer is not None else default_optimizer(),
                       scale=scale)


class MinibatchState(NamedTuple):
    u: jax.Array
    f: jax.Array   # minibatch estimate of the full log-likelihood at u
    g: jax.Array
    opt_state: Any
    key: jax.Array


class MinibatchGradient:
    """Stochastic gradient ascent: ``batch_fn(u, key)`` estimates the full log-likelihood."""

    stochastic = True
    gradient_free = False

    def __init__(self, fn: Callable, batch_fn: Callable, key: jax.Array, scale, optimizer=None,
                 gtol: float = 1e-6):
        self.fn = fn
        self.batch_fn = batch_fn
        self.key = key
        self.scale = scale
        self.opt = optimizer if optimizer is not None else default_optimizer()
        self.gtol = gtol
        self._batch_vg = jax.value_and_grad(batch_fn)

    def init(self, u0):
        key, sub = jax.random.split(self.key)
        f, g = self._batch_vg(u0, sub)
        return MinibatchState(u0, f, g, self.opt.init(u0), key)

    def step(self, state: MinibatchState):
        updates, opt_state = self.opt.update(-state.g / self.scale, state.opt_state, state.u)
        u = optax.apply_updates(state.u, updates)
        key, sub = jax.random.split(state.key)
        f, g = self._batch_vg(u, sub)
        return MinibatchState(u, f, g, opt_state, key), jnp.array(True)

    def finalize(self, state: MinibatchState, status):
        """Replaces the estimates by full-data values and judges convergence on them."""
        f, g = jax.value_and_grad(self.fn)(state.u)
        ok = jnp.isfinite(f) & (scaled_grad_norm(state.u, f, g) <= self.gtol ** 0.5)
        status = jnp.where(status == Status.MAX_STEPS,
                           jnp.where(ok, jnp.int32(Status.CONVERGED), status), status)
        return state._replace(f=f, g=g), status
