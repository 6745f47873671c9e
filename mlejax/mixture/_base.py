"""The base of the mixtures (:class:`Mixture`): what a mixture model supplies (its joint
log-density and closed-form M-step), the starts, and ``fit``/``fit_batch`` with their
host-side checks, on the EM engine of :mod:`mlejax.mixture._engine`."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from mlejax import _blocks
from mlejax._numerics import is_concrete
from mlejax._warnings import warn_fits
from mlejax.anneal import as_schedule
from mlejax.kmeans import check_matrix, kmeans_plusplus, lloyd
from mlejax.mixture._engine import block_size, program, warn_degenerate
from mlejax.mixture._result import MixtureResult
from mlejax.optima import sort_components

__all__ = ["HI", "Mixture", "counts"]

#: The matmuls of the M-steps at full precision (no TF32 / bfloat16 passes on accelerators).
HI = jax.lax.Precision.HIGHEST
_INITS = ("kmeans", "k-means++", "random")


def counts(resp):
    """The weight of each component, ``n_j = sum_i r_ij``, plus ``10 eps``: scikit-learn's
    convention, so an empty component divides by no zero."""
    return jnp.sum(resp, axis=0) + 10.0 * jnp.finfo(resp.dtype).eps


class Mixture:
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

    def start_params(self, key, x, user):
        """One start's parameters: an M-step from the initial responsibilities
        (``init_params``), the user's values (``init``) in place of those given."""
        names = tuple(self.param_shapes(x.shape[1]))
        if all(name in user for name in names):
            return {name: user[name] for name in names}
        params = self.m_step(self._init_resp(key, x), x)
        return {**params, **user}

    # --- host side -----------------------------------------------------------------------
    def _check_x(self, x, name, ndim):
        x = check_matrix(x, name, ndim)
        if not is_concrete(x):
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
            if is_concrete(a):
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
        res = program(self, int(n_init), False, False, as_schedule(anneal))(x, key, user)
        if warn and is_concrete(res.status):
            warn_fits(res, see="result.status and result.message")
            warn_degenerate(res)
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
        block = block_size(xs, self.n_components, int(n_init))
        n = _blocks.shares(k, block, _blocks.platform_of(xs), is_concrete((xs, key, user)))
        run = functools.partial(program, self, int(n_init), True,
                              bool(init_batched and user), as_schedule(anneal))
        if n == 1:
            res = run(block)(xs, keys, user)
        else:   # shares of the batch at the same time, one per core
            share = -(-k // n)
            res = _blocks.concurrently(run(block_size(xs, self.n_components, int(n_init),
                                                   share), share),
                                       (xs, keys, user), k, n)
        if warn and is_concrete(res.status):
            warn_fits(res, see="result.status and result.message")
            warn_degenerate(res)
        return res

