"""multistart: a two-component 1-D normal mixture fitted directly, from R random starts.

Five parameters (the weight ``w`` of the first component, two means, two standard
deviations), n = 2,000 observations, R = 16 and 256 starts. mlejax ``fit(restarts=R)``
(the R starts as one compiled program; on CPU in cache-sized blocks of starts, see
``mlejax._blocks``) against a loop of scipy L-BFGS-B (NumPy
log-likelihood with its analytic gradient, the way a SciPy user writes it) and optax L-BFGS
and optimistix BFGS under vmap. Every method starts from the same R points, drawn by the
same ``init(key)`` from the keys mlejax uses (``split(split(key)[0], R)``), and the peers
work on ``(logit w, mu1, mu2, log s1, log s2)``. mlejax runs L-BFGS (the subject of the
ratios: the peer's algorithm) in float64, dense BFGS in float64 and float32, and the
trust-region Newton in float64.

Same optimum: every final estimate is scored with one float64 NumPy log-likelihood; the
best value over all methods and starts is the reference, and a start "reaches the best" when
it is within 1e-6 (relative) of it. A method counts when its best start reaches it. The
table reports how many starts of each method reach it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import harness as H

NAME = "multistart"
SIZE_NAME = "R"
DEFAULT_SIZES = (16, 256)
QUICK_SIZES = (16,)
TARGET_SIZE = 256
N_OBS = 2_000
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def make_data(n: int = N_OBS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(size=n) < 0.35
    return np.where(z, rng.normal(-1.0, 0.6, n), rng.normal(1.5, 1.0, n))


def log_add_exp(a, b):
    """``log(exp(a) + exp(b))`` as ``m + log(1 + exp(-|a - b|))``, ``m = max(a, b)``: one
    ``exp`` and one ``log`` per term, no ``log1p``.

    The issue's note: XLA on CPU computes float64 ``log1p`` (inside ``jnp.logaddexp``)
    several times slower than ``exp`` and ``log``; per observation that is most of this
    likelihood's cost (value and gradient of the 256 x 2,000 terms: 16 ms with
    ``jnp.logaddexp`` against 6 ms without). ``log(1 + e)`` instead of ``log1p(e)`` loses
    only what is below rounding of ``m`` (``e <= 1``). Until the fifth session this was
    ``m + log(exp(a - m) + exp(b - m))``, whose second ``exp`` is always ``exp(0)``:
    256 BFGS restarts 270 -> 257 ms (A/B in one process). Every JAX method here uses it;
    the NumPy peer keeps ``np.logaddexp``.
    """
    m = jnp.maximum(a, b)
    d = jnp.where(jnp.isfinite(m), -jnp.abs(a - b), 0.0)   # both -inf: m + log 2 = -inf
    return m + jnp.log(1.0 + jnp.exp(d))


def loglik(params, x):
    """Per-observation log-likelihood (mlejax's form)."""
    a = jnp.log(params["w"]) + jax.scipy.stats.norm.logpdf(x, params["mu1"], params["s1"])
    b = jnp.log1p(-params["w"]) + jax.scipy.stats.norm.logpdf(x, params["mu2"], params["s2"])
    return log_add_exp(a, b)


def make_init(x: np.ndarray):
    m, s = float(np.mean(x)), float(np.std(x))

    def init(key):
        k = jax.random.split(key, 5)
        return {"w": jax.random.uniform(k[0], (), minval=0.05, maxval=0.95),
                "mu1": m + 2 * s * jax.random.normal(k[1]),
                "mu2": m + 2 * s * jax.random.normal(k[2]),
                "s1": s * jnp.exp(jax.random.uniform(k[3], (), minval=-2.0, maxval=1.0)),
                "s2": s * jnp.exp(jax.random.uniform(k[4], (), minval=-2.0, maxval=1.0))}

    return init


def to_theta(p) -> np.ndarray:
    """Natural parameters (arrays of R) to the peers' unconstrained ``(R, 5)``."""
    w = np.asarray(p["w"], np.float64)
    return np.stack([np.log(w) - np.log1p(-w), np.asarray(p["mu1"]), np.asarray(p["mu2"]),
                     np.log(np.asarray(p["s1"])), np.log(np.asarray(p["s2"]))], axis=-1)


def loglik_theta_np(theta, x) -> float:
    """Total log-likelihood at unconstrained ``theta`` (float64 NumPy)."""
    lw, m1, m2, ls1, ls2 = theta
    a = -np.logaddexp(0.0, -lw) - ls1 - _LOG_SQRT_2PI - 0.5 * ((x - m1) / np.exp(ls1)) ** 2
    b = -np.logaddexp(0.0, lw) - ls2 - _LOG_SQRT_2PI - 0.5 * ((x - m2) / np.exp(ls2)) ** 2
    return float(np.sum(np.logaddexp(a, b)))


def _nll_and_grad_np(theta, x):
    lw, m1, m2, ls1, ls2 = theta
    w = 1.0 / (1.0 + np.exp(-lw))
    s1, s2 = np.exp(ls1), np.exp(ls2)
    z1, z2 = (x - m1) / s1, (x - m2) / s2
    a = -np.logaddexp(0.0, -lw) - ls1 - _LOG_SQRT_2PI - 0.5 * z1 * z1
    b = -np.logaddexp(0.0, lw) - ls2 - _LOG_SQRT_2PI - 0.5 * z2 * z2
    ll = np.logaddexp(a, b)
    r1 = np.exp(a - ll)
    r2 = 1.0 - r1
    g = np.array([np.sum(r1 - w), np.sum(r1 * z1 / s1), np.sum(r2 * z2 / s2),
                  np.sum(r1 * (z1 * z1 - 1.0)), np.sum(r2 * (z2 * z2 - 1.0))])
    return -float(np.sum(ll)), -g


def _nll_theta(theta, x):
    """Mean negative log-likelihood at unconstrained ``theta`` (for optax and optimistix)."""
    lw, m1, m2, ls1, ls2 = theta
    a = -jax.nn.softplus(-lw) - ls1 - 0.5 * ((x - m1) / jnp.exp(ls1)) ** 2
    b = -jax.nn.softplus(lw) - ls2 - 0.5 * ((x - m2) / jnp.exp(ls2)) ** 2
    return -jnp.mean(log_add_exp(a, b)) + _LOG_SQRT_2PI


def _optax_program(optax, max_iter=500, tol=1e-8):
    otu = optax.tree_utils
    opt = optax.lbfgs()

    def one(theta0, x):
        fn = lambda t: _nll_theta(t, x)  # noqa: E731
        value_and_grad = optax.value_and_grad_from_state(fn)

        def step(carry):
            t, state = carry
            value, grad = value_and_grad(t, state=state)
            updates, state = opt.update(grad, state, t, value=value, grad=grad, value_fn=fn)
            return optax.apply_updates(t, updates), state

        def cond(carry):
            _, state = carry
            it = otu.tree_get(state, "count")
            err = otu.tree_norm(otu.tree_get(state, "grad"))
            return (it == 0) | ((it < max_iter) & (err >= tol))

        t, state = jax.lax.while_loop(cond, step, (theta0, opt.init(theta0)))
        return t, otu.tree_get(state, "count")

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _optimistix_program(optx, max_steps=500):
    solver = optx.BFGS(rtol=1e-8, atol=1e-8)

    def one(theta0, x):
        sol = optx.minimise(_nll_theta, solver, theta0, x, max_steps=max_steps, throw=False)
        return sol.value, sol.stats["num_steps"]

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def run(r: int, ctx: H.Context) -> list[H.Group]:
    import mlejax as mj

    x = make_data()
    xj = jnp.asarray(x)
    init = make_init(x)
    key = jax.random.key(42)
    cons = {"w": mj.unit_interval, "s1": mj.positive, "s2": mj.positive}
    # The starts mlejax draws (fit.py: the first half of split(key), split into R).
    nat0 = jax.vmap(init)(jax.random.split(jax.random.split(key)[0], r))
    theta0 = to_theta(nat0)
    g = H.Group(NAME, f"R={r}, n={N_OBS:,}, 5 parameters", unit="fit",
                params={"size": r, "R": r, "n": N_OBS, "dtype": "float64"})
    finals = {}   # method -> (R, 5) unconstrained estimates

    # mlejax: L-BFGS (the subject: the peer's own algorithm, one value and gradient per
    # step, the inverse-Hessian scale renewed at every step), dense BFGS in float64 and
    # in float32 (XLA's float64 logaddexp/log1p on CPU are several times slower than
    # float32's; every estimate is scored in float64 below), and the trust-region Newton
    # (exact Hessian) in float64. Until the seventh session the subject was dense BFGS
    # (181 starts reaching the best against L-BFGS's 195, 217 against 199 ms).
    # On CPU the starts run in cache-sized blocks (mlejax._blocks; here one start after
    # another, 16 KB of data each), each stopping on its own, so no start waits for the
    # slowest (median 50 steps, the slowest 140 here) and repack= is not needed (on CPU it
    # is not used; see fit's docstring).
    variants = (("mlejax fit (lbfgs, restarts)", "lbfgs", np.float64, None, True),
                ("mlejax fit (bfgs, restarts)", "bfgs", np.float64, None, False),
                ("mlejax fit (bfgs, restarts, float32)", "bfgs", np.float32, None, False),
                ("mlejax fit (newton, restarts)", "newton", np.float64, None, False))
    for name, method, dtype, repack, subject in variants:
        ctx.log(f"  {NAME} R={r}: {name}")
        xd = jnp.asarray(x, dtype)

        def init_d(k, dtype=dtype):
            return jax.tree_util.tree_map(lambda v: v.astype(dtype), init(k))

        t = H.measure(lambda xd=xd, init_d=init_d, method=method, repack=repack: mj.fit(
            loglik, init_d, xd, constraints=cons, restarts=r, key=key, method=method,
            repack=repack, warn=False), ctx, compiled=True)
        res = t.out
        steps = np.asarray(res.restarts.n_steps)
        g.rows.append(H.Row.from_timing(
            name, "mlejax", t, subject=subject,
            note=f"steps median {np.median(steps):.0f} max {steps.max()}, "
                 f"converged {np.mean(np.asarray(res.restarts.converged)):.0%} of starts"))
        finals[name] = to_theta(res.restarts.params)

    opt = H.optional("scipy.optimize")
    name = "scipy L-BFGS-B loop"
    if opt is None:
        g.rows.append(H.Row(name, "peer", skipped="scipy is not installed"))
    else:
        ctx.log(f"  {NAME} R={r}: {name}")

        def loop():
            with np.errstate(all="ignore"):   # far starts overflow; L-BFGS-B backs off
                return np.stack([opt.minimize(_nll_and_grad_np, th, args=(x,), jac=True,
                                              method="L-BFGS-B").x for th in theta0])

        t, threads = H.measure_peer(loop, ctx)
        g.rows.append(H.Row.from_timing(name, "peer", t, note=f"analytic gradient, {threads}"))
        finals[name] = t.out

    for name, module, build in (("optax L-BFGS under vmap", "optax", _optax_program),
                                ("optimistix BFGS under vmap", "optimistix",
                                 _optimistix_program)):
        mod = H.optional(module)
        if mod is None:
            g.rows.append(H.Row(name, "peer", skipped=f"{module} is not installed"))
            continue
        ctx.log(f"  {NAME} R={r}: {name}")
        prog = build(mod)
        th0 = jnp.asarray(theta0)
        t = H.measure(lambda prog=prog: prog(th0, xj), ctx, compiled=True)
        g.rows.append(H.Row.from_timing(
            name, "peer", t, note=f"steps median {np.median(np.asarray(t.out[1])):.0f}"))
        finals[name] = np.asarray(t.out[0])

    ll = {m: np.array([loglik_theta_np(th, x) for th in v]) for m, v in finals.items()}
    best = max(float(np.nanmax(np.where(np.isfinite(v), v, -np.inf))) for v in ll.values())
    tol = 1e-6 * max(abs(best), 1.0)
    reach = {}
    for row in g.rows:
        if row.method in ll:
            v = ll[row.method]
            n_reach = int(np.sum(np.isfinite(v) & (v >= best - tol)))
            reach[row.method] = n_reach
            row.ok = n_reach >= 1
            row.extra.update(reach_best=n_reach, best_loglik=float(np.nanmax(v)))
            row.note = f"{n_reach}/{r} starts reach the best; " + row.note
    g.check = (f"best log-likelihood over all methods and starts ({best:.6f}); a method counts "
               "when one of its starts is within 1e-6 relative of it")
    sc = g.row("scipy L-BFGS-B loop")
    # The issue's target is the subject's (L-BFGS) ratio; the other methods' are shown
    # against the same threshold for comparison.
    other_method = "another method, for comparison: the issue's target is the lbfgs row"
    if sc is not None and sc.runs:
        sub = g.subject()
        g.targets.append(H.Target("vs scipy L-BFGS-B loop (lbfgs, float64)",
                                  g.ratios(sc).get("speedup"), ">=", 4))
        dense = g.row("mlejax fit (bfgs, restarts)")
        if dense is not None and dense.runs:
            g.targets.append(H.Target("vs scipy L-BFGS-B loop (bfgs, float64)",
                                      g.per_unit(sc) / g.per_unit(dense), ">=", 4,
                                      note=other_method))
        f32 = g.row("mlejax fit (bfgs, restarts, float32)")
        if f32 is not None and f32.runs and sc.runs:
            g.targets.append(H.Target("vs scipy L-BFGS-B loop (bfgs, float32)",
                                      g.per_unit(sc) / g.per_unit(f32), ">=", 4,
                                      note=other_method))
        g.targets.append(H.Target(
            "starts reaching the best: mlejax - scipy",
            float(reach[sub.method] - reach[sc.method]), ">=", 0, unit="starts"))
    return [g]
