"""A log-likelihood and its derivatives as sums over chunks of observations.

With ``fit(..., obs_chunk=m)`` the solvers evaluate ``sum_i w_i loglik_i`` and its gradient
(and Newton's Hessian) chunk by chunk: a ``lax.scan`` over the ``n // m`` full chunks of
``m`` observations (axis 0 of every data leaf, sliced in place), then the remainder, the
per-chunk value, gradient and Hessian added up. The derivatives of a sum are the sums of
the derivatives, so the result is the one of the whole data up to the order of the
additions.

Why: the autodiff Hessian pushes ``p`` tangents through every observation at once, so its
intermediates hold ``n x p`` values (160 MB for n = 1e6, p = 20, more than any cache, and
``n x p x p`` where a model forms products of parameters); chunked, they hold ``m x p``, so
memory no longer grows with ``n`` and on CPU each chunk's intermediates stay in cache. One
logistic regression, n = 1e6, d = 20: value, gradient and Hessian in 169-203 ms on two
cores at once, 83-98 ms on one core in chunks of 1,000 (``benchmarks/RESULTS.md``). On a GPU,
which wants the whole data in one kernel, use large chunks or none.

With a ``mesh`` (``fit(..., devices=...)``) the rows are sharded over its devices: each
device sums its own rows' chunks (``shard_map``), and the sums are added across devices
(``psum``), so one fit uses every device at once (on CPU, several host devices: the same
evaluation on two host devices 85 -> 41 ms; 32 ms with the Hessian of
:mod:`mlejax._unit_tangents`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mlejax._numerics import sym
from mlejax._unit_tangents import unit_tangent_columns

try:   # JAX >= 0.7: jax.shard_map, whose check of varying values a scan carry would fail
    from jax import shard_map as _shard_map
    _UNCHECKED = {"check_vma": False}
except ImportError:   # older JAX (before 0.7)
    from jax.experimental.shard_map import shard_map as _shard_map
    _UNCHECKED = {"check_rep": False}


def value_grad_hessian(fn: Callable[[jax.Array], jax.Array], u: jax.Array):
    """``fn``, its gradient and its Hessian at ``u``: forward-over-reverse on the gradient
    linearised once (``jax.linearize``: the primal pass is shared), all ``p`` unit tangents
    pushed through together (``vmap``), where a linear predictor's ``X v`` becomes one matrix
    product -- or, where ``v`` is the unit tangents themselves, no product at all
    (:mod:`mlejax._unit_tangents`). The Hessian is symmetrised.

    Columns one after another (``lax.map``) keep every intermediate ``p`` times narrower,
    which paid while a batch of fits was one wide ``vmap`` that streamed through memory;
    with batches and restarts fitted in cache-sized blocks on CPU (:mod:`mlejax._blocks`)
    the loop's per-column kernels cost more than the width: 10,000 logistic regressions
    (n = 200, d = 6) 1.18 s with columns against 0.79 s together, in blocks of 20. For one
    logistic regression with n = 1e6 and d = 20, twenty passes over ``X`` cost five times
    one matrix product (and chunks of observations, below, cost half of one).
    """
    (f, g), lin = jax.linearize(jax.value_and_grad(fn), u)
    cols = unit_tangent_columns(lambda t: lin(t)[1], u)
    return f, g, sym(cols)


@dataclasses.dataclass(frozen=True)
class ChunkedSum:
    """``u -> sum over chunks of chunk_fn(u, data_chunk, weights_chunk)`` plus ``extra(u)``.

    ``chunk_fn`` returns the (weighted, summed) log-likelihood of one chunk; ``extra`` the
    terms not summed over observations (a penalty's smooth part), added once.
    """

    chunk_fn: Callable[[jax.Array, Any, Any], jax.Array]
    data: Any
    weights: Any
    size: int                     # observations per chunk
    n: int                        # observations in all
    extra: Callable[[jax.Array], jax.Array] | None = None
    mesh: Any = None              # a 1-D jax.sharding.Mesh: rows sharded over its devices

    def _sum(self, each: Callable):
        if self.mesh is not None:
            return self._sum_sharded(each)
        return self._sum_local(each)

    def _sum_sharded(self, each: Callable):
        """Each device's rows summed where they lie, then added across the devices."""
        from jax.sharding import PartitionSpec

        axis = self.mesh.axis_names[0]
        local = dataclasses.replace(self, n=self.n // self.mesh.size, extra=None, mesh=None)

        def on_device(data, weights):
            part = dataclasses.replace(local, data=data, weights=weights)._sum_local(each)
            return jax.tree_util.tree_map(lambda a: jax.lax.psum(a, axis), part)

        rows = PartitionSpec(axis)
        specs = jax.tree_util.tree_map(lambda _: rows, (self.data, self.weights))
        out = _shard_map(on_device, mesh=self.mesh, in_specs=specs, out_specs=PartitionSpec(),
                         **_UNCHECKED)(self.data, self.weights)
        if self.extra is not None:
            out = jax.tree_util.tree_map(jnp.add, out, each(self.extra))
        return out

    def _sum_local(self, each: Callable):
        """``each(fn_of_u)`` of every chunk's objective, added up (a pytree of sums)."""
        q, m = self.n // self.size, self.size

        def chunk_at(start, length):
            return jax.tree_util.tree_map(
                lambda x: jax.lax.dynamic_slice_in_dim(x, start, length, axis=0),
                (self.data, self.weights))

        def of_chunk(d, w):
            return each(lambda v: self.chunk_fn(v, d, w))

        out = None
        if q > 0:
            shapes = jax.eval_shape(lambda: of_chunk(*chunk_at(0, m)))
            zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

            def body(acc, i):
                part = of_chunk(*chunk_at(i * m, m))
                return jax.tree_util.tree_map(jnp.add, acc, part), None

            out = jax.lax.scan(body, zero, jnp.arange(q))[0]
        rest = self.n - q * m
        if rest > 0:
            tail = of_chunk(*jax.tree_util.tree_map(lambda x: x[q * m:],
                                                    (self.data, self.weights)))
            out = tail if out is None else jax.tree_util.tree_map(jnp.add, out, tail)
        if self.extra is not None:
            out = jax.tree_util.tree_map(jnp.add, out, each(self.extra))
        return out

    def __call__(self, u: jax.Array) -> jax.Array:
        return self._sum(lambda fn: fn(u))

    def value_and_grad(self, u: jax.Array):
        return self._sum(lambda fn: jax.value_and_grad(fn)(u))

    def value_grad_hessian(self, u: jax.Array):
        return self._sum(lambda fn: value_grad_hessian(fn, u))
