"""Quasi-Newton ascent: dense BFGS for small problems, L-BFGS for large ones.

Both are optax transformations chained with optax's zoom line search (strong Wolfe
conditions), so a step is only taken along an ascent direction with a step length that gives
sufficient increase and curvature; the driver loop (``_loop``) rejects any step that lowers
the log-likelihood and stops with ``LINESEARCH_FAILED`` if it cannot go on.

Dense BFGS keeps the full ``p x p`` inverse-Hessian approximation ``B`` of the objective being
minimised (``-loglik``) and updates it with

    B <- (I - rho s y^T) B (I - rho y s^T) + rho s s^T,     rho = 1 / (y^T s),

skipping the update when the curvature ``y^T s`` is not positive (which keeps ``B`` positive
definite), and scaling the first ``B`` by ``y^T s / y^T y`` (Nocedal & Wright eq. 6.20).
L-BFGS is optax's own ``optax.lbfgs``.

References:
  Nocedal & Wright, Numerical Optimization (2006), ch. 6 and 7.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mlejax.solvers.optax_solver import OptaxSolver

_MAX_LINESEARCH_STEPS = 30


class ScaleByBFGSState(NamedTuple):
    count: jax.Array
    inv_hess: jax.Array
    prev_params: jax.Array
    prev_updates: jax.Array


def scale_by_bfgs() -> optax.GradientTransformationExtraArgs:
    """The dense BFGS direction ``-B g`` as an optax transformation over a flat vector."""

    def init_fn(params):
        p = params.shape[0]
        return ScaleByBFGSState(jnp.zeros((), jnp.int32), jnp.eye(p, dtype=params.dtype),
                                jnp.zeros_like(params), jnp.zeros_like(params))

    def update_fn(updates, state, params, **extra_args):
        del extra_args
        g = updates
        s = params - state.prev_params
        y = g - state.prev_updates
        sy = jnp.dot(s, y)
        eps = jnp.finfo(params.dtype).eps
        good = (state.count > 0) & (sy > eps * jnp.linalg.norm(s) * jnp.linalg.norm(y))
        b = jnp.where(state.count == 1, jnp.eye(s.shape[0], dtype=s.dtype)
                      * sy / jnp.maximum(jnp.dot(y, y), jnp.finfo(s.dtype).tiny), state.inv_hess)
        rho = 1.0 / jnp.where(good, sy, 1.0)
        eye = jnp.eye(s.shape[0], dtype=s.dtype)
        left = eye - rho * jnp.outer(s, y)
        b_new = left @ b @ left.T + rho * jnp.outer(s, s)
        b = jnp.where(good, 0.5 * (b_new + b_new.T), state.inv_hess)
        direction = -b @ g
        return direction, ScaleByBFGSState(state.count + 1, b, params, g)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _linesearch():
    return optax.scale_by_zoom_linesearch(max_linesearch_steps=_MAX_LINESEARCH_STEPS,
                                          initial_guess_strategy="one")


def bfgs(fn, scale) -> OptaxSolver:
    """Dense BFGS with a strong-Wolfe line search, ascending ``fn``."""
    return OptaxSolver(fn, optax.chain(scale_by_bfgs(), _linesearch()), scale=scale,
                       linesearch=True)


def lbfgs(fn, scale, memory_size: int = 10) -> OptaxSolver:
    """optax's L-BFGS with its zoom line search, ascending ``fn``."""
    opt = optax.lbfgs(memory_size=memory_size, linesearch=_linesearch())
    return OptaxSolver(fn, opt, scale=scale, linesearch=True)
