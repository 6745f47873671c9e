"""Random effects by the Laplace approximation: a GLMM and an overdispersed Poisson model.

The joint log-density of the data and the random effects, log p(y | u, theta) + log p(u |
theta), is written as an ordinary log-likelihood whose parameters hold both; mj.fit(...,
random=mj.RandomEffects(["u"], grouped=True)) maximises the marginal likelihood of theta
with u integrated out by the Laplace approximation (TMB's method; lme4's glmer with nAGQ = 1).

1. A random-intercept logistic regression, logit P(y_gj = 1) = b0 + b1 x_gj + u_g,
   u_g ~ N(0, sd^2): the summary, the first random effects (conditional modes, standard
   errors), and two independent looks at the approximation: the exact marginal likelihood
   at mlejax's estimate, one scipy.integrate.quad per group (the Laplace vs exact gap), and
   mlejax's own adaptive Gauss-Hermite quadrature with 15 nodes (nodes=15, lme4's nAGQ).
2. A Poisson model with overdispersion, a random effect per observation: log mu_i = X_i b
   + e_i, e_i ~ N(0, s^2) (grouped=True with as many groups as observations): the
   estimates beside the true values, and the Laplace marginal of a few observations beside
   the exact one by quad.

Run:  python examples/mixed_model.py [--groups 100] [--per-group 6] [--n 300] [--show 5]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, special, stats

import mlejax as mj


def logistic_joint(params, data):
    """Joint log-density of a random-intercept logistic regression (a scalar)."""
    x, y, g = data
    eta = params["b0"] + params["b1"] * x + params["u"][g]
    return (jnp.sum(y * eta - jnp.logaddexp(0.0, eta))
            + jnp.sum(jax.scipy.stats.norm.logpdf(params["u"], 0.0, params["sd"])))


def logistic_joint_by_group(params, data):
    """The same joint, one value per group (what adaptive Gauss-Hermite quadrature needs):
    each group's observations summed by jax.ops.segment_sum, plus its own prior term."""
    x, y, g = data
    u = params["u"]
    eta = params["b0"] + params["b1"] * x + u[g]
    obs = jax.ops.segment_sum(y * eta - jnp.logaddexp(0.0, eta), g, num_segments=u.shape[0])
    return obs + jax.scipy.stats.norm.logpdf(u, 0.0, params["sd"])


def poisson_joint(params, data):
    """Poisson log-likelihood with a normal random effect per observation, plus its density."""
    X, y = data
    eta = X @ params["b"] + params["e"]
    return (jnp.sum(y * eta - jnp.exp(eta) - jax.scipy.special.gammaln(y + 1.0))
            + jnp.sum(jax.scipy.stats.norm.logpdf(params["e"], 0.0, params["s"])))


def exact_log_marginal(f, mode):
    """log of the integral of exp(f(u)) over the real line, by scipy.integrate.quad: the
    integrand is taken relative to its value at the mode (no overflow), over the whole line."""
    f0 = f(mode)
    with np.errstate(over="ignore"):   # far in the tails exp(eta) overflows: f = -inf there
        val, _ = integrate.quad(lambda u: np.exp(f(u) - f0), -np.inf, np.inf, epsabs=0.0,
                                epsrel=1e-12, limit=200)
    return f0 + np.log(val)


def group_logistic(y, eta_fixed, sd):
    """f_g(u): one group's joint log-density (NumPy), for quad."""
    def f(u):
        eta = eta_fixed + u
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)) + stats.norm.logpdf(u, 0.0, sd))
    return f


def logistic_part(args, rng):
    G, m = args.groups, args.per_group
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    truth = {"b0": -0.5, "b1": 1.0, "sd": 1.0}
    u_true = truth["sd"] * rng.normal(size=G)
    eta = truth["b0"] + truth["b1"] * x + u_true[g]
    y = (rng.uniform(size=G * m) < special.expit(eta)).astype(np.float64)
    data = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(g))
    init = {"b0": 0.0, "b1": 0.0, "u": jnp.zeros(G), "sd": 1.0}
    cons = {"sd": mj.positive}

    res = mj.fit(logistic_joint, init, data, random=mj.RandomEffects(["u"], grouped=True),
                 constraints=cons)
    print(f"1. Random-intercept logistic regression, {G} groups x {m} observations, by the "
          f"Laplace approximation:")
    print(res.summary(), "\n")
    mode = np.asarray(res.random.mode["u"])
    se = np.asarray(res.random.stderr["u"])
    cse = np.asarray(res.random.cond_stderr["u"])
    b0, b1, sd = (float(res.params[k]) for k in ("b0", "b1", "sd"))

    # Each group's exact log-marginal at mlejax's estimate, and its Laplace value
    # f_g(mode) + log(2 pi) / 2 - log(A_g) / 2 = f_g(mode) + log(2 pi) / 2 + log(cond_stderr).
    exact = np.empty(G)
    laplace = np.empty(G)
    for j in range(G):
        sel = g == j
        f = group_logistic(y[sel], b0 + b1 * x[sel], sd)
        exact[j] = exact_log_marginal(f, mode[j])
        laplace[j] = f(mode[j]) + 0.5 * np.log(2 * np.pi) + np.log(cse[j])

    k = min(args.show, G)
    print(f"the first {k} random effects at the estimate (true value; conditional mode, its "
          f"standard error with the estimate's uncertainty, the conditional sd given it), and "
          f"each group's log-marginal, Laplace vs exact (quad):")
    print(f"  {'group':>5} {'true u':>8} {'mode':>8} {'stderr':>8} {'cond sd':>8} "
          f"{'Laplace':>12} {'exact':>12} {'gap':>9}")
    for j in range(k):
        print(f"  {j:>5} {u_true[j]:>8.3f} {mode[j]:>8.3f} {se[j]:>8.3f} {cse[j]:>8.3f} "
              f"{laplace[j]:>12.6f} {exact[j]:>12.6f} {laplace[j] - exact[j]:>9.2e}")
    total_exact = float(np.sum(exact))
    print(f"  mlejax's loglik (Laplace) {float(res.loglik):.8f} = the groups' Laplace values "
          f"summed {np.sum(laplace):.8f} (difference {abs(float(res.loglik) - np.sum(laplace)):.1e})")
    print(f"  exact marginal at the same estimate (quad, {G} integrals) {total_exact:.8f}: "
          f"Laplace - exact = {float(res.loglik) - total_exact:.2e} "
          f"(largest gap in one group {np.max(np.abs(laplace - exact)):.1e})\n")

    n = args.nodes
    if n > 1:   # 0 or 1: no quadrature fit
        agq = mj.fit(logistic_joint_by_group, init, data, constraints=cons,
                     random=mj.RandomEffects(["u"], grouped=True, nodes=n))
        a = {k: float(agq.params[k]) for k in ("b0", "b1", "sd")}
        exact_agq = sum(
            exact_log_marginal(group_logistic(y[g == j], a["b0"] + a["b1"] * x[g == j], a["sd"]),
                               float(agq.random.mode["u"][j])) for j in range(G))
        print(f"Laplace (nodes=1) vs adaptive Gauss-Hermite with {n} nodes (close to the exact "
              "marginal likelihood):")
        print(f"  {'':8} {'Laplace':>12} {f'AGQ({n})':>12} {'difference':>11} {'true':>7}")
        for name in ("b0", "b1", "sd"):
            lap, q = float(res.params[name]), a[name]
            print(f"  {name:8} {lap:>12.6f} {q:>12.6f} {lap - q:>11.2e} {truth[name]:>7.2f}")
        print(f"  {'stderr b1':8} {float(res.stderr['b1']):>12.6f} {float(agq.stderr['b1']):>12.6f}")
        print(f"  loglik: Laplace {float(res.loglik):.8f}, AGQ({n}) {float(agq.loglik):.8f}; "
              f"exact at the AGQ estimate (quad) {exact_agq:.8f}: AGQ - exact = "
              f"{float(agq.loglik) - exact_agq:.1e}\n")


def poisson_part(args, rng):
    n = args.n
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    b_true, s_true = np.array([1.0, 0.5]), 0.6
    e_true = s_true * rng.normal(size=n)
    y = rng.poisson(np.exp(X @ b_true + e_true)).astype(np.float64)
    data = (jnp.asarray(X), jnp.asarray(y))
    init = {"b": jnp.zeros(2), "e": jnp.zeros(n), "s": 1.0}
    res = mj.fit(poisson_joint, init, data, random=mj.RandomEffects(["e"], grouped=True),
                 constraints={"s": mj.positive})
    print(f"2. Poisson with overdispersion, log mu_i = X_i b + e_i, e_i ~ N(0, s^2), "
          f"n = {n} (one random effect per observation):")
    print(res.summary(), "\n")
    est = np.concatenate([np.asarray(res.params["b"]), [float(res.params["s"])]])
    err = np.concatenate([np.asarray(res.stderr["b"]), [float(res.stderr["s"])]])
    print(f"  {'':6} {'true':>7} {'estimate':>10} {'stderr':>8}")
    for name, t, v, s in zip(("b[0]", "b[1]", "s"), (*b_true, s_true), est, err):
        print(f"  {name:6} {t:>7.3f} {v:>10.4f} {s:>8.4f}")
    naive = np.var(y) / np.mean(y)
    print(f"  (variance / mean of y: {naive:.2f}; a Poisson model without e_i would say 1)")

    b, s = np.asarray(res.params["b"]), float(res.params["s"])
    mode = np.asarray(res.random.mode["e"])
    cse = np.asarray(res.random.cond_stderr["e"])
    def obs_joint(i):
        """f_i(e): observation i's joint log-density (NumPy), for quad."""
        def f(e):
            eta = X[i] @ b + e
            return float(y[i] * eta - np.exp(eta) - special.gammaln(y[i] + 1.0)
                         + stats.norm.logpdf(e, 0.0, s))
        return f

    laplace = np.array([obs_joint(i)(mode[i]) for i in range(n)]) \
        + 0.5 * np.log(2 * np.pi) + np.log(cse)
    exact = np.array([exact_log_marginal(obs_joint(i), mode[i]) for i in range(n)])
    k = min(args.show, n)
    print(f"  the first {k} observations' log-marginal at the estimate, Laplace vs exact (quad):")
    print(f"  {'i':>4} {'y':>4} {'mode e':>8} {'Laplace':>12} {'exact':>12} {'gap':>9}")
    for i in range(k):
        print(f"  {i:>4} {int(y[i]):>4} {mode[i]:>8.3f} {laplace[i]:>12.6f} {exact[i]:>12.6f} "
              f"{laplace[i] - exact[i]:>9.2e}")
    print(f"  all {n}: mlejax's loglik {float(res.loglik):.8f} (their Laplace values summed "
          f"{np.sum(laplace):.8f}), exact (quad) {np.sum(exact):.8f}: Laplace - exact = "
          f"{float(res.loglik) - np.sum(exact):.2e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=100, help="groups of the logistic GLMM")
    ap.add_argument("--per-group", type=int, default=6, help="observations per group")
    ap.add_argument("--n", type=int, default=300, help="observations of the Poisson model")
    ap.add_argument("--show", type=int, default=5, help="groups / observations listed")
    ap.add_argument("--nodes", type=int, default=15,
                    help="Gauss-Hermite nodes of the quadrature fit compared (0: none)")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)   # examples may; the library never does
    rng = np.random.default_rng(0)
    logistic_part(args, rng)
    poisson_part(args, rng)


if __name__ == "__main__":
    main()
