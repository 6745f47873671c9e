"""Every public function and class shows a runnable example in its docstring, and it runs.

"Public" is every function or class named in ``mlejax.__all__``, every function in
``mlejax.plot.__all__`` and every function or class named in the ``__all__`` of the public
submodules reachable from ``mlejax`` (``mj.models``, ``mj.distributions``, ``mj.optima``,
``mj.penalties``, ``mj.anneal``, ``mj.batching``, ``mj.distributed``); an object that is
reachable under several names is checked and run once, under its first name. Each must have
its own docstring with at least one ``>>>`` example; the examples run as doctests
(``ELLIPSIS``, ``NORMALIZE_WHITESPACE``) in a namespace holding ``jax``, ``jnp``, ``np`` and
``mj`` (``import mlejax as mj``), under the float64 that conftest.py switches on for the test
session. Printed numbers are rounded in the examples so that they do not depend on the last
bits of a platform's arithmetic.

The examples run in one test per source module: the examples of a module fit the same small
data with the same (built-in, cached) log-likelihoods, so each test compiles a program once
and its other examples reuse it.
"""

from __future__ import annotations

import doctest
import inspect
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj
from mlejax import plot as mplot

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Public submodules reachable as ``mj.<name>``; their ``__all__`` is public API too.
SUBMODULES = ("models", "distributions", "optima", "penalties", "anneal", "batching",
              "distributed")


def _public() -> dict:
    out = {}
    for name in mj.__all__:
        obj = getattr(mj, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            out[f"mlejax.{name}"] = obj
    for name in mplot.__all__:
        out[f"mlejax.plot.{name}"] = getattr(mplot, name)
    seen = {id(obj) for obj in out.values()}
    for sub in SUBMODULES:
        module = getattr(mj, sub)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue   # data (e.g. the DISTRIBUTIONS registry) or already listed
            if not obj.__module__.startswith("mlejax"):
                continue   # a re-export of another library's object
            seen.add(id(obj))
            out[f"mlejax.{sub}.{name}"] = obj
    return out


PUBLIC = _public()
MODULES = sorted({obj.__module__ for obj in PUBLIC.values()})


def _doctest(qualname: str, obj) -> doctest.DocTest | None:
    """The doctest of ``obj``'s own docstring (not an inherited or generated one)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not doc:
        return None
    globs = {"jax": jax, "jnp": jnp, "np": np, "mj": mj}
    test = doctest.DocTestParser().get_doctest(
        doc, globs, qualname, inspect.getsourcefile(obj), _line(obj))
    return test if test.examples else None


def _line(obj) -> int | None:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return None


@pytest.mark.parametrize("qualname", sorted(PUBLIC))
def test_public_name_has_an_example(qualname):
    obj = PUBLIC[qualname]
    assert _doctest(qualname, obj) is not None, (
        f"{qualname} has no runnable '>>>' example in its own docstring; add a short "
        "'Example:' section (see STYLE.md, the docstring template).")


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    names = [q for q, obj in PUBLIC.items() if obj.__module__ == module]
    if module == "mlejax.plot":
        matplotlib = pytest.importorskip("matplotlib")
        matplotlib.use("Agg")
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = io.StringIO()
    ran = 0
    try:
        for qualname in names:
            test = _doctest(qualname, PUBLIC[qualname])
            if test is None:
                continue   # reported by test_public_name_has_an_example
            result = runner.run(test, out=report.write)
            ran += result.attempted
    finally:
        if module == "mlejax.plot":
            import matplotlib.pyplot as plt
            plt.close("all")
    assert runner.failures == 0, f"{runner.failures} failing docstring example(s) in " \
                                 f"{module}:\n{report.getvalue()}"
    assert ran > 0 or not names
