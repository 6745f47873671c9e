"""Everything checked before tracing, and the static configuration it yields.

:func:`configure` turns a user's call (log-likelihood, init, data, options) into a
:class:`~mlejax._config.Config` and the arrays to feed a compiled program, raising a clear
error for anything wrong that can be seen without compiling: the method and its options,
constraints against ``init``, initial values inside their constraints, NaN in the data,
what ``loglik_fn`` returns (``jax.eval_shape``), and for a single fit that the
log-likelihood is finite at the start.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _blocks
from mlejax import _validate as V
from mlejax import anneal as _anneal
from mlejax import penalties as _penalties
from mlejax._config import Config
from mlejax.methods import LBFGS, as_method
from mlejax._problem import Problem, make_problem
from mlejax.result import FitResult


def configure(loglik_fn, init, data, *, constraints, weights, method, optimizer, batch_size,
             max_steps, gtol, ftol, restarts, key, restart_scale, trace_len, batched,
             init_batched, check_finite=True, first_index=0, penalty=None, anneal=None,
             canonical=None, obs_chunk=None, obs_devices=None, solver_checks_init=False,
             random=None):
    """All host-side checks; returns the static config and the arrays to feed the kernel.

    ``solver_checks_init``: the caller runs a large fit through :func:`fit_checked_start`,
    which checks init on the solver's first evaluation (``cfg.checked_start``), so the pass
    of its own is skipped here. ``random``: ``loglik_fn`` is this marginal of a joint with
    random effects (:mod:`mlejax.random_effects`), whose solver carries its warm starts."""
    if not callable(loglik_fn):
        raise ValueError("loglik_fn must be a function loglik_fn(params, data).")
    solver = as_method(method, optimizer=optimizer, batch_size=batch_size,
                       max_steps=max_steps, gtol=gtol, ftol=ftol)
    method = solver.name
    optimizer = getattr(solver, "optimizer", None)
    batch_size = getattr(solver, "minibatch", None)
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
    problem = make_problem(example, treedef, cons, names, dtype,
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
        check_obs_axis("batch_size= subsamples", loglik_fn, params0, one_data, per_obs)
    if obs_chunk is not None:
        if isinstance(obs_chunk, bool) or not isinstance(obs_chunk, (int, np.integer)) \
                or obs_chunk < 1:
            raise ValueError(f"obs_chunk (observations per chunk) must be a positive integer; "
                             f"got {obs_chunk!r}.")
        if batch_size is not None:
            raise ValueError("obs_chunk= sums the full data in chunks; minibatches "
                             "(batch_size=) are already small: give one or the other.")
    if obs_devices is not None:
        obs_devices = check_devices(obs_devices, restarts=restarts, batch_size=batch_size,
                                     anneal=anneal)
    if obs_chunk is not None or obs_devices is not None:
        check_obs_axis("obs_chunk= sums the log-likelihood over chunks of"
                        if obs_chunk is not None else "devices= shards the",
                        loglik_fn, params0, one_data, per_obs)

    checked_start = (solver_checks_init and not batched and init_fn is None
                     and start_checked_by_solver(restarts, batch_size, anneal, data, weights))
    # One plain fit from one start reads the check from its own program's first evaluation
    # (``trace[0]``, :func:`check_init_in_trace`) instead of compiling a program of its own
    # for it (0.08-0.15 s of a first call of a small custom model: benchmarks zoo).
    init_in_trace = (solver_checks_init and not batched and init_fn is None
                     and not checked_start and restarts is None and batch_size is None
                     and anneal is None and penalty is None
                     and (trace_len is None or int(trace_len) >= 1))
    if not batched and init_fn is None and not checked_start and not init_in_trace \
            and V.is_concrete((leaves, data, weights)):
        check_finite_at_init(total_at(loglik_fn, params0, data, weights))
    penalty, anneal = check_options(penalty, anneal, canonical, method=method,
                                     batch_size=batch_size, params0=params0, problem=problem)

    if obs_devices is not None:
        data, weights = shard_rows(data, weights, obs_devices, dtype)

    steps, gtol, ftol = solver.settings(dtype)   # the method's defaults for this dtype
    cfg = Config(
        loglik_fn=loglik_fn, problem=problem, per_obs=per_obs, has_weights=weights is not None,
        method=method, optimizer=optimizer, batch_size=batch_size, max_steps=steps, gtol=gtol,
        ftol=ftol, loose=solver.loose_tolerance(gtol),
        lbfgs_memory=getattr(solver, "memory", LBFGS.memory),
        # A batch carries K traces through every step of the loop: keep them short by default.
        trace_len=int(trace_len if trace_len is not None
                      else (min(steps + 1, 101) if batched else steps + 1)),
        restarts=None if restarts is None else int(restarts), init_fn=init_fn,
        restart_scale=float(restart_scale), batched=batched, init_batched=init_batched,
        penalty=penalty, anneal=anneal, canonical=canonical,
        obs_chunk=None if obs_chunk is None else int(obs_chunk), obs_devices=obs_devices,
        checked_start=checked_start, init_in_trace=init_in_trace, random=random,
        platform=_blocks.platform_of(data))

    start = to_u(problem, init_batched, leaves)
    if key is None and not batched and restarts is None and batch_size is None \
            and anneal is None:
        key = unread_key()   # nothing is drawn: no threefry program to compile (0.03 s)
    if key is None:
        key = jax.random.key(0)
    if batched:
        if cfg.restarts is None and cfg.batch_size is None and cfg.anneal is None:
            # No draws (no restarts, minibatches or annealing noise): the keys are never
            # read, so skip deriving them (compiling threefry: 0.15 s of a first call).
            key = unread_keys(key, k_batch)
        else:
            key = dataset_keys(key, first_index + np.arange(k_batch))
    return cfg, start, data, weights, key


def unread_key() -> jax.Array:
    """A key of JAX's default kind for a fit that draws nothing (made without compiling)."""
    shape = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    return jax.random.wrap_key_data(np.zeros(shape.shape, shape.dtype))


def check_init_in_trace(cfg: Config, res: FitResult) -> None:
    """The finiteness check of init for a fit whose program did it (``cfg.init_in_trace``):
    the loop records the log-likelihood at init as ``trace[0]`` (a non-finite start stops
    the loop at once, status NONFINITE)."""
    if cfg.init_in_trace and V.is_concrete(res.trace):
        check_finite_at_init(np.asarray(res.trace)[0])


def check_finite_at_init(total) -> None:
    total = np.asarray(total)
    if not np.isfinite(total):
        raise ValueError(f"the log-likelihood is not finite at init (got {float(total)}); "
                         "choose starting values where every observation has positive "
                         "density, or check the data.")


# One fit on more data than this has its solver's first evaluation run as a program of its
# own (:func:`fit_checked_start`).
CHECKED_START_BYTES = 1 << 20


def start_checked_by_solver(restarts, batch_size, anneal, data, weights) -> bool:
    """Whether the finiteness check of init reads the solver's own first evaluation
    (:func:`fit_checked_start`) rather than a pass of its own over the data: one fit from
    one start, no minibatches (whose first value is an estimate) or annealing (which moves
    the start), on concrete data of more than ``CHECKED_START_BYTES``."""
    return (restarts is None and batch_size is None and anneal is None
            and V.is_concrete((data, weights))
            and _blocks.nbytes((data, weights), per_item=False) > CHECKED_START_BYTES)


def check_devices(devices, *, restarts, batch_size, anneal) -> tuple | None:
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


def shard_rows(data, weights, devices: tuple, dtype):
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


def check_obs_axis(what: str, loglik_fn, params0, one_data, per_obs: bool) -> None:
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
def total_at(loglik_fn, params, data, weights):
    """The weighted total log-likelihood at ``params`` (the finiteness check of init)."""
    ll = loglik_fn(params, data)
    return jnp.sum(ll if weights is None else jnp.where(weights > 0, weights * ll, 0.0))


@functools.partial(jax.jit, static_argnums=(0, 1))
def to_u(problem: Problem, batched: bool, leaves):
    """Natural leaves to unconstrained vectors (one per dataset when ``batched``)."""
    return jax.vmap(problem.to_u)(leaves) if batched else problem.to_u(leaves)


def check_options(penalty, anneal, canonical, *, method, batch_size, params0, problem):
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


def unread_keys(key: jax.Array, k: int) -> jax.Array:
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


def check_repack(repack, anneal) -> None:
    if isinstance(repack, bool) or not isinstance(repack, (int, np.integer)) or repack < 1:
        raise ValueError(f"repack (steps per segment) must be a positive integer; got "
                         f"{repack!r}.")
    if anneal is not None:
        raise ValueError("anneal= does not combine with repack= (re-packing resumes the "
                         "final stage's loop only); fit without repack when annealing.")
