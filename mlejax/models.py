"""Built-in regression models: one line to fit, ``fit_batch`` for K datasets at once.

    >>> res = mj.models.Logistic().fit(X, y)            # X (n, d) or a DataFrame, y (n,)
    >>> res = mj.models.Logistic().fit_batch(Xs, ys)    # (K, n, d), (K, n)
    >>> print(res.summary()); res.predict(X_new)

Design-matrix models; each prepends a ``const`` column unless ``X`` has a constant column
(``intercept=False`` turns this off) and takes ``weights=`` (frequency weights), ``offset=``
and, for the log links, ``exposure=``:

- GLMs (``mlejax/_models/glm.py``): ``Linear``, ``Logistic``, ``Probit``, ``Poisson``,
  ``NegativeBinomial`` (NB2), ``Binomial`` (successes out of ``trials=``; logit, probit,
  cloglog, log and cauchit links), ``Gamma`` (inverse, log, identity), ``InverseGaussian``,
  ``Tweedie`` (1 < power < 2, the compound Poisson-gamma density); the dispersion families take
  ``var_weights=`` as statsmodels' GLM does, and ``cov_type="expected"`` gives the Fisher
  information's standard errors (R's ``glm`` and ``glm.nb``).
- Counts (``counts.py``): ``NegativeBinomial1``, ``GeneralizedPoisson``, ``TruncatedPoisson``,
  ``TruncatedNegativeBinomial``, ``ZeroInflatedPoisson``, ``ZeroInflatedNegativeBinomial``
  (inflation design ``exog_infl=``), ``HurdlePoisson``, ``HurdleNegativeBinomial``.
- Categorical (``categorical.py``): ``MultinomialLogit`` (baseline category),
  ``OrderedLogit``, ``OrderedProbit`` (increasing cut-points); ``predict`` gives the
  category probabilities.
- Robust (``robust.py``): ``StudentT``.

Any fit takes ``fixed={"alpha": 1.0}`` (or a mask) to hold parameters at given values.
``Nonlinear(f)`` (``mlejax/_models/nonlinear.py``) fits ``y = f(x, b) + N(0, sigma^2)`` and adds
the Gauss-Newton standard errors. Every fit returns a :class:`RegressionResult`.

From a formula and a data frame (formulaic, ``pip install "mlejax[formula]"``):

    >>> res = mj.models.Poisson.from_formula("y ~ x1 + C(group) + np.log(x2)", df).fit()
    >>> res.to_frame()                                  # the coefficient table, a DataFrame
    >>> res.predict(new_df)                             # new rows encoded as in the fit
"""

from __future__ import annotations

from mlejax._models.base import Model, RegressionResult, SeparationWarning
from mlejax._models.categorical import MultinomialLogit, OrderedLogit, OrderedProbit
from mlejax._models.counts import (GeneralizedPoisson, HurdleNegativeBinomial, HurdlePoisson,
                                   NegativeBinomial1, TruncatedNegativeBinomial,
                                   TruncatedPoisson, ZeroInflatedNegativeBinomial,
                                   ZeroInflatedPoisson)
from mlejax._models.formula import FormulaModel
from mlejax._models.glm import (Binomial, Gamma, InverseGaussian, Linear, Logistic,
                                NegativeBinomial, Poisson, Probit, Tweedie)
from mlejax._models.nonlinear import Nonlinear
from mlejax._models.robust import StudentT

__all__ = [
    "Binomial",
    "FormulaModel",
    "Gamma",
    "GeneralizedPoisson",
    "HurdleNegativeBinomial",
    "HurdlePoisson",
    "InverseGaussian",
    "Linear",
    "Logistic",
    "Model",
    "MultinomialLogit",
    "NegativeBinomial",
    "NegativeBinomial1",
    "Nonlinear",
    "OrderedLogit",
    "OrderedProbit",
    "Poisson",
    "Probit",
    "RegressionResult",
    "SeparationWarning",
    "StudentT",
    "TruncatedNegativeBinomial",
    "TruncatedPoisson",
    "Tweedie",
    "ZeroInflatedNegativeBinomial",
    "ZeroInflatedPoisson",
]
