"""Student-t regression: the outlier-robust alternative to Gaussian maximum likelihood.

``y_i = x_i' beta + offset_i + sigma e_i`` with ``e_i ~ t(df)``. Each observation's weight in
the score is ``(df + 1) / (df + r_i^2)`` (``r_i`` the standardised residual), so a gross
outlier pulls the estimate far less than under the Gaussian, where it enters squared; ``df``
is estimated with ``beta`` and ``sigma``, or held fixed with ``StudentT(df=4)``.

References:
  Lange, Little & Taylor (1989), Robust statistical modeling using the t distribution,
  JASA 84, 881-896.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax.scipy import stats as jst

from mlejax import constraints as C
from mlejax._models.base import Model
from mlejax._models.common import check_exact_fit, wls

__all__ = ["StudentT"]


def student_t_loglik(params, data):
    mu = data["X"] @ params["beta"] + data["offset"]
    return jst.t.logpdf(data["y"], params["df"], mu, params["sigma"])


def student_t_fixed_df_loglik(params, data):
    mu = data["X"] @ params["beta"] + data["offset"]
    return jst.t.logpdf(data["y"], data["df"], mu, params["sigma"])


@dataclasses.dataclass(frozen=True)
class StudentT(Model):
    """Linear regression with Student-t errors (location ``X beta + offset``, scale
    ``sigma``, degrees of freedom ``df`` estimated, or fixed with ``df=``).

    The start is least squares for ``beta``, ``1.4826 * median |residual|`` for ``sigma``
    and ``df = 5``. With Gaussian-looking data the MLE of ``df`` runs to infinity: the fit
    then reports that it did not converge; fix ``df`` (or use :class:`Linear`).

    Example:
      >>> x = np.linspace(-1.0, 1.0, 8)
      >>> y = np.array([-1.1, -0.4, 0.6, 0.3, 1.5, 1.4, 2.6, 3.1])
      >>> res = mj.models.StudentT(df=4).fit(x, y)     # df held at 4; StudentT() estimates it
      >>> res.param_names, [round(float(b), 3) for b in res.coef]
      (('const', 'x1', 'sigma'), [1.027, 2.047])
    """

    intercept: bool = True
    df: float | None = None
    # Cluster-robust errors: G/(G-1), the likelihood models' factor (Model.cluster_correction).

    def __post_init__(self):
        if self.df is not None and not float(self.df) > 0:
            raise ValueError(f"StudentT(df=...) must be > 0 (or None to estimate it); got "
                             f"{self.df}.")

    def describe(self) -> str:
        what = "df estimated" if self.df is None else f"df = {self.df:g} fixed"
        return f"Student-t regression ({what})"

    def constraints(self):
        cons = {"sigma": C.positive}
        if self.df is None:
            cons["df"] = C.positive
        return cons

    def loglik_fn(self):
        return student_t_loglik if self.df is None else student_t_fixed_df_loglik

    def extra_data(self, dtype) -> dict:
        return {} if self.df is None else {"df": jnp.asarray(self.df, dtype)}

    def n_extra_params(self) -> int:
        return 2 if self.df is None else 1

    def start(self, X, y, offset, w):
        beta = wls(X, y - offset, w)
        r = jnp.abs(y - offset - X @ beta)
        # Weighted median of |r| (the weights are frequency weights; 0 marks padding).
        order = jnp.argsort(r)
        cw = jnp.cumsum(w[order])
        mad = r[order][jnp.argmax(cw >= 0.5 * cw[-1])]
        rms = jnp.sqrt(jnp.sum(w * r * r) / jnp.sum(w))
        sigma = jnp.where(mad > 0, 1.4826 * mad, rms)
        out = {"beta": beta}           # statsmodels' TLinearModel order: beta, df, scale
        if self.df is None:
            out["df"] = jnp.asarray(5.0, X.dtype)
        out["sigma"] = sigma
        return out

    def mean(self, params, X, offset):
        return X @ params["beta"] + offset

    def check_separation(self, X, y, inside, names, batched):
        del names
        check_exact_fit(X, y, inside, batched, "the Student-t regression")
