"""Content fingerprints of a fit's inputs: a checkpoint is resumed only by the problem that
wrote it (:class:`mlejax._checkpoint.Checkpoint`).

A fingerprint is a BLAKE2b digest of a deterministic walk over a value:

* arrays (NumPy, memmaps, JAX): dtype, shape and bytes, fed in slices of the leading axis,
  so a large array is never copied whole;
* functions: module and qualified name; for code outside the numerical libraries, the
  bytecode, constants and global names of its code object (nested code objects too); then
  its defaults and the values it closes over (an optax optimiser's learning rate lives in a
  closure), and the globals its code reads that are functions, scalars, strings, tuples or
  arrays (a global dict or list, such as a counter, is taken by its type only: it may
  change while the fit runs);
* ``functools.partial``, bound methods, ``jit``-wrapped functions: what they wrap;
* dataclasses, named tuples, dicts, lists, tuples, sets: their parts (dict keys and sets
  sorted); other objects: their type and attributes.

Nothing depends on the process (no ``id``, no memory addresses, no string hashing), so a
run resumed in a new interpreter matches; Python's bytecode changes between Python
versions, so a checkpoint is resumed by the Python that wrote it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import types
from typing import Any

import jax
import numpy as np

# Functions of these packages are named, not read: their code changes with their version,
# not with the problem.
_LIBRARIES = ("jax", "jaxlib", "numpy", "scipy", "optax", "builtins", "functools",
              "equinox", "chex")
_MAX_DEPTH = 8
_SLICE_BYTES = 1 << 24
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def digest(value: Any) -> str:
    """A hex digest of ``value``'s content (see the module docstring)."""
    h = hashlib.blake2b(digest_size=16)
    _Walker(h).feed(value, 0)
    return h.hexdigest()


def _is_library(module: str | None) -> bool:
    root = (module or "").split(".")[0]
    return root in _LIBRARIES


class _Walker:
    def __init__(self, h):
        self.h = h
        self.path: set[int] = set()   # ids on the current path, against cycles only

    def tag(self, *parts) -> None:
        self.h.update(("\x1f".join(str(p) for p in parts) + "\x1e").encode())

    def feed(self, v: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.tag("deep", _type_name(v))
            return
        if v is None or isinstance(v, (bool, int, float, complex, str)):
            self.tag(type(v).__name__, repr(v))
            return
        if isinstance(v, bytes):
            self.tag("bytes", len(v))
            self.h.update(v)
            return
        if isinstance(v, np.dtype):
            self.tag("dtype", v.str)
            return
        if isinstance(v, jax.core.Tracer):
            self.tag("tracer", v.aval)
            return
        if isinstance(v, (np.ndarray, np.generic, jax.Array)):
            self.array(v)
            return
        if isinstance(v, type):
            self.tag("type", v.__module__, v.__qualname__)
            return
        if isinstance(v, types.ModuleType):
            self.tag("module", v.__name__)
            return
        if isinstance(v, jax.tree_util.PyTreeDef):
            self.tag("treedef", _ADDRESS.sub("", str(v)))
            return
        if id(v) in self.path:
            self.tag("cycle", _type_name(v))
            return
        self.path.add(id(v))
        try:
            self.compound(v, depth + 1)
        finally:
            self.path.discard(id(v))

    def array(self, v) -> None:
        a = np.asarray(v)
        self.tag("array", a.dtype.str, a.shape)
        if a.dtype.hasobject:
            for x in a.ravel():
                self.feed(x, _MAX_DEPTH)
            return
        if a.ndim == 0 or a.nbytes <= _SLICE_BYTES:
            self.h.update(np.ascontiguousarray(a).tobytes())
            return
        rows = max(1, _SLICE_BYTES // max(1, a[0].nbytes))
        for lo in range(0, a.shape[0], rows):   # a memmap is read a slice at a time
            self.h.update(np.ascontiguousarray(a[lo:lo + rows]).tobytes())

    def compound(self, v: Any, depth: int) -> None:
        if isinstance(v, functools.partial):
            self.tag("partial")
            self.feed(v.func, depth)
            self.feed(v.args, depth)
            self.feed(v.keywords, depth)
        elif isinstance(v, types.MethodType):
            self.tag("method")
            self.feed(v.__func__, depth)
            self.feed(v.__self__, depth)
        elif isinstance(v, types.FunctionType):
            self.function(v, depth)
        elif isinstance(v, dict):
            self.tag("dict", _type_name(v), len(v))
            for key in sorted(v, key=_sort_key):
                self.feed(key, depth)
                self.feed(v[key], depth)
        elif isinstance(v, (list, tuple)):
            self.tag("seq", _type_name(v), len(v))
            for x in v:
                self.feed(x, depth)
        elif isinstance(v, (set, frozenset)):
            self.tag("set", _type_name(v), len(v))
            for d in sorted(digest(x) for x in v):
                self.tag(d)
        elif dataclasses.is_dataclass(v):
            self.tag("dataclass", _type_name(v))
            for f in dataclasses.fields(v):
                self.tag(f.name)
                self.feed(getattr(v, f.name, None), depth)
        elif hasattr(v, "__wrapped__"):   # jax.jit and functools.wraps wrappers
            self.tag("wrapped", _type_name(v))
            self.feed(v.__wrapped__, depth)
        else:
            self.tag("object", _type_name(v))
            attrs = dict(getattr(v, "__dict__", {}))
            for cls in type(v).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if isinstance(name, str) and hasattr(v, name):
                        attrs.setdefault(name, getattr(v, name))
            if not attrs and callable(v) and not _is_library(type(v).__module__):
                call = getattr(type(v), "__call__", None)
                if isinstance(call, types.FunctionType):
                    attrs["__call__"] = call
            for key in sorted(attrs, key=_sort_key):
                self.feed(key, depth)
                self.feed(attrs[key], depth)

    def function(self, fn: types.FunctionType, depth: int) -> None:
        module = getattr(fn, "__module__", None)
        self.tag("function", module, fn.__qualname__)
        if not _is_library(module):
            self.code(fn.__code__)
        self.feed(fn.__defaults__, depth)
        self.feed(fn.__kwdefaults__, depth)
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:   # an empty cell
                self.tag("empty cell")
                continue
            self.feed(value, depth)
        if _is_library(module):
            return
        for name in sorted(_global_names(fn.__code__)):
            if name not in fn.__globals__:
                continue
            value = fn.__globals__[name]
            if isinstance(value, (dict, list, set, bytearray)):
                self.tag("global", name, _type_name(value))   # mutable state: its type
            elif isinstance(value, (types.FunctionType, functools.partial, np.ndarray,
                                    np.generic, jax.Array, tuple, frozenset, str, bytes,
                                    int, float, complex, bool, type, types.ModuleType)) \
                    or dataclasses.is_dataclass(value) or value is None:
                self.tag("global", name)
                self.feed(value, depth)
            else:
                self.tag("global", name, _type_name(value))

    def code(self, code: types.CodeType) -> None:
        self.tag("code", code.co_name, code.co_argcount, code.co_kwonlyargcount)
        self.h.update(code.co_code)
        self.tag("names", *code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const)
            elif isinstance(const, frozenset):
                self.tag("frozenset", *sorted(repr(c) for c in const))
            else:
                self.tag("const", type(const).__name__, repr(const))


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _type_name(v: Any) -> str:
    t = type(v)
    return f"{t.__module__}.{t.__qualname__}"


def _sort_key(key: Any) -> tuple[str, str]:
    return type(key).__name__, _ADDRESS.sub("", repr(key))
