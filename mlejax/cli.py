"""The ``mlejax`` command line: ``mlejax <command> [options]``.

Each command is one entry of ``COMMANDS``: a function that adds the command's subparser
and sets ``func`` (``args -> exit status``) on it. Adding a command means writing those two
functions and listing the first; ``main`` only parses and dispatches.

Commands:
  demo     the main job on generated data: a distribution fit, a logistic regression, a
           Gaussian mixture and a batch of fits, with tables (and plots with --plot-dir).
  fit      one named distribution fitted to one column of a CSV (or Parquet) file.
  compare  candidate distributions fitted to one column, ranked by AIC or BIC.
  gmm      a Gaussian mixture fitted by EM to some columns.
  regress  a regression model given by a formula ``"y ~ x1 + C(g)"`` (formulaic).
  bench   the benchmark suite of ``benchmarks/`` (see ``mlejax bench --help``); it lives in
          the source checkout, so it needs an editable install (``pip install -e ".[bench]"``).

Data files are read with the standard library's ``csv`` module (a header row, then one row
per observation); ``.parquet`` files through pandas when it is installed. Missing values
(an empty field, ``NA``, ``NaN``, ``null``, ``None``) are reported with their row numbers
(1-based, the header not counted) and dropped only with ``--dropna``. A header that names a
column twice is an error naming it.

Exit status: 0 on success, 1 when a fit did not converge (the reason on stderr), 2 on an
error (bad arguments or data; the message on stderr).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["COMMANDS", "CLIError", "build_parser", "main"]


class CLIError(Exception):
    """An error the command line reports as one message on stderr, with exit status 2."""


class _NotConverged(Exception):
    """A fit that did not converge: exit status 1 (its output is already printed)."""


# ------------------------------------------------------------------------------- data

_MISSING = {"", "na", "nan", "n/a", "null", "none", "."}


def _row_list(rows: list[int], limit: int = 20) -> str:
    text = ", ".join(str(r) for r in rows[:limit])
    if len(rows) > limit:
        text += f", ... ({len(rows) - limit} more)"
    return ("row " if len(rows) == 1 else "rows ") + text


class Table:
    """A data file's columns as strings (``None`` for a missing value), in file order."""

    def __init__(self, path: str, names: list[str], columns: dict[str, list]):
        self.path, self.names, self.columns = path, names, columns
        self.nrows = len(next(iter(columns.values()))) if columns else 0

    def _check(self, name: str) -> None:
        if name not in self.columns:
            raise CLIError(f"column {name!r} is not in {self.path}; its columns are: "
                           f"{', '.join(self.names)}.")

    def numeric(self, names: list[str], dropna: bool) -> np.ndarray:
        """The named columns as an ``(n, len(names))`` float array; missing values are an
        error unless ``dropna`` (then their rows are dropped, with a note on stderr)."""
        for name in names:
            self._check(name)
        out = np.full((self.nrows, len(names)), np.nan)
        missing = np.zeros(self.nrows, bool)
        where: dict[str, list[int]] = {}
        for j, name in enumerate(names):
            for i, v in enumerate(self.columns[name]):
                if v is None:
                    missing[i] = True
                    where.setdefault(name, []).append(i + 1)
                    continue
                try:
                    out[i, j] = float(v)
                except ValueError:
                    raise CLIError(f"column {name!r} is not numeric: row {i + 1} has {v!r} "
                                   f"(in {self.path}).") from None
                if not np.isfinite(out[i, j]):
                    raise CLIError(f"column {name!r} has a non-finite value {v!r} in row "
                                   f"{i + 1} (in {self.path}).")
        if where:
            rows = [i + 1 for i in np.flatnonzero(missing)]
            if not dropna:
                parts = "; ".join(f"column {n!r} in {_row_list(r)}" for n, r in where.items())
                raise CLIError(f"missing values: {parts} (of {self.nrows} data rows, header "
                               "not counted). Pass --dropna to drop those rows.")
            print(f"mlejax: dropped {len(rows)} of {self.nrows} rows with missing values "
                  f"({_row_list(rows)}).", file=sys.stderr)
            out = out[~missing]
        if out.shape[0] == 0:
            raise CLIError(f"no data rows left in {self.path}.")
        return out


def _check_header(path: str, names: list[str]) -> None:
    """Every column name once: two columns of one name would be read as one (the later
    one's values silently replacing the earlier's)."""
    seen: dict[str, list[int]] = {}
    for j, name in enumerate(names, start=1):
        seen.setdefault(name, []).append(j)
    dups = {n: cols for n, cols in seen.items() if len(cols) > 1}
    if dups:
        parts = "; ".join(f"{n!r} in columns {', '.join(map(str, cols))}"
                          for n, cols in dups.items())
        raise CLIError(f"{path}: the header names a column more than once ({parts}); give "
                       "each column its own name.")


def read_table(path: str) -> Table:
    """Reads a CSV file (standard library ``csv``) or, with pandas installed, Parquet."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    if p.suffix.lower() in (".parquet", ".pq"):
        try:
            import pandas as pd
        except ImportError:
            raise CLIError(f"{path}: reading Parquet needs pandas and pyarrow "
                           "(pip install pandas pyarrow); or save the data as CSV.") from None
        try:
            frame = pd.read_parquet(p)
        except Exception as err:  # noqa: BLE001 - the engine's own message is the best one
            raise CLIError(f"could not read {path}: {err}") from None
        names = [str(c) for c in frame.columns]
        _check_header(path, names)
        cols = {}
        for c, name in zip(frame.columns, names):
            cols[name] = [None if (v is None or (isinstance(v, float) and np.isnan(v))
                                   or str(v).strip().lower() in _MISSING) else str(v)
                          for v in frame[c].tolist()]
        return Table(path, names, cols)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CLIError(f"could not read {path}: {err}") from None
    while rows and not any(f.strip() for f in rows[-1]):
        rows.pop()
    if not rows:
        raise CLIError(f"{path} is empty; it needs a header row and data rows.")
    names = [h.strip() for h in rows[0]]
    _check_header(path, names)
    cols: dict[str, list] = {n: [] for n in names}
    for i, row in enumerate(rows[1:], start=1):
        if len(row) != len(names):
            raise CLIError(f"{path}: row {i} has {len(row)} fields, the header has "
                           f"{len(names)}.")
        for n, v in zip(names, row):
            v = v.strip()
            cols[n].append(None if v.lower() in _MISSING else v)
    return Table(path, names, cols)


# ------------------------------------------------------------------------------- output


def _jsonable(a: Any) -> Any:
    if isinstance(a, dict):
        return {str(k): _jsonable(v) for k, v in a.items()}
    arr = np.asarray(a)
    if arr.dtype.kind in "fc":
        arr = arr.astype(np.float64)
        if arr.ndim == 0:
            v = float(arr)
            return v if np.isfinite(v) else None
        return [_jsonable(v) for v in arr]
    if arr.dtype.kind == "b":
        return bool(arr) if arr.ndim == 0 else arr.tolist()
    if arr.dtype.kind in "iu":
        return int(arr) if arr.ndim == 0 else arr.tolist()
    return arr.tolist()


def _status_json(res) -> dict:
    return {"converged": bool(np.asarray(res.converged)), "status": int(np.asarray(res.status)),
            "message": res.message, "loglik": _jsonable(res.loglik), "aic": _jsonable(res.aic),
            "bic": _jsonable(res.bic), "nobs": int(np.asarray(res.nobs)),
            "n_steps": int(np.asarray(getattr(res, "fit_result", res).n_steps))}


def _check_converged(res, what: str) -> None:
    if not bool(np.asarray(res.converged)):
        raise _NotConverged(f"the {what} did not converge: {res.message}")


def _save_plot(fn: Callable, path: str, **kwargs) -> None:
    try:
        import matplotlib
    except ImportError:
        raise CLIError("--plot needs matplotlib, an optional extra: pip install "
                       "'mlejax[plot]' (or pip install matplotlib).") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    try:
        fig = fn(path=path, **kwargs)
    except OSError as err:
        raise CLIError(f"could not save the plot to {path}: {err}") from None
    plt.close(fig)
    print(f"mlejax: plot saved to {path}", file=sys.stderr)


def _split_names(text: str, what: str) -> list[str]:
    names = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in names):
        raise CLIError(f"{what} must be a comma-separated list of names; got {text!r}.")
    return names


def _parser(sub, name: str, help: str, example: str, description: str | None = None):
    return sub.add_parser(name, help=help, description=description or help,
                          epilog="example:\n  " + example,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_input(p, columns: bool = False) -> None:
    p.add_argument("path", metavar="FILE", help="a CSV file with a header row (or .parquet, "
                   "with pandas installed)")
    if columns:
        p.add_argument("--columns", required=True, help="comma-separated column names")
    else:
        p.add_argument("--column", required=True, help="the column holding the data")
    p.add_argument("--dropna", action="store_true",
                   help="drop rows with missing values (by default they are an error)")


# ------------------------------------------------------------------------------- fit


def _run_fit(args: argparse.Namespace) -> int:
    import mlejax as mj
    fixed = None
    if args.fixed is not None:
        try:
            fixed = json.loads(args.fixed)
        except json.JSONDecodeError as err:
            raise CLIError(f"--fixed must be a JSON object such as '{{\"df\": 5}}': {err}") \
                from None
        if not isinstance(fixed, dict):
            raise CLIError(f"--fixed must be a JSON object such as '{{\"df\": 5}}'; got "
                           f"{args.fixed!r}.")
    x = read_table(args.path).numeric([args.column], args.dropna)[:, 0]
    res = mj.fit_distribution(x, args.dist, fixed=fixed, warn=False)
    if args.json:
        out = {"dist": mj.distributions.get(args.dist).name, "column": args.column,
               "params": _jsonable(res.params), "stderr": _jsonable(res.stderr),
               "fixed": fixed or {}, **_status_json(res)}
        print(json.dumps(out, indent=2))
    else:
        print(f"{mj.distributions.get(args.dist).name} fitted to column {args.column!r} "
              f"of {args.path}" + (f" (fixed: {fixed})" if fixed else ""))
        print(res.summary())
    if args.plot:
        import mlejax.plot as mplot
        _save_plot(mplot.density, args.plot, x=x, res=res, dist=args.dist, fixed=fixed,
                   kind=args.kind)
    _check_converged(res, f"{args.dist} fit")
    return 0


def _add_fit(sub) -> None:
    p = _parser(sub, "fit", "fit one distribution to a column by maximum likelihood",
                "mlejax fit data.csv --column x --dist gamma --plot fit.png")
    _add_input(p)
    p.add_argument("--dist", required=True,
                   help="distribution name: normal, gamma, lognormal, weibull, poisson, ...")
    p.add_argument("--fixed", metavar="JSON", help="parameters held fixed, e.g. '{\"df\": 5}'")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--plot", metavar="PATH", help="save the fitted density over the histogram "
                   "with a QQ/PP plot (needs matplotlib)")
    p.add_argument("--kind", choices=("qq", "pp"), default="qq",
                   help="the second panel of --plot (default qq)")
    p.set_defaults(func=_run_fit)


# ------------------------------------------------------------------------------- compare

_CONTINUOUS = ["normal", "lognormal", "gamma", "weibull", "exponential"]
_DISCRETE = ["poisson", "negative_binomial", "geometric"]


def _run_compare(args: argparse.Namespace) -> int:
    import mlejax as mj
    x = read_table(args.path).numeric([args.column], args.dropna)[:, 0]
    if args.candidates is not None:
        cands = _split_names(args.candidates, "--candidates")
    elif np.all(x >= 0) and np.all(x == np.round(x)):
        cands = _DISCRETE
    else:
        cands = _CONTINUOUS
    cmp = mj.compare_distributions(x, cands, criterion=args.criterion)
    print(f"column {args.column!r} of {args.path} (n = {x.size}), ranked by "
          f"{args.criterion.upper()}:")
    print(cmp)
    print(f"best: {cmp.best}")
    _check_converged(cmp.results[cmp.best], f"fit of the best candidate ({cmp.best})")
    return 0


def _add_compare(sub) -> None:
    p = _parser(sub, "compare", "fit candidate distributions to a column and rank them",
                "mlejax compare data.csv --column x --candidates normal,gamma,weibull")
    _add_input(p)
    p.add_argument("--candidates", help="comma-separated distribution names (default: "
                   f"{','.join(_CONTINUOUS)}; for counts {','.join(_DISCRETE)})")
    p.add_argument("--criterion", choices=("aic", "bic"), default="aic",
                   help="the ranking criterion (default aic)")
    p.set_defaults(func=_run_compare)


# ------------------------------------------------------------------------------- gmm


def _mixture_table(res) -> str:
    w = np.asarray(res.params["weights"], np.float64)
    mu = np.asarray(res.params["means"], np.float64)
    lines = [f"{'component':>9} {'weight':>8}  mean"]
    for j in range(w.shape[0]):
        lines.append(f"{j:>9} {w[j]:>8.4f}  " + " ".join(f"{v:.6g}" for v in mu[j]))
    return "\n".join(lines)


def _run_gmm(args: argparse.Namespace) -> int:
    import jax
    import mlejax as mj
    cols = _split_names(args.columns, "--columns")
    x = read_table(args.path).numeric(cols, args.dropna)
    if args.components < 1:
        raise CLIError(f"--components must be at least 1; got {args.components}.")
    if args.n_init < 1:
        raise CLIError(f"--n-init must be at least 1; got {args.n_init}.")
    model = mj.GaussianMixture(args.components, covariance_type=args.covariance_type)
    res = model.fit(x, key=jax.random.key(args.seed), n_init=args.n_init, warn=False)
    print(f"Gaussian mixture ({args.components} components, {args.covariance_type} "
          f"covariances) of columns {', '.join(cols)} of {args.path}")
    print(f"log-likelihood: {float(res.loglik):.10g}    AIC: {float(res.aic):.6g}    "
          f"BIC: {float(res.bic):.6g}    EM steps: {int(res.n_steps)}    nobs: "
          f"{int(res.nobs)}")
    print(f"status: {res.message}")
    print(_mixture_table(res))
    if bool(np.asarray(res.degenerate)):
        print("mlejax: a component emptied or collapsed (degenerate); try fewer components "
              "or more --n-init.", file=sys.stderr)
    if args.plot:
        import mlejax.plot as mplot
        _save_plot(mplot.mixture, args.plot, res=res, x=x)
    _check_converged(res, "mixture fit")
    return 0


def _add_gmm(sub) -> None:
    p = _parser(sub, "gmm", "fit a Gaussian mixture to some columns by EM",
                "mlejax gmm data.csv --columns a,b --components 3 --plot clusters.png")
    _add_input(p, columns=True)
    p.add_argument("--components", type=int, required=True, help="the number of components")
    p.add_argument("--covariance-type", choices=("full", "tied", "diag", "spherical"),
                   default="full", help="the covariance structure (default full)")
    p.add_argument("--n-init", type=int, default=4, help="EM starts (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the starts")
    p.add_argument("--plot", metavar="PATH",
                   help="save the clusters with covariance ellipses and the EM trace")
    p.set_defaults(func=_run_gmm)


# ------------------------------------------------------------------------------- regress

_FAMILIES = {"logistic": "Logistic", "linear": "Linear", "poisson": "Poisson",
             "probit": "Probit", "negative_binomial": "NegativeBinomial", "gamma": "Gamma",
             "student_t": "StudentT", "binomial": "Binomial",
             "inverse_gaussian": "InverseGaussian", "tweedie": "Tweedie",
             "negative_binomial1": "NegativeBinomial1",
             "generalized_poisson": "GeneralizedPoisson",
             "truncated_poisson": "TruncatedPoisson",
             "truncated_negative_binomial": "TruncatedNegativeBinomial",
             "zero_inflated_poisson": "ZeroInflatedPoisson",
             "zero_inflated_negative_binomial": "ZeroInflatedNegativeBinomial",
             "hurdle_poisson": "HurdlePoisson",
             "hurdle_negative_binomial": "HurdleNegativeBinomial",
             "multinomial_logit": "MultinomialLogit", "ordered_logit": "OrderedLogit",
             "ordered_probit": "OrderedProbit"}


def _model_options(args: argparse.Namespace) -> dict:
    """The model's constructor options the command line sets (--link, --power)."""
    out = {}
    if args.link is not None:
        out["link"] = args.link
    if args.power is not None:
        out["power"] = args.power
    if args.family == "tweedie" and args.power is None:
        raise CLIError("--family tweedie needs --power P (1 < P < 2).")
    return out


def _read_frame(path: str):
    """A CSV or Parquet file as a pandas DataFrame (formulas need pandas and formulaic)."""
    import importlib.util
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is None or importlib.util.find_spec("formulaic") is None:
        raise CLIError("regress reads formulas with formulaic and pandas: pip install "
                       "\"mlejax[formula]\".") from None
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        return pd.read_csv(p, skipinitialspace=True)
    except Exception as err:  # noqa: BLE001 - the reader's own message is the best one
        raise CLIError(f"could not read {path}: {err}") from None


def _run_regress(args: argparse.Namespace) -> int:
    import mlejax as mj
    frame = _read_frame(args.path)
    cls = getattr(mj.models, _FAMILIES[args.family])
    try:
        fm = cls.from_formula(args.formula, frame, missing="drop" if args.dropna else "raise",
                              context={"np": np}, **_model_options(args))
        inputs = {"trials": args.trials} if args.trials is not None else {}
        res = fm.fit(warn=False, cov_type=args.cov_type, **inputs)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None
    if args.json:
        table = res.coef_table()
        features = set(res.feature_names)    # a multinomial logit's are 'x1:y=b'
        coefs = [n for n in res.param_names if n in features or n.split(":y=")[0] in features]
        out = {"family": args.family, "formula": args.formula,
               "coefficients": {n: _jsonable(table[n]["estimate"]) for n in coefs},
               "stderr": {n: _jsonable(table[n]["stderr"]) for n in res.param_names},
               "other_params": {n: _jsonable(table[n]["estimate"]) for n in res.param_names
                                if n not in coefs},
               "p_values": {n: _jsonable(table[n]["p"]) for n in res.param_names},
               **_status_json(res)}
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.formula}  ({args.path}, n = {fm.y.size})")
        print(res.summary())
    _check_converged(res, f"{args.family} regression")
    return 0


def _add_regress(sub) -> None:
    p = _parser(sub, "regress", "fit a regression model given by a formula",
                'mlejax regress data.csv --formula "y ~ x1 + x2" --family logistic')
    p.add_argument("path", metavar="FILE", help="a CSV file with a header row (or .parquet, "
                   "with pandas installed)")
    p.add_argument("--formula", required=True,
                   help="a Wilkinson formula (formulaic): 'y ~ x1 + C(g) + np.log(x2)', "
                   "interactions 'a:b' and 'a*b'; intercept included ('0 +' drops it)")
    p.add_argument("--family", required=True, choices=tuple(_FAMILIES),
                   help="the model")
    p.add_argument("--link", default=None,
                   help="the link, for the families that have a choice (binomial: logit, "
                   "probit, cloglog, log, cauchit; gamma: inverse, log, identity; ...)")
    p.add_argument("--power", type=float, default=None,
                   help="Tweedie's variance power (1 < P < 2); needed with --family tweedie")
    p.add_argument("--trials", metavar="COLUMN", default=None,
                   help="binomial: the column of trials (the response counts successes)")
    p.add_argument("--cov-type", choices=("observed", "expected"), default="observed",
                   help="standard errors from the observed information (default) or the "
                   "expected (Fisher) information, as R's glm and glm.nb report them")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--dropna", action="store_true",
                   help="drop rows with missing values (by default they are an error)")
    p.set_defaults(func=_run_regress)


# ------------------------------------------------------------------------------- demo


def _run_demo(args: argparse.Namespace) -> int:
    import jax
    import mlejax as mj
    if args.n < 20 or args.k < 1:
        raise CLIError(f"--n must be at least 20 and --k at least 1; got {args.n}, {args.k}.")
    n, k = args.n, args.k
    rng = np.random.default_rng(args.seed)
    plot_dir = None
    if args.plot_dir:
        plot_dir = Path(args.plot_dir)
        plot_dir.mkdir(parents=True, exist_ok=True)

    def plot(fn, name, **kw):
        if plot_dir is not None:
            import mlejax.plot as mplot
            _save_plot(getattr(mplot, fn), str(plot_dir / name), **kw)

    failed = []

    def note(res, what):
        if not bool(np.all(np.asarray(res.converged))):
            failed.append(what)

    print(f"== Gamma distribution: n = {n} draws with shape 2, scale 3 ==")
    x = rng.gamma(2.0, 3.0, n)
    res = mj.fit_distribution(x, "gamma", warn=False)
    print(res.summary())
    note(res, "gamma fit")
    plot("density", "density.png", x=x, res=res, dist="gamma")

    print(f"\n== Logistic regression: n = {n}, true coefficients 0.5, 1, -1 ==")
    X = rng.normal(size=(n, 2))
    eta = 0.5 + X[:, 0] - X[:, 1]
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    reg = mj.models.Logistic().fit(X, y, feature_names=["x1", "x2"], warn=False)
    print(reg.summary())
    note(reg, "logistic regression")
    plot("trace", "trace.png", res=reg)

    print(f"\n== Gaussian mixture: n = {n} points from 2 clusters, EM from 4 starts ==")
    pts = rng.normal(size=(n, 2))
    pts[: n // 2] += 4.0
    mix = mj.GaussianMixture(2).fit(pts, key=jax.random.key(args.seed), n_init=4, warn=False)
    print(f"log-likelihood: {float(mix.loglik):.10g}    EM steps: {int(mix.n_steps)}    "
          f"status: {mix.message}")
    print(_mixture_table(mix))
    note(mix, "mixture fit")
    plot("mixture", "mixture.png", res=mix, x=pts)

    print(f"\n== A batch of {k} fits: {k} gamma datasets of n = {n}, one compiled program ==")
    xs = rng.gamma(2.0, 3.0, (k, n))
    batch = mj.fit_distribution(xs, "gamma", warn=False)
    conv = np.asarray(batch.converged)
    print(f"converged: {int(conv.sum())} of {k}")
    for name in ("shape", "scale"):
        est = np.asarray(batch.params[name], np.float64)
        print(f"{name:<6} mean {est.mean():.4g}   sd {est.std():.4g}   "
              f"mean std err {np.nanmean(np.asarray(batch.stderr[name])):.4g}")
    note(batch, "batch of fits")
    if k > 1:
        plot("batch", "batch.png", res=batch, truth={"shape": 2.0, "scale": 3.0})
    if failed:
        raise _NotConverged("did not converge: " + ", ".join(failed))
    return 0


def _add_demo(sub) -> None:
    p = _parser(sub, "demo", "the main job on generated data: fits, tables and plots",
                "mlejax demo --n 500 --k 1000 --plot-dir plots")
    p.add_argument("--n", type=int, default=500, help="observations per dataset (default 500)")
    p.add_argument("--k", type=int, default=1000,
                   help="datasets in the batch of fits (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--plot-dir", metavar="DIR", help="save the plots in this folder")
    p.set_defaults(func=_run_demo)


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
    "demo": _add_demo,
    "fit": _add_fit,
    "compare": _add_compare,
    "gmm": _add_gmm,
    "regress": _add_regress,
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
    """Entry point of the ``mlejax`` script; returns the exit status (0 success, 1 a fit that
    did not converge, 2 an error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as stop:        # --help (0) or a usage error (2, already printed)
        return 0 if stop.code in (0, None) else 2
    if getattr(args, "func", None) is None:
        ap.print_help()
        return 2
    args.argv = argv
    if args.func is _bench_run:
        return int(args.func(args))
    import jax
    jax.config.update("jax_enable_x64", True)
    try:
        return int(args.func(args))
    except _NotConverged as err:
        print(f"mlejax {args.command}: {err}", file=sys.stderr)
        return 1
    except CLIError as err:
        print(f"mlejax {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, ImportError, OSError) as err:
        print(f"mlejax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
