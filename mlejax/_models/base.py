"""What every regression model shares: the design matrix, the checks, the fit, the result.

A model supplies only its pieces (``Model`` is abstract; the concrete models are final):

* ``constraints()`` for the parameters other than the coefficients ``beta``,
* ``loglik_fn()`` the per-observation log-likelihood ``loglik_fn(params, data)`` with
  ``data = {"X", "y", "offset"}`` (one function object per model configuration, cached, so
  same-shaped data reuse one compiled program),
* ``start(X, y, offset, w)`` a data-driven starting point for one dataset (pure JAX),
* ``check_y(y, w)`` the host-side support check of the response,
* ``mean(params, X, offset)`` the fitted mean, for ``predict``.

``Model.fit`` and ``Model.fit_batch`` do the rest: the design matrix (an intercept column
named ``const`` unless ``X`` already has a constant column, names from ``feature_names=``
or a pandas DataFrame's columns), offsets and exposures, the checks (shapes, NaN, support,
fewer observations than parameters, linearly dependent columns), and the call to
:func:`mlejax.fit` / :func:`mlejax.fit_batch`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._fit import fit, fit_batch
from mlejax._warnings import FitWarning
from mlejax._numerics import is_concrete, normal_quantile
from mlejax._models.common import in_datasets
from mlejax._models.design import Design, given_inputs, is_frame, make_design
from mlejax._models.formula import from_formula
from mlejax._programs import program_cache
from mlejax.result import FitResult
from mlejax.status import HasStatus

__all__ = ["Model", "RegressionResult", "SeparationWarning"]


class SeparationWarning(FitWarning):
    """Perfect or quasi-perfect separation: a binary-response MLE that does not exist.

    Warned by :class:`~mlejax.models.Logistic` and :class:`~mlejax.models.Probit` fits (the
    flag is also in ``res.extra["separated"]``); a :class:`~mlejax.FitWarning`, so
    ``warnings.simplefilter("error", mj.models.SeparationWarning)`` makes it an error.

    Example:
      >>> issubclass(mj.models.SeparationWarning, mj.FitWarning)
      True
    """


# ------------------------------------------------------------------------ the result


@dataclasses.dataclass(frozen=True)
class RegressionResult(HasStatus):
    """A fitted regression: the core :class:`~mlejax.FitResult` with names and ``predict``.

    Attributes:
      fit_result: the underlying :class:`~mlejax.FitResult` (``param_names`` carry the
        feature names).
      extra: model-specific arrays, e.g. ``"gn_stderr"`` and ``"gn_cov"`` for
        :class:`~mlejax.models.Nonlinear`, ``"separated"`` for binary models.
      model: the model that produced it (static).
      feature_names: the names of the coefficients, in order (static).
      intercept_added: whether ``fit`` prepended the ``const`` column (``predict`` does too).
      cov_type: ``"observed"`` or ``"expected"``: the information that ``cov`` and
        ``stderr`` come from.
      formula: the :class:`~mlejax.models.FormulaModel` of a fit from a formula (``predict``
        then takes a data frame through it), else None.
      batch_labels: for ``FormulaModel.fit_batch(by=...)``, the value of ``by`` of each fit.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([-1.1, -0.4, 0.6, 0.3, 1.5, 1.4, 2.6, 3.1])
      >>> res = mj.models.Linear().fit(x, y)
      >>> isinstance(res, mj.models.RegressionResult), res.feature_names, res.intercept_added
      (True, ('const', 'x1'), True)
      >>> round(float(res.coef_table()["x1"]["stderr"]), 4), bool(res.converged)
      (0.1581, True)
    """

    fit_result: FitResult
    extra: dict
    model: Any = dataclasses.field(default=None, compare=False)
    feature_names: tuple[str, ...] = ()
    intercept_added: bool = False
    cov_type: str = "observed"
    formula: Any = dataclasses.field(default=None, repr=False, compare=False)
    batch_labels: tuple | None = None

    # --- delegation to the core result -------------------------------------------------
    @property
    def params(self) -> Any:
        return self.fit_result.params

    @property
    def stderr(self) -> Any:
        return self.fit_result.stderr

    @property
    def cov(self) -> jax.Array:
        return self.fit_result.cov

    @property
    def loglik(self) -> jax.Array:
        return self.fit_result.loglik

    @property
    def aic(self) -> jax.Array:
        return self.fit_result.aic

    @property
    def bic(self) -> jax.Array:
        return self.fit_result.bic

    @property
    def status(self) -> jax.Array:
        return self.fit_result.status

    @property
    def nobs(self) -> jax.Array:
        return self.fit_result.nobs

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.fit_result.param_names

    @property
    def is_batch(self) -> bool:
        return self.fit_result.is_batch

    @property
    def coef(self) -> jax.Array:
        """The regression coefficients (``params["beta"]``; ``params["b"]`` for Nonlinear)."""
        return self.model.coef_of(self.params)

    # --- robust errors (computed by mlejax.inference) ------------------------------------
    @property
    def cov_robust(self) -> jax.Array:
        """The HC0 sandwich covariance ``A^-1 B A^-1`` over ``param_names``.

        Cluster-robust: ``mj.robust_cov(res, groups=...)``, whose default small-sample
        factor is the model's (``G/(G-1)`` for the likelihood models, ``G/(G-1)
        (N-1)/(N-K)`` for Linear and Nonlinear, as Stata; see :func:`mlejax.robust_cov`).
        """
        from mlejax import inference
        return inference.robust_cov(self)

    @property
    def stderr_robust(self) -> Any:
        """Square roots of the diagonal of ``cov_robust``, with the structure of ``params``."""
        from mlejax import inference
        return inference.robust_stderr(self)

    def confint(self, level: float = 0.95, method: str = "wald", **kwargs):
        """Confidence intervals: ``method="wald"`` or ``"profile"``; ``cov="robust"`` with
        ``groups=`` for cluster-robust Wald intervals (see ``mj.confint``)."""
        from mlejax import inference
        return inference.confint(self, level, method=method, **kwargs)

    # --- the model's view ----------------------------------------------------------------
    def predict(self, X: Any, *, offset: Any = None, exposure: Any = None,
                **inputs: Any) -> jax.Array:
        """The fitted mean at new predictors (probabilities for binary models, rates for
        count models, ``(m, J)`` probabilities for categorical ones); ``(m,)`` for a single
        fit, ``(K, m)`` for a batch (``X`` shared ``(m, d)`` or per fit ``(K, m, d)``);
        the model's extra inputs (e.g. ``exog_infl``) as keywords. A fit from a formula
        takes a data frame of new rows, encoded as in the fit."""
        if self.formula is not None and is_frame(X):
            X = self.formula.design(X)
        return self.model.predict(self, X, offset=offset, exposure=exposure, **inputs)

    def to_frame(self, level: float = 0.95):
        """The coefficient table as a pandas DataFrame (see :meth:`mlejax.FitResult.to_frame`;
        a batch from ``fit_batch(by=...)`` is indexed by the values of ``by``)."""
        return self.fit_result.to_frame(level, index=self.batch_labels)

    def coef_table(self, level: float = 0.95) -> dict:
        """``{name: {"estimate", "stderr", "z", "p", "lo", "hi"}}`` over every parameter
        (arrays with a leading K for a batch); Wald intervals at ``level``."""
        est = self.fit_result.flat_params()
        se = self.fit_result.flat_stderr()
        q = normal_quantile(level)
        out = {}
        for j, name in enumerate(self.param_names):
            b, s = est[..., j], se[..., j]
            with np.errstate(divide="ignore", invalid="ignore"):
                z = b / s
            p = np.vectorize(lambda t: math.erfc(abs(t) / math.sqrt(2.0)))(z)
            out[name] = {"estimate": b, "stderr": s, "z": z, "p": p, "lo": b - q * s,
                         "hi": b + q * s}
        return out

    def summary(self, level: float = 0.95, *, cov: Any = "observed", ci: str = "wald",
                groups: Any = None) -> str:
        """The model's name, then :meth:`mlejax.FitResult.summary`; ``cov="robust"`` (with
        ``groups=`` for clusters) takes the model's small-sample factor."""
        if isinstance(cov, str) and cov == "robust":
            from mlejax import inference
            label = (f"cluster-robust (sandwich, {self.model.cluster_correction} "
                     "correction)" if groups is not None else "robust (sandwich, HC0)")
            cov = inference.robust_cov(self, groups=groups)
            text = self.fit_result.summary(level, cov=cov, ci=ci)
            text = text.replace("standard errors: given covariance", "standard errors: "
                                + label, 1)
        else:
            text = self.fit_result.summary(level, cov=cov, ci=ci, groups=groups)
            if self.cov_type == "expected" and isinstance(cov, str) and cov == "observed" \
                    and groups is None:
                text = text.replace("standard errors: observed information",
                                    "standard errors: expected information", 1)
        head = f"{self.model.describe()}\n"
        return head + self.model.arrange_table(self, text) + self.model.summary_extra(self)

    def __repr__(self) -> str:
        return f"RegressionResult({self.model.describe()}, {self.fit_result!r})"


jax.tree_util.register_dataclass(
    RegressionResult, data_fields=["fit_result", "extra"],
    meta_fields=["model", "feature_names", "intercept_added", "cov_type", "formula",
                 "batch_labels"])


# ------------------------------------------------------------------------ the model


class Model:
    """Abstract base of the design-matrix regressions (``fit``, ``fit_batch``, ``predict``).

    Example:
      >>> isinstance(mj.models.Logistic(), mj.models.Model), mj.models.Gamma().describe()
      (True, 'Gamma regression (log link)')
    """

    intercept: bool = True
    log_link: bool = False
    # The default small-sample factor of cluster-robust errors (mlejax.robust_cov): Stata's
    # for the model's command. "ml" G/(G-1) for the likelihood models (poisson, nbreg,
    # logit, probit, glm); "linear" G/(G-1) (N-1)/(N-K) for least squares (regress).
    cluster_correction: str = "ml"

    #: Extra per-observation keyword arrays that ``fit``, ``fit_batch`` and ``predict``
    #: accept (e.g. ``("exog_infl",)``, ``("trials",)``), validated by ``prepare_inputs``.
    inputs: tuple[str, ...] = ()
    #: Whether ``var_weights=`` is defined (GLM families with a dispersion: observation i has
    #: dispersion ``phi / var_weights[i]``, statsmodels' GLM meaning); it reaches the
    #: log-likelihood as ``data["var_weights"]`` (absent when not given).
    var_weights_ok: bool = False

    # --- the pieces each model supplies ---------------------------------------------------
    def describe(self) -> str:
        raise NotImplementedError

    def constraints(self) -> dict:
        return {}

    def loglik_fn(self) -> Callable:
        raise NotImplementedError

    def start(self, X, y, offset, w) -> dict:
        raise NotImplementedError

    def initial(self, X, y, offset, w, extra: dict) -> dict:
        """The start of one dataset (pure JAX, vmapped for ``fit_batch``); ``extra`` holds
        the leaves of :meth:`prepare_inputs`. Models without extra inputs write ``start``."""
        del extra
        return self.start(X, y, offset, w)

    def mean(self, params, X, offset) -> jax.Array:
        raise NotImplementedError

    def mean_at(self, params, X, offset, extra: dict) -> jax.Array:
        """What ``predict`` returns for one fit (the mean, or ``(m, J)`` probabilities)."""
        del extra
        return self.mean(params, X, offset)

    def prepare_inputs(self, inputs: dict, design: Design, predict: bool) -> tuple[dict, dict]:
        """Validates the model's extra inputs (``inputs`` maps each name in ``self.inputs`` to
        the user's value or None) on the host and returns ``(leaves, labels)``: data leaves
        added beside ``"X"``, ``"y"``, ``"offset"`` (leading axes those of ``y``), and the
        element names of parameter leaves other than ``beta`` (``{"gamma": (...)}``). With
        ``predict=True`` ``design.y`` is None and the leaves follow ``design.X``'s rows."""
        del inputs, design, predict
        return {}, {}

    def specialize(self, y: np.ndarray, inside: np.ndarray) -> "Model":
        """This model with the static settings the data decide (e.g. the categories),
        called with the concrete response; the model returned fits and is kept."""
        del y, inside
        return self

    def check_y(self, y: np.ndarray, inside: np.ndarray, batched: bool) -> None:
        del y, inside, batched

    def check_separation(self, X, y, inside, names, batched) -> None:
        del X, y, inside, names, batched

    def n_extra_params(self) -> int:
        """Parameters beyond the coefficients (sigma, alpha, shape, df)."""
        return 0

    def n_params(self, d: int, extra: dict) -> int:
        """The number of parameters with ``d`` columns of ``X`` (for the ``n >= p`` check)."""
        del extra
        return d + self.n_extra_params()

    def param_label(self, raw: str, names: tuple[str, ...], labels: dict) -> str:
        """The display name of one flat parameter: ``beta[j]`` is the ``j``-th column's
        name, ``leaf[j]`` the ``j``-th of ``labels[leaf]``; others as they are."""
        leaf, _, rest = raw.partition("[")
        if not rest or "," in rest:
            return raw
        table = names if leaf == "beta" else labels.get(leaf)
        return raw if table is None else table[int(rest[:-1])]

    def expected_information(self, params, data, w) -> dict:
        """The expected (Fisher) information per parameter leaf on the natural scale
        (``{leaf: (size, size)}``, or None for a leaf whose observed block is used), the
        leaves orthogonal (block diagonal); used by ``cov_type="expected"``."""
        del params, data, w
        raise NotImplementedError

    def extra_data(self, dtype) -> dict:
        """Static-shaped values the log-likelihood reads from ``data`` (a fixed ``df``), so
        models differing only in them share one compiled program."""
        del dtype
        return {}

    def coef_of(self, params) -> jax.Array:
        return params["beta"]

    def robust_k(self, res: FitResult) -> int:
        """``K`` of the ``(N-1)/(N-K)`` factor of ``correction="linear"``: every free
        parameter (statsmodels' count); least-squares models leave ``sigma`` out."""
        return res.df_model

    def robust_view(self, res: "RegressionResult") -> tuple[FitResult, Any]:
        """The fit whose scores give the sandwich, and the scale of its flat parameters
        relative to ``res.param_names`` (None: the same parameters)."""
        return res.fit_result, None

    def extra_of(self, res: FitResult, design: Design, warn: bool) -> dict:
        """Model-specific results computed after the fit (on concrete values)."""
        del res, design, warn
        return {}

    def summary_extra(self, res: RegressionResult) -> str:
        del res
        return ""

    def arrange_table(self, res: RegressionResult, text: str) -> str:
        """The summary's text with its coefficient rows arranged for this model (as they are
        by default; the multinomial logit makes one block per category)."""
        del res
        return text

    # --- shared machinery -------------------------------------------------------------------
    @classmethod
    def from_formula(cls, formula: str, data: Any, *, missing: str = "raise",
                     context: Any = None, **options: Any):
        """This model on the design of a formula: ``Logistic.from_formula("y ~ x1 + C(g)",
        df).fit()`` (formulaic, ``pip install "mlejax[formula]"``; see
        :class:`~mlejax.models.FormulaModel`). ``options`` construct the model (``link=``,
        ``df=``, ...); names in the formula resolve in the caller's scope (or ``context``).
        ``missing="drop"`` drops incomplete rows (by default they are an error)."""
        model = cls(**options)
        return from_formula(model, formula, data, missing=missing, context=context, depth=2)

    def fit(self, X: Any, y: Any, *, weights: Any = None, var_weights: Any = None,
            offset: Any = None, exposure: Any = None, feature_names: Any = None,
            method: Any = "newton", max_steps: int | None = None,
            obs_chunk: int | None = None, fixed: Any = None, cov_type: str = "observed",
            warn: bool = True, **inputs: Any) -> RegressionResult:
        """Maximum-likelihood fit of one dataset: ``X`` ``(n, d)`` (or a DataFrame), ``y``
        ``(n,)``; ``offset`` is added to the linear predictor, ``exposure`` adds its log.

        ``weights`` are frequency weights; ``var_weights`` (GLM families with a dispersion)
        give observation ``i`` the dispersion ``phi / var_weights[i]``. ``fixed`` holds
        parameters at given values (``{"alpha": 1.0}``, see :func:`mlejax.fit`).
        ``cov_type="expected"`` takes the standard errors from the expected (Fisher)
        information where the model has one (R's ``glm`` and ``glm.nb`` report these), the
        default ``"observed"`` from the observed information. ``obs_chunk`` sums the rows in
        chunks of that many (for large ``n``; see :func:`mlejax.fit`). Models with extra
        inputs (``self.inputs``, e.g. ``exog_infl``, ``trials``) take them as keywords.
        """
        design = make_design(self, X, y, weights=weights, offset=offset, exposure=exposure,
                             feature_names=feature_names, batched=False, inputs=inputs,
                             var_weights=var_weights)
        return self._run(design, method=method, max_steps=max_steps, warn=warn,
                         obs_chunk=obs_chunk, fixed=fixed, cov_type=cov_type)

    def fit_batch(self, X: Any, y: Any, *, weights: Any = None, var_weights: Any = None,
                  offset: Any = None, exposure: Any = None, feature_names: Any = None,
                  method: Any = "newton", max_steps: int | None = None,
                  obs_chunk: int | None = None, fixed: Any = None,
                  cov_type: str = "observed", warn: bool = True,
                  **inputs: Any) -> RegressionResult:
        """K fits in one compiled program: ``X`` ``(K, n, d)`` (or one ``(n, d)`` shared by
        all), ``y`` ``(K, n)``; ragged datasets through ``weights`` (0 for padding rows); the
        other arguments as in :meth:`fit` (per-observation inputs ``(K, n, ...)``)."""
        design = make_design(self, X, y, weights=weights, offset=offset, exposure=exposure,
                             feature_names=feature_names, batched=True, inputs=inputs,
                             var_weights=var_weights)
        return self._run(design, method=method, max_steps=max_steps, warn=warn,
                         obs_chunk=obs_chunk, fixed=fixed, cov_type=cov_type)

    def _run(self, design: Design, *, method, max_steps, warn, obs_chunk=None, fixed=None,
             cov_type="observed") -> RegressionResult:
        if cov_type not in ("observed", "expected"):
            raise ValueError(f"cov_type must be 'observed' or 'expected'; got {cov_type!r}.")
        X, y, off, w = design.X, design.y, design.offset, design.weights
        model = self
        if not design.traced:
            yy = np.asarray(y)
            inside = np.ones(yy.shape, bool) if w is None else np.asarray(w) > 0
            model = self.specialize(yy, inside)
        wfill = jnp.ones_like(y) if w is None else w
        start, order = _start_program(model, design.batched)
        init = start(X, y, off, wfill, design.extra)
        init = {key: init[key] for key in order}
        data = {"X": X, "y": y, "offset": off, **design.extra}
        for key, val in model.extra_data(design.dtype).items():
            if obs_chunk is not None:   # one copy per row: every leaf is chunked by rows
                val = jnp.broadcast_to(val, (y.shape[-1],) + val.shape)
            data[key] = jnp.broadcast_to(val, (y.shape[0],) + val.shape) if design.batched \
                else val
        kw = dict(constraints=model.constraints(), weights=w, method=method,
                  max_steps=max_steps, obs_chunk=obs_chunk, warn=warn)
        if fixed is not None:
            kw["fixed"] = fixed
        if design.batched:
            res = fit_batch(model.loglik_fn(), init, data, init_batched=True, **kw)
        else:
            res = fit(model.loglik_fn(), init, data, **kw)
        if cov_type == "expected":
            res = _with_expected_cov(model, res, data, wfill, design.batched)
        res = dataclasses.replace(res, param_names=tuple(
            model.param_label(r, design.names, design.labels) for r in res.param_names))
        extra = model.extra_of(res, design, warn) if is_concrete(res.params) else {}
        return RegressionResult(res, extra, model, design.names, design.intercept_added,
                                cov_type)

    def predict(self, res: RegressionResult, X, *, offset=None, exposure=None,
                **inputs) -> jax.Array:
        if is_frame(X):
            X = X.to_numpy()
        dtype = jnp.result_type(res.coef)
        X = jnp.asarray(X, dtype)
        if X.ndim == 1:
            X = X[:, None]
        if res.intercept_added:
            X = jnp.concatenate([jnp.ones(X.shape[:-1] + (1,), dtype), X], axis=-1)
        p = len(res.feature_names)
        if X.shape[-1] != p:
            hint = " (without the const column, which predict adds)" if res.intercept_added \
                else ""
            raise ValueError(f"X has {X.shape[-1]} columns but the model has {p} coefficients "
                             f"({', '.join(res.feature_names)}); pass the columns used in fit"
                             f"{hint}.")
        off = jnp.zeros(X.shape[:-1], dtype)
        if offset is not None:
            off = off + jnp.asarray(offset, dtype)
        if exposure is not None:
            off = off + jnp.log(jnp.asarray(exposure, dtype))
        batched = res.is_batch
        if batched and X.ndim == 2:
            X = jnp.broadcast_to(X, (np.size(res.loglik),) + X.shape)
        off = jnp.broadcast_to(off, X.shape[:-1])
        design = Design(X, None, off, None, res.feature_names, res.intercept_added, dtype,
                        batched, not is_concrete(X))
        extra, _ = self.prepare_inputs(given_inputs(self, inputs), design, True)
        extra = {k: jnp.asarray(v) for k, v in extra.items()}
        if not batched:
            return self.mean_at(res.params, X, off, extra)
        return jax.vmap(self.mean_at)(res.params, X, off, extra)


def _with_expected_cov(model: Model, res: FitResult, data, w, batched: bool) -> FitResult:
    """``res`` with ``cov`` and ``stderr`` from the model's expected information."""
    raw = res.param_names
    leaves = [r.partition("[")[0] for r in raw]
    try:
        info = jax.eval_shape(model.expected_information, *jax.tree_util.tree_map(
            lambda a: a[0] if batched else a, (res.params, data, w)))
    except NotImplementedError:
        raise ValueError(f"{model.describe()} has no expected information; use "
                         "cov_type='observed' (the default).") from None
    del info
    program = _expected_program(model, tuple(leaves), batched)
    cov = program(res.params, data, w, res.cov)
    se_flat = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    problem = res.context.config.problem
    unravel = jax.vmap(problem.unravel_natural) if batched else problem.unravel_natural
    return dataclasses.replace(res, cov=cov, stderr=unravel(se_flat))


@program_cache
def _expected_program(model: Model, leaves: tuple[str, ...], batched: bool) -> Callable:
    """The covariance from the expected information as one compiled program: the model's
    blocks, a leaf without one taking its block of the observed information ``cov^-1``."""

    def one(params, data, w, cov_obs):
        blocks = model.expected_information(params, data, w)
        obs_info = jnp.linalg.inv(cov_obs)
        p = cov_obs.shape[-1]
        info = jnp.zeros((p, p), cov_obs.dtype)
        start = 0
        while start < p:
            leaf = leaves[start]
            stop = start
            while stop < p and leaves[stop] == leaf:
                stop += 1
            block = blocks.get(leaf) if leaf in blocks else None
            if block is None:
                block = obs_info[start:stop, start:stop]
            info = info.at[start:stop, start:stop].set(
                jnp.reshape(block, (stop - start, stop - start)).astype(cov_obs.dtype))
            start = stop
        return jnp.linalg.inv(info)

    return jax.jit(jax.vmap(one) if batched else one)


@program_cache
def _start_program(model: Model, batched: bool) -> tuple[Callable, list]:
    """The model's starting values as one compiled program (cached per model and layout),
    and the order in which ``initial`` wrote their keys (filled when it is traced): a dict
    comes out of ``jit`` with its keys sorted, and the parameters are reported in the
    model's own order (``const, x1, alpha``, as statsmodels lists them)."""
    order: list = []

    def start(*args):
        out = model.initial(*args)
        order[:] = list(out)
        return out

    return jax.jit(jax.vmap(start) if batched else start), order


def separation_flags(beta, design: Design, warn: bool) -> jax.Array:
    """Post-fit detection of the separation that a single column does not reveal.

    Fitted probabilities numerically 0 or 1 that match the observed labels, with a
    coefficient far from zero on the scale of its column, mean the likelihood still rises
    along a direction of the coefficients: the MLE does not exist (quasi-complete
    separation). Returns one flag per fit and warns, naming the coefficient that diverges
    (the largest ``|beta_j| sd(x_j)``).
    """
    eps = float(jnp.finfo(design.dtype).eps)
    thr = -math.log(eps) / 2.0 + 2.0   # |eta| beyond which p is within ~sqrt(eps) of 0 or 1
    X = np.asarray(design.X, np.float64)
    y = np.asarray(design.y)
    w = np.ones_like(y) if design.weights is None else np.asarray(design.weights)
    off = np.asarray(design.offset, np.float64)
    beta = np.asarray(beta, np.float64)
    if not design.batched:
        X, y, w, off, beta = X[None], y[None], w[None], off[None], beta[None]
    eta = np.einsum("knd,kd->kn", X, beta) + off
    inside = w > 0
    perfect = inside & (((y == 1) & (eta > thr)) | ((y == 0) & (eta < -thr)))
    mean = np.sum(X * inside[..., None], axis=1) / np.maximum(inside.sum(1), 1)[:, None]
    var = np.sum(((X - mean[:, None, :]) ** 2) * inside[..., None], axis=1)
    sd = np.sqrt(var / np.maximum(inside.sum(1), 1)[:, None])
    sd = np.where(sd > 0, sd, 1.0)
    size = np.abs(beta) * sd
    flagged = perfect.any(axis=1) & (size.max(axis=1) > 8.0)
    if warn and np.any(flagged):
        k = int(np.flatnonzero(flagged)[0])
        j = int(np.argmax(size[k]))
        warnings.warn(
            f"perfect or quasi-perfect separation{in_datasets(flagged, design.batched)}: "
            f"{int(perfect[k].sum())} observation(s) are predicted with probability "
            f"numerically 0 or 1, and the coefficient of {design.names[j]!r} diverges "
            f"(estimate {beta[k, j]:.4g}, growing without bound): the MLE does not exist. "
            "Drop or merge the separating variable, or use a penalised fit.",
            SeparationWarning, stacklevel=4)
    return jnp.asarray(flagged if design.batched else flagged[0])
