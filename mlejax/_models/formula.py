"""Models from Wilkinson formulas and data frames, through formulaic (an optional extra).

``mj.models.Logistic.from_formula("y ~ x1 + C(group) + np.log(x2)", df)`` builds the design
matrix with formulaic (categorical encoding with treatment contrasts, interactions ``a:b``
and ``a*b``, transformations, ``0 +`` / ``- 1`` without the intercept), keeps its column
names for the summary, and returns a :class:`FormulaModel` whose ``fit`` is the model's
``fit`` on that design. The fitted result remembers the formula, so ``res.predict(new_df)``
builds the new rows with the same encoding (the same categories, the same columns).
``fit_batch(by="column")`` fits one model per value of a column, as one compiled program.

Missing values are an error by default, as everywhere in mlejax (``missing="drop"`` drops the
incomplete rows, as statsmodels does). Install with ``pip install "mlejax[formula]"``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np

__all__ = ["FormulaModel", "from_formula", "design_from_spec"]


def _formulaic():
    try:
        import formulaic
    except ImportError:
        raise ImportError("formulas need formulaic and pandas: pip install "
                          "\"mlejax[formula]\" (or pip install formulaic pandas).") from None
    return formulaic


def _context(depth: int, context: Any) -> dict:
    """The names a formula may use: the caller's globals and locals (numpy as ``np``)."""
    if context is not None:
        return dict(context)
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None     # from_formula
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
    out = {"np": np}
    if frame is not None:
        out.update(frame.f_globals)
        out.update(frame.f_locals)
    del frame
    return out


@dataclasses.dataclass(frozen=True)
class FormulaModel:
    """A model bound to the design a formula builds from a data frame; ``fit`` it.

    Attributes:
      model: the regression model (:class:`mlejax.models.Model`).
      formula: the formula, as given.
      X: the design matrix ``(n, d)`` (NumPy), its columns named by ``names``.
      y: the response ``(n,)``.
      names: the column names formulaic gives (``"Intercept"``, ``"C(g)[T.b]"``, ...).
      spec: formulaic's model spec of the right-hand side (re-applied by ``predict``).
      frame: the rows used (after ``missing="drop"``), for ``fit_batch(by=...)`` and
        per-row inputs named by column.

    Example:
      >>> import pandas as pd
      >>> df = pd.DataFrame({"y": [0, 0, 1, 0, 1, 1, 1, 1, 0, 1],
      ...                    "x": [-1.0, -0.8, -0.5, 0.0, 0.2, 0.4, 0.9, 1.1, 0.3, -0.2],
      ...                    "g": list("ababababab")})
      >>> fm = mj.models.Logistic.from_formula("y ~ x + C(g)", df)
      >>> fm.names
      ('Intercept', 'x', 'C(g)[T.b]')
      >>> res = fm.fit()
      >>> res.param_names, bool(res.converged)
      (('Intercept', 'x', 'C(g)[T.b]'), True)
      >>> res.predict(df.iloc[:2]).shape
      (2,)
    """

    model: Any
    formula: str
    X: np.ndarray
    y: np.ndarray
    names: tuple[str, ...]
    spec: Any = dataclasses.field(repr=False)
    frame: Any = dataclasses.field(repr=False)
    drop_intercept: bool = False

    def _columns(self, kw: dict, rows: Any = None) -> dict:
        """Per-row arguments given as column names (``weights="w"``) become their values."""
        out = {}
        for key, val in kw.items():
            if isinstance(val, str) and key in _PER_ROW + tuple(self.model.inputs):
                if val not in self.frame.columns:
                    raise ValueError(f"{key}={val!r} is not a column of the data frame.")
                col = self.frame[val].to_numpy(np.float64)
                val = col if rows is None else col[rows]
            out[key] = val
        return out

    def fit(self, **kwargs: Any):
        """The model's ``fit`` on this design (``weights``, ``offset``, ``exposure`` and the
        model's extra inputs may be given as column names); the result predicts from data
        frames through the formula."""
        res = self.model.fit(self.X, self.y, feature_names=self.names,
                             **self._columns(kwargs))
        return dataclasses.replace(res, formula=self)

    def fit_batch(self, by: str, **kwargs: Any):
        """One fit per value of the column ``by``, as one compiled program: the groups are
        padded to the largest with rows of weight 0 (``weights`` multiply in). The result's
        ``batch_labels`` are the sorted values of ``by``; ``to_frame()`` has one row each."""
        if by not in self.frame.columns:
            raise ValueError(f"by={by!r} is not a column of the data frame.")
        if "weights" in kwargs and kwargs["weights"] is not None and \
                not isinstance(kwargs["weights"], str):
            kwargs["weights"] = np.asarray(kwargs["weights"], np.float64)
        keys = self.frame[by].to_numpy()
        labels = tuple(sorted(set(keys.tolist()), key=lambda v: (str(type(v)), v)))
        rows = [np.flatnonzero(keys == lab) for lab in labels]
        m = max(r.size for r in rows)
        pad = [np.concatenate([r, np.full(m - r.size, r[0])]) for r in rows]
        live = np.stack([np.arange(m) < r.size for r in rows]).astype(np.float64)
        idx = np.stack(pad)
        cols = self._columns(kwargs)
        w = cols.pop("weights", None)
        w = live if w is None else live * np.asarray(w, np.float64)[idx]
        for key, val in list(cols.items()):
            if key in _PER_ROW + tuple(self.model.inputs) and val is not None:
                a = np.asarray(val)
                if a.shape[:1] == (self.y.shape[0],):
                    cols[key] = a[idx]
        res = self.model.fit_batch(self.X[idx], self.y[idx], weights=w,
                                   feature_names=self.names, **cols)
        return dataclasses.replace(res, formula=self, batch_labels=labels)

    def design(self, frame: Any) -> np.ndarray:
        """The design matrix of new rows, with this formula's encoding."""
        X = design_from_spec(self.spec, frame)
        if self.drop_intercept:
            X = np.delete(X, list(self.spec.column_names).index(_INTERCEPT), axis=1)
        return X


_PER_ROW = ("weights", "var_weights", "offset", "exposure")
_INTERCEPT = "Intercept"


def design_from_spec(spec: Any, frame: Any) -> np.ndarray:
    """Rows of a new data frame through a fitted formula's model spec."""
    mm = spec.get_model_matrix(frame, na_action="raise")
    return np.asarray(mm, dtype=np.float64)


def from_formula(model: Any, formula: str, data: Any, *, missing: str = "raise",
                 context: Any = None, depth: int = 1) -> FormulaModel:
    """The design a formula builds from ``data`` (a pandas DataFrame, or a dict of
    columns), bound to ``model``. ``missing``: ``"raise"`` (the default: a missing value is
    an error naming the column) or ``"drop"`` (incomplete rows are dropped)."""
    formulaic = _formulaic()
    import pandas as pd

    if missing not in ("raise", "drop"):
        raise ValueError(f"missing must be 'raise' or 'drop'; got {missing!r}.")
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise ValueError(f"formula {formula!r} needs exactly one '~' between the response and "
                         "the terms, e.g. 'y ~ x1 + C(g)'.")
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    try:
        mm = formulaic.model_matrix(formula, frame, na_action=missing,
                                    context=_context(depth, context))
    except Exception as err:   # formulaic raises many types; name the formula, keep the cause
        cols = ", ".join(str(c) for c in frame.columns)
        raise ValueError(f"formula {formula!r} could not be applied to the data: {err} "
                         f"(the data's columns: {cols})") from err
    lhs, rhs = mm.lhs, mm.rhs
    used = frame.loc[rhs.index]
    response = formula.split("~")[0].strip()
    if hasattr(model, "categories") and response in frame.columns:
        # A categorical model takes the response's labels as they are (strings, a pandas
        # Categorical, whose order it keeps), not formulaic's indicator columns.
        model, y = _labelled(model, used[response])
    elif lhs.shape[1] != 1:
        raise ValueError(f"formula {formula!r}: the response must be one column; formulaic "
                         f"made {list(lhs.columns)} of it (a categorical response is for the "
                         "categorical models, MultinomialLogit, OrderedLogit and "
                         "OrderedProbit; else give it as one numeric column).")
    else:
        y = np.asarray(lhs, np.float64)[:, 0]
    names = tuple(str(c) for c in rhs.columns)
    X = np.asarray(rhs, np.float64)
    # The ordered models' cut-points take the intercept's place: its column is built (so that
    # categorical terms keep their reduced-rank coding) and then dropped, as statsmodels'
    # OrderedModel.from_formula does.
    drop = getattr(model, "absorbs_intercept", False) and _INTERCEPT in names
    if drop:
        j = names.index(_INTERCEPT)
        X, names = np.delete(X, j, axis=1), names[:j] + names[j + 1:]
    if not names:
        raise ValueError(f"formula {formula!r} has no terms"
                         f"{'' if drop else ' and no intercept'}: nothing to fit.")
    return FormulaModel(model, formula, X, y, names, rhs.model_spec, used, drop)


def _labelled(model: Any, column: Any) -> tuple[Any, np.ndarray]:
    """A categorical model and the labels of its response column; a pandas ``Categorical``
    column fixes the categories and their order unless the model names them."""
    cats = getattr(column.dtype, "categories", None)
    if cats is not None and model.categories is None:
        model = dataclasses.replace(model, categories=tuple(cats.tolist()),
                                    n_categories=len(cats))
    values = np.asarray(column.astype(object) if cats is not None else column)
    return model, values
