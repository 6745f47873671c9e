"""Every plot renders (Agg backend) into a file; matplotlib is an optional extra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mlejax as mj  # noqa: E402
from mlejax import plot  # noqa: E402
from conftest import N_NORMAL, normal_ll  # noqa: E402

CONS = {"sigma": mj.positive}


@pytest.fixture(scope="module")
def normal_fit():
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (N_NORMAL,))
    return mj.fit(normal_ll, {"mu": 0.0, "sigma": 1.0}, x, constraints=CONS, restarts=4,
                  key=jax.random.key(1))


def _check(fig, path):
    assert isinstance(fig, matplotlib.figure.Figure)
    assert path.exists() and path.stat().st_size > 5000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_trace_one_line_per_restart(normal_fit, tmp_path):
    fig = plot.trace(normal_fit, path=tmp_path / "trace.png")
    assert len(fig.axes[0].lines) == 4 + 1          # every start, and the best in bold
    _check(fig, tmp_path / "trace.png")


def test_profile_marks_the_interval(normal_fit, tmp_path):
    fig = plot.profile(normal_fit, "sigma", points=21, path=tmp_path / "profile.png")
    title = fig.axes[0].get_title()
    assert "interval [" in title and "nan" not in title
    _check(fig, tmp_path / "profile.png")


def test_surface_with_paths(normal_fit, tmp_path):
    fig = plot.surface(normal_fit, "mu", "sigma", grid_size=25,
                       starts=[{"mu": 0.0, "sigma": 1.0}, {"mu": 6.0, "sigma": 5.0}],
                       path=tmp_path / "surface.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sum(lab.startswith("path from start") for lab in labels) == 2
    _check(fig, tmp_path / "surface.png")


@pytest.mark.parametrize("dist, kind", [("gamma", "qq"), ("poisson", "pp")])
def test_density_with_qq_or_pp(dist, kind, tmp_path):
    key = jax.random.key(2)
    x = (jax.random.gamma(key, 2.0, (N_NORMAL,)) * 3.0 if dist == "gamma"
         else jax.random.poisson(key, 3.0, (N_NORMAL,)).astype(jnp.float64))
    res = mj.fit_distribution(x, dist)
    fig = plot.density(x, res, dist, kind=kind, path=tmp_path / "d.png")
    assert fig.axes[1].get_title() == ("QQ plot" if kind == "qq" else "PP plot")
    _check(fig, tmp_path / "d.png")


def test_mixture_scatter_and_trace(tmp_path):
    x = jax.random.normal(jax.random.key(4), (80, 2)).at[:40].add(4.0)
    res = mj.GaussianMixture(2).fit(x, key=jax.random.key(0))
    fig = plot.mixture(res, x, path=tmp_path / "mix.png")
    assert len(fig.axes[0].patches) == 2 * 2         # two ellipses per component
    _check(fig, tmp_path / "mix.png")


def test_batch_histograms_and_status(tmp_path):
    xs = 1.0 + 3.0 * jax.random.normal(jax.random.key(5), (12, N_NORMAL))
    res = mj.fit_batch(normal_ll, {"mu": 0.0, "sigma": 1.0}, xs, constraints=CONS)
    fig = plot.batch(res, truth={"mu": 1.0}, path=tmp_path / "batch.png")
    assert "12 fits" in fig.axes[3].get_title()
    _check(fig, tmp_path / "batch.png")


def test_errors_name_the_fix(normal_fit):
    with pytest.raises(ValueError, match="param_names"):
        plot.surface(normal_fit, "mu", "nope")
    with pytest.raises(ValueError, match="single fit"):
        plot.batch(normal_fit)
    with pytest.raises(ValueError, match="kind"):
        plot.density(np.ones(3), normal_fit, "normal", kind="xx")
