"""Nonlinear regression ``y = f(x, b) + e``, ``e ~ N(0, sigma^2)``, for any JAX mean function.

The Gaussian MLE of ``b`` is the least-squares solution; the MLE of ``sigma^2`` is ``RSS / n``.
Besides the observed-information standard errors of the likelihood (``stderr``), the result
carries the Gauss-Newton ones that R's ``nls``, scipy's ``curve_fit`` and NIST's StRD certify
(``extra["gn_stderr"]``, ``extra["gn_cov"]``):

    cov_GN = s^2 (J'J)^-1,   s^2 = RSS / (n - p),   J = d f(x, b) / d b at the estimate.

``(J'J)^-1`` comes from the singular value decomposition of ``J`` with its columns scaled to
unit length (never by forming ``J'J``, which squares the condition number); a numerically
rank-deficient ``J`` gives NaN, never a huge number.

The fit runs in two phases, both compiled once per mean function and data shape:
Levenberg-Marquardt on the profile log-likelihood of ``b`` (robust from far starts; see
``_levenberg_marquardt``), then :func:`mlejax.fit` (damped Newton on the full likelihood in
``(b, sigma)``) from its solution, which confirms the maximum, polishes it to full precision
and gives the status, the observed information and the ``context`` for later inference.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import stats as jst

from mlejax import constraints as C
from mlejax._loop import default_tolerances, iterate
from mlejax._fit import fit, fit_batch
from mlejax._numerics import is_concrete
from mlejax._models.base import RegressionResult
from mlejax._models.levenberg_marquardt import LevenbergMarquardt

__all__ = ["Nonlinear"]


@functools.lru_cache(maxsize=None)
def _loglik(f: Callable) -> Callable:
    """One log-likelihood per mean function (cached: one compiled program per f and shapes)."""

    def nonlinear_loglik(params, data):
        # The solver sees c = b / scale (scale = |b| at the Levenberg-Marquardt solution), so
        # every coefficient is of order one: the loop's stopping test, which measures the
        # gradient relative to max(|c|, 1), is then relative for small coefficients too.
        b = params["c"] * data["scale"]
        return jst.norm.logpdf(data["y"], f(data["x"], b), params["sigma"])

    return nonlinear_loglik


@functools.lru_cache(maxsize=None)
def _levenberg_marquardt(f: Callable, batched: bool, init_batched: bool, max_steps: int,
                         dtype) -> Callable:
    """Phase 1: ``(b0, x, y, w) -> (b, sigma, status, n_steps)`` by Levenberg-Marquardt."""
    gtol, ftol = default_tolerances(dtype)

    def one(b0, x, y, w):
        # Iterate on c = b / |b0| so the loop's stopping test is relative for every
        # coefficient (the steps themselves are scale-invariant through More's scaling).
        s0 = jnp.where(jnp.abs(b0) > jnp.finfo(b0.dtype).tiny, jnp.abs(b0), 1.0)
        solver = LevenbergMarquardt(lambda c: f(x, c * s0), y, w)
        out = iterate(solver, b0 / s0, max_steps=max_steps, gtol=gtol, ftol=ftol, trace_len=1)
        b = out.solver_state.u * s0
        r = y - f(x, b)
        sigma = jnp.sqrt(jnp.sum(jnp.where(w > 0, w * r * r, 0.0)) / jnp.sum(w))
        sigma = jnp.where(jnp.isfinite(sigma) & (sigma > 0), sigma, 1.0)
        return b, sigma, out.status, out.n_steps

    if not batched:
        return jax.jit(one)
    return jax.jit(jax.vmap(one, in_axes=(0 if init_batched else None, 0, 0, 0)))


@functools.lru_cache(maxsize=None)
def _gauss_newton(f: Callable, batched: bool) -> Callable:
    def one(b, x, y, w):
        jac = jax.jacfwd(lambda bb: f(x, bb))(b)
        r = y - f(x, b)
        p = b.shape[0]
        s2 = jnp.sum(w * r * r) / (jnp.sum(w) - p)
        jw = jac * jnp.sqrt(w)[:, None]
        norms = jnp.sqrt(jnp.sum(jw * jw, axis=0))
        safe = jnp.where(norms > 0, norms, 1.0)
        _, sv, vt = jnp.linalg.svd(jw / safe, full_matrices=False)
        eps = jnp.finfo(jw.dtype).eps
        ok = (sv[-1] > eps * max(jw.shape) * sv[0]) & jnp.all(norms > 0)
        inv = (vt.T / sv ** 2) @ vt / safe[:, None] / safe[None, :]
        cov = jnp.where(ok, s2 * inv, jnp.nan)
        return cov, jnp.sqrt(jnp.diagonal(cov))

    return jax.jit(jax.vmap(one) if batched else one)


@functools.lru_cache(maxsize=None)
def _predict(f: Callable, batched: bool, shared_x: bool) -> Callable:
    if not batched:
        return jax.jit(lambda b, x: f(x, b))
    return jax.jit(jax.vmap(lambda b, x: f(x, b), in_axes=(0, None if shared_x else 0)))


def _to_natural(raw, scale, names):
    """The solver's result in c = b / scale mapped back to b (exact: a linear map)."""
    c, sigma = raw.params["c"], raw.params["sigma"]
    b = c * scale
    t = jnp.concatenate([scale, jnp.ones(scale.shape[:-1] + (1,), scale.dtype)], axis=-1)
    cov = raw.cov * t[..., :, None] * t[..., None, :]
    labels = tuple(names[int(r[2:-1])] if r.startswith("c[") else r for r in raw.param_names)
    # No context: inference that refits needs the solver's own coordinates, kept in
    # extra["solver_result"] (whose context is consistent with them).
    return dataclasses.replace(
        raw, params={"b": b, "sigma": sigma},
        stderr={"b": raw.stderr["c"] * scale, "sigma": raw.stderr["sigma"]}, cov=cov,
        param_names=labels, context=None)


@dataclasses.dataclass(frozen=True)
class Nonlinear:
    """Gaussian nonlinear regression with mean ``f(x, b)``.

    Args:
      f: a pure JAX function ``f(x, b) -> (n,)``: ``x`` is anything with the observations on
        its leading axis (an array or a pytree), ``b`` the ``(p,)`` coefficient vector.
      param_names: names of the ``p`` coefficients (default ``b[0]``, ``b[1]`` ...).

    Example:
      >>> f = lambda x, b: b[0] * (1.0 - jnp.exp(-b[1] * x))
      >>> x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
      >>> y = np.array([0.8, 1.3, 1.5, 1.8, 1.85, 1.9])
      >>> res = mj.models.Nonlinear(f, param_names=["b1", "b2"]).fit(x, y, init=[1.0, 1.0])
      >>> [round(float(b), 3) for b in res.params["b"]]     # estimates
      [2.01, 0.505]
      >>> [round(float(s), 3) for s in res.extra["gn_stderr"]]  # Gauss-Newton (nls) std errors
      [0.053, 0.037]
    """

    f: Callable
    param_names: Sequence[str] | None = None

    def __post_init__(self):
        if not callable(self.f):
            raise ValueError("Nonlinear(f): f must be a function f(x, b) -> mean of y.")
        if self.param_names is not None:
            object.__setattr__(self, "param_names", tuple(str(n) for n in self.param_names))

    def __hash__(self):
        return hash((self.f, self.param_names))

    def describe(self) -> str:
        name = getattr(self.f, "__name__", "f")
        return f"Nonlinear regression y = {name}(x, b) + N(0, sigma^2)"

    def coef_of(self, params) -> jax.Array:
        return params["b"]

    # Cluster-robust errors (mj.robust_cov): least squares' G/(G-1) (N-1)/(N-K), K the
    # coefficients, as Stata's regress and statsmodels' OLS.
    cluster_correction = "linear"

    def robust_k(self, res) -> int:
        return res.df_model - 1

    def robust_view(self, res: RegressionResult):
        """The solver's fit (in ``c = b / scale``, with its context), and the scale back."""
        scale = res.extra["scale"]
        t = jnp.concatenate([scale, jnp.ones(scale.shape[:-1] + (1,), scale.dtype)], axis=-1)
        return res.extra["solver_result"], t

    # --- fitting ------------------------------------------------------------------------
    def fit(self, x: Any, y: Any, init: Any, *, weights: Any = None, method: str = "newton",
            max_steps: int | None = None, lm_steps: int = 2000,
            warn: bool = True) -> RegressionResult:
        """Fits one dataset from the starting values ``init`` ``(p,)``.

        ``lm_steps`` bounds the Levenberg-Marquardt phase (0 skips it); ``method`` and
        ``max_steps`` are those of the :func:`mlejax.fit` phase. ``extra`` holds
        ``gn_stderr``, ``gn_cov``, ``lm_status`` and ``lm_steps``.
        """
        return self._run(x, y, init, weights, method, max_steps, lm_steps, warn,
                         batched=False, init_batched=False)

    def fit_batch(self, x: Any, y: Any, init: Any, *, init_batched: bool = False,
                  weights: Any = None, method: str = "newton", max_steps: int | None = None,
                  lm_steps: int = 2000, warn: bool = True) -> RegressionResult:
        """K fits in one program: ``y`` ``(K, n)``, ``x`` with a leading K (or shared by
        all fits when its leading axis is n), ``init`` shared ``(p,)`` or per fit ``(K, p)``
        with ``init_batched=True``."""
        return self._run(x, y, init, weights, method, max_steps, lm_steps, warn, batched=True,
                         init_batched=init_batched)

    def _run(self, x, y, init, weights, method, max_steps, lm_steps, warn, *, batched,
             init_batched):
        y = jnp.asarray(y)
        dtype = y.dtype if jnp.issubdtype(y.dtype, jnp.floating) else jnp.result_type(float)
        y = y.astype(dtype)
        b0 = jnp.asarray(init, dtype)
        want_y = 2 if batched else 1
        if y.ndim != want_y:
            raise ValueError(f"y must have shape {'(K, n)' if batched else '(n,)'}; got "
                             f"{y.shape}.")
        want_b = 2 if init_batched else 1
        if b0.ndim != want_b:
            raise ValueError(f"init must have shape {'(K, p)' if init_batched else '(p,)'} (the "
                             f"starting coefficients); got {b0.shape}.")
        x = jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating)
            or jnp.issubdtype(jnp.result_type(a), jnp.integer) else a, x)
        n = y.shape[-1]
        if batched:
            k = y.shape[0]
            x = jax.tree_util.tree_map(
                lambda a: a if (np.ndim(a) >= 2 and a.shape[0] == k and a.shape[1] == n)
                else jnp.broadcast_to(a, (k,) + jnp.shape(a)), x)
        p = b0.shape[-1]
        if self.param_names is not None and len(self.param_names) != p:
            raise ValueError(f"param_names has {len(self.param_names)} names but init has {p} "
                             "coefficients.")
        w = None if weights is None else jnp.asarray(weights, dtype)
        if w is not None and w.shape != y.shape:
            raise ValueError(f"weights must have the shape of y, {y.shape}; got {w.shape}.")
        one_x = jax.tree_util.tree_map(lambda a: a[0], x) if batched else x
        one_b = b0[0] if init_batched else b0
        try:
            out = jax.eval_shape(self.f, one_x, one_b)
        except (TypeError, ValueError, IndexError) as err:
            raise ValueError(f"f(x, b) failed on x and init: {err}") from err
        if getattr(out, "shape", None) != (n,):
            raise ValueError(f"f(x, b) must return one mean per observation, shape ({n},); got "
                             f"{getattr(out, 'shape', out)}.")
        if is_concrete((y, b0, w)):
            yn = np.asarray(y)
            if not np.all(np.isfinite(yn)):
                raise ValueError(f"y contains {int(np.sum(~np.isfinite(yn)))} NaN or infinite "
                                 "value(s); remove them (or give them weight 0).")
            if not np.all(np.isfinite(np.asarray(b0))):
                raise ValueError("init must be finite.")
            wn = np.ones_like(yn) if w is None else np.asarray(w)
            n_eff = np.sum(wn > 0, axis=-1)
            if np.any(n_eff <= p):
                raise ValueError(f"{int(np.min(n_eff))} observations for {p} coefficients and "
                                 "sigma: n must exceed the number of coefficients p (the "
                                 "Gauss-Newton s^2 divides by n - p).")

        wfill = jnp.ones_like(y) if w is None else w
        lm = _levenberg_marquardt(self.f, batched, init_batched, int(max(lm_steps, 0)),
                                  jnp.dtype(dtype))
        b1, s1, lm_status, lm_n = lm(b0, x, y, wfill)
        tiny = float(jnp.finfo(dtype).tiny)
        scale = jnp.where(jnp.abs(b1) > tiny, jnp.abs(b1), 1.0)
        init_tree = {"c": b1 / scale, "sigma": s1}
        data = {"x": x, "y": y, "scale": scale}
        kw = dict(constraints={"sigma": C.positive}, weights=w, method=method,
                  max_steps=max_steps, warn=warn)
        if batched:
            raw = fit_batch(_loglik(self.f), init_tree, data, init_batched=True, **kw)
        else:
            raw = fit(_loglik(self.f), init_tree, data, **kw)
        names = self.param_names or tuple(f"b[{j}]" for j in range(p))
        res = _to_natural(raw, scale, names)
        gn_cov, gn_se = _gauss_newton(self.f, batched)(res.params["b"], x, y, wfill)
        extra = {"gn_cov": gn_cov, "gn_stderr": gn_se, "lm_status": lm_status,
                 "lm_steps": lm_n, "scale": scale, "solver_result": raw}
        return RegressionResult(res, extra, self, tuple(names), False)

    # --- the result's view ----------------------------------------------------------------
    def predict(self, res: RegressionResult, x, *, offset=None, exposure=None) -> jax.Array:
        if offset is not None or exposure is not None:
            raise ValueError("Nonlinear.predict takes no offset/exposure; put them in f.")
        b = res.params["b"]
        dtype = b.dtype
        x = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), x)
        if not res.is_batch:
            return _predict(self.f, False, True)(b, x)
        k = b.shape[0]
        leaves = jax.tree_util.tree_leaves(x)
        shared = not all(np.ndim(a) >= 2 and a.shape[0] == k for a in leaves)
        return _predict(self.f, True, shared)(b, x)

    def arrange_table(self, res: RegressionResult, text: str) -> str:
        """The summary's coefficient rows stay in the parameters' order."""
        del res
        return text

    def summary_extra(self, res: RegressionResult) -> str:
        if res.is_batch:
            return ""
        b = np.asarray(res.params["b"])
        se = np.asarray(res.extra["gn_stderr"])
        names = res.feature_names
        w = max([len(n) for n in names] + [9])
        lines = ["", "Gauss-Newton standard errors (s^2 = RSS / (n - p), as nls / curve_fit / "
                     "NIST):", f"{'parameter':<{w}} {'estimate':>14} {'GN std err':>14}"]
        for n, bj, sj in zip(names, b, se):
            lines.append(f"{n:<{w}} {bj:>14.8g} {sj:>14.8g}")
        return "\n".join(lines)
