"""Random effects: maximum likelihood of a marginal likelihood by the Laplace approximation.

A user writes the *joint* log-density of the data and the random effects,
``log p(y | u, theta) + log p(u | theta)``, as an ordinary ``loglik_fn(params, data)`` whose
``params`` hold both; ``mj.fit(joint, init, data, random=["u"])`` then maximises the
marginal likelihood of ``theta`` (every other parameter), with ``u`` integrated out by the
Laplace approximation (TMB's method: :mod:`mlejax._laplace`), or by adaptive Gauss-Hermite
quadrature for one scalar effect per group. Every solver works outside (gradients and
Hessians by implicit differentiation), and the result is an ordinary fit of ``theta`` --
standard errors from the observed information of the marginal, profile intervals,
``mj.lrt``, AIC/BIC, the summary -- with the random effects' modes and standard errors in
``res.random``. For a Gaussian joint (linear mixed models) the approximation is exact:
maximum likelihood as lme4's ``lmer(REML=FALSE)``, and REML with the fixed effects also
given as random (``random=["u", "beta"]``, with no distribution of their own: a flat prior).

This module checks a call before anything is compiled and turns it into the fit of a
marginal log-likelihood; :func:`mlejax.fit` and :func:`mlejax.fit_batch` call it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlejax import _laplace
from mlejax import _validate as V
from mlejax.constraints import Constraint, real
from mlejax.status import Status

__all__ = ["RandomEffects", "as_random", "check_start_status", "marginal_problem"]

# A declared group structure is refused when A r and blockdiag(A) r differ by more than this
# (relative) for a random r: far above rounding, far below any real coupling.
GROUP_CHECK_TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class RandomEffects:
    """Which parameters are random effects, integrated out of the likelihood, and how.

    Args:
      names: keys of ``init`` (a dict) holding the random effects; they take no constraint
        (their distribution is part of the joint log-density).
      grouped: the effects come in independent groups along the leading axis ``G`` of every
        named leaf (shape ``(G,)`` or ``(G, ...)``): group ``g``'s entries enter only group
        ``g``'s terms of the joint (each subject's random intercept only that subject's
        observations and its own prior term), so the negative Hessian in them is block
        diagonal, with ``G`` blocks of ``m`` (the entries per group). It is then found by
        ``m`` Hessian-vector products and each block factored alone: cost linear in ``G``
        (100,000 groups are fine). The declaration is checked on the first evaluation: a
        joint that couples groups is an error, not a wrong answer. Without it (the default)
        the Hessian is dense: up to a few thousand random effects.
      nodes: adaptive Gauss-Hermite quadrature with this many nodes per group (lme4's
        ``nAGQ``): for one scalar effect per group (``grouped=True``, leaves of shape
        ``(G,)``) and a joint that returns one value per group (a vector of length ``G``:
        each group's terms, with any term of ``theta`` alone in any one group). 1 (the
        default) is the Laplace approximation.
      max_inner: the inner Newton's step limit (it starts from the last mode, so a few
        steps are typical; the first evaluation starts from ``init``).

    Example:
      >>> spec = mj.RandomEffects(["u"], grouped=True)
      >>> spec.names, spec.grouped, spec.nodes
      (('u',), True, 1)
    """

    names: tuple[str, ...]
    grouped: bool = False
    nodes: int = 1
    max_inner: int = 100

    def __init__(self, names: Sequence[str] | str, *, grouped: bool = False, nodes: int = 1,
                 max_inner: int = 100):
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"RandomEffects(names=...) takes the names (keys of init) of the "
                             f"random effects, e.g. ['u']; got {names!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"RandomEffects: a name is given twice in {list(names)}.")
        if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 1:
            raise ValueError(f"nodes (Gauss-Hermite nodes per group) must be a positive "
                             f"integer; got {nodes!r}.")
        if isinstance(max_inner, bool) or not isinstance(max_inner, (int, np.integer)) \
                or max_inner < 1:
            raise ValueError(f"max_inner must be a positive integer; got {max_inner!r}.")
        if nodes > 1 and not grouped:
            raise ValueError("nodes > 1 (adaptive Gauss-Hermite quadrature) integrates one "
                             "scalar effect per group: declare grouped=True.")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "grouped", bool(grouped))
        object.__setattr__(self, "nodes", int(nodes))
        object.__setattr__(self, "max_inner", int(max_inner))


def as_random(random: Any) -> RandomEffects:
    """``random=`` as a :class:`RandomEffects` (a name or a list of names: dense Laplace)."""
    if isinstance(random, RandomEffects):
        return random
    if isinstance(random, str) or (isinstance(random, (list, tuple))
                                   and all(isinstance(n, str) for n in random)):
        return RandomEffects(random)
    raise ValueError(f"random= takes the names of the random effects (keys of init), e.g. "
                     f"['u'], or mj.RandomEffects(['u'], grouped=True); got {random!r}.")


def marginal_problem(loglik_fn: Callable, init: Any, data: Any, random: Any, *,
                     constraints: Any, batched: bool, init_batched: bool, check: bool = True,
                     **unsupported):
    """A fit of a joint log-density with random effects as the fit of its marginal.

    Returns ``(marginal_fn, theta_init, outer_data, theta_constraints)``: ``marginal_fn`` is
    a :class:`mlejax._laplace.Laplace` (a ``loglik_fn(theta, outer_data)``), ``theta_init``
    ``init`` without the random effects (a function of a key if ``init`` is),
    ``outer_data = {"data": data, "u0": the random effects' start}`` (a leading ``K`` axis
    when ``batched``). ``unsupported`` are the options a marginal fit does not take; any
    that is set is an error. With ``check``, on concrete data, the
    group declaration checked (the inner Newton at the start is diagnosed from the fit's
    own first evaluation: :func:`check_start_status`).
    """
    spec = as_random(random)
    for option, value in unsupported.items():
        if value is None:
            continue
        if option in ("weights", "minibatch", "obs_chunk", "obs_devices"):
            raise ValueError(f"{option}= does not combine with random effects (random=): the "
                             "marginal likelihood is one total over the groups, not a sum "
                             "over observations that can be weighted, subsampled or split.")
        raise ValueError(f"{option} is not available with random effects (random=): fit "
                         "without it (fit_batch holds the K marginal fits in one program).")
    init_fn = init if callable(init) else None
    example = init(jax.random.key(0)) if init_fn is not None else init
    if not isinstance(example, collections.abc.Mapping):
        raise ValueError(f"random= names keys of init, which must then be a dict of "
                         f"parameters; got init of type {type(example).__name__}.")
    missing = [n for n in spec.names if n not in example]
    if missing:
        raise ValueError(f"random={list(spec.names)}: {missing} not in init (its keys: "
                         f"{list(example)}); give each random effect a starting value in "
                         f"init, e.g. init['{missing[0]}'] = jnp.zeros(G).")
    _check_unconstrained(constraints, spec.names)
    theta_keys = [k for k in example if k not in spec.names]
    if not theta_keys:
        raise ValueError("every parameter of init is named in random=: nothing is left to "
                         "estimate. Keep the parameters of the random effects' distribution "
                         "(e.g. their standard deviation) out of random=.")
    split = functools.partial(_split, spec.names)

    theta_init, u_init = split(example)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(example))
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    u_init = {k: jnp.asarray(v, dtype) for k, v in u_init.items()}
    if batched and init_batched:
        shapes = tuple(tuple(np.shape(u_init[n])[1:]) for n in spec.names)
    else:
        shapes = tuple(tuple(np.shape(u_init[n])) for n in spec.names)
    layout = _layout(spec, shapes, dtype)
    if V.is_concrete(u_init):
        V.check_data_finite(u_init, "init's random effects")

    flat = jax.vmap(layout.flatten) if (batched and init_batched) else layout.flatten
    u0 = flat(u_init)
    if batched:
        k = V.batch_size_of(data, None)
        u0 = u0 if init_batched else jnp.broadcast_to(u0, (k,) + u0.shape)
    one = (lambda t: jax.tree_util.tree_map(lambda x: x[0], t)) if batched else (lambda t: t)
    theta0 = one(theta_init) if init_batched else theta_init
    data0 = one(data)
    per_group = _check_joint_output(loglik_fn, spec, layout, theta0, data0, one(u0))
    marginal_fn = _laplace.Laplace(loglik_fn, layout, spec.nodes, per_group, spec.max_inner)
    if check and V.is_concrete((theta0, data0, u0)):
        _check_start(marginal_fn, spec, theta0, data0, one(u0))
    theta_cons = (constraints if not isinstance(constraints, collections.abc.Mapping)
                  else {k: v for k, v in constraints.items() if k not in spec.names})
    if init_fn is not None:
        theta_init = _StripRandom(init_fn, spec.names)
    return marginal_fn, theta_init, {"data": data, "u0": u0}, theta_cons


def _split(names, params):
    theta = {k: v for k, v in params.items() if k not in names}
    u = {k: params[k] for k in names}
    return theta, u


@dataclasses.dataclass(frozen=True)
class _StripRandom:
    """An ``init(key)`` for restarts, without the random effects (which start at ``u0``)."""

    init_fn: Callable
    names: tuple[str, ...]

    def __call__(self, key):
        return _split(self.names, self.init_fn(key))[0]


def _check_unconstrained(constraints, names) -> None:
    if constraints is None:
        return
    if isinstance(constraints, collections.abc.Mapping):
        bad = [n for n in names if n in constraints and constraints[n] is not real]
        if bad:
            raise ValueError(f"random effects take no constraint (got one for {bad}): they are "
                             "integrated over the whole real line. Constrain the parameters "
                             "of their distribution instead (e.g. constraints={'sd_u': "
                             "mj.positive}), or model a positive effect as exp(u).")
    elif isinstance(constraints, Constraint) and constraints is not real:
        raise ValueError("constraints= is one constraint for every parameter, which would "
                         "include the random effects: give a dict naming the parameters it "
                         "constrains (random effects take none).")


def _layout(spec: RandomEffects, shapes, dtype) -> _laplace.Layout:
    if spec.grouped:
        if any(len(s) == 0 for s in shapes):
            raise ValueError(f"grouped=True: every random effect needs a leading axis of "
                             f"groups; {dict(zip(spec.names, shapes))} has a scalar.")
        sizes = {s[0] for s in shapes}
        if len(sizes) != 1:
            raise ValueError(f"grouped=True: every random effect must have the same number of "
                             f"groups on its leading axis; got shapes "
                             f"{dict(zip(spec.names, shapes))}.")
    layout = _laplace.Layout(spec.names, shapes, True if spec.grouped else False,
                             jnp.dtype(dtype))
    if layout.size == 0:
        raise ValueError(f"the random effects {list(spec.names)} have no entries.")
    if spec.nodes > 1 and layout.width != 1:
        raise ValueError(f"nodes={spec.nodes} (adaptive Gauss-Hermite quadrature) needs one "
                         f"scalar random effect per group (lme4's nAGQ > 1 likewise); got "
                         f"{layout.width} per group. Use nodes=1 (Laplace).")
    return layout


def _check_joint_output(loglik_fn, spec, layout, theta, data, u0) -> bool:
    """What the joint returns: a scalar total, or (grouped) one value per group."""
    full = dict(theta)
    full.update(layout.unflatten(u0))
    try:
        out = jax.eval_shape(loglik_fn, full, data)
    except (TypeError, ValueError, IndexError, KeyError) as err:
        raise ValueError(f"the joint loglik_fn(params, data) failed on init and data: "
                         f"{err}") from err
    shape = tuple(getattr(out, "shape", (None,)))
    if not hasattr(out, "dtype") or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError("the joint log-density must return floating values (a scalar).")
    if shape == ():
        per_group = False
    elif spec.grouped and shape == (layout.n_blocks,):
        per_group = True
    else:
        raise ValueError(f"with random effects, loglik_fn returns the joint log-density: a "
                         f"scalar total{' or one value per group' if spec.grouped else ''}; "
                         f"got shape {shape}. Sum the per-observation terms.")
    if spec.nodes > 1 and not per_group:
        raise ValueError(f"nodes={spec.nodes}: quadrature needs each group's own terms, so the "
                         f"joint must return one value per group (a vector of length "
                         f"{layout.n_blocks}, e.g. jax.ops.segment_sum of the observations' "
                         f"terms by group plus each group's prior term).")
    return per_group


@functools.partial(jax.jit, static_argnums=0)
def _coupling(marginal_fn, theta, data, u0):
    return _laplace.check_groups(marginal_fn, theta, data, u0, jax.random.key(0))


def _check_start(marginal_fn, spec, theta, data, u0) -> None:
    """A declared group structure, checked at the start before the fit (one Hessian-vector
    product against the blocks: a small program). The inner Newton at the start is
    diagnosed by the fit itself (:func:`check_start_status`)."""
    if not spec.grouped:
        return
    coupling = float(jax.device_get(_coupling(marginal_fn, theta, data, u0)))
    if not coupling <= GROUP_CHECK_TOL:
        raise ValueError(
            f"grouped=True declares that each group's random effects (axis 0 of "
            f"{list(spec.names)}) enter only that group's terms, but the joint couples "
            f"groups: its Hessian in the random effects is not block diagonal (relative "
            f"discrepancy {coupling:.2g} on a random probe). Declare grouped=False "
            f"(a dense Hessian), or make the leading axis the independent groups.")


def check_start_status(res) -> None:
    """After one fit whose marginal was not finite at init: the reason, as an error (the
    inner Newton's status at the start, or a joint that is not finite there)."""
    trace = np.asarray(res.trace)
    if trace.size == 0 or np.isfinite(trace[0]):
        return
    code = int(res.status)
    if code == Status.INNER_NOT_CONVERGED:
        raise ValueError(
            "the inner Newton found no mode of the random effects at init: the joint may be "
            "unbounded in them (no distribution log p(u | theta) in the joint?), or need more "
            "steps (mj.RandomEffects(..., max_inner=...)), or better starting values for them.")
    if code == Status.INNER_NOT_DEFINITE:
        raise ValueError(
            "the joint log-density is not strictly concave in the random effects at their mode "
            "at init (its negative Hessian in them is not positive definite), so the Laplace "
            "approximation does not exist there: every random effect must enter the joint, "
            "and its distribution log p(u | theta) belongs in it.")
    raise ValueError(f"the marginal log-likelihood is not finite at init (got "
                     f"{float(trace[0])}); choose starting values where the joint is finite.")
