"""The benchmark suite: every workload of issue 6, one table, JSON, a chart.

    python -m benchmarks [--quick] [--only NAME[,NAME]] [--sizes 1000,10000] [--repeats 5]
                         [--json out.json] [--plot out.png] [--device cpu|gpu]
                         [--results-md benchmarks/RESULTS.md]
    mlejax bench ...                      # the same (mlejax/cli.py)

Workloads (``--sizes`` sets the size named in brackets):

    batch_logistic [K]   K logistic regressions, n = 200, d = 6
    big_logistic   [n]   one logistic regression, d = 20
    gmm            [n]   one 5-component Gaussian mixture in 2-D, 100 EM iterations; and
                         K = 1,000 small mixtures (K = 20 with --quick)
    multistart     [R]   a two-component 1-D normal mixture fitted directly from R starts
    stragglers     [K]   K easy logistic fits of which 1% start far away
    latency        [n]   a fresh process: import, first fit, second fit
    zoo            [n]   ten custom likelihoods, each a fresh process: first and second
                         call, XLA compilations counted, persistent cache off and warm
    nist           [P]   the first P of the 27 NIST StRD problems, both starts
    mixed          [G]   random effects by the Laplace approximation: a logistic GLMM of G
                         groups x 5 (peak memory in a fresh process); a linear mixed model
                         of 1,000 groups x 10 against statsmodels MixedLM (50 with --quick);
                         K = 1,000 small GLMMs by fit_batch (K = 20 with --quick)

Each workload first checks that every method reached the same optimum (a method that did
not is marked and its ratio does not count), then times it: the median and range of
``--repeats`` runs after the compiling call, compilation apart. Peers that are not
installed are reported as skipped. Float64 throughout (x64 is enabled here, by the
application, never by the library), except latency and zoo, whose fresh processes keep
JAX's defaults. Results and how they were produced: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
import traceback

from . import harness as H

WORKLOADS = ("batch_logistic", "big_logistic", "gmm", "multistart", "stragglers", "latency",
             "nist", "zoo", "mixed")


def workload(name: str):
    """The module of a workload (imported on demand: one missing peer never breaks another)."""
    return importlib.import_module(f"{__package__}.workloads.{name}")


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The suite's options (shared by ``python -m benchmarks`` and ``mlejax bench``)."""
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes and few repeats: proves the suite runs (about a minute "
                         "per workload at most; the figures mean little)")
    ap.add_argument("--only", default=None, metavar="NAME[,NAME]",
                    help=f"run only these workloads (of: {', '.join(WORKLOADS)})")
    ap.add_argument("--sizes", default=None, metavar="S[,S]",
                    help="sizes of the workloads run (K, n, R or P, see above); "
                         "default: each workload's own")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per method after the compiling call (default 5; 3 with "
                         "--quick); a slow peer stops repeating after --budget seconds")
    ap.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                    help="stop repeating a method once its runs took this long (default 30; "
                         "5 with --quick)")
    ap.add_argument("--peer-threads", choices=("auto", "default", "1"), default="auto",
                    help="BLAS/OpenMP threads of the NumPy/SciPy peers: 'auto' (default) "
                         "tries the libraries' default and one thread and times the faster; "
                         "'default' or '1' forces one")
    ap.add_argument("--device", choices=("cpu", "gpu"), default=None,
                    help="JAX device for mlejax and the JAX peers (default: JAX's default)")
    ap.add_argument("--json", default=None, metavar="PATH",
                    help="write everything (machine, versions, device, rows, targets) here")
    ap.add_argument("--plot", default=None, metavar="PATH",
                    help="draw a chart (needs matplotlib)")
    ap.add_argument("--results-md", default=None, metavar="PATH",
                    help=f"write the run (UTC date, command, machine, versions, device), the "
                         f"table and the targets into this Markdown file between "
                         f"{H.MD_BEGIN} and {H.MD_END} (inserted after its first heading "
                         f"when absent); the rest of the file is kept. The full run that "
                         f"benchmarks/RESULTS.md opens with: --results-md benchmarks/RESULTS.md")
    return ap


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(ap)


def _names(only: str | None) -> list[str]:
    if not only:
        return list(WORKLOADS)
    names = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"--only: unknown workload(s) {unknown}; choose from "
                         f"{', '.join(WORKLOADS)}.")
    return names


def _sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        sizes = [int(float(s.replace("_", ""))) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--sizes must be comma-separated integers (e.g. 1000,10000); "
                         f"got {text!r}.") from None
    if not sizes or min(sizes) < 1:
        raise SystemExit(f"--sizes must be positive integers; got {text!r}.")
    return sizes


def _device_scope(device: str | None):
    import jax

    if device is None:
        return contextlib.nullcontext()
    try:
        dev = jax.devices(device)[0]
    except RuntimeError as e:
        raise SystemExit(f"--device {device}: JAX finds no such device here ({e}). "
                         "Install jax with GPU support, or use --device cpu.") from None
    return jax.default_device(dev)


def _place_targets(mod, groups: list[H.Group]) -> None:
    """Keep the targets of the groups at the issue's size (or, if that size was not run, the
    largest one run, with a note); targets at other sizes would say nothing new."""
    with_t = [g for g in groups if g.targets]
    if not with_t or not hasattr(mod, "TARGET_SIZE"):
        return
    sizes = {g.params.get("size", 0) for g in with_t}
    keep = mod.TARGET_SIZE if mod.TARGET_SIZE in sizes else max(sizes)
    for g in with_t:
        if g.params.get("size", 0) != keep:
            g.targets = []
        elif keep != mod.TARGET_SIZE:
            for t in g.targets:
                t.note = (t.note + "; " if t.note else "") + \
                    f"defined at {mod.SIZE_NAME}={mod.TARGET_SIZE:,}; measured at " \
                    f"{mod.SIZE_NAME}={keep:,}"


def run(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    """Runs the suite for parsed ``args``; prints the table; returns the JSON report."""
    import jax

    jax.config.update("jax_enable_x64", True)
    started = time.perf_counter()
    names = _names(args.only)
    sizes = _sizes(args.sizes)
    ctx = H.Context(repeats=args.repeats or (3 if args.quick else 5), quick=args.quick,
                    budget_s=args.budget or (5.0 if args.quick else 30.0),
                    device=args.device or jax.default_backend(),
                    peer_threads=args.peer_threads)
    if args.repeats is not None and args.repeats < 1:
        raise SystemExit("--repeats must be at least 1.")
    groups: list[H.Group] = []
    errors: dict = {}
    with _device_scope(args.device):
        for name in names:
            mod = workload(name)
            todo = sizes or list(mod.QUICK_SIZES if args.quick else mod.DEFAULT_SIZES)
            ctx.log(f"[{name}] sizes {todo} ({mod.SIZE_NAME})")
            mine = []
            for size in todo:
                try:
                    mine += mod.run(int(size), ctx)
                except (ImportError, FileNotFoundError, ValueError, RuntimeError,
                        MemoryError) as e:
                    # One workload failing must not lose the others' figures: record it,
                    # print it, and go on; the exit status says it happened.
                    errors[f"{name}:{size}"] = f"{type(e).__name__}: {e}"
                    ctx.log(traceback.format_exc())
            _place_targets(mod, mine)
            groups += mine
    report = H.report_dict(groups, argv=list(sys.argv if argv is None else argv),
                           started=started, errors=errors)
    report["quick"] = bool(args.quick)
    m = report["machine"]
    print(f"\nmlejax benchmark suite{' (--quick: tiny sizes)' if args.quick else ''}: "
          f"{m['cpu']} x{m['cpu_count']}, {', '.join(m['devices'])}, jax "
          f"{report['versions']['jax']}, load average {m['loadavg']}, "
          f"{time.strftime('%Y-%m-%d')}\n")
    table = H.format_table(groups)
    print(table)
    if errors:
        print("\nErrors (these workloads did not finish):")
        for k, v in errors.items():
            print(f"- {k}: {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
        print(f"\nJSON written to {args.json}")
    if args.plot:
        msg = H.plot(groups, args.plot)
        print(f"\n{msg}" if msg else f"\nchart written to {args.plot}")
    if args.results_md:
        H.write_marked(args.results_md, H.markdown_report(report, table))
        print(f"\nresults written to {args.results_md}, between {H.MD_BEGIN} and {H.MD_END}")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = run(args, argv=["python", "-m", "benchmarks"] + list(
        sys.argv[1:] if argv is None else argv))
    return 1 if report["errors"] else 0
