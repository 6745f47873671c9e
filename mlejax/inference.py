"""Inference on a fit: robust errors, Wald and profile-likelihood intervals, the delta method,
likelihood-ratio tests and the bootstrap, for single fits and batches of fits alike.

Everything here starts from a :class:`~mlejax.FitResult` and its ``context`` (the log-likelihood,
the data, the weights and the static settings of the fit), so it can recompute scores and refit.
Every refit runs the fit's own solver on the one driver loop (``_engine.solve_one``), warm-started
at the estimate; many refits (all profile endpoints of all parameters, all bootstrap replicates,
and all of them for every fit of a batch) are one ``vmap``-ed, jit-compiled program, cached per
static configuration so that a second call with same-shaped inputs does not recompile.

The pieces:

* :func:`robust_cov`: the sandwich ``A^-1 B A^-1`` with ``A = -H`` the observed information and
  ``B`` the outer product of the per-observation scores (HC0), or of their cluster sums
  (``groups=``, with the small-sample factor of Stata and statsmodels: ``G/(G-1) (N-1)/(N-k)``
  for a ``mj.fit`` result and the least-squares models, ``G/(G-1)`` for the other
  ``mj.models``). It also takes a model's ``RegressionResult``.
* :func:`confint`: Wald intervals (observed or robust covariance) or profile-likelihood
  intervals: the points where ``2 (loglik_max - loglik_profile) = chi2_1(level)``, found by a
  safeguarded Newton search on the signed root of the profile deviance, each trial point a
  refit of the other parameters.
* :func:`profile`: the profile curve of one parameter on a grid (for plotting).
* :func:`delta`: the delta method for any function of the parameters, by autodiff.
* :func:`lrt`: the likelihood-ratio test between nested fits.
* :func:`bootstrap`: nonparametric (resampled observations or clusters, as weights) or
  parametric (``sample_fn``) refits, with percentile, basic and normal intervals.

Quantiles and p-values are computed in JAX (``jax.scipy.special.ndtri``, ``gammaincc``).

This module holds the public names only; the code lives in :mod:`mlejax._inference`, one module
per concept (``common``, ``robust``, ``intervals``, ``profile``, ``confint``, ``delta``, ``lrt``,
``bootstrap``). Importing it registers the FitResult conveniences (``res.confint``,
``res.cov_robust``, ``res.stderr_robust``, ``res.delta``, ``summary(cov=, ci=)``) with
:func:`mlejax.result.provide`.
"""


from mlejax._inference.bootstrap import BootstrapResult, bootstrap
from mlejax._inference.confint import confint
from mlejax._inference.delta import DeltaResult, delta
from mlejax._inference.intervals import ConfidenceIntervals, EndpointStatus
from mlejax._inference.lrt import LRTResult, lrt
from mlejax._inference.profile import ProfileCurve, profile
from mlejax._inference.robust import resolve_cov as _resolve_cov
from mlejax._inference.robust import robust_cov, robust_stderr
from mlejax.result import provide as _provide

__all__ = [
    "BootstrapResult",
    "ConfidenceIntervals",
    "DeltaResult",
    "EndpointStatus",
    "LRTResult",
    "ProfileCurve",
    "bootstrap",
    "confint",
    "delta",
    "lrt",
    "profile",
    "robust_cov",
]
# Also public here, outside __all__ as before: robust_stderr (res.stderr_robust).

_provide("robust_cov", robust_cov)
_provide("robust_stderr", robust_stderr)
_provide("confint", confint)
_provide("delta", delta)
_provide("resolve_cov", _resolve_cov)
