"""The sandwich (robust) covariance, HC0 or cluster-robust, and the covariance a ``cov=``
argument names (observed, robust or a given matrix)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._inference.common import (as_fit, check_result, estimate_u, lead_shape,
                                      need_per_obs, obs_count, unflatten)
from mlejax._numerics import safe_inverse_pd, sym
from mlejax._objective import objective
from mlejax.result import FitResult

__all__ = ["group_ids", "resolve_cov", "robust_cov", "robust_stderr"]



@functools.lru_cache(maxsize=64)
def _sandwich_kernel(cfg, batched: bool):
    problem = cfg.problem

    def one(u_hat, data, weights, gid, factor):
        # HC0 is the cluster sandwich with one observation per cluster: one program for both
        # (at most n clusters, so n segments always suffice).
        def per_obs(u):
            return cfg.loglik_fn(problem.to_natural(u), data).astype(problem.dtype)

        # Forward mode: p passes over the data instead of n reverse passes.
        scores = jax.jacfwd(per_obs)(u_hat)                      # (n, p)
        if weights is not None:
            scores = jnp.where((weights > 0)[:, None], weights[:, None] * scores, 0.0)
        scores = jax.ops.segment_sum(scores, gid, num_segments=scores.shape[0])
        meat = scores.T @ scores
        fn = objective(cfg, data, weights)
        bread, _ = safe_inverse_pd(-sym(jax.hessian(fn)(u_hat)))
        cov_u = factor * (bread @ meat @ bread)
        jac = jax.jacfwd(problem.natural_flat)(u_hat)
        return sym(jac @ cov_u @ jac.T)

    if not batched:
        return jax.jit(one)
    in_axes = (0, 0, 0 if cfg.has_weights else None, 0, 0)
    return jax.jit(jax.vmap(one, in_axes=in_axes))


def group_ids(groups, n: int, weights, lead: tuple[int, ...]):
    """Integer cluster ids 0..G-1 per observation, the cluster counts G, and max G."""
    g = np.asarray(groups)
    if g.ndim == 0 or g.shape[-1] != n or g.shape not in ((n,), lead + (n,)):
        want = f"({n},)" + (f" or {lead + (n,)}" if lead else "")
        raise ValueError(f"groups must give one cluster label per observation, shape {want}; "
                         f"got shape {g.shape}.")
    if g.dtype.kind not in "iubfOUS":
        raise ValueError(f"groups must hold cluster labels (integers or strings); got dtype "
                         f"{g.dtype}.")
    if g.dtype.kind == "f" and not np.all(np.isfinite(g)):
        raise ValueError("groups contains NaN or infinite labels; give every observation a "
                         "cluster label.")
    rows = g.reshape(-1, n) if g.ndim > 1 else g[None, :]
    w = None if weights is None else np.asarray(weights).reshape(-1, n)
    k = int(np.prod(lead)) if lead else 1
    ids, counts = [], []
    for i in range(k):
        row = rows[i if rows.shape[0] > 1 else 0]
        _, inv = np.unique(row, return_inverse=True)
        ids.append(inv.reshape(n))
        live = row if w is None else row[w[i] > 0]
        counts.append(len(np.unique(live)))
    gid = np.stack(ids).reshape(lead + (n,)).astype(np.int32)
    count = np.asarray(counts, dtype=np.float64).reshape(lead)
    return gid, count, int(max(len(np.unique(r)) for r in rows))


_CORRECTIONS = ("none", "ml", "linear")


def _correction_kind(correction: Any, clustered: bool, regression: Any) -> str | float:
    """The small-sample correction asked for: one of ``_CORRECTIONS`` or a given factor."""
    if correction is None:
        if not clustered:
            return "none"
        return "linear" if regression is None else regression.model.cluster_correction
    if correction is True:
        return "linear"
    if correction is False:
        return "none"
    if isinstance(correction, str):
        if correction not in _CORRECTIONS:
            raise ValueError(f"correction must be one of {_CORRECTIONS}, True, False, None or "
                             f"a positive factor; got {correction!r}.")
        return correction
    fac = float(np.asarray(correction)) if np.ndim(correction) == 0 else float("nan")
    if not (np.isfinite(fac) and fac > 0):
        raise ValueError(f"correction must be one of {_CORRECTIONS}, True, False, None or a "
                         f"positive factor; got {correction!r}.")
    return fac


def robust_cov(res: Any, *, groups: Any = None,
               correction: bool | str | float | None = None) -> jax.Array:
    """The sandwich (robust) covariance of the estimate, HC0 or cluster-robust.

    With ``s_i = w_i d l_i / d theta`` the score of observation ``i`` (autodiff Jacobian of
    the per-observation log-likelihood, times its weight) and ``A = -H`` the observed
    information at the estimate,

        cov = c A^-1 (sum_i s_i s_i^T) A^-1                         (no groups)
        cov = c A^-1 (sum_g S_g S_g^T) A^-1,  S_g = sum_{i in g} s_i   (groups=)

    The small-sample factor ``c`` (``G`` clusters, ``N`` observations, ``K`` parameters;
    without ``groups`` every observation is its own cluster, ``G = N``):

    ==============  ===========================  ============================================
    correction      c                            used by
    ==============  ===========================  ============================================
    ``"none"``      1                            HC0; statsmodels ``cov_type="HC0"``
    ``"ml"``        G/(G-1)                      Stata's ML commands (poisson, nbreg, logit,
                                                 probit, glm): ``vce(cluster)``, and
                                                 ``vce(robust)`` (N/(N-1)) without groups
    ``"linear"``    G/(G-1) (N-1)/(N-K)          Stata's ``regress``, statsmodels' cluster
                                                 default (CRV1); HC1, N/(N-K), without groups
    a number        that number
    ==============  ===========================  ============================================

    ``True`` is ``"linear"`` and ``False`` ``"none"``. The default (``None``) is ``"none"``
    without groups; with groups it is ``"linear"`` for a ``mj.fit`` result and the model's
    own convention for a :class:`~mlejax.models.RegressionResult`: ``"linear"`` for the
    least-squares models (``Linear``, ``Nonlinear``; ``K`` the coefficients, ``sigma`` not
    counted, as in ``regress``), ``"ml"`` for the others (``Logistic``, ``Probit``,
    ``Poisson``, ``NegativeBinomial``, ``Gamma``, ``StudentT``), matching Stata's numbers.
    statsmodels' discrete models apply ``"linear"`` (``K`` every parameter) by default; pass
    ``correction="linear"`` for those. The covariance is computed in the solvers'
    unconstrained coordinates and mapped to the natural scale with the Jacobian of the
    constraints, like ``res.cov``. Each row of the data is one independent unit (weights as
    sampling weights).

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch`` whose ``loglik_fn`` returns one value per
        observation, or a :class:`~mlejax.models.RegressionResult`.
      groups: optional cluster labels, one per observation (``(n,)``, or ``(K, n)`` for a batch).
      correction: the small-sample factor (above).

    Returns:
      ``(p, p)`` (``(K, p, p)`` for a batch) over the flattened natural parameters in
      ``res.param_names`` order; NaN where the observed information is singular.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> cov = mj.robust_cov(res)                      # HC0; also res.cov_robust
      >>> [round(float(s), 4) for s in jnp.sqrt(jnp.diagonal(cov))]   # observed: 0.2019, 0.1428
      [0.2019, 0.0951]
      >>> mj.robust_cov(res, groups=jnp.array([0, 0, 1, 1, 2, 2, 3, 3])).shape   # 4 clusters
      (2, 2)
    """
    res, regression = as_fit(res)
    scale = None
    if regression is not None:
        res, scale = regression.model.robust_view(regression)
    check_result(res, "robust_cov")
    need_per_obs(res, "robust_cov (sandwich errors)")
    ctx = res.context
    cfg = ctx.config
    lead = lead_shape(res)
    if res.is_batch and len(lead) != 1:
        raise ValueError("robust_cov handles a single fit or one batch axis; got result "
                         f"arrays with leading shape {lead}.")
    n = obs_count(res)
    dtype = cfg.problem.dtype
    nobs = np.broadcast_to(np.asarray(res.nobs, dtype=np.float64), lead)
    kind = _correction_kind(correction, groups is not None, regression)
    k = float(res.df_model if regression is None else regression.model.robust_k(res))
    if groups is None:
        gid = np.broadcast_to(np.arange(n, dtype=np.int32), lead + (n,))
        count = nobs
    else:
        gid, count, _ = group_ids(groups, n, ctx.weights, lead)
        if np.any(count < 2):
            raise ValueError("groups has fewer than 2 clusters (with positive weight); "
                             "cluster-robust errors need many clusters.")
    if kind == "none":
        fac = np.ones(lead)
    elif kind == "ml":
        fac = count / (count - 1.0)
    elif kind == "linear":
        fac = count / (count - 1.0) * (nobs - 1.0) / (nobs - k)
    else:
        fac = np.full(lead, kind)
    fac = jnp.asarray(fac, dtype)
    kernel = _sandwich_kernel(cfg, res.is_batch)
    cov = kernel(estimate_u(res), ctx.data, ctx.weights, jnp.asarray(gid), fac)
    if scale is not None:   # the model fitted rescaled parameters (Nonlinear): map back
        cov = cov * scale[..., :, None] * scale[..., None, :]
    return cov


def robust_stderr(res: Any, **kwargs) -> Any:
    """Square roots of the diagonal of :func:`robust_cov`, with the structure of ``params``."""
    cov = robust_cov(res, **kwargs)
    fres, regression = as_fit(res)
    if regression is not None:
        fres = regression.model.robust_view(regression)[0]
    se = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    tree = unflatten(fres.context.config.problem, se, len(lead_shape(fres)))
    if regression is None:
        return tree
    # The model's own names for the same leaves (Nonlinear's b for the solver's c).
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(regression.params),
                                        jax.tree_util.tree_leaves(tree))


def resolve_cov(res: FitResult, cov: Any, groups: Any, *, source: Any = None,
                 correction: Any = None) -> jax.Array:
    """The covariance ``cov`` names; ``source`` (default ``res``) is the result whose robust
    default applies (a model's RegressionResult around ``res``)."""
    if isinstance(cov, str):
        if cov == "observed":
            if groups is not None or correction is not None:
                raise ValueError("groups= and correction= are used by cov='robust'; pass "
                                 "cov='robust' for (cluster-)robust errors.")
            return res.cov
        if cov == "robust":
            return robust_cov(res if source is None else source, groups=groups,
                              correction=correction)
        raise ValueError(f"cov must be 'observed', 'robust' or a (p, p) matrix; got {cov!r}.")
    c = jnp.asarray(cov)
    p = len(res.param_names)
    if c.shape[-2:] != (p, p):
        raise ValueError(f"cov must be a ({p}, {p}) matrix over res.param_names; got shape "
                         f"{c.shape}.")
    return c
