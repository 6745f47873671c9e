"""Every check made before tracing, each with a message that names the argument and the fix.

Structure (shapes, dtypes, tree structure) is checked with ``jax.eval_shape``, which traces
but never compiles; values (NaN in data, initial values inside their constraints) are checked
on the host with numpy. Values that are tracers (``fit`` called inside the user's ``jit`` or
``vmap``) cannot be inspected and are skipped: there the status codes report problems.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._numerics import is_concrete
from mlejax.constraints import Constraint, check_hashable, is_constraint, real
from mlejax.solvers import METHODS


def leaf_names(tree) -> list[str]:
    """``jax.tree_util.keystr`` names of the leaves, e.g. ``"['sigma']"`` shown as ``sigma``."""
    paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    names = []
    for path, _ in paths:
        s = jax.tree_util.keystr(path)
        if s.startswith("['") and s.endswith("']") and s.count("'") == 2:
            s = s[2:-2]
        names.append(s or "init")
    return names


def written_order(tree) -> tuple[int, ...]:
    """The leaves' indices in JAX's flattening order, listed in the order the user wrote them.

    JAX sorts the keys of a dict when it flattens it; a user reads ``{"const": .., "alpha":
    ..}`` as const first. Each leaf is ranked, level by level down its path, by its key's
    position in its dict as written (insertion order); under any other node (lists, tuples,
    named tuples, registered classes) the children keep JAX's order.
    """
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]

    def rank(path, index):
        node, key = tree, []
        for depth, entry in enumerate(path):
            if isinstance(entry, jax.tree_util.DictKey) and isinstance(node, dict):
                key.append(list(node.keys()).index(entry.key))
                node = node[entry.key]
            else:
                # JAX's order: the first leaf below this child, among its siblings.
                prefix = path[:depth + 1]
                key.append(next(i for i, p in enumerate(paths) if p[:depth + 1] == prefix))
                node = None if node is None else _child(node, entry)
        return tuple(key) + (index,)

    return tuple(sorted(range(len(paths)), key=lambda i: rank(paths[i], i)))


def _child(node, entry):
    """The child of ``node`` at a key-path entry, or None where it cannot be read back (the
    rest of the path then keeps JAX's order)."""
    if isinstance(entry, jax.tree_util.SequenceKey) and isinstance(node, (list, tuple)):
        return node[entry.idx]
    if isinstance(entry, jax.tree_util.GetAttrKey):
        return getattr(node, entry.name, None)
    if isinstance(entry, jax.tree_util.DictKey) and isinstance(node, dict):
        return node[entry.key]
    return None


def check_method(method: str, *, optimizer, batch_size, restarts, key) -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; choose one of {METHODS}.")
    if optimizer is not None and method != "gradient":
        raise ValueError(f"optimizer= is used only by method='gradient'; got method={method!r}. "
                         "Pass method='gradient' to ascend with an optax optimiser.")
    if batch_size is not None:
        if method != "gradient":
            raise ValueError("batch_size= (minibatch ascent) needs method='gradient'; "
                             f"got method={method!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size}.")
        if key is None:
            raise ValueError("batch_size= draws random minibatches: pass key=jax.random.key(0).")
    if restarts is not None:
        if int(restarts) < 1:
            raise ValueError(f"restarts must be a positive integer; got {restarts}.")
        if key is None:
            raise ValueError("restarts= draws random starting values: pass key=jax.random.key(0).")


def broadcast_constraints(constraints: Any, init: Any) -> list[Constraint]:
    """One constraint per leaf of ``init``; ``constraints`` is a pytree prefix of ``init``.

    Dicts may name only the constrained keys (the others are ``real``); a key that is not in
    ``init`` is an error rather than silently ignored.
    """
    if constraints is None:
        return [real] * len(jax.tree_util.tree_leaves(init))
    full = _fill(constraints, init, "constraints")
    leaves = jax.tree_util.tree_leaves(full, is_leaf=is_constraint)
    return leaves


def _fill(cons, sub, where):
    if is_constraint(cons):
        return jax.tree_util.tree_map(lambda _: cons, sub)
    if isinstance(cons, dict):
        if not isinstance(sub, dict):
            raise ValueError(f"{where} is a dict but the matching part of init is "
                             f"{type(sub).__name__}; constraints must be a pytree prefix of init.")
        extra = sorted(set(cons) - set(sub), key=str)
        if extra:
            raise ValueError(f"{where} names {extra}, which are not in init (init has "
                             f"{sorted(sub, key=str)}); fix the key names.")
        return {k: _fill(cons.get(k, real), v, f"{where}[{k!r}]") for k, v in sub.items()}
    if isinstance(cons, (list, tuple)):
        if not isinstance(sub, (list, tuple)) or len(sub) != len(cons):
            raise ValueError(f"{where} is a sequence of {len(cons)} but init does not match it; "
                             "constraints must be a pytree prefix of init.")
        return type(sub)(_fill(c, s, f"{where}[{i}]") for i, (c, s) in enumerate(zip(cons, sub)))
    if cons is None:
        return jax.tree_util.tree_map(lambda _: real, sub)
    raise ValueError(f"{where} must hold constraints such as mj.positive, mj.interval(lo, hi), "
                     f"mj.simplex; got {cons!r}.")


def as_float_leaves(init: Any, names: list[str]) -> tuple[list[jax.Array], Any]:
    """The leaves of ``init`` as floating arrays of one dtype, and the dtype."""
    leaves, _ = jax.tree_util.tree_flatten(init)
    if not leaves:
        raise ValueError("init has no parameters; pass a pytree of initial values, e.g. "
                         "{'mu': 0.0, 'sigma': 1.0}.")
    for name, x in zip(names, leaves):
        dt = jnp.result_type(x)
        if not (jnp.issubdtype(dt, jnp.floating) or jnp.issubdtype(dt, jnp.integer)
                or jnp.issubdtype(dt, jnp.bool_)):
            raise ValueError(f"init[{name}] must be a real number or array; got dtype {dt}.")
    dtype = jnp.result_type(*leaves)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    # Host values are cast by NumPy and copied by device_put: jnp.asarray compiles a small
    # program per shape for them (0.01-0.03 s of a first call).
    return [jnp.asarray(x, dtype) if isinstance(x, jax.Array)
            else jax.device_put(np.asarray(x, dtype)) for x in leaves], dtype


def check_params(init: Any, constraints: Any):
    """Every check of ``init`` against ``constraints``: one constraint per leaf, floating
    leaves of one dtype, finite values inside their constraints.

    Returns ``(names, leaves, dtype, treedef, constraints_per_leaf)``.
    """
    names = leaf_names(init)
    leaves, dtype = as_float_leaves(init, names)
    treedef = jax.tree_util.tree_structure(init)
    cons = broadcast_constraints(constraints, init)
    if len(cons) != len(leaves):
        raise ValueError("constraints must be a pytree prefix of init.")
    for name, c in zip(names, cons):
        check_hashable(c, name)
    check_init_values(leaves, cons, names)
    return names, leaves, dtype, treedef, cons


def check_init_values(leaves, constraints, names) -> None:
    for name, x, c in zip(names, leaves, constraints):
        if not is_concrete(x):
            continue
        a = np.asarray(x)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"init[{name}] is not finite ({a}); give finite starting values.")
        why = c.check(a)
        if why is not None:
            raise ValueError(f"init[{name}] {why}; got {a}. Give a starting value inside the "
                             "constraint.")


# JAX arrays above this size are checked where they lie (one compiled reduction, sharded
# arrays on their devices) rather than copied to the host: for 168 MB of data sharded over
# two devices the host check took 26 ms of a 280 ms fit.
_DEVICE_CHECK_BYTES = 1 << 20


@jax.jit
def _finite_flags(arrays):
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in arrays])


def check_data_finite(data: Any, what: str = "data", *, batched: bool = False) -> None:
    """NaN or inf in a data leaf is an error; for a batch, the message names the datasets."""
    paths, _ = jax.tree_util.tree_flatten_with_path(data)
    paths = [(path, x) for path, x in paths if not isinstance(x, jax.core.Tracer)]
    on_device = [i for i, (_, x) in enumerate(paths)
                 if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact)
                 and x.nbytes > _DEVICE_CHECK_BYTES]
    if on_device:
        flags = np.asarray(_finite_flags(tuple(paths[i][1] for i in on_device)))
        ok = {i for i, flag in zip(on_device, flags) if flag}
        paths = [p for i, p in enumerate(paths) if i not in ok]
    for path, x in paths:
        a = np.asarray(x)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            bad = int(np.sum(~np.isfinite(a)))
            where = ""
            if batched and a.ndim >= 1:
                rows = np.nonzero(~np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1))[0]
                where = f" (datasets {rows[:20].tolist()}{' ...' if rows.size > 20 else ''})"
            raise ValueError(f"{what}{jax.tree_util.keystr(path)} contains {bad} NaN or infinite "
                             f"value(s){where}; remove or impute them (or give them weight 0 "
                             "and a finite placeholder value).")


def check_loglik_output(loglik_fn: Callable, params: Any, data: Any, weights) -> bool:
    """Checks what ``loglik_fn`` returns (without compiling); True if per observation."""
    try:
        out = jax.eval_shape(loglik_fn, params, data)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"loglik_fn(params, data) failed on init and data: {err}") from err
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(f"loglik_fn must return one array (a scalar total or a vector of "
                         f"per-observation terms); got {type(out).__name__}: {out}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loglik_fn must return floating values; got dtype {out.dtype}. "
                         "Compute the log-likelihood in floating point.")
    if out.ndim > 1:
        raise ValueError(f"loglik_fn must return a scalar or a 1-D vector of per-observation "
                         f"log-likelihoods; got shape {out.shape}. Sum over the other axes.")
    per_obs = out.ndim == 1
    if weights is not None:
        if not per_obs:
            raise ValueError("weights= needs loglik_fn to return per-observation values (a 1-D "
                             "vector); it returns a scalar total.")
        if tuple(np.shape(weights)) != out.shape:
            raise ValueError(f"weights has shape {np.shape(weights)} but loglik_fn returns "
                             f"{out.shape[0]} per-observation values; give one weight each.")
    return per_obs


@jax.jit
def _bad_weight_rows(w):
    return ~jnp.all(jnp.isfinite(w) & (w >= 0), axis=tuple(range(1, w.ndim)))


def check_weights(weights, *, batched: bool = False) -> None:
    """Weights must be finite and non-negative; for a batch (leading axis K) the message
    names the datasets whose weights are not. Large JAX arrays are checked where they lie
    (one compiled reduction; only K flags come back)."""
    if weights is None or not is_concrete(weights):
        return
    w = weights
    if batched and np.ndim(w) >= 1:
        if isinstance(w, jax.Array) and w.nbytes > _DEVICE_CHECK_BYTES:
            rows = np.flatnonzero(np.asarray(_bad_weight_rows(w)))
        else:
            rows = bad_weight_rows(np.asarray(w))
        if rows.size:
            raise weights_error(rows, np.asarray(w[int(rows[0])]))
        return
    if isinstance(w, jax.Array) and w.nbytes > _DEVICE_CHECK_BYTES \
            and not bool(_bad_weight_rows(w.reshape(1, -1))[0]):
        return
    a = np.asarray(w)
    bad = ~(np.isfinite(a) & (a >= 0))
    if np.any(bad):
        where = np.argwhere(bad)[:5].ravel().tolist() if a.ndim == 1 else ""
        raise ValueError(f"weights must be finite and >= 0; {int(bad.sum())} are not (e.g. "
                         f"{a[bad][:3].tolist()}{f' at observations {where}' if where else ''}"
                         "). Give an observation weight 0 to leave it out.")


def bad_weight_rows(a: np.ndarray) -> np.ndarray:
    """The rows (datasets) of a host array of batched weights holding a negative or
    non-finite weight."""
    ok = (np.isfinite(a) & (a >= 0)).reshape(a.shape[0], -1)
    return np.flatnonzero(~np.all(ok, axis=1))


def weights_error(rows, first_row: np.ndarray) -> ValueError:
    """The error for batched weights that are negative or not finite in datasets ``rows``
    (``first_row``: the weights of the first of them)."""
    rows = np.asarray(rows)
    a = np.asarray(first_row)
    more = f" ... ({rows.size} datasets)" if rows.size > 20 else ""
    return ValueError(f"weights of datasets {rows[:20].tolist()}{more} are negative or not "
                      f"finite (weights[{int(rows[0])}] holds "
                      f"{a[~(np.isfinite(a) & (a >= 0))][:3].tolist()}); every weight must be "
                      "finite and >= 0 (give an observation weight 0 to leave it out).")


def batch_size_of(data: Any, weights, what: str = "data") -> int:
    """The common leading size K of every leaf of a batch (and of weights)."""
    paths, _ = jax.tree_util.tree_flatten_with_path(data)
    sizes = {}
    for path, x in paths:
        shape = np.shape(x)
        if len(shape) == 0:
            raise ValueError(f"fit_batch: {what}{jax.tree_util.keystr(path)} is a scalar; every "
                             "data leaf needs the leading batch axis K.")
        sizes[jax.tree_util.keystr(path) or "data"] = shape[0]
    if weights is not None:
        sizes["weights"] = np.shape(weights)[0] if np.ndim(weights) else None
    if not sizes:
        raise ValueError(f"fit_batch needs {what} with a leading batch axis K (one row per "
                         f"dataset); got {_describe(data)}, which holds no arrays.")
    if len(set(sizes.values())) != 1:
        hint = ("Stack the datasets along axis 0 (every leaf of shape (K, ...)).")
        if isinstance(data, (list, tuple)) and what == "data":
            hint = (f"If the {len(data)} items of this {type(data).__name__} are separate "
                    "datasets of different lengths, pass mj.ragged(datasets): it fits each "
                    "as if alone (padded into a few length buckets). Otherwise stack the "
                    "datasets along axis 0 (every leaf of shape (K, ...)).")
        raise ValueError(f"fit_batch: every {what} leaf must have the same leading size K "
                         f"(the number of datasets); got {sizes}. {hint}")
    k = next(iter(sizes.values()))
    if k == 0:
        raise ValueError(f"fit_batch got 0 datasets ({what}'s leading batch axis has size 0); "
                         "pass at least one dataset.")
    return k


def _describe(x) -> str:
    if isinstance(x, (list, tuple, dict)) and not x:
        return f"an empty {type(x).__name__}"
    return f"{type(x).__name__} {x!r:.60}"
