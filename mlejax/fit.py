"""``fit`` and ``fit_batch``: from a user's log-likelihood to a :class:`FitResult`.

What happens to the data, top to bottom:

1. ``_prepare`` checks everything it can before tracing (``_validate``): the method and its
   options, constraints against ``init``, initial values inside their constraints, NaN in the
   data, what ``loglik_fn`` returns (``jax.eval_shape``, no compilation), and for a single fit
   that the log-likelihood is finite at the start.
2. ``Problem`` holds the static description: the tree structure, one constraint per leaf, and
   the maps between the flat unconstrained vector ``u`` the solvers see and the natural
   parameters the user sees.
3. ``_kernel`` builds (once per static configuration; cached, so a second call with
   same-shaped data does not recompile) a jitted program: the solver on the driver loop, then
   the observed information at the optimum mapped to the natural scale; restarts and batches
   are ``vmap`` over it.
4. Back on the host, a singular Hessian or a failed fit raises a warning; nothing is silent.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mlejax import _blocks, _loop
from mlejax import _validate as V
from mlejax import anneal as _anneal
from mlejax import penalties as _penalties
from mlejax._attained import not_attained
from mlejax._loop import LoopResult, default_tolerances, iterate
from mlejax._numerics import safe_inverse_pd, scaled_grad_norm
from mlejax._obs_chunks import ChunkedSum
from mlejax.constraints import Constraint
from mlejax.result import FitContext, FitResult
from mlejax.solvers import MinibatchGradient, Newton, bfgs, gradient, lbfgs
from mlejax.solvers.proximal import ProximalNewton
from mlejax.status import Status

__all__ = ["fit", "fit_batch", "FitWarning"]

_DEFAULT_MAX_STEPS = {"newton": 500, "bfgs": 500, "lbfgs": 1000, "gradient": 2000}


class FitWarning(UserWarning):
    """A fit that did not converge, or whose standard errors are NaN.

    Example:
      >>> import warnings
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7, 1.4, 0.9, 1.6])
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     res = mj.fit(loglik, {"mu": 0.0, "sigma": 1.0}, x,
      ...                  constraints={"sigma": mj.positive}, max_steps=2)
      >>> caught[0].category is mj.FitWarning, mj.Status(int(res.status)).name
      (True, 'MAX_STEPS')
    """


@dataclasses.dataclass(frozen=True)
class Problem:
    """The static description of a parameter pytree and its constraints (hashable).

    The flat vectors (the solvers' ``u``, the natural ``cov`` and ``param_names``) list the
    leaves in the order the user wrote them: ``order[i]`` is the JAX tree index of the
    ``i``-th leaf so listed (JAX itself sorts dict keys), and ``constraints``, ``u_shapes``
    and ``nat_shapes`` follow that order too. Leaves handed in or out as a list
    (``to_u``'s argument, ``tree_constraints``) are in JAX's tree order.
    """

    treedef: Any
    constraints: tuple[Constraint, ...]
    u_shapes: tuple[tuple[int, ...], ...]
    nat_shapes: tuple[tuple[int, ...], ...]
    dtype: Any
    param_names: tuple[str, ...]
    order: tuple[int, ...]

    @property
    def n_free(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.u_shapes))

    @property
    def tree_constraints(self) -> tuple[Constraint, ...]:
        """The constraints in JAX's tree order (beside ``jax.tree_util.tree_leaves``)."""
        out: list = [None] * len(self.order)
        for c, j in zip(self.constraints, self.order):
            out[j] = c
        return tuple(out)

    def in_order(self, leaves) -> list:
        """Leaves in JAX's tree order, listed in the user's order."""
        return [leaves[j] for j in self.order]

    def unflatten(self, ordered_leaves) -> Any:
        """The pytree of leaves listed in the user's order (the inverse of ``in_order``)."""
        out: list = [None] * len(self.order)
        for x, j in zip(ordered_leaves, self.order):
            out[j] = x
        return jax.tree_util.tree_unflatten(self.treedef, out)

    def flat_natural(self, params) -> jax.Array:
        """A parameter pytree as one flat vector in ``param_names`` order."""
        leaves = self.in_order(jax.tree_util.tree_leaves(params))
        parts = [jnp.ravel(x).astype(self.dtype) for x in leaves]
        return jnp.concatenate(parts) if parts else jnp.zeros(0, self.dtype)

    def to_u(self, leaves) -> jax.Array:
        """Natural leaves (a list in tree order) to the flat unconstrained vector."""
        parts = [jnp.ravel(c.inverse(x)) for c, x in zip(self.constraints, self.in_order(leaves))]
        return jnp.concatenate(parts).astype(self.dtype) if parts else jnp.zeros(0, self.dtype)

    def to_natural(self, u: jax.Array) -> Any:
        leaves, i = [], 0
        for c, shape in zip(self.constraints, self.u_shapes):
            size = int(np.prod(shape))
            leaves.append(c.forward(u[i:i + size].reshape(shape)))
            i += size
        return self.unflatten(leaves)

    def natural_flat(self, u: jax.Array) -> jax.Array:
        return self.flat_natural(self.to_natural(u))

    def unravel_natural(self, flat: jax.Array) -> Any:
        leaves, i = [], 0
        for shape in self.nat_shapes:
            size = int(np.prod(shape))
            leaves.append(flat[i:i + size].reshape(shape))
            i += size
        return self.unflatten(leaves)


def _flat_names(names: list[str], shapes) -> tuple[str, ...]:
    out = []
    for name, shape in zip(names, shapes):
        if len(shape) == 0:
            out.append(name)
        else:
            for idx in np.ndindex(*shape):
                out.append(f"{name}[{','.join(str(i) for i in idx)}]")
    return tuple(out)


def _make_problem(example_leaves, treedef, constraints, names, dtype,
                  order: tuple[int, ...] | None = None) -> Problem:
    """``example_leaves``, ``constraints`` and ``names`` in tree order; ``order`` the user's
    order of the leaves (``_validate.written_order``; default the tree order)."""
    order = tuple(range(len(example_leaves))) if order is None else tuple(order)
    leaves = [example_leaves[j] for j in order]
    cons = tuple(constraints[j] for j in order)
    u_shapes = tuple(tuple(jax.eval_shape(c.inverse, jax.ShapeDtypeStruct(x.shape, dtype)).shape)
                     for c, x in zip(cons, leaves))
    nat_shapes = tuple(tuple(x.shape) for x in leaves)
    return Problem(treedef, cons, u_shapes, nat_shapes, jnp.dtype(dtype),
                   _flat_names([names[j] for j in order], nat_shapes), order)


@dataclasses.dataclass(frozen=True)
class _Config:
    """Every static setting of a fit: the key of the compiled-program cache."""

    loglik_fn: Callable
    problem: Problem
    per_obs: bool
    has_weights: bool
    method: str
    optimizer: Any
    batch_size: int | None
    max_steps: int
    gtol: float
    ftol: float
    trace_len: int
    loose: float        # gradient tolerance at the precision floor (see _loop)
    restarts: int | None
    init_fn: Callable | None
    restart_scale: float
    batched: bool
    init_batched: bool
    penalty: Any = None      # mj.penalties.Penalty added to the objective (None: plain MLE)
    anneal: Any = None       # mj.anneal.Schedule of stages run before the final fit
    canonical: Callable | None = None   # params -> canonical params, for the optima map
    obs_chunk: int | None = None        # sum the objective over chunks of observations
    obs_devices: tuple | None = None    # ... with the rows sharded over these devices
    checked_start: bool = False         # init checked on the solver's first evaluation
    init_in_trace: bool = False         # ... read from the fit's trace[0] after the program


def _loglik_sum(cfg: _Config, u, data, weights) -> jax.Array:
    """The log-likelihood of ``data`` at ``u``: the weighted sum of the per-observation
    values (or the total ``loglik_fn`` returns)."""
    ll = cfg.loglik_fn(cfg.problem.to_natural(u), data)
    if not cfg.per_obs:
        return ll.astype(cfg.problem.dtype)
    if weights is not None:
        ll = jnp.where(weights > 0, weights * ll, 0.0)
    return jnp.sum(ll).astype(cfg.problem.dtype)


def _penalty_at(cfg: _Config, u) -> jax.Array:
    """The smooth part of ``cfg.penalty`` at ``u`` (an exact L1 term is the proximal
    solver's own)."""
    return jnp.asarray(cfg.penalty.smooth(cfg.problem.to_natural(u)), cfg.problem.dtype)


def _loglik_total(cfg: _Config, data, weights) -> Callable[[jax.Array], jax.Array]:
    """The plain (weighted, summed) log-likelihood as a function of ``u``."""
    return lambda u: _loglik_sum(cfg, u, data, weights)


def _objective(cfg: _Config, data, weights) -> Callable[[jax.Array], jax.Array]:
    """What the solvers maximise: the log-likelihood plus the smooth part of the penalty
    (an exact L1 term is the proximal solver's own, :mod:`mlejax.solvers.proximal`)."""
    loglik = _loglik_total(cfg, data, weights)
    if cfg.penalty is None:
        return loglik
    return lambda u: loglik(u) + _penalty_at(cfg, u)


def _chunked(cfg: _Config, data, weights, penalised: bool) -> ChunkedSum:
    """The log-likelihood (plus the penalty's smooth part when ``penalised``) as a sum over
    chunks of ``cfg.obs_chunk`` observations (:mod:`mlejax._obs_chunks`)."""
    extra = None
    if penalised and cfg.penalty is not None:
        extra = functools.partial(_penalty_at, cfg)
    n = int(jax.tree_util.tree_leaves(data)[0].shape[0])
    mesh = None
    if cfg.obs_devices is not None:
        mesh = jax.sharding.Mesh(np.array(cfg.obs_devices), ("obs",))
    size = cfg.obs_chunk or -(-n // len(cfg.obs_devices))   # devices alone: one chunk each
    return ChunkedSum(functools.partial(_loglik_sum, cfg), data, weights, size, n, extra, mesh)


def _minibatch_objective(cfg: _Config, data, weights, n: int):
    b = cfg.batch_size

    def fn(u, key):
        idx = jax.random.randint(key, (b,), 0, n)
        sub = jax.tree_util.tree_map(lambda x: x[idx], data)
        total = _loglik_sum(cfg, u, sub, None if weights is None else weights[idx]) * (n / b)
        if cfg.penalty is not None:
            total = total + _penalty_at(cfg, u)
        return total

    return fn


class _Setup(NamedTuple):
    solver: Any
    fn: Callable[[jax.Array], jax.Array]
    nobs: jax.Array
    loglik: Callable[[jax.Array], jax.Array] | None = None   # plain, when fn is penalised


def _setup(cfg: _Config, data, weights, key, fn=None) -> _Setup:
    """The solver for one dataset, its objective, and the number of observations.

    ``fn`` replaces the objective (an annealing stage's tempered one).
    """
    problem = cfg.problem
    if cfg.obs_chunk is None and cfg.obs_devices is None:
        loglik = _loglik_total(cfg, data, weights)
        if fn is None:
            fn = _objective(cfg, data, weights) if cfg.penalty is not None else loglik
    else:
        loglik = _chunked(cfg, data, weights, penalised=False)
        if fn is None:
            fn = _chunked(cfg, data, weights, penalised=True) if cfg.penalty is not None else loglik
    chunked = isinstance(fn, ChunkedSum)
    l1 = _penalties.l1_weights(cfg.penalty, problem)
    n_obs = None
    if cfg.per_obs:
        u_any = jnp.zeros(problem.n_free, problem.dtype)
        n_obs = jax.eval_shape(cfg.loglik_fn, problem.to_natural(u_any), data).shape[0]
    if cfg.has_weights:
        scale = jnp.maximum(jnp.sum(weights), 1.0)
        nobs = jnp.sum(weights > 0).astype(jnp.int32)
    else:
        scale = float(n_obs) if n_obs else 1.0
        nobs = jnp.int32(n_obs if n_obs is not None else -1)

    if l1 is not None:   # exact zeros: proximal Newton (method="newton", checked in _prepare)
        solver = ProximalNewton(fn, l1)
    elif cfg.method == "newton":
        solver = Newton(fn, fn.value_grad_hessian if chunked else None)
    elif cfg.method == "bfgs":
        solver = bfgs(fn, scale, value_and_grad=fn.value_and_grad if chunked else None)
    elif cfg.method == "lbfgs":
        solver = lbfgs(fn, scale, value_and_grad=fn.value_and_grad if chunked else None)
    elif cfg.batch_size is None:
        solver = gradient(fn, scale, cfg.optimizer)
    else:
        solver = MinibatchGradient(fn, _minibatch_objective(cfg, data, weights, n_obs), key,
                                   scale, cfg.optimizer, gtol=cfg.gtol)
    return _Setup(solver, fn, nobs, loglik)


def _result(cfg: _Config, setup: _Setup, out: LoopResult) -> FitResult:
    """The observed information at the optimum, on the natural scale, and the result."""
    problem = cfg.problem
    state = out.solver_state
    u_hat = state.u
    if cfg.method == "newton":
        hess = state.hess
    elif isinstance(setup.fn, ChunkedSum):
        hess = setup.fn.value_grad_hessian(u_hat)[2]
    else:
        hess = jax.hessian(setup.fn)(u_hat)
    # Newton's hess is a BFGS model where the autodiff Hessian had non-finite entries: no
    # standard errors from it (its ``exact`` flag); other solvers' Hessian is evaluated here.
    exact = getattr(state, "exact", None)
    finite_h = jnp.all(jnp.isfinite(hess)) if exact is None else exact
    cov_u, pd = safe_inverse_pd(-hess)
    cov_u = jnp.where(finite_h, cov_u, jnp.nan)
    jac = jax.jacfwd(problem.natural_flat)(u_hat)
    cov = jac @ cov_u @ jac.T
    # A converged fit whose Hessian is not finite found the maximum (the gradient test) but
    # has no standard errors: NONFINITE_HESSIAN, its own diagnosis, never SINGULAR_HESSIAN.
    converged = out.status == Status.CONVERGED
    status = jnp.where(converged & ~finite_h, jnp.int32(Status.NONFINITE_HESSIAN),
                       jnp.where(pd | ~converged, out.status,
                                 jnp.int32(Status.SINGULAR_HESSIAN)))
    if cfg.penalty is None:   # a stop on the way to a supremum at infinity (_attained.py)
        escaping = not_attained(setup.fn, u_hat, hess, state.g,
                                batched_fn=not isinstance(setup.fn, ChunkedSum))
        status = jnp.where(escaping & ((status == Status.CONVERGED)
                                       | (status == Status.SINGULAR_HESSIAN)),
                           jnp.int32(Status.NOT_ATTAINED), status)
    stderr = problem.unravel_natural(jnp.sqrt(jnp.diagonal(cov)))
    # A penalised fit maximised loglik + penalty (state.f): report both, apart.
    penalised = cfg.penalty is not None and setup.loglik is not None
    return FitResult(
        params=problem.to_natural(u_hat),
        loglik=setup.loglik(u_hat) if penalised else state.f, status=status,
        n_steps=out.n_steps, trace=out.trace, cov=cov, stderr=stderr,
        grad_norm=scaled_grad_norm(u_hat, state.f, state.g), nobs=setup.nobs, restarts=None,
        n_best=None, objective=state.f if penalised else None,
        param_names=problem.param_names, df_model=problem.n_free, method=cfg.method,
        penalty=repr(cfg.penalty) if penalised else None, leaf_order=problem.order)


def _anneal_path(cfg: _Config, u0, data, weights, key) -> jax.Array:
    """The annealing stages before the final fit (:mod:`mlejax.anneal`): where they end.

    Stage ``t`` maximises ``beta_t E_z[loglik(u + sigma_t z)] + penalty(u)`` from where
    stage ``t - 1`` stopped, with the fit's own solver and tolerances.
    """
    sched, problem = cfg.anneal, cfg.problem
    loglik = _loglik_total(cfg, data, weights)
    z = None
    if sched.smoothing is not None:
        z = _anneal.normal_draws(jax.random.fold_in(key, 1), sched.draws, problem.n_free,
                                 problem.dtype)

    def stage(u, beta, sigma, stage_key):
        del stage_key   # the smoothing draws are common to every stage
        tempered = (_anneal.smoothed(loglik, beta, sigma, z) if z is not None
                    else (lambda v: beta * loglik(v)))

        def fn(v):
            if cfg.penalty is None:
                return tempered(v)
            return tempered(v) + _penalty_at(cfg, v)

        setup = _setup(cfg, data, weights, key, fn=fn)
        out = iterate(setup.solver, u, max_steps=cfg.max_steps, gtol=cfg.gtol, ftol=cfg.ftol,
                      trace_len=1, loose=cfg.loose)
        return out.solver_state.u

    return _anneal.run_stages(stage, u0, sched)


def _solve_one(cfg: _Config, u0, data, weights, key) -> FitResult:
    """One fit from one start: the solver on the driver loop, then the observed information."""
    if cfg.anneal is not None:
        u0 = _anneal_path(cfg, u0, data, weights, key)
    setup = _setup(cfg, data, weights, key)
    out = iterate(setup.solver, u0, max_steps=cfg.max_steps, gtol=cfg.gtol, ftol=cfg.ftol,
                  trace_len=cfg.trace_len, loose=cfg.loose)
    return _result(cfg, setup, out)


def _loop_start(cfg: _Config, u0, data, weights, key, until):
    """One fit's loop from ``u0`` up to step ``until`` (resumable: :func:`_loop_advance`)."""
    setup = _setup(cfg, data, weights, key)
    state = _loop.start(setup.solver, u0, gtol=cfg.gtol, trace_len=cfg.trace_len)
    return _loop.advance(setup.solver, state, max_steps=cfg.max_steps, gtol=cfg.gtol,
                         ftol=cfg.ftol, until=until, loose=cfg.loose)


def _loop_init(cfg: _Config, u0, data, weights, key):
    """One fit's loop state before its first step (resumable: :func:`_loop_advance`)."""
    setup = _setup(cfg, data, weights, key)
    return _loop.start(setup.solver, u0, gtol=cfg.gtol, trace_len=cfg.trace_len)


def _loop_advance(cfg: _Config, state, data, weights, key, until):
    """A stopped loop resumed up to step ``until``: the same steps as one uninterrupted run."""
    setup = _setup(cfg, data, weights, key)
    return _loop.advance(setup.solver, state, max_steps=cfg.max_steps, gtol=cfg.gtol,
                         ftol=cfg.ftol, until=until, loose=cfg.loose)


def _loop_result(cfg: _Config, state, data, weights, key):
    """A finished loop's :class:`FitResult`."""
    setup = _setup(cfg, data, weights, key)
    return _result(cfg, setup, _loop.finish(setup.solver, state))


def _best_of(all_starts: FitResult) -> FitResult:
    """The best start (converged ones first), with every start kept in ``restarts``."""
    f = all_starts.loglik if all_starts.objective is None else all_starts.objective
    f = jnp.where(jnp.isfinite(f), f, -jnp.inf)
    conv = all_starts.status == Status.CONVERGED
    best = jnp.where(jnp.any(conv), jnp.argmax(jnp.where(conv, f, -jnp.inf)), jnp.argmax(f))
    f_best = f[best]
    eps = jnp.finfo(f.dtype).eps
    tol = 10.0 * jnp.sqrt(eps) * jnp.maximum(jnp.abs(f_best), 1.0)
    n_best = jnp.sum(f >= f_best - tol).astype(jnp.int32)
    chosen = jax.tree_util.tree_map(lambda x: x[best], all_starts)
    return dataclasses.replace(chosen, restarts=all_starts, n_best=n_best)


def _starts(cfg: _Config, start, key):
    """The R starting points (unconstrained, ``(R, p)``) and solver keys of one dataset."""
    problem, r = cfg.problem, cfg.restarts
    k_start, k_solve = jax.random.split(key)
    if cfg.init_fn is not None:
        def draw(k):
            return problem.to_u(jax.tree_util.tree_leaves(cfg.init_fn(k)))
        u0s = jax.vmap(draw)(jax.random.split(k_start, r))
    else:
        noise = jax.random.normal(k_start, (r, start.shape[0]), problem.dtype)
        u0s = start[None, :] + cfg.restart_scale * noise
        u0s = u0s.at[0].set(start)  # the user's own start is always one of them
    return u0s, jax.random.split(k_solve, r)


def batch_axes(cfg: _Config):
    """``vmap`` axes of (start, data, weights, key) for a batch of datasets."""
    return (0 if cfg.init_batched else None, 0, 0 if cfg.has_weights else None, 0)


# On CPU the datasets of a batch are fitted in blocks (mlejax._blocks) holding about this many
# bytes of data (times the restarts): 10,000 logistic regressions (n = 200, d = 6, 11 KB
# each) 1.30 s as one block against 0.79 s in blocks of 20; blocks of 10 to 50 do as well.
_BLOCK_BYTES = 128 << 10
# One fit's restarts likewise, each start counting all of the data: 256 restarts of a
# two-normal mixture on 2,000 points (16 KB) with newton 9.1 s as one block against 1.05 s
# in blocks of two, bfgs 1.69 s against 0.59 s one start after another (every start stops
# on its own: under one vmap all 256 ran as long as the slowest).
_RESTART_BLOCK_BYTES = 16 << 10


def _batch_block(cfg: _Config | None, data, weights, k: int | None = None,
                 restarts: int | None = None) -> int | None:
    """Datasets per block of ``fit_batch``'s program (for ``k`` of the datasets, default
    all; ``restarts`` per dataset, default ``cfg``'s), or None for one block."""
    k = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0]) if k is None else k
    restarts = cfg.restarts if cfg is not None else restarts
    return _blocks.block_size(k, _blocks.nbytes((data, weights)) * (restarts or 1),
                              _BLOCK_BYTES, _blocks.platform_of(data))


def _restart_block(cfg: _Config, data, weights, r: int | None = None) -> int | None:
    """Starts per block of ``fit(restarts=R)``'s program (for ``r`` of the starts, default
    all), or None for one block: every start works over all of the data."""
    if cfg.restarts is None:
        return None
    return _blocks.block_size(cfg.restarts if r is None else r,
                              _blocks.nbytes((data, weights), per_item=False),
                              _RESTART_BLOCK_BYTES, _blocks.platform_of(data))


# A single fit on little data runs in microseconds to milliseconds: what its user waits for
# is XLA's compilation. On CPU such a program compiles with XLA's classic fusion emitters,
# 0.4-0.7 s faster (a two-parameter normal fit in a fresh process: first call 1.4-1.8 s ->
# 1.0-1.2 s, A/B three times each). Their kernels are slower on large arrays full of
# transcendentals (256 BFGS restarts of a normal mixture: 250 -> 290-450 ms a call), so
# larger fits, restarts and batches keep XLA's default.
_QUICK_COMPILE_BYTES = 1 << 20
_CLASSIC_EMITTERS = (("xla_cpu_use_fusion_emitters", False),)
# Where the work of one evaluation is small too (bytes of data times free parameters: the
# Hessian costs about one pass over the data per parameter), LLVM's optimisations are
# skipped as well (backend optimisation level 0): the main program of nine custom models
# of the zoo benchmark (n = 1,000, 4 to 40 parameters) compiled in 0.25-0.53 s instead of
# 0.51-2.6 s, and their fits ran in 1-4 ms instead of 0.4-1.2 ms (IRT 2PL, 40 parameters
# on 40 kB: 40 ms instead of 16-29 ms), fresh processes, A/B alternating
# (benchmarks/RESULTS.md, issue 20). Past this work a long fit could lose more in its run
# than the compile saves.
_QUICK_COMPILE_WORK = 8 << 20
_QUICK_COMPILE = (("xla_backend_optimization_level", 0),) + _CLASSIC_EMITTERS


# Set when this XLA does not know the options (older jaxlib: an error at compilation).
_QUICK_COMPILE_UNKNOWN = []


def _compile_options(cfg: _Config, data, weights) -> tuple | None:
    """The XLA options (a hashable tuple of pairs) for ``cfg``'s program on this data."""
    if cfg.batched or cfg.restarts is not None:
        return None
    return quick_compile_options(data, weights, cfg.problem.n_free)


def quick_compile_options(data, weights, n_free: int) -> tuple | None:
    """The quick-compile options for one unbatched fit of ``n_free`` parameters on this
    data (also :func:`mlejax.em`'s), or None for XLA's default."""
    if (_QUICK_COMPILE_UNKNOWN or _blocks.platform_of(data) != "cpu"
            or not V.is_concrete((data, weights))
            or _blocks.nbytes((data, weights), per_item=False) > _QUICK_COMPILE_BYTES):
        return None
    work = _blocks.nbytes((data, weights), per_item=False) * max(n_free, 1)
    return _QUICK_COMPILE if work <= _QUICK_COMPILE_WORK else _CLASSIC_EMITTERS


def _kernel(cfg: _Config, block: int | None = None, share: int | None = None,
            options: tuple | None = None):
    """The compiled program for one static configuration (cached: no recompilation); a
    batch (or one fit's restarts) runs in blocks of ``block`` when given. With ``share``
    (a batch, in blocks) the program takes a first argument ``first`` and fits the
    ``share`` datasets from it on (:func:`mlejax._blocks.concurrently`). ``options``: XLA
    compile options (:func:`_compile_options`)."""
    return _kernel_cached(cfg, block, share, options)


@functools.lru_cache(maxsize=256)
def _kernel_cached(cfg: _Config, block: int | None, share: int | None,
                   options: tuple | None = None):

    def one_dataset(start, data, weights, key):
        if cfg.restarts is None:
            return _solve_one(cfg, start, data, weights, key)
        u0s, keys = _starts(cfg, start, key)
        each = jax.vmap(lambda u0, k: _solve_one(cfg, u0, data, weights, k))
        if cfg.batched or block is None:
            all_starts = each(u0s, keys)
        else:   # one fit's restarts in blocks of starts
            all_starts = _blocks.in_blocks(each, block, (u0s, keys), (True, True))
        return _best_of(all_starts)

    if not cfg.batched:
        if options is not None:
            try:
                return jax.jit(one_dataset, compiler_options=dict(options))
            except TypeError:   # a JAX without per-program compiler options
                pass
        return jax.jit(one_dataset)
    axes = batch_axes(cfg)
    many = jax.vmap(one_dataset, in_axes=axes)
    if block is None:
        return jax.jit(many)
    batched = tuple(a == 0 for a in axes)
    if cfg.restarts is None and cfg.anneal is None:
        def segmented(first, *args):
            k = jax.tree_util.tree_leaves(args[1])[0].shape[0]
            return _segmented(cfg, block, k if share is None else share, first, *args)
        if share is None:
            return jax.jit(lambda *args: segmented(0, *args))
        return jax.jit(segmented)
    if share is None:
        return jax.jit(lambda *args: _blocks.in_blocks(many, block, args, batched))
    return jax.jit(lambda first, *args: _blocks.in_blocks(many, block, args, batched,
                                                          first, share))


# In blocks, every fit of a batch stops after this many steps; the fits still running are
# gathered, in as few blocks as they fill, and resumed from their exact loop state (the same
# steps as uninterrupted). A block then runs as long as its fits need, not as long as the
# slowest fit that happened to land in it.
_SEGMENT = 4


def _segmented(cfg: _Config, block: int, count: int, first, start, data, weights, keys):
    """``count`` datasets of a batch from ``first`` on, fitted in blocks of ``block``,
    re-packed every ``_SEGMENT`` steps (in the program: a stable sort of the fits still
    running, then a loop over the blocks they fill). Pure: runs under ``jit``."""
    axes = batch_axes(cfg)
    args = (start, data, weights, keys)
    k = jax.tree_util.tree_leaves(data)[0].shape[0]
    n_blocks = -(-count // block)
    seg = min(_SEGMENT, cfg.max_steps)
    within = jnp.arange(block)

    def at(loc):   # the arguments of the datasets at share positions ``loc``
        return _blocks.gather(args, tuple(a == 0 for a in axes), jnp.minimum(first + loc, k - 1))

    def take(tree, loc):
        return jax.tree_util.tree_map(lambda x: x[loc], tree)

    def by_block(fn):
        out = jax.lax.map(lambda i: fn(jnp.minimum(i * block + within, count - 1)),
                          jnp.arange(n_blocks))
        return jax.tree_util.tree_map(
            lambda a: a.reshape((n_blocks * block,) + a.shape[2:])[:count], out)

    # The loop's step is compiled once (in ``resume``): the first segment is a phase too.
    begin = jax.vmap(lambda s, d, w, key: _loop_init(cfg, s, d, w, key), in_axes=axes)
    resume = jax.vmap(lambda st, d, w, key, until: _loop_advance(cfg, st, d, w, key, until),
                      in_axes=(0,) + axes[1:] + (None,))
    finish = jax.vmap(lambda st, d, w, key: _loop_result(cfg, st, d, w, key),
                      in_axes=(0,) + axes[1:])

    def running(st):
        return (st.status == Status.RUNNING) & (st.step < cfg.max_steps)

    def phase(carry):
        st, until = carry
        until = until + seg
        run = running(st)
        # The fits still running first (stable: in order), padded to whole blocks with a
        # repeat of the first (advancing a copy again changes nothing).
        order = jnp.argsort(jnp.where(run, 0, 1), stable=True)
        order = jnp.concatenate([order, jnp.broadcast_to(order[0], (n_blocks * block - count,))])

        def one_block(i, st):
            loc = jax.lax.dynamic_slice(order, (i * block,), (block,))
            sub = resume(take(st, loc), *at(loc)[1:], until)
            return jax.tree_util.tree_map(lambda a, b: a.at[loc].set(b), st, sub)

        n_run = jnp.sum(run.astype(jnp.int32))
        return jax.lax.fori_loop(0, (n_run + block - 1) // block, one_block, st), until

    st = by_block(lambda loc: begin(*at(loc)))
    st, _ = jax.lax.while_loop(lambda c: jnp.any(running(c[0])), phase, (st, jnp.int32(0)))
    return by_block(lambda loc: finish(take(st, loc), *at(loc)[1:]))


@functools.lru_cache(maxsize=256)
def _restart_kernels(cfg: _Config, block: int, share: int):
    """``fit(restarts=R)`` as three programs, for running shares of the starts at the same
    time (:func:`mlejax._blocks.concurrently`): the starts, ``share`` of them fitted in
    blocks from ``first`` on, and the best of all."""
    def starts(start, key):
        return _starts(cfg, start, key)

    def fit_share(first, u0s, keys, data, weights):
        each = jax.vmap(lambda u0, k: _solve_one(cfg, u0, data, weights, k))
        return _blocks.in_blocks(each, block, (u0s, keys), (True, True), first, share)

    return jax.jit(starts), jax.jit(fit_share), jax.jit(_best_of)


def _fit_restarts_concurrently(cfg: _Config, start, data, weights, key) -> FitResult:
    """``fit(restarts=R)`` on CPU with its starts in shares run at the same time (one per
    core), or as one program where that would not pay."""
    r = cfg.restarts
    block = _restart_block(cfg, data, weights)
    n = _blocks.shares(r, block, _blocks.platform_of(data),
                       V.is_concrete((start, data, weights, key)))
    if n == 1:
        options = _compile_options(cfg, data, weights)
        try:
            return _kernel(cfg, block, options=options)(start, data, weights, key)
        except Exception as err:   # noqa: BLE001 -- an XLA without these options
            if options is None or "compile option" not in str(err):
                raise
            _QUICK_COMPILE_UNKNOWN.append(options)
            return _kernel(cfg, block)(start, data, weights, key)
    share = -(-r // n)
    starts, fit_share, best = _restart_kernels(cfg, _restart_block(cfg, data, weights, share),
                                               share)
    u0s, keys = starts(start, key)
    all_starts = _blocks.concurrently(fit_share, (u0s, keys, data, weights), r, n)
    return best(all_starts)


def _fit_batch_concurrently(cfg: _Config, start, data, weights, keys) -> FitResult:
    """``fit_batch``'s program on CPU with the datasets in shares run at the same time (one
    per core), or as one program where that would not pay."""
    k = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0])
    block = _batch_block(cfg, data, weights)
    n = _blocks.shares(k, block, _blocks.platform_of(data),
                       V.is_concrete((start, data, weights, keys)))
    if n == 1:
        return _kernel(cfg, block)(start, data, weights, keys)
    share = -(-k // n)
    return _blocks.concurrently(_kernel(cfg, _batch_block(cfg, data, weights, share), share),
                                (start, data, weights, keys), k, n)


def _loose(method: str, gtol: float) -> float:
    """The gradient tolerance that still counts as converged at the precision floor.

    First-order ascent cannot do better than ``sqrt(gtol)``; a line-search method whose
    log-likelihood stopped changing may still be far from the optimum in a parameter whose
    effect on ``f`` is below rounding (float32), so it gets no slack; Newton's own test
    certifies the floor, and ``10 gtol`` covers a gradient made of rounding.
    """
    if method == "gradient":
        return gtol ** 0.5
    if method in ("bfgs", "lbfgs"):
        return gtol
    return 10.0 * gtol


def _prepare(loglik_fn, init, data, *, constraints, weights, method, optimizer, batch_size,
             max_steps, gtol, ftol, restarts, key, restart_scale, trace_len, batched,
             init_batched, check_finite=True, first_index=0, penalty=None, anneal=None,
             canonical=None, obs_chunk=None, obs_devices=None, solver_checks_init=False):
    """All host-side checks; returns the static config and the arrays to feed the kernel.

    ``solver_checks_init``: the caller runs a large fit through :func:`_fit_checked_start`,
    which checks init on the solver's first evaluation (``cfg.checked_start``), so the pass
    of its own is skipped here."""
    if not callable(loglik_fn):
        raise ValueError("loglik_fn must be a function loglik_fn(params, data).")
    V.check_method(method, optimizer=optimizer, batch_size=batch_size, restarts=restarts,
                   key=key)
    init_fn = None
    if callable(init):
        if restarts is None:
            raise ValueError("init is a function of a PRNG key: pass restarts=R and key= to "
                             "draw R starting values from it (or pass a pytree of values).")
        init_fn = init
        init = init_fn(jax.random.key(0))
    k_batch = None
    if batched:
        k_batch = V.batch_size_of(data, weights)
        if init_batched:
            if V.batch_size_of(init, None, "init") != k_batch:
                raise ValueError(f"init_batched=True: init's leading size must equal the "
                                 f"number of datasets {k_batch}.")

    names, leaves, dtype, treedef, cons = V.check_params(init, constraints)
    if not batched:
        # A Python number as data (one observation, or a statistic that a total
        # log-likelihood reads) becomes the weakly typed array jit would make of it.
        data = jax.tree_util.tree_map(
            lambda x: jnp.asarray(x) if isinstance(x, (bool, int, float, complex)) else x,
            data)
    if check_finite:
        V.check_data_finite(data, batched=batched)
    if weights is not None:
        weights = jnp.asarray(weights, dtype)
        V.check_weights(weights, batched=batched)   # every dataset's, naming the bad ones

    example = [x[0] for x in leaves] if init_batched else leaves
    problem = _make_problem(example, treedef, cons, names, dtype,
                            V.written_order(init))
    # One dataset's shapes are all the checks below need (eval_shape): no slicing program
    # to compile (0.1 s of a first fit_batch call).
    one_data = (jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], jnp.result_type(x)), data)
        if batched else data)
    one_w = None if weights is None else (weights[0] if batched else weights)
    params0 = jax.tree_util.tree_unflatten(treedef, example)
    per_obs = V.check_loglik_output(loglik_fn, params0, one_data, one_w)
    if batch_size is not None:
        _check_obs_axis("batch_size= subsamples", loglik_fn, params0, one_data, per_obs)
    if obs_chunk is not None:
        if isinstance(obs_chunk, bool) or not isinstance(obs_chunk, (int, np.integer)) \
                or obs_chunk < 1:
            raise ValueError(f"obs_chunk (observations per chunk) must be a positive integer; "
                             f"got {obs_chunk!r}.")
        if batch_size is not None:
            raise ValueError("obs_chunk= sums the full data in chunks; minibatches "
                             "(batch_size=) are already small: give one or the other.")
    if obs_devices is not None:
        obs_devices = _check_devices(obs_devices, restarts=restarts, batch_size=batch_size,
                                     anneal=anneal)
    if obs_chunk is not None or obs_devices is not None:
        _check_obs_axis("obs_chunk= sums the log-likelihood over chunks of"
                        if obs_chunk is not None else "devices= shards the",
                        loglik_fn, params0, one_data, per_obs)

    checked_start = (solver_checks_init and not batched and init_fn is None
                     and _start_checked_by_solver(restarts, batch_size, anneal, data, weights))
    # One plain fit from one start reads the check from its own program's first evaluation
    # (``trace[0]``, :func:`_check_init_in_trace`) instead of compiling a program of its own
    # for it (0.08-0.15 s of a first call of a small custom model: benchmarks zoo).
    init_in_trace = (solver_checks_init and not batched and init_fn is None
                     and not checked_start and restarts is None and batch_size is None
                     and anneal is None and penalty is None
                     and (trace_len is None or int(trace_len) >= 1))
    if not batched and init_fn is None and not checked_start and not init_in_trace \
            and V.is_concrete((leaves, data, weights)):
        _check_finite_at_init(_total_at(loglik_fn, params0, data, weights))
    penalty, anneal = _check_options(penalty, anneal, canonical, method=method,
                                     batch_size=batch_size, params0=params0, problem=problem)

    if obs_devices is not None:
        data, weights = _shard_rows(data, weights, obs_devices, dtype)

    eps_g, eps_f = default_tolerances(dtype)
    if method == "newton":
        # A Newton step near the optimum costs little and converges quadratically: ask for
        # eps^(3/4), which the rounding floor test in the loop relaxes where unreachable.
        eps_g = float(jnp.finfo(dtype).eps) ** 0.75
    if method == "gradient":
        # First-order ascent with a fixed learning rate cannot reach eps^(2/3); sqrt(eps)
        # on the scaled gradient is what it attains on well-conditioned problems.
        # The same for the relative change of f per step.
        eps_g = eps_f = float(jnp.finfo(dtype).eps) ** 0.5
    steps = int(max_steps if max_steps is not None else _DEFAULT_MAX_STEPS[method])
    cfg = _Config(
        loglik_fn=loglik_fn, problem=problem, per_obs=per_obs, has_weights=weights is not None,
        method=method, optimizer=optimizer, batch_size=None if batch_size is None
        else int(batch_size), max_steps=steps, gtol=float(gtol if gtol is not None else eps_g),
        ftol=float(ftol if ftol is not None else eps_f),
        loose=_loose(method, float(gtol if gtol is not None else eps_g)),
        # A batch carries K traces through every step of the loop: keep them short by default.
        trace_len=int(trace_len if trace_len is not None
                      else (min(steps + 1, 101) if batched else steps + 1)),
        restarts=None if restarts is None else int(restarts), init_fn=init_fn,
        restart_scale=float(restart_scale), batched=batched, init_batched=init_batched,
        penalty=penalty, anneal=anneal, canonical=canonical,
        obs_chunk=None if obs_chunk is None else int(obs_chunk), obs_devices=obs_devices,
        checked_start=checked_start, init_in_trace=init_in_trace)

    start = _to_u(problem, init_batched, leaves)
    if key is None and not batched and restarts is None and batch_size is None \
            and anneal is None:
        key = _unread_key()   # nothing is drawn: no threefry program to compile (0.03 s)
    if key is None:
        key = jax.random.key(0)
    if batched:
        if cfg.restarts is None and cfg.batch_size is None and cfg.anneal is None:
            # No draws (no restarts, minibatches or annealing noise): the keys are never
            # read, so skip deriving them (compiling threefry: 0.15 s of a first call).
            key = _unread_keys(key, k_batch)
        else:
            key = dataset_keys(key, first_index + np.arange(k_batch))
    return cfg, start, data, weights, key


def _unread_key() -> jax.Array:
    """A key of JAX's default kind for a fit that draws nothing (made without compiling)."""
    shape = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    return jax.random.wrap_key_data(np.zeros(shape.shape, shape.dtype))


def _check_init_in_trace(cfg: _Config, res: FitResult) -> None:
    """The finiteness check of init for a fit whose program did it (``cfg.init_in_trace``):
    the loop records the log-likelihood at init as ``trace[0]`` (a non-finite start stops
    the loop at once, status NONFINITE)."""
    if cfg.init_in_trace and V.is_concrete(res.trace):
        _check_finite_at_init(np.asarray(res.trace)[0])


def _check_finite_at_init(total) -> None:
    total = np.asarray(total)
    if not np.isfinite(total):
        raise ValueError(f"the log-likelihood is not finite at init (got {float(total)}); "
                         "choose starting values where every observation has positive "
                         "density, or check the data.")


# One fit on more data than this has its solver's first evaluation run as a program of its
# own (:func:`_fit_checked_start`).
_CHECKED_START_BYTES = 1 << 20


def _start_checked_by_solver(restarts, batch_size, anneal, data, weights) -> bool:
    """Whether the finiteness check of init reads the solver's own first evaluation
    (:func:`_fit_checked_start`) rather than a pass of its own over the data: one fit from
    one start, no minibatches (whose first value is an estimate) or annealing (which moves
    the start), on concrete data of more than ``_CHECKED_START_BYTES``."""
    return (restarts is None and batch_size is None and anneal is None
            and V.is_concrete((data, weights))
            and _blocks.nbytes((data, weights), per_item=False) > _CHECKED_START_BYTES)


@functools.lru_cache(maxsize=64)
def _checked_start_kernels(cfg: _Config):
    """One fit as two programs: the loop's state at init (the solver's first evaluation),
    and the loop from there with the result; together the steps of one uninterrupted
    :func:`_solve_one`."""
    def rest(state, data, weights, key):
        setup = _setup(cfg, data, weights, key)
        state = _loop.advance(setup.solver, state, max_steps=cfg.max_steps, gtol=cfg.gtol,
                              ftol=cfg.ftol, loose=cfg.loose)
        return _result(cfg, setup, _loop.finish(setup.solver, state))

    return jax.jit(functools.partial(_loop_init, cfg)), jax.jit(rest)


def _fit_checked_start(cfg: _Config, start, data, weights, key) -> FitResult:
    """A large fit whose init is checked on the solver's first evaluation.

    The log-likelihood must be finite at init (a clear error otherwise, before the fit's
    loop is compiled or run). On large data that check was a pass of its own over every
    observation, in a program of its own: one logistic regression with n = 1e6, d = 20
    rows sharded over two host devices, 12 ms of a fit whose six Newton evaluations take
    32 ms each. Here the first of them is that program: its value is read on the host, and
    the loop goes on from its state (the same steps as in one program).
    """
    data, weights = jax.device_put((data, weights))   # once, not once per program
    init, rest = _checked_start_kernels(cfg)
    state = init(start, data, weights, key)
    _check_finite_at_init(state.solver_state.f)
    return rest(state, data, weights, key)


def _check_devices(devices, *, restarts, batch_size, anneal) -> tuple | None:
    """``fit(devices=...)``: a tuple of two or more devices to shard the rows over (None for
    one device: nothing to shard)."""
    devs = tuple(devices) if isinstance(devices, (list, tuple)) else None
    if not devs or not all(isinstance(d, jax.Device) for d in devs):
        raise ValueError(f"devices= must be a list of JAX devices (e.g. jax.devices()) to "
                         f"shard the observations over; got {devices!r}.")
    if restarts is not None or batch_size is not None or anneal is not None:
        raise ValueError("devices= shards one fit's observations over devices; it does not "
                         "combine with restarts=, batch_size= or anneal= (for many datasets, "
                         "fit_batch(..., devices=) shards the batch instead).")
    return devs if len(devs) > 1 else None


def _shard_rows(data, weights, devices: tuple, dtype):
    """The data (and weights) with their rows sharded over ``devices``: padded to a multiple
    of the device count with copies of the last row at weight 0 (weights of 1 elsewhere if
    none were given)."""
    n = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0])
    pad = -n % len(devices)
    if pad:
        if weights is None:
            weights = jnp.ones(n, dtype)
        weights = jnp.concatenate([jnp.asarray(weights, dtype), jnp.zeros(pad, dtype)])
        data = jax.tree_util.tree_map(
            lambda x: jnp.concatenate([jnp.asarray(x),
                                       jnp.repeat(jnp.asarray(x)[-1:], pad, axis=0)]), data)
    rows = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("obs",)),
                                      jax.sharding.PartitionSpec("obs"))
    return jax.device_put((data, weights), rows)


def _check_obs_axis(what: str, loglik_fn, params0, one_data, per_obs: bool) -> None:
    """``what`` observations along axis 0 of every data leaf: there must be one row per
    value ``loglik_fn`` returns."""
    option = what.split("=")[0]
    if not per_obs:
        raise ValueError(f"{option}= needs loglik_fn to return per-observation values (a 1-D "
                         "vector, one per observation), not their sum.")
    n = jax.eval_shape(loglik_fn, params0, one_data).shape[0]
    leaves = jax.tree_util.tree_flatten_with_path(one_data)[0]
    if not leaves:
        raise ValueError(f"{what} observations along axis 0 of the data leaves, but data has "
                         "none: pass the observations as data= (not inside loglik_fn).")
    for path, x in leaves:
        if np.ndim(x) == 0 or np.shape(x)[0] != n:
            raise ValueError(f"{what} observations along axis 0 of every data leaf, but "
                             f"data{jax.tree_util.keystr(path)} has shape {np.shape(x)} and "
                             f"loglik_fn returns {n} values.")


# The checks before the fit run their JAX work as one compiled call each, not op by op: every
# eagerly executed operation compiles a program of its own, which made up a fifth of the
# first fit's latency.
@functools.partial(jax.jit, static_argnums=0)
def _total_at(loglik_fn, params, data, weights):
    """The weighted total log-likelihood at ``params`` (the finiteness check of init)."""
    ll = loglik_fn(params, data)
    return jnp.sum(ll if weights is None else jnp.where(weights > 0, weights * ll, 0.0))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _to_u(problem: Problem, batched: bool, leaves):
    """Natural leaves to unconstrained vectors (one per dataset when ``batched``)."""
    return jax.vmap(problem.to_u)(leaves) if batched else problem.to_u(leaves)


def _check_options(penalty, anneal, canonical, *, method, batch_size, params0, problem):
    """Pre-trace checks of ``penalty=``, ``anneal=`` and ``canonical=``."""
    penalty = _penalties.as_penalty(penalty)
    anneal = _anneal.as_schedule(anneal)
    if penalty is not None:
        _penalties.check(penalty, params0)
        if _penalties.l1_weights(penalty, problem) is not None and method != "newton":
            raise ValueError(f"{penalty!r} has an exact L1 term, fitted with exact zeros by "
                             f"proximal Newton (method='newton'); got method={method!r}. Use "
                             "method='newton', or a smoothed L1 (l1(lam, smooth=s)).")
    if anneal is not None:
        if batch_size is not None:
            raise ValueError("anneal= runs each stage to convergence on the full data; it "
                             "does not combine with minibatches (batch_size=).")
        if anneal.smoothing is None and penalty is None:
            raise ValueError("anneal= without smoothing= only scales the log-likelihood by "
                             "beta, which does not move its maximum: give the schedule a "
                             "smoothing scale (mj.anneal.geometric(..., smoothing=1.0)) or "
                             "fit with a penalty= (a tempered path from the penalty).")
    if canonical is not None:
        if not callable(canonical):
            raise ValueError("canonical= must be a function params -> params in a canonical "
                             "form (e.g. mj.optima.sort_components('means')); got "
                             f"{canonical!r}.")
        try:
            out = jax.eval_shape(canonical, params0)
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise ValueError(f"canonical(params) failed on init: {err!r}.") from None
        want = jax.eval_shape(lambda p: p, params0)
        if jax.tree_util.tree_structure(out) != jax.tree_util.tree_structure(want) or any(
                a.shape != b.shape for a, b in zip(jax.tree_util.tree_leaves(out),
                                                   jax.tree_util.tree_leaves(want))):
            raise ValueError("canonical(params) must return params of the structure and "
                             "shapes of init (the same point, relabelled).")
    return penalty, anneal


def _unread_keys(key: jax.Array, k: int) -> jax.Array:
    """``k`` placeholder keys of ``key``'s kind (all zero) for fits that draw nothing."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
        return jax.random.wrap_key_data(jnp.zeros((k,) + data.shape, data.dtype),
                                        impl=jax.random.key_impl(key))
    return jnp.zeros((k,) + key.shape, key.dtype)   # a raw uint32 key


def dataset_keys(key: jax.Array, index) -> jax.Array:
    """The keys of the datasets numbered ``index``: ``fold_in(key, i)``, so a dataset's
    random draws (restarts, minibatches) do not depend on how a batch is chunked."""
    idx = jnp.asarray(index, dtype=jnp.uint32)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, idx)


def _warn(res: FitResult) -> None:
    codes = np.asarray(res.status).ravel()
    n = codes.size
    singular = int(np.sum(codes == Status.SINGULAR_HESSIAN))
    nonfinite_h = int(np.sum(codes == Status.NONFINITE_HESSIAN))
    failed = int(np.sum((codes != Status.CONVERGED) & (codes != Status.SINGULAR_HESSIAN)
                        & (codes != Status.NONFINITE_HESSIAN)))
    where = "" if n == 1 else f" in {{}} of {n} fits"
    if singular:
        warnings.warn("the Hessian is singular or not negative definite at the estimate"
                      + where.format(singular) + ": standard errors are NaN (parameters may "
                      "not be identified). See result.status / summary().", FitWarning,
                      stacklevel=3)
    if nonfinite_h:
        warnings.warn("the Hessian has non-finite (NaN or inf) entries at the estimate"
                      + where.format(nonfinite_h) + " although the log-likelihood and its "
                      "gradient are finite (usually inf * 0 in autodiff, e.g. cut-points padded "
                      "with -inf/+inf): the estimate is the maximum found by the gradient test, "
                      "standard errors are NaN. See result.status / summary().", FitWarning,
                      stacklevel=3)
    if failed:
        msg = res.message if n == 1 else "see result.summary() for the status counts"
        warnings.warn("the fit did not converge" + where.format(failed) + f": {msg}",
                      FitWarning, stacklevel=3)


def fit(loglik_fn: Callable, init: Any, data: Any = None, *, constraints: Any = None,
        weights: Any = None, method: str = "newton", optimizer: Any = None,
        batch_size: int | None = None, max_steps: int | None = None, gtol: float | None = None,
        ftol: float | None = None, restarts: int | None = None, key: jax.Array | None = None,
        restart_scale: float = 1.0, trace_len: int | None = None,
        penalty: Any = None, anneal: Any = None, canonical: Callable | None = None,
        repack: int | None = None, obs_chunk: int | None = None, devices: Any = None,
        warn: bool = True) -> FitResult:
    """Maximises ``sum_i w_i loglik_fn(params, data)_i`` (``+ penalty(params)``) over ``params``.

    The solvers work on unconstrained coordinates (each constrained leaf through its
    bijection) and report the estimate, the log-likelihood, a status, the trace of the
    log-likelihood per step, and the covariance ``(-H)^-1`` of the observed information on
    the natural scale.

    Args:
      loglik_fn: pure JAX ``loglik_fn(params, data)`` returning the total log-likelihood
        (a scalar) or one value per observation (a 1-D vector, summed with ``weights``).
      init: starting values on the natural scale, any pytree of floats/arrays; or, with
        ``restarts``, a function ``init(key) -> pytree`` drawing a start.
      data: any pytree, passed to ``loglik_fn`` untouched (a Python number as an array). A
        scalar is legitimate: one observation, or a sufficient statistic (a count) that a
        total log-likelihood reads, e.g. ``mj.fit(poisson_ll, {"lam": 1.0}, 3.0)``.
      constraints: a pytree prefix of ``init`` holding ``mj.real``, ``mj.positive``,
        ``mj.interval(lo, hi)``, ``mj.unit_interval``, ``mj.simplex``, ``mj.positive_definite``;
        keys of a dict left out are unconstrained.
      weights: non-negative per-observation weights (needs a per-observation log-likelihood).
      method: ``"newton"`` (trust-region Newton-Raphson, exact Hessian; the default), ``"bfgs"``,
        ``"lbfgs"`` (quasi-Newton with a weak-Wolfe line search) or ``"gradient"`` (any
        optax ``optimizer``; stochastic with ``batch_size``).
      optimizer: an optax optimiser for ``method="gradient"`` (default ``optax.adam(1e-2)``
        on the mean log-likelihood per observation).
      batch_size: minibatch size for stochastic gradient ascent (needs ``key``).
      max_steps: the step limit (default 500 newton, 500 bfgs, 1000 lbfgs, 2000 gradient).
      gtol: tolerance on the scaled gradient (default ``eps ** (2/3)`` of the dtype;
        ``eps ** (3/4)`` for ``method="newton"``, ``eps ** (1/2)`` for ``"gradient"``).
      ftol: tolerance on the relative change of the log-likelihood (default ``10 eps``;
        ``eps ** (1/2)`` for ``method="gradient"``).
      restarts: run R starts as one vmapped program and keep the best (needs ``key``). On
        CPU the starts run in small blocks, and with several cores in shares at the same
        time, one thread each (:mod:`mlejax._blocks`).
      key: a ``jax.random.key`` for restarts and minibatches.
      repack: with restarts, every ``repack`` steps the starts still running are re-packed
        into a smaller batch (:mod:`mlejax.batching`), so a few slow starts do not keep all R
        stepping (under ``vmap`` the batch otherwise runs as long as its slowest start).
        Same starts, same results; it costs a host round trip per segment and a compile per
        batch size (R, R/2, R/4, ...), so it pays when starts differ much in length. On CPU,
        where the starts already run in small blocks that each stop with their own starts
        (:mod:`mlejax._blocks`), it is not needed and not used: the blocked program runs.
      restart_scale: standard deviation, in unconstrained coordinates, of the starts drawn
        around a pytree ``init``.
      trace_len: length of the trace buffer (default ``max_steps + 1``; for ``fit_batch``
        at most 101, since every step of a batch carries K traces).
      penalty: a penalty added to the log-likelihood (:mod:`mlejax.penalties`: ``l2``,
        ``l1`` with exact zeros, ``elastic_net``, or any function ``params -> scalar``);
        ``res.loglik`` is then the plain log-likelihood and ``res.objective`` the
        penalised objective maximised; AIC and BIC need ``res.with_df(df)``.
      anneal: an annealing schedule (:mod:`mlejax.anneal`): stages of a tempered, smoothed
        objective run first, each from where the last stopped; the last stage is the true
        objective.
      canonical: ``params -> params`` in a canonical form (e.g. components sorted,
        ``mj.optima.sort_components``), so that the optima map (``res.optima``) counts
        relabelled copies of one optimum (label switching) as one.
      obs_chunk: evaluate the log-likelihood and its derivatives as a sum over chunks of
        this many observations (axis 0 of every data leaf; ``loglik_fn`` per observation),
        one chunk after another in a loop (:mod:`mlejax._obs_chunks`): the same fit, with
        memory that no longer grows with ``n`` times the parameters (Newton's autodiff
        Hessian otherwise holds ``n x p`` intermediates), and on CPU faster for large ``n``
        since each chunk stays in cache (one logistic regression, n = 1e6, d = 20: the fit
        690 -> 394 ms with chunks of 1,000). On a GPU use large chunks or none.
        Bootstrap refits are chunked too; profile-likelihood refits see the whole data.
      devices: shard the observations (axis 0 of every data leaf; ``loglik_fn`` per
        observation) over these devices, e.g. ``jax.devices()``: each device sums its own
        rows (in chunks of ``obs_chunk`` if given) and the sums are added across devices,
        so one large fit uses them all at once. ``n`` need not divide evenly (the last row
        is repeated at weight 0). On CPU, several host devices come from
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX starts (one
        logistic regression, n = 1e6, d = 20, chunks of 1,000: the fit 394 ms on one
        device, 210 ms on two). Not with ``restarts``, ``batch_size`` or ``anneal``.
      warn: warn on the host when the fit did not converge or its Hessian is singular.

    Returns:
      A :class:`FitResult`; with restarts, ``res.optima`` maps the distinct optima found.

    Example:
      >>> import jax, jax.numpy as jnp, mlejax as mj
      >>> x = jnp.array([1.2, 0.4, 2.2, 1.9, 0.7])
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> res = mj.fit(loglik, {"mu": 0.0, "sigma": 1.0}, x, constraints={"sigma": mj.positive})
      >>> bool(res.converged)
      True
    """
    if repack is not None:
        _check_repack(repack, anneal)
        if restarts is None:
            raise ValueError("repack= re-packs the restarts of one fit: give restarts=R as "
                             "well (for many datasets use fit_batch(..., repack=S)).")
    cfg, start, data, weights, key = _prepare(
        loglik_fn, init, data, constraints=constraints, weights=weights, method=method,
        optimizer=optimizer, batch_size=batch_size, max_steps=max_steps, gtol=gtol, ftol=ftol,
        restarts=restarts, key=key, restart_scale=restart_scale, trace_len=trace_len,
        batched=False, init_batched=False, penalty=penalty, anneal=anneal, canonical=canonical,
        obs_chunk=obs_chunk, obs_devices=devices, solver_checks_init=True)
    if cfg.checked_start:
        res = _fit_checked_start(cfg, start, data, weights, key)
    elif repack is None or _restart_block(cfg, data, weights) is not None:
        res = _fit_restarts_concurrently(cfg, start, data, weights, key)
    else:
        res = _fit_restarts_repacked(cfg, start, data, weights, key, int(repack))
    _check_init_in_trace(cfg, res)
    res = dataclasses.replace(res, context=FitContext(cfg, data, weights))
    if warn and V.is_concrete(res.status):
        _warn(res)
    return res


def _check_repack(repack, anneal) -> None:
    if isinstance(repack, bool) or not isinstance(repack, (int, np.integer)) or repack < 1:
        raise ValueError(f"repack (steps per segment) must be a positive integer; got "
                         f"{repack!r}.")
    if anneal is not None:
        raise ValueError("anneal= does not combine with repack= (re-packing resumes the "
                         "final stage's loop only); fit without repack when annealing.")


def _fit_restarts_repacked(cfg: _Config, start, data, weights, key, repack: int) -> FitResult:
    """``fit(restarts=R)`` through the straggler re-packing of :mod:`mlejax.batching`: fit's
    own configuration, as a batch of one dataset whose solver key is ``fit``'s, so the R
    starts are the ones ``fit`` draws without ``repack`` (and the trace as long)."""
    from mlejax import batching

    one = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)  # noqa: E731
    res = batching._fit_repacked(dataclasses.replace(cfg, batched=True), start, one(data),
                                 None if weights is None else one(weights), key[None],
                                 segment=repack, multiple=1, shrink=2)
    return _first(res)


@jax.jit
def _first(tree):
    """The first element of every leaf (one dispatch, not one per leaf)."""
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def fit_batch(loglik_fn: Callable, init: Any, data: Any, *, init_batched: bool = False,
              constraints: Any = None, weights: Any = None, method: str = "newton",
              optimizer: Any = None, batch_size: int | None = None,
              max_steps: int | None = None, gtol: float | None = None, ftol: float | None = None,
              restarts: int | None = None, key: jax.Array | None = None,
              restart_scale: float = 1.0, trace_len: int | None = None,
              chunk_size: int | None = None, repack: int | None = None, devices: Any = None,
              progress: bool = False, checkpoint: str | None = None,
              first_index: int = 0, penalty: Any = None, anneal: Any = None,
              canonical: Callable | None = None, obs_chunk: int | None = None,
              warn: bool = True, out: str | None = None) -> FitResult:
    """Fits K independent datasets in one compiled program.

    Every leaf of ``data`` (and ``weights``) has a leading axis K; each dataset is fitted as
    by :func:`fit`, with its own stopping, status and standard errors, so one failing fit
    never aborts or poisons the others (on CPU the datasets run in cache-sized blocks, one
    after another inside the program, the fits still running re-packed into as few blocks
    as they fill every few steps, and with several cores shares of the batch run at the
    same time, one thread each, ``$MLEJAX_CPU_WORKERS`` of them if set:
    :mod:`mlejax._blocks`). ``init`` is shared, or per dataset with ``init_batched=True``
    (leading axis K on every leaf). Restarts combine with batches
    (R starts per dataset; ``res.optima`` maps each dataset's optima). Every array in the
    result gains the leading K axis. ``penalty``, ``anneal`` and ``canonical`` are as in
    :func:`fit` (``anneal`` does not combine with ``repack``), and so is ``obs_chunk`` (chunks
    of each dataset's observations, axis 1 of the batched data).

    Streaming and scale (see :mod:`mlejax.batching`): ``chunk_size`` streams the K datasets
    through one compiled program of that many at a time (``data`` may be NumPy memmaps, or a
    generator of batched chunks, or :func:`mlejax.ragged` datasets of different lengths);
    ``repack=S`` re-packs the fits still running every ``S`` steps into a smaller batch
    (on CPU only where the batch, or a chunk, is one block: in blocks each block already
    stops with its own fits);
    ``devices`` shards the batch over devices; ``progress`` shows a bar per chunk;
    ``checkpoint=DIR`` saves each finished chunk and resumes from them (only for the same
    problem: a checkpoint written with other data, init, weights, log-likelihood or settings
    is refused with a ``ValueError`` naming what differs). Results then hold
    NumPy arrays, assembled on the host. Dataset j draws its random numbers (restarts,
    minibatches) from ``fold_in(key, first_index + j)``, whatever the chunking, so a share of
    a larger batch (``first_index`` its first row) reproduces the whole batch's draws.

    Memory: a stream holds about two chunks at a time whatever K (the pages of a memmap are
    released as it is read), but its results grow with K. In host memory they take about
    ``8 (trace_len + p^2 + 2p + 2)`` bytes a fit in float64 (``p`` parameters; 1.2 kB for
    a 6-parameter model with the default trace, 0.4 kB with ``trace_len=1``; times R + 1
    with restarts), and a warning says when that is more than half the memory available.
    ``out=DIR`` (a directory; implies streaming) writes them instead, as each chunk
    finishes, to one ``.npy`` file per result array in DIR, and returns a result holding
    read-only memmaps of those files: host memory then stays flat in K, and
    ``mlejax.batching.open_results(DIR)`` reopens them later.

    Example:
      >>> loglik = lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
      >>> xs = jax.random.normal(jax.random.key(0), (100, 50))
      >>> batch = mj.fit_batch(loglik, {"mu": 0.0, "sigma": 1.0}, xs,
      ...                      constraints={"sigma": mj.positive})
      >>> batch.params["mu"].shape, float(batch.converged.mean())
      ((100,), 1.0)
      >>> bool(jnp.allclose(batch.params["mu"], xs.mean(axis=1)))   # each fit its own MLE
      True
    """
    options = dict(constraints=constraints, method=method, optimizer=optimizer,
                   batch_size=batch_size, max_steps=max_steps, gtol=gtol, ftol=ftol,
                   restarts=restarts, key=key, restart_scale=restart_scale,
                   trace_len=trace_len, penalty=penalty, anneal=anneal, canonical=canonical,
                   obs_chunk=obs_chunk)
    if repack is not None:
        _check_repack(repack, anneal)
    from mlejax import batching

    if (repack is not None and not isinstance(data, (batching.Ragged, collections.abc.Iterator))
            and _batch_block(None, data, weights, restarts=restarts) is not None):
        repack = None   # on CPU in blocks, each stopping with its own fits: nothing to re-pack
    streaming = (chunk_size is not None or repack is not None or devices is not None
                 or progress or checkpoint is not None or out is not None
                 or isinstance(data, (batching.Ragged, collections.abc.Iterator)))
    if streaming:
        def prepare(init_probe, data_probe, weights_probe):
            return _prepare(loglik_fn, init_probe, data_probe, weights=weights_probe,
                            batched=True, init_batched=init_batched, check_finite=False,
                            **options)
        res = batching.fit_many(loglik_fn, init, data, weights=weights,
                                init_batched=init_batched, key=key, chunk_size=chunk_size,
                                repack=repack, devices=devices, progress=progress,
                                checkpoint=checkpoint, prepare=prepare,
                                first_index=first_index, out=out)
    else:
        cfg, start, data, weights, keys = _prepare(
            loglik_fn, init, data, weights=weights, batched=True, init_batched=init_batched,
            first_index=first_index, **options)
        res = _fit_batch_concurrently(cfg, start, data, weights, keys)
        res = dataclasses.replace(res, context=FitContext(cfg, data, weights))
    if warn and V.is_concrete(res.status):
        _warn(res)
    return res
