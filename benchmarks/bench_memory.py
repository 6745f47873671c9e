"""Peak memory of a streamed ``fit_batch`` over K logistic regressions read from disk.

Issue 7's promise: peak memory depends on the chunk size, not on K. K = 1,000,000 small
logistic regressions read from a NumPy memmap run with a flat memory profile, and the
proof is that the peak RSS for K = 10,000 and K = 1,000,000 differs by less than 20%.

What it does:

1. Writes (or reuses, see ``--dir``) one dataset file pair on disk for the largest K:
   ``X.npy`` of shape (K, n, d) (a column of ones, then d - 1 standard normal covariates)
   and ``y.npy`` of shape (K, n) (Bernoulli draws from a logistic model with coefficients
   drawn per dataset), float64 unless ``--float32``. It is written in blocks, so this
   process's memory stays flat too. Smaller K read the first K datasets of the same files.
2. For each K, starts a fresh Python process that opens the files with
   ``np.load(..., mmap_mode="r")`` and runs
   ``mj.fit_batch(loglik, init, (X, y), datasets_per_chunk=C, out=DIR)`` (the results written
   to disk as each chunk finishes; ``--results ram`` keeps them in host memory instead). The
   process first fits one chunk (compilation; not part of the timed run), then times the
   whole stream. A thread samples ``VmRSS`` (with its anonymous and file-backed parts) from
   ``/proc/self/status`` throughout, so the flatness of the profile is visible; the peak
   is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process (all of its life:
   import, compilation, the run), which counts file-backed pages mapped from the memmap
   as well as the process's own memory.
3. Prints a table per K (peak RSS, RSS along the run, wall time, fits/s, converged share)
   and the ratio of the peak RSS of the largest K to that of the smallest: PASS when they
   differ by less than 20%.

Run:  python benchmarks/bench_memory.py [--ks 10000,1000000] [--chunk-size 10000] [--n 200]
      [--d 6] [--float32] [--results disk|ram] [--dir DIR] [--keep] [--json out.json]
      [--quick]

``--dir`` keeps the data files there (and reuses them on the next run when they hold at
least the K asked for with the same n, d and dtype); without it they go to a temporary
directory removed at the end. K = 1,000,000 at n = 200, d = 6 in float64 is 11.2 GB on disk
(5.6 GB with ``--float32``); the free space is checked first. Figures measured on the
development machine: benchmarks/RESULTS.md, section "Memory".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

CRITERION = 0.20  # peak RSS of the largest K within 20% of the smallest's
BLOCK = 20_000    # datasets written per block when the data are generated


# --------------------------------------------------------------------------------------
# Data on disk.

def _data_meta(k, n, d, dtype):
    return {"k": int(k), "n": int(n), "d": int(d), "dtype": np.dtype(dtype).name, "seed": 0}


def data_bytes(k, n, d, dtype) -> int:
    return int(k) * int(n) * (int(d) + 1) * np.dtype(dtype).itemsize


def make_data(folder: str, k: int, n: int, d: int, dtype) -> dict:
    """X.npy (k, n, d) and y.npy (k, n) in ``folder``, written block by block; reused
    when ``folder`` already holds at least ``k`` datasets of the same n, d and dtype."""
    meta_path = os.path.join(folder, "meta.json")
    want = _data_meta(k, n, d, dtype)
    if os.path.exists(meta_path):
        with open(meta_path) as fh:
            have = json.load(fh)
        if have["k"] >= k and all(have[f] == want[f] for f in ("n", "d", "dtype", "seed")):
            return {"reused": True, "seconds": 0.0, "k_on_disk": have["k"]}
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    t0 = time.perf_counter()
    X = np.lib.format.open_memmap(os.path.join(folder, "X.npy"), mode="w+", dtype=dtype,
                                  shape=(k, n, d))
    y = np.lib.format.open_memmap(os.path.join(folder, "y.npy"), mode="w+", dtype=dtype,
                                  shape=(k, n))
    for lo in range(0, k, BLOCK):
        hi = min(lo + BLOCK, k)
        rng = np.random.default_rng([0, lo])  # the same data whatever the largest K
        x = rng.standard_normal((hi - lo, n, d - 1))
        beta = rng.normal(scale=0.5, size=(hi - lo, d))
        eta = beta[:, None, 0] + np.einsum("knd,kd->kn", x, beta[:, 1:])
        X[lo:hi, :, 0] = 1.0
        X[lo:hi, :, 1:] = x
        y[lo:hi] = rng.uniform(size=(hi - lo, n)) < 1.0 / (1.0 + np.exp(-eta))
        X.flush()
        y.flush()
        _drop_mapped_pages(X)  # keep this process's footprint flat while writing 11 GB
        _drop_mapped_pages(y)
    del X, y
    with open(meta_path, "w") as fh:
        json.dump(want, fh)
    return {"reused": False, "seconds": time.perf_counter() - t0, "k_on_disk": k}


def _drop_mapped_pages(mm) -> None:
    import mmap

    raw = getattr(mm, "_mmap", None)
    if raw is not None and hasattr(raw, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        raw.madvise(mmap.MADV_DONTNEED)


# --------------------------------------------------------------------------------------
# The measured process.

def _status_kb() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


class Sampler(threading.Thread):
    """Samples the process's resident set every ``interval`` seconds."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []  # (t, rss, anon, file) in kB
        self.t0 = time.perf_counter()
        self._halt = threading.Event()

    def sample(self):
        s = _status_kb()
        self.samples.append((time.perf_counter() - self.t0, s.get("VmRSS", 0),
                             s.get("RssAnon", 0), s.get("RssFile", 0)))

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()
        self.sample()


def child(spec: dict) -> dict:
    """Runs in a fresh interpreter: one streamed fit_batch over the first K datasets."""
    import resource

    sampler = Sampler(spec["interval"])
    sampler.start()
    t_start = time.perf_counter()
    import jax

    if spec["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import mlejax as mj

    def logistic_loglik(params, data):
        X, y = data
        eta = X @ params["beta"]
        return y * eta - jnp.logaddexp(0.0, eta)

    k, cs = spec["k"], spec["chunk_size"]
    X = np.load(os.path.join(spec["data"], "X.npy"), mmap_mode="r")[:k]
    y = np.load(os.path.join(spec["data"], "y.npy"), mmap_mode="r")[:k]
    init = {"beta": np.zeros(X.shape[2], X.dtype)}
    out_dir = spec["out"]

    # Compile on one chunk (the same program as the run's: same chunk shape).
    t0 = time.perf_counter()
    warm = mj.fit_batch(logistic_loglik, init, (X[:cs], y[:cs]), datasets_per_chunk=cs,
                       warn=False)
    np.asarray(warm.status)
    compile_s = time.perf_counter() - t0
    del warm
    rss_before = _status_kb()["VmRSS"]

    t_fit0 = time.perf_counter() - sampler.t0
    t0 = time.perf_counter()
    res = mj.fit_batch(logistic_loglik, init, (X, y), datasets_per_chunk=cs, warn=False,
                       **({"out": out_dir} if out_dir else {}))
    wall = time.perf_counter() - t0
    t_fit1 = time.perf_counter() - sampler.t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_after = _status_kb()["VmRSS"]
    sampler.stop()

    status = np.asarray(res.status)
    steps = np.asarray(res.n_steps)
    on_disk = None
    if out_dir:
        on_disk = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    during = [s for s in sampler.samples if t_fit0 <= s[0] <= t_fit1]
    return {
        "k": k, "chunk_size": cs, "results": "disk" if out_dir else "ram",
        "peak_rss_mb": peak_kb / 1024.0,
        "rss_before_fit_mb": rss_before / 1024.0, "rss_after_fit_mb": rss_after / 1024.0,
        "wall_s": wall, "fits_per_s": k / wall, "compile_s": compile_s,
        "process_s": time.perf_counter() - t_start,
        "converged": float(np.mean(status == 0)), "median_steps": float(np.median(steps)),
        "max_steps": int(steps.max()), "results_on_disk_mb": None if on_disk is None
        else on_disk / 2**20,
        "fit_window_s": [t_fit0, t_fit1],
        "timeline": [[round(t, 3), rss / 1024.0, anon / 1024.0, file / 1024.0]
                     for t, rss, anon, file in sampler.samples],
        "during_fit_mb": {"min": min(s[1] for s in during) / 1024.0 if during else None,
                          "max": max(s[1] for s in during) / 1024.0 if during else None,
                          "max_file": max(s[3] for s in during) / 1024.0 if during else None},
        "device": str(jax.devices()[0]), "jax": jax.__version__,
    }


# --------------------------------------------------------------------------------------
# The parent: data, one child per K, the report.

def _profile(r: dict, points: int = 8) -> str:
    """RSS (MB) at evenly spaced moments of the fit window."""
    t0, t1 = r["fit_window_s"]
    tl = [s for s in r["timeline"] if t0 <= s[0] <= t1]
    if not tl:
        return "(run shorter than the sampling interval)"
    picks = [tl[min(len(tl) - 1, round(i * (len(tl) - 1) / (points - 1)))]
             for i in range(points)]
    return " ".join(f"{s[1]:.0f}" for s in picks)


def run_child(spec: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the measured process for K={spec['k']} failed "
                           f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ks", default=None, help="comma-separated K (default 10000,1000000)")
    ap.add_argument("--chunk-size", type=int, default=None, help="default 2000")
    ap.add_argument("--n", type=int, default=None, help="observations per dataset (200)")
    ap.add_argument("--d", type=int, default=6, help="columns including the intercept")
    ap.add_argument("--float32", action="store_true", help="float32 data and fits")
    ap.add_argument("--results", choices=("disk", "ram"), default="disk",
                    help="disk: fit_batch(out=DIR) (the flat-memory path; default); "
                         "ram: results assembled in host memory")
    ap.add_argument("--dir", default=None, help="where the data files go (kept, reused)")
    ap.add_argument("--keep", action="store_true", help="keep the result files")
    ap.add_argument("--interval", type=float, default=None, help="RSS sampling period, s")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes (K 1000 and 10000, n 40, d 3, chunks of 500): checks "
                         "that the benchmark runs, not the criterion")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return {}

    if args.quick:
        ks = [int(k) for k in (args.ks or "1000,10000").split(",")]
        n, cs, d = args.n or 40, args.chunk_size or 500, 3 if args.d == 6 else args.d
    else:
        ks = [int(k) for k in (args.ks or "10000,1000000").split(",")]
        n, cs, d = args.n or 200, args.chunk_size or 2_000, args.d
    dtype = np.float32 if args.float32 else np.float64
    interval = args.interval or (0.05 if args.quick else 0.25)
    k_max = max(ks)
    need = data_bytes(k_max, n, d, dtype)

    tmp = None
    folder = args.dir
    if folder is None:
        tmp = tempfile.mkdtemp(prefix="mlejax_bench_memory_")
        folder = tmp
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    print(f"bench_memory: K={','.join(f'{k:,}' for k in ks)}, n={n}, d={d} (intercept "
          f"included), {np.dtype(dtype).name}, datasets_per_chunk={cs:,}, results to "
          f"{args.results}")
    print(f"  data: {need / 1e9:.2f} GB for K={k_max:,} in {folder} "
          f"({free / 1e9:.1f} GB free)")
    try:
        reuse = os.path.exists(os.path.join(folder, "meta.json"))
        if need * 1.05 > free and not reuse:
            raise SystemExit(f"not enough free disk space in {folder}: need {need / 1e9:.1f} "
                             f"GB; use --dir elsewhere, --float32 or a smaller K.")
        made = make_data(folder, k_max, n, d, dtype)
        print("  data: " + ("reused" if made["reused"] else
                            f"written in {made['seconds']:.1f} s"))
        rows = []
        for k in ks:
            out_dir = None
            if args.results == "disk":
                out_dir = os.path.join(folder, f"results_K{k}")
                shutil.rmtree(out_dir, ignore_errors=True)
            spec = {"k": k, "chunk_size": min(cs, k), "data": folder, "out": out_dir,
                    "dtype": np.dtype(dtype).name, "interval": interval}
            r = run_child(spec)
            if out_dir and not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)
            rows.append(r)
            print(f"  K={k:>9,}: peak RSS {r['peak_rss_mb']:7.0f} MB (before the run "
                  f"{r['rss_before_fit_mb']:.0f}, during {r['during_fit_mb']['min'] or 0:.0f}"
                  f"-{r['during_fit_mb']['max'] or 0:.0f}, of it file-backed at most "
                  f"{r['during_fit_mb']['max_file'] or 0:.0f}); run {r['wall_s']:.1f} s, "
                  f"{r['fits_per_s']:,.0f} fits/s (compile {r['compile_s']:.1f} s); "
                  f"converged {r['converged']:.1%}, steps median {r['median_steps']:.0f} "
                  f"max {r['max_steps']}"
                  + (f"; results on disk {r['results_on_disk_mb']:.0f} MB"
                     if r["results_on_disk_mb"] is not None else ""), flush=True)
            print(f"      RSS (MB) along the run: {_profile(r)}", flush=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    small = min(rows, key=lambda r: r["k"])
    big = max(rows, key=lambda r: r["k"])
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    ok = abs(ratio - 1.0) < CRITERION
    print(f"  peak RSS K={big['k']:,} / K={small['k']:,}: {ratio:.3f} "
          f"({(ratio - 1) * 100:+.1f}%): {'PASS' if ok else 'FAIL'} "
          f"(criterion: less than {CRITERION:.0%} apart)")
    report = {
        "benchmark": "memory", "ks": ks, "n": n, "d": d, "dtype": np.dtype(dtype).name,
        "chunk_size": cs, "results": args.results, "runs": rows, "ratio": ratio,
        "pass": bool(ok), "criterion": CRITERION,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return report


if __name__ == "__main__":
    main()
