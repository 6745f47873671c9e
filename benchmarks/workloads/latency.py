"""latency: a fresh Python process imports mlejax and fits a 2-parameter normal model.

Each run is a new interpreter (``sys.executable``) that times, with ``time.perf_counter``
from just before ``import jax``: importing jax, importing mlejax, the first ``mj.fit``
(compilation plus the fit) and a second ``mj.fit`` on other data of the same shapes. Two
settings: JAX's persistent compilation cache off, and on and warm (a priming run fills a
fresh cache folder first). The data are NumPy arrays, so no JAX random-number program is
compiled on the way; JAX's defaults otherwise (float32, as a new user gets them).

Same optimum: each process checks its fits against the closed form (mean and the standard
deviation with divisor n, to 1e-4 relative in float32) and reports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import harness as H

NAME = "latency"
SIZE_NAME = "n"
DEFAULT_SIZES = (1_000,)
QUICK_SIZES = (1_000,)
TARGET_SIZE = 1_000

CHILD = r"""
import sys, time
t0 = time.perf_counter()
import jax
t1 = time.perf_counter()
import mlejax as mj
t2 = time.perf_counter()
import json
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
x1 = (3.0 + 2.0 * rng.normal(size=n)).astype(np.float32)
x2 = (1.0 + 0.5 * rng.normal(size=n)).astype(np.float32)

def loglik(params, x):
    return jax.scipy.stats.norm.logpdf(x, params["mu"], params["sigma"])

t3 = time.perf_counter()
r1 = mj.fit(loglik, {"mu": 0.0, "sigma": 1.0}, x1, constraints={"sigma": mj.positive})
jax.block_until_ready(r1.params)
t4 = time.perf_counter()
r2 = mj.fit(loglik, {"mu": 0.0, "sigma": 1.0}, x2, constraints={"sigma": mj.positive})
jax.block_until_ready(r2.params)
t5 = time.perf_counter()
ok = all(abs(float(r.params["mu"]) - x.mean()) <= 1e-4 * abs(x.mean())
         and abs(float(r.params["sigma"]) - x.std()) <= 1e-4 * x.std()
         and bool(r.converged) for r, x in ((r1, x1), (r2, x2)))
print("LATENCY " + json.dumps({"import_jax": t1 - t0, "import_mlejax": t2 - t1,
                               "first_fit": t4 - t3, "second_fit": t5 - t4, "ok": ok,
                               "backend": jax.default_backend()}))
"""


def _child(n: int, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, capture_output=True,
                         text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("LATENCY "):
            return json.loads(line[len("LATENCY "):])
    raise RuntimeError(f"the latency subprocess failed (exit {out.returncode}):\n"
                       f"{out.stderr[-2000:]}")


def _env(ctx: H.Context, cache_dir: str | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "JAX_ENABLE_COMPILATION_CACHE", "JAX_ENABLE_X64"))}
    root = str(Path(__file__).resolve().parents[2])   # so the child imports this mlejax
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = {"gpu": "cuda", "cpu": "cpu"}.get(ctx.device, "")
    if not env["JAX_PLATFORMS"]:
        del env["JAX_PLATFORMS"]
    if cache_dir is None:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    else:
        env.update(JAX_COMPILATION_CACHE_DIR=cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def run(n: int, ctx: H.Context) -> list[H.Group]:
    g = H.Group(NAME, f"fresh process, normal model, n={n:,}", unit="process", compare=False,
                params={"size": n, "n": n, "dtype": "float32 (JAX default)"})
    reps = max(ctx.repeats, 2)
    ctx.log(f"  {NAME}: {reps} fresh processes without a persistent cache")
    cold = [_child(n, _env(ctx, None)) for _ in range(reps)]
    with tempfile.TemporaryDirectory(prefix="mlejax-bench-cache-") as cache:
        ctx.log(f"  {NAME}: priming a persistent cache, then {reps} fresh processes")
        _child(n, _env(ctx, cache))
        warm = [_child(n, _env(ctx, cache)) for _ in range(reps)]

    def row(method, role, runs, ok=None, subject=False, note=""):
        return H.Row(method, role, runs=runs, ok=ok, subject=subject, note=note)

    ok_cold = all(r["ok"] for r in cold)
    ok_warm = all(r["ok"] for r in warm)
    g.rows += [
        row("import jax + mlejax + first fit, no cache", "mlejax",
            [r["import_jax"] + r["import_mlejax"] + r["first_fit"] for r in cold], ok_cold,
            subject=True,
            note=f"first fit alone {sorted(r['first_fit'] for r in cold)[reps // 2]:.2f} s"),
        row("import jax + mlejax + first fit, warm cache", "mlejax",
            [r["import_jax"] + r["import_mlejax"] + r["first_fit"] for r in warm], ok_warm,
            note=f"first fit alone {sorted(r['first_fit'] for r in warm)[reps // 2]:.2f} s"),
        row("import mlejax (after jax)", "mlejax", [r["import_mlejax"] for r in cold]),
        row("second fit, same shapes", "mlejax", [r["second_fit"] for r in cold + warm],
            ok_cold and ok_warm),
        row("floor: import jax alone", "floor", [r["import_jax"] for r in cold]),
    ]
    g.check = ("every fit equals the closed-form mean and standard deviation (1e-4 relative, "
               "float32) and reports convergence")
    med = {r.method: r.median for r in g.rows}
    g.targets += [
        H.Target("import + first fit, no cache", med["import jax + mlejax + first fit, no cache"],
                 "<=", 2.5, unit="s"),
        H.Target("import + first fit, warm cache",
                 med["import jax + mlejax + first fit, warm cache"], "<=", 1.5, unit="s"),
        H.Target("second call", med["second fit, same shapes"], "<=", 0.010, unit="s"),
    ]
    return [g]
