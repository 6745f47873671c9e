"""Probes behind issue 20's figures (benchmarks/RESULTS.md): where a first call of a zoo model
goes, and what XLA's compile options change. Each mode is meant for a fresh process.

    python -m benchmarks.zoo_probe programs MODEL        # every XLA program a first call
                                                         # compiles, its time, and the line
                                                         # of mlejax (or the model) behind it
    python -m benchmarks.zoo_probe options MODEL VARIANT # the main program lowered once,
                                                         # compiled with VARIANT's options,
                                                         # then run 7 times (median)
    python -m benchmarks.zoo_probe ab OLD_ROOT [REPS]    # the zoo's first call, the library
                                                         # at OLD_ROOT (e.g. a git archive)
                                                         # against this one, alternating

VARIANT: default, emitters (XLA's classic fusion emitters), emitters+O0 (and LLVM at
optimisation level 0: ``fit._QUICK_COMPILE``), O0.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback

VARIANTS = {"default": {}, "emitters": {"xla_cpu_use_fusion_emitters": False},
            "emitters+O0": {"xla_cpu_use_fusion_emitters": False,
                            "xla_backend_optimization_level": 0},
            "O0": {"xla_backend_optimization_level": 0}}


def programs(model: str) -> None:
    import jax

    import mlejax as mj
    from benchmarks.workloads import zoo

    spec = zoo.BUILDERS[model](1000)
    data = spec["data"](1)

    def on_duration(event, duration, **kw):
        if event.endswith("backend_compile_duration"):
            where = [f"{f.filename.split('/')[-1]}:{f.lineno}" for f in traceback.extract_stack()
                     if "/mlejax/" in f.filename or "zoo" in f.filename][::-1][:3]
            print(f"{kw.get('fun_name')}  {duration:.3f} s  <- {' <- '.join(where)}")

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    call = mj.em if spec.get("em") else mj.fit
    t0 = time.perf_counter()
    res = call(spec["loglik"], spec["init"], data, constraints=spec["constraints"])
    jax.block_until_ready(res.params)
    print(f"first call {time.perf_counter() - t0:.3f} s, load {os.getloadavg()}")


def options(model: str, variant: str) -> None:
    import jax
    import numpy as np

    from benchmarks.workloads import zoo
    from mlejax import _configure, _kernels

    spec = zoo.BUILDERS[model](1000)
    if spec.get("em"):
        raise SystemExit("options: the fit models only (mixreg is fitted by mj.em)")
    jax.jit(lambda x: x + 1).lower(np.float32(1)).compile()   # XLA's one-time start-up
    cfg, start, data, weights, key = _configure.configure(
        spec["loglik"], spec["init"], spec["data"](1), constraints=spec["constraints"],
        weights=None, method="newton", optimizer=None, batch_size=None, max_steps=None,
        gtol=None, ftol=None, restarts=None, key=None, restart_scale=1.0, trace_len=None,
        batched=False, init_batched=False, solver_checks_init=True)
    lowered = _kernels.kernel(cfg, None).trace(start, data, weights, key).lower()
    t0 = time.perf_counter()
    compiled = lowered.compile(VARIANTS[variant])
    compile_s = time.perf_counter() - t0
    out = jax.block_until_ready(compiled(start, data, weights, key))
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(start, data, weights, key))
        runs.append(time.perf_counter() - t0)
    print(json.dumps({"model": model, "variant": variant, "compile_s": compile_s,
                      "run_s": statistics.median(runs), "loglik": float(out.loglik),
                      "steps": int(out.n_steps), "load": os.getloadavg()[0]}))


def ab(old_root: str, reps: int = 2) -> None:
    from benchmarks.workloads import zoo

    trees = [("old", os.path.abspath(old_root)), ("new", zoo.ROOT)]
    for model in zoo.MODELS:
        for r in range(reps):
            for name, root in (trees if r % 2 == 0 else trees[::-1]):
                res = zoo._run_child(model, 1000, dict(os.environ, JAX_PLATFORMS="cpu"), None,
                                     root)
                print(json.dumps({"tree": name, "load": os.getloadavg()[0], **{
                    k: res[k] for k in ("model", "first", "second", "compile_s", "trace_s",
                                        "lower_s", "n_compiled", "ok", "peer_first")}}),
                      flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:] or ["--help"]
    if mode == "programs":
        programs(args[0])
    elif mode == "options":
        options(args[0], args[1])
    elif mode == "ab":
        ab(args[0], int(args[1]) if len(args) > 1 else 2)
    else:
        print(__doc__)
