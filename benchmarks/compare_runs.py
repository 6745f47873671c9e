"""Two runs of the suite side by side: mlejax's rows before and after a change.

    python -m benchmarks.compare_runs before.json after.json [--markdown]

Each argument is a ``--json`` file of ``python -m benchmarks`` (or several, comma-separated,
for runs made one workload at a time). For every mlejax row present in both runs (same
workload, size and method) it prints the median before and after, their ratio (after /
before: below 1 the change made it faster) and whether the change is within noise: the
after median inside the before run's min-max range or the before median inside the after
run's, or the ratio within ``--noise`` (default 10%). Compile times are compared the same
way. The verdict line counts the rows slower beyond noise.
"""

from __future__ import annotations

import argparse
import json
import sys


def _load(paths: str) -> dict:
    """``(workload, label, method) -> row`` of the mlejax rows of the runs in ``paths``."""
    rows = {}
    for path in paths.split(","):
        with open(path) as f:
            report = json.load(f)
        for group in report["groups"]:
            for row in group["rows"]:
                if row.get("role") == "mlejax" and row.get("median_s"):
                    rows[(group["workload"], group["label"], row["method"])] = row
    return rows


def _fmt(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1.0 else f"{s:.2f} s"


def within_noise(before: dict, after: dict, noise: float) -> bool:
    """Whether the two medians differ by no more than the runs' own spread (or ``noise``)."""
    b, a = before["median_s"], after["median_s"]
    if abs(a / b - 1.0) <= noise:
        return True
    in_before = before.get("min_s") is not None and before["min_s"] <= a <= before["max_s"]
    in_after = after.get("min_s") is not None and after["min_s"] <= b <= after["max_s"]
    return in_before or in_after


def compare(before: dict, after: dict, noise: float) -> tuple[list[list[str]], int]:
    """The table's rows and the number of rows slower beyond noise."""
    lines, slower = [], 0
    for key in sorted(set(before) & set(after)):
        b, a = before[key], after[key]
        ratio = a["median_s"] / b["median_s"]
        same = within_noise(b, a, noise)
        verdict = "within noise" if same else ("faster" if ratio < 1 else "SLOWER")
        slower += verdict == "SLOWER"
        bc, ac = b.get("compile_s"), a.get("compile_s")
        lines.append([key[0], key[1], key[2], _fmt(b["median_s"]), _fmt(a["median_s"]),
                      f"{ratio:.2f}", verdict, _fmt(bc), _fmt(ac)])
    return lines, slower


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--noise", type=float, default=0.10,
                    help="relative change always counted as noise (default 0.10)")
    args = ap.parse_args(argv)
    lines, slower = compare(_load(args.before), _load(args.after), args.noise)
    header = ["workload", "size", "method", "before", "after", "after/before", "verdict",
              "compile before", "compile after"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in lines:
        print("| " + " | ".join(row) + " |")
    print(f"\n{len(lines)} rows compared; {slower} slower beyond noise.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
