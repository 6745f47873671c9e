"""The Hessian's columns without products by the identity (mlejax._unit_tangents).

Reference: ``jax.hessian`` (forward-over-reverse with ``vmap`` over the unit vectors) and
``vmap(lin)(eye)``, on models with a linear predictor, sliced and transformed parameters,
an inner ``jit``, tensors, and operations the evaluation falls back on. Tolerance: 1e-12
relative in float64 (rounding of sums taken in another order), 1e-5 in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlejax import _unit_tangents as UT
from mlejax._obs_chunks import value_grad_hessian

_rng = np.random.default_rng(3)
X = _rng.normal(size=(40, 4))
Y = (_rng.uniform(size=40) < 0.5).astype(np.float64)
M = _rng.normal(size=(3, 40, 4))


def _models(X, Y, M):
    return {
        "logistic": lambda u: jnp.sum(Y * (X @ u) - jnp.logaddexp(0.0, X @ u)),
        "predictor_on_the_right": lambda u: jnp.sum(jnp.sin(u @ X.T)),
        "sliced_leaves": lambda u: (jnp.sum(-(Y - X[:, :3] @ u[:3]) ** 2 * jnp.exp(-u[3]))
                                    - 20.0 * u[3]),
        "transformed": lambda u: -jnp.sum((X @ jnp.exp(u)) ** 2),
        "inner_jit": jax.jit(lambda u: jnp.sum(jnp.cos(X @ u))),
        "two_predictors": lambda u: jnp.sum(jnp.tanh(X @ u) * (X[::-1] @ u)),
        "tensor": lambda u: jnp.sum(jnp.cos(jnp.einsum("knd,d->kn", M, u))),
        "quadratic_and_cubic": lambda u: -u @ (X.T @ X) @ u + jnp.sum(u ** 3),
        "cumsum_falls_back": lambda u: jnp.sum(jnp.sin(jnp.cumsum(X @ u))),
    }


U0 = np.array([0.1, -0.2, 0.3, 0.05])
NAMES = list(_models(X, Y, M))


def _takes_fast_path(fn, u) -> bool:
    lin = jax.linearize(jax.grad(fn), u)[1]
    closed = jax.make_jaxpr(lin)(u)
    tangent = UT._Tangent(u.shape[0], u.dtype)
    try:
        UT._evaluate(closed.jaxpr, closed.consts, [tangent], u.shape[0])
    except UT._Unsupported:
        return False
    return tangent.skipped[0] > 0


@pytest.mark.parametrize("name", NAMES)
def test_hessian_matches_jax_hessian_float64(name):
    fn = _models(jnp.asarray(X), jnp.asarray(Y), jnp.asarray(M))[name]
    u = jnp.asarray(U0)
    f, g, h = jax.jit(lambda v: value_grad_hessian(fn, v))(u)
    ref = jax.jit(jax.hessian(fn))(u)
    np.testing.assert_allclose(f, fn(u), rtol=1e-14)
    np.testing.assert_allclose(g, jax.jit(jax.grad(fn))(u), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(ref))))
    # A product of the tangent (or a leaf's slice of it) with the data is skipped; where the
    # tangent is transformed first, or an operation is not known, vmap runs.
    assert _takes_fast_path(fn, u) == (name not in ("cumsum_falls_back", "transformed",
                                                    "quadratic_and_cubic"))


def test_columns_equal_vmap_over_the_identity_float32():
    fn = _models(jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32),
                 jnp.asarray(M, jnp.float32))["logistic"]
    u = jnp.asarray(U0, jnp.float32)
    lin = jax.linearize(jax.grad(fn), u)[1]
    cols = jax.jit(lambda v: UT.unit_tangent_columns(lin, v))(u)
    ref = jax.vmap(lin)(jnp.eye(4, dtype=jnp.float32))
    assert cols.dtype == jnp.float32
    np.testing.assert_allclose(cols, ref, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(ref))))


def test_under_vmap_over_datasets():
    """A batch of fits: the residuals are batched by the outer vmap."""
    Xs = jnp.asarray(_rng.normal(size=(5, 40, 4)))
    us = jnp.tile(jnp.asarray(U0), (5, 1))

    def ll(v, Xi):
        return jnp.sum(-jnp.logaddexp(0.0, Xi @ v) + 0.3 * (Xi @ v))

    h = jax.jit(jax.vmap(lambda u, Xi: value_grad_hessian(lambda v: ll(v, Xi), u)[2]))(us, Xs)
    ref = jax.vmap(lambda u, Xi: jax.hessian(lambda v: ll(v, Xi))(u))(us, Xs)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
@pytest.mark.parametrize("shared_data", [False, True], ids=["datasets", "restarts"])
@pytest.mark.parametrize("name", NAMES)
def test_every_model_under_vmap(name, shared_data, backend, monkeypatch):
    """Under ``vmap`` (a block of fits, or of one fit's restarts) the Hessian's final
    product takes its batched form (``_rows_product``: on CPU the tangent side written out
    transposed, elsewhere the plain product, chosen by JAX's default backend, here made to
    say "gpu" for the second): the same Hessians as ``jax.hessian``, non-square and
    swapped products included."""
    if backend != jax.default_backend():
        monkeypatch.setattr(jax, "default_backend", lambda: backend)
    rng = np.random.default_rng(11)
    Xs = jnp.asarray(X) if shared_data else jnp.asarray(rng.normal(size=(5, 40, 4)))
    us = jnp.asarray(U0) + 0.01 * jnp.arange(5.0)[:, None]
    axes = (0, None if shared_data else 0)

    def model(Xi):
        return _models(Xi, jnp.asarray(Y), jnp.asarray(M))[name]

    h = jax.jit(jax.vmap(lambda u, Xi: value_grad_hessian(model(Xi), u)[2], axes))(us, Xs)
    ref = jax.jit(jax.vmap(lambda u, Xi: jax.hessian(model(Xi))(u), axes))(us, Xs)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(ref))))


def test_a_map_that_ignores_its_input():
    u = jnp.asarray(U0)
    cols = UT.unit_tangent_columns(lambda t: jnp.zeros(4), u)
    np.testing.assert_array_equal(cols, np.zeros((4, 4)))
