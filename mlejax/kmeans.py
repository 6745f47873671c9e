"""k-means: greedy k-means++ seeding, then Lloyd's iterations on the driver loop.

Used to start mixture models (``GaussianMixture(init_params="kmeans")``) and usable on its own.

Seeding (Arthur & Vassilvitskii 2007, greedy variant): the first centre is a uniformly drawn
point; each next centre is drawn with probability proportional to ``D(x)^2``, the squared
distance to the nearest centre chosen so far. The greedy variant draws ``2 + floor(log k)``
candidates per centre and keeps the one that lowers the potential ``sum_i D(x_i)^2`` most.

Lloyd's iterations alternate assignment (nearest centre) and update (mean of the assigned
points). They never increase the inertia ``sum_i D(x_i)^2``, so they run on
:func:`mlejax._loop.iterate` as a gradient-free solver maximising ``f = -inertia``: the loop
stops when an iteration changes the inertia by at most ``ftol * max(inertia, 1)``. A centre
that loses all its points stays where it was (an empty cluster is kept, not turned into NaN).

Everything is a pure function of arrays: it runs under ``jit`` and ``vmap`` (restarts and
batches of datasets).

References:
  Lloyd (1982), Least squares quantization in PCM. Arthur & Vassilvitskii (2007), k-means++:
  the advantages of careful seeding.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _validate as V
from mlejax._loop import default_tolerances, iterate
from mlejax._programs import program_cache
from mlejax.status import HasStatus

__all__ = ["KMeansResult", "kmeans", "kmeans_plusplus"]

_HI = jax.lax.Precision.HIGHEST


def sq_distances(x: jax.Array, centers: jax.Array) -> jax.Array:
    """``(n, k)`` squared Euclidean distances, through one matrix product (clipped at 0)."""
    cross = jnp.matmul(x, centers.T, precision=_HI)
    d2 = jnp.sum(x * x, axis=1)[:, None] - 2.0 * cross + jnp.sum(centers * centers, axis=1)[None]
    return jnp.maximum(d2, 0.0)


def kmeans_plusplus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
    """Greedy k-means++ seeding: ``k`` centres chosen among the rows of ``x`` (``(n, d)``).

    Points are drawn by inverting the cumulative sum of ``D^2`` at uniform numbers, all drawn
    at once: one call to the generator (cheap to compile) and no per-point noise.
    """
    n = x.shape[0]
    n_trials = 2 + int(math.log(k))
    u = jax.random.uniform(key, (k, n_trials), x.dtype)
    first = jnp.minimum((u[0, 0] * n).astype(jnp.int32), n - 1)
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
    d2 = sq_distances(x, x[first][None])[:, 0]

    def add(i, carry):
        centers, d2 = carry
        # P(point j) = D_j^2 / sum D^2: points already chosen (D = 0) are never drawn.
        # If every point coincides with a centre, index 0 is drawn: harmless.
        cum = jnp.cumsum(d2)
        # The inverse cdf by counting (a few draws against n sums: cheaper than a search).
        cand = jnp.sum(cum[None, :] <= (u[i] * cum[-1])[:, None], axis=1)
        cand = jnp.minimum(cand, n - 1)
        d2_cand = jnp.minimum(d2[None, :], sq_distances(x, x[cand]).T)   # (trials, n)
        best = jnp.argmin(jnp.sum(d2_cand, axis=1))
        return centers.at[i].set(x[cand[best]]), d2_cand[best]

    centers, _ = jax.lax.fori_loop(1, k, add, (centers, d2))
    return centers


class LloydState(NamedTuple):
    u: jax.Array        # the centres, flattened (k * d,)
    f: jax.Array        # -inertia: the loop maximises f
    g: jax.Array        # zeros like u: gradient-free (the loop's start reads g with u)
    labels: jax.Array   # (n,) int32, nearest centre of each point


class Lloyd:
    """Lloyd's algorithm as a gradient-free solver for :func:`mlejax._loop.iterate`."""

    stochastic = False
    gradient_free = True

    def __init__(self, x: jax.Array, k: int):
        self.x, self.k = x, k

    def _assign(self, u):
        centers = u.reshape(self.k, -1)
        d2 = sq_distances(self.x, centers)
        labels = jnp.argmin(d2, axis=1).astype(jnp.int32)
        return -jnp.sum(jnp.min(d2, axis=1)), labels

    def init(self, u0):
        f, labels = self._assign(u0)
        return LloydState(u0, f, jnp.zeros_like(u0), labels)

    def step(self, state: LloydState):
        onehot = jax.nn.one_hot(state.labels, self.k, dtype=self.x.dtype)
        counts = jnp.sum(onehot, axis=0)
        sums = jnp.matmul(onehot.T, self.x, precision=_HI)
        old = state.u.reshape(self.k, -1)
        # An empty cluster keeps its centre: no 0/0.
        centers = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], old)
        u = centers.reshape(-1)
        f, labels = self._assign(u)
        # The inertia never increases (beyond the rounding of its sum).
        noise = 64.0 * jnp.finfo(u.dtype).eps * jnp.maximum(jnp.abs(state.f), 1.0)
        return LloydState(u, f, state.g, labels), f >= state.f - noise


@dataclasses.dataclass(frozen=True)
class KMeansResult(HasStatus):
    """What :func:`kmeans` found.

    Attributes:
      centers: ``(k, d)`` cluster centres.
      labels: ``(n,)`` index of the nearest centre of each point.
      inertia: sum of squared distances to the nearest centre.
      status: a :class:`~mlejax.Status` code (``CONVERGED`` or ``MAX_STEPS``).
      n_steps: Lloyd iterations taken.

    Example:
      >>> x = jax.random.normal(jax.random.key(1), (200, 2))
      >>> km = mj.kmeans(x, 3, key=jax.random.key(0))
      >>> km.centers.shape, km.labels.shape, mj.Status(int(km.status)).name
      ((3, 2), (200,), 'CONVERGED')
    """

    centers: jax.Array
    labels: jax.Array
    inertia: jax.Array
    status: jax.Array
    n_steps: jax.Array



jax.tree_util.register_dataclass(
    KMeansResult, data_fields=["centers", "labels", "inertia", "status", "n_steps"],
    meta_fields=[])


def lloyd(x: jax.Array, centers: jax.Array, *, max_steps: int, ftol: float | None = None
          ) -> KMeansResult:
    """Lloyd's iterations from ``centers`` (pure; used inside mixture initialisations)."""
    k = centers.shape[0]
    if ftol is None:
        ftol = default_tolerances(x.dtype)[1]
    out = iterate(Lloyd(x, k), centers.reshape(-1), max_steps=max_steps, gtol=0.0, ftol=ftol,
                  trace_len=1)
    s = out.solver_state
    return KMeansResult(s.u.reshape(k, -1), s.labels, -s.f, out.status, out.n_steps)


def _kmeans_one(key, x, k, max_steps, ftol):
    return lloyd(x, kmeans_plusplus(key, x, k), max_steps=max_steps, ftol=ftol)


@program_cache
def _program(k: int, n_init: int, max_steps: int, ftol: float | None):
    def run(key, x):
        outs = jax.vmap(lambda kk: _kmeans_one(kk, x, k, max_steps, ftol))(
            jax.random.split(key, n_init))
        best = jnp.argmin(jnp.where(jnp.isfinite(outs.inertia), outs.inertia, jnp.inf))
        return jax.tree_util.tree_map(lambda a: a[best], outs)

    return jax.jit(run)


def kmeans(x: jax.typing.ArrayLike, n_clusters: int, *, key: jax.Array | None = None,
           n_init: int = 1, max_steps: int = 300, ftol: float | None = None) -> KMeansResult:
    """k-means clustering: greedy k-means++ seeding, then Lloyd's iterations.

    Minimises the inertia ``sum_i min_k ||x_i - c_k||^2``; ``n_init`` seedings run as one
    vmapped program and the lowest inertia is kept.

    Args:
      x: ``(n, d)`` data.
      n_clusters: number of centres ``k`` (at most ``n``).
      key: a ``jax.random.key`` for the seeding (default ``jax.random.key(0)``).
      n_init: independent seedings; the best is returned.
      max_steps: at most this many Lloyd iterations.
      ftol: stop when an iteration changes the inertia by at most ``ftol * max(inertia, 1)``
        (default ``10 eps`` of the dtype: until the assignments stop changing).

    Returns:
      A :class:`KMeansResult`.

    Example:
      >>> import jax, mlejax as mj
      >>> x = jax.random.normal(jax.random.key(1), (200, 2))
      >>> mj.kmeans(x, 3, key=jax.random.key(0)).centers.shape
      (3, 2)
    """
    x = check_matrix(x, "x")
    n_clusters = _positive_int(n_clusters, "n_clusters")
    if n_clusters > x.shape[0]:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of points "
                         f"{x.shape[0]}; use at most {x.shape[0]} clusters.")
    n_init = _positive_int(n_init, "n_init")
    key = jax.random.key(0) if key is None else key
    return _program(n_clusters, n_init, int(max_steps), ftol)(key, x)


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    return int(v)


def check_matrix(x, name: str, ndim: int = 2) -> jax.Array:
    """``x`` as a floating array of ``ndim`` dimensions, finite, with a clear error if not."""
    shapes = {2: "(n, d)", 3: "(K, n, d)"}
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.ndim != ndim:
        hint = ""
        if ndim == 2 and x.ndim == 1:
            hint = " For one feature, pass x[:, None]."
        if ndim == 3 and x.ndim == 2:
            hint = " For one dataset, use fit(x) or pass x[None]."
        raise ValueError(f"{name} must be a {ndim}-D array {shapes.get(ndim, '')}; got shape "
                         f"{tuple(x.shape)}.{hint}")
    dt = jnp.result_type(x)
    if not jnp.issubdtype(dt, jnp.floating):
        if not (jnp.issubdtype(dt, jnp.integer) or jnp.issubdtype(dt, jnp.bool_)):
            raise ValueError(f"{name} must hold real numbers; got dtype {dt}.")
        dt = jnp.result_type(float)
    x = jnp.asarray(x, dt)
    V.check_data_finite(x, name)
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} has no data: shape {tuple(x.shape)}.")
    return x
