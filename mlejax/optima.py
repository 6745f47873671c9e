"""A map of the optima: which distinct optima the restarts reached, how often, and which
of them are peaks.

A non-convex likelihood has several local maxima; restarts (``mj.fit(..., restarts=R)``,
``gmm.fit(x, n_init=R)``) reach some of them. ``res.optima`` groups the starts that
converged into distinct optima and reports, for each, its parameters, log-likelihood,
the number of starts that reached it (its basin count) and whether it is a peak; the best
is the first. Starts that did not converge are counted apart, so the basin fractions sum to
the converged fraction.

Same optimum. Two converged starts reached the same optimum when, both put in a canonical
form (``canonical=``), their unconstrained coordinates ``u`` differ by at most ``tol``
standard errors (the larger of the two starts') in every coordinate, and their objectives
(log-likelihood, or penalised objective) by at most ``ftol`` (default
``max(tol ** 2, 100 eps |f|)``: within ``tol`` standard errors of a peak the log-likelihood
falls by about ``tol ** 2 / 2``). Starts are visited in decreasing order of the objective; each joins the
best optimum found so far that it matches, or founds a new one, so an optimum is
represented by its highest start. The standard errors are each start's own, from the
Hessian of the objective at it (on the data, in the unconstrained coordinates, moved by the
canonical relabelling), with absolute eigenvalues at a saddle. A coordinate with a share in
a direction of no curvature (a flat ridge: e.g. a mixture component left with no data, free
to wander) has unbounded standard error and is ignored, so the points of one ridge are one
optimum. Where the Hessian is not finite, the median standard errors of the other starts
serve, else ``1e-3 max(|u|, 1)``.

Peaks. An optimum is a peak when its representative's Hessian is negative definite
(status ``CONVERGED``); a start that stopped where the gradient is zero but the Hessian is
not negative definite (``SINGULAR_HESSIAN``: a saddle, or a flat ridge) is listed, flagged
as not a peak.

Label switching. Permuting the components of a mixture gives the same likelihood: one
optimum appears ``k!`` times. ``canonical=`` maps parameters to one representative of each
such class before comparing; :func:`sort_components` sorts the components on a location
parameter (mixtures fitted with :mod:`mlejax.mixture` use ``model.canonical()``).

The grouping is pure JAX (a ``lax.scan`` over the starts, ``vmap`` over a batch), run once
on the finished fit; for a batch (``fit_batch``) every dataset gets its own map.

Example:
  >>> import jax, jax.numpy as jnp, mlejax as mj
  >>> x = jnp.array([-3.1, -2.9, -3.0, 2.9, 3.1, 3.0, 3.05])
  >>> def loglik(p, x):                  # Cauchy location: one peak near each cluster
  ...     return -jnp.log1p((x - p["m"]) ** 2)
  >>> res = mj.fit(loglik, lambda k: {"m": 6.0 * jax.random.uniform(k) - 3.0}, x,
  ...              restarts=16, key=jax.random.key(0), warn=False)
  >>> opt = res.optima
  >>> int(opt.n_optima), [round(float(m), 2) for m in opt.params["m"][:2]]
  (2, [2.88, -2.76])
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._numerics import safe_inverse_pd
from mlejax._objective import objective as objective_of
from mlejax._programs import program_cache
from mlejax.result import FitResult, provide
from mlejax.status import Status

# Also public, for the modules above this one (not part of the user's API): group,
# coordinates, check_tol and register (mlejax.mixture maps its own results with them).
__all__ = ["Optima", "find", "sort_components"]


# --------------------------------------------------------------------------------------
# Canonical forms
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SortComponents:
    """``params -> params`` with the components (axis 0 of ``names``) sorted on ``by``."""

    names: tuple
    by: str

    def __call__(self, params):
        for name in self.names + (self.by,):
            if name not in params:
                raise KeyError(f"sort_components: params have no key {name!r}; they have "
                               f"{sorted(params)}.")
        key = jnp.asarray(params[self.by])
        k = key.shape[0]
        cols = key.reshape(k, -1)
        # Lexicographic on the key's entries (lexsort sorts on its last key first).
        order = jnp.lexsort(tuple(cols[:, j] for j in reversed(range(cols.shape[1]))))
        out = dict(params)
        for name in self.names:
            leaf = jnp.asarray(params[name])
            if leaf.ndim == 0 or leaf.shape[0] != k:
                raise ValueError(f"sort_components: params[{name!r}] has shape {leaf.shape}; "
                                 f"its axis 0 must hold the {k} components.")
            out[name] = jnp.take(leaf, order, axis=0)
        return out


def sort_components(*names: str, by: str | None = None) -> SortComponents:
    """A canonical form for mixtures: the components, axis 0 of each of ``names``, sorted on
    ``params[by]`` (default the first name; lexicographically over its other axes).

    Pass it as ``mj.fit(..., canonical=sort_components("means", "sigmas", "weights"))`` so
    that the optima map counts label-switched copies of one optimum as one.

    Example:
      >>> import jax.numpy as jnp, mlejax as mj
      >>> canon = mj.optima.sort_components("mu", "w")
      >>> out = canon({"mu": jnp.array([2.0, -1.0]), "w": jnp.array([0.3, 0.7])})
      >>> out["mu"].tolist(), out["w"].tolist()
      ([-1.0, 2.0], [0.7, 0.3])
    """
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"sort_components needs the names of the component parameters, "
                         f"e.g. sort_components('means', 'weights'); got {names!r}.")
    by = names[0] if by is None else by
    if not isinstance(by, str):
        raise ValueError(f"by must name a parameter; got {by!r}.")
    return SortComponents(tuple(names), by)


# --------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Optima:
    """The distinct optima of a fit with restarts (a pytree; a batch adds a leading ``K``).

    Slots ``0 .. n_optima - 1`` hold the optima, best first (decreasing objective); the
    other slots (there is one slot per start) are padding: NaN values, count 0.

    Attributes:
      params: each optimum's estimate (leading axis: slot), in canonical form.
      loglik: each optimum's log-likelihood.
      objective: the value maximised (the penalised objective of a penalised fit, else the
        log-likelihood).
      count: how many starts reached each optimum (its basin count).
      peak: True where the optimum's Hessian is negative definite (a strict local
        maximum); False for a saddle or flat ridge where a start stopped.
      start: the index (in ``res.restarts``) of the start representing each optimum.
      label: for each start, the slot of the optimum it reached; ``-1`` if it did not
        converge.
      n_optima: the number of distinct optima.
      n_converged: the starts that converged (the others are counted apart).
      param_names: the flattened parameter names (static).
      penalised: whether ``objective`` is a penalised objective (static).

    Example:
      >>> x = jnp.array([-3.1, -2.9, -3.0, 2.9, 3.1, 3.0, 3.05])
      >>> loglik = lambda p, x: -jnp.log1p((x - p["m"]) ** 2)   # a peak near each cluster
      >>> res = mj.fit(loglik, lambda k: {"m": 6.0 * jax.random.uniform(k) - 3.0}, x,
      ...              restarts=16, key=jax.random.key(0), warn=False)
      >>> opt = res.optima
      >>> isinstance(opt, mj.Optima), int(opt.n_optima), int(opt.count[:2].sum())
      (True, 2, 16)
    """

    params: Any
    loglik: jax.Array
    objective: jax.Array
    count: jax.Array
    peak: jax.Array
    start: jax.Array
    label: jax.Array
    n_optima: jax.Array
    n_converged: jax.Array
    param_names: tuple = ()
    penalised: bool = False

    @property
    def n_starts(self) -> int:
        return int(np.shape(self.label)[-1])

    @property
    def fraction(self) -> jax.Array:
        """Each optimum's share of all starts (they sum to the converged fraction)."""
        return self.count / self.n_starts

    @property
    def best(self) -> jax.Array:
        """True for the best optimum (slot 0), where there is one."""
        slot = jnp.arange(self.n_starts)
        return (slot == 0) & (jnp.expand_dims(self.n_optima, -1) > 0)

    @property
    def is_batch(self) -> bool:
        return np.ndim(self.n_optima) > 0

    def summary(self, max_rows: int = 10) -> str:
        """A text report: how many optima, how often the best was reached, how far below
        the others are, and a table of them."""
        if self.is_batch:
            return _batch_summary(self)
        return _single_summary(self, max_rows)

    def __repr__(self) -> str:
        if self.is_batch:
            return f"Optima(batch of {np.size(self.n_optima)})"
        return (f"Optima(n_optima={int(self.n_optima)}, n_converged={int(self.n_converged)}, "
                f"n_starts={self.n_starts})")


jax.tree_util.register_dataclass(
    Optima, data_fields=["params", "loglik", "objective", "count", "peak", "start", "label",
                         "n_optima", "n_converged"],
    meta_fields=["param_names", "penalised"])


def _ordinal(i: int) -> str:
    return {1: "2nd", 2: "3rd"}.get(i, f"{i + 1}th")


def _single_summary(opt: Optima, max_rows: int) -> str:
    n, r, conv = int(opt.n_optima), opt.n_starts, int(opt.n_converged)
    f = np.asarray(opt.objective, np.float64)
    ll = np.asarray(opt.loglik, np.float64)
    share = np.asarray(opt.count) / r
    if n == 0:
        return f"no optimum: none of the {r} starts converged"
    head = (f"{n} optim{'um' if n == 1 else 'a'}; best reached by {share[0]:.0%} of starts")
    if n > 1:
        head += f"; {_ordinal(1)} is {f[0] - f[1]:.3g} below"
    lines = [head, f"starts: {r}, converged: {conv}, not converged: {r - conv}"]
    what = "objective" if opt.penalised else "loglik"
    lines.append(f"{'#':>3} {what:>14} {'below best':>11} {'starts':>7} {'share':>7}  kind")
    for i in range(min(n, max_rows)):
        kind = "peak" if bool(np.asarray(opt.peak)[i]) else "saddle or ridge"
        lines.append(f"{i + 1:>3} {f[i]:>14.8g} {f[0] - f[i]:>11.4g} "
                     f"{int(np.asarray(opt.count)[i]):>7} {share[i]:>7.1%}  {kind}")
    if n > max_rows:
        lines.append(f"... and {n - max_rows} more")
    if opt.penalised:
        lines.append(f"log-likelihood of the best: {ll[0]:.8g}")
    return "\n".join(lines)


def _batch_summary(opt: Optima) -> str:
    n = np.asarray(opt.n_optima).ravel()
    share = (np.asarray(opt.count)[..., 0] / opt.n_starts).ravel()
    conv = (np.asarray(opt.n_converged) / opt.n_starts).ravel()
    return "\n".join([
        f"optima of a batch of {n.size} fits, {opt.n_starts} starts each",
        f"distinct optima per fit: median {np.median(n):.0f}, range [{n.min()}, {n.max()}]; "
        f"one optimum in {np.mean(n == 1):.0%} of fits",
        f"share of starts reaching the best: median {np.median(share):.0%}, min "
        f"{share.min():.0%}; converged: median {np.median(conv):.0%}"])


# --------------------------------------------------------------------------------------
# The grouping (pure JAX)
# --------------------------------------------------------------------------------------
def group(points, scales, objective, loglik, status, params, *, tol: float, ftol):
    """Groups the starts of one fit into distinct optima (see the module docstring).

    ``points`` and ``scales`` are ``(R, p)`` canonical unconstrained coordinates and their
    standard errors, ``objective``, ``loglik`` and ``status`` ``(R,)``, ``params`` the
    canonical estimates (leading axis ``R``). Returns the fields of :class:`Optima`.
    """
    r = objective.shape[0]
    dtype = objective.dtype
    converged = (status == Status.CONVERGED) | (status == Status.SINGULAR_HESSIAN)
    ok = converged & jnp.isfinite(objective) & jnp.all(jnp.isfinite(points), axis=1)
    key = jnp.where(ok, objective, -jnp.inf)
    order = jnp.argsort(-key, stable=True)

    # inf: a direction the data do not pin down (a ridge), ignored by the distance.
    good = ok[:, None] & ~jnp.isnan(scales) & (scales > 0)
    if points.shape[1]:
        finite = good & jnp.isfinite(scales)
        ref = jnp.nanmedian(jnp.where(finite, scales, jnp.nan), axis=0)
    else:
        ref = jnp.zeros((0,), dtype)
    rel = 1e-3 * jnp.maximum(jnp.abs(points), 1.0)
    scale = jnp.where(good, scales, jnp.where(jnp.isfinite(ref)[None, :], ref[None, :], rel))
    eps = jnp.finfo(dtype).eps
    f_tol = jnp.maximum(ftol, 100.0 * eps * jnp.maximum(jnp.abs(objective), 1.0))
    safe_points = jnp.where(jnp.isfinite(points), points, 0.0)

    def visit(carry, i):
        rep_of, is_rep = carry
        # The larger of the two standard errors per coordinate: symmetric, and a coordinate
        # either start leaves unpinned (a ridge) does not separate them.
        pair = jnp.maximum(scale[i][None, :], scale)
        dist = jnp.max(jnp.abs(safe_points[i][None, :] - safe_points) / pair, axis=1,
                       initial=0.0)
        same = is_rep & (dist <= tol) & (jnp.abs(objective[i] - objective) <= f_tol)
        has = jnp.any(same)
        j = jnp.argmax(jnp.where(same, key, -jnp.inf)).astype(jnp.int32)
        label = jnp.where(ok[i], jnp.where(has, j, i.astype(jnp.int32)), -1)
        return (rep_of.at[i].set(label), is_rep.at[i].set(ok[i] & ~has)), None

    init = (jnp.full((r,), -1, jnp.int32), jnp.zeros((r,), bool))
    (rep_of, is_rep), _ = jax.lax.scan(visit, init, order.astype(jnp.int32))

    rep_in_order = is_rep[order]
    slot_in_order = (jnp.cumsum(rep_in_order) - 1).astype(jnp.int32)
    slot_of = jnp.zeros((r,), jnp.int32).at[order].set(slot_in_order)
    label = jnp.where(rep_of >= 0, slot_of[jnp.maximum(rep_of, 0)], -1)
    n_optima = jnp.sum(is_rep).astype(jnp.int32)
    target = jnp.where(rep_in_order, slot_in_order, r)
    start = jnp.full((r,), -1, jnp.int32).at[target].set(order.astype(jnp.int32),
                                                         mode="drop")
    count = jnp.zeros((r,), jnp.int32).at[jnp.where(label >= 0, label, r)].add(1, mode="drop")
    valid = start >= 0
    idx = jnp.maximum(start, 0)

    def pick(x, fill):
        x = jnp.take(x, idx, axis=0)
        mask = valid.reshape((r,) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x, fill)

    return dict(
        params=jax.tree_util.tree_map(lambda x: pick(x, jnp.nan), params),
        loglik=pick(loglik, jnp.nan), objective=pick(objective, jnp.nan), count=count,
        peak=pick(status == Status.CONVERGED, False), start=start, label=label,
        n_optima=n_optima, n_converged=jnp.sum(ok).astype(jnp.int32))


def _variances(a: jax.Array) -> jax.Array:
    """Per-coordinate variances from ``a = -H``: ``inf`` along flat directions.

    The eigendecomposition of the Jacobi-scaled ``a`` gives ``sum_i v_ji^2 / |w_i|``;
    a coordinate with a share in a direction of no curvature (a flat ridge, a parameter
    the data do not identify) has unbounded variance, so distances ignore it. A saddle's
    curvature counts by its size (absolute eigenvalues).
    """
    p = a.shape[0]
    diag = jnp.diagonal(a)
    d = jnp.where(diag > 0, jnp.sqrt(jnp.abs(diag)), 1.0)
    w, v = jnp.linalg.eigh(0.5 * (a + a.T) / d[:, None] / d[None, :])
    eps = jnp.finfo(a.dtype).eps
    flat = ~(jnp.abs(w) > 100.0 * p * eps * jnp.max(jnp.abs(w), initial=0.0))
    inv_w = jnp.where(flat, 0.0, 1.0 / jnp.where(flat, 1.0, jnp.abs(w)))
    var = ((v * v) @ inv_w) / (d * d)
    flat_share = (v * v) @ flat.astype(a.dtype)
    return jnp.where(flat_share > 1e-6, jnp.inf, var)


def coordinates(problem, canonical, total_fn, params):
    """A start's canonical parameters, their unconstrained coordinates, the standard error
    of each coordinate (from the Hessian of ``total_fn`` in the unconstrained coordinates
    of ``problem``, mapped through the canonical relabelling), and whether that Hessian
    is negative definite."""
    u = problem.to_u(jax.tree_util.tree_leaves(params))

    def fn(v):
        return total_fn(problem.to_natural(v))

    a = -jax.hessian(fn)(u)
    var = _variances(a)
    _, definite = safe_inverse_pd(a)

    def to_canonical(v):
        p = problem.to_natural(v)
        if canonical is not None:
            p = canonical(p)
        return problem.to_u(jax.tree_util.tree_leaves(p))

    uc = to_canonical(u)
    # A relabelling moves coordinates (locally a permutation): variances move with them.
    jac2 = jnp.square(jax.jacfwd(to_canonical)(u))
    var_c = jnp.sum(jnp.where(jac2 > 0, jac2 * var[None, :], 0.0), axis=1)
    canon = params if canonical is None else canonical(params)
    return canon, uc, jnp.sqrt(var_c), definite


@program_cache
def _fit_program(cfg, canonical, tol: float, ftol: float, batched: bool):
    problem = cfg.problem

    def one(params, data, weights, loglik, objective, status):
        fn_u = objective_of(cfg, data, weights)

        def total(p):
            return fn_u(problem.to_u(jax.tree_util.tree_leaves(p)))

        canon, u, se, _ = jax.vmap(
            functools.partial(coordinates, problem, canonical, total))(params)
        return group(u, se, objective, loglik, status, canon, tol=tol, ftol=ftol)

    if not batched:
        return jax.jit(one)
    w_axis = 0 if cfg.has_weights else None
    return jax.jit(jax.vmap(one, in_axes=(0, 0, w_axis, 0, 0, 0)))


def check_tol(tol, ftol):
    """``tol`` and ``ftol`` of :func:`find` checked, ``ftol`` defaulting to ``tol ** 2``."""
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol (in standard errors) must be a number > 0; got {tol!r}.")
    ftol = tol * tol if ftol is None else float(ftol)
    if not (np.isfinite(ftol) and ftol >= 0):
        raise ValueError(f"ftol must be a number >= 0; got {ftol!r}.")
    return tol, ftol


# The optima maps of result types defined above this module (a MixtureResult's, registered
# by mlejax.mixture), by type: find(res) dispatches to them.
_FINDERS: dict[type, Callable] = {}


def register(result_type: type, finder: Callable) -> None:
    """Lets :func:`find` map results of ``result_type`` with
    ``finder(res, x, *, canonical, tol, ftol) -> Optima`` (``tol`` and ``ftol`` checked by
    :func:`check_tol`): the way a result type of an upper module, such as
    :class:`~mlejax.MixtureResult`, gets its optima map without this module importing it."""
    _FINDERS[result_type] = finder


def find(res: Any, x: Any = None, *, canonical: Any = None, tol: float = 0.1,
         ftol: float | None = None) -> Optima:
    """The distinct optima reached by the restarts of ``res`` (see the module docstring).

    Args:
      res: a :class:`~mlejax.FitResult` of ``mj.fit`` / ``mj.fit_batch`` with
        ``restarts=``, or a :class:`~mlejax.MixtureResult` (with ``x``).
      x: for a mixture, the data it was fitted to (for the observed information of each
        start: standard errors and definiteness).
      canonical: ``params -> params`` in canonical form (default: the fit's ``canonical=``,
        or for a mixture ``model.canonical()``).
      tol: the largest difference, in standard errors, of the coordinates of one optimum.
      ftol: the largest difference of the objectives of one optimum (default ``tol ** 2``).

    Returns:
      An :class:`Optima` (``res.optima`` for a ``FitResult``).

    Example:
      >>> x = jnp.array([-3.1, -2.9, -3.0, 2.9, 3.1, 3.0, 3.05])
      >>> loglik = lambda p, x: -jnp.log1p((x - p["m"]) ** 2)   # a peak near each cluster
      >>> res = mj.fit(loglik, lambda k: {"m": 6.0 * jax.random.uniform(k) - 3.0}, x,
      ...              restarts=16, key=jax.random.key(0), warn=False)
      >>> opt = mj.optima.find(res, tol=0.5)             # res.optima with another tolerance
      >>> int(opt.n_optima), [round(float(m), 2) for m in opt.params["m"][:2]]
      (2, [2.88, -2.76])
    """
    tol, ftol = check_tol(tol, ftol)
    finder = _FINDERS.get(type(res))
    if finder is not None:
        return finder(res, x, canonical=canonical, tol=tol, ftol=ftol)
    if not isinstance(res, FitResult):
        raise ValueError(f"the optima map needs a FitResult or a MixtureResult; got "
                         f"{type(res).__name__}.")
    if res.restarts is None:
        raise ValueError("the optima map needs several starts: fit with restarts=R and key= "
                         "(e.g. mj.fit(loglik, init_fn, data, restarts=64, key=key)).")
    if res.context is None:
        raise ValueError("the optima map needs the fit's context (res.context is None): pass "
                         "the result returned by mj.fit / mj.fit_batch itself.")
    cfg = res.context.config
    if canonical is None:
        canonical = cfg.canonical
    elif not callable(canonical):
        raise ValueError(f"canonical must be a function params -> params; got {canonical!r}.")
    ctx = res.context
    if ctx.data is None or cfg.has_weights != (ctx.weights is not None):
        raise ValueError("the optima map recomputes each start's Hessian from the data, "
                         "which this result does not hold as one array (a streamed or "
                         "ragged batch); fit from arrays to map its optima.")
    starts = res.restarts
    objective = starts.loglik if starts.objective is None else starts.objective
    out = _fit_program(cfg, canonical, tol, ftol, res.is_batch)(
        starts.params, ctx.data, ctx.weights, starts.loglik, objective, starts.status)
    return Optima(**out, param_names=cfg.problem.param_names,
                  penalised=starts.objective is not None)


provide("optima", find)   # res.optima of a FitResult (mlejax.result cannot import this module)
