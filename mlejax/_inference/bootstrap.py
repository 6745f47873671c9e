"""The bootstrap: nonparametric (resampled observations or clusters, as integer weights) or
parametric (``sample_fn``) refits, one batched program warm-started at the estimate, with
percentile, basic and normal intervals."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _validate as V
from mlejax._engine import solve_one
from mlejax._inference.common import (check_level, check_result, estimate_u, lead_shape,
                                      need_per_obs, one_example, refit_config, unflatten,
                                      z_quantile)
from mlejax._inference.intervals import ConfidenceIntervals, EndpointStatus
from mlejax._inference.robust import group_ids
from mlejax._programs import program_cache
from mlejax._warnings import renamed
from mlejax.result import FitResult
from mlejax.status import HasStatus

__all__ = ["BootstrapResult", "bootstrap"]


@dataclasses.dataclass(frozen=True)
class BootstrapResult(HasStatus):
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
        return unflatten(self.problem, flat, flat.ndim - 1)

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
        level = check_level(level)
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
            z = z_quantile(level, x.dtype)
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


@program_cache
def _boot_kernel(cfg_b, kind: str, sample_fn, nobs: int, n_units: int | None, batched: bool,
                 chunk: int | None):
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
                r = solve_one(cfg_b, u_hat, data, w, k_solve)
            else:
                d = sample_fn(k_draw, params_hat, nobs)
                r = solve_one(cfg_b, u_hat, d, weights, k_solve)
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
              max_steps: int | None = None, replicates_per_chunk: int | None = None,
              chunk_size: int | None = None) -> BootstrapResult:
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
      replicates_per_chunk: run the replicates in chunks of this many, vmapped within a
        chunk, one chunk after another (bounds memory). The default vmaps all ``n`` at once
        on an accelerator; on a CPU it runs them one after another inside the compiled
        program, which is faster there (a vmapped while-loop steps every replicate until the
        slowest converges).
        (``chunk_size=``, its old name, still works with a ``DeprecationWarning``.)

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
    check_result(res, "bootstrap")
    if kind is None:
        kind = "parametric" if sample_fn is not None else "nonparametric"
    if kind not in ("nonparametric", "parametric"):
        raise ValueError(f"kind must be 'nonparametric' or 'parametric'; got {kind!r}.")
    n = int(n)
    if n < 2:
        raise ValueError(f"n (the number of bootstrap replicates) must be at least 2; got {n}.")
    if key is None or not isinstance(key, jax.Array):
        raise ValueError("bootstrap draws random samples: pass key=jax.random.key(0).")
    per_chunk = renamed("chunk_size", chunk_size, "replicates_per_chunk", replicates_per_chunk)
    if per_chunk is not None and int(per_chunk) < 1:
        raise ValueError(f"replicates_per_chunk must be a positive integer; got {per_chunk}.")
    ctx = res.context
    cfg = ctx.config
    if cfg.random is not None:
        raise ValueError("bootstrap of a fit with random effects (random=) is not available: "
                         "its marginal likelihood has no per-observation terms to resample. "
                         "Resample whole groups yourself and refit them with fit_batch(..., "
                         "random=...), one bootstrap sample per dataset.")
    batched = res.is_batch
    lead = lead_shape(res)
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
    params0 = one_example(res.params, batched)
    data0 = one_example(data, batched)
    keys = jax.random.split(key, (lead[0], n) if batched else (n,))

    if kind == "nonparametric":
        if sample_fn is not None:
            raise ValueError("sample_fn is for kind='parametric'; the nonparametric bootstrap "
                             "resamples the observations.")
        need_per_obs(res, "the nonparametric bootstrap")
        n_obs = int(jax.eval_shape(cfg.loglik_fn, params0, data0).shape[0])
        if groups is None:
            gid = np.broadcast_to(np.arange(n_obs, dtype=np.int32), lead + (n_obs,))
            n_units = n_obs
        else:
            gid, _, n_units = group_ids(groups, n_obs, weights, lead)
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
        cfg_b = refit_config(cfg, method=method, max_steps=max_steps, has_weights=True)
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
        cfg_b = refit_config(cfg, method=method, max_steps=max_steps)
        sample_fn_key, nobs_key = sample_fn, nobs

    if per_chunk is None:
        chunk = 1 if jax.default_backend() == "cpu" else None
    else:
        chunk = None if int(per_chunk) >= n else int(per_chunk)
    kernel = _boot_kernel(cfg_b, kind, sample_fn_key, nobs_key, n_units, batched, chunk)
    params, ll, status = kernel(keys, estimate_u(res), res.params, data, weights, gid, n_live)
    return BootstrapResult(res.params, params, ll, status, kind, res.param_names, cfg.problem)
