"""Profile likelihood: the endpoint search behind ``confint(method="profile")`` and the
profile curve of one parameter on a grid. Each trial point refits every other parameter with
the fit's own solver, warm-started along the first-order path; all of them are one vmapped,
cached program."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _blocks
from mlejax._engine import solve_one
from mlejax._inference.common import (check_level, check_result, estimate_u, lead_shape,
                                      refit_config, refit_ok, z_quantile)
from mlejax._inference.intervals import ConfidenceIntervals, EndpointStatus
from mlejax._numerics import normal_quantile, safe_inverse_pd, sym
from mlejax._objective import objective
from mlejax._problem import make_problem
from mlejax.constraints import Interval, Positive, Real, real
from mlejax.result import FitResult
from mlejax.status import Status

__all__ = ["ProfileCurve", "profile", "profile_ci"]


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
    example = jnp.zeros((p - 1,), problem.dtype)
    reduced = make_problem([example], jax.tree_util.tree_structure(example), [real],
                                   ["nuisance"], problem.dtype)
    # The refits' data carry the fixed coordinate beside the observations, so they are not
    # chunked by observation (obs_chunk): each refit evaluates the whole data at once.
    return refit_config(cfg, method=method, max_steps=max_steps,
                         loglik_fn=_FixedOne(cfg.loglik_fn, problem), problem=reduced,
                         obs_chunk=None)


def _refitter(cfg, cfg_r, data, weights):
    """``refit(j, uj, v0) -> (loglik, dloglik/du_j, v, status)``, warm-started at ``v0``."""
    fn_full = objective(cfg, data, weights)
    grad_full = jax.grad(fn_full)
    key = jax.random.key(0)

    def refit(j, uj, v0):
        if cfg_r is None:
            u = _insert(v0, j, uj)
            ll, v, status = fn_full(u), v0, jnp.int32(Status.CONVERGED)
        else:
            r = solve_one(cfg_r, v0, {"data": data, "j": j, "uj": uj}, weights, key)
            ll, v, status = r.loglik, r.params, r.status
            u = _insert(v, j, uj)
        # Envelope theorem: d loglik_profile / d u_j is the partial derivative at the refit.
        return ll, grad_full(u)[j], v, status

    return refit


def _information(cfg, u_hat, data, weights):
    """Covariance of the estimate in unconstrained coordinates (NaN if singular)."""
    fn = objective(cfg, data, weights)
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
                failed = finite & ~refit_ok(rstatus)
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

        return _blocks.vmap_or_map(lane, in_turn=cfg.fits_in_turn)(
            js_u, js_nat, sides, bounded, active)

    if not batched:
        return jax.jit(one_fit)
    w_ax = 0 if cfg.has_weights else None
    return jax.jit(_blocks.vmap_or_map(one_fit, (0, 0, 0, 0, w_ax) + (None,) * 6,
                                       in_turn=cfg.fits_in_turn))


def profile_ci(res: FitResult, level: float, which: Any, method: str | None,
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
    lead = lead_shape(res)
    p = len(res.param_names)
    dtype = problem.dtype
    lower = jnp.full(lead + (p,), jnp.nan, dtype)
    upper = jnp.full(lead + (p,), jnp.nan, dtype)
    status = jnp.full(lead + (p, 2), int(EndpointStatus.NOT_PROFILED), jnp.int32)
    if idx:
        kernel = _endpoint_kernel(cfg, method, max_steps, int(max_iter), res.is_batch)
        x, code, _ = kernel(estimate_u(res), res.loglik, res.status, ctx.data, ctx.weights,
                            jnp.asarray(js_u, jnp.int32), jnp.asarray(js_nat, jnp.int32),
                            jnp.asarray(sides, dtype), jnp.asarray(bounded),
                            jnp.asarray(active), z_quantile(level, dtype))
        pos = jnp.asarray(every)
        lower = lower.at[..., pos].set(x[..., 0::2])
        upper = upper.at[..., pos].set(x[..., 1::2])
        status = status.at[..., pos, 0].set(code[..., 0::2])
        status = status.at[..., pos, 1].set(code[..., 1::2])
    return ConfidenceIntervals(lower, upper, est, status, level, "profile", res.param_names)


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
        return normal_quantile(check_level(level)) ** 2


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

        return _blocks.vmap_or_map(point, in_turn=cfg.fits_in_turn)(grid_u)

    if not batched:
        return jax.jit(one_fit)
    w_ax = 0 if cfg.has_weights else None
    return jax.jit(_blocks.vmap_or_map(one_fit, (0, 0, w_ax, None, None),
                                       in_turn=cfg.fits_in_turn))


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
    check_result(res, "profile")
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
    if res.is_batch and len(lead_shape(res)) != 1:
        raise ValueError(f"profile handles one batch axis; got {lead_shape(res)}.")
    kernel = _curve_kernel(cfg, refit_method, max_steps, res.is_batch)
    ll, status, params = kernel(estimate_u(res), ctx.data, ctx.weights, jnp.int32(slots[i].u),
                                grid_u)
    ll_max = jnp.asarray(res.loglik)
    dev = 2.0 * (ll_max[..., None] - ll)
    est = jnp.asarray(res.flat_params())[..., i]
    return ProfileCurve(grid_j, ll, dev, status, params, est, ll_max, name)
