"""The parameter problem: a pytree of natural parameters <-> the flat unconstrained vector.

:class:`Problem` is the static (hashable) description of a parameter pytree and its
constraints; the solvers see the flat vector ``u``, users the natural parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._numerics import safe_inverse_pd
from mlejax.constraints import Constraint

__all__ = ["Problem", "flat_names", "make_problem"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """The static description of a parameter pytree and its constraints (hashable).

    The flat vectors (the solvers' ``u``, the natural ``cov`` and ``param_names``) list the
    leaves in the order the user wrote them: ``order[i]`` is the JAX tree index of the
    ``i``-th leaf so listed (JAX itself sorts dict keys), and ``constraints``, ``u_shapes``
    and ``nat_shapes`` follow that order too. Leaves handed in or out as a list
    (``to_u``'s argument, ``tree_constraints``) are in JAX's tree order.
    """

    treedef: Any
    constraints: tuple[Constraint, ...]
    u_shapes: tuple[tuple[int, ...], ...]
    nat_shapes: tuple[tuple[int, ...], ...]
    dtype: Any
    param_names: tuple[str, ...]
    order: tuple[int, ...]

    @property
    def n_free(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.u_shapes))

    @property
    def tree_constraints(self) -> tuple[Constraint, ...]:
        """The constraints in JAX's tree order (beside ``jax.tree_util.tree_leaves``)."""
        out: list = [None] * len(self.order)
        for c, j in zip(self.constraints, self.order):
            out[j] = c
        return tuple(out)

    def in_order(self, leaves) -> list:
        """Leaves in JAX's tree order, listed in the user's order."""
        return [leaves[j] for j in self.order]

    def unflatten(self, ordered_leaves) -> Any:
        """The pytree of leaves listed in the user's order (the inverse of ``in_order``)."""
        out: list = [None] * len(self.order)
        for x, j in zip(ordered_leaves, self.order):
            out[j] = x
        return jax.tree_util.tree_unflatten(self.treedef, out)

    def flat_natural(self, params) -> jax.Array:
        """A parameter pytree as one flat vector in ``param_names`` order."""
        leaves = self.in_order(jax.tree_util.tree_leaves(params))
        parts = [jnp.ravel(x).astype(self.dtype) for x in leaves]
        return jnp.concatenate(parts) if parts else jnp.zeros(0, self.dtype)

    def to_u(self, leaves) -> jax.Array:
        """Natural leaves (a list in tree order) to the flat unconstrained vector."""
        parts = [jnp.ravel(c.inverse(x)) for c, x in zip(self.constraints, self.in_order(leaves))]
        return jnp.concatenate(parts).astype(self.dtype) if parts else jnp.zeros(0, self.dtype)

    def to_natural(self, u: jax.Array) -> Any:
        leaves, i = [], 0
        for c, shape in zip(self.constraints, self.u_shapes):
            size = int(np.prod(shape))
            leaves.append(c.forward(u[i:i + size].reshape(shape)))
            i += size
        return self.unflatten(leaves)

    def natural_flat(self, u: jax.Array) -> jax.Array:
        return self.flat_natural(self.to_natural(u))

    def natural_cov(self, u_hat: jax.Array, hess: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The covariance of the natural parameters (flat, ``param_names`` order) from the
        Hessian ``hess`` of the log-likelihood in ``u`` at the estimate ``u_hat``: the inverse
        observed information mapped by the delta method, ``J (-H)^-1 J^T``; and whether
        ``-H`` is positive definite (NaN covariance where not:
        :func:`mlejax._numerics.safe_inverse_pd`)."""
        cov_u, pd = safe_inverse_pd(-hess)
        jac = jax.jacfwd(self.natural_flat)(u_hat)
        return jac @ cov_u @ jac.T, pd

    def unravel_natural(self, flat: jax.Array) -> Any:
        leaves, i = [], 0
        for shape in self.nat_shapes:
            size = int(np.prod(shape))
            leaves.append(flat[i:i + size].reshape(shape))
            i += size
        return self.unflatten(leaves)


def flat_names(names: list[str], shapes) -> tuple[str, ...]:
    out = []
    for name, shape in zip(names, shapes):
        if len(shape) == 0:
            out.append(name)
        else:
            for idx in np.ndindex(*shape):
                out.append(f"{name}[{','.join(str(i) for i in idx)}]")
    return tuple(out)


def make_problem(example_leaves, treedef, constraints, names, dtype,
                  order: tuple[int, ...] | None = None) -> Problem:
    """``example_leaves``, ``constraints`` and ``names`` in tree order; ``order`` the user's
    order of the leaves (``_validate.written_order``; default the tree order)."""
    order = tuple(range(len(example_leaves))) if order is None else tuple(order)
    leaves = [example_leaves[j] for j in order]
    cons = tuple(constraints[j] for j in order)
    u_shapes = tuple(tuple(jax.eval_shape(c.inverse, jax.ShapeDtypeStruct(x.shape, dtype)).shape)
                     for c, x in zip(cons, leaves))
    nat_shapes = tuple(tuple(x.shape) for x in leaves)
    return Problem(treedef, cons, u_shapes, nat_shapes, jnp.dtype(dtype),
                   flat_names([names[j] for j in order], nat_shapes), order)
