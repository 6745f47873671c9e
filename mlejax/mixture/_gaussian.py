"""Gaussian mixtures (:class:`GaussianMixture`, four covariance types): their M-step and
the component log-densities through Cholesky factors (:func:`gaussian_logpdf`)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import constraints as C
from mlejax.mixture._base import HI, Mixture, counts

__all__ = ["GaussianMixture", "gaussian_logpdf"]

_COV_TYPES = ("full", "tied", "diag", "spherical")


@dataclasses.dataclass(frozen=True)
class GaussianMixture(Mixture):
    """A mixture of ``n_components`` multivariate normal distributions, fitted by EM.

    Maximises ``sum_i log sum_j pi_j N(x_i | mu_j, Sigma_j)``; see the module docstring for
    the M-step, the covariance types and the starts.

    Args:
      n_components: the number of components ``k``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      reg_covar: added to the diagonal of every covariance at each M-step (as in
        scikit-learn), so that a component collapsing onto a point stays positive definite.
        The regularised M-step no longer maximises ``Q`` exactly: its fixed point lies
        ``O(reg_covar)`` from the maximum of the log-likelihood, where ``L`` is lower by
        ``O(reg_covar^2)``, and the last iterations towards it can lower ``L`` (on the iris
        data with reg_covar=1e-6, by up to 4e-11 relative). EM stops at the first iteration
        that would lower ``L`` beyond rounding, so the trace stays monotone and the estimate
        agrees with scikit-learn's (which iterates on to that fixed point) to
        ``O(reg_covar)`` (4e-5 relative on iris, full covariances); with ``reg_covar=0`` EM
        stops at its fixed point (``ftol``, ``xtol``), scikit-learn's to 1e-6.
      init_params: ``"kmeans"``, ``"k-means++"`` or ``"random"``.
      max_steps: at most this many EM iterations (the status says ``MAX_STEPS`` if hit;
        the default 3000 leaves room for slowly converging, overlapping components).
      ftol, xtol: EM stops at its fixed point: when an iteration changes the
        log-likelihood by at most ``ftol * max(|loglik|, 1)`` and moves each parameter
        (weights, means, covariances as numbers) by at most ``xtol * (1 + |value|)``
        (defaults ``eps ** (2/3)`` of the dtype for both, :func:`mlejax.em.em_xtol`;
        ``xtol=float("inf")`` stops on the change in the log-likelihood alone).
      kmeans_steps: Lloyd iterations of the ``"kmeans"`` start.

    Example:
      >>> import jax, mlejax as mj
      >>> x = jax.random.normal(jax.random.key(1), (500, 2)).at[:250].add(4.0)
      >>> res = mj.GaussianMixture(2).fit(x, key=jax.random.key(0), n_init=4)
      >>> res.params["means"].shape, bool(res.converged)
      ((2, 2), True)
    """

    n_components: int
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    init_params: str = "kmeans"
    max_steps: int = 3000
    ftol: float | None = None
    kmeans_steps: int = 100
    xtol: float | None = None
    _sort_by = "means"

    def __post_init__(self):
        self._validate_settings()
        if self.covariance_type not in _COV_TYPES:
            raise ValueError(f"covariance_type={self.covariance_type!r} is not known; choose "
                             f"one of {_COV_TYPES}.")
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0):
            raise ValueError(f"reg_covar must be a finite number >= 0; got {self.reg_covar!r}.")

    def param_shapes(self, d):
        k = self.n_components
        cov = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        return {"covariances": cov[self.covariance_type], "means": (k, d), "weights": (k,)}

    def constraints(self):
        pd = self.covariance_type in ("full", "tied")
        return {"covariances": C.positive_definite if pd else C.positive, "means": C.real,
                "weights": C.simplex}

    def n_parameters(self, d):
        k = self.n_components
        cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d,
               "spherical": k}[self.covariance_type]
        return (k - 1) + k * d + cov

    def joint_loglik(self, params, x):
        return jnp.log(params["weights"]) + gaussian_logpdf(
            x, params["means"], params["covariances"], self.covariance_type)

    def m_step(self, resp, x):
        ctype, reg = self.covariance_type, self.reg_covar
        d = x.shape[1]
        diagonal = ctype in ("diag", "spherical")
        if jnp.finfo(x.dtype).eps < _MOMENTS_MAX_EPS:
            nk, means, s = _moments(resp, x, diagonal)
        else:
            nk = counts(resp)
            means = jnp.matmul(resp.T, x, precision=HI) / nk[:, None]   # (k, d)
            s = _scatter_centred(resp, x, means, diagonal)
        if ctype in ("full", "tied"):
            s = 0.5 * (s + jnp.swapaxes(s, -1, -2))                        # (k, d, d)
            eye = jnp.eye(d, dtype=x.dtype)
            if ctype == "full":
                cov = s / nk[:, None, None] + reg * eye
            else:
                cov = jnp.sum(s, axis=0) / jnp.sum(nk) + reg * eye
        else:
            var = s / nk[:, None] + reg                                     # (k, d)
            cov = var if ctype == "diag" else jnp.mean(var, axis=1)
        return {"covariances": cov, "means": means, "weights": nk / jnp.sum(nk)}

    def anneal_m_step(self, params, resp, x):
        """The M-step of deterministic annealing's stages before ``beta = 1``: weights and
        means move; every component gets one shared isotropic covariance ``v I``, ``v`` the
        pooled variance of the start (kept through the stages).

        Tempering ``p^beta`` of a Gaussian gives a Gaussian of covariance ``Sigma / beta``:
        the temperature acts as a scale. A covariance learned at a hot (small ``beta``)
        stage absorbs it, grows to fit the merged data, and the merged component never
        splits before ``beta = 1``: annealing would end where it merged. With the scale
        fixed, the temperature is the scale (Rose 1998; Kloppenburg & Tavan 1997):
        components merge when hot and split, one phase transition at a time, along the
        directions of largest spread, as ``beta`` rises; the last stage frees everything.
        The splits are binary: data whose clusters cannot be halved evenly (a 3 x 3 grid)
        can be split wrongly, where restarts (``n_init``) may do better.
        """
        new = self.m_step(resp, x)
        cov, ctype, d = params["covariances"], self.covariance_type, x.shape[1]
        w = params["weights"]
        if ctype == "full":
            v = jnp.sum(w * jnp.trace(cov, axis1=-2, axis2=-1)) / d
            cov = jnp.broadcast_to(v * jnp.eye(d, dtype=x.dtype), cov.shape)
        elif ctype == "tied":
            cov = jnp.trace(cov) / d * jnp.eye(d, dtype=x.dtype)
        elif ctype == "diag":
            cov = jnp.broadcast_to(jnp.sum(w[:, None] * cov) / d, cov.shape)
        else:
            cov = jnp.broadcast_to(jnp.sum(w * cov), cov.shape)
        return {**new, "covariances": cov}

    def component_degenerate(self, params, x):
        # Collapsed: in some direction the variance is reg_covar alone (to rounding).
        cov, ctype = params["covariances"], self.covariance_type
        eps = jnp.finfo(x.dtype).eps
        if ctype in ("full", "tied"):
            lam = jnp.linalg.eigvalsh(cov)
            lo, hi = lam[..., 0], lam[..., -1]
        elif ctype == "diag":
            lo, hi = jnp.min(cov, axis=-1), jnp.max(cov, axis=-1)
        else:
            lo = hi = cov
        collapsed = lo - self.reg_covar <= 100.0 * x.shape[1] * eps * hi
        return super().component_degenerate(params, x) | collapsed


# Scatter matrices from weighted second moments (one matmul over n) where the dtype's eps is
# below this (float64); from centred differences otherwise (float32), see below.
_MOMENTS_MAX_EPS = 1e-10


def _moments(resp, x, diagonal):
    """Counts ``n_j`` (:func:`~mlejax.mixture._base.counts`), means and weighted scatters
    ``S_j = sum_i r_ij (x_i - mu_j)(x_i - mu_j)'`` (``(k, d, d)``, or the diagonal ``(k, d)``)
    from one ``(n, k)' @ (n, 1 + d + d(d+1)/2)`` matmul: the responsibilities against the
    features ``[1, x_i - c, (x_i - c)_a (x_i - c)_b]`` about the data's mean ``c``. With
    ``b_j = sum_i r_ij (x_i - c)``, ``S_j = sum_i r_ij (x_i - c)(x_i - c)' - b_j b_j' / n_j``.
    ``n_j`` is the count floored at 10 eps, never below the true sum of ``r_ij``, so ``S_j``
    stays positive semi-definite (Cauchy-Schwarz) even for a component that has emptied.

    One matmul instead of ``(k, n, d)`` arrays of differences (the M-step of a mixture with
    n = 1e6, k = 5, d = 2: 20 ms against 86 ms), and one instead of three for a batch of
    small mixtures. The subtraction loses about ``eps (|mu_j - c| / sigma_j)^2`` of ``S_j``
    relatively: 1e-8 in float64 for a component ten thousand of its standard deviations
    from the data's mean, which is why it serves float64 only.
    """
    d = x.shape[1]
    c = jnp.mean(x, axis=0)
    xc = x - c
    if diagonal:
        products = xc * xc
    else:
        ia, ib = np.tril_indices(d)
        products = xc[:, ia] * xc[:, ib]
    features = jnp.concatenate([jnp.ones_like(xc[:, :1]), xc, products], axis=1)
    m = jnp.matmul(resp.T, features, precision=HI)          # (k, 1 + d + d(d+1)/2)
    total = m[:, 0]
    nk = total + 10.0 * jnp.finfo(resp.dtype).eps             # as counts
    b = m[:, 1:1 + d]
    means = (b + total[:, None] * c) / nk[:, None]            # sum_i r_ij x_i / n_j
    if diagonal:
        return nk, means, m[:, 1 + d:] - b * b / nk[:, None]
    second = m[:, 1 + d:] - b[:, ia] * b[:, ib] / nk[:, None]
    s = jnp.zeros((resp.shape[1], d, d), x.dtype)
    return nk, means, s.at[:, ia, ib].set(second).at[:, ib, ia].set(second)


def _scatter_centred(resp, x, means, diagonal):
    """The weighted scatter of :func:`_moments` from explicit differences
    ``x_i - mu_j`` (``(k, n, d)``): no cancellation, as float32 needs."""
    diff = x[None, :, :] - means[:, None, :]                            # (k, n, d)
    rdiff = resp.T[:, :, None] * diff
    if diagonal:
        return jnp.einsum("knd,knd->kd", rdiff, diff, precision=HI)
    return jnp.matmul(jnp.swapaxes(rdiff, 1, 2), diff, precision=HI)


def gaussian_logpdf(x: jax.Array, means: jax.Array, covariances: jax.Array,
                    covariance_type: str = "full") -> jax.Array:
    """``(n, k)`` log-densities ``log N(x_i | mu_j, Sigma_j)`` through Cholesky factors.

    ``covariances`` is ``(k, d, d)`` ("full"), ``(d, d)`` ("tied"), ``(k, d)`` ("diag") or
    ``(k,)`` ("spherical"). A covariance that is not positive definite gives NaN (which the
    driver loop reports as ``NONFINITE``), never an exception.
    """
    d = x.shape[1]
    diff = x[None, :, :] - means[:, None, :]                            # (k, n, d)
    if covariance_type in ("full", "tied"):
        chol = jnp.linalg.cholesky(covariances)
        if covariance_type == "tied":
            chol = jnp.broadcast_to(chol, (means.shape[0], d, d))
        maha = _mahalanobis(chol, diff)                                  # (k, n)
        half_logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    elif covariance_type == "diag":
        maha = jnp.sum(diff * diff / covariances[:, None, :], axis=-1)
        half_logdet = 0.5 * jnp.sum(jnp.log(covariances), axis=-1)
    elif covariance_type == "spherical":
        maha = jnp.sum(diff * diff, axis=-1) / covariances[:, None]
        half_logdet = 0.5 * d * jnp.log(covariances)
    else:
        raise ValueError(f"covariance_type={covariance_type!r} is not known; choose one of "
                         f"{_COV_TYPES}.")
    out = -0.5 * (d * math.log(2.0 * math.pi) + maha) - jnp.asarray(half_logdet)[..., None]
    return out.T


_UNROLL_MAX_D = 16


def _mahalanobis(chol: jax.Array, diff: jax.Array) -> jax.Array:
    """``||L_j^-1 (x_i - mu_j)||^2`` for ``chol`` ``(k, d, d)`` and ``diff`` ``(k, n, d)``.

    For small ``d`` the forward substitution is written out over the ``d`` coordinates:
    elementwise work over ``n`` that XLA fuses (a batched triangular solve with ``n``
    right-hand sides is several times slower on CPU). Larger ``d`` uses the solver.
    """
    d = diff.shape[-1]
    if d > _UNROLL_MAX_D:
        z = jax.lax.linalg.triangular_solve(chol, diff, left_side=False, lower=True,
                                            transpose_a=True)
        return jnp.sum(z * z, axis=-1)
    zs = []
    maha = 0.0
    for a in range(d):
        acc = diff[..., a]
        for b in range(a):
            acc = acc - chol[:, a, b][:, None] * zs[b]
        za = acc / chol[:, a, a][:, None]
        zs.append(za)
        maha = maha + za * za
    return maha
