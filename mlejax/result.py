"""The result of a fit: a pytree of arrays, with a status per fit and a readable summary.

A batched fit (``fit_batch``) gives the same structure with a leading ``K`` axis on every
array; restarts keep every start's result in ``restarts`` (leading ``R`` axis).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._fixed import held_mask
from mlejax._numerics import normal_quantile
from mlejax.status import HasStatus, Status, message

__all__ = ["DATA_FIELDS", "META_FIELDS", "PROVIDED_BY", "FitContext", "FitResult",
           "RandomEffectsResult", "provide"]


# --- what the modules above this one compute for a result ---------------------------------------
# FitResult's conveniences (res.confint, res.cov_robust, res.optima, ...) are computed by
# modules that import this one. Rather than import them back (a cycle), the result looks them
# up here; each of those modules registers its functions with provide() when it is imported,
# and ``import mlejax`` imports them all.

#: The name each convenience is registered under, and the module that provides it.
PROVIDED_BY = {
    "robust_cov": "mlejax.inference",      # robust_cov(res, **kw): res.cov_robust
    "robust_stderr": "mlejax.inference",   # robust_stderr(res, **kw): res.stderr_robust
    "confint": "mlejax.inference",         # confint(res, level, method=, **kw): res.confint
    "delta": "mlejax.inference",           # delta(res, fn, **kw): res.delta
    "resolve_cov": "mlejax.inference",     # resolve_cov(res, cov, groups): summary(cov=)
    "optima": "mlejax.optima",             # find(res): res.optima
}
_PROVIDED: dict[str, Callable] = {}


def provide(name: str, fn: Callable) -> None:
    """Register ``fn`` as what :class:`FitResult` calls for ``name`` (a key of
    :data:`PROVIDED_BY`); called by the providing module when it is imported. A second
    registration replaces the first.

    Example:
      >>> from mlejax import result
      >>> result.PROVIDED_BY["optima"]              # mlejax.optima, when imported, calls
      'mlejax.optima'
      >>> result.provide("optima", mj.optima.find)  # ... this
    """
    if name not in PROVIDED_BY:
        raise ValueError(f"provide: {name!r} is not a FitResult convenience; the names are "
                         f"{sorted(PROVIDED_BY)}.")
    if not callable(fn):
        raise ValueError(f"provide: {name!r} needs a function; got {type(fn).__name__}.")
    _PROVIDED[name] = fn


def _provided(name: str) -> Callable:
    """The function registered for ``name``, or an error that says which module to import."""
    fn = _PROVIDED.get(name)
    if fn is None:
        module = PROVIDED_BY[name]
        raise RuntimeError(f"FitResult needs {module} for {name!r}, and it has not been "
                           f"imported: `import mlejax` (or `import {module}`) registers it.")
    return fn


class RandomEffectsResult(NamedTuple):
    """The random effects of a fit by the Laplace approximation (``random=``), at the estimate.

    Each field is a dict by random-effect name, with the shape that name has in ``init``
    (a leading ``K`` axis for a batch).

    Attributes:
      mode: the conditional modes of the random effects given the estimate (lme4's
        ``ranef``; TMB's ``par.random``); for a Gaussian joint, the BLUPs.
      stderr: their standard errors including the uncertainty of the estimate,
        ``sqrt diag(A^-1 + J cov J^T)`` with ``A`` the negative Hessian of the joint in the
        random effects at the mode and ``J`` the derivative of the mode in the parameters
        (TMB's ``sdreport``).
      cond_stderr: the conditional standard deviations given the estimate, ``sqrt diag
        A^-1`` (the square roots of lme4's conditional variances, ``condVar``).

    Example:
      >>> y = jnp.array([1.2, 0.9, 1.4, 2.1, 2.4, 1.9, 0.3, 0.6, 0.2])
      >>> g = jnp.repeat(jnp.arange(3), 3)           # three groups of three
      >>> def joint(p, d):                           # a random-intercept normal model
      ...     y, g = d
      ...     return (jnp.sum(jax.scipy.stats.norm.logpdf(y, p["mu"] + p["u"][g], p["s"]))
      ...             + jnp.sum(jax.scipy.stats.norm.logpdf(p["u"], 0.0, p["s_u"])))
      >>> res = mj.fit(joint, {"mu": 0.0, "u": jnp.zeros(3), "s": 1.0, "s_u": 1.0}, (y, g),
      ...              random=mj.RandomEffects(["u"], grouped=True),
      ...              constraints={"s": mj.positive, "s_u": mj.positive})
      >>> res.param_names, res.random.mode["u"].shape
      (('mu', 's', 's_u'), (3,))
      >>> bool(jnp.allclose(res.params["mu"], y.mean()))   # balanced groups: the mean
      True
      >>> bool(jnp.all(res.random.stderr["u"] >= res.random.cond_stderr["u"]))
      True
    """

    mode: Any
    stderr: Any
    cond_stderr: Any


@dataclasses.dataclass(frozen=True)
class FitResult(HasStatus):
    """What a fit found, and how much to trust it.

    Attributes:
      params: the estimate on the natural scale, with the structure of ``init``.
      loglik: the maximised log-likelihood (summed, with weights).
      status: an ``int32`` :class:`~mlejax.Status` code; ``converged`` is ``status == 0``.
      n_steps: solver steps taken.
      trace: log-likelihood after each step (index 0 is the start), NaN past the last step.
      cov: inverse observed information, ``(p, p)`` over the flattened natural parameters in
        ``param_names`` order; NaN where the Hessian is singular or not negative definite.
      stderr: square roots of the diagonal of ``cov``, with the structure of ``params``.
      grad_norm: the scaled gradient norm at the estimate (see ``_numerics.scaled_grad_norm``).
      nobs: observations with non-zero weight (``-1`` when the log-likelihood returns a total).
      restarts: every start's result (leading axis R) when ``restarts=`` was given, else None.
      n_best: how many starts reached the best log-likelihood (None without restarts).
      param_names: names of the flattened parameters, e.g. ``("beta[0]", "beta[1]", "sigma")``.
      df_model: number of free parameters (unconstrained coordinates).
      method: the solver used.
      context: what produced the fit (the log-likelihood, the data, the static settings), so
        that inference can refit (profiles, bootstrap); static, not a pytree leaf.
      objective: for a penalised fit (``penalty=``), the penalised objective
        ``loglik + penalty`` that was maximised (``trace`` records it; ``loglik`` is then the
        plain log-likelihood at the estimate); None for a plain fit.
      df_effective: effective degrees of freedom given by :meth:`with_df` (None: not given).
      penalty: the penalty, described (None for a plain maximum-likelihood fit); ``cov`` and
        ``stderr`` then come from the Hessian of the penalised objective.
      leaf_order: the leaves of ``params`` (by their index in JAX's flattening order) in the
        order of ``param_names``: the order the keys of ``init`` were written in (JAX sorts
        dict keys). None: JAX's order.
      random: for a fit of a marginal likelihood (``random=``), the random effects at the
        estimate (:class:`RandomEffectsResult`); ``params``, ``cov`` and ``loglik`` are then
        those of the marginal. None otherwise.

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> res = mj.fit(loglik, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive})
      >>> res.param_names, mj.Status(int(res.status)).name
      (('mu', 'sigma'), 'CONVERGED')
      >>> round(float(res.params["mu"]), 4), round(float(res.stderr["mu"]), 4), res.cov.shape
      (1.2875, 0.2019, (2, 2))
      >>> print(res.summary())
      mlejax fit: method=newton, status=CONVERGED
      ...
      parameter    estimate     std err         z     P>|z|     [95% lo     95% hi]
      mu ...
      sigma           0.571      0.1428         4 6.334e-05      0.2912      0.8509
    """

    params: Any
    loglik: jax.Array
    status: jax.Array
    n_steps: jax.Array
    trace: jax.Array
    cov: jax.Array
    stderr: Any
    grad_norm: jax.Array
    nobs: jax.Array
    restarts: "FitResult | None" = None
    n_best: jax.Array | None = None
    param_names: tuple[str, ...] = ()
    df_model: int = 0
    method: str = ""
    context: "FitContext | None" = dataclasses.field(default=None, repr=False, compare=False)
    objective: jax.Array | None = None
    df_effective: jax.Array | None = None
    penalty: str | None = None
    leaf_order: tuple[int, ...] | None = None
    random: RandomEffectsResult | None = None

    # --- derived quantities -------------------------------------------------------------
    @property
    def aic(self) -> jax.Array:
        """Akaike's information criterion, ``2 k - 2 loglik``.

        ``k`` is ``df_model``, or the degrees of freedom given by :meth:`with_df`. A
        penalised fit raises ``ValueError`` until they are given: its effective degrees of
        freedom are not its parameter count.
        """
        return 2.0 * self._df("AIC") - 2.0 * self.loglik

    @property
    def bic(self) -> jax.Array:
        """Schwarz's criterion, ``k log(nobs) - 2 loglik`` (NaN when nobs is unknown;
        ``k`` as for :attr:`aic`)."""
        n = jnp.where(self.nobs > 0, self.nobs, jnp.nan)
        return self._df("BIC") * jnp.log(n) - 2.0 * self.loglik

    def _df(self, what: str):
        if self.df_effective is not None:
            return self.df_effective
        if self.penalty is not None:
            raise ValueError(f"{what} of a penalised fit ({self.penalty}): its effective "
                             "degrees of freedom are not the parameter count. Give them with "
                             "res.with_df(df) (e.g. the number of non-zero coefficients of a "
                             "lasso), or res.with_df(res.df_model) to use the count anyway.")
        return self.df_model

    def with_df(self, df) -> "FitResult":
        """This result with the degrees of freedom AIC and BIC use (one per fit for a
        batch): the way to ask for the criteria of a penalised fit."""
        d = np.asarray(df, dtype=np.float64)
        if not np.all(np.isfinite(d)) or np.any(d < 0):
            raise ValueError(f"df must be finite and >= 0; got {df!r}.")
        dtype = jnp.result_type(self.loglik)
        return dataclasses.replace(
            self, df_effective=jnp.broadcast_to(jnp.asarray(d, dtype), np.shape(self.loglik)))

    @property
    def optima(self):
        """The distinct optima the restarts reached (:func:`mlejax.optima.find`): their
        parameters, log-likelihoods, basin counts and whether each is a peak."""
        return _provided("optima")(self)

    @property
    def is_batch(self) -> bool:
        return np.ndim(self.loglik) > 0

    def flat_params(self) -> np.ndarray:
        """The estimate flattened in ``param_names`` order (leading batch axis kept)."""
        return self._flat(self.params)

    def flat_stderr(self) -> np.ndarray:
        """The standard errors flattened in ``param_names`` order."""
        return self._flat(self.stderr)

    def _flat(self, tree) -> np.ndarray:
        lead = np.shape(self.loglik)
        leaves = jax.tree_util.tree_leaves(tree)
        if self.leaf_order is not None:
            leaves = [leaves[j] for j in self.leaf_order]
        return np.concatenate([np.asarray(x).reshape(lead + (-1,)) for x in leaves], axis=-1)

    # --- inference (computed by mlejax.inference, looked up through provide()) -----------
    @property
    def cov_robust(self) -> jax.Array:
        """The HC0 sandwich covariance ``A^-1 B A^-1`` (needs a per-observation log-likelihood).

        For cluster-robust errors or a small-sample factor use ``mj.robust_cov(res, groups=)``.
        """
        return _provided("robust_cov")(self)

    @property
    def stderr_robust(self) -> Any:
        """Square roots of the diagonal of ``cov_robust``, with the structure of ``params``."""
        return _provided("robust_stderr")(self)

    def confint(self, level: float = 0.95, method: str = "wald", **kwargs):
        """Confidence intervals: ``method="wald"`` or ``"profile"`` (see ``mj.confint``)."""
        return _provided("confint")(self, level, method=method, **kwargs)

    def delta(self, fn, **kwargs):
        """The delta method for ``fn(params)``: estimate, stderr, cov (see ``mj.delta``)."""
        return _provided("delta")(self, fn, **kwargs)

    def with_nobs(self, nobs: int) -> "FitResult":
        """This result with the number of observations given (for BIC when ``loglik_fn``
        returns a scalar total, so that mlejax cannot count them)."""
        n = np.asarray(nobs)
        if n.dtype.kind not in "iu" or np.any(n < 1):
            raise ValueError(f"nobs must be a positive integer (one per fit for a batch); "
                             f"got {nobs!r}.")
        return dataclasses.replace(
            self, nobs=jnp.broadcast_to(jnp.asarray(n, jnp.int32), np.shape(self.loglik)))

    def to_frame(self, level: float = 0.95, *, index: Any = None):
        """The coefficient table as a pandas DataFrame (pandas is an optional extra).

        One fit: one row per parameter (``param_names``), columns ``estimate``, ``stderr``,
        ``z``, ``p`` (two-sided), ``lo``, ``hi`` (Wald at ``level``). A batch: one row per
        fit (``index`` labels them, default 0..K-1), columns a MultiIndex (parameter,
        statistic), then ``loglik``, ``nobs``, ``converged`` and ``status``.

        Example:
          >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7])
          >>> ll = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
          >>> res = mj.fit(ll, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive})
          >>> res.to_frame().round(3).loc["mu", ["estimate", "stderr"]].tolist()
          [1.28, 0.309]
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_frame needs pandas: pip install pandas (or "
                              "\"mlejax[formula]\").") from None
        est = np.asarray(self.flat_params(), np.float64)
        se = np.asarray(self.flat_stderr(), np.float64)
        q = normal_quantile(level)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        p = np.vectorize(lambda t: math.erfc(abs(t) / math.sqrt(2.0)) if np.isfinite(t)
                         else float("nan"), otypes=[np.float64])(z)
        stats = {"estimate": est, "stderr": se, "z": z, "p": p, "lo": est - q * se,
                 "hi": est + q * se}
        if not self.is_batch:
            return pd.DataFrame(stats, index=pd.Index(list(self.param_names),
                                                      name="parameter"))
        k = est.shape[0]
        cols = {(name, stat): stats[stat][:, j] for j, name in enumerate(self.param_names)
                for stat in stats}
        frame = pd.DataFrame(cols, index=None if index is None else list(index))
        frame.columns = pd.MultiIndex.from_tuples(frame.columns,
                                                  names=["parameter", "statistic"])
        frame[("fit", "loglik")] = np.asarray(self.loglik, np.float64).reshape(k)
        frame[("fit", "nobs")] = np.asarray(self.nobs).reshape(k)
        frame[("fit", "converged")] = np.asarray(self.converged).reshape(k)
        frame[("fit", "status")] = [Status(int(c)).name for c in
                                    np.asarray(self.status).reshape(k)]
        return frame

    # --- the summary --------------------------------------------------------------------
    def summary(self, level: float = 0.95, *, cov: Any = "observed", ci: str = "wald",
                groups: Any = None) -> str:
        """A text report: the coefficient table (or, for a batch, rates and quantiles).

        The table gives estimate, standard error, z, two-sided p-value and the confidence
        interval at ``level``. ``cov="robust"`` (with ``groups=`` for clusters) uses sandwich
        errors; ``ci="profile"`` shows profile-likelihood intervals instead of Wald ones.
        """
        if self.is_batch:
            return _batch_summary(self)
        if ci not in ("wald", "profile"):
            raise ValueError(f"ci must be 'wald' or 'profile'; got {ci!r}.")
        if isinstance(cov, str) and cov == "observed" and groups is None and ci == "wald":
            return _single_summary(self, level)
        se = None
        label = "observed information"
        if not (isinstance(cov, str) and cov == "observed") or groups is not None:
            c = _provided("resolve_cov")(self, cov, groups)
            se = np.sqrt(np.diagonal(np.asarray(c)))
            label = ("cluster-robust (sandwich)" if groups is not None else
                     "robust (sandwich, HC0)" if isinstance(cov, str) else "given covariance")
        bounds = None
        if ci == "profile":
            cis = _provided("confint")(self, level, method="profile")
            bounds = (np.asarray(cis.lower), np.asarray(cis.upper), np.asarray(cis.status))
        return _single_summary(self, level, se=se, bounds=bounds, se_label=label)

    def __repr__(self) -> str:
        if self.is_batch:
            rate = float(np.mean(np.asarray(self.converged)))
            return (f"FitResult(batch of {np.size(self.loglik)}, method={self.method!r}, "
                    f"converged={rate:.1%})")
        return (f"FitResult(method={self.method!r}, loglik={float(self.loglik):.6g}, "
                f"status={Status(int(self.status)).name}, n_steps={int(self.n_steps)})")


#: FitResult's array fields (pytree leaves) and its static fields, for code that rebuilds or
#: stores results field by field (batching, result files).
DATA_FIELDS = ["params", "loglik", "status", "n_steps", "trace", "cov", "stderr", "grad_norm",
               "nobs", "restarts", "n_best", "objective", "df_effective", "random"]
META_FIELDS = ["param_names", "df_model", "method", "context", "penalty", "leaf_order"]


class FitContext:
    """The static inputs of a fit kept with its result: ``config`` (the static settings,
    including ``loglik_fn`` and the constraint ``problem``), ``data`` and ``weights``.

    Compared and hashed by identity, so a result stays a valid pytree (its treedef never
    compares array contents).
    """

    __slots__ = ("config", "data", "weights")

    def __init__(self, config, data, weights):
        self.config = config
        self.data = data
        self.weights = weights

    def __repr__(self) -> str:
        return f"FitContext(method={self.config.method!r})"
jax.tree_util.register_dataclass(FitResult, data_fields=DATA_FIELDS, meta_fields=META_FIELDS)


def _fmt(x: float, width: int = 11) -> str:
    if np.isinf(x):
        return f"{'inf' if x > 0 else '-inf':>{width}}"
    if not np.isfinite(x):
        return f"{'nan':>{width}}"
    return f"{x:>{width}.4g}"


def _single_summary(res: FitResult, level: float, se=None, bounds=None,
                    se_label: str = "observed information") -> str:
    est = res.flat_params()
    se = res.flat_stderr() if se is None else se
    held = (np.zeros(len(est), bool) if res.context is None
            else held_mask(res.context.config.problem))
    q = normal_quantile(level)
    name_w = max([len(n) for n in res.param_names] + [9])
    lines = []
    code = int(res.status)
    head = f"mlejax fit: method={res.method}, status={Status(code).name}"
    lines.append(head)
    lines.append("=" * max(len(head), name_w + 72))
    nobs = int(res.nobs)
    lines.append(f"log-likelihood: {float(res.loglik):.10g}    steps: {int(res.n_steps)}    "
                 f"nobs: {nobs if nobs >= 0 else 'n/a'}    params: {res.df_model}")
    if res.penalty is not None:
        lines.append(f"penalised objective: {float(res.objective):.10g}    penalty: "
                     f"{res.penalty}")
        if se_label == "observed information":
            se_label = "inverse Hessian of the penalised objective"
    if res.penalty is not None and res.df_effective is None:
        crit = "AIC, BIC: n/a (penalised; effective df via res.with_df(df))"
    else:
        crit = f"AIC: {float(res.aic):.6g}    BIC: {float(res.bic):.6g}"
    lines.append(f"{crit}    scaled |grad|: {float(res.grad_norm):.2e}")
    if res.random is not None:
        sizes = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in res.random.mode.items())
        spec = None if res.context is None else res.context.config.random
        nodes = 1 if spec is None else spec.nodes
        how = "Laplace" if nodes == 1 else f"adaptive Gauss-Hermite, {nodes} nodes"
        lines.append(f"marginal likelihood over the random effects {sizes} ({how}); their "
                     "modes: res.random")
    if res.n_best is not None:
        r = int(np.shape(res.restarts.loglik)[0])
        conv = int(np.sum(np.asarray(res.restarts.converged)))
        lines.append(f"restarts: {r}, converged: {conv}, reached the best: {int(res.n_best)}")
    lines.append(f"status: {message(code)}")
    lines.append("-" * max(len(head), name_w + 72))
    pct = f"{level:.0%}"
    if se_label != "observed information" or bounds is not None:
        kind = "profile likelihood" if bounds is not None else "Wald"
        lines.append(f"standard errors: {se_label}; intervals: {kind}")
    lines.append(f"{'parameter':<{name_w}} {'estimate':>11} {'std err':>11} {'z':>9} "
                 f"{'P>|z|':>9} {'[' + pct + ' lo':>11} {pct + ' hi]':>11}")
    one_sided = False
    for i, (name, b, s) in enumerate(zip(res.param_names, est, se)):
        z = b / s if s > 0 else float("nan")
        p = math.erfc(abs(z) / math.sqrt(2.0)) if np.isfinite(z) else float("nan")
        lo, hi, mark = b - q * s, b + q * s, ""
        if bounds is not None:
            lo, hi = bounds[0][i], bounds[1][i]
            codes = bounds[2][i]
            if np.any(codes == 1):  # EndpointStatus.AT_BOUND: one-sided at a constraint
                mark, one_sided = " *", True
            elif np.any(codes != 0) and not np.all(codes == 2):
                mark = " ?"
        if held[i]:
            lines.append(f"{name:<{name_w}} {_fmt(b)} {'fixed':>11}")
            continue
        lines.append(f"{name:<{name_w}} {_fmt(b)} {_fmt(s)} {_fmt(z, 9)} {_fmt(p, 9)} "
                     f"{_fmt(lo)} {_fmt(hi)}{mark}")
    if one_sided:
        lines.append("* one-sided: the profile stays within the threshold up to the "
                     "constraint's bound, reported as the endpoint.")
    if bounds is not None and np.any((bounds[2] != 0) & (bounds[2] != 1) & (bounds[2] != 2)):
        lines.append("? an endpoint search failed (refit not converged, or the parameter "
                     "cannot be profiled): see res.confint(method='profile').status.")
    if held.any():
        lines.append(f"fixed: held at the value shown (fixed=), not estimated; params "
                     f"counts the {res.df_model} free ones.")
    if not np.all(np.isfinite(np.asarray(se)[~held])):
        lines.append("note: NaN standard errors: the observed information is singular or not "
                     "positive definite at the estimate.")
    if code != Status.CONVERGED:
        lines.append("WARNING: this fit did NOT converge; the estimates above are not a "
                     "verified maximum.")
    return "\n".join(lines)


def _batch_summary(res: FitResult) -> str:
    codes = np.asarray(res.status).ravel()
    k = codes.size
    head = f"mlejax batch of {k} fits: method={res.method}"
    lines = [head, "=" * 72]
    lines.append(f"converged: {np.mean(codes == Status.CONVERGED):.1%} "
                 f"({int(np.sum(codes == Status.CONVERGED))}/{k})")
    for s in Status:
        n = int(np.sum(codes == s))
        if n and s != Status.RUNNING:
            lines.append(f"  {s.name:<18} {n:>8}  {message(s)}")
    ll = np.asarray(res.loglik).ravel()
    steps = np.asarray(res.n_steps).ravel()
    lines.append(f"log-likelihood: median {np.nanmedian(ll):.6g}, range "
                 f"[{np.nanmin(ll):.6g}, {np.nanmax(ll):.6g}]; steps: median "
                 f"{np.median(steps):.0f}, max {steps.max()}")
    lines.append("-" * 72)
    est = res.flat_params().reshape(k, -1)
    name_w = max([len(n) for n in res.param_names] + [9])
    lines.append(f"{'parameter':<{name_w}} {'q05':>11} {'q25':>11} {'median':>11} {'q75':>11} "
                 f"{'q95':>11}")
    for j, name in enumerate(res.param_names):
        qs = np.nanquantile(est[:, j], [0.05, 0.25, 0.5, 0.75, 0.95]) if k else [np.nan] * 5
        lines.append(f"{name:<{name_w}} " + " ".join(_fmt(v) for v in qs))
    return "\n".join(lines)
