"""Built-in distributions: fit any common distribution in one line, one or K datasets at once.

Each distribution in the registry carries

* its log-density (per observation, written with ``jax.scipy.stats`` / ``jax.scipy.special``),
* one constraint per parameter (``mj.positive``, ``mj.unit_interval``, ``mj.simplex`` ...),
* a data-driven starting point (the method of moments, or a robust variant of it),
* the closed-form maximum-likelihood estimate where one exists (for the gamma, the root of
  its one-dimensional score equation from the sufficient statistics), used as the starting
  point (so Newton already sits at the optimum and only the observed information is
  computed) or, for the non-regular families (uniform, Laplace, Pareto), as the estimate
  itself,
* a sampler ``sample(key, params, shape)`` for the parametric bootstrap,
* host-side checks: data outside the support and data for which the MLE sits on the boundary
  of the parameter space (constant data, under-dispersed counts, an unobserved category) raise
  a ``ValueError`` that names the problem and the fix, before anything is compiled.

``fit_distribution(x, name)`` fits ``x`` of shape ``(n,)`` (``(n, d)`` for the multivariate
normal), or ``K`` datasets at once from ``(K, n)`` (``(K, n, d)``) through :func:`mlejax.fit_batch`
(one compiled program; ragged datasets through ``weights`` with zeros for the padding).
``fixed={"df": 5}`` holds any parameter at a given value; the result's ``params`` then hold
the free parameters only (those whose ``stderr`` and ``cov`` are reported).

The log-likelihood functions are created once per (distribution, fixed names) and cached, so a
second fit of same-shaped data reuses the compiled program.
"""

from __future__ import annotations

from mlejax._distributions.compare import DistributionComparison, compare_distributions
from mlejax._distributions.family import Distribution
from mlejax._distributions.fitting import bootstrap_sampler, fit_distribution
from mlejax._distributions.registry import DISTRIBUTIONS, get

__all__ = [
    "Distribution",
    "bootstrap_sampler",
    "DistributionComparison",
    "DISTRIBUTIONS",
    "compare_distributions",
    "fit_distribution",
    "get",
]
