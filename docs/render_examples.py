"""Render the scripts of examples/ as documentation pages, with their plots and output.

For every ``examples/<name>.py`` this writes ``docs/examples/<name>.md`` (the script's
docstring as the description, the command that was run, its figures, its printed output
and the code itself, included from the script at build time so that it is never stale) and
the figures ``docs/examples/figures/<name>*.png``, plus ``docs/examples/index.md``.

Every example is run small, in a subprocess, the way ``tests/test_examples.py`` runs it
(seconds each, mostly compilation). The scripts that plot (``--plot``) draw their own
figures; for the others a figure is drawn here with ``mlejax.plot`` from a small fit of
that example's own log-likelihood (its functions are loaded with ``runpy``, its ``main``
is not run), and the page says so. Re-runnable: each run replaces the pages and figures.
The outputs and figures are committed, so building the site never runs an example.

Run from the repository root (needs matplotlib, plus the examples' optional references:
scipy, statsmodels, scikit-learn):

    python docs/render_examples.py                 # every example
    python docs/render_examples.py gmm_em outliers # some
    python docs/render_examples.py --jobs 1        # one example at a time (default 2)
"""

from __future__ import annotations

import argparse
import ast
import os
import runpy
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PAGES = ROOT / "docs" / "examples"
FIGURES = PAGES / "figures"


# --------------------------------------------------------------- figures drawn here
# For the examples without a plotting option: a small fit of the example's own model,
# drawn with mlejax.plot. ``ns`` is the example's namespace (its functions and constants).

def _quickstart(ns, path):
    import jax
    import jax.numpy as jnp
    import mlejax as mj
    from mlejax import plot

    k4, k5 = jax.random.split(jax.random.key(3))
    z = jnp.concatenate([jax.random.normal(k4, (150,)) - 2.0,
                         0.5 * jax.random.normal(k5, (150,)) + 3.0])
    init = {"w": 0.5, "mu1": 8.0, "mu2": 8.0, "s1": 1.0, "s2": 1.0}
    cons = {"w": mj.unit_interval, "s1": mj.positive, "s2": mj.positive}
    res = mj.fit(ns["mixture_loglik"], init, z, constraints=cons, restarts=32,
                 key=jax.random.key(0), restart_scale=2.0, warn=False)
    fig = plot.trace(res)
    top = float(res.loglik)          # zoom on the top: a few starts begin thousands below
    fig.axes[0].set_ylim(top - 300.0, top + 30.0)
    fig.axes[0].set_xlim(-1.0, 60.0)
    fig.savefig(path, dpi=110)


def _closed_forms(ns, path):
    import jax
    import mlejax as mj
    from mlejax import plot

    xs = 2.0 * jax.random.normal(jax.random.key(2), (1000, 5))
    batch = mj.fit_batch(ns["normal_loglik"], {"mu": 0.0, "sigma": 1.0}, xs,
                         constraints={"sigma": mj.positive}, warn=False)
    plot.batch(batch, truth={"mu": 0.0, "sigma": 2.0}, path=path)


def _consistency(ns, path):
    import jax
    import mlejax as mj
    from mlejax import plot

    true = ns["TRUE"]
    xs = jax.random.gamma(jax.random.key(1), true["shape"], (300, 100)) * true["scale"]
    res = mj.fit_distribution(xs, "gamma", warn=False)
    plot.batch(res, truth=true, path=path)


def _regression(ns, path):
    import jax
    import jax.numpy as jnp
    import mlejax as mj
    from mlejax import plot

    k3, k4 = jax.random.split(jax.random.key(0))
    X = ns["design"](k3, 200, 1)
    y = jax.random.bernoulli(k4, jax.nn.sigmoid(X @ jnp.array([-1.0, 1.0]))).astype(X.dtype)
    # The example's log-likelihood takes {"beta": (p+1,)}; the surface needs two scalars.
    def loglik(p, data):
        return ns["logistic_loglik"]({"beta": jnp.stack([p["b0"], p["b1"]])}, data)
    res = mj.fit(loglik, {"b0": 0.0, "b1": 0.0}, (X, y))
    plot.surface(res, "b0", "b1", starts=[{"b0": 0.0, "b1": 0.0}, {"b0": -3.0, "b1": 3.0}],
                 path=path)


def _neural_net(ns, path):
    import jax
    import optax
    import mlejax as mj
    from mlejax import plot

    k_data, k_init = jax.random.split(jax.random.key(0))
    x, y = ns["two_moons"](k_data, 200)
    res = mj.fit(ns["bernoulli_loglik"], ns["init_params"](k_init, 8), (x, y),
                 method="gradient", optimizer=optax.adam(0.05), max_steps=500, warn=False)
    plot.trace(res, path=path)


def _many_fits(ns, path):
    import jax
    import jax.numpy as jnp
    import mlejax as mj
    from mlejax import plot

    data = ns["make_data"]("logistic", jax.random.key(0), 2000, 50)
    res = mj.fit_batch(ns["logistic_loglik"], {"beta": jnp.zeros(2)}, data, warn=False)
    beta = ns["BETA"]
    plot.batch(res, truth={"beta[0]": float(beta[0]), "beta[1]": float(beta[1])}, path=path)


def _mixed_model(ns, path):
    import jax.numpy as jnp
    import numpy as np
    import mlejax as mj
    from mlejax import plot
    from scipy import special

    rng = np.random.default_rng(0)
    G, m = 60, 6
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    u = rng.normal(size=G)
    y = (rng.uniform(size=G * m) < special.expit(-0.5 + x + u[g])).astype(np.float64)
    res = mj.fit(ns["logistic_joint"], {"b0": 0.0, "b1": 0.0, "u": jnp.zeros(G), "sd": 1.0},
                 (jnp.asarray(x), jnp.asarray(y), jnp.asarray(g)),
                 random=mj.RandomEffects(["u"], grouped=True), constraints={"sd": mj.positive})
    plot.profile(res, "sd", path=path)


def _distributed_fit(ns, path):
    import numpy as np
    import mlejax as mj
    from mlejax import plot

    X, y = ns["make_batch"](500, 100, 3)
    res = mj.distributed.fit_batch_distributed(ns["logistic_loglik"], {"beta": np.zeros(3)},
                                               (X, y), warn=False)
    plot.batch(res, path=path)


# ------------------------------------------------------------------------- the list

@dataclass
class Example:
    args: list[str]
    plots: bool = False                      # the script takes --plot PATH
    figure: Callable | None = None           # else: drawn here from the example's model
    caption: str = ""
    figure_note: str = ""                    # what the figure drawn here shows
    extra_figures: list[str] = field(default_factory=list)   # suffixes the script adds


SPECS: dict[str, Example] = {
    "quickstart": Example(
        ["--n", "300", "--k", "200"], figure=_quickstart,
        caption="The 32 restarts of the bimodal mixture (the first 60 iterations, "
                "the top 300 log-likelihood units)",
        figure_note="The script prints summaries only; the figure is `mlejax.plot.trace` of "
                    "its third fit (the two-component mixture, 32 restarts) on 300 points."),
    "closed_forms": Example(
        ["--n", "200", "--k", "1000", "--small-n", "5"], figure=_closed_forms,
        caption="1,000 normal fits of n = 5: the MLE of sigma is biased low",
        figure_note="The script prints its comparisons only; the figure is "
                    "`mlejax.plot.batch` of its simulation (1,000 datasets of n = 5, one "
                    "`fit_batch`), the true values marked."),
    "consistency": Example(
        ["--sizes", "10,100,1000", "--k", "200"], figure=_consistency,
        caption="300 gamma fits of n = 100 around the true shape and scale",
        figure_note="The script prints a table only; the figure is `mlejax.plot.batch` of "
                    "300 gamma fits of n = 100 (`fit_distribution` on a (300, 100) array), "
                    "the true values marked."),
    "regression": Example(
        ["--n", "200", "--p", "2"], figure=_regression,
        caption="The logistic log-likelihood over (b0, b1) with Newton's path from two starts",
        figure_note="The script prints comparisons only; the figure is `mlejax.plot.surface` "
                    "of its logistic log-likelihood with one covariate, n = 200, and "
                    "Newton's path from two starts."),
    "neural_net": Example(
        ["--n", "200", "--hidden", "8", "--steps", "500", "--batch-size", "32"],
        figure=_neural_net,
        caption="The MLP's log-likelihood under full-batch Adam",
        figure_note="The script prints a table only; the figure is `mlejax.plot.trace` of "
                    "its full-batch Adam fit (n = 200, 8 hidden units, 500 steps)."),
    "multimodal": Example(
        ["--n", "300", "--restarts", "16", "--grid", "101"], plots=True,
        caption="The log-likelihood surface with the paths from the two starts",
        extra_figures=["_trace"]),
    "outliers": Example(["--n", "200", "--outliers", "10"], plots=True,
                        caption="The Student-t fit over the data, with its QQ plot"),
    "gmm_em": Example(["--n", "600", "--k", "3", "--n-init", "4"], plots=True,
                      caption="Points by component with covariance ellipses, and the EM trace"),
    "survival_weibull": Example(["--n", "80", "--boot", "200"], plots=True,
                                caption="The profile deviance of the Weibull shape"),
    "many_fits": Example(
        ["--k", "2000", "--n", "50", "--chunk-size", "1024", "--check", "5"],
        figure=_many_fits,
        caption="2,000 logistic regressions of n = 50: estimates, steps and status",
        figure_note="The script prints rates and a summary only; the figure is "
                    "`mlejax.plot.batch` of 2,000 of its logistic fits, the true "
                    "coefficients marked."),
    "distributed_fit": Example(
        ["--k", "200", "--n", "100"], figure=_distributed_fit,
        caption="The gathered batch of logistic fits",
        figure_note="Run here as one process (`--num-processes 1`: each of N processes "
                    "would run the same command with its `--process-id`); the figure is "
                    "`mlejax.plot.batch` of `fit_batch_distributed` on 500 of its datasets."),
    "mixed_model": Example(
        ["--groups", "40", "--per-group", "6", "--n", "100", "--show", "3", "--nodes", "0"],
        figure=_mixed_model,
        caption="Profile deviance of the random-intercept standard deviation",
        figure_note="The script prints comparisons only; the figure is "
                    "`mlejax.plot.profile` of the random-intercept sd of its logistic GLMM "
                    "(60 groups of 6, the Laplace marginal likelihood refitted on a grid)."),
}


# ------------------------------------------------------------------------ rendering

def _docstring(path: Path) -> tuple[str, str]:
    """The script's docstring: its first line (the title) and the rest."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or path.stem
    first, _, rest = doc.partition("\n\n")
    return " ".join(first.split()), rest.strip()


def _markdown(text: str) -> str:
    """A script docstring as Markdown: ``Run:`` lines become code, the rest is kept."""
    out = []
    for block in text.split("\n\n"):
        if block.startswith("Run:"):
            out.append("```bash\n" + block[len("Run:"):].strip() + "\n```")
        elif block.startswith("    "):
            out.append("```text\n" + textwrap.dedent(block) + "\n```")
        else:
            out.append(block)
    return "\n\n".join(out)


def _run(name: str, spec: Example) -> tuple[str, float]:
    args = list(spec.args)
    if spec.plots:
        args += ["--plot", f"docs/examples/figures/{name}.png"]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, f"examples/{name}.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"examples/{name}.py {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout.rstrip(), elapsed


def draw(name: str, spec: Example) -> list[tuple[str, str]]:
    """The figures of one example (already written by the script, or drawn here)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    if spec.plots:
        figures.append((f"{name}.png", spec.caption))
        figures += [(f"{name}{s}.png", "") for s in spec.extra_figures]
    elif spec.figure is not None:
        ns = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="docs_example")
        spec.figure(ns, str(FIGURES / f"{name}.png"))
        plt.close("all")
        figures.append((f"{name}.png", spec.caption))
    for fig, _ in figures:
        if not (FIGURES / fig).is_file():
            raise RuntimeError(f"examples/{name}.py did not write docs/examples/figures/{fig}")
    return figures


def write_page(name: str, spec: Example, output: str, elapsed: float,
               figures: list[tuple[str, str]]) -> None:
    title, description = _docstring(EXAMPLES / f"{name}.py")
    cmd = " ".join(["python", f"examples/{name}.py", *spec.args]
                   + (["--plot", f"{name}.png"] if spec.plots else []))
    lines = [f"# {name}.py", "", f"*{title}*", "", _markdown(description), "",
             "## Run small", "",
             f"The output and figure{'s' if len(figures) > 1 else ''} below come from a small "
             f"run by `docs/render_examples.py` ({elapsed:.0f} s on the machine that rendered "
             "them, mostly compilation):", "",
             "```bash", cmd, "```", ""]
    if spec.figure_note:
        lines += [spec.figure_note, ""]
    for fig, caption in figures:
        lines += [f"![{caption or fig}](figures/{fig})", ""]
        if caption:
            lines += [f"*{caption}.*", ""]
    lines += ['??? example "Output"', "", "    ```text",
              textwrap.indent(output, "    ") if output else "    (no output)",
              "    ```", "",
              "## Code", "",
              f'```python title="examples/{name}.py"',
              f'--8<-- "examples/{name}.py"',
              "```", ""]
    (PAGES / f"{name}.md").write_text("\n".join(lines))


def write_index() -> None:
    lines = ["# Examples", "",
             "Runnable scripts in `examples/`, each with size flags (`--help`) and a default "
             "that runs in seconds on a CPU; each compares its numbers with an independent "
             "reference (a closed form, SciPy, statsmodels, scikit-learn) and prints the "
             "difference. The pages show a small run of each, with its figure.", "",
             "| example | what it shows |", "|---|---|"]
    for script in sorted(EXAMPLES.glob("*.py")):
        title, _ = _docstring(script)
        lines.append(f"| [{script.stem}]({script.stem}.md) | {title} |")
    lines += ["", "The pages are written by `python docs/render_examples.py` (which runs "
              "every example small and draws the figures); rerun it after changing an "
              "example.", ""]
    (PAGES / "index.md").write_text("\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="examples to render (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="examples run at the same time")
    args = ap.parse_args(argv)
    unknown = sorted({p.stem for p in EXAMPLES.glob("*.py")} - set(SPECS))
    if unknown:
        sys.exit(f"no rendering spec for examples/{', '.join(unknown)}.py: add it to SPECS "
                 "in docs/render_examples.py")
    names = args.names or list(SPECS)
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name in names:                      # no stale figure survives a rerun
        for old in FIGURES.glob(f"{name}*.png"):
            if old.stem == name or old.stem[len(name):] in SPECS[name].extra_figures:
                old.unlink()
    if not args.names:                      # pages and figures of examples since removed
        for old in [*PAGES.glob("*.md"), *FIGURES.glob("*.png")]:
            if old.stem != "index" and not any(old.stem == n or old.stem.startswith(n + "_")
                                               for n in SPECS):
                old.unlink()
    import jax
    jax.config.update("jax_enable_x64", True)   # as the examples do
    # The scripts run in subprocesses, --jobs at a time; the figures drawn here (pyplot is
    # not thread-safe) and the pages follow, one example after another.
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = dict(zip(names, pool.map(lambda n: _run(n, SPECS[n]), names)))
    for name in names:
        output, elapsed = runs[name]
        t0 = time.perf_counter()
        figures = draw(name, SPECS[name])
        write_page(name, SPECS[name], output, elapsed, figures)
        print(f"{name}: ran in {elapsed:.1f} s, figures {time.perf_counter() - t0:.1f} s")
    write_index()


if __name__ == "__main__":
    main()
