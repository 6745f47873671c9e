"""Regressions on a categorical response: multinomial logit, ordered logit and ordered probit.

The response holds one of ``J`` categories per observation: integer codes ``0..J-1`` or any
labels (strings, integers that are not ``0..J-1``, booleans, a pandas ``Categorical``),
mapped to codes on the host before the fit; the categories, sorted (or in the order of a
pandas ``Categorical`` or of ``categories=``), are kept in the fitted model so that the
summary names them. ``J`` is static (it sets the shapes of the parameters): the fit fills it
in from the data, or the user gives it (``n_categories=``), which a fit inside ``jit`` (a
traced ``y`` of codes) needs. ``fit_batch`` fits one ``J`` to every dataset.

========================  ====================================  ==========================
model                     ``P(y = k | x)``                      parameters
========================  ====================================  ==========================
``MultinomialLogit``      ``exp(x b_k) / sum_j exp(x b_j)``,    ``beta`` ``(d, J-1)``
                          ``b_0 = 0`` (the first category is
                          the baseline)
``OrderedLogit``          ``F(c_k - x b) - F(c_{k-1} - x b)``,  ``beta`` ``(d,)``,
                          ``F`` logistic, ``c_{-1} = -inf``,    ``cuts`` ``(J-1,)``
                          ``c_{J-1} = +inf``                    increasing
``OrderedProbit``         the same with ``F = Phi``             the same
========================  ====================================  ==========================

The ordered models have no intercept (the cut-points absorb it): ``X`` must not hold a
constant column and none is added. Their cut-points are one leaf ``cuts`` under
:data:`mlejax.ordered` (``c_0`` free, each gap ``exp`` of a free coordinate: statsmodels'
``OrderedModel`` parameterisation), reported, with their standard errors, on the natural
scale (R's ``polr`` and Stata's ``ologit``/``oprobit`` ``/cut``). The log-probability of a
middle category is the log of a difference of CDFs, evaluated from the tail where the
difference is not a cancellation: ``log F(b) + log(1 - exp(log F(a) - log F(b)))`` when
``a <= 0``, and the same with the survival function ``S(x) = F(-x)`` when ``a > 0``.

References:
  McCullagh, Regression models for ordinal data, JRSS B 42 (1980); Agresti, Categorical Data
  Analysis (2013), ch. 8; Greene, Econometric Analysis (2012), ch. 18.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp

from mlejax import constraints as C
from mlejax._models.base import Model, RegressionResult
from mlejax._models.common import in_datasets
from mlejax._numerics import is_concrete

__all__ = ["MultinomialLogit", "OrderedLogit", "OrderedProbit"]


# ------------------------------------------------------------------------ log-likelihoods
# Module level: one function object each, so every fit with same-shaped data reuses one
# compiled program (J is read from the shapes of the parameters).


def mnlogit_loglik(params, data):
    eta = data["X"] @ params["beta"]                                   # (n, J-1)
    full = jnp.concatenate([jnp.zeros_like(eta[..., :1]), eta], axis=-1)
    levels = jnp.arange(full.shape[-1], dtype=data["y"].dtype)
    picked = jnp.sum(jnp.where(data["y"][..., None] == levels, full, 0.0), axis=-1)
    return picked - jax.nn.logsumexp(full, axis=-1)


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x < 0`` (Maechler's two branches), with safe values in the
    branch not taken so that neither gradient is NaN."""
    near = x > -math.log(2.0)
    a = jnp.where(near, x, -1.0)
    b = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(a)), jnp.log1p(-jnp.exp(b)))


def _log_sigmoid(x):
    return -jax.nn.softplus(-x)


def ordered_logp(cuts, eta, k, log_cdf: Callable):
    """``log P(y = k)`` of an ordered model, ``log(F(c_k - eta) - F(c_{k-1} - eta))``,
    accurate in both tails (``F`` symmetric: ``log S(x) = log_cdf(-x)``); broadcasts ``eta``
    against the integer codes ``k``."""
    m = cuts.shape[-1]                       # J - 1
    shape = jnp.broadcast_shapes(jnp.shape(eta), jnp.shape(k))
    k = jnp.broadcast_to(k, shape)
    eta = jnp.broadcast_to(eta, shape)
    hi = jnp.take(cuts, jnp.clip(k, 0, m - 1)) - eta          # c_k - eta
    lo = jnp.take(cuts, jnp.clip(k - 1, 0, m - 1)) - eta      # c_{k-1} - eta
    first, last = k == 0, k == m
    mid = ~(first | last)
    a = jnp.where(mid, lo, 0.0)
    b = jnp.where(mid, hi, 1.0)
    upper = a > 0.0
    # Both ends in the upper tail: log(S(a) - S(b)), no cancellation of F near 1.
    au, bu = jnp.where(upper, a, 1.0), jnp.where(upper, b, 2.0)
    lsa = log_cdf(-au)
    up = lsa + _log1mexp(log_cdf(-bu) - lsa)
    # Otherwise F(a) < 1/2: log(F(b) - F(a)).
    al, bl = jnp.where(upper, -1.0, a), jnp.where(upper, 0.0, b)
    lfb = log_cdf(bl)
    down = lfb + _log1mexp(log_cdf(al) - lfb)
    return jnp.where(first, log_cdf(hi), jnp.where(last, log_cdf(-lo), jnp.where(upper, up,
                                                                                 down)))


def _ordered_eta(params, data):
    return data["X"] @ params["beta"] + data["offset"]


def ologit_loglik(params, data):
    return ordered_logp(params["cuts"], _ordered_eta(params, data),
                        data["y"].astype(jnp.int32), _log_sigmoid)


def oprobit_loglik(params, data):
    return ordered_logp(params["cuts"], _ordered_eta(params, data),
                        data["y"].astype(jnp.int32), jsp.log_ndtr)


# ------------------------------------------------------------------------ the categories


def _scalar(v):
    """A label as a plain Python value (``2`` rather than ``np.float64(2.0)``)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _encode(y: Any, inside: np.ndarray | None, categories: tuple | None,
            n_categories: int | None) -> tuple[tuple, np.ndarray]:
    """The categories and the codes ``0..J-1`` of a concrete response (host side).

    ``categories`` (given) fixes the categories and their order; else a pandas
    ``Categorical`` gives its own; else ``n_categories`` says ``y`` holds the codes
    ``0..J-1``; else the categories are the sorted distinct values of ``y`` in the rows
    with positive weight. Rows outside (weight 0) take code 0 when their value is unknown.
    """
    cats_of_y = getattr(getattr(y, "dtype", None), "categories", None)
    if cats_of_y is not None and categories is None:
        codes = np.asarray(y.cat.codes if hasattr(y, "cat") else y.codes)
        if np.any(codes < 0):
            raise ValueError(f"y has {int(np.sum(codes < 0))} missing value(s); remove them "
                             "(or give those rows weight 0 and any category).")
        return tuple(_scalar(c) for c in cats_of_y), codes.astype(np.int64)
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    y = np.asarray(y)
    inside = np.ones(y.shape, bool) if inside is None else np.broadcast_to(inside, y.shape)
    kind = y.dtype.kind
    if kind == "c":
        raise ValueError("y must hold category codes or labels; got complex values.")
    if kind in "fiub":
        if kind == "f":
            bad = inside & ~np.isfinite(y)
            if np.any(bad):
                raise ValueError(f"y contains {int(bad.sum())} NaN or infinite value(s); "
                                 "remove them (or give those rows weight 0 and a finite "
                                 "placeholder).")
            frac = inside & (np.floor(np.where(np.isfinite(y), y, 0.0)) != y) & np.isfinite(y)
            if np.any(frac):
                vals = np.unique(y[frac])[:5].tolist()
                raise ValueError(f"y must hold category codes (integers) or labels; got "
                                 f"non-integer values such as {vals}. Round or recode the "
                                 "response (strings and a pandas Categorical are taken as "
                                 "labels).")
        values = None                     # numbers: mapped with numpy below
        seen = {_scalar(v) for v in np.unique(y[inside]).tolist()}
    else:
        values = [_scalar(v) for v in y.reshape(-1).tolist()]
        flat_in = inside.reshape(-1)
        missing = [i for i, v in enumerate(values) if flat_in[i] and _is_missing(v)]
        if missing:
            raise ValueError(f"y has {len(missing)} missing value(s) (None or NaN); remove "
                             "them (or give those rows weight 0 and any category).")
        seen = {v for v, i in zip(values, flat_in) if i}
    if categories is None and n_categories is not None:
        if not seen <= set(range(n_categories)) or not all(isinstance(v, int) for v in seen):
            outside = sorted(map(repr, seen - set(range(n_categories))))[:5]
            raise ValueError(f"n_categories={n_categories} means y holds the codes "
                             f"0..{n_categories - 1}; got values such as "
                             f"{', '.join(outside)}. Give categories= to name the labels, or "
                             "leave both out to take them from y.")
        categories = tuple(range(n_categories))
    if categories is None:
        try:
            categories = tuple(sorted(seen))
        except TypeError:
            raise ValueError("the labels of y cannot be sorted (mixed types such as "
                             f"{sorted({type(v).__name__ for v in seen})}); give their order "
                             "with categories=.") from None
    index = {c: j for j, c in enumerate(categories)}
    unknown = sorted({repr(v) for v in seen if v not in index})
    if unknown:
        raise ValueError(f"y holds values that are not among categories={categories!r}: "
                         f"{', '.join(unknown[:5])}. Add them to categories=, or recode y.")
    if values is None and all(isinstance(c, (int, float)) for c in categories):
        # Numbers against numeric categories: a sorted search, no Python loop over rows.
        cat = np.asarray(categories, dtype=np.float64)
        order = np.argsort(cat, kind="stable")
        yf = np.where(np.isfinite(y), y, 0.0).astype(np.float64) if kind == "f" \
            else y.astype(np.float64)
        pos = np.clip(np.searchsorted(cat[order], yf), 0, len(cat) - 1)
        codes = np.where(cat[order][pos] == yf, order[pos], 0).astype(np.int64)
        return categories, codes
    if values is None:
        values = [_scalar(v) for v in y.reshape(-1).tolist()]
    codes = np.array([index.get(v, 0) for v in values], dtype=np.int64).reshape(y.shape)
    return categories, codes


class _Categorical(Model):
    """Shared by the categorical models: the categories, the codes, their checks."""

    n_categories: int | None
    categories: tuple | None
    intercept: bool

    def __post_init__(self):
        cats = self.categories
        if cats is not None:
            if isinstance(cats, (str, bytes)) or not hasattr(cats, "__iter__"):
                raise ValueError(f"categories must be a sequence of labels, in order; got "
                                 f"{cats!r}.")
            cats = tuple(_scalar(c) for c in cats)
            if len(set(cats)) != len(cats):
                raise ValueError(f"categories must be distinct; got {cats!r}.")
            object.__setattr__(self, "categories", cats)
            if self.n_categories is not None and self.n_categories != len(cats):
                raise ValueError(f"n_categories={self.n_categories} but categories has "
                                 f"{len(cats)} labels; give one or make them agree.")
            object.__setattr__(self, "n_categories", len(cats))
        J = self.n_categories
        if J is not None and (isinstance(J, bool) or not isinstance(J, (int, np.integer))
                              or J < 2):
            raise ValueError(f"n_categories must be an integer >= 2; got {J!r}.")
        if J is not None:
            object.__setattr__(self, "n_categories", int(J))

    # --- the categories ------------------------------------------------------------------
    def _coded(self, y, weights, batched: bool):
        """The model with its categories filled in, and ``y`` as codes (host side)."""
        if not is_concrete(y):
            if self.n_categories is None:
                raise ValueError(f"{self.describe()}: y is traced (a fit inside jit or vmap), "
                                 "so the number of categories cannot be read from it; give "
                                 "n_categories= (y must then hold the codes 0..J-1).")
            return self._with(self.categories or tuple(range(self.n_categories))), y
        inside = None
        if weights is not None and is_concrete(weights):
            w = np.asarray(weights, dtype=np.float64)
            if np.shape(w) == np.shape(y):
                inside = w > 0
        cats, codes = _encode(y, inside, self.categories, self.n_categories)
        if len(cats) < 2:
            where = " in every dataset" if batched else ""
            raise ValueError(f"y has a single category ({cats[0]!r}){where}: "
                             f"{self.describe()} needs at least two.")
        return self._with(cats), codes

    def _with(self, cats: tuple) -> "_Categorical":
        return dataclasses.replace(self, n_categories=len(cats), categories=tuple(cats))

    def specialize(self, y: np.ndarray, inside: np.ndarray) -> "_Categorical":
        """This model with its categories read from ``y`` (which must hold the codes
        ``0..J-1`` here: ``fit`` maps labels to codes before the design is built)."""
        if self.categories is not None:
            return self
        cats, codes = _encode(y, inside, None, self.n_categories)
        if cats != tuple(range(len(cats))) or not np.array_equal(codes[inside],
                                                                 np.asarray(y)[inside]):
            raise ValueError(f"{self.describe()}: y must hold the codes 0..J-1 here; fit() and "
                             "fit_batch() map other labels to codes.")
        return self._with(cats)

    @property
    def J(self) -> int:
        if self.n_categories is None:
            raise ValueError(f"{self.describe()}: the number of categories is not known yet "
                             "(fit fills it in from y, or give n_categories=).")
        return int(self.n_categories)

    def _label(self, k: int) -> str:
        cats = self.categories or tuple(range(self.J))
        return str(cats[k])

    def check_y(self, y, inside, batched):
        J = self.J
        bad = inside & ~((y >= 0) & (y < J) & (np.floor(y) == y))
        if np.any(bad):
            vals = np.unique(y[bad])[:5].tolist()
            raise ValueError(f"y must hold the category codes 0..{J - 1} for "
                             f"{self.describe()}; got values such as {vals}"
                             f"{in_datasets(bad.any(1), batched)}.")
        for k in range(J):
            absent = ~np.any(inside & (y == k), axis=1)
            if np.any(absent):
                extra = (" Every dataset of a batch must hold all J categories (fit_batch fits "
                         "one J to all); fit that dataset alone, or merge categories."
                         if batched else " Drop it from categories=/n_categories, or merge "
                         "categories.")
                raise ValueError(f"category {self._label(k)!r} (code {k}) never occurs"
                                 f"{in_datasets(absent, batched)}: its parameters are not "
                                 f"identified (the MLE of its probability is 0).{extra}")

    # --- fit with labels -----------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, weights: Any = None, **options: Any) -> RegressionResult:
        """Maximum-likelihood fit of one dataset: ``X`` ``(n, d)`` (or a DataFrame), ``y``
        ``(n,)`` of category codes or labels (strings, a pandas ``Categorical``, ...); the
        other arguments as in :meth:`mlejax.models.Model.fit`. The fitted model
        (``res.model``) holds the categories."""
        model, codes = self._coded(y, weights, batched=False)
        model._check_options(options)
        return Model.fit(model, X, codes, weights=weights, **options)

    def fit_batch(self, X: Any, y: Any, *, weights: Any = None,
                  **options: Any) -> RegressionResult:
        """K fits in one compiled program: ``X`` ``(K, n, d)`` (or one ``(n, d)`` shared),
        ``y`` ``(K, n)``; the categories are those of the whole batch, and every dataset must
        hold all of them (one ``J`` for all). Otherwise as :meth:`fit`."""
        model, codes = self._coded(y, weights, batched=True)
        model._check_options(options)
        return Model.fit_batch(model, X, codes, weights=weights, **options)

    def _check_options(self, options: dict) -> None:
        del options

    def summary_extra(self, res: RegressionResult) -> str:
        cats = ", ".join(self._label(k) for k in range(self.J))
        return f"\ncategories of y (J={self.J}): {cats}"


# ------------------------------------------------------------------------ multinomial logit


@dataclasses.dataclass(frozen=True)
class MultinomialLogit(_Categorical):
    """Multinomial logit: ``P(y = k | x) = exp(x b_k) / sum_j exp(x b_j)`` with ``b_0 = 0``.

    The first (lowest) category is the baseline; ``beta`` is ``(d, J-1)``, column ``k-1``
    the log-odds coefficients of category ``k`` against it (statsmodels' ``MNLogit``, Stata's
    ``mlogit, baseoutcome(first)``). The parameters are named ``"x1:y=2"`` (column ``x1``,
    category ``2``): the summary lists every non-baseline category's coefficients.
    ``predict`` returns the ``(m, J)`` probabilities. The Hessian does not depend on ``y``,
    so the observed information is the expected one. No ``offset``.

    Args:
      intercept: prepend a ``const`` column unless ``X`` has a constant column.
      n_categories: ``J``; read from ``y`` when left out (needed for a traced ``y``).
      categories: the labels, in order (the first is the baseline); read from ``y`` (sorted)
        when left out. They name the parameters and do not change the compiled programs.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> y = np.array(["a", "b", "a", "c", "b", "a", "c", "b", "c", "b", "c", "c"])
      >>> res = mj.models.MultinomialLogit().fit(x, y)
      >>> res.param_names
      ('const:y=b', 'const:y=c', 'x1:y=b', 'x1:y=c')
      >>> res.coef.shape, res.model.categories
      ((2, 2), ('a', 'b', 'c'))
      >>> p = res.predict(np.array([0.0, 1.0]))                 # (m, J) probabilities
      >>> p.shape, [round(float(s), 6) for s in p.sum(axis=1)]
      ((2, 3), [1.0, 1.0])
    """

    intercept: bool = True
    n_categories: int | None = None
    categories: tuple | None = dataclasses.field(default=None, compare=False)

    def describe(self) -> str:
        if self.n_categories is None:
            return "Multinomial logit"
        return (f"Multinomial logit ({self.n_categories} categories, baseline "
                f"y={self._label(0)})")

    def loglik_fn(self):
        return mnlogit_loglik

    def _check_options(self, options):
        if options.get("offset") is not None or options.get("exposure") is not None:
            raise ValueError("MultinomialLogit takes no offset= or exposure= (a baseline-"
                             "category model has one linear predictor per category).")

    def n_params(self, d, extra):
        del extra
        return d * (self.J - 1)

    def start(self, X, y, offset, w):
        del offset
        J = self.J
        onehot = (y[:, None] == jnp.arange(J, dtype=y.dtype)).astype(X.dtype)
        p = jnp.maximum(w @ onehot / jnp.sum(w), 1e-8)
        target = jnp.log(p[1:]) - jnp.log(p[0])          # the baseline log-odds
        sw = jnp.sqrt(w)
        # X b ~ 1: with a constant column, b picks it, and the start is the intercept-only MLE.
        b = jnp.linalg.lstsq(X * sw[:, None], sw)[0]
        return {"beta": b[:, None] * target[None, :]}

    def mean(self, params, X, offset):
        del offset
        eta = X @ params["beta"]
        full = jnp.concatenate([jnp.zeros_like(eta[..., :1]), eta], axis=-1)
        return jax.nn.softmax(full, axis=-1)

    def expected_information(self, params, data, w):
        # The Hessian of the multinomial logit does not involve y: observed = expected.
        del params, data, w
        return {"beta": None}

    def param_label(self, raw, names, labels):
        leaf, _, rest = raw.partition("[")
        if leaf != "beta" or not rest:
            return super().param_label(raw, names, labels)
        j, k = (int(i) for i in rest[:-1].split(","))
        return f"{names[j]}:y={self._label(k + 1)}"

    def summary_extra(self, res):
        return super().summary_extra(res) + f" (baseline {self._label(0)})"

    def arrange_table(self, res, text):
        """One block of rows per non-baseline category under its own header, as statsmodels
        and Stata print them (the parameters themselves stay in ``beta``'s order)."""
        lines = text.split("\n")
        at = {}
        for name in res.param_names:
            hits = [i for i, line in enumerate(lines) if line.startswith(name + " ")]
            if len(hits) != 1:
                return text          # not a table with one row per parameter: as it is
            at[name] = hits[0]
        first, last = min(at.values()), max(at.values())
        if last - first + 1 != len(at):
            return text
        blocks = []
        for k in range(1, self.J):
            tag = f":y={self._label(k)}"
            blocks.append(f"y={self._label(k)} against y={self._label(0)}:")
            blocks += [lines[at[n]] for n in res.param_names if n.endswith(tag)]
        return "\n".join(lines[:first] + blocks + lines[last + 1:])


# ------------------------------------------------------------------------ ordered models


class _Ordered(_Categorical):
    """Shared by OrderedLogit and OrderedProbit: no intercept, cut-points ``cuts``."""

    intercept = False      # the cut-points absorb it; no const column is added
    absorbs_intercept = True   # from_formula drops the formula's Intercept column
    link = ""

    def constraints(self):
        return {"cuts": C.ordered}

    def n_extra_params(self):
        return self.J - 1

    def _quantile(self, p):
        raise NotImplementedError

    def _log_cdf(self, x):
        raise NotImplementedError

    def start(self, X, y, offset, w):
        J = self.J
        onehot = (y[:, None] == jnp.arange(J, dtype=y.dtype)).astype(X.dtype)
        p = jnp.maximum(w @ onehot / jnp.sum(w), 1e-6)
        cum = jnp.cumsum(p / jnp.sum(p))[:-1]
        # P(y <= k) = F(c_k - eta) at beta = 0: the cut-points at the quantiles of the
        # cumulative proportions, shifted by the mean offset.
        cuts = self._quantile(cum) + jnp.sum(w * offset) / jnp.sum(w)
        return {"beta": jnp.zeros(X.shape[-1], X.dtype), "cuts": cuts.astype(X.dtype)}

    def mean(self, params, X, offset):
        eta = X @ params["beta"] + offset
        k = jnp.arange(self.J)
        return jnp.exp(ordered_logp(params["cuts"], eta[..., None], k, self._log_cdf))

    def check_separation(self, X, y, inside, names, batched):
        del y
        xin = np.where(inside[..., None], X, np.nan)
        const = np.nanmax(xin, axis=1) == np.nanmin(xin, axis=1)     # (K, d)
        if np.any(const):
            j = int(np.flatnonzero(const.any(0))[0])
            raise ValueError(f"column {names[j]!r} of X is constant"
                             f"{in_datasets(const[:, j], batched)}: {self.describe()} has no "
                             "intercept (the cut-points absorb it), so a constant column is "
                             "not identified. Drop it (in a formula, add '- 1').")

    def param_label(self, raw, names, labels):
        leaf, _, rest = raw.partition("[")
        if leaf != "cuts" or not rest:
            return super().param_label(raw, names, labels)
        k = int(rest[:-1])
        return f"{self._label(k)}|{self._label(k + 1)}"

    def summary_extra(self, res):
        return (super().summary_extra(res) + " (in order)\nP(y <= k) = F(cut_k - X beta), "
                f"F the {self.link} CDF; the cut 'a|b' lies between categories a and b")


@dataclasses.dataclass(frozen=True)
class OrderedLogit(_Ordered):
    """Ordered logit (proportional odds): ``P(y <= k | x) = 1 / (1 + exp(x beta - c_k))``.

    ``beta`` ``(d,)`` without an intercept (``X`` must not hold a constant column), and the
    increasing cut-points ``cuts`` ``(J-1,)`` named ``"a|b"`` between categories ``a`` and
    ``b`` (R's ``MASS::polr``, Stata's ``ologit``, statsmodels' ``OrderedModel(distr=
    "logit")`` with its thresholds on the natural scale). ``predict`` returns the ``(m, J)``
    probabilities. The categories are ordered as sorted, as a pandas ``Categorical``'s, or
    as ``categories=``.

    Args:
      n_categories: ``J``; read from ``y`` when left out (needed for a traced ``y``).
      categories: the labels in their order (lowest first); read from ``y`` when left out.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> y = np.array(["lo", "lo", "mid", "lo", "mid", "lo", "hi", "mid", "hi", "mid",
      ...               "hi", "hi"])
      >>> res = mj.models.OrderedLogit(categories=("lo", "mid", "hi")).fit(x, y)
      >>> res.param_names
      ('x1', 'lo|mid', 'mid|hi')
      >>> [round(float(c), 3) for c in res.params["cuts"]]
      [-1.399, 1.399]
      >>> res.predict(np.array([0.0])).shape                     # (m, J) probabilities
      (1, 3)
    """

    n_categories: int | None = None
    categories: tuple | None = dataclasses.field(default=None, compare=False)
    link = "logistic"

    def describe(self) -> str:
        return "Ordered logit regression"

    def loglik_fn(self):
        return ologit_loglik

    def _quantile(self, p):
        return jnp.log(p) - jnp.log1p(-p)

    def _log_cdf(self, x):
        return _log_sigmoid(x)


@dataclasses.dataclass(frozen=True)
class OrderedProbit(_Ordered):
    """Ordered probit: ``P(y <= k | x) = Phi(c_k - x beta)``.

    As :class:`OrderedLogit` with the normal CDF (R's ``polr(method="probit")``, Stata's
    ``oprobit``); the log-probabilities through ``log_ndtr``, accurate far in the tails.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> y = np.array([0, 0, 1, 0, 1, 0, 2, 1, 2, 1, 2, 2])
      >>> res = mj.models.OrderedProbit().fit(x, y)
      >>> res.param_names
      ('x1', '0|1', '1|2')
      >>> p = res.predict(np.array([-1.0, 1.0]))
      >>> bool(p[0, 0] > p[1, 0]) and bool(p[0, 2] < p[1, 2])
      True
    """

    n_categories: int | None = None
    categories: tuple | None = dataclasses.field(default=None, compare=False)
    link = "normal"

    def describe(self) -> str:
        return "Ordered probit regression"

    def loglik_fn(self):
        return oprobit_loglik

    def _quantile(self, p):
        return jsp.ndtri(p)

    def _log_cdf(self, x):
        return jsp.log_ndtr(x)
