"""Plots of fits: the pictures that say whether to trust a maximum-likelihood estimate.

matplotlib is an optional extra (``pip install "mlejax[plot]"``), imported only when a plot
is drawn, so ``import mlejax`` never needs it. Every function returns the matplotlib
``Figure`` and, with ``path=``, also saves it there (the format from the file's suffix).

* :func:`trace`: log-likelihood per iteration, one line per restart ("watch it rise").
* :func:`profile`: the profile-likelihood deviance with the chi-square cut-off, the interval
  it gives and the Wald (quadratic) approximation for comparison.
* :func:`density`: a fitted density (or mass) over the histogram of the data, with a QQ or
  PP plot.
* :func:`mixture`: points coloured by component with covariance ellipses, plus the EM trace.
* :func:`batch`: histograms of the estimates and of steps-to-converge, and status counts.
* :func:`surface`: the log-likelihood over two parameters (the others held at the
  estimate) with the optimisation path from given starts.

Example:
  >>> import mlejax.plot as mplot                                    # doctest: +SKIP
  >>> mplot.trace(res, path="trace.png")                             # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlejax._objective import solver_setup
from mlejax.status import Status

__all__ = ["batch", "density", "mixture", "profile", "surface", "trace"]


def _plt():
    """pyplot, imported on first use, with a message naming the extra when it is missing."""
    try:
        import matplotlib
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("mlejax.plot needs matplotlib, an optional extra: "
                          "pip install 'mlejax[plot]' (or pip install matplotlib).") from err
    del matplotlib
    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _single(res, what: str):
    if getattr(res, "is_batch", False):
        raise ValueError(f"{what} draws one fit; got a batch. Pick one with "
                         "jax.tree_util.tree_map(lambda a: a[i], res), or use mlejax.plot.batch.")


def _core(res):
    """The core FitResult of a FitResult or a models.RegressionResult."""
    return getattr(res, "fit_result", res)


# ------------------------------------------------------------------------------ trace


def trace(res: Any, *, relative: bool = False, ax=None, path: str | None = None):
    """The log-likelihood after each iteration: one line per restart, the best one bold.

    Args:
      res: a :class:`~mlejax.FitResult` (every start drawn when it was fitted with
        ``restarts=``), a :class:`~mlejax.MixtureResult` or a regression result.
      relative: plot ``loglik_max - loglik`` on a log scale instead (how fast the gap closes).
      ax: an existing matplotlib Axes to draw into.
      path: where to save the figure.

    Returns:
      The matplotlib Figure.

    Example:
      >>> import mlejax.plot as mplot
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma", start="moments")   # a few Newton steps
      >>> fig = mplot.trace(res)                       # path="trace.png" saves it
      >>> len(fig.axes), fig.axes[0].get_xlabel()
      (1, 'iteration')
    """
    plt = _plt()
    res = _core(res)
    _single(res, "trace")
    best = np.asarray(res.trace, np.float64)
    restarts = getattr(res, "restarts", None)
    lines = np.asarray(restarts.trace, np.float64) if restarts is not None else best[None]
    codes = (np.asarray(restarts.status) if restarts is not None
             else np.asarray(res.status)[None])
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 4.0))
    top = np.nanmax(best)
    for i, (line, code) in enumerate(zip(lines, codes)):
        y = line[np.isfinite(line)]
        if relative:
            y = np.maximum(top - y, np.finfo(np.float64).tiny * 1e10)
        ls = "-" if int(code) == Status.CONVERGED else ":"
        ax.plot(np.arange(y.size), y, ls, lw=0.8, alpha=0.6,
                label="restarts (dotted: not converged)" if i == 0 and len(lines) > 1 else None)
    y = best[np.isfinite(best)]
    if relative:
        y = np.maximum(top - y, np.finfo(np.float64).tiny * 1e10)
        ax.set_yscale("log")
    ax.plot(np.arange(y.size), y, "k-", lw=2.0, marker="o", ms=3, label="best")
    if not relative and lines.shape[0] > 1:
        # Starts far below the optimum would flatten the picture: show the top of the range.
        finite = lines[np.isfinite(lines)]
        lo = np.quantile(finite, 0.1)
        ax.set_ylim(lo - 0.05 * (top - lo + 1e-12), top + 0.05 * (top - lo + 1e-12))
    ax.set_xlabel("iteration")
    ax.set_ylabel("loglik_max - loglik" if relative else "log-likelihood")
    n = lines.shape[0]
    ax.set_title(f"log-likelihood trace ({n} start{'s' if n > 1 else ''})")
    ax.legend(loc="lower right" if not relative else "upper right", fontsize=8)
    return _finish(fig, path)


# ------------------------------------------------------------------------------ profile


def _crossings(grid, dev, thr, est):
    lo = hi = np.nan
    left, right = grid < est, grid > est
    for side, mask in (("lo", left), ("hi", right)):
        g, d = grid[mask], dev[mask]
        if side == "lo":
            g, d = g[::-1], d[::-1]
        above = np.nonzero(d >= thr)[0]
        if above.size and above[0] > 0:
            j = above[0]
            x = np.interp(thr, [d[j - 1], d[j]], [g[j - 1], g[j]])
        elif above.size:
            x = g[0]
        else:
            x = np.nan
        if side == "lo":
            lo = x
        else:
            hi = x
    return lo, hi


def profile(res: Any, name: str | None = None, *, grid: Any = None, level: float = 0.95,
            width: float = 4.0, points: int = 41, ax=None, path: str | None = None):
    """The profile deviance of one parameter with the chi-square cut-off and its interval.

    The curve is ``2 (loglik_max - loglik_profile(theta))`` from :func:`mlejax.profile`; it
    crosses the ``chi2_1(level)`` line at the ends of the profile-likelihood interval (marked,
    with the numbers in the title). The dashed parabola is the Wald approximation
    ``((theta - estimate) / stderr)^2``: where the two differ, prefer the profile interval.

    Args:
      res: a single :class:`~mlejax.FitResult` (or regression result), or a
        :class:`~mlejax.ProfileCurve` already computed.
      name: the parameter (one of ``res.param_names``; needed unless a curve is given).
      grid: values of the parameter (default ``estimate +- width * stderr``, ``points`` of
        them, kept inside a positive or interval constraint).
      level: the confidence level of the cut-off.

    Returns:
      The matplotlib Figure.

    Example:
      >>> import mlejax.plot as mplot
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma", start="moments")   # a few Newton steps
      >>> fig = mplot.profile(res, "shape")
      >>> fig.axes[0].get_title()
      'profile of shape: estimate 1.709, interval [0.7576, 3.316]'
    """
    plt = _plt()
    from mlejax import inference

    res = _core(res)
    if isinstance(res, inference.ProfileCurve):
        curve, se = res, np.nan
        name = curve.name
    else:
        _single(res, "profile")
        if name is None or name not in res.param_names:
            raise ValueError(f"name must be one of {res.param_names}; got {name!r}.")
        i = res.param_names.index(name)
        est = float(res.flat_params()[i])
        se = float(res.flat_stderr()[i])
        if grid is None:
            grid = _default_grid(res, i, est, se, width, points)
        curve = inference.profile(res, name, grid)
    g = np.asarray(curve.grid, np.float64)
    dev = np.asarray(curve.deviance, np.float64)
    est = float(np.asarray(curve.estimate))
    thr = inference.ProfileCurve.threshold(level)
    lo, hi = _crossings(g, dev, thr, est)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 4.0))
    ok = np.asarray(curve.status) == Status.CONVERGED
    ax.plot(g, dev, "C0-", lw=2, label="profile deviance")
    if not np.all(ok):
        ax.plot(g[~ok], dev[~ok], "rx", label="refit not converged")
    if np.isfinite(se) and se > 0:
        ax.plot(g, ((g - est) / se) ** 2, "C1--", lw=1, label="Wald (quadratic)")
    ax.axhline(thr, color="grey", lw=1, label=f"chi2_1({level:g}) = {thr:.3g}")
    ax.axvline(est, color="k", lw=0.8, ls=":")
    for x in (lo, hi):
        if np.isfinite(x):
            ax.axvline(x, color="C2", lw=1)
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axvspan(lo, hi, color="C2", alpha=0.12, label=f"{level:.0%} profile interval")
    ax.set_ylim(0, max(thr * 2.5, 1.0))
    ax.set_xlabel(name)
    ax.set_ylabel("2 (loglik_max - loglik_profile)")
    ax.set_title(f"profile of {name}: estimate {est:.4g}, interval [{lo:.4g}, {hi:.4g}]")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def _default_grid(res, i, est, se, width, points):
    if not (np.isfinite(se) and se > 0):
        se = max(abs(est), 1.0) * 0.1
    lo, hi = est - width * se, est + width * se
    # Keep the grid inside the constraint of the parameter's leaf.
    problem = res.context.config.problem
    cons = []
    for c, shape in zip(problem.constraints, problem.nat_shapes):
        cons += [c] * int(np.prod(shape))
    c = cons[i]
    lower = getattr(c, "lower", getattr(c, "lo", None))
    upper = getattr(c, "hi", None)
    if lower is not None and np.isfinite(lower):
        lo = max(lo, lower + 0.02 * (est - lower))
    if upper is not None and np.isfinite(upper):
        hi = min(hi, upper - 0.02 * (upper - est))
    return np.linspace(lo, hi, points)


# ------------------------------------------------------------------------------ density


def density(x: Any, res: Any, dist: str, *, fixed: dict | None = None, kind: str = "qq",
            bins: int | str = "auto", path: str | None = None):
    """A fitted distribution over the histogram of the data, with a QQ or PP plot.

    Args:
      x: the data that were fitted, ``(n,)``.
      res: the result of ``mj.fit_distribution(x, dist)``.
      dist: the distribution's name (as given to ``fit_distribution``).
      fixed: the values held fixed in the fit (``fixed=`` of ``fit_distribution``).
      kind: ``"qq"`` (sample quantiles against fitted ones) or ``"pp"`` (empirical against
        fitted probabilities). The fitted cdf is the numerical integral of the density.

    Returns:
      The matplotlib Figure (two panels).

    Example:
      >>> import mlejax.plot as mplot
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma", start="moments")   # a few Newton steps
      >>> fig = mplot.density(x, res, "gamma", kind="pp")
      >>> [ax.get_title() for ax in fig.axes][1]
      'PP plot'
    """
    plt = _plt()
    from mlejax import distributions as D

    if kind not in ("qq", "pp"):
        raise ValueError(f"kind must be 'qq' or 'pp'; got {kind!r}.")
    res = _core(res)
    _single(res, "density")
    d = D.get(dist)
    if d.event_ndim:
        raise ValueError(f"density draws univariate distributions; {d.name} is multivariate.")
    x = np.sort(np.asarray(x, np.float64).ravel())
    params = {k: jnp.asarray(v) for k, v in dict(res.params).items()}
    for k, v in (fixed or {}).items():
        params[k] = jnp.asarray(v, jnp.result_type(float))
    n = x.size
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.0))
    if d.discrete:
        support = np.arange(max(0.0, np.floor(x.min()) - 2), np.ceil(x.max()) + 3)
        pmf = np.exp(np.asarray(d.logpdf(params, jnp.asarray(support)), np.float64))
        pmf = np.where(np.isfinite(pmf), pmf, 0.0)
        vals, counts = np.unique(x, return_counts=True)
        a1.bar(vals, counts / n, width=0.8, alpha=0.5, label="data (relative frequency)")
        a1.plot(support, pmf, "C3o-", ms=4, lw=1, label=f"fitted {d.name} mass")
        cdf_grid, cdf = support, np.cumsum(pmf)
    else:
        spread = x[-1] - x[0]
        grid = np.linspace(x[0] - 0.1 * spread, x[-1] + 0.1 * spread, 2001)
        pdf = np.exp(np.asarray(d.logpdf(params, jnp.asarray(grid)), np.float64))
        pdf = np.where(np.isfinite(pdf), pdf, 0.0)
        a1.hist(x, bins=bins, density=True, alpha=0.5, label="data")
        a1.plot(grid, pdf, "C3-", lw=2, label=f"fitted {d.name} density")
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
        cdf = cdf / cdf[-1] if cdf[-1] > 0 else cdf
        cdf_grid = grid
    a1.set_xlabel("x")
    a1.set_title(f"{d.name}: " + ", ".join(f"{k}={float(np.asarray(v)):.4g}"
                                          for k, v in params.items() if np.ndim(v) == 0))
    a1.legend(fontsize=8)
    pos = (np.arange(1, n + 1) - 0.5) / n
    if kind == "pp":
        fitted = np.interp(x, cdf_grid, cdf)
        a2.plot(fitted, pos, "C0.", ms=3)
        a2.plot([0, 1], [0, 1], "k--", lw=1)
        a2.set_xlabel("fitted cdf")
        a2.set_ylabel("empirical cdf")
        a2.set_title("PP plot")
    else:
        # The fitted quantile at each plotting position, from the monotone numerical cdf.
        keep = np.concatenate([[True], np.diff(cdf) > 0])
        q = np.interp(pos, cdf[keep], cdf_grid[keep])
        a2.plot(q, x, "C0.", ms=3)
        lims = [min(q.min(), x[0]), max(q.max(), x[-1])]
        a2.plot(lims, lims, "k--", lw=1)
        a2.set_xlabel(f"fitted {d.name} quantile")
        a2.set_ylabel("sample quantile")
        a2.set_title("QQ plot")
    return _finish(fig, path)


# ------------------------------------------------------------------------------ mixture


def _ellipse(ax, mean, cov, color, n_std):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 0.0)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    for s in n_std:
        ax.add_patch(Ellipse(mean, 2 * s * np.sqrt(vals[-1]), 2 * s * np.sqrt(vals[0]),
                             angle=angle, fill=False, color=color, lw=1.5))


def _full_covariances(params, cov_type: str, k: int, d: int) -> np.ndarray:
    c = np.asarray(params["covariances"], np.float64)
    if cov_type == "full":
        return c
    if cov_type == "tied":
        return np.broadcast_to(c, (k, d, d))
    if cov_type == "diag":
        return np.stack([np.diag(row) for row in c])
    return np.stack([v * np.eye(d) for v in c])


def mixture(res: Any, x: Any, *, dims: Sequence[int] = (0, 1), n_std: Sequence[float] = (1, 2),
            path: str | None = None):
    """A fitted Gaussian mixture: points by most probable component with covariance
    ellipses (``n_std`` standard deviations) on two of the dimensions, and the EM trace.

    Args:
      res: a single :class:`~mlejax.MixtureResult` of a ``GaussianMixture``.
      x: the data, ``(n, d)`` (``(n,)`` for one dimension: a histogram with the components).
      dims: the two dimensions drawn.

    Returns:
      The matplotlib Figure (two panels).

    Example:
      >>> import mlejax.plot as mplot
      >>> x = jax.random.normal(jax.random.key(1), (500, 2)).at[:250].add(4.0)
      >>> res = mj.GaussianMixture(2).fit(x, key=jax.random.key(0), n_init=4)
      >>> fig = mplot.mixture(res, x)
      >>> fig.axes[1].get_title()
      'EM trace: CONVERGED, 10 iterations'
    """
    plt = _plt()
    _single(res, "mixture")
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    means = np.asarray(res.params["means"], np.float64)
    k, d = means.shape
    cov_type = getattr(res.model, "covariance_type", "full")
    covs = _full_covariances(res.params, cov_type, k, d)
    w = np.asarray(res.params["weights"], np.float64)
    labels = np.asarray(res.predict(jnp.asarray(x, jnp.asarray(res.loglik).dtype)))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    colors = [f"C{j % 10}" for j in range(k)]
    if d == 1:
        a1.hist(x[:, 0], bins="auto", density=True, alpha=0.4, color="grey")
        grid = np.linspace(x.min(), x.max(), 400)
        for j in range(k):
            s = np.sqrt(covs[j, 0, 0])
            a1.plot(grid, w[j] * np.exp(-0.5 * ((grid - means[j, 0]) / s) ** 2)
                    / (s * np.sqrt(2 * np.pi)), color=colors[j], lw=2)
        a1.set_xlabel("x")
    else:
        i, j2 = dims
        for j in range(k):
            m = labels == j
            a1.scatter(x[m, i], x[m, j2], s=6, color=colors[j], alpha=0.6,
                       label=f"component {j} (weight {w[j]:.2f})")
            sub = covs[j][np.ix_([i, j2], [i, j2])]
            _ellipse(a1, means[j, [i, j2]], sub, colors[j], n_std)
            a1.plot(*means[j, [i, j2]], "k+", ms=10)
        a1.set_xlabel(f"x[{i}]")
        a1.set_ylabel(f"x[{j2}]")
        a1.legend(fontsize=8, markerscale=2)
    a1.set_title(f"Gaussian mixture, k={k} ({cov_type}); ellipses at "
                 f"{', '.join(f'{s:g}' for s in n_std)} sd")
    trace(res, ax=a2)
    a2.set_title(f"EM trace: {Status(int(res.status)).name}, {int(res.n_steps)} iterations")
    return _finish(fig, path)


# ------------------------------------------------------------------------------ batch


def batch(res: Any, *, params: Sequence[str] | None = None, truth: dict | None = None,
          max_params: int = 4, path: str | None = None):
    """A batch of fits: histograms of estimates and of steps-to-converge, status counts.

    Args:
      res: a batched :class:`~mlejax.FitResult` (from ``mj.fit_batch``), regression or
        mixture result.
      params: flattened parameter names to draw (default the first ``max_params``).
      truth: optional ``{name: value}`` drawn as vertical lines.

    Returns:
      The matplotlib Figure.

    Example:
      >>> import mlejax.plot as mplot
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> batch = mj.fit_distribution(jnp.stack([x, 2 * x, x + 1]), "gamma")   # 3 fits
      >>> fig = mplot.batch(batch, truth={"shape": 2.0})
      >>> [ax.get_title() for ax in fig.axes if ax.get_visible()][-1]
      'status of 3 fits (100.0% converged)'
    """
    plt = _plt()
    res = _core(res)
    if not getattr(res, "is_batch", False):
        raise ValueError("batch draws a batch of fits (from fit_batch); got a single fit.")
    codes = np.asarray(res.status).ravel()
    steps = np.asarray(res.n_steps).ravel()
    conv = codes == Status.CONVERGED
    panels = []
    if hasattr(res, "flat_params"):
        names = list(res.param_names)
        est = res.flat_params().reshape(codes.size, -1)
        chosen = list(params) if params is not None else names[:max_params]
        for nm in chosen:
            if nm not in names:
                raise ValueError(f"params: {nm!r} is not one of {names}.")
            panels.append((nm, est[:, names.index(nm)]))
    else:  # a mixture: the log-likelihoods
        panels.append(("log-likelihood", np.asarray(res.loglik, np.float64).ravel()))
    n = len(panels) + 2
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False)
    axes = axes.ravel()
    for ax, (nm, v) in zip(axes, panels):
        ok = np.isfinite(v) & conv
        ax.hist(v[ok], bins="auto", alpha=0.7)
        if truth and nm in truth:
            ax.axvline(truth[nm], color="k", lw=1.5, label="truth")
            ax.legend(fontsize=8)
        ax.set_title(f"{nm}: median {np.nanmedian(v[ok]) if ok.any() else np.nan:.4g}")
    ax = axes[len(panels)]
    ax.hist(steps, bins=np.arange(steps.min(), steps.max() + 2) - 0.5, alpha=0.7, color="C1")
    ax.set_title(f"steps to stop (max {steps.max()})")
    ax.set_xlabel("steps")
    ax = axes[len(panels) + 1]
    statuses = [s for s in Status if s != Status.RUNNING]
    counts = [int(np.sum(codes == s)) for s in statuses]
    bars = ax.barh([s.name for s in statuses], counts,
                   color=["C2" if s == Status.CONVERGED else "C3" for s in statuses])
    for b, c in zip(bars, counts):
        if c:
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {c}", va="center",
                    fontsize=8)
    ax.set_title(f"status of {codes.size} fits ({conv.mean():.1%} converged)")
    for ax in axes[n:]:
        ax.set_visible(False)
    return _finish(fig, path)


# ------------------------------------------------------------------------------ surface


def _path_from(res, start: dict, max_steps: int) -> np.ndarray:
    """The natural-scale flat parameters after each step of the fit's own solver from
    ``start`` (the same solver and objective as the fit; run step by step on the host)."""
    cfg = res.context.config
    problem = cfg.problem
    if cfg.batch_size is not None:
        raise ValueError("surface: paths of minibatch fits are not drawn.")
    leaves = jax.tree_util.tree_leaves(start)
    u = problem.to_u([jnp.asarray(v, problem.dtype) for v in leaves])
    setup = solver_setup(cfg, res.context.data, res.context.weights, jax.random.key(0))
    solver = setup.solver
    step = jax.jit(solver.step)
    state = solver.init(u)
    out = [np.asarray(problem.natural_flat(state.u))]
    for _ in range(max_steps):
        new, progress = step(state)
        if not bool(progress) or not np.all(np.isfinite(np.asarray(new.u))):
            break
        done = abs(float(new.f) - float(state.f)) <= 1e-12 * max(abs(float(new.f)), 1.0)
        state = new
        out.append(np.asarray(problem.natural_flat(state.u)))
        if done:
            break
    return np.stack(out)


def surface(res: Any, x_name: str, y_name: str, *, starts: Sequence[dict] = (),
            x_range: tuple[float, float] | None = None,
            y_range: tuple[float, float] | None = None, grid_size: int = 60,
            max_steps: int = 100, path: str | None = None):
    """Contours of the log-likelihood over two parameters, the others held at the
    estimate, with the optimisation path of the fit's solver from each of ``starts``.

    Args:
      res: a single :class:`~mlejax.FitResult` (or regression result) of ``mj.fit``.
      x_name, y_name: flattened parameter names from ``res.param_names``.
      starts: starting values (natural scale, the structure of ``init``); the path of the
        same solver from each is drawn, ending with a marker where it stopped.
      x_range, y_range: the window (default: the estimate +- 4 standard errors, widened to
        hold the paths).
      grid_size: points per axis of the contour grid.
      max_steps: the longest path drawn.

    Returns:
      The matplotlib Figure.

    Example:
      >>> import mlejax.plot as mplot
      >>> x = jnp.array([0.8, 2.9, 1.7, 5.6, 3.1, 0.4, 2.2, 9.5, 1.3, 4.0, 2.6, 6.8])
      >>> res = mj.fit_distribution(x, "gamma", start="moments")   # a few Newton steps
      >>> fig = mplot.surface(res, "shape", "scale", starts=[{"shape": 1.0, "scale": 1.0}],
      ...                     grid_size=20)
      >>> fig.axes[0].get_title()
      'log-likelihood over (shape, scale)'
    """
    plt = _plt()
    res = _core(res)
    _single(res, "surface")
    if res.context is None:
        raise ValueError("surface needs a result of mj.fit (it re-evaluates the "
                         "log-likelihood); closed-form results carry no context.")
    names = list(res.param_names)
    for nm in (x_name, y_name):
        if nm not in names:
            raise ValueError(f"{nm!r} is not one of res.param_names {names}.")
    ix, iy = names.index(x_name), names.index(y_name)
    est = res.flat_params().astype(np.float64)
    se = res.flat_stderr().astype(np.float64)
    paths = [_path_from(res, s, max_steps) for s in starts]

    def window(i, given):
        if given is not None:
            return given
        s = se[i] if np.isfinite(se[i]) and se[i] > 0 else max(abs(est[i]), 1.0) * 0.2
        lo, hi = est[i] - 4 * s, est[i] + 4 * s
        for p in paths:
            lo, hi = min(lo, p[:, i].min()), max(hi, p[:, i].max())
        pad = 0.05 * (hi - lo)
        return lo - pad, hi + pad

    (x0, x1), (y0, y1) = window(ix, x_range), window(iy, y_range)
    gx, gy = np.linspace(x0, x1, grid_size), np.linspace(y0, y1, grid_size)
    cfg, ctx = res.context.config, res.context
    problem = cfg.problem
    flat = jnp.asarray(est, problem.dtype)

    def ll_at(a, b):
        p = problem.unravel_natural(flat.at[ix].set(a).at[iy].set(b))
        ll = cfg.loglik_fn(p, ctx.data)
        if cfg.per_obs:
            ll = jnp.sum(jnp.where(ctx.weights > 0, ctx.weights * ll, 0.0)
                         if ctx.weights is not None else ll)
        return ll

    A, B = np.meshgrid(gx, gy)
    Z = np.asarray(jax.jit(jax.vmap(ll_at))(jnp.asarray(A.ravel(), problem.dtype),
                                           jnp.asarray(B.ravel(), problem.dtype)),
                   np.float64).reshape(A.shape)
    Z = np.where(np.isfinite(Z), Z, np.nan)
    top = np.nanmax(Z)
    # Levels in deviance units below the top: even spacing where the eye needs it.
    dev = 2 * (top - Z)
    levels = np.unique(np.concatenate([[0.5, 1, 2, 4, 6, 10], np.geomspace(16, max(
        np.nanmax(dev), 17), 8)]))
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    cs = ax.contourf(A, B, np.log1p(dev), levels=30, cmap="viridis_r")
    ax.contour(A, B, dev, levels=levels, colors="k", linewidths=0.4, alpha=0.6)
    fig.colorbar(cs, ax=ax, label="log(1 + 2 (max - loglik)) in this slice")
    ax.plot(est[ix], est[iy], "r*", ms=14, label="estimate")
    for j, p in enumerate(paths):
        ax.plot(p[:, ix], p[:, iy], "o-", color=f"C{(j + 1) % 10}", ms=3, lw=1.2,
                label=f"path from start {j} ({p.shape[0] - 1} steps)")
        ax.plot(p[-1, ix], p[-1, iy], "s", color=f"C{(j + 1) % 10}", ms=8, mec="k")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    others = len(names) - 2
    ax.set_title(f"log-likelihood over ({x_name}, {y_name})"
                 + (f", {others} other(s) at the estimate" if others else ""))
    ax.legend(fontsize=8, loc="best")
    return _finish(fig, path)
