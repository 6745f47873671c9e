"""The result of a mixture fit (:class:`MixtureResult`), its predictions and its
observed-information standard errors."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from mlejax import _validate as V
from mlejax.optima import find as find_optima
from mlejax._problem import Problem, make_problem
from mlejax._programs import program_cache
from mlejax.em import observed_cov, refit_context
from mlejax.kmeans import check_matrix
from mlejax.result import FitResult
from mlejax.status import HasStatus, Status

__all__ = ["MixtureResult", "mixture_problem"]


@dataclasses.dataclass(frozen=True)
class MixtureResult(HasStatus):
    """A fitted mixture (a pytree; a batch has a leading ``K`` axis on every array).

    Attributes:
      params: dict of the estimates: ``"weights"`` ``(k,)`` and the component parameters
        (``"means"`` and ``"covariances"`` for Gaussians, ``"probs"`` for Bernoulli,
        ``"rates"`` for Poisson mixtures).
      loglik: the observed-data log-likelihood ``sum_i log sum_j pi_j f(x_i | theta_j)``.
      status: an ``int32`` :class:`~mlejax.Status` code (``converged`` is ``status == 0``).
      n_steps: EM iterations of the best start.
      trace: log-likelihood after each iteration (index 0: the start), NaN past the end.
      nobs: number of observations.
      degenerate: True when a component emptied (less than one observation's weight) or
        collapsed (a covariance reduced to ``reg_covar`` in some direction).
      restart_loglik, restart_status: the log-likelihood and status of every start
        (trailing axis ``n_init``).
      n_best: how many starts reached the best log-likelihood (to ``sqrt(eps)`` relative).
      model: the mixture specification that was fitted (static).
      df_model: the number of free parameters (static).
      restart_params: every start's estimate (leading axis ``n_init`` after any batch axis),
        for the optima map (:meth:`optima`).
      restart_trace: every start's log-likelihood trace (``(n_init, max_steps + 1)``), for
        watching the optimisation.

    Example:
      >>> x = jax.random.normal(jax.random.key(1), (500, 2)).at[:250].add(4.0)
      >>> res = mj.GaussianMixture(2).fit(x, key=jax.random.key(0), n_init=4)
      >>> res.predict(x[:3]).shape, res.predict_proba(x[:3]).shape, res.restart_loglik.shape
      ((3,), (3, 2), (4,))
      >>> sorted(round(float(w), 2) for w in res.params["weights"])
      [0.5, 0.5]
      >>> t = res.trace[: int(res.n_steps) + 1]    # EM never decreases (beyond rounding)
      >>> bool(jnp.all(jnp.diff(t) >= -1e-12 * jnp.abs(t[1:])))
      True
    """

    params: dict
    loglik: jax.Array
    status: jax.Array
    n_steps: jax.Array
    trace: jax.Array
    nobs: jax.Array
    degenerate: jax.Array
    restart_loglik: jax.Array | None = None
    restart_status: jax.Array | None = None
    n_best: jax.Array | None = None
    model: Any = None
    df_model: int = 0
    restart_params: dict | None = None
    restart_trace: jax.Array | None = None

    @property
    def is_batch(self) -> bool:
        return np.ndim(self.loglik) > 0

    @property
    def aic(self) -> jax.Array:
        """Akaike's criterion ``2 p - 2 loglik`` (``p = df_model``)."""
        return 2.0 * self.df_model - 2.0 * self.loglik

    @property
    def bic(self) -> jax.Array:
        """Schwarz's criterion ``p log(n) - 2 loglik``."""
        return self.df_model * jnp.log(self.nobs.astype(self.loglik.dtype)) - 2.0 * self.loglik

    def _apply(self, fn, x, ndim):
        x = check_matrix(x, "x", ndim + (1 if self.is_batch else 0))
        if self.is_batch:
            return jax.vmap(functools.partial(fn, self.model))(self.params, x)
        return fn(self.model, self.params, x)

    def predict_proba(self, x: jax.typing.ArrayLike) -> jax.Array:
        """Responsibilities ``p(z_i = j | x_i)``: ``(n, k)`` (``(K, n, k)`` for a batch)."""
        return self._apply(_proba, x, self.model.data_ndim)

    def predict(self, x: jax.typing.ArrayLike) -> jax.Array:
        """The most probable component of each observation."""
        return jnp.argmax(self.predict_proba(x), axis=-1)

    def score_samples(self, x: jax.typing.ArrayLike) -> jax.Array:
        """The log-density ``log p(x_i)`` of each observation."""
        return self._apply(_score_samples, x, self.model.data_ndim)

    def score(self, x: jax.typing.ArrayLike) -> jax.Array:
        """The mean log-density per observation (scikit-learn's ``score``)."""
        return jnp.mean(self.score_samples(x), axis=-1)

    def inference(self, x: jax.typing.ArrayLike) -> FitResult:
        """Standard errors from the observed information at the estimate.

        The autodiff Hessian of the observed-data log-likelihood of ``x`` is taken in the
        core's unconstrained coordinates of ``model.constraints()`` (simplex weights,
        positive-definite covariances, ...) and mapped to the natural scale by the delta
        method, as :func:`mlejax.fit` does (:func:`mlejax.em.observed_cov`). Returns a
        :class:`~mlejax.FitResult` (``cov``, ``stderr``, ``summary()``) carrying this fit's
        estimate, log-likelihood and EM status; ``SINGULAR_HESSIAN`` where the information
        is singular (e.g. a collapsed or empty component), with NaN standard errors.
        """
        batch = self.is_batch
        x = check_matrix(x, "x", self.model.data_ndim + (1 if batch else 0))
        problem = mixture_problem(self.model, x.shape[-1], x.dtype)
        cov, pd, grad_norm, stderr = _inference_program(self.model, problem, batch)(
            self.params, x)
        status = jnp.where((~pd) & (self.status == Status.CONVERGED),
                           jnp.int32(Status.SINGULAR_HESSIAN), self.status)
        context = refit_context(self.model.loglik, self.params, x,
                                constraints=self.model.constraints(), batched=batch)
        return FitResult(
            params=self.params, loglik=self.loglik, status=status, n_steps=self.n_steps,
            trace=self.trace, cov=cov, stderr=stderr, grad_norm=grad_norm, nobs=self.nobs,
            restarts=None, n_best=None, param_names=problem.param_names,
            df_model=problem.n_free, method="em", context=context)

    def optima(self, x: jax.typing.ArrayLike, *, tol: float = 0.1, ftol: float | None = None):
        """The distinct optima the ``n_init`` starts reached, on the data ``x`` they were
        fitted to (:func:`mlejax.optima.find`): components are put in a canonical order
        first (``model.canonical()``), so label-switched copies of one optimum count as
        one; the observed information of each start (from ``x``) scales the distances and
        tells a peak from a saddle.
        """
        return find_optima(self, x, tol=tol, ftol=ftol)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        if self.is_batch:
            rate = float(np.mean(np.asarray(self.converged)))
            return f"MixtureResult({name}, batch of {np.size(self.loglik)}, converged={rate:.1%})"
        return (f"MixtureResult({name}, loglik={float(self.loglik):.6g}, "
                f"status={Status(int(self.status)).name}, n_steps={int(self.n_steps)})")


jax.tree_util.register_dataclass(
    MixtureResult,
    data_fields=["params", "loglik", "status", "n_steps", "trace", "nobs", "degenerate",
                 "restart_loglik", "restart_status", "n_best", "restart_params",
                 "restart_trace"],
    meta_fields=["model", "df_model"])


def mixture_problem(model, d: int, dtype) -> Problem:
    """The core's description of a mixture's parameters (shapes, constraints, names)."""
    shapes, cons = model.param_shapes(d), model.constraints()
    example = {name: jnp.zeros(shape, dtype) for name, shape in shapes.items()}
    leaves, treedef = jax.tree_util.tree_flatten(example)
    names = V.leaf_names(example)
    return make_problem(leaves, treedef, [cons[n] for n in names], names, dtype)


@program_cache
def _inference_program(model, problem: Problem, batched: bool):
    def one(params, x):
        def total(p):
            return jnp.sum(model.loglik(p, x))

        cov, pd, grad_norm = observed_cov(total, problem, params, total(params))
        return cov, pd, grad_norm, problem.unravel_natural(jnp.sqrt(jnp.diagonal(cov)))

    return jax.jit(jax.vmap(one) if batched else one)


@functools.partial(jax.jit, static_argnums=0)
def _proba(model, params, x):
    joint = model.joint_loglik(params, x)
    return jnp.exp(joint - logsumexp(joint, axis=-1, keepdims=True))


@functools.partial(jax.jit, static_argnums=0)
def _score_samples(model, params, x):
    return model.loglik(params, x)

