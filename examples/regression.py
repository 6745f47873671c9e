"""Regression as maximum likelihood: linear (Gaussian) and logistic (Bernoulli).

Linear regression with normal errors: the MLE of beta is the least-squares solution and the
MLE of sigma^2 is RSS / n (not RSS / (n - p)). Logistic regression: the Bernoulli MLE, checked
against statsmodels' Logit (estimates and standard errors), when statsmodels is installed.
Both are written as custom log-likelihoods for mj.fit, then fitted again with the built-in
mj.models.Linear / mj.models.Logistic, which give the same answer.

Run:  python examples/regression.py [--n 500] [--p 3]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import mlejax as mj


def linear_loglik(params, data):
    """Per-observation log-density of y ~ N(X beta, sigma^2)."""
    X, y = data
    return jax.scipy.stats.norm.logpdf(y, X @ params["beta"], params["sigma"])


def logistic_loglik(params, data):
    """Per-observation Bernoulli log-likelihood with P(y = 1) = sigmoid(X beta)."""
    X, y = data
    eta = X @ params["beta"]
    return y * eta - jnp.logaddexp(0.0, eta)   # log sigmoid(eta) if y else log sigmoid(-eta)


def design(key, n, p):
    """An intercept column and p standard-normal covariates."""
    return jnp.column_stack([jnp.ones(n), jax.random.normal(key, (n, p))])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="observations")
    ap.add_argument("--p", type=int, default=3, help="covariates (plus an intercept)")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)   # examples may; the library never does
    n, p = args.n, args.p
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    beta_true = jnp.linspace(-1.0, 1.0, p + 1)

    # ---------------------------------------------------------------- 1. linear regression
    X = design(k1, n, p)
    y = X @ beta_true + 0.7 * jax.random.normal(k2, (n,))
    res = mj.fit(linear_loglik, {"beta": jnp.zeros(p + 1), "sigma": 1.0}, (X, y),
                 constraints={"sigma": mj.positive})
    print("Linear regression, y = X beta + N(0, sigma^2), by mj.fit:")
    print(res.summary(), "\n")

    Xn, yn = np.asarray(X), np.asarray(y)
    beta_ls, rss, *_ = np.linalg.lstsq(Xn, yn, rcond=None)
    rss = float(rss[0]) if np.size(rss) else float(np.sum((yn - Xn @ beta_ls) ** 2))
    beta_ml = np.asarray(res.params["beta"])
    s2_ml = float(res.params["sigma"]) ** 2
    print("least squares (numpy lstsq) vs the Gaussian MLE:")
    print(f"  {'':10} {'lstsq':>14} {'mlejax':>14} {'|difference|':>13}")
    for j in range(p + 1):
        print(f"  {'beta[' + str(j) + ']':10} {beta_ls[j]:>14.10f} {beta_ml[j]:>14.10f} "
              f"{abs(beta_ls[j] - beta_ml[j]):>13.2e}")
    print(f"  {'sigma^2':10} {rss / n:>14.10f} {s2_ml:>14.10f} {abs(rss / n - s2_ml):>13.2e}"
          f"   (RSS/n; the unbiased RSS/(n-p-1) = {rss / (n - p - 1):.10f})")
    se_ols = np.sqrt(np.diag(rss / n * np.linalg.inv(Xn.T @ Xn)))
    print(f"  standard errors: MLE sigma^2 (X'X)^-1 gives {np.round(se_ols, 6)}; "
          f"mlejax {np.round(np.asarray(res.stderr['beta']), 6)}")
    lin = mj.models.Linear().fit(X[:, 1:], y)   # the built-in model adds the constant itself
    print(f"  mj.models.Linear: coef max |difference| to lstsq "
          f"{np.max(np.abs(np.asarray(lin.coef) - beta_ls)):.2e}, sigma "
          f"{float(lin.params['sigma']):.10f}\n")

    # -------------------------------------------------------------- 2. logistic regression
    Xb = design(k3, n, p)
    yb = jax.random.bernoulli(k4, jax.nn.sigmoid(Xb @ beta_true)).astype(Xb.dtype)
    res = mj.fit(logistic_loglik, {"beta": jnp.zeros(p + 1)}, (Xb, yb))
    print("Logistic regression, y ~ Bernoulli(sigmoid(X beta)), by mj.fit:")
    print(res.summary(), "\n")
    est, se = np.asarray(res.params["beta"]), np.asarray(res.stderr["beta"])
    try:
        import statsmodels.api as sm
    except ImportError:
        print("statsmodels is not installed: the comparison with statsmodels Logit is skipped.")
    else:
        sm_res = sm.Logit(np.asarray(yb), np.asarray(Xb)).fit(disp=0, method="newton",
                                                             tol=1e-12, maxiter=100)
        print("statsmodels Logit vs the Bernoulli MLE:")
        print(f"  {'':8} {'sm coef':>13} {'mlejax':>13} {'|diff|':>9} "
              f"{'sm stderr':>11} {'mlejax':>11} {'|diff|':>9}")
        for j in range(p + 1):
            print(f"  {'beta[' + str(j) + ']':8} {sm_res.params[j]:>13.9f} {est[j]:>13.9f} "
                  f"{abs(sm_res.params[j] - est[j]):>9.1e} {sm_res.bse[j]:>11.8f} "
                  f"{se[j]:>11.8f} {abs(sm_res.bse[j] - se[j]):>9.1e}")
        print(f"  loglik: statsmodels {sm_res.llf:.10f}, mlejax {float(res.loglik):.10f} "
              f"(difference {abs(sm_res.llf - float(res.loglik)):.1e})")
    logit = mj.models.Logistic().fit(Xb[:, 1:], yb)
    print(f"  mj.models.Logistic: coef max |difference| to mj.fit "
          f"{np.max(np.abs(np.asarray(logit.coef) - est)):.2e}, stderr max |difference| "
          f"{np.max(np.abs(np.asarray(logit.stderr['beta']) - se)):.2e}")


if __name__ == "__main__":
    main()
