"""Count-data regressions beyond Poisson and NB2: linear-variance NB, generalized Poisson,
zero-truncated, zero-inflated and hurdle models, each as statsmodels parameterises it.

Every model has the linear predictor ``eta = X beta + offset`` (``offset`` includes
``log(exposure)``) and the count mean ``mu = exp(eta)``; ``f`` is the count pmf:

* ``NegativeBinomial1``: NB with variance ``mu (1 + alpha)`` (statsmodels'
  ``NegativeBinomial(loglike_method="nb1")``).
* ``GeneralizedPoisson``: Consul's GP, variance ``mu (1 + alpha mu^(p-1))^2`` (statsmodels'
  ``GeneralizedPoisson(p=1)``; ``p=2`` too).
* ``TruncatedPoisson``, ``TruncatedNegativeBinomial``: ``f(y) / (1 - f(0))`` for ``y >= 1``
  (``TruncatedLFPoisson``, ``TruncatedLFNegativeBinomialP``, truncation at 0).
* ``ZeroInflatedPoisson``, ``ZeroInflatedNegativeBinomial``: ``w 1[y = 0] + (1 - w) f(y)``
  with ``w = 1 / (1 + exp(-Z gamma))`` (``ZeroInflatedPoisson``,
  ``ZeroInflatedNegativeBinomialP(p=2)``).
* ``HurdlePoisson``, ``HurdleNegativeBinomial``: ``P(y = 0) = g(0)`` from a binary zero model
  ``g``, ``P(y) = (1 - g(0)) f(y) / (1 - f(0))`` for ``y > 0`` (``HurdleCountModel``).

The negative binomial count parts are NB2 (``alpha > 0``, var ``mu + alpha mu^2``). The
zero-inflated models take the inflation design as the keyword ``exog_infl`` (default: a
constant; a ``const`` column is prepended unless it has one, as for ``X``), coefficients
``gamma`` labelled ``inflate_<name>``. The hurdle's zero part ``g`` is a binary model of
``y > 0`` on ``X`` with its own coefficients ``gamma`` (``zm_<name>``): by default (as
statsmodels' ``zerodist="poisson"`` and pscl's ``zero.dist="poisson"``) a Poisson censored at
one, ``P(y > 0) = 1 - exp(-exp(X gamma))``; ``zero_dist="negbin"`` a censored NB2 with its
own ``zm_alpha``, ``zero_dist="logit"`` a logit (pscl's binomial default). Offsets and
exposure enter the count part only.

``predict(X, which=...)``: ``"mean"`` (default) ``E[y]``, ``"mean-main"`` the count part's
``mu``, ``"prob-zero"`` ``P(y = 0)``, ``"prob"`` ``P(y = k)`` for ``y_values=`` (default 0 to
the largest count fitted), ``(m, J)``; ``exog_infl=`` for the zero-inflated models.

References:
  Cameron & Trivedi, Regression Analysis of Count Data (2013), ch. 3-4; Consul & Famoye
  (1992), Generalized Poisson regression model, Comm. Statist. 21, 89-109; Lambert (1992),
  Zero-inflated Poisson regression, Technometrics 34, 1-14; Mullahy (1986), Specification and
  testing of some modified count data models, J. Econometrics 33, 341-365.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp

from mlejax import constraints as C
from mlejax._models.base import Model
from mlejax._models.common import in_datasets, wls

__all__ = ["NegativeBinomial1", "GeneralizedPoisson", "TruncatedPoisson",
           "TruncatedNegativeBinomial", "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial",
           "HurdlePoisson", "HurdleNegativeBinomial"]

_LN2 = math.log(2.0)
_WHICH = ("mean", "mean-main", "prob-zero", "prob")


# ------------------------------------------------------------------------ log-likelihoods


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and far below (Maechler 2012)."""
    near = x > -_LN2
    return jnp.where(near, jnp.log(-jnp.expm1(jnp.where(near, x, -1.0))),
                     jnp.log1p(-jnp.exp(jnp.where(near, -1.0, x))))


def _count_lp(count: str, y, eta, params, power: float):
    """``(log f(y), log f(0))`` of the count distribution with mean ``exp(eta)``."""
    mu = jnp.exp(eta)
    lgy = jsp.gammaln(y + 1.0)
    if count == "poisson":
        return y * eta - mu - lgy, -mu
    a = params["alpha"]
    if count == "negbin":                       # NB2: size 1/alpha
        r = 1.0 / a
        l0 = -r * jnp.log1p(a * mu)
        return (jsp.gammaln(y + r) - jsp.gammaln(r) - lgy + l0
                + y * (jnp.log(a) + eta - jnp.log1p(a * mu))), l0
    if count == "nb1":                          # NB1: size mu/alpha, p = 1/(1+alpha)
        r = mu / a
        l0 = -r * jnp.log1p(a)
        return (jsp.gammaln(y + r) - jsp.gammaln(r) - lgy + l0
                + y * (jnp.log(a) - jnp.log1p(a))), l0
    # Consul's generalized Poisson, statsmodels' parameterisation p (power - 1 = p - 1).
    a1 = 1.0 + a * mu ** (power - 1.0)
    a2 = mu + (a1 - 1.0) * y
    return eta + (y - 1.0) * jnp.log(a2) - y * jnp.log(a1) - lgy - a2 / a1, -mu / a1


def _zero_lp(zero: str, eta, params):
    """The hurdle's ``(log P(y = 0), log P(y > 0))`` from its zero model."""
    if zero == "logit":
        return -jax.nn.softplus(eta), -jax.nn.softplus(-eta)
    mu = jnp.exp(eta)
    if zero == "poisson":
        l0 = -mu
    else:
        a = params["zm_alpha"]
        l0 = -jnp.log1p(a * mu) / a
    return l0, _log1mexp(l0)


@functools.lru_cache(maxsize=None)
def _loglik(kind: str, count: str, zero: str = "", power: float = 1.0):
    """The per-observation log-likelihood of one configuration (one function object each,
    so same-shaped fits share one compiled program)."""

    def loglik(params, data):
        y = data["y"]
        eta = data["X"] @ params["beta"] + data["offset"]
        lp, l0 = _count_lp(count, y, eta, params, power)
        if kind == "plain":
            return lp
        if kind == "trunc":
            return lp - _log1mexp(l0)
        if kind == "zi":
            zg = data["Z"] @ params["gamma"]
            l1w = -jax.nn.softplus(zg)              # log(1 - w)
            return jnp.where(y == 0, jnp.logaddexp(-jax.nn.softplus(-zg), l1w + lp), l1w + lp)
        lz0, lzp = _zero_lp(zero, data["X"] @ params["gamma"], params)
        return jnp.where(y == 0, lz0, lzp + lp - _log1mexp(l0))

    return loglik


# ------------------------------------------------------------------------ starting values


def _irls(X, y, off, w, link: str, steps: int = 6):
    """A few IRLS steps of a GLM (``"log"``: Poisson; ``"logit"``, ``"cloglog"``: binary
    ``y``) from least squares on the transformed response: a start, not an estimate."""
    eps = jnp.finfo(X.dtype).eps
    if link == "log":
        eta0 = jnp.log(y + 0.5)
    else:
        p = (y + 0.5) / 2.0
        eta0 = jnp.log(p / (1.0 - p)) if link == "logit" else jnp.log(-jnp.log1p(-p))

    def step(_, beta):
        eta = jnp.clip(X @ beta + off, -30.0, 30.0)
        if link == "log":
            m = d = v = jnp.exp(eta)
        elif link == "logit":
            m = jax.nn.sigmoid(eta)
            d = v = m * (1.0 - m)
        else:
            m = -jnp.expm1(-jnp.exp(eta))
            d, v = jnp.exp(eta - jnp.exp(eta)), m * (1.0 - m)
        d, v = jnp.maximum(d, eps), jnp.maximum(v, eps)
        new = wls(X, eta - off + (y - m) / d, w * d * d / v)
        return jnp.where(jnp.all(jnp.isfinite(new)), new, beta)

    return jax.lax.fori_loop(0, steps, step, wls(X, eta0 - off, w))


def _alpha_start(count, y, mu, ww, power):
    """A moment estimate of the dispersion from Pearson residuals (weights ``ww``)."""
    s = jnp.sum(ww * ((y - mu) ** 2 - mu))
    if count == "negbin":
        return jnp.clip(s / jnp.sum(ww * mu * mu), 0.05, 5.0)
    if count == "nb1":
        return jnp.clip(s / jnp.sum(ww * mu), 0.05, 10.0)
    ratio = jnp.sum(ww * (y - mu) ** 2) / jnp.sum(ww * mu)       # (1 + alpha mu^(p-1))^2
    scale = jnp.sum(ww * mu ** power) / jnp.sum(ww * mu)
    return jnp.clip((jnp.sqrt(ratio) - 1.0) / scale, 0.0, 5.0)


def _zi_start(X, Z, y, off, w, steps: int = 10):
    """EM on a zero-inflated Poisson (a start for either count part): ``(gamma, beta, tau)``
    with ``tau`` the posterior probability that a zero is structural."""
    zero = (y == 0).astype(X.dtype)
    beta = _irls(X, y, off, w, "log")
    p0 = jnp.sum(w * jnp.exp(-jnp.exp(X @ beta + off))) / jnp.sum(w)
    f0 = jnp.sum(w * zero) / jnp.sum(w)
    pi = jnp.clip((f0 - p0) / (1.0 - p0), 0.05, 0.9)
    gamma = wls(Z, jnp.full(y.shape, jnp.log(pi / (1.0 - pi)), X.dtype), w)
    eps = jnp.finfo(X.dtype).eps

    def tau_of(beta, gamma):
        mu = jnp.exp(jnp.clip(X @ beta + off, -30.0, 30.0))
        zg = Z @ gamma
        return zero * jax.nn.sigmoid(zg + mu), mu      # w / (w + (1 - w) exp(-mu))

    def em(_, carry):
        beta, gamma = carry
        tau, mu = tau_of(beta, gamma)
        b = wls(X, X @ beta + (y - mu) / mu, w * (1.0 - tau) * mu)
        pz = jax.nn.sigmoid(Z @ gamma)
        v = jnp.maximum(pz * (1.0 - pz), eps)
        g = wls(Z, Z @ gamma + (tau - pz) / v, w * v)
        ok = jnp.all(jnp.isfinite(b)) & jnp.all(jnp.isfinite(g))
        return jnp.where(ok, b, beta), jnp.where(ok, g, gamma)

    beta, gamma = jax.lax.fori_loop(0, steps, em, (beta, gamma))
    return gamma, beta, tau_of(beta, gamma)[0]


# ------------------------------------------------------------------------ the checks


def _check_counts(y, inside, batched, name, *, y_ge_1=False, truncated=False, zeros=False):
    bad = inside & ~((y >= 0) & (np.floor(y) == y))
    if np.any(bad):
        vals = np.unique(y[bad])[:5].tolist()
        raise ValueError(f"y must hold non-negative integer counts for {name}; got values such "
                         f"as {vals}{in_datasets(bad.any(1), batched)}.")
    n0 = np.sum(inside & (y == 0), axis=1)
    if y_ge_1 and np.any(n0 > 0):
        raise ValueError(f"y must be >= 1 everywhere for {name} (zero-truncated: a 0 cannot "
                         f"occur); got {int(n0.max())} zero(s){in_datasets(n0 > 0, batched)}. "
                         "Drop the zeros, or fit a hurdle or zero-inflated model.")
    if zeros and np.any(n0 == 0):
        raise ValueError(f"no count is 0{in_datasets(n0 == 0, batched)}: {name} models the zeros "
                         "and needs some (the zero part's MLE is at infinity). Fit the count "
                         "model alone (TruncatedPoisson / TruncatedNegativeBinomial for y >= 1).")
    npos = np.sum(inside & (y > 0), axis=1)
    if np.any(npos == 0):
        raise ValueError(f"every count is 0{in_datasets(npos == 0, batched)}: the MLE of the "
                         f"mean is 0 (the intercept goes to -infinity) and {name} has no MLE.")
    if truncated:
        over1 = np.sum(inside & (y > 1), axis=1)
        if np.any(over1 == 0):
            raise ValueError(f"every positive count is 1{in_datasets(over1 == 0, batched)}: "
                             f"the zero-truncated count part of {name} then has its MLE of the "
                             "mean at 0 (no MLE).")


def _second_design(Z, rows, dtype, traced, intercept):
    """The inflation design: ``(Z, names)`` with ``rows`` leading axes, ``const`` added
    (when ``intercept``) unless a column is constant and non-zero in every dataset."""
    xp = jnp if traced else np
    if Z is None:
        return xp.ones(rows + (1,), dtype), ("const",)
    names = None
    if hasattr(Z, "columns") and hasattr(Z, "to_numpy"):
        names, Z = tuple(str(c) for c in Z.columns), Z.to_numpy()
    if hasattr(Z, "to_numpy"):                  # a Series: one column
        names, Z = (str(getattr(Z, "name", None) or "x1"),), Z.to_numpy()
    Z = xp.asarray(Z, dtype=np.dtype(dtype))
    if Z.shape == rows:
        Z = Z[..., None]                        # (n,) or (K, n): one column
    if Z.ndim == 2 and len(rows) == 2:
        Z = xp.broadcast_to(Z, rows[:1] + Z.shape)   # one design shared by the K fits
    if Z.shape[:-1] != rows:
        raise ValueError(f"exog_infl must have shape ({', '.join(map(str, rows))}, q) (one row "
                         f"per row of X); "
                         f"got {Z.shape}.")
    q = Z.shape[-1]
    names = names if names is not None and len(names) == q else \
        tuple(f"x{j + 1}" for j in range(q))
    add = intercept
    if add and not traced:      # as for X: a constant non-zero column is the intercept
        add = not np.all(np.any((np.ptp(Z, axis=-2) == 0) & (Z[..., 0, :] != 0), axis=-1))
    if add:
        Z = xp.concatenate([xp.ones(rows + (1,), Z.dtype), Z], axis=-1)
        names = ("const",) + names
    return Z, names


def _check_second(Z, names, w, batched):
    Z3 = Z if batched else Z[None]
    if not np.all(np.isfinite(Z3)):
        raise ValueError(f"exog_infl contains {int(np.sum(~np.isfinite(Z3)))} NaN or infinite "
                         "value(s); remove or impute them.")
    inside = np.ones(Z3.shape[:-1], bool) if w is None else (w if batched else w[None]) > 0
    Zm = Z3 * inside[..., None]
    deficient = np.linalg.matrix_rank(Zm) < Z3.shape[-1]
    if np.any(deficient):
        raise ValueError(f"the columns of exog_infl ({', '.join(names)}) are linearly dependent"
                         f"{in_datasets(deficient, batched)}: the inflation coefficients are "
                         "not identified. Drop a column.")


# ------------------------------------------------------------------------ the shared model


@dataclasses.dataclass(frozen=True)
class _Quantity(Model):
    """One of a count model's predictions (``which``) through the base class's predict."""

    model: Any = None
    which: str = "mean"
    y_values: tuple = ()

    @property
    def inputs(self):  # type: ignore[override]
        return self.model.inputs

    def describe(self) -> str:
        return self.model.describe()

    def prepare_inputs(self, inputs, design, predict):
        return self.model.prepare_inputs(inputs, design, predict)

    def mean_at(self, params, X, offset, extra):
        return self.model.quantity(params, X, offset, extra, self.which, self.y_values)


class _CountModel(Model):
    """What the count models share; ``kind`` (plain, trunc, zi, hurdle), ``count``
    (poisson, negbin, nb1, gp) and ``zero_dist`` (hurdles) select the likelihood."""

    log_link = True
    kind = "plain"
    count = "poisson"
    zero_dist = ""
    power = 1.0

    def loglik_fn(self):
        return _loglik(self.kind, self.count, self.zero_dist, float(self.power))

    def constraints(self):
        cons = {"alpha": C.positive} if self.count in ("negbin", "nb1") else {}
        if self.zero_dist == "negbin":
            cons["zm_alpha"] = C.positive
        return cons

    def n_extra_params(self) -> int:
        return int(self.count != "poisson") + int(self.zero_dist == "negbin")

    def n_params(self, d, extra):
        q = extra["Z"].shape[-1] if "Z" in extra else (d if self.kind == "hurdle" else 0)
        return d + q + self.n_extra_params()

    def check_y(self, y, inside, batched):
        _check_counts(y, inside, batched, self.describe(), y_ge_1=self.kind == "trunc",
                      truncated=self.kind in ("trunc", "hurdle"),
                      zeros=self.kind in ("zi", "hurdle"))

    def initial(self, X, y, offset, w, extra):
        out, ww = {}, w
        if self.kind == "zi":
            gamma, beta, tau = _zi_start(X, extra["Z"], y, offset, w)
            out["gamma"], ww = gamma, w * (1.0 - tau)
        else:
            if self.kind in ("trunc", "hurdle"):
                ww = w * (y > 0)
            beta = _irls(X, y, offset, ww, "log")
        if self.kind == "hurdle":
            link = "logit" if self.zero_dist == "logit" else "cloglog"
            out["gamma"] = _irls(X, (y > 0).astype(X.dtype), jnp.zeros_like(y), w, link)
            if self.zero_dist == "negbin":
                out["zm_alpha"] = jnp.asarray(0.1, X.dtype)
        out["beta"] = beta
        if self.count != "poisson":
            mu = jnp.exp(X @ beta + offset)
            out["alpha"] = _alpha_start(self.count, y, mu, ww, self.power - 1.0)
        return out

    def extra_of(self, res, design, warn):
        del res, warn
        y = np.asarray(design.y)
        inside = np.ones(y.shape, bool) if design.weights is None else \
            np.asarray(design.weights) > 0
        return {"y_max": jnp.asarray(np.max(np.where(inside, y, 0.0), axis=-1))}

    def mean_at(self, params, X, offset, extra):
        return self.quantity(params, X, offset, extra, "mean", ())

    def quantity(self, params, X, offset, extra, which, y_values):
        """``which`` of ``predict`` for one fit at the rows of ``X``."""
        eta = X @ params["beta"] + offset
        mu = jnp.exp(eta)
        data = {"X": X, "offset": offset, **extra}
        ll = self.loglik_fn()

        def prob(k):
            p = jnp.exp(ll(params, dict(data, y=jnp.full(eta.shape, k, eta.dtype))))
            return jnp.where(k >= 1, p, 0.0) if self.kind == "trunc" else p

        if which == "mean-main" or (which == "mean" and self.kind == "plain"):
            return mu
        if which == "prob-zero":
            return prob(0.0)
        if which == "prob":
            return jax.vmap(prob, out_axes=-1)(jnp.asarray(y_values, eta.dtype))
        l0 = _count_lp(self.count, jnp.zeros_like(eta), eta, params, self.power)[1]
        if self.kind == "trunc":
            return mu * jnp.exp(-_log1mexp(l0))
        if self.kind == "zi":
            return mu * jax.nn.sigmoid(-(extra["Z"] @ params["gamma"]))
        lzp = _zero_lp(self.zero_dist, X @ params["gamma"], params)[1]
        return mu * jnp.exp(lzp - _log1mexp(l0))

    def predict(self, res, X, *, offset=None, exposure=None, which: str = "mean",
                y_values: Any = None, **inputs):
        """``which``: ``"mean"`` ``E[y]``, ``"mean-main"`` the count part's mean ``mu``,
        ``"prob-zero"`` ``P(y = 0)``, ``"prob"`` ``P(y = k)`` for ``k`` in ``y_values``
        (default ``0 .. max y`` of the fit), ``(m, J)`` (``(K, m, J)`` for a batch)."""
        if which not in _WHICH:
            raise ValueError(f"which must be one of {', '.join(map(repr, _WHICH))}; got "
                             f"{which!r}.")
        if which == "prob" and y_values is None:
            y_values = np.arange(int(np.max(np.asarray(res.extra["y_max"]))) + 1)
        yv = tuple(float(v) for v in np.ravel(np.asarray(y_values))) if which == "prob" else ()
        if "exog_infl" in self.inputs:
            inputs["exog_infl"] = self._predict_z(res, inputs.get("exog_infl"), X)
        view = _Quantity(model=self, which=which, y_values=yv)
        return Model.predict(view, res, X, offset=offset, exposure=exposure, **inputs)


class _ZeroInflated(_CountModel):
    """The zero-inflated models: ``exog_infl`` is their extra input."""

    kind = "zi"
    inputs = ("exog_infl",)

    def prepare_inputs(self, inputs, design, predict):
        Z = inputs["exog_infl"]
        rows = design.X.shape[:-1]
        if predict:     # predict passes the design with its constant already in place
            Z = jnp.ones(rows + (1,), design.dtype) if Z is None else jnp.asarray(Z, design.dtype)
            return {"Z": jnp.broadcast_to(Z, rows + Z.shape[-1:])}, {}
        Z, names = _second_design(Z, rows, design.dtype, design.traced, self.intercept)
        if not design.traced:
            _check_second(Z, names, design.weights, design.batched)
        return {"Z": Z}, {"gamma": tuple(f"inflate_{n}" for n in names)}

    def _predict_z(self, res, Z, X):
        q = np.shape(res.params["gamma"])[-1]
        del X
        if Z is None:
            if q != 1:
                raise ValueError(f"this fit's inflation part has {q} coefficients: pass "
                                 "exog_infl= (the columns used in fit) to predict.")
            return None
        if hasattr(Z, "to_numpy"):
            Z = Z.to_numpy()
        Z = np.asarray(Z, np.float64)
        Z = Z[..., None] if Z.ndim == 1 else Z
        if Z.shape[-1] == q - 1 and "inflate_const" in res.param_names:
            Z = np.concatenate([np.ones(Z.shape[:-1] + (1,)), Z], axis=-1)
        if Z.shape[-1] != q:
            raise ValueError(f"exog_infl has {Z.shape[-1]} columns but the inflation part has "
                             f"{q} coefficients; pass the columns used in fit.")
        return Z


class _Hurdle(_CountModel):
    """The hurdle models: a binary zero part (``zero_dist``) on the columns of ``X``."""

    kind = "hurdle"

    def __post_init__(self):
        if self.zero_dist not in ("poisson", "negbin", "logit"):
            raise ValueError(f"zero_dist must be 'poisson', 'negbin' or 'logit'; got "
                             f"{self.zero_dist!r}.")

    def prepare_inputs(self, inputs, design, predict):
        return {}, ({} if predict else {"gamma": tuple(f"zm_{n}" for n in design.names)})


# ------------------------------------------------------------------------ the models


@dataclasses.dataclass(frozen=True)
class NegativeBinomial1(_CountModel):
    """Negative binomial with linear variance (NB1): mean ``mu = exp(X beta + offset)``,
    variance ``mu (1 + alpha)``, ``alpha > 0`` (statsmodels'
    ``NegativeBinomial(loglike_method="nb1")``, Stata's ``nbreg, dispersion(constant)``).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 10)
      >>> counts = np.array([0, 5, 1, 0, 9, 2, 12, 3, 14, 6])
      >>> res = mj.models.NegativeBinomial1().fit(x, counts)
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'alpha'), [1.466, 0.964])
      >>> round(float(res.params["alpha"]), 3)
      3.012
    """

    intercept: bool = True
    count = "nb1"

    def describe(self) -> str:
        return "Negative binomial (NB1) regression (log link)"


@dataclasses.dataclass(frozen=True)
class GeneralizedPoisson(_CountModel):
    """Consul's generalized Poisson regression in statsmodels' parameterisation
    ``GeneralizedPoisson(p=1)`` (``p=2`` as an option): mean ``mu = exp(X beta + offset)``,
    variance ``mu (1 + alpha mu^(p-1))^2``. ``alpha`` is unconstrained: ``> 0``
    over-dispersion, ``< 0`` under-dispersion (admissible while ``mu + alpha mu^(p-1) y > 0``
    for every observation; the pmf is then not renormalised, as in statsmodels).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 10)
      >>> counts = np.array([0, 5, 1, 0, 9, 2, 12, 3, 14, 6])
      >>> res = mj.models.GeneralizedPoisson().fit(x, counts)
      >>> res.param_names, round(float(res.params["alpha"]), 3)
      (('const', 'x1', 'alpha'), 1.069)
    """

    intercept: bool = True
    p: float = 1.0
    count = "gp"

    def __post_init__(self):
        if not float(self.p) >= 1.0:
            raise ValueError(f"GeneralizedPoisson(p=...) must be >= 1 (1: GP-1, 2: GP-2); got "
                             f"{self.p}.")

    @property
    def power(self) -> float:  # type: ignore[override]
        return float(self.p)

    def describe(self) -> str:
        return f"Generalized Poisson regression (p = {self.p:g}, log link)"


@dataclasses.dataclass(frozen=True)
class TruncatedPoisson(_CountModel):
    """Zero-truncated Poisson: ``P(y) = f(y) / (1 - exp(-mu))`` for ``y >= 1`` (statsmodels'
    ``TruncatedLFPoisson(truncation=0)``, Stata's ``tpoisson``). ``predict`` gives
    ``E[y | y > 0]``; ``which="mean-main"`` the untruncated ``mu``.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 10)
      >>> counts = np.array([1, 2, 1, 1, 3, 2, 4, 2, 5, 6])
      >>> res = mj.models.TruncatedPoisson().fit(x, counts)
      >>> [round(float(b), 3) for b in res.coef]
      [0.549, 1.238]
      >>> [round(float(m), 3) for m in res.predict(np.array([0.0]), which="mean-main")]
      [1.731]
    """

    intercept: bool = True
    kind = "trunc"

    def describe(self) -> str:
        return "Zero-truncated Poisson regression (log link)"


@dataclasses.dataclass(frozen=True)
class TruncatedNegativeBinomial(_CountModel):
    """Zero-truncated NB2: ``P(y) = f(y) / (1 - (1 + alpha mu)^(-1/alpha))``, ``y >= 1``
    (statsmodels' ``TruncatedLFNegativeBinomialP(truncation=0, p=2)``, Stata's ``tnbreg``).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 10)
      >>> counts = np.array([1, 6, 1, 1, 9, 2, 12, 2, 15, 7])
      >>> res = mj.models.TruncatedNegativeBinomial().fit(x, counts)
      >>> res.param_names, round(float(res.params["alpha"]), 3)
      (('const', 'x1', 'alpha'), 0.938)
    """

    intercept: bool = True
    kind = "trunc"
    count = "negbin"

    def describe(self) -> str:
        return "Zero-truncated negative binomial (NB2) regression (log link)"


@dataclasses.dataclass(frozen=True)
class ZeroInflatedPoisson(_ZeroInflated):
    """Zero-inflated Poisson: a structural zero with probability ``w = logistic(Z gamma)``,
    else Poisson with mean ``exp(X beta + offset)``; ``Z`` is the keyword ``exog_infl``
    (default a constant). statsmodels' ``ZeroInflatedPoisson(inflation="logit")``.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> counts = np.array([0, 0, 1, 0, 3, 0, 4, 0, 6, 5, 0, 9])
      >>> res = mj.models.ZeroInflatedPoisson().fit(x, counts)
      >>> res.param_names
      ('inflate_const', 'const', 'x1')
      >>> [round(float(p), 3) for p in res.predict(np.array([0.0]), which="prob-zero")]
      [0.443]
    """

    intercept: bool = True

    def describe(self) -> str:
        return "Zero-inflated Poisson regression (logit inflation)"


@dataclasses.dataclass(frozen=True)
class ZeroInflatedNegativeBinomial(_ZeroInflated):
    """Zero-inflated NB2 (``alpha > 0``) with logit inflation on ``exog_infl``
    (statsmodels' ``ZeroInflatedNegativeBinomialP(p=2)``).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> counts = np.array([0, 0, 1, 0, 3, 0, 5, 0, 2, 9, 0, 4])
      >>> res = mj.models.ZeroInflatedNegativeBinomial().fit(x, counts)
      >>> res.param_names, round(float(res.params["alpha"]), 3)
      (('inflate_const', 'const', 'x1', 'alpha'), 0.181)
    """

    intercept: bool = True
    count = "negbin"

    def describe(self) -> str:
        return "Zero-inflated negative binomial (NB2) regression (logit inflation)"


@dataclasses.dataclass(frozen=True)
class HurdlePoisson(_Hurdle):
    """Hurdle Poisson: ``P(y = 0)`` from the zero model (``zero_dist``: ``"poisson"``, the
    default, as statsmodels' ``HurdleCountModel`` and pscl's ``zero.dist="poisson"``;
    ``"negbin"``; ``"logit"``), positive counts zero-truncated Poisson.

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> counts = np.array([0, 0, 1, 0, 3, 0, 4, 2, 6, 5, 0, 9])
      >>> res = mj.models.HurdlePoisson().fit(x, counts)
      >>> res.param_names
      ('zm_const', 'zm_x1', 'const', 'x1')
      >>> [round(float(m), 3) for m in res.predict(np.array([0.0]))]          # E[y]
      [1.606]
    """

    intercept: bool = True
    zero_dist: str = "poisson"

    def describe(self) -> str:
        return f"Hurdle Poisson regression ({self.zero_dist} zero model)"


@dataclasses.dataclass(frozen=True)
class HurdleNegativeBinomial(_Hurdle):
    """Hurdle NB2: the zero model as :class:`HurdlePoisson` (``zero_dist``), positive counts
    zero-truncated NB2 (statsmodels' ``HurdleCountModel(dist="negbin")``).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 12)
      >>> counts = np.array([0, 0, 1, 0, 3, 0, 7, 1, 2, 9, 0, 14])
      >>> res = mj.models.HurdleNegativeBinomial().fit(x, counts)
      >>> res.param_names
      ('zm_const', 'zm_x1', 'const', 'x1', 'alpha')
    """

    intercept: bool = True
    zero_dist: str = "poisson"
    count = "negbin"

    def describe(self) -> str:
        return f"Hurdle negative binomial (NB2) regression ({self.zero_dist} zero model)"
