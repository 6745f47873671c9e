"""The ``mlejax`` command line: ``mlejax <command> [options]``.

Each command is one entry of ``COMMANDS``: a function that adds the command's subparser
and sets ``func`` (``args -> exit status``) on it. Adding a command means writing those two
functions and listing the first; ``main`` only parses and dispatches.

Commands:
  bench   the benchmark suite of ``benchmarks/`` (see ``mlejax bench --help``); it lives in
          the source checkout, so it needs an editable install (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable

__all__ = ["COMMANDS", "build_parser", "main"]


# ------------------------------------------------------------------------------- bench
def _bench_suite():
    """``benchmarks.suite`` from the checkout this mlejax was imported from, or None."""
    root = Path(__file__).resolve().parents[1]
    if (root / "benchmarks" / "suite.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("benchmarks.suite")
    except ImportError:
        return None


def _bench_run(args: argparse.Namespace) -> int:
    suite = _bench_suite()
    if suite is None:
        print("mlejax bench: the benchmark suite is the benchmarks/ folder of the source "
              "checkout, which this installation does not have. Run it from a clone: "
              "git clone <mlejax repository> && cd mlejax && pip install -e '.[bench]' && "
              "mlejax bench", file=sys.stderr)
        return 2
    report = suite.run(args, argv=["mlejax"] + list(args.argv))
    return 1 if report["errors"] else 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    suite = _bench_suite()
    p = sub.add_parser(
        "bench", help="run the benchmark suite against the peers and the machine's floor",
        description=None if suite is None else suite.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if suite is not None:
        suite.add_arguments(p)
    p.set_defaults(func=_bench_run)


# ------------------------------------------------------------------------------- dispatch
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "bench": _add_bench,
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="mlejax", description="Maximum-likelihood estimation in JAX: command line tools.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlejax`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "func", None) is None:
        ap.print_help()
        return 2
    args.argv = argv
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
