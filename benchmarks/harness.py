"""What every workload of the suite shares: timing, rows, targets, the table, JSON and the chart.

A workload measures one problem at one size and returns a :class:`Group`: one :class:`Row`
per method (mlejax, its peers, the machine's floor), whether each method reached the same
optimum (``Row.ok``), and the issue's :class:`Target` figures. Times are wall-clock seconds
with ``jax.block_until_ready`` on every result. A JAX method's first call (compilation plus
one run) is timed apart from the runs that follow, so ``compile_s`` is the first call minus
the median run; a peer without compilation counts every call as a run.

Ratios are taken per unit of work (``Row.work``: fits, or EM iterations) on the medians:

* on a peer row, ``speedup`` = peer time / mlejax time (above 1: mlejax is faster);
* on a floor row, ``vs_floor`` = mlejax time / floor time (1 is the machine's limit).

A row whose method did not reach the optimum (``ok`` False) keeps its times, but its ratio is
marked as not counting; a peer that is not installed is a row with ``skipped`` set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

__all__ = ["MD_BEGIN", "MD_END", "Context", "Group", "Row", "Target", "Timing", "format_table",
           "machine", "markdown_report", "measure", "measure_peer", "optional", "plot",
           "report_dict", "single_threaded", "versions", "write_marked"]


@dataclasses.dataclass
class Context:
    """Settings every workload receives."""

    repeats: int = 5          # timed runs per method (after the compiling call)
    quick: bool = False       # tiny sizes: the suite still runs, figures mean little
    budget_s: float = 30.0    # stop repeating a method once its runs took this long
    device: str = "cpu"
    peer_threads: str = "auto"   # BLAS/OpenMP threads of NumPy peers: "auto", "default", "1"
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    done: set = dataclasses.field(default_factory=set)

    def once(self, key: str) -> bool:
        """True the first time ``key`` is asked for in this run (a part of a workload that
        does not depend on the size, measured once however many sizes are run)."""
        first = key not in self.done
        self.done.add(key)
        return first


@dataclasses.dataclass
class Timing:
    first_s: float            # the first call (for a JAX method: compilation plus one run)
    runs: list[float]         # the timed runs
    compiled: bool
    out: Any = None           # the last call's result
    cpu_runs: list[float] = dataclasses.field(default_factory=list)  # process CPU s per run

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def compile_s(self) -> float | None:
        return max(self.first_s - self.median, 0.0) if self.compiled else None


def _block(out):
    import jax

    return jax.block_until_ready(out)


def measure(fn: Callable[[], Any], ctx: Context, *, compiled: bool,
            repeats: int | None = None, budget_s: float | None = None) -> Timing:
    """Times ``fn()`` (which runs a whole method and returns its result).

    ``compiled``: the first call compiles; it is timed apart and not counted as a run, and at
    least one more run follows. Repeats stop early once the runs took ``budget_s`` in all
    (a slow peer is then timed fewer times; the table says how many).
    """
    repeats = ctx.repeats if repeats is None else repeats
    budget = ctx.budget_s if budget_s is None else budget_s
    t0, c0 = time.perf_counter(), time.process_time()
    out = _block(fn())
    first = time.perf_counter() - t0
    runs = [] if compiled else [first]
    cpu = [] if compiled else [time.process_time() - c0]
    while len(runs) < max(repeats, 1) and (not runs or sum(runs) < budget):
        t0, c0 = time.perf_counter(), time.process_time()
        out = _block(fn())
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing(first, runs, compiled, out, cpu)


def measure_peer(fn: Callable[[], Any], ctx: Context, **kw) -> tuple[Timing, str]:
    """Times a NumPy/SciPy peer (no compilation) in its best thread configuration.

    With ``ctx.peer_threads == "auto"`` one call is made with the libraries' default BLAS and
    OpenMP threads and one limited to a single thread, and the faster setting is kept for
    the timed runs: on a small problem, or on a machine shared with other jobs, thread
    hand-offs can cost a peer several times its work (scikit-learn's GaussianMixture ran
    2.3x faster per iteration with one thread than with two on the loaded development
    machine), and timing a peer in a setting that slows it would flatter mlejax.
    Returns the timing and the setting used ("default threads" or "1 thread").
    """
    choice = ctx.peer_threads
    if choice == "auto" and optional("threadpoolctl") is not None:
        t0 = time.perf_counter()
        fn()
        t_default = time.perf_counter() - t0
        with single_threaded():
            t0 = time.perf_counter()
            fn()
            t_single = time.perf_counter() - t0
        choice = "1" if t_single < t_default else "default"
    if choice == "1" and optional("threadpoolctl") is None:
        choice = "default"   # nothing can limit the threads: say what was timed
    scope = single_threaded() if choice == "1" else contextlib.nullcontext()
    with scope:
        t = measure(fn, ctx, compiled=False, **kw)
    return t, ("1 thread" if choice == "1" else "default threads")


@dataclasses.dataclass
class Row:
    """One method of a group.

    ``runs`` are seconds for ``work`` units (fits, iterations) of the group's ``unit``; a
    peer timed on a subset and extrapolated says so in ``extrapolated_from``.
    """

    method: str
    role: str                                 # "mlejax" | "peer" | "floor" | "reference"
    runs: list[float] = dataclasses.field(default_factory=list)
    compile_s: float | None = None
    work: float = 1.0
    ok: bool | None = None                    # reached the common optimum (None: not checked)
    note: str = ""
    skipped: str | None = None                # why the method did not run
    cpu_runs: list[float] = dataclasses.field(default_factory=list)  # process CPU s per run
    extrapolated_from: int | None = None      # timed on this many units, scaled to ``work``
    subject: bool = False                     # the row the ratios of the group refer to
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    @property
    def throughput(self) -> float | None:
        m = self.median
        return self.work / m if m else None

    @property
    def cores(self) -> float | None:
        """CPU time over wall time (median run of each): how many of the machine's cores
        the method kept busy. Two methods equally fast per core differ in wall time by this
        factor; on a GPU it counts only the host's threads."""
        m = self.median
        return statistics.median(self.cpu_runs) / m if self.cpu_runs and m else None

    @classmethod
    def from_timing(cls, method: str, role: str, t: Timing, *, work: float = 1.0,
                    scale: float = 1.0, **kw) -> "Row":
        """A row from a :class:`Timing`; ``scale`` extrapolates a subset's times."""
        return cls(method, role, runs=[r * scale for r in t.runs], compile_s=t.compile_s,
                   work=work, cpu_runs=[c * scale for c in t.cpu_runs], **kw)


@dataclasses.dataclass
class Target:
    """One of the issue's targets: ``value`` against ``threshold`` (``op`` "<=" or ">=")."""

    name: str
    value: float | None
    op: str
    threshold: float
    unit: str = "x"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.threshold if self.op == "<=" else self.value >= self.threshold


@dataclasses.dataclass
class Group:
    """One workload at one size: its rows, the optimum check and the targets."""

    workload: str
    label: str                       # e.g. "K=10,000, n=200, d=6"
    unit: str = "fit"                # what ``Row.work`` counts
    compare: bool = True             # False: rows are separate measurements, no ratios
    rows: list[Row] = dataclasses.field(default_factory=list)
    targets: list[Target] = dataclasses.field(default_factory=list)
    check: str = ""                  # how "the same optimum" was decided
    params: dict = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def subject(self) -> Row | None:
        for r in self.rows:
            if r.subject:
                return r
        return next((r for r in self.rows if r.role == "mlejax" and r.runs), None)

    def per_unit(self, row: Row) -> float | None:
        m = row.median
        return None if m is None else m / row.work

    def ratios(self, row: Row) -> dict:
        """``speedup`` (peer / subject) or ``vs_floor`` (subject / floor), per unit of work."""
        s = self.subject()
        if not self.compare or s is None or row is s or not row.runs or not s.runs:
            return {}
        mine, theirs = self.per_unit(s), self.per_unit(row)
        if row.role == "floor":
            return {"vs_floor": mine / theirs}
        return {"speedup": theirs / mine}

    def row(self, method: str) -> Row | None:
        return next((r for r in self.rows if r.method == method), None)


# ------------------------------------------------------------------------------- machine
def single_threaded():
    """BLAS and OpenMP limited to one thread (threadpoolctl; a no-op without it).

    A NumPy/SciPy peer fitting a tiny problem can lose more to thread hand-offs than it
    gains (scikit-learn's LogisticRegression took 36 ms per fit of n = 200 with two threads
    and 4 ms with one on the loaded development machine, nearly all inside scipy's
    L-BFGS-B); see :func:`measure_peer`.
    """
    tpc = optional("threadpoolctl")
    if tpc is None:
        return contextlib.nullcontext()
    return tpc.threadpool_limits(1)


def optional(module: str):
    """The module, or None when it is not installed (a peer is then reported as skipped)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "numpy", "scipy", "statsmodels", "sklearn", "optax",
                 "optimistix", "matplotlib", "mlejax"):
        mod = optional(name)
        out[name] = getattr(mod, "__version__", None) if mod is not None else None
    return out


def machine() -> dict:
    """The machine, its load, and the JAX device the suite ran on."""
    import jax

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{getattr(d, 'device_kind', d)}" for d in jax.devices()],
            "x64": bool(jax.config.jax_enable_x64),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    psutil = optional("psutil")
    if psutil is not None:
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["cpu_freq_mhz"] = getattr(psutil.cpu_freq(), "current", None)
    return info


# ------------------------------------------------------------------------------- output
def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


def _fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}x"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells):
        out = []
        for c, w, a in zip(cells, widths, align):
            out.append(c.rjust(w) if a == "r" else c.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                         for w, a in zip(widths, align)) + "|"
    return [line(header), sep] + [line(r) for r in rows]


def format_table(groups: list[Group]) -> str:
    """The results as a Markdown table, then the targets, then the notes."""
    header = ["workload", "size", "method", "runs", "median", "min-max", "compile", "cores",
              "per s", "mlejax speed-up", "x floor", "optimum", "note"]
    rows = []
    for g in groups:
        for r in g.rows:
            if r.skipped:
                rows.append([g.workload, g.label, r.method, "-", "-", "-", "-", "-", "-", "-",
                             "-", "skipped", r.skipped])
                continue
            rat = g.ratios(r)
            sp, fl = rat.get("speedup"), rat.get("vs_floor")
            not_counted = r.ok is False or (g.subject() is not None and g.subject().ok is False)
            sp_s = _fmt_ratio(sp) + (" (not counted)" if sp is not None and not_counted else "")
            fl_s = _fmt_ratio(fl) + (" (not counted)" if fl is not None and not_counted else "")
            mm = f"{_fmt_s(min(r.runs))} - {_fmt_s(max(r.runs))}" if r.runs else "-"
            rate = r.throughput
            per = f"{_fmt_rate(rate)} {g.unit}s/s" if rate is not None and g.compare else "-"
            ok = {True: "same", False: "DIFFERENT", None: "-"}[r.ok]
            note = r.note
            if r.extrapolated_from:
                note = (note + "; " if note else "") + \
                    f"timed on {r.extrapolated_from:,} {g.unit}s, scaled"
            # A first call faster than the median run (a busy machine) leaves no measurable
            # compilation: say so rather than print 0.
            comp = "~0 (noise)" if r.compile_s == 0.0 else _fmt_s(r.compile_s)
            rows.append([g.workload, g.label, r.method + (" *" if r.subject else ""),
                         str(len(r.runs)), _fmt_s(r.median), mm, comp,
                         "-" if r.cores is None else f"{r.cores:.1f}", per,
                         sp_s, fl_s, ok, note])
    lines = _table(header, rows, "lllrrrrrrrrll")
    lines.append("")
    lines.append("`*` the row the ratios refer to. mlejax speed-up = the peer's time / mlejax's "
                 "time per unit of work; x floor = mlejax's time / the floor's. Times are "
                 "medians of the runs after the compiling call; compile = first call minus "
                 "the median run; cores = CPU time / wall time of the median run (how many "
                 "cores the method kept busy).")
    t_rows = []
    for g in groups:
        for t in g.targets:
            met = {True: "met", False: "MISSED", None: "n/a"}[t.met]
            if t.value is None:
                val = "-"
            elif t.unit == "x":
                val = _fmt_ratio(t.value)
            elif t.unit == "s":
                val = _fmt_s(t.value)
            else:
                val = f"{_fmt_rate(t.value)} {t.unit}"
            if t.unit == "x":
                thr = f"{t.op} {_fmt_ratio(t.threshold)}"
            elif t.unit == "s":
                thr = f"{t.op} {_fmt_s(t.threshold)}"
            else:
                thr = f"{t.op} {t.threshold:,g} {t.unit}"
            t_rows.append([g.workload, g.label, t.name, val, thr, met, t.note])
    if t_rows:
        lines += ["", "Targets (issue 6; the zoo's: issue 20):", ""]
        lines += _table(["workload", "size", "target", "measured", "wanted", "", "note"],
                        t_rows, "lllrrll")
    notes = [f"- {g.workload} ({g.label}): {n}" for g in groups for n in g.notes]
    checks = [f"- {g.workload} ({g.label}): {g.check}" for g in groups if g.check]
    if checks:
        lines += ["", "Same optimum, checked before timing counts:"] + checks
    if notes:
        lines += ["", "Notes:"] + notes
    return "\n".join(lines)


def report_dict(groups: list[Group], *, argv: list[str], started: float,
                errors: dict) -> dict:
    """Everything, for ``--json``: machine, versions, device, groups, rows, ratios, targets."""
    out_groups = []
    for g in groups:
        rows = []
        for r in g.rows:
            d = dataclasses.asdict(r)
            d.update(median_s=r.median, min_s=min(r.runs) if r.runs else None,
                     max_s=max(r.runs) if r.runs else None, per_s=r.throughput,
                     cpu_median_s=statistics.median(r.cpu_runs) if r.cpu_runs else None,
                     cores=r.cores,
                     **g.ratios(r))
            rows.append(d)
        out_groups.append({"workload": g.workload, "label": g.label, "unit": g.unit,
                           "params": g.params, "check": g.check, "notes": g.notes,
                           "rows": rows,
                           "targets": [dict(dataclasses.asdict(t), met=t.met)
                                       for t in g.targets]})
    return {"command": argv, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "wall_s": time.perf_counter() - started, "machine": machine(),
            "versions": versions(), "groups": out_groups, "errors": errors}


# ------------------------------------------------------------------------------- markdown
MD_BEGIN = "<!-- suite:begin -->"
MD_END = "<!-- suite:end -->"


def markdown_report(report: dict, table: str) -> str:
    """The run for a Markdown file: when (UTC) and how it ran, the machine, the versions and
    the device, then ``table`` (:func:`format_table`: figures, targets, checks, notes) and
    the workloads that failed. ``report`` is :func:`report_dict`'s."""
    m, v = report["machine"], report["versions"]
    end = report.get("date_utc") or report["date"]
    wall = report["wall_s"]
    took = f"{wall / 60:.1f} min" if wall >= 120 else f"{wall:.0f} s"
    cmd = shlex.join(str(a) for a in report["command"])
    quick = " `--quick`: tiny sizes, the figures mean little." if report.get("quick") else ""
    hw = f"{m['cpu']} x{m['cpu_count']}"
    if m.get("cpu_freq_mhz"):
        hw += f" ({m['cpu_freq_mhz'] / 1000:.1f} GHz)"
    if m.get("memory_gb"):
        hw += f", {m['memory_gb']} GiB"
    load = m.get("loadavg")
    load_s = (f"; load average at the end {', '.join(f'{x:.1f}' for x in load)} "
              f"(1, 5, 15 min) on {m['cpu_count']} cores") if load else ""
    have = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    missing = [k for k, val in v.items() if not val]
    lines = [
        f"**Suite run** (written by the suite's `--results-md`): ended {end}, "
        f"{took}, `{cmd}`.{quick}",
        "",
        f"**Machine.** {hw}; {m['platform']}{load_s}. Device: {m['backend']} "
        f"({', '.join(m['devices'])}), x64 {'on' if m.get('x64') else 'off'}. "
        f"Versions: {have}" + (f"; not installed: {', '.join(missing)}." if missing else "."),
        "",
        table,
    ]
    if report.get("errors"):
        lines += ["", "Errors (these workloads did not finish):"]
        lines += [f"- {k}: {err}" for k, err in report["errors"].items()]
    return "\n".join(lines)


_HEADING = re.compile(r"^#{1,6}(\s|$)")


def write_marked(path: str, body: str) -> None:
    """Writes ``body`` into the Markdown file ``path`` between :data:`MD_BEGIN` and
    :data:`MD_END`, replacing what was between them; everything outside is kept byte for
    byte. Without the markers they are inserted after the file's first heading (at the top
    when it has none; a missing file is created). The new file replaces the old one in one
    ``os.replace``, so a reader never sees half of it and a failed run leaves it as it was.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        text, mode = "", 0o644
    body = body.strip("\n")
    block = f"{MD_BEGIN}\n{body}\n{MD_END}"
    nb, ne = text.count(MD_BEGIN), text.count(MD_END)
    if (nb, ne) == (1, 1) and text.index(MD_BEGIN) < text.index(MD_END):
        i, j = text.index(MD_BEGIN), text.index(MD_END) + len(MD_END)
        new = text[:i] + block + text[j:]
    elif nb == ne == 0:
        lines = text.splitlines(keepends=True)
        at = next((k + 1 for k, line in enumerate(lines) if _HEADING.match(line)), 0)
        head, rest = "".join(lines[:at]), "".join(lines[at:])
        if head and not head.endswith("\n"):
            head += "\n"
        new = head + ("\n" if head else "") + block + "\n" + \
            ("" if not rest or rest.startswith("\n") else "\n") + rest
    else:
        raise ValueError(f"{path}: expected one {MD_BEGIN} before one {MD_END}; found "
                         f"{nb} and {ne} (out of order or repeated). Fix the markers by hand "
                         "(the suite replaces only what lies between them).")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def plot(groups: list[Group], path: str) -> str | None:
    """A chart of the median time per unit of every method (log scale), one panel per group.

    Returns a message when matplotlib is missing instead of raising.
    """
    mpl = optional("matplotlib")
    if mpl is None:
        return ("--plot needs matplotlib, which is not installed: pip install matplotlib "
                "(or pip install -e '.[bench]'); the table and JSON are unaffected.")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    shown = [g for g in groups if any(r.runs for r in g.rows)]
    if not shown:
        return "--plot: nothing was timed, no chart written."
    cols = 2 if len(shown) > 1 else 1
    nrows = -(-len(shown) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(7 * cols, 2.2 + 0.45 * max(
        len(g.rows) for g in shown) * nrows), squeeze=False)
    colors = {"mlejax": "tab:blue", "peer": "tab:orange", "floor": "tab:gray",
              "reference": "tab:green"}
    for ax, g in zip(axes.flat, shown):
        rows = [r for r in g.rows if r.runs]
        y = list(range(len(rows)))[::-1]
        med = [g.per_unit(r) for r in rows]
        lo = [m - min(r.runs) / r.work for m, r in zip(med, rows)]
        hi = [max(r.runs) / r.work - m for m, r in zip(med, rows)]
        ax.barh(y, med, xerr=[lo, hi], color=[colors.get(r.role, "tab:purple") for r in rows])
        ax.set_yticks(y, [r.method for r in rows], fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(f"seconds per {g.unit} (median, min-max)")
        ax.set_title(f"{g.workload}: {g.label}", fontsize=9)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
