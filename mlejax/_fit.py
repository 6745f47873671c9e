"""``fit`` and ``fit_batch``: from a user's log-likelihood to a :class:`FitResult`.

What happens to the data, top to bottom:

1. :func:`mlejax._configure.configure` checks everything it can before tracing: the method
   and its options, constraints against ``init``, initial values inside their constraints,
   NaN in the data, what ``loglik_fn`` returns (``jax.eval_shape``, no compilation), and for
   a single fit that the log-likelihood is finite at the start.
2. :class:`mlejax._problem.Problem` holds the static description: the tree structure, one
   constraint per leaf, and the maps between the flat unconstrained vector ``u`` the solvers
   see and the natural parameters the user sees.
3. :mod:`mlejax._kernels` builds (once per static configuration; cached, so a second call
   with same-shaped data does not recompile) a jitted program: the solver on the driver
   loop (:mod:`mlejax._engine`), then the observed information at the optimum mapped to
   the natural scale; restarts and batches are ``vmap`` over it.
4. Back on the host, a singular Hessian or a failed fit raises a warning
   (:mod:`mlejax._warnings`); nothing is silent.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mlejax import _validate as V
from mlejax import batching
from mlejax._config import Config
from mlejax._fixed import hold, without_held_stderr
from mlejax._configure import check_init_in_trace, check_repack, configure
from mlejax._kernels import (batch_block, fit_batch_concurrently, fit_checked_start,
                             fit_restarts_concurrently, restart_block)
from mlejax._repack import fit_repacked
from mlejax.random_effects import check_start_status, marginal_problem
from mlejax._warnings import renamed, warn_fits
from mlejax.result import FitContext, FitResult

__all__ = ["fit", "fit_batch"]


def fit(loglik_fn: Callable, init: Any, data: Any = None, *, constraints: Any = None,
        weights: Any = None, method: str = "newton", optimizer: Any = None,
        minibatch: int | None = None, max_steps: int | None = None, gtol: float | None = None,
        ftol: float | None = None, restarts: int | None = None, key: jax.Array | None = None,
        restart_scale: float = 1.0, trace_len: int | None = None,
        penalty: Any = None, anneal: Any = None, canonical: Callable | None = None,
        repack: int | None = None, obs_chunk: int | None = None, obs_devices: Any = None,
        random: Any = None, fixed: Any = None, warn: bool = True,
        batch_size: int | None = None, devices: Any = None) -> FitResult:
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
        optax ``optimizer``; stochastic with ``minibatch``); or a solver object carrying its
        own settings (:mod:`mlejax.methods`): ``mj.Newton(max_steps=...)``, ``mj.BFGS()``,
        ``mj.LBFGS(memory=...)``, ``mj.Gradient(optimizer, minibatch=...)``. With an object,
        ``optimizer``, ``minibatch``, ``max_steps``, ``gtol`` and ``ftol`` go on the object,
        not here (giving both is an error).
      optimizer: an optax optimiser for ``method="gradient"`` (default ``optax.adam(1e-2)``
        on the mean log-likelihood per observation).
      minibatch: observations per step of stochastic gradient ascent (random minibatches;
        needs ``key``). Formerly ``batch_size=``, which still works with a
        ``DeprecationWarning``.
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
      obs_devices: shard the observations (axis 0 of every data leaf; ``loglik_fn`` per
        observation) over these devices, e.g. ``jax.devices()``: each device sums its own
        rows (in chunks of ``obs_chunk`` if given) and the sums are added across devices,
        so one large fit uses them all at once. ``n`` need not divide evenly (the last row
        is repeated at weight 0). On CPU, several host devices come from
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX starts (one
        logistic regression, n = 1e6, d = 20, chunks of 1,000: the fit 394 ms on one
        device, 210 ms on two). Not with ``restarts``, ``minibatch`` or ``anneal``. Formerly
        ``devices=``, which still works with a ``DeprecationWarning`` (in ``fit_batch``,
        ``devices=`` shards the batch of fits, not the rows).
      random: the names of random effects in ``init`` (a dict), or a
        :class:`mlejax.RandomEffects` (``grouped=True`` for independent groups, ``nodes``
        for adaptive quadrature): ``loglik_fn`` is then the joint log-density of the data
        and the random effects, and the fit maximises the marginal likelihood of the other
        parameters, the random effects integrated out by the Laplace approximation
        (:mod:`mlejax.random_effects`). ``res.random`` holds their modes and standard
        errors. Not with ``weights``, ``minibatch``, ``obs_chunk``, ``obs_devices``,
        ``anneal`` or ``repack``.
      fixed: parameters held at given values, a pytree prefix of ``init`` (TMB's
        ``map``): ``{"alpha": 1.0}`` holds ``alpha`` at 1; an array holds a leaf's elements
        (NaN for those left free; partly held leaves need an elementwise constraint:
        real, positive, interval); a boolean (mask) holds them at ``init``'s values. Held
        values stay in ``params`` with NaN ``stderr`` (zero rows and columns of ``cov``);
        ``df_model``, AIC and BIC count only the free parameters. The values are compiled
        in: a new value compiles a new program.
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
    minibatch = renamed("batch_size", batch_size, "minibatch", minibatch)
    obs_devices = renamed("devices", devices, "obs_devices", obs_devices)
    init, constraints = hold(init, constraints, fixed)
    marginal = None
    if random is not None:
        loglik_fn, init, data, constraints = marginal_problem(
            loglik_fn, init, data, random, constraints=constraints, batched=False,
            init_batched=False, weights=weights, minibatch=minibatch, obs_chunk=obs_chunk,
            obs_devices=obs_devices, anneal=anneal, repack=repack)
        marginal = loglik_fn
    if repack is not None:
        check_repack(repack, anneal)
        if restarts is None:
            raise ValueError("repack= re-packs the restarts of one fit: give restarts=R as "
                             "well (for many datasets use fit_batch(..., repack=S)).")
    cfg, start, data, weights, key = configure(
        loglik_fn, init, data, constraints=constraints, weights=weights, method=method,
        optimizer=optimizer, batch_size=minibatch, max_steps=max_steps, gtol=gtol, ftol=ftol,
        restarts=restarts, key=key, restart_scale=restart_scale, trace_len=trace_len,
        batched=False, init_batched=False, penalty=penalty, anneal=anneal, canonical=canonical,
        obs_chunk=obs_chunk, obs_devices=obs_devices, solver_checks_init=True, random=marginal)
    if cfg.checked_start:
        res = fit_checked_start(cfg, start, data, weights, key)
    elif repack is None or restart_block(cfg, data, weights) is not None:
        res = fit_restarts_concurrently(cfg, start, data, weights, key)
    else:
        res = _fit_restarts_repacked(cfg, start, data, weights, key, int(repack))
    if marginal is not None and cfg.init_in_trace and V.is_concrete(res.trace):
        check_start_status(res)
    check_init_in_trace(cfg, res)
    res = without_held_stderr(dataclasses.replace(res, context=FitContext(cfg, data, weights)))
    if warn and V.is_concrete(res.status):
        warn_fits(res)
    return res


def _fit_restarts_repacked(cfg: Config, start, data, weights, key, repack: int) -> FitResult:
    """``fit(restarts=R)`` through the straggler re-packing of :mod:`mlejax._repack`: fit's
    own configuration, as a batch of one dataset whose solver key is ``fit``'s, so the R
    starts are the ones ``fit`` draws without ``repack`` (and the trace as long)."""
    one = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)  # noqa: E731
    res = fit_repacked(dataclasses.replace(cfg, batched=True), start, one(data),
                       None if weights is None else one(weights), key[None],
                       segment=repack, multiple=1, shrink=2)
    return _first(res)


@jax.jit
def _first(tree):
    """The first element of every leaf (one dispatch, not one per leaf)."""
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def fit_batch(loglik_fn: Callable, init: Any, data: Any, *, init_batched: bool = False,
              constraints: Any = None, weights: Any = None, method: str = "newton",
              optimizer: Any = None, minibatch: int | None = None,
              max_steps: int | None = None, gtol: float | None = None, ftol: float | None = None,
              restarts: int | None = None, key: jax.Array | None = None,
              restart_scale: float = 1.0, trace_len: int | None = None,
              datasets_per_chunk: int | None = None, repack: int | None = None,
              devices: Any = None, progress: bool = False, checkpoint: str | None = None,
              first_index: int = 0, penalty: Any = None, anneal: Any = None,
              canonical: Callable | None = None, obs_chunk: int | None = None,
              random: Any = None, fixed: Any = None, warn: bool = True,
              out: str | None = None, stream: batching.Stream | None = None,
              batch_size: int | None = None, chunk_size: int | None = None) -> FitResult:
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
    :func:`fit` (``anneal`` does not combine with ``repack``), and so are ``fixed`` (one
    value for every fit) and ``obs_chunk`` (chunks
    of each dataset's observations, axis 1 of the batched data). ``random`` fits K models
    with random effects (as in :func:`fit`; their starts in ``init`` shared, or per dataset
    with ``init_batched``), one per dataset, in one program; not with the streaming options
    below.

    ``method`` (a name or a solver object), ``minibatch`` and the tolerances are as in
    :func:`fit`.

    Streaming and scale (see :mod:`mlejax.batching`): ``datasets_per_chunk`` (not
    ``obs_chunk``, which is rows of one dataset; formerly ``chunk_size=``, which still works
    with a ``DeprecationWarning``) streams the K datasets
    through one compiled program of that many at a time (``data`` may be NumPy memmaps, or a
    generator of batched chunks, or :func:`mlejax.ragged` datasets of different lengths);
    ``repack=S`` re-packs the fits still running every ``S`` steps into a smaller batch
    (on CPU only where the batch, or a chunk, is one block: in blocks each block already
    stops with its own fits);
    ``devices`` shards the batch of fits over devices (in :func:`fit`, ``obs_devices``
    shards one fit's rows); ``progress`` shows a bar per chunk;
    ``checkpoint=DIR`` saves each finished chunk and resumes from them (only for the same
    problem: a checkpoint written with other data, init, weights, log-likelihood or settings
    is refused with a ``ValueError`` naming what differs). These options, with ``out`` and
    ``first_index``, can be given together as one ``stream=mj.Stream(...)``
    (:class:`mlejax.batching.Stream`; then not also as keywords), which always streams.
    Results then hold
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
    minibatch = renamed("batch_size", batch_size, "minibatch", minibatch)
    datasets_per_chunk = renamed("chunk_size", chunk_size, "datasets_per_chunk",
                                 datasets_per_chunk)
    if stream is not None:
        if not isinstance(stream, batching.Stream):
            raise ValueError(f"stream= takes an mj.Stream(...) of streaming options; got "
                             f"{type(stream).__name__}.")
        opts = stream.options(datasets_per_chunk=datasets_per_chunk, devices=devices,
                              progress=progress, checkpoint=checkpoint, out=out,
                              first_index=first_index)
        datasets_per_chunk, devices, progress = (opts["datasets_per_chunk"], opts["devices"],
                                                 opts["progress"])
        checkpoint, out, first_index = opts["checkpoint"], opts["out"], opts["first_index"]
    init, constraints = hold(init, constraints, fixed, init_batched=init_batched)
    marginal = None
    if random is not None:
        streamed = {"stream": stream,
                    "datasets_per_chunk": datasets_per_chunk, "repack": repack,
                    "devices": devices, "checkpoint": checkpoint, "out": out,
                    "progress": progress or None}
        if isinstance(data, (batching.Ragged, collections.abc.Iterator)):
            streamed["data (ragged or a generator)"] = True
        loglik_fn, init, data, constraints = marginal_problem(
            loglik_fn, init, data, random, constraints=constraints, batched=True,
            init_batched=init_batched, weights=weights, minibatch=minibatch,
            obs_chunk=obs_chunk, anneal=anneal, **streamed)
        marginal = loglik_fn
    options = dict(constraints=constraints, method=method, optimizer=optimizer,
                   batch_size=minibatch, max_steps=max_steps, gtol=gtol, ftol=ftol,
                   restarts=restarts, key=key, restart_scale=restart_scale,
                   trace_len=trace_len, penalty=penalty, anneal=anneal, canonical=canonical,
                   obs_chunk=obs_chunk, random=marginal)
    if repack is not None:
        check_repack(repack, anneal)
    if (repack is not None and not isinstance(data, (batching.Ragged, collections.abc.Iterator))
            and batch_block(None, data, weights, restarts=restarts) is not None):
        repack = None   # on CPU in blocks, each stopping with its own fits: nothing to re-pack
    streaming = (stream is not None or datasets_per_chunk is not None or repack is not None
                 or devices is not None
                 or progress or checkpoint is not None or out is not None
                 or isinstance(data, (batching.Ragged, collections.abc.Iterator)))
    if streaming:
        def prepare(init_probe, data_probe, weights_probe):
            return configure(loglik_fn, init_probe, data_probe, weights=weights_probe,
                            batched=True, init_batched=init_batched, check_finite=False,
                            **options)
        res = batching.fit_streamed(loglik_fn, init, data, weights=weights,
                                    init_batched=init_batched, key=key,
                                    datasets_per_chunk=datasets_per_chunk,
                                    repack=repack, devices=devices, progress=progress,
                                    checkpoint=checkpoint, prepare=prepare,
                                    first_index=first_index, out=out)
    else:
        cfg, start, data, weights, keys = configure(
            loglik_fn, init, data, weights=weights, batched=True, init_batched=init_batched,
            first_index=first_index, **options)
        res = fit_batch_concurrently(cfg, start, data, weights, keys)
        res = dataclasses.replace(res, context=FitContext(cfg, data, weights))
    res = without_held_stderr(res)
    if warn and V.is_concrete(res.status):
        warn_fits(res)
    return res
