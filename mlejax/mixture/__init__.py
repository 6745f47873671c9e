"""Finite mixtures fitted by EM: Gaussian (four covariance types), Bernoulli and Poisson.

A mixture of ``k`` components has the joint log-density

    log p(x_i, z_i = j) = log pi_j + log f(x_i | theta_j),

and each model supplies that ``(n, k)`` array and the closed-form M-step; the EM iterations
run on the generic engine (:mod:`mlejax.em`), so the observed-data log-likelihood recorded in
``trace`` never decreases. ``n_init`` starts run as one vmapped program and the best is kept;
``fit_batch`` fits ``K`` datasets (each with its ``n_init`` starts) in one program.

Gaussian components (``GaussianMixture``):

* ``"full"``: one ``(d, d)`` covariance per component; ``"tied"``: one ``(d, d)`` covariance
  shared by all; ``"diag"``: one ``(d,)`` vector of variances per component;
  ``"spherical"``: one variance per component.
* M-step, with ``n_j = sum_i r_ij + 10 eps``: ``pi_j = n_j / sum_l n_l``,
  ``mu_j = sum_i r_ij x_i / n_j``, ``Sigma_j = sum_i r_ij (x_i - mu_j)(x_i - mu_j)^T / n_j
  + reg_covar I`` (the diagonal of it for "diag", its mean for "spherical", pooled over
  components for "tied"). ``reg_covar`` keeps a collapsing component (one point, or points
  on a line) positive definite, as in scikit-learn; such a component is reported in
  ``degenerate`` and warned about.
* Log-densities through the Cholesky factor ``L`` of each covariance:
  ``log N(x | mu, LL^T) = -(d log 2 pi)/2 - sum log L_aa - ||L^-1 (x - mu)||^2 / 2``, the
  triangular system solved with the data as right-hand side (no inverse is formed).

Starts (``init_params``): ``"kmeans"`` (greedy k-means++ seeding then Lloyd's iterations;
responsibilities are the hard assignments), ``"k-means++"`` (the seeding only, each point
assigned to its nearest seed; scikit-learn's option of that name starts from the seeds alone),
``"random"`` (uniform random responsibilities, normalised); the first M-step turns them into
parameters. User-given ``init`` values replace the corresponding parameters of that start.

References:
  McLachlan & Peel (2000), Finite Mixture Models. Bishop (2006), Pattern Recognition and
  Machine Learning, ch. 9. scikit-learn's ``GaussianMixture`` documentation (the
  ``reg_covar`` convention and parameter counts this follows).

The package, one concept a module: ``_result`` (:class:`MixtureResult`: predictions,
standard errors), ``_base`` (what a mixture supplies, the starts, ``fit``/``fit_batch``),
``_engine`` (EM from each start, the best of them, batches in blocks), ``_gaussian`` and
``_discrete`` (the families and their M-steps), ``_optima`` (the optima map of a
mixture's starts, :func:`mlejax.optima.find`).
"""

from mlejax import optima
from mlejax.mixture._discrete import BernoulliMixture, PoissonMixture
from mlejax.mixture._gaussian import GaussianMixture, gaussian_logpdf
from mlejax.mixture._optima import find_mixture_optima
from mlejax.mixture._result import MixtureResult

__all__ = ["BernoulliMixture", "GaussianMixture", "MixtureResult", "PoissonMixture",
           "gaussian_logpdf"]

optima.register(MixtureResult, find_mixture_optima)   # mj.optima.find(res, x) of a mixture

