"""The trust-region Newton's linear algebra against NumPy: the Cholesky step and its
trust test, and the eigendecomposition computed only where needed (under vmap: one
conditional for the batch). Float64, tolerances 1e-12 relative."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

newton = importlib.import_module("mlejax.solvers.newton")

_rng = np.random.default_rng(11)
_M = _rng.normal(size=(3, 4, 4))
PD = _M @ np.swapaxes(_M, 1, 2) + 0.5 * np.eye(4)          # three positive definite
INDEFINITE = PD[0] - 3.0 * np.eye(4) * np.linalg.eigvalsh(PD[0])[1]
G = _rng.normal(size=(3, 4))


def test_cholesky_step_solves_and_flags():
    for a, g in zip(PD, G):
        z, ok = newton._cholesky_newton(jnp.asarray(a), jnp.asarray(g))
        assert bool(ok)
        np.testing.assert_allclose(np.asarray(z), np.linalg.solve(a, g), rtol=1e-12)
    _, ok = newton._cholesky_newton(jnp.asarray(INDEFINITE), jnp.asarray(G[0]))
    assert not bool(ok)                               # not positive definite
    ill = np.diag([1.0, 1.0, 1.0, 1e-12])             # pivot ratio below _CHOL_MIN_PIVOT
    _, ok = newton._cholesky_newton(jnp.asarray(ill), jnp.asarray(G[0]))
    assert not bool(ok)


def _check(w, v, a):
    w_np = np.linalg.eigvalsh(a)
    np.testing.assert_allclose(np.asarray(w), w_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(v) @ np.diag(np.asarray(w)) @ np.asarray(v).T, a,
                               rtol=1e-12, atol=1e-12)


def test_eigh_only_where_needed():
    needed = jnp.asarray([True, False, True])
    w, v = jax.jit(jax.vmap(newton._eigh_where))(needed, jnp.asarray(PD))
    for i in (0, 2):
        _check(w[i], v[i], PD[i])
    np.testing.assert_array_equal(np.asarray(w[1]), np.zeros(4))   # the unused dummy
    np.testing.assert_array_equal(np.asarray(v[1]), np.eye(4))
    # None needed: no decomposition, dummies everywhere; unbatched: both branches.
    w, _ = jax.vmap(newton._eigh_where)(jnp.zeros(3, bool), jnp.asarray(PD))
    np.testing.assert_array_equal(np.asarray(w), np.zeros((3, 4)))
    w, v = jax.jit(newton._eigh_where)(jnp.asarray(True), jnp.asarray(PD[1]))
    _check(w, v, PD[1])
    # A shared matrix under vmap (in_batched False for it).
    w, v = jax.vmap(newton._eigh_where, in_axes=(0, None))(needed, jnp.asarray(PD[0]))
    _check(w[2], v[2], PD[0])
