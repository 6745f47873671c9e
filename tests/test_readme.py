"""The README's examples run (issue 21).

The tour (the first ``python`` block) runs as written, with its batch of 10,000 datasets
and 64 restarts shrunk to keep the suite fast, in a temporary folder (it writes two plots),
and what it claims is checked: the estimates are the closed-form MLE (mean and biased
standard deviation, to 1e-4 relative in float32), the batch converged. The user-defined
constraint of "What you give" runs on data of its own. The second block is a cheat sheet of
one-line reminders over placeholder data (``x2d``, ``init_fn``, ``memmapped_xs``): each of
its calls is exercised by the test files of its feature, not here.
"""

import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()


def _blocks():
    return re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def test_the_tour_runs_and_is_right(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    tour = _blocks()[0]
    assert "(10_000, 50)" in tour and "restarts=64" in tour
    tour = tour.replace("(10_000, 50)", "(20, 50)").replace("restarts=64", "restarts=4")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(tour, str(README), "exec"), scope)   # noqa: S102 -- our own README
    res, x, batch, many = scope["res"], scope["x"], scope["batch"], scope["many"]
    xn = np.asarray(x, np.float64)
    assert bool(res.converged) and bool(many.converged)
    np.testing.assert_allclose(float(res.params["mu"]), xn.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(res.params["sigma"]), xn.std(), rtol=1e-4)
    assert float(batch.converged.mean()) == 1.0
    assert (tmp_path / "trace.png").exists() and (tmp_path / "surface.png").exists()


def test_the_user_defined_constraint_runs():
    block = re.search(r"  ```python\n(.*?)  ```", TEXT, flags=re.S).group(1)
    code = "\n".join(line[2:] for line in block.splitlines())
    import jax

    import mlejax as mj

    y = jnp.asarray([1.0, 2.5, 0.5, 3.0, 2.0, 1.5])

    def loglik(p, y):   # three effects summing to zero, cycled over the observations
        eff = jnp.tile(p["effect"], 2)
        return jax.scipy.stats.norm.logpdf(y, p["mu"] + eff, p["sigma"])

    scope = {"mj": mj, "jnp": jnp, "np": np, "loglik": loglik, "y": y}
    exec(compile(code, str(README), "exec"), scope)   # noqa: S102 -- our own README
    res = scope["res"]
    assert bool(res.converged)
    effect = np.asarray(res.params["effect"])
    assert effect.shape == (3,) and abs(effect.sum()) < 1e-5
    groups = np.asarray(y).reshape(2, 3).mean(axis=0)   # closed form: group means
    np.testing.assert_allclose(float(res.params["mu"]) + effect, groups, atol=1e-4)
