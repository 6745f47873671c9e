"""Inference on a fit: robust errors, Wald and profile-likelihood intervals, the delta method,
likelihood-ratio tests and the bootstrap, for single fits and batches of fits alike.

Everything here starts from a :class:`~mlejax.FitResult` and its ``context`` (the log-likelihood,
the data, the weights and the static settings of the fit), so it can recompute scores and refit.
Every refit runs the fit's own solver on the one driver loop (``fit._solve_one``), warm-started
at the estimate; many refits (all profile endpoints of all parameters, all bootstrap replicates,
and all of them for every fit of a batch) are one ``vmap``-ed, jit-compiled program, cached per
static configuration so that a second call with same-shaped inputs does not recompile.

The pieces:

* :func:`robust_cov`: the sandwich ``A^-1 B A^-1`` with ``A = -H`` the observed information and
  ``B`` the outer product of the per-observation scores (HC0), or of their cluster sums
  (``groups=``, with the small-sample factor of Stata and statsmodels: ``G/(G-1) (N-1)/(N-k)``
  for a ``mj.fit`` result and the least-squares models, ``G/(G-1)`` for the other
  ``mj.models``). It also takes a model's ``RegressionResult``.
* :func:`confint`: Wald intervals (observed or robust covariance) or profile-likelihood
  intervals: the points where ``2 (loglik_max - loglik_profile) = chi2_1(level)``, found by a
  safeguarded Newton search on the signed root of the profile deviance, each trial point a
  refit of the other parameters.
* :func:`profile`: the profile curve of one parameter on a grid (for plotting).
* :func:`delta`: the delta method for any function of the parameters, by autodiff.
* :func:`lrt`: the likelihood-ratio test between nested fits.
* :func:`bootstrap`: nonparametric (resampled observations or clusters, as weights) or
  parametric (``sample_fn``) refits, with percentile, basic and normal intervals.

Quantiles and p-values are computed in JAX (``jax.scipy.special.ndtri``, ``gammaincc``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mlejax import _validate as V
from mlejax._loop import default_tolerances
from mlejax._numerics import safe_inverse_pd, sym
from mlejax.constraints import Interval, Positive, Real, real
from mlejax.result import FitResult
from mlejax.solvers import METHODS
from mlejax.status import Status

__all__ = [
    "BootstrapResult",
    "ConfidenceIntervals",
    "DeltaResult",
    "EndpointStatus",
    "LRTResult",
    "ProfileCurve",
    "bootstrap",
    "confint",
    "delta",
    "lrt",
    "profile",
    "robust_cov",
]


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------

def _fitmod():
    # The module mlejax.fit (the package attribute ``fit`` is the function), imported lazily:
    # fit.py imports result.py, which imports this module lazily.
    return importlib.import_module("mlejax.fit")


def _as_fit(res: Any) -> tuple[Any, Any]:
    """``(FitResult, regression)``: a model's :class:`~mlejax.models.RegressionResult`
    unwrapped to its core result (``regression`` is then the RegressionResult itself, whose
    model sets the default small-sample correction); anything else as given, with None."""
    # Imported here: mlejax.models imports mlejax.fit, which imports this module lazily.
    from mlejax.models._base import RegressionResult
    if isinstance(res, RegressionResult):
        return res.fit_result, res
    return res, None


def _check_result(res: Any, what: str) -> None:
    if not isinstance(res, FitResult):
        raise ValueError(f"{what} needs a FitResult from mj.fit or mj.fit_batch (or a "
                         f"RegressionResult from a mj.models fit); got {type(res).__name__}.")
    if res.context is None:
        raise ValueError(f"{what} needs the fit's context (res.context is None): pass the "
                         "result returned by mj.fit / mj.fit_batch itself, not one rebuilt "
                         "by hand or passed through a jax transformation.")
    ctx = res.context
    if res.is_batch and ctx.data is None:
        raise ValueError(f"{what}: this batch was streamed from a generator, so its data were "
                         "not kept with the result; fit the datasets from arrays (or memmaps) "
                         "to use inference on them.")
    if ctx.config.has_weights != (ctx.weights is not None):
        raise ValueError(f"{what}: the datasets of this batch were padded into buckets (ragged "
                         "data), so the result does not hold them as one array; fit each "
                         "bucket of equal-length datasets with fit_batch to use inference.")


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level}.")
    return level


def _z(level: float, dtype) -> jax.Array:
    """The two-sided standard normal quantile; its square is the chi2_1 quantile."""
    return jax.scipy.special.ndtri(jnp.asarray(0.5 + 0.5 * level, dtype))


def _lead(res: FitResult) -> tuple[int, ...]:
    return tuple(np.shape(res.loglik))


def _u_hat(res: FitResult) -> jax.Array:
    """The estimate in the solvers' unconstrained coordinates, (p,) or (K, p)."""
    problem = res.context.config.problem
    leaves = jax.tree_util.tree_leaves(res.params)
    if res.is_batch:
        return jax.vmap(lambda *ls: problem.to_u(list(ls)))(*leaves)
    return problem.to_u(leaves)


def _unflatten(problem, flat: jax.Array, n_lead: int) -> Any:
    """Flat natural vectors (leading axes kept) to the structure of the parameters."""
    fn = problem.unravel_natural
    for _ in range(n_lead):
        fn = jax.vmap(fn)
    return fn(flat)


def _one_example(tree, batched: bool):
    return jax.tree_util.tree_map(lambda x: x[0], tree) if batched else tree


def _n_obs(res: FitResult) -> int:
    """Length of the per-observation output of the log-likelihood (one dataset)."""
    cfg = res.context.config
    params0 = _one_example(res.params, res.is_batch)
    data0 = _one_example(res.context.data, res.is_batch)
    return int(jax.eval_shape(cfg.loglik_fn, params0, data0).shape[0])


def _need_per_obs(res: FitResult, what: str) -> None:
    if not res.context.config.per_obs:
        raise ValueError(f"{what} needs a per-observation log-likelihood: loglik_fn returns a "
                         "scalar total, so there are no per-observation terms. Return the vector "
                         "of terms instead (drop the final jnp.sum); mlejax sums it.")


def _refit_config(cfg, *, method: str | None, max_steps: int | None, **changes):
    """The fit's static settings adapted to refits: one start, no batch axis, a short trace.

    Refits use the fit's own method and tolerances. A stochastic (minibatch) fit is refitted
    with full-data L-BFGS, since an accurate maximum is needed. A different ``method`` gets
    the defaults ``mj.fit`` would give it.
    """
    fitmod = _fitmod()
    if method is None:
        method = cfg.method if cfg.batch_size is None else "lbfgs"
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; choose one of {METHODS}.")
    # A refit is warm-started at the estimate: no annealing path away from it. Refits of a
    # fit sharded over devices (fit(devices=...)) run as one program on the data where it
    # lies: XLA partitions them.
    new = dict(restarts=None, init_fn=None, batched=False, init_batched=False, batch_size=None,
               trace_len=1, anneal=None, obs_devices=None)
    if method != cfg.method or cfg.batch_size is not None:
        dtype = cfg.problem.dtype
        eps = float(jnp.finfo(dtype).eps)
        gtol, ftol = default_tolerances(dtype)
        if method == "newton":
            gtol = eps ** 0.75
        if method == "gradient":
            gtol = ftol = eps ** 0.5
        new.update(method=method, gtol=float(gtol), ftol=float(ftol),
                   max_steps=fitmod._DEFAULT_MAX_STEPS[method],
                   optimizer=cfg.optimizer if method == "gradient" else None)
    if max_steps is not None:
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive integer; got {max_steps}.")
        new["max_steps"] = int(max_steps)
    new.update(changes)
    return dataclasses.replace(cfg, **new)


def _refit_ok(status: jax.Array) -> jax.Array:
    # A refit whose own Hessian is singular (a nuisance parameter not identified at that
    # point) still found the maximum of the profile: its log-likelihood is usable.
    # Likewise a refit whose Hessian has non-finite entries (NONFINITE_HESSIAN): its
    # gradient test found the maximum; only its standard errors are missing. And a refit
    # whose nuisance parameter runs to the boundary of its constraint (NOT_ATTAINED: e.g. a
    # zero-inflation probability going to 0 when lambda is held low) has reached the supremum
    # the profile is defined by: its log-likelihood is the profile's value there.
    return ((status == Status.CONVERGED) | (status == Status.SINGULAR_HESSIAN)
            | (status == Status.NONFINITE_HESSIAN) | (status == Status.NOT_ATTAINED))


# ---------------------------------------------------------------------------------------------
# Robust (sandwich) covariance
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _sandwich_kernel(cfg, batched: bool):
    problem = cfg.problem
    fitmod = _fitmod()

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
        fn = fitmod._objective(cfg, data, weights)
        bread, _ = safe_inverse_pd(-sym(jax.hessian(fn)(u_hat)))
        cov_u = factor * (bread @ meat @ bread)
        jac = jax.jacfwd(problem.natural_flat)(u_hat)
        return sym(jac @ cov_u @ jac.T)

    if not batched:
        return jax.jit(one)
    in_axes = (0, 0, 0 if cfg.has_weights else None, 0, 0)
    return jax.jit(jax.vmap(one, in_axes=in_axes))


def _group_ids(groups, n: int, weights, lead: tuple[int, ...]):
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
    res, regression = _as_fit(res)
    scale = None
    if regression is not None:
        res, scale = regression.model.robust_view(regression)
    _check_result(res, "robust_cov")
    _need_per_obs(res, "robust_cov (sandwich errors)")
    ctx = res.context
    cfg = ctx.config
    lead = _lead(res)
    if res.is_batch and len(lead) != 1:
        raise ValueError("robust_cov handles a single fit or one batch axis; got result "
                         f"arrays with leading shape {lead}.")
    n = _n_obs(res)
    dtype = cfg.problem.dtype
    nobs = np.broadcast_to(np.asarray(res.nobs, dtype=np.float64), lead)
    kind = _correction_kind(correction, groups is not None, regression)
    k = float(res.df_model if regression is None else regression.model.robust_k(res))
    if groups is None:
        gid = np.broadcast_to(np.arange(n, dtype=np.int32), lead + (n,))
        count = nobs
    else:
        gid, count, _ = _group_ids(groups, n, ctx.weights, lead)
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
    cov = kernel(_u_hat(res), ctx.data, ctx.weights, jnp.asarray(gid), fac)
    if scale is not None:   # the model fitted rescaled parameters (Nonlinear): map back
        cov = cov * scale[..., :, None] * scale[..., None, :]
    return cov


def robust_stderr(res: Any, **kwargs) -> Any:
    """Square roots of the diagonal of :func:`robust_cov`, with the structure of ``params``."""
    cov = robust_cov(res, **kwargs)
    fres, regression = _as_fit(res)
    if regression is not None:
        fres = regression.model.robust_view(regression)[0]
    se = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    tree = _unflatten(fres.context.config.problem, se, len(_lead(fres)))
    if regression is None:
        return tree
    # The model's own names for the same leaves (Nonlinear's b for the solver's c).
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(regression.params),
                                        jax.tree_util.tree_leaves(tree))


# ---------------------------------------------------------------------------------------------
# Confidence intervals (Wald and profile) and their result
# ---------------------------------------------------------------------------------------------

class EndpointStatus(enum.IntEnum):
    """How an interval endpoint was found (one code per endpoint).

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> ci = res.confint(0.95)
      >>> [mj.EndpointStatus(int(c)).name for c in ci.status[1]]   # sigma: (lower, upper)
      ['FOUND', 'FOUND']
    """

    FOUND = 0              # the endpoint solves the interval equation (Wald: always)
    AT_BOUND = 1           # one-sided: the profile stays within the threshold up to the
                           # constraint's bound, which is reported as the endpoint
    UNBOUNDED = 2          # the profile stays within the threshold as far as searched on a
                           # side with no bound: +-inf reported (a flat, weakly identified profile)
    REFIT_FAILED = 3       # a refit of the other parameters did not converge
    MAX_ITER = 4           # the search ran out of iterations
    FIT_NOT_CONVERGED = 5  # the fit itself did not converge (or its Hessian is singular)
    NOT_PROFILED = 6       # not requested, or the parameter's constraint is not elementwise


_ENDPOINT_TEXT = {
    EndpointStatus.FOUND: "",
    EndpointStatus.AT_BOUND: "at bound",
    EndpointStatus.UNBOUNDED: "unbounded",
    EndpointStatus.REFIT_FAILED: "refit failed",
    EndpointStatus.MAX_ITER: "max iter",
    EndpointStatus.FIT_NOT_CONVERGED: "fit not converged",
    EndpointStatus.NOT_PROFILED: "not profiled",
}


@dataclasses.dataclass(frozen=True)
class ConfidenceIntervals:
    """Confidence intervals for every flattened parameter (in ``param_names`` order).

    Attributes:
      lower, upper: endpoints, ``(p,)`` or ``(K, p)`` for a batch.
      estimate: the point estimate (flattened), same shape.
      status: :class:`EndpointStatus` codes, ``(..., p, 2)`` for (lower, upper). ``AT_BOUND``
        marks a one-sided interval: the endpoint is the constraint's bound.
      level, method, param_names: what was computed.

    ``np.asarray(ci)`` gives the ``(..., p, 2)`` array of endpoints; ``ci["sigma"]`` the pair
    for one parameter.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> ci = res.confint(0.95)                        # Wald; method="profile" also
      >>> np.asarray(ci).round(4).tolist()              # (parameter, (lower, upper))
      [[0.8918, 1.6832], [0.2912, 0.8509]]
      >>> print(ci)
      95% wald confidence intervals
      parameter     estimate        lower        upper  note
      mu              1.2875     0.891792      1.68321
      sigma         0.571046     0.291239     0.850854
    """

    lower: jax.Array
    upper: jax.Array
    estimate: jax.Array
    status: jax.Array
    level: float = 0.95
    method: str = "wald"
    param_names: tuple[str, ...] = ()

    @property
    def one_sided(self) -> jax.Array:
        """True per (parameter, side) where the endpoint is a constraint's bound."""
        return self.status == EndpointStatus.AT_BOUND

    @property
    def ok(self) -> jax.Array:
        """True per (parameter, side) where the endpoint is usable (found or at a bound)."""
        return ((self.status == EndpointStatus.FOUND) | (self.status == EndpointStatus.AT_BOUND)
                | (self.status == EndpointStatus.UNBOUNDED))

    def __array__(self, dtype=None, copy=None):
        out = np.stack([np.asarray(self.lower), np.asarray(self.upper)], axis=-1)
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, name: str) -> tuple[jax.Array, jax.Array]:
        if name not in self.param_names:
            raise KeyError(f"{name!r} is not a parameter; parameters: {self.param_names}")
        i = self.param_names.index(name)
        return self.lower[..., i], self.upper[..., i]

    def __repr__(self) -> str:
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        if lo.ndim > 1:
            return (f"ConfidenceIntervals(batch of {lo.shape[0]}, level={self.level}, "
                    f"method={self.method!r})")
        est, st = np.asarray(self.estimate), np.asarray(self.status)
        w = max([len(n) for n in self.param_names] + [9])
        lines = [f"{self.level:.0%} {self.method} confidence intervals",
                 f"{'parameter':<{w}} {'estimate':>12} {'lower':>12} {'upper':>12}  note"]
        for i, name in enumerate(self.param_names):
            notes = [f"{side}: {_ENDPOINT_TEXT[EndpointStatus(int(c))]}"
                     for side, c in zip(("lower", "upper"), st[i]) if int(c) != 0]
            lines.append(f"{name:<{w}} {est[i]:>12.6g} {lo[i]:>12.6g} {hi[i]:>12.6g}  "
                         + "; ".join(notes))
        return "\n".join(lines)


jax.tree_util.register_dataclass(ConfidenceIntervals,
                                 data_fields=["lower", "upper", "estimate", "status"],
                                 meta_fields=["level", "method", "param_names"])


def _resolve_cov(res: FitResult, cov: Any, groups: Any, *, source: Any = None,
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


def _wald(res: FitResult, level: float, cov: Any, groups: Any, source: Any = None,
          correction: Any = None) -> ConfidenceIntervals:
    c = _resolve_cov(res, cov, groups, source=source, correction=correction)
    est = jnp.asarray(res.flat_params())
    se = jnp.sqrt(jnp.diagonal(c, axis1=-2, axis2=-1))
    z = _z(level, est.dtype)
    status = jnp.zeros(est.shape + (2,), jnp.int32)
    return ConfidenceIntervals(est - z * se, est + z * se, est, status, level, "wald",
                               res.param_names)


# --- which parameters can be profiled -----------------------------------------------------------

class _Slot(NamedTuple):
    nat: int            # index in the flattened natural parameters
    u: int              # index in the unconstrained vector
    bounded_lo: bool    # the constraint has a finite lower bound
    bounded_hi: bool


def _slots(problem) -> tuple[list[_Slot | None], list[str]]:
    """For each flattened natural parameter: where it sits in ``u``, or None (and why)."""
    slots: list[_Slot | None] = []
    why: list[str] = []
    u_off = 0
    for c, ushape, nshape in zip(problem.constraints, problem.u_shapes, problem.nat_shapes):
        size = int(np.prod(nshape))
        usize = int(np.prod(ushape))
        elementwise = isinstance(c, (Real, Positive, Interval)) and tuple(ushape) == tuple(nshape)
        for k in range(size):
            if elementwise:
                slots.append(_Slot(len(slots), u_off + k, not isinstance(c, Real),
                                   isinstance(c, Interval)))
                why.append("")
            else:
                slots.append(None)
                why.append(f"constraint {c.name} is not elementwise")
        u_off += usize
    return slots, why


def _select(res: FitResult, which: Any, what: str) -> list[int]:
    """Flat natural indices named by ``which`` (flat names or whole leaves)."""
    names = res.param_names
    slots, why = _slots(res.context.config.problem)
    if which is None:
        return [i for i, s in enumerate(slots) if s is not None]
    if isinstance(which, str):
        which = [which]
    out = []
    for w in which:
        hits = [i for i, n in enumerate(names) if n == w or n.startswith(f"{w}[")]
        if not hits:
            raise ValueError(f"{what}: {w!r} is not a parameter; parameters: {names}.")
        for i in hits:
            if slots[i] is None:
                raise ValueError(f"{what}: {names[i]} cannot be profiled ({why[i]}): a profile "
                                 "fixes one natural value, which a simplex or matrix "
                                 "constraint does not allow. Use method='wald', the delta "
                                 "method or the bootstrap for it.")
            if i not in out:
                out.append(i)
    return out


# --- the reduced problem: every parameter but one -----------------------------------------------

def _insert(v: jax.Array, j: jax.Array, x: jax.Array) -> jax.Array:
    """``v`` with ``x`` inserted at (traced) position ``j``."""
    p = v.shape[0] + 1
    if p == 1:
        return jnp.reshape(x, (1,)).astype(v.dtype)
    k = jnp.arange(p)
    src = jnp.clip(k - (k > j), 0, p - 2)
    return jnp.where(k == j, x.astype(v.dtype), v[src])


def _drop(u: jax.Array, j: jax.Array) -> jax.Array:
    """``u`` without its (traced) position ``j``."""
    m = jnp.arange(u.shape[0] - 1)
    return u[m + (m >= j)]


@dataclasses.dataclass(frozen=True)
class _FixedOne:
    """The log-likelihood of the other parameters with unconstrained coordinate ``j`` fixed.

    ``j`` and its value ``uj`` travel in the data, so one compiled refit serves every
    parameter and every trial value (and vmaps over them); hashable, so programs are cached.
    """

    loglik_fn: Callable
    problem: Any

    def __call__(self, v, d):
        return self.loglik_fn(self.problem.to_natural(_insert(v, d["j"], d["uj"])), d["data"])


def _reduced_config(cfg, method, max_steps):
    """Static settings of a refit over all unconstrained coordinates but one (None if p = 1)."""
    problem = cfg.problem
    if cfg.penalty is not None:
        raise ValueError(f"profile likelihood of a penalised fit ({cfg.penalty!r}): the "
                         "chi-squared calibration of likelihood-ratio intervals does not hold "
                         "for a penalised objective. Use Wald intervals (labelled as from the "
                         "penalised Hessian) or mj.bootstrap.")
    p = problem.n_free
    if p == 1:
        return None
    fitmod = _fitmod()
    example = jnp.zeros((p - 1,), problem.dtype)
    reduced = fitmod._make_problem([example], jax.tree_util.tree_structure(example), [real],
                                   ["nuisance"], problem.dtype)
    # The refits' data carry the fixed coordinate beside the observations, so they are not
    # chunked by observation (obs_chunk): each refit evaluates the whole data at once.
    return _refit_config(cfg, method=method, max_steps=max_steps,
                         loglik_fn=_FixedOne(cfg.loglik_fn, problem), problem=reduced,
                         obs_chunk=None)


def _refitter(cfg, cfg_r, data, weights):
    """``refit(j, uj, v0) -> (loglik, dloglik/du_j, v, status)``, warm-started at ``v0``."""
    fitmod = _fitmod()
    fn_full = fitmod._objective(cfg, data, weights)
    grad_full = jax.grad(fn_full)
    key = jax.random.key(0)

    def refit(j, uj, v0):
        if cfg_r is None:
            u = _insert(v0, j, uj)
            ll, v, status = fn_full(u), v0, jnp.int32(Status.CONVERGED)
        else:
            r = fitmod._solve_one(cfg_r, v0, {"data": data, "j": j, "uj": uj}, weights, key)
            ll, v, status = r.loglik, r.params, r.status
            u = _insert(v, j, uj)
        # Envelope theorem: d loglik_profile / d u_j is the partial derivative at the refit.
        return ll, grad_full(u)[j], v, status

    return refit


def _information(cfg, u_hat, data, weights):
    """Covariance of the estimate in unconstrained coordinates (NaN if singular)."""
    fn = _fitmod()._objective(cfg, data, weights)
    cov_u, _ = safe_inverse_pd(-sym(jax.hessian(fn)(u_hat)))
    return cov_u


# --- the endpoint search -------------------------------------------------------------------------

class _Search(NamedTuple):
    t_lo: jax.Array   # largest distance (from the estimate, in u_j) with deviance < q
    r_lo: jax.Array   # signed root sqrt(deviance) there
    d_lo: jax.Array   # its derivative in t
    v_lo: jax.Array   # the other coordinates at the refit there
    t_hi: jax.Array   # smallest distance with deviance >= q (inf until bracketed)
    r_hi: jax.Array
    d_hi: jax.Array
    v_hi: jax.Array
    t_last: jax.Array
    r_last: jax.Array
    d_last: jax.Array
    it: jax.Array
    code: jax.Array


_RUNNING = -1


@functools.lru_cache(maxsize=64)
def _endpoint_kernel(cfg, method, max_steps, max_iter: int, batched: bool):
    """Jitted: every (parameter, side) endpoint search as one vmapped program."""
    problem = cfg.problem
    cfg_r = _reduced_config(cfg, method, max_steps)
    # Which unconstrained coordinates are log- or logit-scale (a bound on either side).
    slots, _ = _slots(problem)
    bt = np.zeros(problem.n_free, bool)
    for sl in slots:
        if sl is not None:
            bt[sl.u] = sl.bounded_lo or sl.bounded_hi

    def one_fit(u_hat, ll_max, fit_status, data, weights, js_u, js_nat, sides, bounded, active,
                z):
        refit = _refitter(cfg, cfg_r, data, weights)
        cov_u = _information(cfg, u_hat, data, weights)
        dtype = u_hat.dtype
        q = z * z
        eps = jnp.finfo(dtype).eps
        atol = jnp.maximum(1e-9 * q, 64.0 * eps * jnp.maximum(jnp.abs(ll_max), 1.0))
        fit_ok = (fit_status == Status.CONVERGED)

        def lane(j, j_nat, s, has_bound, on):
            se = jnp.sqrt(cov_u[j, j])
            # d v / d u_j along the profile, to first order: the warm starts' direction.
            slope = _drop(cov_u[:, j] / cov_u[j, j], j)
            slope = jnp.where(jnp.isfinite(slope), slope, 0.0)
            v_hat = _drop(u_hat, j)
            t0 = z * se
            # The furthest distance searched: log-scale sides (positive, interval) need ~40
            # units to reach the bound to double precision; a real side many Wald widths.
            t_max = jnp.maximum(40.0, jnp.where(jnp.asarray(bt)[j], 4.0, 1e4) * t0)
            inf = jnp.asarray(jnp.inf, dtype)
            nan = jnp.asarray(jnp.nan, dtype)
            zero = jnp.zeros((), dtype)
            start_ok = fit_ok & jnp.isfinite(se) & (se > 0)
            code0 = jnp.where(~on, jnp.int32(EndpointStatus.NOT_PROFILED),
                              jnp.where(start_ok, jnp.int32(_RUNNING),
                                        jnp.int32(EndpointStatus.FIT_NOT_CONVERGED)))
            init = _Search(zero, zero, 1.0 / se, v_hat, inf, inf, nan, v_hat, zero, zero, 1.0 / se,
                           jnp.int32(0), code0)

            def cond(st: _Search):
                return st.code == _RUNNING

            def body(st: _Search):
                bracketed = jnp.isfinite(st.t_hi)
                t_newton = st.t_last + (z - st.r_last) / st.d_last
                newton_ok = jnp.isfinite(t_newton) & (st.d_last > 0)
                # Before a bracket: Newton's step, at most quadrupling the distance.
                grow = jnp.minimum(jnp.maximum(4.0 * st.t_lo, 2.0 * t0), t_max)
                t_open = jnp.where(newton_ok, jnp.clip(t_newton, st.t_lo, grow), grow)
                # Inside a bracket: Newton if it stays inside, else the secant, else bisection.
                width = st.t_hi - st.t_lo
                inside = newton_ok & (t_newton > st.t_lo) & (t_newton < st.t_hi)
                t_sec = st.t_lo + (z - st.r_lo) * width / (st.r_hi - st.r_lo)
                sec_ok = (jnp.isfinite(t_sec) & (t_sec > st.t_lo + 0.01 * width)
                          & (t_sec < st.t_hi - 0.01 * width))
                t_closed = jnp.where(inside, t_newton,
                                     jnp.where(sec_ok, t_sec, st.t_lo + 0.5 * width))
                t = jnp.where(bracketed, t_closed, t_open)

                # Warm start from the nearer evaluated side, moved along the first-order path.
                from_hi = bracketed & (st.t_hi - t < t - st.t_lo)
                t_from = jnp.where(from_hi, st.t_hi, st.t_lo)
                v_from = jnp.where(from_hi, st.v_hi, st.v_lo)
                v0 = v_from + slope * (s * (t - t_from))
                ll, g, v, rstatus = refit(j, u_hat[j] + s * t, v0)

                dev = 2.0 * (ll_max - ll)
                finite = jnp.isfinite(ll)
                # A non-finite profile (outside the support) counts as above the threshold.
                r = jnp.where(finite, jnp.sqrt(jnp.maximum(dev, 0.0)), inf)
                d = jnp.where(finite & (r > 0), -s * g / r, nan)
                failed = finite & ~_refit_ok(rstatus)
                above = r >= z
                n_lo = jnp.where(above, st.t_lo, t)
                n_hi = jnp.where(above, t, st.t_hi)
                new = _Search(
                    n_lo, jnp.where(above, st.r_lo, r), jnp.where(above, st.d_lo, d),
                    jnp.where(above, st.v_lo, v),
                    n_hi, jnp.where(above, r, st.r_hi), jnp.where(above, d, st.d_hi),
                    jnp.where(above, v, st.v_hi),
                    t, r, d, st.it + 1, st.code)
                converged = (finite & (jnp.abs(dev - q) <= atol)) | (
                    jnp.isfinite(n_hi) & (n_hi - n_lo <= 4.0 * eps * (1.0 + jnp.abs(u_hat[j]) + t)))
                open_end = ~jnp.isfinite(n_hi) & (t >= t_max)
                code = jnp.where(
                    failed, jnp.int32(EndpointStatus.REFIT_FAILED),
                    jnp.where(converged, jnp.int32(EndpointStatus.FOUND),
                              jnp.where(open_end,
                                        jnp.where(has_bound, jnp.int32(EndpointStatus.AT_BOUND),
                                                  jnp.int32(EndpointStatus.UNBOUNDED)),
                                        jnp.where(new.it >= max_iter,
                                                  jnp.int32(EndpointStatus.MAX_ITER),
                                                  jnp.int32(_RUNNING)))))
                return new._replace(code=code)

            out = jax.lax.while_loop(cond, body, init)
            # A last Newton correction from the final point (quadratic: it gains digits).
            t_fix = out.t_last + (z - out.r_last) / out.d_last
            good = jnp.isfinite(t_fix) & (t_fix >= out.t_lo) & (t_fix <= out.t_hi)
            t_end = jnp.where(good, t_fix, out.t_last)
            u_end = jnp.where(out.code == EndpointStatus.FOUND, u_hat[j] + s * t_end,
                              jnp.where((out.code == EndpointStatus.AT_BOUND)
                                        | (out.code == EndpointStatus.UNBOUNDED), s * inf, nan))
            x_end = problem.natural_flat(u_hat.at[j].set(u_end))[j_nat]
            return x_end, out.code, out.it

        return jax.vmap(lane)(js_u, js_nat, sides, bounded, active)

    if not batched:
        return jax.jit(one_fit)
    w_ax = 0 if cfg.has_weights else None
    return jax.jit(jax.vmap(one_fit, in_axes=(0, 0, 0, 0, w_ax) + (None,) * 6))


def _profile_ci(res: FitResult, level: float, which: Any, method: str | None,
                max_steps: int | None, max_iter: int) -> ConfidenceIntervals:
    ctx = res.context
    cfg = ctx.config
    problem = cfg.problem
    idx = _select(res, which, "confint(method='profile')")
    slots, _ = _slots(problem)
    # One lane per side of every profilable parameter, whichever are asked for (the others
    # are switched off), so that one compiled program serves every choice of ``which``.
    every = [i for i, sl in enumerate(slots) if sl is not None]
    js_u, js_nat, sides, bounded, active = [], [], [], [], []
    for i in every:
        sl = slots[i]
        for s, b in ((-1.0, sl.bounded_lo), (1.0, sl.bounded_hi)):
            js_u.append(sl.u)
            js_nat.append(sl.nat)
            sides.append(s)
            bounded.append(b)
            active.append(i in idx)
    est = jnp.asarray(res.flat_params())
    lead = _lead(res)
    p = len(res.param_names)
    dtype = problem.dtype
    lower = jnp.full(lead + (p,), jnp.nan, dtype)
    upper = jnp.full(lead + (p,), jnp.nan, dtype)
    status = jnp.full(lead + (p, 2), int(EndpointStatus.NOT_PROFILED), jnp.int32)
    if idx:
        kernel = _endpoint_kernel(cfg, method, max_steps, int(max_iter), res.is_batch)
        x, code, _ = kernel(_u_hat(res), res.loglik, res.status, ctx.data, ctx.weights,
                            jnp.asarray(js_u, jnp.int32), jnp.asarray(js_nat, jnp.int32),
                            jnp.asarray(sides, dtype), jnp.asarray(bounded),
                            jnp.asarray(active), _z(level, dtype))
        pos = jnp.asarray(every)
        lower = lower.at[..., pos].set(x[..., 0::2])
        upper = upper.at[..., pos].set(x[..., 1::2])
        status = status.at[..., pos, 0].set(code[..., 0::2])
        status = status.at[..., pos, 1].set(code[..., 1::2])
    return ConfidenceIntervals(lower, upper, est, status, level, "profile", res.param_names)


def confint(res: Any, level: float = 0.95, *, method: str = "wald", which: Any = None,
            cov: Any = "observed", groups: Any = None, correction: Any = None,
            refit_method: str | None = None, max_steps: int | None = None,
            max_iter: int = 60) -> ConfidenceIntervals:
    """Confidence intervals for every parameter: Wald, or profile likelihood.

    Wald: ``estimate +- z_(1+level)/2 * stderr`` from ``cov`` (the observed information by
    default; ``cov="robust"`` for the sandwich, with ``groups=`` for clusters).

    Profile likelihood: the set ``{theta_j : 2 (loglik_max - loglik_profile(theta_j)) <= q}``
    with ``q`` the chi-squared(1) quantile at ``level`` and ``loglik_profile`` the log-likelihood
    maximised over the other parameters. Each endpoint is found by a safeguarded Newton search
    on the signed root ``r(t) = sqrt(2 (loglik_max - loglik_profile))``, nearly linear in the
    distance ``t`` from the estimate in the solver's coordinates, with derivative
    ``-dloglik/du_j / r`` (the envelope theorem); every trial point refits the other parameters,
    warm-started along the first-order path ``cov[:, j] / cov[j, j]``. All endpoints of all
    parameters (and of every fit in a batch) are one vmapped program. The search follows the
    constraints: where the profile stays within the threshold up to a constraint's bound, the
    interval is one-sided; the bound is reported with status ``AT_BOUND``.

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch``, or a model's
        :class:`~mlejax.models.RegressionResult`.
      level: the confidence level, in (0, 1).
      method: ``"wald"`` or ``"profile"``.
      which: profile only: parameter names (flat, e.g. ``"beta[1]"``, or whole leaves, e.g.
        ``"beta"``); default every parameter whose constraint is elementwise (real, positive,
        interval); the others are NaN with status ``NOT_PROFILED``.
      cov, groups, correction: Wald only: the covariance (``"observed"``, ``"robust"`` or a
        matrix); for ``"robust"``, the clusters and small-sample factor of :func:`robust_cov`
        (its default: the model's convention for a RegressionResult).
      refit_method: the solver for the profile refits (default the fit's own).
      max_steps: step limit of each refit (default the fit's).
      max_iter: trial points per endpoint.

    Returns:
      :class:`ConfidenceIntervals` (leading ``K`` axis for a batch).

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> lo, hi = mj.confint(res, 0.95, method="profile")["sigma"]
      >>> round(float(lo), 4), round(float(hi), 4)      # Wald: (0.2912, 0.8509)
      (0.3747, 1.0249)
    """
    source = res
    res, regression = _as_fit(res)
    if regression is None or method != "wald":
        # A model's Wald intervals need only its estimate and a covariance (robust_cov
        # checks the fit it takes the scores from).
        _check_result(res, "confint")
    level = _check_level(level)
    if method == "wald":
        if which is not None:
            raise ValueError("which= selects the parameters to profile; Wald intervals are "
                             "computed for every parameter at once.")
        return _wald(res, level, cov, groups, source, correction)
    if method == "profile":
        if not (isinstance(cov, str) and cov == "observed") or groups is not None \
                or correction is not None:
            raise ValueError("cov=, groups= and correction= apply to Wald intervals; a "
                             "profile interval uses the likelihood itself.")
        if res.is_batch and len(_lead(res)) != 1:
            raise ValueError(f"profile intervals handle one batch axis; got {_lead(res)}.")
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be a positive integer; got {max_iter}.")
        return _profile_ci(res, level, which, refit_method, max_steps, max_iter)
    raise ValueError(f"method must be 'wald' or 'profile'; got {method!r}.")


# --- the profile curve ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProfileCurve:
    """The profile log-likelihood of one parameter on a grid.

    Attributes:
      name: the parameter.
      grid: its fixed values, ``(G,)``.
      loglik: the profile log-likelihood at each, ``(..., G)``.
      deviance: ``2 (loglik_max - loglik)``, ``(..., G)``: compare with ``threshold(level)``.
      status: the refit's :class:`~mlejax.Status` per point.
      params: every parameter at each point (the refitted others), leading ``(..., G)``.
      estimate: the parameter's estimate, ``loglik_max`` the maximised log-likelihood.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> curve = mj.profile(res, "mu", jnp.linspace(0.8, 1.8, 5))
      >>> curve.deviance.shape, round(mj.ProfileCurve.threshold(0.95), 4)
      ((5,), 3.8415)
      >>> [round(float(v), 3) for v in curve.signed_root]   # a straight line if Wald is good
      [-2.093, -1.13, 0.062, 1.238, 2.174]
    """

    grid: jax.Array
    loglik: jax.Array
    deviance: jax.Array
    status: jax.Array
    params: Any
    estimate: jax.Array
    loglik_max: jax.Array
    name: str = ""

    @property
    def signed_root(self) -> jax.Array:
        """``sign(grid - estimate) sqrt(deviance)``: close to a straight line when Wald is good."""
        return jnp.sign(self.grid - self.estimate[..., None]) * jnp.sqrt(
            jnp.maximum(self.deviance, 0.0))

    @staticmethod
    def threshold(level: float = 0.95) -> float:
        """The chi-squared(1) quantile at ``level``: the deviance at the interval's endpoints."""
        # Host-side: the double-precision normal quantile the summary tables use.
        from mlejax._numerics import normal_quantile
        return normal_quantile(_check_level(level)) ** 2


jax.tree_util.register_dataclass(
    ProfileCurve, data_fields=["grid", "loglik", "deviance", "status", "params", "estimate",
                               "loglik_max"], meta_fields=["name"])


@functools.lru_cache(maxsize=64)
def _curve_kernel(cfg, method, max_steps, batched: bool):
    problem = cfg.problem
    cfg_r = _reduced_config(cfg, method, max_steps)

    def one_fit(u_hat, data, weights, j, grid_u):
        refit = _refitter(cfg, cfg_r, data, weights)
        cov_u = _information(cfg, u_hat, data, weights)
        slope = _drop(cov_u[:, j] / cov_u[j, j], j)
        slope = jnp.where(jnp.isfinite(slope), slope, 0.0)
        v_hat = _drop(u_hat, j)

        def point(uj):
            ll, _, v, status = refit(j, uj, v_hat + slope * (uj - u_hat[j]))
            return ll, status, problem.to_natural(_insert(v, j, uj))

        return jax.vmap(point)(grid_u)

    if not batched:
        return jax.jit(one_fit)
    w_ax = 0 if cfg.has_weights else None
    return jax.jit(jax.vmap(one_fit, in_axes=(0, 0, w_ax, None, None)))


def profile(res: FitResult, name: str, grid: Any, *, refit_method: str | None = None,
            max_steps: int | None = None) -> ProfileCurve:
    """The profile log-likelihood of parameter ``name`` at the values in ``grid``.

    At each grid value the other parameters are refitted (vmapped over the grid, each
    warm-started at the estimate moved along the first-order path), giving the curve
    ``loglik_profile(theta_j)`` and its deviance ``2 (loglik_max - loglik_profile)``, whose
    crossings of ``ProfileCurve.threshold(level)`` are the profile interval's endpoints.

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch`` (the grid is shared by a batch).
      name: a flattened parameter name from ``res.param_names`` (e.g. ``"sigma"``, ``"beta[2]"``).
      grid: values of that parameter on its natural scale, inside its constraint.
      refit_method, max_steps: solver and step limit of the refits (default the fit's).

    Returns:
      :class:`ProfileCurve`.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> curve = mj.profile(res, "mu", jnp.linspace(0.8, 1.8, 5))   # sigma refitted
      >>> [round(float(v), 3) for v in curve.deviance]  # = n log(1 + (mu - mean)^2 / var)
      [4.379, 1.276, 0.004, 1.534, 4.727]
      >>> [round(float(s), 4) for s in curve.params["sigma"]]
      [0.7508, 0.6185, 0.5712, 0.6285, 0.7673]
    """
    _check_result(res, "profile")
    if not isinstance(name, str) or name not in res.param_names:
        raise ValueError(f"profile: name must be one of res.param_names {res.param_names}; "
                         f"got {name!r}.")
    i = res.param_names.index(name)
    ctx = res.context
    cfg = ctx.config
    problem = cfg.problem
    slots, why = _slots(problem)
    if slots[i] is None:
        raise ValueError(f"profile: {name} cannot be profiled ({why[i]}); profile a parameter "
                         "with a real, positive or interval constraint.")
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"grid must be a non-empty 1-D array of values of {name}; got shape "
                         f"{g.shape}.")
    # The grid's constraint: the leaf this flat index belongs to.
    leaf_of = []
    for c, nshape in zip(problem.constraints, problem.nat_shapes):
        leaf_of += [c] * int(np.prod(nshape))
    con = leaf_of[i]
    bad = con.check(g)
    if bad is not None or not np.all(np.isfinite(g)):
        raise ValueError(f"grid values of {name} {bad or 'must be finite'}; got {g}.")
    grid_j = jnp.asarray(g, problem.dtype)
    grid_u = con.inverse(grid_j)
    if res.is_batch and len(_lead(res)) != 1:
        raise ValueError(f"profile handles one batch axis; got {_lead(res)}.")
    kernel = _curve_kernel(cfg, refit_method, max_steps, res.is_batch)
    ll, status, params = kernel(_u_hat(res), ctx.data, ctx.weights, jnp.int32(slots[i].u), grid_u)
    ll_max = jnp.asarray(res.loglik)
    dev = 2.0 * (ll_max[..., None] - ll)
    est = jnp.asarray(res.flat_params())[..., i]
    return ProfileCurve(grid_j, ll, dev, status, params, est, ll_max, name)


# ---------------------------------------------------------------------------------------------
# Delta method
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DeltaResult:
    """A function of the parameters, its delta-method standard error and covariance.

    Attributes:
      estimate: ``fn(params)``, with the structure ``fn`` returns.
      stderr: standard errors, same structure.
      cov: ``(m, m)`` covariance of the ``m`` flattened outputs (``(K, m, m)`` for a batch).
      jacobian: ``(m, p)`` derivative of the outputs with respect to the flattened parameters.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> d = res.delta(lambda p: {"cv": p["sigma"] / p["mu"], "var": p["sigma"] ** 2})
      >>> round(float(d.estimate["var"]), 4), round(float(d.stderr["var"]), 4)
      (0.3261, 0.163)
      >>> d.cov.shape, d.jacobian.shape
      ((2, 2), (2, 2))
    """

    estimate: Any
    stderr: Any
    cov: jax.Array
    jacobian: jax.Array

    def confint(self, level: float = 0.95) -> tuple[Any, Any]:
        """Wald interval ``estimate +- z stderr`` (lower, upper), with ``fn``'s structure."""
        level = _check_level(level)

        def z_of(x):
            return _z(level, jnp.result_type(x))

        lo = jax.tree_util.tree_map(lambda e, s: e - z_of(e) * s, self.estimate, self.stderr)
        hi = jax.tree_util.tree_map(lambda e, s: e + z_of(e) * s, self.estimate, self.stderr)
        return lo, hi

    @property
    def z(self) -> Any:
        """Wald statistics ``estimate / stderr``."""
        return jax.tree_util.tree_map(lambda e, s: e / s, self.estimate, self.stderr)

    @property
    def pvalue(self) -> Any:
        """Two-sided p-values of the Wald statistics against zero."""
        return jax.tree_util.tree_map(
            lambda t: 2.0 * jax.scipy.special.ndtr(-jnp.abs(t)), self.z)


jax.tree_util.register_dataclass(DeltaResult,
                                 data_fields=["estimate", "stderr", "cov", "jacobian"],
                                 meta_fields=[])


def _delta_one(problem, fn, flat, cov):
    def flat_fn(x):
        return ravel_pytree(fn(problem.unravel_natural(x)))[0]

    out = fn(problem.unravel_natural(flat))
    vec, unravel = ravel_pytree(out)
    jac = jax.jacfwd(flat_fn)(flat).reshape(vec.shape[0], flat.shape[0])
    c = sym(jac @ cov @ jac.T)
    se = unravel(jnp.sqrt(jnp.diagonal(c)))
    return DeltaResult(out, se, c, jac)


def delta(res: FitResult, fn: Callable, *, cov: Any = "observed",
          groups: Any = None) -> DeltaResult:
    """The delta method: the estimate and standard error of any function of the parameters.

    For ``g = fn(params)`` (a scalar, an array or a pytree of them), with ``J = dg/dtheta`` by
    autodiff at the estimate, ``cov(g) = J cov(theta) J^T``.

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch`` (``fn`` is applied to each fit).
      fn: a JAX function of the parameter pytree (natural scale).
      cov: ``"observed"`` (``res.cov``), ``"robust"`` (sandwich; ``groups=`` for clusters), or
        a ``(p, p)`` matrix.

    Returns:
      :class:`DeltaResult`.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> d = mj.delta(res, lambda p: p["mu"] / p["sigma"])   # or res.delta(...)
      >>> round(float(d.estimate), 4), round(float(d.stderr), 4)
      (2.2546, 0.6654)
      >>> [round(float(v), 4) for v in d.confint(0.95)]
      [0.9505, 3.5587]
    """
    _check_result(res, "delta")
    if not callable(fn):
        raise ValueError("delta needs fn, a function of the parameter pytree, e.g. "
                         "lambda p: p['mu'] / p['sigma'].")
    problem = res.context.config.problem
    c = _resolve_cov(res, cov, groups)
    flat = jnp.asarray(res.flat_params())
    one = functools.partial(_delta_one, problem, fn)
    try:
        jax.eval_shape(one, flat[(0,) * (flat.ndim - 1)], c[(0,) * (c.ndim - 2)])
    except (TypeError, ValueError, IndexError, KeyError) as err:
        raise ValueError(f"delta: fn(params) failed on the parameters: {err}") from err
    for _ in range(flat.ndim - 1):
        one = jax.vmap(one)
    return one(flat, c)


# ---------------------------------------------------------------------------------------------
# Likelihood-ratio test
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LRTResult:
    """``statistic = 2 (loglik_full - loglik_restricted)``, its ``df`` and chi-squared p-value.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> test = mj.lrt(res, mj.fit_distribution(x, "normal", fixed={"mu": 1.0}))
      >>> test
      LRTResult(statistic=1.80735, df=1, pvalue=0.1788)
      >>> round(float(test.pvalue), 4)
      0.1788
    """

    statistic: jax.Array
    pvalue: jax.Array
    df: int = 1

    def __repr__(self) -> str:
        s = np.asarray(self.statistic)
        if s.ndim:
            return f"LRTResult(batch of {s.shape[0]}, df={self.df})"
        return (f"LRTResult(statistic={float(s):.6g}, df={self.df}, "
                f"pvalue={float(self.pvalue):.4g})")


jax.tree_util.register_dataclass(LRTResult, data_fields=["statistic", "pvalue"],
                                 meta_fields=["df"])


def lrt(full: FitResult, restricted: FitResult, *, df: int | None = None) -> LRTResult:
    """The likelihood-ratio test of a restricted model nested in a full one.

    ``statistic = 2 (loglik_full - loglik_restricted)``, referred to chi-squared with
    ``df = full.df_model - restricted.df_model`` degrees of freedom (``p = Q(df/2, stat/2)``,
    the regularised upper incomplete gamma function). Batches compare fit by fit. The chi-squared
    reference is asymptotic and assumes the restriction is not on a boundary of the parameter
    space (testing a variance = 0 gives a mixture; pass ``df`` only if you know better).

    Args:
      full, restricted: converged fits of nested models to the same data.
      df: override the degrees of freedom.

    Returns:
      :class:`LRTResult` with ``statistic``, ``df`` and ``pvalue``.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> full = mj.fit_distribution(x, "normal")                        # mu and sigma free
      >>> restricted = mj.fit_distribution(x, "normal", fixed={"mu": 1.0})
      >>> test = mj.lrt(full, restricted)               # = n log(s0^2 / s^2) here
      >>> test.df, round(float(test.statistic), 4), round(float(test.pvalue), 4)
      (1, 1.8074, 0.1788)
    """
    for name, r in (("full", full), ("restricted", restricted)):
        if not isinstance(r, FitResult):
            raise ValueError(f"lrt: {name} must be a FitResult; got {type(r).__name__}.")
        if r.penalty is not None:
            raise ValueError(f"lrt: {name} is a penalised fit ({r.penalty}); the "
                             "likelihood-ratio test compares maximised likelihoods, and its "
                             "chi-squared reference does not hold for penalised estimates.")
    if df is None:
        df = int(full.df_model) - int(restricted.df_model)
        if df <= 0:
            raise ValueError(f"lrt: the full model must have more free parameters than the "
                             f"restricted one; got {full.df_model} and {restricted.df_model}. "
                             "Pass the larger model first (lrt(full, restricted)), or df= "
                             "for a restriction the parameter counts do not show.")
    df = int(df)
    if df <= 0:
        raise ValueError(f"lrt: df must be a positive integer; got {df}.")
    if np.shape(full.loglik) != np.shape(restricted.loglik):
        raise ValueError(f"lrt: full and restricted must be fits of the same data (same batch "
                         f"shape); got {np.shape(full.loglik)} and {np.shape(restricted.loglik)}.")
    if V.is_concrete((full.nobs, restricted.nobs)):
        a, b = np.asarray(full.nobs), np.asarray(restricted.nobs)
        if np.any((a > 0) & (b > 0) & (a != b)):
            raise ValueError("lrt: full and restricted were fitted to different numbers of "
                             "observations; a likelihood-ratio test compares fits of the same "
                             "data.")
    stat = 2.0 * (jnp.asarray(full.loglik) - jnp.asarray(restricted.loglik))
    half = jnp.asarray(0.5 * df, stat.dtype)
    p = jax.scipy.special.gammaincc(half, 0.5 * jnp.maximum(stat, 0.0))
    return LRTResult(stat, p, df)


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """B refits of the model on resampled or simulated data.

    Attributes:
      estimate: the original estimate (the fit's ``params``).
      replicates: every replicate's estimate, leading axis ``B`` (``(K, B, ...)`` for a batch).
      loglik, status: per replicate.
      kind: ``"nonparametric"`` or ``"parametric"``.

    Only replicates whose refit converged enter ``stderr``, ``cov`` and ``confint``; the others
    are counted (``n_failed``, ``converged_fraction``), never averaged in.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> boot = mj.bootstrap(res, n=200, key=jax.random.key(0))
      >>> boot
      BootstrapResult(kind='nonparametric', B=200, converged=100.0%)
      >>> jax.tree_util.tree_map(jnp.shape, boot.replicates), boot.cov.shape
      ({'mu': (200,), 'sigma': (200,)}, (2, 2))
    """

    estimate: Any
    replicates: Any
    loglik: jax.Array
    status: jax.Array
    kind: str = "nonparametric"
    param_names: tuple[str, ...] = ()
    problem: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def converged(self) -> jax.Array:
        return self.status == Status.CONVERGED

    @property
    def n(self) -> int:
        return int(np.shape(self.loglik)[-1])

    @property
    def n_converged(self) -> jax.Array:
        return jnp.sum(self.converged, axis=-1)

    @property
    def n_failed(self) -> jax.Array:
        return self.n - self.n_converged

    @property
    def converged_fraction(self) -> jax.Array:
        return jnp.mean(self.converged.astype(jnp.result_type(self.loglik)), axis=-1)

    def flat_estimate(self) -> jax.Array:
        lead = np.shape(self.loglik)[:-1]
        leaves = [jnp.reshape(x, lead + (-1,))
                  for x in self.problem.in_order(jax.tree_util.tree_leaves(self.estimate))]
        return jnp.concatenate(leaves, axis=-1)

    def flat_replicates(self) -> jax.Array:
        """``(..., B, p)`` replicate estimates, NaN for replicates that did not converge."""
        lead = np.shape(self.loglik)
        leaves = [jnp.reshape(x, lead + (-1,))
                  for x in self.problem.in_order(jax.tree_util.tree_leaves(self.replicates))]
        flat = jnp.concatenate(leaves, axis=-1)
        return jnp.where(self.converged[..., None], flat, jnp.nan)

    def _unflat(self, flat):
        return _unflatten(self.problem, flat, flat.ndim - 1)

    @property
    def mean(self) -> Any:
        return self._unflat(jnp.nanmean(self.flat_replicates(), axis=-2))

    @property
    def bias(self) -> Any:
        """Mean of the converged replicates minus the estimate."""
        return self._unflat(jnp.nanmean(self.flat_replicates(), axis=-2) - self.flat_estimate())

    @property
    def cov(self) -> jax.Array:
        """Covariance of the converged replicates, ``(..., p, p)``."""
        x = self.flat_replicates()
        m = self.converged[..., None]
        n = jnp.sum(m, axis=-2)[..., None]
        c = jnp.where(m, x - jnp.nanmean(x, axis=-2, keepdims=True), 0.0)
        return jnp.swapaxes(c, -1, -2) @ c / (n - 1.0)

    @property
    def stderr(self) -> Any:
        """Standard deviation of the converged replicates, with the structure of ``params``."""
        return self._unflat(jnp.nanstd(self.flat_replicates(), axis=-2, ddof=1))

    def confint(self, level: float = 0.95, method: str = "percentile") -> ConfidenceIntervals:
        """Bootstrap intervals from the converged replicates.

        ``"percentile"``: the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the replicates;
        ``"basic"``: ``2 estimate`` minus those (reversed); ``"normal"``: ``estimate +- z se``.
        """
        level = _check_level(level)
        est = self.flat_estimate()
        x = self.flat_replicates()
        a = 0.5 * (1.0 - level)
        if method == "percentile" or method == "basic":
            qs = jnp.nanquantile(x, jnp.asarray([a, 1.0 - a], x.dtype), axis=-2)
            lo, hi = qs[0], qs[1]
            if method == "basic":
                lo, hi = 2.0 * est - hi, 2.0 * est - lo
        elif method == "normal":
            se = jnp.nanstd(x, axis=-2, ddof=1)
            z = _z(level, x.dtype)
            lo, hi = est - z * se, est + z * se
        else:
            raise ValueError(f"method must be 'percentile', 'basic' or 'normal'; got {method!r}.")
        ok = jnp.isfinite(lo) & jnp.isfinite(hi)
        code = jnp.where(ok, jnp.int32(EndpointStatus.FOUND),
                         jnp.int32(EndpointStatus.REFIT_FAILED))
        status = jnp.stack([code, code], axis=-1)
        return ConfidenceIntervals(lo, hi, est, status, level, f"bootstrap-{method}",
                                   self.param_names)

    def __repr__(self) -> str:
        frac = np.asarray(self.converged_fraction)
        return (f"BootstrapResult(kind={self.kind!r}, B={self.n}, converged="
                f"{float(np.mean(frac)):.1%})")


jax.tree_util.register_dataclass(BootstrapResult,
                                 data_fields=["estimate", "replicates", "loglik", "status"],
                                 meta_fields=["kind", "param_names", "problem"])


@functools.lru_cache(maxsize=64)
def _boot_kernel(cfg_b, kind: str, sample_fn, nobs: int, n_units: int | None, batched: bool,
                 chunk: int | None):
    fitmod = _fitmod()
    problem = cfg_b.problem

    def one_fit(keys, u_hat, params_hat, data, weights, gid, n_live):
        def replicate(key):
            k_draw, k_solve = jax.random.split(key)
            if kind == "nonparametric":
                # Draw n_live units (observations or clusters) with replacement among those
                # with positive weight; resampling becomes integer weights on the same data.
                live = jax.ops.segment_max((weights > 0) if weights is not None
                                           else jnp.ones(gid.shape[0], bool), gid,
                                           num_segments=n_units)
                # The live units first (stable order), then a uniform draw among them.
                order = jnp.argsort(~live, stable=True)
                pick = jax.random.randint(k_draw, (n_units,), 0, jnp.maximum(n_live, 1))
                draws = order[pick]
                take = (jnp.arange(n_units) < n_live).astype(problem.dtype)
                counts = jax.ops.segment_sum(take, draws, num_segments=n_units)
                w = counts[gid] if weights is None else weights * counts[gid]
                r = fitmod._solve_one(cfg_b, u_hat, data, w, k_solve)
            else:
                d = sample_fn(k_draw, params_hat, nobs)
                r = fitmod._solve_one(cfg_b, u_hat, d, weights, k_solve)
            return r.params, r.loglik, r.status

        if chunk is None:
            return jax.vmap(replicate)(keys)
        if chunk == 1:
            return jax.lax.map(replicate, keys)
        # Chunks of replicates, vmapped within a chunk and one chunk after another.
        return jax.lax.map(replicate, keys, batch_size=chunk)

    if not batched:
        return jax.jit(one_fit)
    w_ax = 0 if cfg_b.has_weights else None
    g_ax = 0 if kind == "nonparametric" else None
    return jax.jit(jax.vmap(one_fit, in_axes=(0, 0, 0, 0, w_ax, g_ax, g_ax)))


def bootstrap(res: FitResult, data: Any = None, *, n: int = 1000, key: jax.Array,
              kind: str | None = None, sample_fn: Callable | None = None, groups: Any = None,
              nobs: int | None = None, method: str | None = None,
              max_steps: int | None = None, chunk_size: int | None = None) -> BootstrapResult:
    """Bootstrap the fit: ``n`` refits as one batched program, warm-started at the estimate.

    * ``kind="nonparametric"``: resample the observations with replacement (or whole clusters
      with ``groups=``); each replicate refits the same data with the resampling counts as
      integer weights (times the fit's own weights), so the data are never copied.
    * ``kind="parametric"``: ``sample_fn(key, params, nobs)`` simulates a dataset (shaped like
      the fit's data) from the fitted model, and each replicate refits it.

    Replicates whose refit does not converge are excluded from every summary and counted.

    Args:
      res: a result of ``mj.fit`` or ``mj.fit_batch`` (a batch bootstraps each fit).
      data: the data to resample (default the fit's own, ``res.context.data``); parametric
        replicates simulate theirs.
      n: the number of replicates B.
      key: a ``jax.random.key``.
      kind: ``"nonparametric"`` or ``"parametric"`` (default: parametric when ``sample_fn`` is
        given).
      sample_fn: ``sample_fn(key, params, nobs) -> data`` for the parametric bootstrap.
      groups: nonparametric only: cluster labels, one per observation; whole clusters are
        resampled.
      nobs: the sample size passed to ``sample_fn`` (default ``res.nobs``).
      method, max_steps: solver and step limit of the refits (default the fit's).
      chunk_size: run the replicates in chunks of this many, vmapped within a chunk, one chunk
        after another (bounds memory). The default vmaps all ``n`` at once on an accelerator;
        on a CPU it runs them one after another inside the compiled program, which is faster
        there (a vmapped while-loop steps every replicate until the slowest converges).

    Returns:
      :class:`BootstrapResult`: ``stderr``, ``cov``, ``confint(level, method)``,
      ``converged_fraction``, the replicates.

    Example:
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit_distribution(x, "normal")        # or any mj.fit result
      >>> boot = mj.bootstrap(res, n=200, key=jax.random.key(0))
      >>> boot.n, int(boot.n_failed)
      (200, 0)
      >>> lo, hi = boot.confint(0.95)["mu"]             # percentile interval
      >>> bool(lo < res.params["mu"] < hi), bool(0.1 < boot.stderr["mu"] < 0.3)
      (True, True)
    """
    _check_result(res, "bootstrap")
    if kind is None:
        kind = "parametric" if sample_fn is not None else "nonparametric"
    if kind not in ("nonparametric", "parametric"):
        raise ValueError(f"kind must be 'nonparametric' or 'parametric'; got {kind!r}.")
    n = int(n)
    if n < 2:
        raise ValueError(f"n (the number of bootstrap replicates) must be at least 2; got {n}.")
    if key is None or not isinstance(key, jax.Array):
        raise ValueError("bootstrap draws random samples: pass key=jax.random.key(0).")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size}.")
    ctx = res.context
    cfg = ctx.config
    batched = res.is_batch
    lead = _lead(res)
    if batched and len(lead) != 1:
        raise ValueError(f"bootstrap handles one batch axis; got {lead}.")
    if data is None:
        data = ctx.data
    else:
        want = jax.tree_util.tree_structure(ctx.data)
        if jax.tree_util.tree_structure(data) != want:
            raise ValueError(f"bootstrap: data must have the structure of the fit's data "
                             f"({want}); got {jax.tree_util.tree_structure(data)}.")
        V.check_data_finite(data)
    weights = ctx.weights
    params0 = _one_example(res.params, batched)
    data0 = _one_example(data, batched)
    keys = jax.random.split(key, (lead[0], n) if batched else (n,))

    if kind == "nonparametric":
        if sample_fn is not None:
            raise ValueError("sample_fn is for kind='parametric'; the nonparametric bootstrap "
                             "resamples the observations.")
        _need_per_obs(res, "the nonparametric bootstrap")
        n_obs = int(jax.eval_shape(cfg.loglik_fn, params0, data0).shape[0])
        if groups is None:
            gid = np.broadcast_to(np.arange(n_obs, dtype=np.int32), lead + (n_obs,))
            n_units = n_obs
        else:
            gid, _, n_units = _group_ids(groups, n_obs, weights, lead)
        gid = jnp.asarray(gid)
        # Units with positive weight: the resample size of each replicate.
        w_np = None if weights is None else np.asarray(weights).reshape(lead + (n_obs,))
        g_np = np.asarray(gid)
        if w_np is None:
            live = np.asarray([len(np.unique(r)) for r in g_np.reshape(-1, n_obs)])
        else:
            live = np.asarray([len(np.unique(r[wr > 0])) for r, wr in
                               zip(g_np.reshape(-1, n_obs), w_np.reshape(-1, n_obs))])
        n_live = jnp.asarray(live.reshape(lead), jnp.int32)
        cfg_b = _refit_config(cfg, method=method, max_steps=max_steps, has_weights=True)
        sample_fn_key, nobs_key = None, 0
    else:
        if sample_fn is None or not callable(sample_fn):
            raise ValueError("kind='parametric' needs sample_fn(key, params, nobs) -> data, "
                             "which simulates a dataset from the fitted model.")
        if groups is not None:
            raise ValueError("groups= resamples clusters in the nonparametric bootstrap; a "
                             "parametric sample_fn simulates whole datasets.")
        if nobs is None:
            nb = np.unique(np.asarray(res.nobs))
            if nb.size != 1 or int(nb[0]) < 1:
                raise ValueError("the parametric bootstrap passes nobs to sample_fn, but the fit "
                                 f"does not know it (res.nobs = {nb}); pass nobs=.")
            nobs = int(nb[0])
        nobs = int(nobs)
        if weights is not None and np.shape(weights)[-1] != nobs:
            raise ValueError(f"the fit has {np.shape(weights)[-1]} weights but nobs={nobs}: a "
                             "parametric bootstrap with weights simulates datasets of the "
                             "fit's size.")
        try:
            sim = jax.eval_shape(lambda k, p: sample_fn(k, p, nobs), jax.random.key(0), params0)
        except (TypeError, ValueError, IndexError, KeyError) as err:
            raise ValueError(f"sample_fn(key, params, nobs) failed: {err}") from err
        shapes = jax.tree_util.tree_map(lambda x: tuple(np.shape(x)), data0)
        got = jax.tree_util.tree_map(lambda x: tuple(x.shape), sim)
        if shapes != got:
            raise ValueError(f"sample_fn must return data shaped like the fit's data: expected "
                             f"{shapes}, got {got}.")
        gid, n_live, n_units = None, None, None
        cfg_b = _refit_config(cfg, method=method, max_steps=max_steps)
        sample_fn_key, nobs_key = sample_fn, nobs

    if chunk_size is None:
        chunk = 1 if jax.default_backend() == "cpu" else None
    else:
        chunk = None if int(chunk_size) >= n else int(chunk_size)
    kernel = _boot_kernel(cfg_b, kind, sample_fn_key, nobs_key, n_units, batched, chunk)
    params, ll, status = kernel(keys, _u_hat(res), res.params, data, weights, gid, n_live)
    return BootstrapResult(res.params, params, ll, status, kind, res.param_names, cfg.problem)

