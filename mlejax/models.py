"""Built-in regression models: one line to fit, ``fit_batch`` for K datasets at once.

    >>> res = mj.models.Logistic().fit(X, y)            # X (n, d) or a DataFrame, y (n,)
    >>> res = mj.models.Logistic().fit_batch(Xs, ys)    # (K, n, d), (K, n)
    >>> print(res.summary()); res.predict(X_new)

Design-matrix models (``mlejax/_models/glm.py``, ``robust.py``): ``Linear``,
``Logistic``, ``Probit``, ``Poisson``, ``NegativeBinomial``, ``Gamma``, ``StudentT``; each
prepends a ``const`` column unless ``X`` has a constant column (``intercept=False`` turns this
off) and takes ``weights=``, ``offset=`` and, for the log links, ``exposure=``.
``Nonlinear(f)`` (``mlejax/_models/nonlinear.py``) fits ``y = f(x, b) + N(0, sigma^2)`` and adds
the Gauss-Newton standard errors. Every fit returns a :class:`RegressionResult`.

From a formula and a data frame (formulaic, ``pip install "mlejax[formula]"``):

    >>> res = mj.models.Poisson.from_formula("y ~ x1 + C(group) + np.log(x2)", df).fit()
    >>> res.to_frame()                                  # the coefficient table, a DataFrame
    >>> res.predict(new_df)                             # new rows encoded as in the fit
"""

from __future__ import annotations

from mlejax._models.base import Model, RegressionResult, SeparationWarning
from mlejax._models.glm import Gamma, Linear, Logistic, NegativeBinomial, Poisson, Probit
from mlejax._models.formula import FormulaModel
from mlejax._models.nonlinear import Nonlinear
from mlejax._models.robust import StudentT

__all__ = [
    "FormulaModel",
    "Gamma",
    "Linear",
    "Logistic",
    "Model",
    "NegativeBinomial",
    "Nonlinear",
    "Poisson",
    "Probit",
    "RegressionResult",
    "SeparationWarning",
    "StudentT",
]
