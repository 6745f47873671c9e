"""The Laplace approximation of a marginal likelihood, differentiated implicitly.

For a joint log-density ``f(u, theta) = log p(y | u, theta) + log p(u | theta)`` of the data,
``q`` random effects ``u`` and the parameters ``theta``, the marginal log-likelihood is

    L(theta) = log int exp f(u, theta) du
             ~ f(u_hat, theta) + (q / 2) log 2 pi - (1 / 2) log det A,

with ``u_hat(theta)`` the mode of ``f`` in ``u`` and ``A = -d2f/du2`` at it (Kristensen et
al., "TMB: automatic differentiation and Laplace approximation", J. Stat. Softw. 70, 2016;
lme4's ``glmer`` with ``nAGQ = 1``). For a Gaussian joint (a linear mixed model) it is exact.

* **The inner Newton** (:func:`inner_newton`) finds ``u_hat`` by Newton's method on ``f`` in
  ``u``, a Levenberg shift where ``A`` is not positive definite and a backtracking line
  search on ``f``, from a warm start (the last mode, :class:`WarmStarted`). It stops after
  a pure Newton step shorter than ``sqrt(eps) (1 + |u|)`` per coordinate: the next error is
  then of the order of ``eps``.
* **Implicit differentiation**: ``u_hat`` is a :func:`jax.custom_jvp` function (:func:`mode`)
  whose derivative is the implicit function theorem's, ``d u_hat = A^-1 (d2f/du dtheta)
  dtheta``, never a derivative through the iterations. The rule is plain JAX on ``u_hat``
  (itself this function), so it can be differentiated again: the gradient of ``L`` for any
  outer solver, and its Hessian for Newton's method and the observed information.
* **Blocks**: the random effects are held as ``(B, m)``: ``B = 1`` block of all ``q`` for a
  dense ``A``, or one block of ``m`` per group when the groups are independent (declared with
  ``grouped=True``: each group's effects enter only its own terms, so ``A`` is block
  diagonal). The blocks come from ``m`` Hessian-vector products, the groups coloured
  together (tangent ``e_j`` in every group at once gives column ``j`` of every block): cost
  linear in the number of groups. A dense ``A`` is the same code with one block.
* **Adaptive Gauss-Hermite quadrature** (``nodes > 1``; one scalar effect per group, and a
  joint that returns one value per group): each group's integral by ``n`` nodes centred at
  its mode and scaled by its conditional standard deviation ``A_g^(-1/2)`` (lme4's
  ``nAGQ``; Liu & Pierce 1994). One node is the Laplace approximation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

__all__ = ["Layout", "Laplace", "WarmStarted", "WarmState", "mode", "at_mode", "inner_newton",
           "inner_newton_blocks", "at_mode_factored", "half_logdet", "half_logdet_gradient",
           "logdet_gradient", "logdet_hessian", "check_groups", "report"]

# Cholesky tries with a growing Levenberg shift before a block is given up.
_SHIFT_TRIES = 40
# Backtracking halvings of the inner step before it is given up.
_HALVINGS = 40
_ARMIJO = 1e-4


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the random effects sit in the user's parameters, and their ``(B, m)`` form.

    ``names`` and ``shapes`` in the order the user wrote them; ``grouped``: every leaf has
    the leading axis ``G`` (the groups) and block ``g`` holds the entries ``[g, ...]`` of
    every leaf; otherwise one block of all entries.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    grouped: bool
    dtype: Any

    @property
    def n_blocks(self) -> int:
        return int(self.shapes[0][0]) if self.grouped else 1

    @property
    def widths(self) -> tuple[int, ...]:
        """Entries of each leaf in one block."""
        if self.grouped:
            return tuple(int(np.prod(s[1:])) for s in self.shapes)
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def width(self) -> int:
        return int(sum(self.widths))

    @property
    def size(self) -> int:
        return self.n_blocks * self.width

    def flatten(self, tree: dict) -> jax.Array:
        """The random leaves (a dict by name) as ``(B, m)``."""
        b = self.n_blocks
        parts = [jnp.reshape(jnp.asarray(tree[n], self.dtype), (b, w))
                 for n, w in zip(self.names, self.widths)]
        return jnp.concatenate(parts, axis=1)

    def unflatten(self, u: jax.Array) -> dict:
        out, i = {}, 0
        for name, shape, w in zip(self.names, self.shapes, self.widths):
            out[name] = jnp.reshape(u[:, i:i + w], shape)
            i += w
        return out


@dataclasses.dataclass(frozen=True)
class Laplace:
    """The marginal log-likelihood of a joint log-density, as a ``loglik_fn(theta, data)``.

    Static and hashable (the key of compiled programs). ``data`` is ``{"data": the user's
    data, "u0": the inner Newton's start (B, m)}``; ``theta`` the parameters without the
    random effects. ``per_group``: ``joint_fn`` returns one value per group (summed here).
    """

    joint_fn: Callable
    layout: Layout
    nodes: int = 1
    per_group: bool = False
    max_inner: int = 100

    @property
    def factored(self) -> bool:
        """Blocks factored by LAPACK (a dense ``A``, or blocks wider than ``_UNROLL``): the
        marginal is differentiated by formulas around one factorisation
        (:func:`half_logdet`), and each evaluation costs ``O(m^3)`` per block."""
        return self.layout.width > _UNROLL and self.nodes == 1

    # --- the joint and its curvature in u ------------------------------------------------
    def params(self, u: jax.Array, theta: dict) -> dict:
        full = dict(theta)
        full.update(self.layout.unflatten(u))
        return full

    def joint(self, u: jax.Array, theta: dict, data) -> jax.Array:
        """The joint log-density, a scalar."""
        return jnp.sum(self.joint_fn(self.params(u, theta), data)).astype(self.layout.dtype)

    def joint_by_group(self, u: jax.Array, theta: dict, data) -> jax.Array:
        return jnp.asarray(self.joint_fn(self.params(u, theta), data), self.layout.dtype)

    def blocks(self, u: jax.Array, theta: dict, data):
        """``f``, ``g = df/du`` and the blocks of ``A = -d2f/du2`` (``(B, m, m)``) at ``u``:
        ``m`` Hessian-vector products, the blocks coloured together."""
        b, m = u.shape
        (f, g), lin = jax.linearize(
            jax.value_and_grad(lambda v: self.joint(v, theta, data)), u)
        units = jnp.broadcast_to(jnp.eye(m, dtype=u.dtype)[:, None, :], (m, b, m))
        cols = jax.vmap(lambda v: lin(v)[1])(units)          # (m_j, B, m_i): H[b, i, j]
        a = -jnp.transpose(cols, (1, 2, 0))
        return f, g, 0.5 * (a + jnp.swapaxes(a, 1, 2))

    # --- the marginal ------------------------------------------------------------------
    def __call__(self, theta: dict, data) -> jax.Array:
        value, _ = marginal(self, theta, data["data"], data["u0"])
        return value


# Blocks up to this size are factored by formulas unrolled over their entries, vectorised
# across the blocks; larger ones (a dense A) by LAPACK. Besides sparing a LAPACK call per
# block, this keeps second derivatives of batched factorisations out of XLA's CPU linear
# algebra, whose forward-over-forward derivative of a batched Cholesky hangs from about
# 80,000 blocks (XLA 0.10.2).
_UNROLL = 8


def cholesky(a: jax.Array) -> jax.Array:
    """The lower Cholesky factor of each ``(m, m)`` block of ``a`` (``(B, m, m)``); NaN
    entries where a block is not positive definite (as LAPACK's)."""
    m = a.shape[-1]
    if m > _UNROLL:
        return jnp.linalg.cholesky(a)
    cols: list[list[jax.Array]] = [[None] * m for _ in range(m)]   # cols[i][j] = L[:, i, j]
    for j in range(m):
        d = a[:, j, j] - sum((cols[j][k] ** 2 for k in range(j)), jnp.zeros_like(a[:, 0, 0]))
        ljj = jnp.sqrt(jnp.where(d > 0, d, jnp.nan))
        cols[j][j] = ljj
        for i in range(j + 1, m):
            off = a[:, i, j] - sum((cols[i][k] * cols[j][k] for k in range(j)),
                                   jnp.zeros_like(a[:, 0, 0]))
            cols[i][j] = off / ljj
    zero = jnp.zeros_like(a[:, 0, 0])
    return jnp.stack([jnp.stack([cols[i][j] if j <= i else zero for j in range(m)], -1)
                      for i in range(m)], -2)


def cho_solve(chol: jax.Array, r: jax.Array) -> jax.Array:
    """``(L L^T)^-1 r`` per block (``chol`` ``(B, m, m)``, ``r`` ``(B, m)``)."""
    m = chol.shape[-1]
    if m > _UNROLL:
        return jax.vmap(lambda c, v: jax.scipy.linalg.cho_solve((c, True), v))(chol, r)
    y: list = []
    for i in range(m):                       # L y = r
        acc = r[:, i] - sum((chol[:, i, k] * y[k] for k in range(i)), jnp.zeros_like(r[:, 0]))
        y.append(acc / chol[:, i, i])
    x: list = [None] * m
    for i in reversed(range(m)):             # L^T x = y
        acc = y[i] - sum((chol[:, k, i] * x[k] for k in range(i + 1, m)),
                         jnp.zeros_like(r[:, 0]))
        x[i] = acc / chol[:, i, i]
    return jnp.stack(x, -1)


def _shifted_cholesky(a: jax.Array):
    """Cholesky factors of ``a + mu I`` per block, with ``mu = 0`` where ``a`` is positive
    definite and otherwise the smallest of ``1e-6 s, 1e-5 s, ...`` (``s`` the block's largest
    diagonal entry) that makes it so. Returns the factors and the shifts."""
    b, m, _ = a.shape
    eye = jnp.eye(m, dtype=a.dtype)
    tiny = jnp.finfo(a.dtype).tiny
    scale = jnp.maximum(jnp.max(jnp.abs(jnp.diagonal(a, axis1=1, axis2=2)), axis=1), 1.0)

    def factor(mu):
        chol = cholesky(a + mu[:, None, None] * eye)
        return chol, jnp.all(jnp.isfinite(chol), axis=(1, 2))

    chol, ok = factor(jnp.zeros(b, a.dtype))

    def cond(c):
        k, _, _, ok = c
        return (k < _SHIFT_TRIES) & ~jnp.all(ok)

    def body(c):
        k, mu, chol, ok = c
        mu = jnp.where(ok, mu, jnp.where(mu == 0, 1e-6 * scale + tiny, 10.0 * mu))
        new, new_ok = factor(mu)
        return k + 1, mu, jnp.where(ok[:, None, None], chol, new), ok | new_ok

    _, mu, chol, ok = jax.lax.while_loop(cond, body, (0, jnp.zeros(b, a.dtype), chol, ok))
    return chol, mu, ok


class InnerState(NamedTuple):
    u: jax.Array
    f: jax.Array
    g: jax.Array
    a: jax.Array
    it: jax.Array
    done: jax.Array
    converged: jax.Array


def inner_newton(spec: Laplace, theta: dict, data, u0: jax.Array):
    """The mode of the joint in ``u`` from ``u0``: ``(u_hat, converged, steps)``."""
    u, converged, steps, _ = inner_newton_blocks(spec, theta, data, u0)
    return u, converged, steps


def inner_newton_blocks(spec: Laplace, theta: dict, data, u0: jax.Array):
    """:func:`inner_newton`, with the blocks of ``A`` at the mode as a fourth output:
    ``(u_hat, converged, steps, a)``.

    Newton steps ``(A + mu I)^-1 g`` (``mu`` a Levenberg shift only where ``A`` is not
    positive definite), backtracked until ``f`` rises by ``1e-4`` of the predicted slope.
    Converged after a full, unshifted step shorter than ``sqrt(eps) (1 + |u|)`` in every
    coordinate (quadratic convergence leaves an error of order ``eps``), or where the
    predicted gain is below the rounding of ``f``.
    """
    dtype = spec.layout.dtype
    eps = jnp.finfo(dtype).eps
    tol_x = math.sqrt(float(eps))
    u0 = jax.lax.stop_gradient(jnp.asarray(u0, dtype))
    theta = jax.lax.stop_gradient(theta)

    def fval(v):
        f = spec.joint(v, theta, data)
        return jnp.where(jnp.isnan(f), -jnp.inf, f)

    def body(s: InnerState) -> InnerState:
        chol, mu, ok = _shifted_cholesky(s.a)
        d = cho_solve(chol, s.g)
        d = jnp.where(ok[:, None] & jnp.isfinite(d), d, 0.0)
        slope = jnp.sum(s.g * d)
        noise = 16.0 * eps * jnp.maximum(jnp.abs(s.f), 1.0)

        def halve(c):
            t, _ = c
            return t / 2, fval(s.u + (t / 2) * d)

        def worse(c):
            t, fn = c
            return (fn < s.f + _ARMIJO * t * slope - noise) & (t > 2.0 ** -_HALVINGS)

        t, f_new = jax.lax.while_loop(worse, halve, (jnp.asarray(1.0, dtype), fval(s.u + d)))
        accepted = (f_new >= s.f + _ARMIJO * t * slope - noise) & (slope > 0)
        u_new = jnp.where(accepted, s.u + t * d, s.u)
        f1, g1, a1 = spec.blocks(u_new, theta, data)
        small = jnp.all(jnp.abs(t * d) <= tol_x * (1.0 + jnp.abs(s.u)))
        pure = (t == 1.0) & jnp.all(mu == 0)
        at_floor = slope <= noise
        converged = (accepted & pure & small) | at_floor
        done = converged | ~accepted | (s.it + 1 >= spec.max_inner)
        return InnerState(u_new, f1, g1, a1, s.it + 1, done, converged)

    f0, g0, a0 = spec.blocks(u0, theta, data)
    s0 = InnerState(u0, f0, g0, a0, jnp.int32(0), ~jnp.isfinite(f0), jnp.bool_(False))
    s = jax.lax.while_loop(lambda s: ~s.done, body, s0)
    return s.u, s.converged & jnp.all(jnp.isfinite(s.u)), s.it, s.a


def mode(spec: Laplace, theta: dict, data, u0: jax.Array):
    """``(u_hat, ok)``: the mode of the joint in ``u`` (from ``u0``), and 1.0 where the inner
    Newton converged (0.0 where not). Differentiable in ``theta`` by the implicit function
    theorem, to any order; ``data`` and ``u0`` carry no derivative.

    The inner Newton runs once, on ``theta`` without its derivatives; :func:`at_mode` then
    attaches them. Every derivative is taken at this one ``theta``, so each level of
    differentiation reuses the mode found here instead of running the iterations again
    (one loop in the program of a Hessian, not one per level)."""
    u, converged, _ = inner_newton(spec, jax.lax.stop_gradient(theta), data, u0)
    u = at_mode(spec, theta, data, jax.lax.stop_gradient(u))
    return u, converged.astype(spec.layout.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def at_mode(spec: Laplace, theta: dict, data, u_hat: jax.Array) -> jax.Array:
    """``u_hat``, the mode of the joint at ``theta``, as a function of ``theta``: its value is
    the given one, its derivative the implicit function theorem's."""
    del theta, data
    return u_hat


@at_mode.defjvp
def _at_mode_jvp(spec: Laplace, primals, tangents):
    theta, data, u_hat = primals
    dtheta = tangents[0]
    u = at_mode(spec, theta, data, u_hat)   # differentiable again by this rule
    # grad_u f(u_hat(theta), theta) = 0  =>  A du = (d2f/du dtheta) dtheta.
    grad_u = lambda th: jax.grad(spec.joint)(u, th, data)  # noqa: E731
    _, r = jax.jvp(grad_u, (theta,), (dtheta,))
    _, _, a = spec.blocks(u, theta, data)
    chol, pd = safe_cholesky(a)
    du = cho_solve(chol, r)
    return u, jnp.where(pd[:, None], du, 0.0)


def safe_cholesky(a: jax.Array):
    """Cholesky factors of the blocks of ``a`` and whether each is positive definite; a
    block that is not is replaced by the identity, so no NaN reaches a derivative."""
    pd = jnp.all(jnp.isfinite(cholesky(jax.lax.stop_gradient(a))), axis=(1, 2))
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    safe = jnp.where(pd[:, None, None], a, eye)
    return cholesky(safe), pd


def marginal(spec: Laplace, theta: dict, data, u0: jax.Array):
    """The Laplace (or adaptive Gauss-Hermite) marginal log-likelihood at ``theta`` and the
    mode; ``-inf`` where the inner Newton did not converge or ``A`` is not positive definite
    there (a trial point the outer solver then rejects)."""
    if spec.factored:
        return _marginal_factored(spec, theta, data, u0)
    u, ok = mode(spec, theta, data, u0)
    _, _, a = spec.blocks(u, theta, data)
    chol, pd = safe_cholesky(a)
    logdiag = jnp.log(jnp.diagonal(chol, axis1=1, axis2=2))    # (B, m)
    if spec.nodes == 1:
        f = spec.joint(u, theta, data)
        value = f + 0.5 * spec.layout.size * math.log(2.0 * math.pi) - jnp.sum(logdiag)
    else:
        value = _agq(spec, theta, data, u, logdiag[:, 0])
    good = (ok > 0) & jnp.all(pd)
    return jnp.where(good, value, -jnp.inf), u


# --- large blocks (a dense A): one factorisation, derivatives by formulas ------------------
# Differentiating a q x q Cholesky factorisation (twice, for Newton's Hessian and the
# observed information) costs several triangular solves with q right-hand sides, O(q^3)
# each, and a dense A used to be factored again at every level of differentiation. For
# blocks factored by LAPACK the marginal instead factors A once at the mode, forms its
# inverse S once, and differentiates by formulas that need only products of A's derivatives
# with vectors (Hessian-vector products of the joint: O(q (n + q)) for q columns, not q^3):
#
# * the mode: d u_hat = A^-1 (d2f/du dtheta) dtheta as a linear solve whose derivative goes
#   through the product A v (``jax.lax.custom_linear_solve``), never through the factor;
# * l = log det A(u_hat(theta), theta): with the direction x_k = (d u_hat / d theta_k, e_k)
#   and Adot_k = DA[x_k],
#       dl/dtheta_k = tr(S Adot_k),
#       d2l/dtheta_k dtheta_l = -tr(S Adot_l S Adot_k) + D2 Phi[x_k, x_l],
#   Phi(x) = tr(S A(x)) + z . grad_u f(x), z = S grad_u tr(S A) (the second derivative of the
#   mode, d2 u_hat = S D2(grad_u f)[x_k, x_l], enters through z), S and z held fixed. The
#   products Adot_l S are the derivatives along x_l of A(x) S, q Hessian-vector products
#   with the columns of S (coloured across blocks, as in :meth:`Laplace.blocks`).


def _flat_parts(spec: Laplace, theta: dict, data, u: jax.Array, inv: jax.Array):
    """The pieces of the formulas above at ``(u, theta)`` with ``theta`` flat: ``(t, F, AS,
    U)``: ``F(w, t) = grad_u f``, ``AS(w, t) = A(w, t) S`` (``(B, m, m)``) and the mode's
    derivatives ``U`` (``(p, B, m)``, one per coordinate of ``t``)."""
    t, unravel = jax.flatten_util.ravel_pytree(theta)

    def grad_u(w, tv):
        return jax.grad(spec.joint)(w, unravel(tv), data)

    cols = jnp.moveaxis(inv, 2, 0)                       # cols[j] = S[:, :, j]: (m, B, m)

    def a_times_inv(w, tv):
        hv = jax.vmap(lambda v: jax.jvp(lambda x: grad_u(x, tv), (w,), (v,))[1])(cols)
        return -jnp.moveaxis(hv, 0, 2)                   # [b, i, j] = (A_b S_b)[i, j]

    eye = jnp.eye(t.shape[0], dtype=t.dtype)
    r = jax.vmap(lambda e: jax.jvp(lambda tv: grad_u(u, tv), (t,), (e,))[1])(eye)
    dirs = jnp.einsum("bij,kbj->kbi", inv, r)            # d u_hat / d t_k = S r_k
    return t, grad_u, a_times_inv, dirs


def _trace(m: jax.Array) -> jax.Array:
    return jnp.sum(jnp.trace(m, axis1=-2, axis2=-1))


def logdet_gradient(spec: Laplace, theta: dict, data, u: jax.Array, inv: jax.Array):
    """The gradient of ``log det A`` at the mode ``u`` in flat ``theta``: ``tr(S Adot_k)``,
    from one reverse pass through ``tr(A(x) S)``."""
    t, _, a_times_inv, dirs = _flat_parts(spec, theta, data, u, inv)
    g_u, g_t = jax.grad(lambda w, tv: _trace(a_times_inv(w, tv)), argnums=(0, 1))(u, t)
    return jnp.einsum("kbi,bi->k", dirs, g_u) + g_t


def logdet_hessian(spec: Laplace, theta: dict, data, u: jax.Array, inv: jax.Array):
    """The gradient and the Hessian of ``log det A`` at the mode ``u`` in flat ``theta`` (the
    formula above). One pass per coordinate of ``theta`` (``lax.map``: each is ``q``
    Hessian-vector products wide) gives, along its direction ``x_k``, both ``Adot_k S`` and
    the derivative of ``grad tr(A S)``."""
    t, grad_u, a_times_inv, dirs = _flat_parts(spec, theta, data, u, inv)
    p = t.shape[0]
    eye = jnp.eye(p, dtype=t.dtype)

    def psi(w, tv):
        prod = a_times_inv(w, tv)
        return _trace(prod), prod

    grad_psi = jax.grad(psi, argnums=(0, 1), has_aux=True)

    def along(k):
        (g, _), (dg, q) = jax.jvp(grad_psi, (u, t), (dirs[k], eye[k]))
        return g, jnp.einsum("lbi,bi->l", dirs, dg[0]) + dg[1], q

    (g_u, _), d2psi, q = jax.lax.map(along, jnp.arange(p))       # d2psi[k, l], q: Adot_k S
    g_u = g_u[0]
    grad = jnp.einsum("kbii->k", q)
    t1 = jnp.einsum("lbij,kbji->lk", q, q)
    # The second derivative of the mode: z . D2(grad_u f)[x_k, x_l], z = S grad_u tr(A S).
    z = jnp.einsum("bij,bj->bi", inv, g_u)

    def z_grad(s):
        return jnp.sum(z * grad_u(u + jnp.einsum("k,kbi->bi", s, dirs), t + s))

    h = d2psi + jax.hessian(z_grad)(jnp.zeros(p, t.dtype)) - t1
    return grad, 0.5 * (h + h.T)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def half_logdet(spec: Laplace, theta: dict, data, u_hat: jax.Array, chol: jax.Array,
                inv: jax.Array) -> jax.Array:
    """``(1/2) log det A`` at the mode ``u_hat(theta)`` (``chol`` and ``inv``: the Cholesky
    factors and inverses of the blocks of ``A`` there), differentiable in ``theta`` to the
    second order by the formulas above; ``data``, ``u_hat``, ``chol`` and ``inv`` carry no
    derivative (they are the values at this ``theta``)."""
    del spec, theta, data, u_hat, inv
    return jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)))


@half_logdet.defjvp
def _half_logdet_jvp(spec: Laplace, primals, tangents):
    theta, data, u_hat, chol, inv = primals
    dt = jax.flatten_util.ravel_pytree(tangents[0])[0]
    grad = half_logdet_gradient(spec, theta, data, u_hat, inv)
    return half_logdet(spec, *primals), jnp.dot(grad, dt.astype(grad.dtype))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def half_logdet_gradient(spec: Laplace, theta: dict, data, u_hat: jax.Array,
                         inv: jax.Array) -> jax.Array:
    """The gradient of :func:`half_logdet` in flat ``theta``; its derivative the Hessian."""
    return 0.5 * logdet_gradient(spec, theta, data, u_hat, inv)


@half_logdet_gradient.defjvp
def _half_logdet_gradient_jvp(spec: Laplace, primals, tangents):
    theta, data, u_hat, inv = primals
    dt = jax.flatten_util.ravel_pytree(tangents[0])[0]
    grad, hess = logdet_hessian(spec, theta, data, u_hat, inv)
    return 0.5 * grad, (0.5 * hess) @ dt.astype(hess.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def at_mode_factored(spec: Laplace, theta: dict, data, u_hat: jax.Array,
                     chol: jax.Array) -> jax.Array:
    """:func:`at_mode` given the Cholesky factors ``chol`` of the blocks of ``A`` at the mode:
    the implicit derivative ``A^-1 r`` is a linear solve by them whose own derivative goes
    through the products ``A v`` (Hessian-vector products), never through the factors."""
    del theta, data, chol
    return u_hat


@at_mode_factored.defjvp
def _at_mode_factored_jvp(spec: Laplace, primals, tangents):
    theta, data, u_hat, chol = primals
    dtheta = tangents[0]
    u = at_mode_factored(spec, theta, data, u_hat, chol)   # differentiable again

    def grad_u(v, th):
        return jax.grad(spec.joint)(v, th, data)

    _, r = jax.jvp(lambda th: grad_u(u, th), (theta,), (dtheta,))

    def a_times(v):
        return -jax.jvp(lambda w: grad_u(w, theta), (u,), (v,))[1]

    du = jax.lax.custom_linear_solve(a_times, r, lambda _, b: cho_solve(chol, b),
                                     symmetric=True)
    return u, du


def _marginal_factored(spec: Laplace, theta: dict, data, u0: jax.Array):
    """:func:`marginal` for blocks factored by LAPACK (a dense ``A``): one factorisation and
    one inverse at the mode, derivatives by the formulas above."""
    fixed = jax.lax.stop_gradient(theta)
    u_hat, converged, _, a = inner_newton_blocks(spec, fixed, data, u0)
    u_hat = jax.lax.stop_gradient(u_hat)
    a = jax.lax.stop_gradient(a)
    m = a.shape[-1]
    eye = jnp.eye(m, dtype=a.dtype)
    chol = cholesky(a)
    pd = jnp.all(jnp.isfinite(chol), axis=(1, 2))
    chol = jnp.where(pd[:, None, None], chol, eye)
    inv = jax.vmap(lambda c: jax.scipy.linalg.cho_solve((c, True), eye))(chol)
    inv = 0.5 * (inv + jnp.swapaxes(inv, 1, 2))
    u = at_mode_factored(spec, theta, data, u_hat, chol)
    f = spec.joint(u, theta, data)
    value = (f + 0.5 * spec.layout.size * math.log(2.0 * math.pi)
             - half_logdet(spec, theta, data, u_hat, chol, inv))
    good = converged & jnp.all(pd)
    return jnp.where(good, value, -jnp.inf), u


def _agq(spec: Laplace, theta: dict, data, u: jax.Array, log_root_a: jax.Array):
    """Adaptive Gauss-Hermite quadrature of each group's scalar effect: with
    ``s_g = sqrt(2 / A_g)``, ``log int exp f_g = log s_g + logsumexp_k (log w_k + x_k^2 +
    f_g(u_g + s_g x_k))`` (Hermite nodes ``x_k``, weights ``w_k``)."""
    x, w = np.polynomial.hermite.hermgauss(spec.nodes)
    dtype = spec.layout.dtype
    x = jnp.asarray(x, dtype)
    logw = jnp.asarray(np.log(w) + x ** 2, dtype)
    s = jnp.sqrt(2.0) * jnp.exp(-log_root_a)                 # (G,)
    vals = jax.vmap(lambda xk: spec.joint_by_group(u + (s * xk)[:, None], theta, data))(x)
    return jnp.sum(jnp.log(s) + jax.nn.logsumexp(logw[:, None] + vals, axis=0))


# --- warm starts ---------------------------------------------------------------------------
class WarmState(NamedTuple):
    """An outer solver's state and the mode of the random effects at its point."""

    inner: Any
    warm: jax.Array

    def __getattr__(self, name):   # u, f, g, hess, ...: the outer solver's
        return getattr(self.inner, name)


class WarmStarted:
    """An outer solver whose objective starts its inner Newton from the last mode.

    ``make_solver(w)`` is the outer solver on the marginal whose inner Newton starts at ``w``
    (``(B, m)``); ``mode_at(u, w)`` the mode at the outer point ``u`` from ``w``. After each
    step the mode at the new point (a step or two from the last one) becomes the next start,
    so the evaluations of a step begin next to their answer. The marginal itself does not
    depend on the start (to the inner tolerance): only the work does.
    """

    stochastic = False
    gradient_free = False

    def __init__(self, make_solver: Callable, mode_at: Callable, w0: jax.Array):
        self.make_solver = make_solver
        self.mode_at = mode_at
        self.w0 = w0

    def init(self, u0):
        # The first evaluations start from the given start (``init``'s random effects).
        return WarmState(self.make_solver(self.w0).init(u0), self.w0)

    def step(self, state: WarmState):
        inner, code = self.make_solver(state.warm).step(state.inner)
        return WarmState(inner, self.mode_at(inner.u, state.warm)), code


# --- checks and the report ---------------------------------------------------------------
def check_groups(spec: Laplace, theta: dict, data, u: jax.Array, key) -> jax.Array:
    """The largest relative discrepancy between ``A r`` and the block-diagonal product
    ``blockdiag(A) r`` for a random ``r``: zero (to rounding) when the groups are truly
    independent, as ``grouped=True`` declares."""
    r = jax.random.normal(key, u.shape, u.dtype)
    _, hv = jax.jvp(lambda v: jax.grad(spec.joint)(v, theta, data), (u,), (r,))
    _, _, a = spec.blocks(u, theta, data)
    bd = -jnp.einsum("bij,bj->bi", a, r)
    scale = jnp.maximum(jnp.max(jnp.abs(hv)), jnp.max(jnp.abs(bd)))
    return jnp.max(jnp.abs(hv - bd)) / jnp.maximum(scale, jnp.finfo(u.dtype).tiny)


class RandomReport(NamedTuple):
    """The random effects at the estimate (flat ``(B, m)`` arrays) and their diagnosis."""

    mode: jax.Array
    stderr: jax.Array        # with the uncertainty of theta-hat (TMB's sdreport)
    cond_stderr: jax.Array   # given theta-hat: sqrt diag A^-1
    converged: jax.Array     # the inner Newton converged at the estimate
    definite: jax.Array      # A positive definite at the mode


def report(spec: Laplace, theta_of_u: Callable, u_hat: jax.Array, cov_u: jax.Array, data,
           w: jax.Array) -> RandomReport:
    """The modes at the outer estimate ``u_hat`` (unconstrained; ``theta_of_u`` maps it to
    the parameters) with their standard errors: conditional on theta-hat, ``sqrt diag
    A^-1``, and with theta-hat's uncertainty (``cov_u``, the outer covariance in ``u``)
    added by the delta method, ``diag(A^-1 + J cov_u J^T)``, ``J = d u_hat / d u``."""
    theta = theta_of_u(u_hat)
    u, converged, _ = inner_newton(spec, theta, data, w)
    _, _, a = spec.blocks(u, theta, data)
    chol, pd = safe_cholesky(a)
    m = a.shape[-1]
    units = jnp.broadcast_to(jnp.eye(m, dtype=a.dtype)[:, None, :], (m,) + a.shape[:2])
    inv_cols = jax.vmap(lambda e: cho_solve(chol, e))(units)          # (m_j, B, m_i)
    diag = jnp.diagonal(jnp.transpose(inv_cols, (1, 2, 0)), axis1=1, axis2=2)
    cond_var = jnp.where(pd[:, None], diag, jnp.nan)
    jac = jax.jacfwd(lambda v: at_mode(spec, theta_of_u(v), data, u))(u_hat)   # (B, m, p)
    extra = jnp.einsum("bip,pq,biq->bi", jac, cov_u, jac)
    return RandomReport(u, jnp.sqrt(cond_var + extra), jnp.sqrt(cond_var), converged,
                        jnp.all(pd))
