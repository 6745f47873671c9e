"""The fit of one named distribution: :func:`fit_distribution` (pre-trace checks, starting
points, the closed-form families) and :func:`bootstrap_sampler` for its parametric bootstrap."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._distributions.common import integers
from mlejax._distributions.discrete import categorical_counts
from mlejax._distributions.family import Distribution
from mlejax._distributions.registry import get
from mlejax._fit import fit, fit_batch
from mlejax._numerics import is_concrete
from mlejax.result import FitResult
from mlejax.status import Status


@functools.lru_cache(maxsize=None)
def _loglik_fn(dist: Distribution, fixed_names: tuple[str, ...]) -> Callable:
    """``loglik_fn(params, data)`` for the core: the fixed values travel in ``data``.

    One function object per (distribution, fixed names), so every fit of same-shaped data
    reuses one compiled program whatever the fixed values are.
    """

    def loglik_fn(params, data):
        full = dict(data["fixed"])
        full.update(params)
        return dist.logpdf(full, data["x"])

    loglik_fn.__name__ = f"{dist.name}_loglik"
    loglik_fn.__qualname__ = loglik_fn.__name__
    loglik_fn.distribution = dist  # lets later inference (bootstrap) find the sampler
    loglik_fn.fixed_names = fixed_names
    return loglik_fn


def _categorical_k(x_np, n_categories) -> int:
    if n_categories is not None:
        k = int(n_categories)
        if k < 2:
            raise ValueError(f"n_categories must be an integer >= 2; got {n_categories}.")
        return k
    if x_np is None:
        raise ValueError("categorical data inside jit: pass n_categories= (the number of "
                         "categories k cannot be read from traced data).")
    return max(int(np.max(x_np)) + 1, 2)


@functools.lru_cache(maxsize=None)
def _start_program(dist: Distribution, fixed_names: tuple[str, ...], which: str, k: int | None):
    """A jitted, vmapped ``(x, w, fixed) -> params`` for the starting values."""

    def one(x, w, fixed):
        if dist.name == "categorical":
            counts = categorical_counts(x, w, k)
            return {"p": counts / jnp.sum(counts)}
        if which == "closed_form":
            out = dist.closed_form(x, w, fixed)
        else:
            out = dist.moments(x, w, fixed)
        return {name: out[name] for name in dist.params if name not in fixed_names}

    return jax.jit(jax.vmap(one))


def _has_closed_form(dist: Distribution, fixed_names, k) -> bool:
    if dist.name == "categorical":
        return True
    if dist.closed_form is None:
        return False
    probe = jax.ShapeDtypeStruct((4,) + ((2,) if dist.event_ndim else ()), jnp.float32)
    wprobe = jax.ShapeDtypeStruct((4,), jnp.float32)
    shapes = {"mean": (2,), "cov": (2, 2)}
    fx = {n: jax.ShapeDtypeStruct(shapes.get(n, ()) if dist.event_ndim else (), jnp.float32)
          for n in fixed_names}
    del k
    out = jax.eval_shape(dist.closed_form, probe, wprobe, fx)
    return out is not None


@functools.lru_cache(maxsize=None)
def _closed_form_program(dist: Distribution, fixed_names: tuple[str, ...]):
    """Non-regular families: the estimate, log-likelihood and covariance, vmapped."""
    free = tuple(sorted(n for n in dist.params if n not in fixed_names))

    def one(x, w, fixed):
        est = dist.closed_form(x, w, fixed)
        full = dict(fixed)
        full.update({k: est[k] for k in free})
        ll = jnp.sum(jnp.where(w > 0, w * dist.logpdf(full, x), 0.0))
        cov = dist.cov_fn(full, x, w, free)
        return {k: est[k] for k in free}, ll, cov

    return jax.jit(jax.vmap(one))


def _as_float(x, dtype=None):
    if dtype is None:
        dt = jnp.result_type(x)
        dtype = dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float)
    return jnp.asarray(x, dtype), dtype


def _where_rows(mask: np.ndarray, batched: bool) -> str:
    idx = np.flatnonzero(mask)
    if not batched:
        return "x"
    shown = ", ".join(str(i) for i in idx[:8])
    more = f" and {idx.size - 8} more" if idx.size > 8 else ""
    return f"x[k] for k in [{shown}{more}] ({idx.size} of {mask.size} datasets)"


def _host_checks(dist, x_np, w_np, fixed_np, batched, n_free):
    """Support, size and boundary checks on concrete data: ValueError naming the fix."""
    x2 = x_np if batched else x_np[None]
    w2 = w_np if batched else w_np[None]
    inside = w2 > 0
    if not np.all(np.isfinite(x2)):
        bad = int(np.sum(~np.isfinite(x2)))
        raise ValueError(f"x contains {bad} NaN or infinite value(s); remove them (or give them "
                         "weight 0 and a finite placeholder).")
    cnt = inside.sum(axis=1)
    if np.any(cnt == 0):
        raise ValueError(f"{_where_rows(cnt == 0, batched)} has no observation with positive "
                         "weight; drop it.")
    small = cnt < max(n_free, 1)
    if np.any(small):
        raise ValueError(f"{_where_rows(small, batched)} has fewer observations "
                         f"({int(cnt[small].min())}) than free parameters ({n_free}) of the "
                         f"{dist.name} distribution; give more data or fix parameters with "
                         "fixed=.")
    ok = dist.support(x2, fixed_np)
    bad_obs = (~ok) & inside.reshape(inside.shape + (1,) * dist.event_ndim)
    if dist.event_ndim:
        bad_obs = bad_obs.any(axis=-1)
    if np.any(bad_obs):
        vals = np.unique(x2[bad_obs] if not dist.event_ndim else x2[bad_obs][:, 0])[:5]
        rows = bad_obs.any(axis=1)
        raise ValueError(f"{_where_rows(rows, batched)}: {int(bad_obs.sum())} value(s) outside "
                         f"the support of the {dist.name} distribution, which needs "
                         f"{dist.support_text}; e.g. {vals.tolist()}. Remove or correct them, "
                         "or choose another distribution.")
    for mask, reason in dist.degenerate(x2, w2, fixed_np):
        mask = np.asarray(mask)
        if np.any(mask):
            raise ValueError(f"{_where_rows(mask, batched)}: {reason}.")


def _prepare_fixed(dist, fixed, dtype, x_shape, batched, k_batch):
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, Mapping):
        raise ValueError(f"fixed must be a dict of parameter values, e.g. {{'df': 5}}; got "
                         f"{fixed!r}.")
    unknown = sorted(set(fixed) - set(dist.params))
    if unknown:
        raise ValueError(f"fixed names {unknown}, which are not parameters of the {dist.name} "
                         f"distribution; its parameters are {list(dist.params)}.")
    for k in dist.known:
        if k not in fixed:
            raise ValueError(f"the {dist.name} distribution needs {k!r} given: pass "
                             f"fixed={{{k!r}: value}} (e.g. the number of trials).")
    out = {}
    for name, val in fixed.items():
        arr = jnp.asarray(val, dtype)
        if is_concrete(arr):
            a = np.asarray(arr)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"fixed[{name!r}] must be finite; got {a}.")
            why = dist.constraints[name].check(a)
            if why is not None:
                raise ValueError(f"fixed[{name!r}] {why}; got {a}.")
            if name in dist.known and not np.all(integers(a)):
                raise ValueError(f"fixed[{name!r}] must be an integer; got {a}.")
        if name in dist.known:
            # Known per-observation values (the binomial's trials): (), (n,) or x's shape.
            ok_shapes = {(), tuple(x_shape[-1:]), tuple(x_shape)}
            if arr.shape not in ok_shapes:
                raise ValueError(f"fixed[{name!r}] must be a scalar or have one value per "
                                 f"observation (shape {x_shape[-1:]} or {x_shape}); got "
                                 f"{arr.shape}.")
            if batched and arr.shape != tuple(x_shape):
                arr = jnp.broadcast_to(arr, tuple(x_shape))
        elif batched:
            arr = jnp.broadcast_to(arr, (k_batch,) + arr.shape)  # shared by every dataset
        out[name] = arr
    return out


def fit_distribution(x: Any, dist: str | Distribution, *, fixed: Mapping[str, Any] | None = None,
                     weights: Any = None, start: str | Mapping[str, Any] = "auto",
                     n_categories: int | None = None, method: str = "newton",
                     max_steps: int | None = None, gtol: float | None = None,
                     ftol: float | None = None, warn: bool = True) -> FitResult:
    """Maximum-likelihood fit of a named distribution to ``x``, one or K datasets at once.

    Maximises ``sum_i w_i log f(x_i; theta)`` over the free parameters ``theta`` (every
    parameter not in ``fixed``) with the constraint of each parameter handled by its
    bijection (see :mod:`mlejax.constraints`). The start is the closed-form MLE where it
    exists (the fit then only computes the observed information), else the method of
    moments. For the non-regular families (``uniform``, ``laplace``, ``pareto``) the closed
    form is the estimate and ``cov`` is the sampling covariance stated in the registry
    (``get(name).cov_fn``); their results carry ``method="closed_form"`` and no ``context``.

    Args:
      x: data, ``(n,)`` for one dataset or ``(K, n)`` for K datasets fitted in one compiled
        program (``(n, d)`` / ``(K, n, d)`` for ``"multivariate_normal"``). Counts may be
        integers; the fit runs in ``x``'s floating dtype, or the default float dtype.
      dist: a name from ``DISTRIBUTIONS`` (``"normal"``, ``"gamma"``, ``"student_t"`` ...).
      fixed: parameters held at given values, e.g. ``{"df": 5}``; shared by all K datasets
        of a batch. The binomial's number of trials must be given as ``{"n": N}`` (a scalar
        or one per observation).
      weights: non-negative frequency weights, ``(n,)`` or ``(K, n)``; zeros pad ragged
        datasets (the padded values need not lie in the support).
      start: ``"auto"`` (closed form if one exists, else moments), ``"moments"``,
        ``"closed_form"``, or a dict of starting values for the free parameters.
      n_categories: the number of categories k for ``"categorical"`` (default
        ``max(x) + 1``).
      method, max_steps, gtol, ftol, warn: passed to :func:`mlejax.fit`.

    Returns:
      A :class:`~mlejax.FitResult` whose ``params`` hold the free parameters (leading K axis
      for a batch).

    Raises:
      ValueError: unknown name, data outside the support (negative values for ``"gamma"``,
        a non-integer count for ``"poisson"``, non-binary data for ``"bernoulli"``), fewer
        observations than free parameters, or data whose MLE lies on the boundary of the
        parameter space (constant data, counts that are not over-dispersed for
        ``"negative_binomial"``, an unobserved category).

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma")
      >>> res.param_names, round(float(res.params["shape"]), 4)
      (('scale', 'shape'), 1.7087)
      >>> round(float(res.stderr["shape"]), 4)
      0.6411
      >>> batch = mj.fit_distribution(jnp.stack([x, 2 * x, x + 1]), "gamma")   # 3 fits at once
      >>> [round(float(s), 4) for s in batch.params["scale"]]
      [1.9947, 3.9895, 1.3521]
    """
    d = get(dist)
    if n_categories is not None and d.name != "categorical":
        raise ValueError("n_categories= applies only to the 'categorical' distribution; got "
                         f"dist={d.name!r}.")
    if not isinstance(x, jax.Array) or is_concrete(x):
        x_host = np.asarray(x)
        if x_host.dtype == object or (not np.issubdtype(x_host.dtype, np.number)
                                      and x_host.dtype != bool):
            raise ValueError(f"x must be a numeric array; got dtype {x_host.dtype}.")
    xj, dtype = _as_float(x)
    ndim = xj.ndim - d.event_ndim
    if ndim not in (1, 2):
        want = "(n,) or (K, n)" if not d.event_ndim else "(n, d) or (K, n, d)"
        raise ValueError(f"x must have shape {want} for the {d.name} distribution; got "
                         f"{xj.shape}.")
    batched = ndim == 2
    k_batch = xj.shape[0] if batched else None
    obs_shape = xj.shape[:ndim]
    if weights is None:
        wj = jnp.ones(obs_shape, dtype)
        has_w = False
    else:
        wj = jnp.asarray(weights, dtype)
        has_w = True
        if wj.shape != obs_shape:
            raise ValueError(f"weights must have shape {obs_shape} (one per observation); got "
                             f"{wj.shape}.")
        if is_concrete(wj):
            wn = np.asarray(wj)
            if not np.all(np.isfinite(wn)) or np.any(wn < 0):
                raise ValueError("weights must be finite and non-negative.")
    fx = _prepare_fixed(d, fixed, dtype, xj.shape, batched, k_batch)
    fixed_names = tuple(sorted(fx))
    free = tuple(sorted(n for n in d.params if n not in fx))
    if not free:
        raise ValueError(f"every parameter of the {d.name} distribution is fixed "
                         f"({list(d.params)}): nothing to estimate. To evaluate the "
                         f"log-likelihood use mj.distributions.get({d.name!r}).logpdf.")

    concrete = is_concrete(xj) and is_concrete(wj) and all(is_concrete(v) for v in fx.values())
    x_np = np.asarray(xj) if concrete else None
    k_cat = _categorical_k(x_np, n_categories) if d.name == "categorical" else None
    if concrete:
        w_np = np.asarray(wj)
        # Host checks see each fixed value once (shared by the batch) or per observation.
        fixed_np = {k: np.asarray(v) if (k in d.known or not batched) else np.asarray(v)[0]
                    for k, v in fx.items()}
        n_free = _n_free(d, free, xj.shape, k_cat)
        _host_checks(d, x_np, w_np, fixed_np, batched, n_free)
        if d.name == "categorical":
            _check_categories(x_np, w_np, k_cat, batched)

    # Padding (weight 0) may hold values outside the support; replace them by an observed
    # value so no log-density or gradient is evaluated outside it (0 * -inf is NaN).
    if has_w:
        xj = _fill_padding(xj, wj, batched, d.event_ndim)

    xb = xj if batched else xj[None]
    wb = wj if batched else wj[None]
    fb = fx if batched else {k: v[None] for k, v in fx.items()}

    if not d.regular:
        est, ll, cov = _closed_form_program(d, fixed_names)(xb, wb, fb)
        return _closed_form_result(d, est, ll, cov, wb, free, batched)

    if isinstance(start, Mapping):
        init = _user_start(d, start, free, dtype, batched, k_batch)
    else:
        if start not in ("auto", "moments", "closed_form"):
            raise ValueError(f"start must be 'auto', 'moments', 'closed_form' or a dict of "
                             f"starting values; got {start!r}.")
        has_cf = _has_closed_form(d, fixed_names, k_cat)
        if start == "closed_form" and not has_cf:
            raise ValueError(f"the {d.name} distribution has no closed-form MLE with fixed="
                             f"{list(fixed_names)}; use start='moments'.")
        which = "closed_form" if (start != "moments" and has_cf) else "moments"
        if d.name == "categorical" and start == "moments":
            which = "moments"
        init = _start_program(d, fixed_names, which, k_cat)(xb, wb, fb)
        if not batched:
            init = {k: v[0] for k, v in init.items()}
    data = {"x": xj, "fixed": fx}
    cons = {k: d.constraints[k] for k in free}
    kw = dict(constraints=cons, weights=wj if has_w else None, method=method,
              max_steps=max_steps, gtol=gtol, ftol=ftol, warn=warn)
    loglik = _loglik_fn(d, fixed_names)
    if batched:
        return fit_batch(loglik, init, data, init_batched=True, **kw)
    return fit(loglik, init, data, **kw)


def bootstrap_sampler(res: FitResult) -> Callable:
    """``sample_fn(key, params, nobs)`` for the parametric bootstrap of a distribution fit.

    Simulates a dataset shaped like the fit's data from the family's sampler, with the fixed
    parameters of the fit held at their values, for
    ``mj.bootstrap(res, kind="parametric", sample_fn=bootstrap_sampler(res), key=...)``.

    Raises:
      ValueError: when ``res`` is not a regular fit of :func:`fit_distribution` (the
        closed-form families have no context to refit).

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma")
      >>> sample_fn = mj.distributions.bootstrap_sampler(res)
      >>> draw = sample_fn(jax.random.key(0), res.params, 5)   # one simulated dataset
      >>> sorted(draw), draw["x"].shape
      (['fixed', 'x'], (5,))
    """
    ctx = getattr(res, "context", None)
    fn = None if ctx is None else ctx.config.loglik_fn
    dist = getattr(fn, "distribution", None)
    if dist is None:
        raise ValueError("bootstrap_sampler needs a result of mj.fit_distribution for a regular "
                         "family (uniform, laplace and pareto fits are closed forms without a "
                         "refitting context).")
    fixed = ctx.data["fixed"]
    if res.is_batch:  # fixed values are shared by the batch (one value per dataset stored)
        fixed = {k: (v if k in dist.known and np.ndim(v) > 1 else v[0]) for k, v in fixed.items()}
    x_example = ctx.data["x"]
    dtype = x_example.dtype
    event = tuple(x_example.shape[-dist.event_ndim:]) if dist.event_ndim else ()

    def sample_fn(key, params, nobs):
        full = dict(fixed)
        full.update(params)
        x = dist.sample(key, full, (nobs,)).astype(dtype)
        return {"x": x.reshape((nobs,) + event), "fixed": fixed}

    return sample_fn


def _n_free(d, free, x_shape, k_cat) -> int:
    if d.name == "categorical":
        return k_cat - 1
    if d.name == "multivariate_normal":
        dim = x_shape[-1]
        return sum(dim if k == "mean" else dim * (dim + 1) // 2 for k in free)
    return len(free)


def _check_categories(x_np, w_np, k, batched):
    x2 = x_np if batched else x_np[None]
    w2 = w_np if batched else w_np[None]
    if np.any((x2 >= k) & (w2 > 0)):
        raise ValueError(f"x holds category codes >= n_categories={k}; codes must be 0..{k - 1}"
                         ".")
    counts = np.stack([np.sum(np.where(x2 == j, w2, 0.0), axis=1) for j in range(k)], axis=1)
    empty = counts == 0
    if np.any(empty):
        rows = empty.any(axis=1)
        cats = sorted(set(np.flatnonzero(empty.any(axis=0)).tolist()))
        raise ValueError(f"{_where_rows(rows, batched)}: category {cats} is never observed, so "
                         "its MLE probability is 0 (on the boundary of the simplex) and the fit "
                         "does not exist; merge or drop the empty categories (or pass a smaller "
                         "n_categories).")


def _fill_padding(xj, wj, batched, event_ndim):
    def one(x, w):
        first = jnp.argmax(w > 0)
        keep = (w > 0).reshape(w.shape + (1,) * event_ndim)
        return jnp.where(keep, x, x[first])

    return jax.vmap(one)(xj, wj) if batched else one(xj, wj)


def _user_start(d, start, free, dtype, batched, k_batch):
    missing = sorted(set(free) - set(start))
    extra = sorted(set(start) - set(free))
    if missing or extra:
        raise ValueError(f"start must give exactly the free parameters {list(free)}; missing "
                         f"{missing}, unexpected {extra}.")
    init = {}
    for k in free:
        v = jnp.asarray(start[k], dtype)
        init[k] = jnp.broadcast_to(v, (k_batch,) + v.shape) if batched else v  # shared
    return init


def _closed_form_result(d, est, ll, cov, wb, free, batched) -> FitResult:
    k = ll.shape[0]
    dtype = ll.dtype
    se = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    stderr = {name: se[:, i] for i, name in enumerate(free)}
    res = FitResult(
        params=est, loglik=ll, status=jnp.zeros(k, jnp.int32) + Status.CONVERGED,
        n_steps=jnp.zeros(k, jnp.int32), trace=ll[:, None], cov=cov, stderr=stderr,
        grad_norm=jnp.zeros(k, dtype), nobs=jnp.sum(wb > 0, axis=1).astype(jnp.int32),
        param_names=free, df_model=len(free), method="closed_form")
    if batched:
        return res
    return jax.tree_util.tree_map(lambda a: a[0], res)
