"""The command line, run in-process on tiny generated CSV files."""

import json

import numpy as np
import pytest

from mlejax.cli import main

N = 40


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 3.0, N)
    a = rng.normal(size=N)
    b = rng.normal(size=N) + np.r_[np.zeros(N // 2), np.full(N // 2, 5.0)]
    x1, x2 = rng.normal(size=N), rng.normal(size=N)
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-(0.3 + x1 - x2)))).astype(int)
    path = tmp_path_factory.mktemp("cli") / "d.csv"
    rows = ["x,a,b,x1,x2,y,label"] + [f"{x[i]},{a[i]},{b[i]},{x1[i]},{x2[i]},{y[i]},r{i}"
                                      for i in range(N)]
    path.write_text("\n".join(rows) + "\n")
    missing = path.with_name("missing.csv")
    rows[3] = "," + rows[3].split(",", 1)[1]          # data row 3: x missing
    rows[7] = "NA," + rows[7].split(",", 1)[1]        # data row 7: x missing
    missing.write_text("\n".join(rows) + "\n")
    return path


def test_fit_table_json_and_plot(csv_path, capsys, tmp_path):
    assert main(["fit", str(csv_path), "--column", "x", "--dist", "gamma"]) == 0
    assert "CONVERGED" in capsys.readouterr().out
    png = tmp_path / "fit.png"
    assert main(["fit", str(csv_path), "--column", "x", "--dist", "gamma", "--json",
                 "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converged"] and set(out["params"]) == {"shape", "scale"}
    assert png.stat().st_size > 5000


def test_bad_column_lists_the_columns(csv_path, capsys):
    assert main(["fit", str(csv_path), "--column", "z", "--dist", "gamma"]) == 2
    err = capsys.readouterr().err
    assert "'z' is not in" in err and "x, a, b, x1, x2, y, label" in err


def test_missing_values_reported_then_dropped(csv_path, capsys):
    path = str(csv_path.with_name("missing.csv"))
    assert main(["fit", path, "--column", "x", "--dist", "gamma"]) == 2
    err = capsys.readouterr().err
    assert "rows 3, 7" in err and "--dropna" in err
    assert main(["fit", path, "--column", "x", "--dist", "gamma", "--dropna", "--json"]) == 0
    cap = capsys.readouterr()
    assert "dropped" in cap.err and json.loads(cap.out)["nobs"] == N - 2


def test_errors_exit_nonzero(csv_path, capsys):
    assert main(["fit", str(csv_path), "--column", "label", "--dist", "gamma"]) == 2
    assert "not numeric" in capsys.readouterr().err
    assert main(["fit", str(csv_path), "--column", "a", "--dist", "gamma"]) == 2
    assert "gamma" in capsys.readouterr().err            # negative data: outside the support
    assert main(["fit", str(csv_path), "--column", "x", "--dist", "nope"]) == 2
    assert main(["fit", "/nonexistent.csv", "--column", "x", "--dist", "gamma"]) == 2


def test_compare_ranks(csv_path, capsys):
    assert main(["compare", str(csv_path), "--column", "x",
                 "--candidates", "gamma,exponential"]) == 0
    out = capsys.readouterr().out
    assert "ranked by AIC" in out and "best:" in out


def test_gmm_and_plot(csv_path, capsys, tmp_path):
    png = tmp_path / "gmm.png"
    assert main(["gmm", str(csv_path), "--columns", "a,b", "--components", "2",
                 "--n-init", "2", "--plot", str(png)]) == 0
    assert "component" in capsys.readouterr().out and png.stat().st_size > 5000


def test_regress_formula(csv_path, capsys):
    assert main(["regress", str(csv_path), "--formula", "y ~ x1 + x2",
                 "--family", "logistic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["coefficients"]) == ["Intercept", "x1", "x2"] and out["converged"]
    assert main(["regress", str(csv_path), "--formula", "y ~ x1 + q",
                 "--family", "logistic"]) == 2
    err = capsys.readouterr().err
    assert "`q` is not present" in err and "columns: x, a, b, x1, x2, y, label" in err


def test_regress_through_formulaic_matches_statsmodels(csv_path, capsys):
    """The regress command reads the formula with formulaic: categorical columns (a string
    column, C(), treatment contrasts), transformations and interactions, named as
    statsmodels' own formula design names them; estimates equal statsmodels' to 1e-6."""
    pd = pytest.importorskip("pandas")
    smf = pytest.importorskip("statsmodels.formula.api")
    frame = pd.read_csv(csv_path)
    frame["grp"] = ["g" + str(i % 3) for i in range(len(frame))]
    path = csv_path.with_name("grp.csv")
    frame.to_csv(path, index=False)
    formula = "y ~ x1 + C(grp) + np.exp(x2 / 4) + x1:x2"
    assert main(["regress", str(path), "--formula", formula, "--family", "logistic",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = smf.logit(formula, frame).fit(disp=0, tol=1e-12)
    assert set(out["coefficients"]) == set(ref.params.index)
    for name, value in out["coefficients"].items():
        np.testing.assert_allclose(value, ref.params[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(out["stderr"][name], ref.bse[name], rtol=1e-6,
                                   err_msg=name)
    assert main(["regress", str(path), "--formula", "y ~ x1 ~ x2", "--family",
                 "logistic"]) == 2
    assert "'~'" in capsys.readouterr().err


def test_regress_binomial_trials_link_and_model_options(csv_path, capsys):
    """The new families through the command line: successes out of a trials column with the
    cloglog link equal statsmodels GLM Binomial (1e-6); a labelled response for the
    multinomial logit; Tweedie without --power, and an option the model lacks, are errors."""
    pd = pytest.importorskip("pandas")
    sm = pytest.importorskip("statsmodels.api")
    frame = pd.read_csv(csv_path)
    rng = np.random.default_rng(5)
    frame["t"] = rng.integers(1, 6, len(frame))
    frame["s"] = rng.binomial(frame.t, 1 / (1 + np.exp(-frame.x1)))
    frame["lab"] = np.where(frame.x1 > 0.3, "hi", np.where(frame.x1 > -0.3, "mid", "lo"))
    frame.loc[::4, "lab"] = "mid"                        # not separable
    path = csv_path.with_name("binom.csv")
    frame.to_csv(path, index=False)
    assert main(["regress", str(path), "--formula", "s ~ x1", "--family", "binomial",
                 "--trials", "t", "--link", "cloglog", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    glm = sm.GLM(np.c_[frame.s, frame.t - frame.s], sm.add_constant(frame.x1),
                 family=sm.families.Binomial(sm.families.links.CLogLog()))
    ref = glm.fit(tol=1e-12)
    np.testing.assert_allclose([out["coefficients"]["Intercept"], out["coefficients"]["x1"]],
                               ref.params, rtol=1e-6)
    # mlejax's errors are the observed information's (statsmodels' bse, the expected one's,
    # differs for cloglog, a non-canonical link).
    observed = np.sqrt(np.diag(np.linalg.inv(-glm.hessian(ref.params, observed=True))))
    np.testing.assert_allclose([out["stderr"]["Intercept"], out["stderr"]["x1"]], observed,
                               rtol=1e-6)
    assert main(["regress", str(path), "--formula", "s ~ x1", "--family", "binomial",
                 "--trials", "t", "--link", "cloglog", "--cov-type", "expected", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)            # statsmodels' bse: the expected one
    np.testing.assert_allclose([out["stderr"]["Intercept"], out["stderr"]["x1"]], ref.bse,
                               rtol=1e-6)
    assert main(["regress", str(path), "--formula", "lab ~ x1", "--family",
                 "multinomial_logit", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["coefficients"]) == {"Intercept:y=lo", "Intercept:y=mid", "x1:y=lo",
                                        "x1:y=mid"}
    assert main(["regress", str(path), "--formula", "x ~ x1", "--family", "tweedie"]) == 2
    assert "--power" in capsys.readouterr().err
    assert main(["regress", str(path), "--formula", "s ~ x1", "--family", "poisson",
                 "--link", "probit"]) == 2
    assert "link" in capsys.readouterr().err


def test_not_converged_exits_1_with_reason(csv_path, capsys, monkeypatch):
    import mlejax as mj
    real = mj.models.Logistic.fit
    monkeypatch.setattr(mj.models.Logistic, "fit",
                        lambda self, *a, **k: real(self, *a, **{**k, "max_steps": 1}))
    assert main(["regress", str(csv_path), "--formula", "y ~ x1 + x2",
                 "--family", "logistic"]) == 1
    assert "did not converge: not converged: max_steps" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["demo", "fit", "compare", "gmm", "regress"])
def test_every_help_shows_an_example(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    assert "example:\n  mlejax " + cmd in capsys.readouterr().out


def test_demo_small(capsys):
    # Without --plot-dir: each plot is rendered by tests/test_plot.py already.
    assert main(["demo", "--n", "60", "--k", "8"]) == 0
    out = capsys.readouterr().out
    assert "Logistic regression" in out and "batch of 8 fits" in out
