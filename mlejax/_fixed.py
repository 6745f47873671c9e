"""Parameters held at given values (``fit(..., fixed=...)``; TMB's ``map``).

A held leaf keeps its place in ``params`` but leaves the solver's coordinates: its
constraint becomes :class:`Held`, whose ``forward`` puts the given values back and whose
unconstrained size counts only the free elements. So the solvers, the observed information
(zero rows and columns for held values, by the delta method), robust errors, profiles, the
bootstrap and the degrees of freedom (``df_model``: free coordinates only) all see the
reduced problem without knowing of it. The values are part of the static configuration: a
new value compiles a new program (one value serves every fit of a batch).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _validate as V
from mlejax.constraints import Constraint, Interval, Positive, Real

__all__ = ["Held", "hold", "held_mask", "is_held", "without_held_stderr"]


@dataclasses.dataclass(frozen=True, repr=False)
class Held(Constraint):
    """``base`` with the elements flagged in ``mask`` held at ``values`` (natural scale).

    ``shape`` is the leaf's natural shape, ``mask`` and ``values`` its flattened
    (row-major) elements. A partly held leaf needs an elementwise ``base`` (real, positive,
    interval); a wholly held one any constraint.
    """

    base: Constraint
    shape: tuple[int, ...]
    mask: tuple[bool, ...]
    values: tuple[float, ...]

    @property
    def name(self) -> str:  # type: ignore[override]
        return "fixed" if all(self.mask) else f"{self.base.name}, partly fixed"

    @property
    def free(self) -> tuple[int, ...]:
        return tuple(i for i, m in enumerate(self.mask) if not m)

    def forward(self, u):
        u = jnp.asarray(u)
        batch = u.shape[:-1]
        vals = jnp.asarray(self.values, u.dtype)
        if not self.free:
            return jnp.broadcast_to(vals.reshape(self.shape), batch + self.shape)
        size = len(self.mask)
        full = jnp.zeros(batch + (size,), u.dtype).at[..., jnp.asarray(self.free)].set(u)
        nat = self.base.forward(full.reshape(batch + self.shape)).reshape(batch + (size,))
        return jnp.where(jnp.asarray(self.mask), vals, nat).reshape(batch + self.shape)

    def inverse(self, x):
        x = jnp.asarray(x)
        batch = x.shape[:x.ndim - len(self.shape)]
        if not self.free:
            return jnp.zeros(batch + (0,), x.dtype)
        u = self.base.inverse(x).reshape(batch + (len(self.mask),))
        return u[..., jnp.asarray(self.free)]

    def check(self, x: np.ndarray) -> str | None:
        a = np.asarray(x)
        if not self.free:
            return None
        lead = a.shape[:a.ndim - len(self.shape)]
        return self.base.check(a.reshape(lead + (len(self.mask),))[..., list(self.free)])

    def __repr__(self) -> str:
        return self.name


def is_held(c: Any) -> bool:
    return isinstance(c, Held)


def held_mask(problem) -> np.ndarray:
    """One flag per flat natural parameter (``param_names`` order): held or free."""
    out = []
    for c, shape in zip(problem.constraints, problem.nat_shapes):
        size = int(math.prod(shape))
        out.extend(c.mask if isinstance(c, Held) else (False,) * size)
    return np.asarray(out, bool)


def _spec(name: str, spec: Any, leaf: np.ndarray, init_batched: bool):
    """``(mask, values)`` of one leaf from the user's ``fixed`` entry (None: not held)."""
    shape = leaf.shape[1:] if init_batched else leaf.shape
    start = leaf[0] if init_batched else leaf
    if spec is None or spec is False or isinstance(spec, _NoneMarker):
        return None
    a = np.asarray(spec)
    if a.dtype == bool:
        mask = np.broadcast_to(a, shape) if a.shape != shape else a
        if init_batched and not np.all(leaf[:, mask] == leaf[:1, mask]):
            raise ValueError(f"fixed[{name}]: a mask holds init's values, which differ between "
                             "the fits of the batch; held values are compiled in, one value "
                             "for every fit. Give the value (fixed={...: value}) or fit "
                             "separately.")
        values = np.where(mask, start, 0.0)
    elif a.dtype.kind in "iuf":
        try:
            values = np.broadcast_to(a.astype(np.float64), shape)
        except ValueError:
            raise ValueError(f"fixed[{name}] has shape {a.shape}, but init[{name}] has shape "
                             f"{shape}{' per fit' if init_batched else ''}: give one value, or "
                             "one per element (NaN for elements left free). Held values are "
                             "compiled in and shared by every fit of a batch.") from None
        mask = ~np.isnan(values)
        values = np.where(mask, values, 0.0)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"fixed[{name}] must be finite (NaN marks an element left free); "
                             f"got {a}.")
    else:
        raise ValueError(f"fixed[{name}] must be a value (a number or an array, NaN for "
                         f"elements left free) or a mask of booleans (True: held at init's "
                         f"value); got {spec!r}.")
    mask = np.broadcast_to(mask, shape)
    if not mask.any():
        return None
    return tuple(bool(m) for m in mask.ravel()), tuple(float(v) for v in values.ravel())


def hold(init: Any, constraints: Any, fixed: Any, *, init_batched: bool = False):
    """The init and constraints of a fit with ``fixed`` held: ``(init, constraints)``.

    ``fixed`` is a pytree prefix of ``init`` (a dict of some of its keys, typically): a
    value (a number, or an array with NaN for elements left free) holds the leaf there; a
    boolean (mask) holds it at init's value. Held values replace init's, so init may hold
    anything finite there.
    """
    if fixed is None:
        return init, constraints
    if callable(init):
        raise ValueError("fixed= needs init as a pytree of values, not a function of a key "
                         "(restarts draw around a pytree init: pass restarts=R, key=... with "
                         "init a pytree).")
    names = V.leaf_names(init)
    leaves, treedef = jax.tree_util.tree_flatten(init)
    cons = V.broadcast_constraints(constraints, init)
    prefix = _prefix_tree(fixed, init)
    try:
        specs = jax.tree_util.tree_structure(init).flatten_up_to(prefix)
    except (ValueError, TypeError):
        keys = list(init) if isinstance(init, dict) else None
        raise ValueError("fixed must be a pytree prefix of init (e.g. a dict of some of its "
                         f"keys{': ' + ', '.join(map(repr, keys)) if keys else ''}); got "
                         f"{fixed!r}.") from None
    new_leaves, new_cons, any_held = [], [], False
    for name, leaf, c, spec in zip(names, leaves, cons, specs):
        a = np.asarray(leaf, dtype=np.result_type(np.asarray(leaf).dtype, np.float32))
        got = _spec(name, spec, a, init_batched)
        if got is None:
            new_leaves.append(leaf)
            new_cons.append(c)
            continue
        mask, values = got
        any_held = True
        shape = a.shape[1:] if init_batched else a.shape
        if not all(mask) and not isinstance(c, (Real, Positive, Interval)):
            raise ValueError(f"fixed[{name}] holds some elements of a leaf with constraint "
                             f"{c.name}, which ties its elements together; hold the whole "
                             "leaf or none of it.")
        m = np.asarray(mask).reshape(shape)
        v = np.asarray(values).reshape(shape).astype(a.dtype)
        new_leaves.append(jnp.asarray(np.where(m, v, a), dtype=jnp.result_type(leaf)))
        new_cons.append(Held(c, tuple(shape), mask, values))
    if not any_held:
        return init, constraints
    return (jax.tree_util.tree_unflatten(treedef, new_leaves),
            jax.tree_util.tree_unflatten(treedef, new_cons))


def _prefix_tree(fixed: Any, init: Any) -> Any:
    """``fixed`` completed to init's structure, None where nothing is held (a dict may name
    only some keys)."""
    if isinstance(fixed, dict) and isinstance(init, dict):
        unknown = sorted(set(fixed) - set(init), key=str)
        if unknown:
            raise ValueError(f"fixed names {', '.join(map(repr, unknown))}, not in init (its "
                             f"keys: {', '.join(map(repr, init))}).")
        return {k: _prefix_tree(fixed[k], v) if k in fixed else _nones(v)
                for k, v in init.items()}
    if isinstance(fixed, (list, tuple)) and isinstance(init, (list, tuple)) \
            and len(fixed) == len(init):
        return type(init)(_prefix_tree(f, v) for f, v in zip(fixed, init))
    return jax.tree_util.tree_map(lambda _: fixed, init)


def _nones(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda _: _NONE, tree)


class _NoneMarker:
    """A leaf standing for "not held" (None itself is an empty pytree to JAX)."""


_NONE = _NoneMarker()


def without_held_stderr(res):
    """``res`` with NaN standard errors for held values (they have none: not estimated)."""
    if res.context is None:
        return res
    cons = res.context.config.problem.tree_constraints
    if not any(isinstance(c, Held) for c in cons):
        return res
    leaves, treedef = jax.tree_util.tree_flatten(res.stderr)
    out = [jnp.where(jnp.asarray(c.mask).reshape(c.shape), jnp.nan, se)
           if isinstance(c, Held) else se for c, se in zip(cons, leaves)]
    return dataclasses.replace(res, stderr=jax.tree_util.tree_unflatten(treedef, out))
