"""stragglers: K easy logistic fits of which 1% start far away and need more steps.

The data of batch_logistic (n = 200, d = 6). Every fit starts at 0 except every 100th, which
starts at ``+-40`` in every coefficient (linear predictors in the hundreds: damped steps,
two to three times as many Newton steps). Three runs of ``fit_batch`` (``init_batched``):

* the floor: the same K fits all started at 0 (no hard fits), one program;
* one program with the hard fits: under one vmap the whole batch runs as long as its
  slowest member; on CPU fit_batch runs the batch in cache-sized blocks
  (mlejax/_blocks.py), and only the blocks holding a hard fit run long;
* ``repack=8``: every 8 steps the fits still running are gathered into a smaller batch
  (mlejax/batching.py) and resumed from their exact state -- where the batch is one block:
  on CPU, where it runs in blocks that each stop with their own fits (in shares on all
  cores), ``fit_batch`` does not re-pack, and this row is the one program again.

Same optimum: ``repack`` gives the one program's estimates exactly (1e-12), and every fit of
the hard batch reaches the log-likelihood of the same dataset fitted from 0 (1e-9 relative).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import harness as H
from . import _logistic as L

NAME = "stragglers"
SIZE_NAME = "K"
DEFAULT_SIZES = (10_000,)
QUICK_SIZES = (500,)
TARGET_SIZE = 10_000
FAR = 40.0
SEGMENT = 8


def run(k: int, ctx: H.Context) -> list[H.Group]:
    import mlejax as mj

    n, d = 200, 6
    rng = np.random.default_rng(0)
    X, y = L.make_data(rng, k, n, d, np.float64)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    hard = np.arange(0, k, 100)
    b_easy = np.zeros((k, d))
    b_hard = b_easy.copy()
    b_hard[hard] = FAR * np.where(np.arange(d) % 2, 1.0, -1.0)
    g = H.Group(NAME, f"K={k:,} ({hard.size} hard), n={n}, d={d}", unit="fit",
                params={"size": k, "K": k, "hard": int(hard.size), "far": FAR,
                        "segment": SEGMENT})

    def fit(b0, **kw):
        return mj.fit_batch(L.logistic_loglik, {"beta": b0}, (Xj, yj), init_batched=True,
                            warn=False, **kw)

    runs = {}
    for name, role, b0, kw in (
            ("floor: no hard fits, one program", "floor", b_easy, {}),
            ("mlejax fit_batch, one program", "mlejax", b_hard, {}),
            (f"mlejax fit_batch, repack={SEGMENT}", "mlejax", b_hard, {"repack": SEGMENT})):
        ctx.log(f"  {NAME} K={k}: {name}")
        t = H.measure(lambda b0=b0, kw=kw: fit(jnp.asarray(b0), **kw), ctx, compiled=True)
        steps = np.asarray(t.out.n_steps)
        row = H.Row.from_timing(
            name, role, t, work=k, subject=kw.get("repack") is not None,
            note=f"steps: easy max {np.delete(steps, hard).max()}, "
                 + (f"hard median {np.median(steps[hard]):.0f} max {steps[hard].max()}"
                    if role != "floor" else f"mean {steps.mean():.1f}"))
        g.rows.append(row)
        runs[name] = t.out

    easy, plain, rep = (runs[r.method] for r in g.rows)
    ll_easy = np.asarray(easy.loglik)
    same_plain = float(np.max(np.abs(np.asarray(rep.params["beta"])
                                     - np.asarray(plain.params["beta"]))))
    for r, res in zip(g.rows[1:], (plain, rep)):
        ll = np.asarray(res.loglik)
        r.ok = bool(np.all(np.abs(ll - ll_easy) <= 1e-9 * np.abs(ll_easy)))
    g.rows[0].ok = True
    g.rows[2].ok = g.rows[2].ok and same_plain <= 1e-12
    g.rows[2].extra["max_abs_diff_vs_plain"] = same_plain
    g.check = ("repack's estimates equal the one program's (max |diff| "
               f"{same_plain:.1e}); every fit's log-likelihood equals that of the same "
               "dataset fitted from 0 (1e-9 relative)")
    g.targets.append(H.Target("repack time / batch without hard fits",
                              g.ratios(g.rows[0]).get("vs_floor"), "<=", 1.5))
    plain_ratio = g.rows[1].median / g.rows[0].median if g.rows[1].runs else None
    g.notes.append(f"one program with the hard fits takes {plain_ratio:.2f}x the batch "
                   "without them" if plain_ratio else "one program not timed")
    return [g]
