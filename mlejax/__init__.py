"""mlejax: maximum-likelihood estimation for any JAX log-likelihood.

Write ``loglik_fn(params, data)`` in JAX; ``mj.fit`` maximises it with trust-region Newton,
quasi-Newton or any optax optimiser, handles constraints by transforms, runs restarts and
batches of fits as one compiled program, and reports standard errors from the observed
information.
"""

from mlejax.constraints import (
    Constraint,
    Interval,
    Ordered,
    Positive,
    PositiveDefinite,
    PositiveSumBelow,
    Real,
    Simplex,
    constraint,
    interval,
    ordered,
    positive,
    positive_definite,
    positive_sum_below,
    real,
    simplex,
    unit_interval,
)
from mlejax import batching, distributed
from mlejax.batching import Ragged, Stream, ragged
from mlejax._fit import fit, fit_batch
from mlejax.methods import BFGS, LBFGS, Gradient, Method, Newton
from mlejax._warnings import FitWarning
from mlejax import cache
from mlejax.cache import enable_compilation_cache
from mlejax.em import em
from mlejax.kmeans import KMeansResult, kmeans
from mlejax.mixture import BernoulliMixture, GaussianMixture, MixtureResult, PoissonMixture
from mlejax.inference import (
    BootstrapResult,
    ConfidenceIntervals,
    DeltaResult,
    EndpointStatus,
    LRTResult,
    ProfileCurve,
    bootstrap,
    confint,
    delta,
    lrt,
    profile,
    robust_cov,
)
from mlejax.result import FitResult, RandomEffectsResult
from mlejax.random_effects import RandomEffects
from mlejax.status import Status
from mlejax import distributions, models
from mlejax import anneal, optima, penalties
from mlejax.optima import Optima
from mlejax.distributions import compare_distributions, fit_distribution

__version__ = "0.1.0"

__all__ = [
    # built-in distributions and regression models
    "compare_distributions",
    "distributions",
    "fit_distribution",
    "models",
    # inference
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
    # non-convex fits: the optima map, penalties, annealing
    "Optima",
    "anneal",
    "optima",
    "penalties",
    # random effects (Laplace marginal likelihood)
    "RandomEffects",
    "RandomEffectsResult",
    # mixtures and EM
    "BernoulliMixture",
    "GaussianMixture",
    "KMeansResult",
    "MixtureResult",
    "PoissonMixture",
    "em",
    "kmeans",
    # core
    "BFGS",
    "Gradient",
    "LBFGS",
    "Method",
    "Newton",
    "cache",
    "enable_compilation_cache",
    "Constraint",
    "FitResult",
    "FitWarning",
    "Interval",
    "Ordered",
    "Positive",
    "PositiveDefinite",
    "PositiveSumBelow",
    "Ragged",
    "Real",
    "Simplex",
    "Status",
    "Stream",
    "batching",
    "constraint",
    "distributed",
    "fit",
    "fit_batch",
    "interval",
    "ordered",
    "positive",
    "positive_definite",
    "positive_sum_below",
    "ragged",
    "real",
    "simplex",
    "unit_interval",
]
