"""Shared test configuration.

The tests run in float64: x64 is switched on here, for the test session only.
The library itself never touches ``jax_enable_x64`` (tests/test_errors.py checks
that importing mlejax in a fresh interpreter leaves it off); float32 behaviour is
tested with explicit float32 arrays.
"""

import os

# The tests' arrays are tiny, so their time is XLA compilation, not execution: compile without
# XLA's backend optimisation passes and with XLA CPU's older (non-MLIR) fusion emitters, which
# compile these small programs in less than half the time (NIST fits: 12.7 s of compilation
# -> 5.4 s; the suite must stay within its 5-minute budget on 2 cores). Each program is also
# emitted as one LLVM module instead of several split for parallel code generation: these
# programs are too small to gain from it, and each part costs memory mappings of its own
# (24 small fits and batches: 3,870 mappings -> 1,640, 5-12% less compile time), so the
# caches below are dropped (and their programs recompiled) less often. Set before JAX
# creates its CPU client; a user setting of XLA_FLAGS is kept and extended (subprocesses
# inherit it).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_backend_optimization_level=0"
                           + " --xla_cpu_use_fusion_emitters=false"
                           + " --xla_cpu_parallel_codegen_split_count=1").strip()

# One BLAS/LAPACK thread per test process. XLA's CPU LAPACK calls (Cholesky, eigh) go through
# SciPy's OpenBLAS, which starts a thread per core; with pytest-xdist's two workers on two
# cores that is four busy threads on two cores, and a LAPACK call in a fit waits on the
# others (a 250 x 250 Cholesky inside a fit measured 0.15 s against 0.0013 s single-threaded
# on the loaded test machine). NIST + lme4 + count-model tests with -n 2: 79-87 s -> 74-75 s.
# Set before NumPy or JAX loads OpenBLAS (pytest imports neither before this file); a
# user's own setting is kept.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def assert_rel(actual, expected, rtol, what=""):
    """Element-wise relative comparison with a readable failure message."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0.0, err_msg=what)


def richardson_hessian(fn, theta, scale):
    """The Hessian of ``fn`` at ``theta`` by central differences extrapolated twice (steps
    h, h/2, h/4, error O(h^6)); the steps are a hundredth of each parameter's natural scale
    ``scale`` (only the step size may come from the fit under test)."""
    theta = np.asarray(theta, np.float64)
    p = theta.size

    def central(h):
        out = np.empty((p, p))
        for i in range(p):
            for j in range(i, p):
                ei, ej = np.zeros(p), np.zeros(p)
                ei[i], ej[j] = h[i], h[j]
                out[i, j] = out[j, i] = (fn(theta + ei + ej) - fn(theta + ei - ej)
                                         - fn(theta - ei + ej) + fn(theta - ei - ej)) / (
                    4 * h[i] * h[j])
        return out

    h = 0.01 * np.asarray(scale, np.float64)
    a, b, c = central(h), central(h / 2), central(h / 4)
    ab, bc = (4 * b - a) / 3, (4 * c - b) / 3
    return (16 * bc - ab) / 15


def flat_index(params):
    """Position of every natural-scale scalar in the flattened parameter vector.

    Returns a pytree shaped like ``params`` whose leaves hold integer indices into
    ``jax.flatten_util.ravel_pytree(params)[0]`` (the documented flattening order of
    ``FitResult.cov``: the leaves of the params pytree, each raveled row-major).
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out, offset = [], 0
    for leaf in leaves:
        size = int(np.size(leaf))
        out.append(np.arange(offset, offset + size).reshape(np.shape(leaf)))
        offset += size
    return jax.tree_util.tree_unflatten(treedef, out)


def normal_ll(params, x):
    """Per-observation Gaussian log-density with params {"mu", "sigma"}.

    Shared by several test modules on purpose: mlejax caches its compiled programs per
    log-likelihood function and data shape, so tests that fit the same model to data of
    the same shape (N_NORMAL observations) reuse one compiled program.
    """
    z = (x - params["mu"]) / params["sigma"]
    return -0.5 * z**2 - jnp.log(params["sigma"]) - 0.5 * jnp.log(2 * jnp.pi)


N_NORMAL = 40


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# Re-export for test modules (conftest helpers are importable as ``conftest``).
__all__ = ["assert_rel", "flat_index", "normal_ll", "N_NORMAL"]


def _memory_maps() -> int:
    """Memory mappings of this process (Linux), 0 where unknown."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


# Every compiled XLA program keeps a few memory mappings for as long as it is cached, and
# Linux caps a process at vm.max_map_count (65,530 by default); the whole suite run in one
# process (no -n) compiles enough programs to reach it, and the next compilation then dies
# with a segmentation fault. Past this many mappings the compiled programs are dropped
# between test modules (tests within a module still share theirs).
_MAX_MAPS = 40_000


@pytest.fixture(autouse=True, scope="module")
def _bounded_compiled_programs():
    yield
    if _memory_maps() > _MAX_MAPS:
        import gc
        import sys

        for name, module in list(sys.modules.items()):
            if name == "mlejax" or name.startswith("mlejax.") or name.startswith("benchmarks"):
                for obj in list(vars(module).values()):
                    if callable(getattr(obj, "cache_clear", None)):
                        obj.cache_clear()
        jax.clear_caches()
        gc.collect()
