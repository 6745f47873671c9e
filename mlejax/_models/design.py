"""The design of a regression fit: the arrays a model's kernel needs, checked on the host.

:func:`make_design` validates ``X``, ``y``, weights, offsets and exposures, names the columns,
prepends the intercept, and asks the model for its extra inputs (``Model.prepare_inputs``);
concrete inputs are checked with NumPy (NaN, support, n >= p, linearly dependent columns,
separation), traced ones pass through ``jax.numpy`` unchecked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._numerics import is_concrete
from mlejax._models.common import in_datasets

__all__ = ["Design", "given_inputs", "is_frame", "make_design"]


@dataclasses.dataclass
class Design:
    """Arrays ready for the kernel, and the names that go with them."""

    X: jax.Array
    y: jax.Array
    offset: jax.Array
    weights: jax.Array | None
    names: tuple[str, ...]
    intercept_added: bool
    dtype: Any
    batched: bool
    traced: bool = False
    extra: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)


def is_frame(X) -> bool:
    return hasattr(X, "columns") and hasattr(X, "to_numpy")


def _float_dtype(*arrays):
    dt = jnp.result_type(*[a for a in arrays if a is not None])
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float)


def make_design(model: Any, X, y, *, weights, offset, exposure, feature_names,
                batched: bool, inputs: dict | None = None, var_weights: Any = None) -> Design:
    """Validates and assembles the arrays of one fit (or a batch of fits).

    Concrete inputs are checked and assembled with numpy on the host (one pass each, no
    device round trips) and moved to JAX once; traced inputs (a fit inside ``jit``) go
    through ``jax.numpy`` and skip the value checks.
    """
    names = None
    if is_frame(X):
        names = tuple(str(c) for c in X.columns)
        X = X.to_numpy()
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    traced = not is_concrete((X, y, weights, offset, exposure))
    xp = jnp if traced else np
    if not traced:
        X = np.asarray(X)
        if X.dtype == object:
            raise ValueError("X must be a numeric array (or a DataFrame of numeric columns); got "
                             "dtype object. Encode categorical columns first.")
    dtype = _float_dtype(X, y)
    X = xp.asarray(X, dtype=np.dtype(dtype))
    y = xp.asarray(y, dtype=np.dtype(dtype))
    want_x = 3 if batched else 2
    if batched and X.ndim == 2 and y.ndim == 2:
        X = xp.broadcast_to(X, (y.shape[0],) + X.shape)  # one design shared by K responses
    if X.ndim == 1 and not batched:
        X = X[:, None]
    if X.ndim != want_x:
        raise ValueError(f"X must have shape {'(K, n, d)' if batched else '(n, d)'}; got "
                         f"{X.shape}." + (" For one dataset use fit()." if batched else
                                          " For K datasets use fit_batch()."))
    if y.shape != X.shape[:-1]:
        raise ValueError(f"y must have shape {X.shape[:-1]} (one response per row of X); got "
                         f"{y.shape}.")
    d = X.shape[-1]
    if feature_names is not None:
        feature_names = tuple(str(f) for f in feature_names)
        if len(feature_names) != d:
            raise ValueError(f"feature_names has {len(feature_names)} names but X has {d} "
                             "columns; give one name per column.")
        names = feature_names
    if names is None:
        names = tuple(f"x{j + 1}" for j in range(d))

    w = None
    if weights is not None:
        w = xp.asarray(weights, dtype=np.dtype(dtype))
        if w.shape != y.shape:
            raise ValueError(f"weights must have the shape of y, {y.shape}; got {w.shape}.")
    off = xp.zeros(y.shape, dtype=np.dtype(dtype))
    if offset is not None:
        off = off + xp.asarray(offset, dtype=np.dtype(dtype))
    if exposure is not None:
        if not model.log_link:
            raise ValueError(f"exposure= needs a log link (Poisson, NegativeBinomial, Gamma with "
                             f"link='log'); {model.describe()} does not have one. Pass "
                             "offset= instead.")
        e = xp.asarray(exposure, dtype=np.dtype(dtype))
        if not traced and not np.all(e > 0):
            raise ValueError("exposure must be strictly positive (it enters as log(exposure)).")
        off = off + xp.log(e)
    if off.shape != y.shape:
        raise ValueError(f"offset/exposure must have the shape of y, {y.shape}; got "
                         f"{off.shape}.")

    add = model.intercept
    if add and not traced:
        # A column constant (and non-zero) within every dataset already is the intercept.
        has_const = np.any((np.ptp(X, axis=-2) == 0) & (X[..., 0, :] != 0), axis=-1)
        add = not np.all(has_const)
    if add:
        X = xp.concatenate([xp.ones(X.shape[:-1] + (1,), dtype=np.dtype(dtype)), X], axis=-1)
        names = ("const",) + names
    design = Design(X, y, off, w, names, add, dtype, batched, traced)
    extra, labels = model.prepare_inputs(given_inputs(model, inputs), design, False)
    if var_weights is not None:
        extra = dict(extra, var_weights=_var_weights(model, var_weights, y, dtype, xp, traced))
    if not traced:
        check_design(model, X, y, w, off, names, batched, extra)
    to_j = (lambda a: a) if traced else (lambda a: None if a is None else jnp.asarray(a))
    return Design(to_j(X), to_j(y), to_j(off), to_j(w), names, add, dtype, batched, traced,
                  {k: to_j(v) for k, v in extra.items()}, dict(labels))


def given_inputs(model: Any, inputs: dict | None) -> dict:
    """Every name in ``model.inputs`` mapped to the user's value (None where not given)."""
    inputs = dict(inputs or {})
    unknown = sorted(set(inputs) - set(model.inputs))
    if unknown:
        takes = (f"it takes {', '.join(repr(n) for n in model.inputs)}" if model.inputs
                 else "it takes no extra inputs")
        raise TypeError(f"{model.describe()} got unexpected keyword argument(s) "
                        f"{', '.join(repr(n) for n in unknown)}; {takes}.")
    return {name: inputs.get(name) for name in model.inputs}


def _var_weights(model: Any, v, y, dtype, xp, traced):
    if not model.var_weights_ok:
        raise ValueError(f"var_weights= is not defined for {model.describe()} (it scales "
                         "the dispersion of a GLM family: Linear, Gamma, InverseGaussian, "
                         "Tweedie, Poisson, Binomial). Use weights= for frequency weights.")
    v = xp.asarray(v, dtype=np.dtype(dtype))
    if v.shape != y.shape:
        raise ValueError(f"var_weights must have the shape of y, {y.shape}; got {v.shape}.")
    if not traced and not np.all(np.isfinite(v) & (v > 0)):
        raise ValueError("var_weights must be finite and strictly positive (observation i "
                         "has dispersion phi / var_weights[i]).")
    return v


def check_design(model, X, y, w, off, names, batched, extra):
    X3 = X if batched else X[None]
    y2 = y if batched else y[None]
    w2 = np.ones_like(y2) if w is None else (w if batched else w[None])
    o2 = off if batched else off[None]
    for what, arr in (("X", X3), ("y", y2), ("offset/exposure", o2), ("weights", w2)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains {int(np.sum(~np.isfinite(arr)))} NaN or infinite "
                             "value(s); remove or impute them (or give those rows weight 0 and "
                             "finite placeholders).")
    if np.any(w2 < 0):
        raise ValueError("weights must be non-negative.")
    inside = w2 > 0
    n_eff = inside.sum(axis=1)
    p = model.n_params(X3.shape[-1], extra)
    small = n_eff < p
    if np.any(small):
        raise ValueError(f"{int(n_eff[small].min())} observations but {p} parameters"
                         f"{in_datasets(small, batched)}: n must be at least the number of "
                         "parameters; drop columns or add data.")
    model.check_y(y2, inside, batched)
    # Linearly dependent columns: the coefficients are not identified.
    Xm = X3 * inside[..., None]
    ranks = np.linalg.matrix_rank(Xm)
    deficient = ranks < X3.shape[-1]
    if np.any(deficient):
        k = int(np.flatnonzero(deficient)[0])
        dep = _dependent_columns(Xm[k])
        raise ValueError(f"the columns of X are linearly dependent"
                         f"{in_datasets(deficient, batched)}: "
                         f"{', '.join(repr(names[j]) for j in dep)} "
                         f"{'is a combination' if len(dep) == 1 else 'are combinations'} of the "
                         "columns before; their coefficients are not identified. Drop them.")
    model.check_separation(X3, y2, inside, names, batched)


def _dependent_columns(X: np.ndarray) -> list[int]:
    dep, rank = [], 0
    for j in range(X.shape[1]):
        r = np.linalg.matrix_rank(X[:, [i for i in range(j + 1) if i not in dep]])
        if r <= rank:
            dep.append(j)
        else:
            rank = r
    return dep


