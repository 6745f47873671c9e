"""Finite mixtures fitted by EM: Gaussian (four covariance types), Bernoulli and Poisson.

A mixture of ``k`` components has the joint log-density

    log p(x_i, z_i = j) = log pi_j + log f(x_i | theta_j),

and each model supplies that ``(n, k)`` array and the closed-form M-step; the EM iterations
run on the generic engine (:mod:`mlejax.em`), so the observed-data log-likelihood recorded in
``trace`` never decreases. ``n_init`` starts run as one vmapped program and the best is kept;
``fit_batch`` fits ``K`` datasets (each with its ``n_init`` starts) in one program.

Gaussian components (``GaussianMixture``):

* ``"full"``: one ``(d, d)`` covariance per component; ``"tied"``: one ``(d, d)`` covariance
  shared by all; ``"diag"``: one ``(d,)`` vector of variances per component;
  ``"spherical"``: one variance per component.
* M-step, with ``n_j = sum_i r_ij + 10 eps``: ``pi_j = n_j / sum_l n_l``,
  ``mu_j = sum_i r_ij x_i / n_j``, ``Sigma_j = sum_i r_ij (x_i - mu_j)(x_i - mu_j)^T / n_j
  + reg_covar I`` (the diagonal of it for "diag", its mean for "spherical", pooled over
  components for "tied"). ``reg_covar`` keeps a collapsing component (one point, or points
  on a line) positive definite, as in scikit-learn; such a component is reported in
  ``degenerate`` and warned about.
* Log-densities through the Cholesky factor ``L`` of each covariance:
  ``log N(x | mu, LL^T) = -(d log 2 pi)/2 - sum log L_aa - ||L^-1 (x - mu)||^2 / 2``, the
  triangular system solved with the data as right-hand side (no inverse is formed).

Starts (``init_params``): ``"kmeans"`` (greedy k-means++ seeding then Lloyd's iterations;
responsibilities are the hard assignments), ``"k-means++"`` (the seeding only, each point
assigned to its nearest seed; scikit-learn's option of that name starts from the seeds alone),
``"random"`` (uniform random responsibilities, normalised); the first M-step turns them into
parameters. User-given ``init`` values replace the corresponding parameters of that start.

References:
  McLachlan & Peel (2000), Finite Mixture Models. Bishop (2006), Pattern Recognition and
  Machine Learning, ch. 9. scikit-learn's ``GaussianMixture`` documentation (the
  ``reg_covar`` convention and parameter counts this follows).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import gammaln, logsumexp, xlog1py, xlogy

from mlejax import _blocks, _loop
from mlejax import _validate as V
from mlejax import constraints as C
from mlejax.anneal import as_schedule as _as_schedule
from mlejax.em import (EM, em_iterate, em_tolerance, em_xtol, observed_cov,
                       refit_context)
from mlejax.fit import FitWarning, Problem, _make_problem
from mlejax.kmeans import check_matrix, kmeans_plusplus, lloyd
from mlejax.result import FitResult
from mlejax.status import Status, messages

__all__ = ["BernoulliMixture", "GaussianMixture", "MixtureResult", "PoissonMixture"]

_HI = jax.lax.Precision.HIGHEST
_INITS = ("kmeans", "k-means++", "random")
_COV_TYPES = ("full", "tied", "diag", "spherical")


# --------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MixtureResult:
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
    def converged(self) -> jax.Array:
        """True where EM converged (``status == Status.CONVERGED``)."""
        return self.status == Status.CONVERGED

    @property
    def message(self) -> str | list[str]:
        return messages(self.status)

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
        problem = _problem(self.model, x.shape[-1], x.dtype)
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
        from mlejax import optima
        return optima.find(self, x, tol=tol, ftol=ftol)

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


def _problem(model, d: int, dtype) -> Problem:
    """The core's description of a mixture's parameters (shapes, constraints, names)."""
    shapes, cons = model.param_shapes(d), model.constraints()
    example = {name: jnp.zeros(shape, dtype) for name, shape in shapes.items()}
    leaves, treedef = jax.tree_util.tree_flatten(example)
    names = V.leaf_names(example)
    return _make_problem(leaves, treedef, [cons[n] for n in names], names, dtype)


@functools.lru_cache(maxsize=64)
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


# --------------------------------------------------------------------------------------
# The engine shared by every mixture
# --------------------------------------------------------------------------------------
class _Mixture:
    """Abstract base of the mixtures: ``fit``/``fit_batch`` on the EM engine.

    A concrete mixture is a frozen dataclass with ``n_components``, ``init_params``,
    ``max_steps``, ``ftol``, ``kmeans_steps``, ``xtol``, and supplies ``joint_loglik``,
    ``m_step``, ``param_shapes``, ``constraints``, ``n_parameters``, ``component_degenerate`` and
    ``check_values``.
    """

    data_ndim = 2   # one observation is a row of x

    # --- the model: supplied by each mixture ----------------------------------------------
    def joint_loglik(self, params, x):            # (n, k) log pi_j + log f(x_i | theta_j)
        raise NotImplementedError

    def m_step(self, resp, x):                    # closed-form maximiser of Q
        raise NotImplementedError

    def anneal_m_step(self, params, resp, x):     # the M-step of annealing stages (beta < 1)
        del params
        return self.m_step(resp, x)

    def param_shapes(self, d: int) -> dict:
        raise NotImplementedError

    def constraints(self) -> dict:
        raise NotImplementedError

    def n_parameters(self, d: int) -> int:
        raise NotImplementedError

    def component_degenerate(self, params, x):    # (k,) bool
        nk = params["weights"] * x.shape[0]
        return nk < 1.0

    def check_values(self, x: np.ndarray, name: str) -> None:
        del x, name

    # --- shared ------------------------------------------------------------------------
    def loglik(self, params, x):
        """Observed-data log-likelihood per observation, ``log sum_j exp(joint_ij)``."""
        return logsumexp(self.joint_loglik(params, x), axis=-1)

    def canonical(self):
        """``params -> params`` with the components in a canonical order (sorted on their
        location parameter, lexicographically), so that label-switched copies of one
        estimate compare equal (the optima map, :meth:`MixtureResult.optima`)."""
        from mlejax.optima import sort_components

        k = self.n_components   # component leaves: leading axis k (a tied covariance has not)
        names = tuple(n for n, sh in self.param_shapes(1).items() if len(sh) and sh[0] == k)
        return sort_components(*names, by=self._sort_by)

    def _validate_settings(self):
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_components must be a positive integer; got {k!r}.")
        if self.init_params not in _INITS:
            raise ValueError(f"init_params={self.init_params!r} is not known; choose one of "
                             f"{_INITS}.")
        if isinstance(self.max_steps, bool) or int(self.max_steps) < 0:
            raise ValueError(f"max_steps must be a non-negative integer; got {self.max_steps!r}.")
        if isinstance(self.kmeans_steps, bool) or int(self.kmeans_steps) < 0:
            raise ValueError(f"kmeans_steps must be a non-negative integer; got "
                             f"{self.kmeans_steps!r}.")
        if self.ftol is not None and not float(self.ftol) >= 0.0:
            raise ValueError(f"ftol must be >= 0 (or None for the default); got {self.ftol!r}.")
        if self.xtol is not None and not float(self.xtol) >= 0.0:
            raise ValueError(f"xtol must be >= 0 (or None for the default); got {self.xtol!r}.")

    def _init_resp(self, key, x):
        k = self.n_components
        if self.init_params == "random":
            r = jax.random.uniform(key, (x.shape[0], k), x.dtype)
            return r / jnp.sum(r, axis=1, keepdims=True)
        centers = kmeans_plusplus(key, x, k)
        if self.init_params == "kmeans":
            labels = lloyd(x, centers, max_steps=int(self.kmeans_steps)).labels
        else:
            labels = lloyd(x, centers, max_steps=0).labels
        return jax.nn.one_hot(labels, k, dtype=x.dtype)

    def _start(self, key, x, user):
        names = tuple(self.param_shapes(x.shape[1]))
        if all(name in user for name in names):
            return {name: user[name] for name in names}
        params = self.m_step(self._init_resp(key, x), x)
        return {**params, **user}

    def _fit_start(self, x, key, user, anneal=None) -> MixtureResult:
        """EM from one start (pure); annealed first when ``anneal`` is a schedule."""
        params0 = self._start(key, x, user)
        u0, unravel = ravel_pytree(params0)
        out = em_iterate(lambda u: self.joint_loglik(unravel(u), x),
                         lambda u, r: ravel_pytree(self.m_step(r, x))[0], u0,
                         max_steps=int(self.max_steps), ftol=self._ftol(x),
                         xtol=self._xtol(x), trace_len=int(self.max_steps) + 1, anneal=anneal,
                         key=jax.random.fold_in(key, 1),
                         anneal_m_step_fn=lambda u, r: ravel_pytree(
                             self.anneal_m_step(unravel(u), r, x))[0])
        return self._result(out, x, unravel)

    def _ftol(self, x) -> float:
        return em_tolerance(x.dtype) if self.ftol is None else float(self.ftol)

    def _xtol(self, x) -> float:
        return em_xtol(x.dtype) if self.xtol is None else float(self.xtol)

    def _unravel(self, x):
        """The flat parameter vector's layout (that of ``_start``'s dict, keys sorted)."""
        shapes = self.param_shapes(x.shape[-1])
        return ravel_pytree({name: jnp.zeros(shape, x.dtype)
                             for name, shape in shapes.items()})[1]

    def _em(self, x, unravel) -> EM:
        return EM(lambda u: self.joint_loglik(unravel(u), x),
                  lambda u, r: ravel_pytree(self.m_step(r, x))[0],
                  ftol=self._ftol(x), xtol=self._xtol(x))

    def _result(self, out: _loop.LoopResult, x, unravel) -> MixtureResult:
        params = unravel(out.solver_state.u)
        return MixtureResult(
            params=params, loglik=out.solver_state.f, status=out.status, n_steps=out.n_steps,
            trace=out.trace, nobs=jnp.int32(x.shape[0]),
            degenerate=jnp.any(self.component_degenerate(params, x)), model=self,
            df_model=self.n_parameters(x.shape[1]))

    # The same EM in three pieces (plain EM only, no annealing), so a batch can stop every
    # fit after a few iterations and resume the ones still running in fewer blocks
    # (_segmented): identical results to the uninterrupted _fit_start.
    def _loop_start(self, x, key, user) -> _loop.LoopState:
        params0 = self._start(key, x, user)
        u0, unravel = ravel_pytree(params0)
        return _loop.start(self._em(x, unravel), u0, gtol=0.0,
                           trace_len=int(self.max_steps) + 1)

    def _loop_advance(self, state: _loop.LoopState, x, until) -> _loop.LoopState:
        return _loop.advance(self._em(x, self._unravel(x)), state,
                             max_steps=int(self.max_steps), gtol=0.0, ftol=None,
                             until=until)

    def _loop_result(self, state: _loop.LoopState, x) -> MixtureResult:
        unravel = self._unravel(x)
        return self._result(_loop.finish(self._em(x, unravel), state), x, unravel)

    def _fit_one(self, n_init, x, key, user, anneal=None) -> MixtureResult:
        """``n_init`` starts as one vmapped program; the best is kept (converged ones first)."""
        if n_init == 1:   # no vmap, no key split: a smaller program to compile
            return _single(self._fit_start(x, key, user, anneal))
        return _best(jax.vmap(lambda kk: self._fit_start(x, kk, user, anneal))(
            jax.random.split(key, n_init)))

    # --- host side -----------------------------------------------------------------------
    def _check_x(self, x, name, ndim):
        x = check_matrix(x, name, ndim)
        if isinstance(x, jax.core.Tracer):
            return x
        n = x.shape[-2]
        if self.n_components > n:
            raise ValueError(f"n_components={self.n_components} is larger than the number of "
                             f"observations n={n}; use at most {n} components or more data.")
        self.check_values(np.asarray(x), name)
        return x

    def _check_init(self, init, d, dtype, lead=()):
        if init is None:
            return {}
        if not isinstance(init, dict):
            raise ValueError(f"init must be a dict of starting values with keys among "
                             f"{sorted(self.param_shapes(d))}; got {type(init).__name__}.")
        shapes = self.param_shapes(d)
        extra = sorted(set(init) - set(shapes))
        if extra:
            raise ValueError(f"init has unknown key(s) {extra}; the parameters of "
                             f"{type(self).__name__} are {sorted(shapes)}.")
        cons = self.constraints()
        out = {}
        for name, value in init.items():
            a = jnp.asarray(value, dtype)
            want = tuple(lead) + shapes[name]
            if tuple(a.shape) != want:
                raise ValueError(f"init[{name!r}] must have shape {want}; got {tuple(a.shape)}.")
            if not isinstance(a, jax.core.Tracer):
                arr = np.asarray(a)
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"init[{name!r}] is not finite; give finite values.")
                why = cons[name].check(arr)
                if why is not None:
                    raise ValueError(f"init[{name!r}] {why}; give a starting value inside it.")
            out[name] = a
        return out

    def _check_run(self, n_init, key):
        if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
            raise ValueError(f"n_init must be a positive integer; got {n_init!r}.")
        if n_init > 1 and key is None:
            raise ValueError("n_init > 1 draws different starts: pass key=jax.random.key(0).")
        return jax.random.key(0) if key is None else key

    def fit(self, x: jax.typing.ArrayLike, *, key: jax.Array | None = None, n_init: int = 1,
            init: dict | None = None, anneal: Any = None, warn: bool = True) -> MixtureResult:
        """Fits the mixture to ``x`` (``(n, d)``) by EM from ``n_init`` starts.

        Args:
          x: the data, one observation per row.
          key: a ``jax.random.key`` for the starts (default ``jax.random.key(0)``; required
            when ``n_init > 1``).
          n_init: starts run as one vmapped program; the best log-likelihood is kept
            (converged starts first).
          init: optional dict of starting values (natural scale) replacing those of each
            start, e.g. ``{"means": m}`` or all of the parameters.
          anneal: a deterministic-annealing schedule (:mod:`mlejax.anneal`, e.g.
            ``mj.anneal.geometric(start=0.1, steps=20)``): from each start EM runs with
            tempered responsibilities ``r_ij ~ (pi_j f(x_i | theta_j))^beta`` at each
            ``beta < 1`` in turn, then plain EM; the answer is the MLE found along the path.
          warn: warn when EM did not converge or a component collapsed or emptied.

        Returns:
          A :class:`MixtureResult`.
        """
        x = self._check_x(x, "x", 2)
        key = self._check_run(n_init, key)
        user = self._check_init(init, x.shape[1], x.dtype)
        res = _program(self, int(n_init), False, False, _as_schedule(anneal))(x, key, user)
        if warn:
            _warn(res)
        return res

    def fit_batch(self, xs: jax.typing.ArrayLike, *, key: jax.Array | None = None,
                  n_init: int = 1, init: dict | None = None, init_batched: bool = False,
                  anneal: Any = None, warn: bool = True) -> MixtureResult:
        """Fits ``K`` independent mixtures, ``xs`` of shape ``(K, n, d)``, in one program.

        Each dataset gets its own ``n_init`` starts (``K x n_init`` EM runs, vmapped), its
        own stopping and status. ``init`` is shared, or per dataset with
        ``init_batched=True`` (leading axis ``K``). ``anneal`` is as in :meth:`fit`. Every
        array of the result gains a leading ``K`` axis.
        """
        xs = self._check_x(xs, "xs", 3)
        key = self._check_run(n_init, key)
        lead = (xs.shape[0],) if init_batched else ()
        user = self._check_init(init, xs.shape[2], xs.dtype, lead)
        keys = jax.random.split(key, xs.shape[0])
        k = xs.shape[0]
        block = _block_size(xs, self.n_components, int(n_init))
        n = _blocks.shares(k, block, _blocks.platform_of(xs), V.is_concrete((xs, key, user)))
        program = functools.partial(_program, self, int(n_init), True,
                                    bool(init_batched and user), _as_schedule(anneal))
        if n == 1:
            res = program(block)(xs, keys, user)
        else:   # shares of the batch at the same time, one per core
            share = -(-k // n)
            res = _blocks.concurrently(program(_block_size(xs, self.n_components, int(n_init),
                                                           share), share),
                                       (xs, keys, user), k, n)
        if warn:
            _warn(res)
        return res


def _single(one: MixtureResult) -> MixtureResult:
    """A one-start fit with its restart fields (leading axis 1)."""
    return dataclasses.replace(
        one, restart_loglik=one.loglik[None], restart_status=one.status[None],
        n_best=jnp.int32(1), restart_trace=one.trace[None],
        restart_params=jax.tree_util.tree_map(lambda a: a[None], one.params))


def _best(outs: MixtureResult) -> MixtureResult:
    """The best of ``n_init`` starts (leading axis), converged ones first, with every
    start's log-likelihood, status, estimate and trace."""
    f = jnp.where(jnp.isfinite(outs.loglik), outs.loglik, -jnp.inf)
    conv = outs.status == Status.CONVERGED
    best = jnp.where(jnp.any(conv), jnp.argmax(jnp.where(conv, f, -jnp.inf)), jnp.argmax(f))
    tol = jnp.sqrt(jnp.finfo(f.dtype).eps) * jnp.maximum(jnp.abs(f[best]), 1.0)
    chosen = jax.tree_util.tree_map(lambda a: a[best], outs)
    return dataclasses.replace(chosen, restart_loglik=outs.loglik,
                               restart_status=outs.status,
                               n_best=jnp.sum(f >= f[best] - tol).astype(jnp.int32),
                               restart_params=outs.params, restart_trace=outs.trace)


# On CPU a batch of mixtures is fitted in blocks (mlejax._blocks) whose E-step arrays (n x k
# per start) take about this many bytes together. K = 1,000 mixtures of n = 500, k = 3
# (float64): 16-19 us per mixture and iteration vmapped as one block, 10 us in blocks of 167
# to 250 (measured on the 2-core development VM).
_BLOCK_BYTES = 2 << 20


def _block_size(xs, k: int, n_init: int, count: int | None = None) -> int | None:
    """The number of datasets per block of a batched fit (of ``count`` of its datasets,
    default all), or None for one block."""
    return _blocks.block_size(xs.shape[0] if count is None else count,
                              xs.shape[1] * k * n_init * xs.dtype.itemsize,
                              _BLOCK_BYTES, _blocks.platform_of(xs))


# In blocks, every fit stops after this many EM iterations; the ones still running are
# gathered, in as few blocks as they fill, and resumed from their exact loop state. The
# batch then costs what its typical fit costs, not max_steps in every block: K = 1,000
# mixtures (n = 500, k = 3; mean 65 iterations, a third at the cap of 100) 0.68-0.72 s in
# blocks alone, 0.56-0.60 s re-packed every 10 (every 5: the same).
_SEGMENT = 10


def _segmented(model: _Mixture, n_init: int, block: int, init_batched: bool, xs, keys, user):
    """:func:`_program`'s batch in blocks, re-packed every ``_SEGMENT`` iterations (plain
    EM). Results are identical to running each fit uninterrupted."""
    k_total = xs.shape[0]
    n_blocks = -(-k_total // block)
    max_steps = int(model.max_steps)

    def start(x, key, u):
        if n_init == 1:
            return jax.tree_util.tree_map(lambda a: a[None], model._loop_start(x, key, u))
        return jax.vmap(lambda kk: model._loop_start(x, kk, u))(jax.random.split(key, n_init))

    def advance(st, x, until):
        return jax.vmap(lambda one: model._loop_advance(one, x, until))(st)

    def result(st, x):
        outs = jax.vmap(lambda one: model._loop_result(one, x))(st)
        if n_init == 1:
            return _single(jax.tree_util.tree_map(lambda a: a[0], outs))
        return _best(outs)

    def running(st):
        return jnp.any(st.status == Status.RUNNING, axis=1)

    def phase(carry):
        st, until = carry
        until = until + _SEGMENT
        run = running(st)
        # The fits still running first (stable: in dataset order), padded to whole blocks
        # with a repeat of the first (advancing a copy again changes nothing).
        order = jnp.argsort(jnp.where(run, 0, 1), stable=True)
        order = jnp.concatenate([order, jnp.broadcast_to(order[0],
                                                         (n_blocks * block - k_total,))])

        def one_block(i, st):
            idx = jax.lax.dynamic_slice(order, (i * block,), (block,))
            sub = jax.vmap(advance, in_axes=(0, 0, None))(
                jax.tree_util.tree_map(lambda a: a[idx], st), xs[idx], until)
            return jax.tree_util.tree_map(lambda a, b: a.at[idx].set(b), st, sub)

        n_run = jnp.sum(run.astype(jnp.int32))
        return jax.lax.fori_loop(0, (n_run + block - 1) // block, one_block, st), until

    def more(carry):
        st, until = carry
        return jnp.any(running(st)) & (until < max_steps)

    st = _blocks.in_blocks(jax.vmap(start, in_axes=(0, 0, 0 if init_batched else None)), block,
                    (xs, keys, user), (True, True, init_batched))
    st, _ = jax.lax.while_loop(more, phase, (st, jnp.int32(0)))
    return _blocks.in_blocks(jax.vmap(result), block, (st, xs), (True, True))


@functools.lru_cache(maxsize=128)
def _program(model: _Mixture, n_init: int, batched: bool, init_batched: bool, anneal=None,
             block: int | None = None, share: int | None = None):
    """The compiled program for one static configuration (cached: no recompilation). With
    ``share`` (a batch in blocks) it takes a first argument ``first`` and fits the ``share``
    datasets from it on (:func:`mlejax._blocks.concurrently`)."""
    one = functools.partial(model._fit_one, n_init, anneal=anneal)
    if not batched:
        return jax.jit(one)
    many = jax.vmap(one, in_axes=(0, 0, 0 if init_batched else None))
    if block is None:
        return jax.jit(many)
    batched_args = (True, True, init_batched)
    if anneal is None:
        whole = functools.partial(_segmented, model, n_init, block, init_batched)
    else:
        def whole(xs, keys, user):
            return _blocks.in_blocks(many, block, (xs, keys, user), batched_args)
    if share is None:
        return jax.jit(whole)
    return jax.jit(lambda first, *args: whole(*_blocks.take(args, batched_args, first, share)))


def _warn(res: MixtureResult) -> None:
    if isinstance(res.status, jax.core.Tracer):
        return
    codes = np.asarray(res.status).ravel()
    n = codes.size
    where = "" if n == 1 else f" in {{}} of {n} fits"
    failed = int(np.sum(codes != Status.CONVERGED))
    if failed:
        msg = res.message if n == 1 else "see result.status and result.message"
        warnings.warn("EM did not converge" + where.format(failed) + f": {msg}", FitWarning,
                      stacklevel=3)
    degen = int(np.sum(np.asarray(res.degenerate)))
    if degen:
        warnings.warn("a mixture component emptied (less than one observation's weight) or "
                      "collapsed (its covariance reduced to reg_covar)" + where.format(degen)
                      + ": it was regularised, not dropped; fewer components, a larger "
                      "reg_covar or other starts (n_init) may fit better.", FitWarning,
                      stacklevel=3)


def _counts(resp):
    # scikit-learn's convention: 10 eps added so an empty component divides by no zero.
    return jnp.sum(resp, axis=0) + 10.0 * jnp.finfo(resp.dtype).eps


# --------------------------------------------------------------------------------------
# Gaussian mixtures
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GaussianMixture(_Mixture):
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
            nk = _counts(resp)
            means = jnp.matmul(resp.T, x, precision=_HI) / nk[:, None]   # (k, d)
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
    """Counts ``n_j`` (:func:`_counts`), means and weighted scatters
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
    m = jnp.matmul(resp.T, features, precision=_HI)          # (k, 1 + d + d(d+1)/2)
    total = m[:, 0]
    nk = total + 10.0 * jnp.finfo(resp.dtype).eps             # as _counts
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
        return jnp.einsum("knd,knd->kd", rdiff, diff, precision=_HI)
    return jnp.matmul(jnp.swapaxes(rdiff, 1, 2), diff, precision=_HI)


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


# --------------------------------------------------------------------------------------
# Bernoulli and Poisson mixtures
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BernoulliMixture(_Mixture):
    """A mixture of products of independent Bernoulli variables (binary data), by EM.

    ``log f(x_i | p_j) = sum_a x_ia log p_ja + (1 - x_ia) log(1 - p_ja)``; the M-step is
    ``p_j = sum_i r_ij x_i / n_j``. A probability may reach exactly 0 or 1 (the MLE when a
    component's observations all agree on a feature); ``0 log 0`` is taken as 0.

    Args: as :class:`GaussianMixture`, without the covariance settings.

    Example:
      >>> p = jnp.where(jnp.arange(200)[:, None] < 100, 0.9, 0.1)   # two groups, 6 features
      >>> x = (jax.random.uniform(jax.random.key(0), (200, 6)) < p).astype(float)
      >>> res = mj.BernoulliMixture(2).fit(x, key=jax.random.key(1))
      >>> res.params["probs"].shape, sorted(round(float(w), 1) for w in res.params["weights"])
      ((2, 6), [0.5, 0.5])
    """

    n_components: int
    init_params: str = "kmeans"
    max_steps: int = 3000
    ftol: float | None = None
    kmeans_steps: int = 100
    xtol: float | None = None
    _sort_by = "probs"

    def __post_init__(self):
        self._validate_settings()

    def param_shapes(self, d):
        return {"probs": (self.n_components, d), "weights": (self.n_components,)}

    def constraints(self):
        return {"probs": C.unit_interval, "weights": C.simplex}

    def n_parameters(self, d):
        return (self.n_components - 1) + self.n_components * d

    def joint_loglik(self, params, x):
        p = params["probs"]
        # xlogy: 0 log 0 = 0, so a probability at exactly 0 or 1 gives -inf, never NaN.
        lf = jnp.sum(xlogy(x[:, None, :], p[None]) + xlog1py(1.0 - x[:, None, :], -p[None]),
                     axis=-1)
        return jnp.log(params["weights"]) + lf

    def m_step(self, resp, x):
        nk = _counts(resp)
        probs = jnp.matmul(resp.T, x, precision=_HI) / nk[:, None]
        return {"probs": jnp.clip(probs, 0.0, 1.0), "weights": nk / jnp.sum(nk)}

    def check_values(self, x, name):
        if not np.all((x == 0) | (x == 1)):
            raise ValueError(f"{name} must be binary (0 or 1) for BernoulliMixture; found "
                             f"other values such as {x[(x != 0) & (x != 1)][:3]}.")


@dataclasses.dataclass(frozen=True)
class PoissonMixture(_Mixture):
    """A mixture of products of independent Poisson variables (counts), by EM.

    ``log f(x_i | lambda_j) = sum_a x_ia log lambda_ja - lambda_ja - log x_ia!``; the M-step
    is ``lambda_j = sum_i r_ij x_i / n_j``.

    Args: as :class:`GaussianMixture`, without the covariance settings.

    Example:
      >>> k1, k2 = jax.random.split(jax.random.key(2))
      >>> x = jnp.concatenate([jax.random.poisson(k1, 2.0, (100, 1)),
      ...                      jax.random.poisson(k2, 12.0, (100, 1))]).astype(float)
      >>> res = mj.PoissonMixture(2).fit(x, key=jax.random.key(0))
      >>> sorted(round(float(r)) for r in res.params["rates"][:, 0])   # rates 2 and 12
      [2, 12]
    """

    n_components: int
    init_params: str = "kmeans"
    max_steps: int = 3000
    ftol: float | None = None
    kmeans_steps: int = 100
    xtol: float | None = None
    _sort_by = "rates"

    def __post_init__(self):
        self._validate_settings()

    def param_shapes(self, d):
        return {"rates": (self.n_components, d), "weights": (self.n_components,)}

    def constraints(self):
        return {"rates": C.positive, "weights": C.simplex}

    def n_parameters(self, d):
        return (self.n_components - 1) + self.n_components * d

    def joint_loglik(self, params, x):
        lam = params["rates"]
        lf = jnp.sum(xlogy(x[:, None, :], lam[None]) - lam[None], axis=-1)
        lf = lf - jnp.sum(gammaln(x + 1.0), axis=-1)[:, None]
        return jnp.log(params["weights"]) + lf

    def m_step(self, resp, x):
        nk = _counts(resp)
        return {"rates": jnp.matmul(resp.T, x, precision=_HI) / nk[:, None],
                "weights": nk / jnp.sum(nk)}

    def check_values(self, x, name):
        if not np.all((x >= 0) & (x == np.round(x))):
            raise ValueError(f"{name} must hold non-negative integer counts for "
                             "PoissonMixture.")
