"""The pytree structure of a :class:`~mlejax.result.FitResult` as plain JSON, and back.

``fit_batch(..., out=DIR)`` writes a result's arrays as ``.npy`` files and its structure (the
keys and nesting of ``params``, which fields are present, the static fields) into the JSON
manifest (:mod:`mlejax._results_io`). Only the kinds of node written here are read back:
nothing is unpickled or imported, so a crafted file cannot run code.
"""

from __future__ import annotations

import jax

from mlejax.result import DATA_FIELDS, META_FIELDS, FitResult

__all__ = ["NoJSON", "decode_structure", "encode_structure"]


class NoJSON(Exception):
    """A part of a result that the JSON description of its structure cannot hold."""


def encode_structure(res: FitResult) -> dict:
    """The pytree structure of a result as JSON: each node by its kind (the FitResult with
    its fields and static fields, dicts with their keys, lists, tuples, None), and each leaf
    by its index in the list of leaf files. Raises :class:`NoJSON` for any other node (a
    named tuple or registered class in params: rebuilding one would mean importing code
    named in a file)."""
    n = len(jax.tree_util.tree_leaves(res))
    numbered = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(res),
                                            [_LeafNo(i) for i in range(n)])

    def node(x):
        if isinstance(x, _LeafNo):
            return {"leaf": x.i}
        if x is None:
            return {"none": None}
        if isinstance(x, FitResult):
            meta = {}
            for name in META_FIELDS:
                if name != "context":
                    meta[name] = static(getattr(x, name))
            return {"fit_result": {"fields": {name: node(getattr(x, name))
                                              for name in DATA_FIELDS},
                                   "static": meta}}
        if type(x) is dict:
            items = []
            for k, v in x.items():
                if type(k) not in (str, int):
                    raise NoJSON(f"a dict key {k!r} of type {type(k).__name__}")
                items.append([k, node(v)])
            return {"dict": items}
        if type(x) in (list, tuple):
            return {type(x).__name__: [node(v) for v in x]}
        raise NoJSON(f"a node of type {type(x).__module__}.{type(x).__qualname__}")

    def static(v):
        if v is None or type(v) in (str, int, float, bool):
            return v
        if type(v) in (tuple, list):
            return {type(v).__name__: [static(u) for u in v]}
        raise NoJSON(f"a static field of type {type(v).__name__}")

    return node(numbered)


class _LeafNo:
    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i


def decode_structure(desc, arrays: list, where: str) -> FitResult:
    """The result described by :func:`encode_structure`, with ``arrays`` as its leaves.
    Only the kinds of node it writes are read; anything else is a ``ValueError``."""
    used = set()

    def bad(why: str) -> ValueError:
        return ValueError(f"{where}: the structure of the result is not one mlejax writes "
                          f"({why}); the file was changed or written by something else. Read "
                          f"the .npy files it lists with np.load(..., mmap_mode='r').")

    def one(d):
        if not isinstance(d, dict) or len(d) != 1:
            raise bad(f"a node {d!r:.80}")
        return next(iter(d.items()))

    def node(d):
        kind, v = one(d)
        if kind == "leaf":
            if type(v) is not int or not 0 <= v < len(arrays) or v in used:
                raise bad(f"leaf {v!r}")
            used.add(v)
            return arrays[v]
        if kind == "none" and v is None:
            return None
        if kind == "fit_result" and isinstance(v, dict) and set(v) == {"fields", "static"}:
            fields, meta = v["fields"], v["static"]
            if not (isinstance(fields, dict) and set(fields) <= set(DATA_FIELDS)
                    and isinstance(meta, dict)
                    and set(meta) <= set(META_FIELDS) - {"context"}):
                raise bad("the fields of a FitResult")
            return FitResult(**{k: node(x) for k, x in fields.items()},
                             **{k: static(x) for k, x in meta.items()})
        if kind == "dict" and isinstance(v, list):
            out = {}
            for item in v:
                if not (isinstance(item, list) and len(item) == 2
                        and type(item[0]) in (str, int)):
                    raise bad(f"a dict item {item!r:.80}")
                out[item[0]] = node(item[1])
            return out
        if kind in ("list", "tuple") and isinstance(v, list):
            items = [node(x) for x in v]
            return items if kind == "list" else tuple(items)
        raise bad(f"a node of kind {kind!r}")

    def static(v):
        if v is None or type(v) in (str, int, float, bool):
            return v
        kind, items = one(v)
        if kind in ("list", "tuple") and isinstance(items, list):
            out = [static(u) for u in items]
            return out if kind == "list" else tuple(out)
        raise bad(f"a static value {v!r:.80}")

    res = node(desc)
    if not isinstance(res, FitResult) or len(used) != len(arrays):
        raise bad("not a FitResult whose leaves are every file listed")
    return res

