"""Candidate distributions fitted to the same data and ranked by AIC or BIC:
:func:`compare_distributions` and its table, :class:`DistributionComparison`."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from mlejax._distributions.fitting import fit_distribution
from mlejax._distributions.registry import get
from mlejax.status import Status


@dataclasses.dataclass(frozen=True)
class DistributionComparison:
    """Candidate distributions ranked by an information criterion.

    Attributes:
      names: candidate names, best first (by mean criterion over a batch).
      results: name -> FitResult (absent for candidates that could not be fitted).
      errors: name -> why a candidate could not be fitted (support, boundary ...).
      criterion: ``"aic"`` or ``"bic"``.
      values: name -> the criterion (a float, or a (K,) array for a batch).
      best: the best name (for a batch, an array of names, one per dataset).

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> table = mj.compare_distributions(x, ["gamma", "lognormal"])
      >>> type(table).__name__, table.criterion, table.best
      ('DistributionComparison', 'aic', 'gamma')
      >>> {name: round(float(w), 2) for name, w in table.weights().items()}
      {'gamma': 0.58, 'lognormal': 0.42}
    """

    names: tuple[str, ...]
    results: dict
    errors: dict
    criterion: str
    values: dict
    best: Any

    def weights(self) -> dict:
        """Akaike (or Schwarz) weights ``exp(-delta/2) / sum``, per dataset for a batch."""
        ok = [n for n in self.names if n in self.values]
        vals = np.stack([np.asarray(self.values[n], np.float64) for n in ok])
        vals = np.where(np.isfinite(vals), vals, np.inf)
        delta = vals - vals.min(axis=0)
        wts = np.exp(-0.5 * delta)
        wts = wts / wts.sum(axis=0)
        return dict(zip(ok, wts))

    def __str__(self) -> str:
        crit = self.criterion.upper()
        batch = any(np.ndim(v) for v in self.values.values())
        lines = []
        if batch:
            k = next(np.size(v) for v in self.values.values())
            lines.append(f"{'distribution':<20} {'df':>3} {'mean ' + crit:>14} "
                         f"{'mean delta':>11} {'best in':>9} {'converged':>10}")
            ok = [n for n in self.names if n in self.values]
            vals = np.stack([np.asarray(self.values[n], np.float64) for n in ok])
            delta = vals - np.nanmin(vals, axis=0)
            for i, n in enumerate(ok):
                res = self.results[n]
                wins = int(np.sum(np.asarray(self.best) == n))
                conv = float(np.mean(np.asarray(res.converged)))
                lines.append(f"{n:<20} {res.df_model:>3} {np.nanmean(vals[i]):>14.6g} "
                             f"{np.nanmean(delta[i]):>11.4g} {wins:>5}/{k:<3} {conv:>10.1%}")
        else:
            lines.append(f"{'distribution':<20} {'df':>3} {'loglik':>14} {crit:>14} "
                         f"{'delta':>10} {'weight':>8}  status")
            wts = self.weights()
            ok = [n for n in self.names if n in self.values]
            top = min(float(self.values[n]) for n in ok) if ok else np.nan
            for n in ok:
                res = self.results[n]
                v = float(self.values[n])
                lines.append(f"{n:<20} {res.df_model:>3} {float(res.loglik):>14.6g} "
                             f"{v:>14.6g} {v - top:>10.4g} {float(wts[n]):>8.3f}  "
                             f"{Status(int(res.status)).name}")
        for n, why in self.errors.items():
            lines.append(f"{n:<20} not fitted: {why}")
        return "\n".join(lines)


def compare_distributions(x: Any, candidates: Sequence[str], *, criterion: str = "aic",
                          weights: Any = None, fixed: Mapping[str, Mapping] | None = None,
                          n_categories: int | None = None,
                          warn: bool = False) -> DistributionComparison:
    """Fits every candidate to ``x`` and ranks them by AIC (or BIC), fitdistrplus-style.

    Candidates that cannot be fitted to these data (values outside the support, a boundary
    MLE) are listed with the reason rather than aborting the comparison. All candidates
    must be discrete, or all continuous: likelihoods of densities and of probability masses
    are not comparable.

    Args:
      x: ``(n,)`` or ``(K, n)`` data (a batch is ranked per dataset).
      candidates: distribution names, e.g. ``["normal", "gamma", "lognormal", "weibull"]``.
      criterion: ``"aic"`` or ``"bic"``.
      weights: frequency weights, as in :func:`fit_distribution`.
      fixed: per-candidate fixed values, e.g. ``{"student_t": {"df": 5}}``.
      n_categories: passed to a ``"categorical"`` candidate.
      warn: let each fit warn on non-convergence (off by default; the table shows the status).

    Returns:
      A :class:`DistributionComparison`; ``print`` it for the table.

    Example:
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> table = mj.compare_distributions(x, ["gamma", "lognormal"])
      >>> table.best, table.names
      ('gamma', ('gamma', 'lognormal'))
      >>> print(table)
      distribution          df         loglik            AIC      delta   weight  status
      gamma                  2       -25.8307        55.6614          0    0.580  CONVERGED
      lognormal              2       -26.1539        56.3077     0.6463    0.420  CONVERGED
    """
    if criterion not in ("aic", "bic"):
        raise ValueError(f"criterion must be 'aic' or 'bic'; got {criterion!r}.")
    if isinstance(candidates, str) or not len(candidates):
        raise ValueError("candidates must be a non-empty list of distribution names, e.g. "
                         "['normal', 'gamma'].")
    dists = [get(c) for c in candidates]
    kinds = {d.discrete for d in dists}
    if len(kinds) > 1:
        disc = [d.name for d in dists if d.discrete]
        raise ValueError(f"candidates mix discrete {disc} and continuous distributions; their "
                         "log-likelihoods (mass vs density) are not comparable. Compare "
                         "within one kind.")
    fixed = dict(fixed or {})
    unknown = set(fixed) - {d.name for d in dists} - set(candidates)
    if unknown:
        raise ValueError(f"fixed names candidates {sorted(unknown)} that are not in "
                         f"candidates {list(candidates)}.")
    results, errors, values = {}, {}, {}
    for d, c in zip(dists, candidates):
        fx = fixed.get(c, fixed.get(d.name))
        try:
            res = fit_distribution(x, d, fixed=fx, weights=weights, warn=warn,
                                   n_categories=n_categories if d.name == "categorical"
                                   else None)
        except ValueError as err:
            errors[d.name] = str(err)
            continue
        results[d.name] = res
        values[d.name] = np.asarray(res.aic if criterion == "aic" else res.bic)
    if not results:
        raise ValueError("no candidate could be fitted to x:\n" + "\n".join(
            f"  {n}: {e}" for n, e in errors.items()))
    ok = list(results)
    mean_vals = [np.nanmean(np.where(np.isfinite(values[n]), values[n], np.nan))
                 for n in ok]
    order = [ok[i] for i in np.argsort(mean_vals, kind="stable")]
    stack = np.stack([np.where(np.isfinite(values[n]), values[n], np.inf) for n in ok])
    best_idx = np.argmin(stack, axis=0)
    best = np.asarray(ok, dtype=object)[best_idx] if np.ndim(best_idx) else ok[int(best_idx)]
    return DistributionComparison(names=tuple(order), results=results, errors=errors,
                                  criterion=criterion, values=values, best=best)
