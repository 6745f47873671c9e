"""Formulas and data frames: ``Model.from_formula`` (formulaic) and ``res.to_frame()``.

The same fit from a formula and from the design matrix statsmodels' own ``from_formula``
builds (patsy): the columns match by name, and estimates, standard errors and the
log-likelihood agree to 1e-8 relative (both are the MLE of the same design; statsmodels
converged with tol 1e-12). Predictions for new rows through the formula equal statsmodels'
(1e-8). ``fit_batch(by=...)`` equals a fit per group (1e-8). ``to_frame`` holds the
``coef_table`` values exactly.
"""

import numpy as np
import pytest

import mlejax as mj

pd = pytest.importorskip("pandas")
pytest.importorskip("formulaic")
smf = pytest.importorskip("statsmodels.formula.api")

RTOL = 1e-8
FORMULA = "y ~ x1 + C(g) + np.log(x2) + x1:C(g)"


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n = 240
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.uniform(1.0, 5.0, n),
                       "g": rng.choice(["lo", "mid", "hi"], n), "w": rng.integers(1, 4, n)})
    eta = 0.3 + 0.5 * df.x1 - 0.4 * np.log(df.x2) + 0.6 * (df.g == "mid")
    df["y"] = rng.poisson(np.exp(eta)).astype(float)
    return df


@pytest.fixture(scope="module")
def poisson_fit(frame):
    return mj.models.Poisson.from_formula(FORMULA, frame).fit()


def test_formula_fit_equals_statsmodels_design(frame, poisson_fit):
    res = poisson_fit
    ref = smf.poisson(FORMULA, frame).fit(disp=0, method="newton", tol=1e-12)
    assert set(res.param_names) == set(ref.params.index)
    for name in res.param_names:
        j = res.param_names.index(name)
        np.testing.assert_allclose(res.fit_result.flat_params()[j], ref.params[name],
                                   rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(res.fit_result.flat_stderr()[j], ref.bse[name],
                                   rtol=1e-7, err_msg=name)
    np.testing.assert_allclose(res.loglik, ref.llf, rtol=1e-12)
    new = frame.iloc[:7].assign(x2=lambda d: d.x2 + 1.0)
    np.testing.assert_allclose(res.predict(new), ref.predict(new), rtol=RTOL)
    assert "C(g)[T.mid]" in res.summary() and "np.log(x2)" in res.summary()


def test_to_frame(poisson_fit):
    table = poisson_fit.to_frame()
    assert list(table.columns) == ["estimate", "stderr", "z", "p", "lo", "hi"]
    assert tuple(table.index) == poisson_fit.param_names
    ref = poisson_fit.coef_table()
    for name in poisson_fit.param_names:
        for col in table.columns:
            np.testing.assert_allclose(table.loc[name, col], ref[name][col], rtol=1e-14)


def test_weights_column_and_model_options(frame):
    res = mj.models.Poisson.from_formula("y ~ x1", frame).fit(weights="w")
    ref = smf.glm("y ~ x1", frame, family=__import__("statsmodels.api").api.families.Poisson(),
                  freq_weights=frame.w).fit(tol=1e-12)
    np.testing.assert_allclose(res.coef, ref.params.to_numpy(), rtol=RTOL)
    pos = frame.assign(y=frame.y + 0.5)
    res_g = mj.models.Gamma.from_formula("y ~ x1", pos, link="inverse").fit()
    assert res_g.model.link == "inverse" and bool(res_g.converged)


def test_fit_batch_by_group_equals_separate_fits(frame):
    fm = mj.models.Poisson.from_formula("y ~ x1 + np.log(x2)", frame)
    batch = fm.fit_batch(by="g")
    assert batch.batch_labels == ("hi", "lo", "mid")
    table = batch.to_frame()
    assert list(table.index) == ["hi", "lo", "mid"]
    for k, lab in enumerate(batch.batch_labels):
        one = mj.models.Poisson.from_formula("y ~ x1 + np.log(x2)",
                                             frame[frame.g == lab]).fit()
        np.testing.assert_allclose(batch.coef[k], one.coef, rtol=RTOL)
        np.testing.assert_allclose(batch.loglik[k], one.loglik, rtol=1e-12)
        np.testing.assert_allclose(table.loc[lab, ("x1", "stderr")], one.stderr["beta"][1],
                                   rtol=1e-7)
        assert table.loc[lab, ("fit", "nobs")] == int(np.sum(frame.g == lab))
    assert bool(table[("fit", "converged")].all())


def test_missing_values(frame):
    holed = frame.copy()
    holed.loc[[2, 5], "x2"] = np.nan
    with pytest.raises(ValueError, match="null"):
        mj.models.Poisson.from_formula("y ~ x1 + np.log(x2)", holed)
    res = mj.models.Poisson.from_formula("y ~ x1 + np.log(x2)", holed, missing="drop").fit()
    ref = smf.poisson("y ~ x1 + np.log(x2)", holed, missing="drop").fit(disp=0, tol=1e-12,
                                                                        method="newton")
    np.testing.assert_allclose(res.coef, ref.params.to_numpy(), rtol=RTOL)
    assert int(res.nobs) == len(frame) - 2


def test_bad_formulas(frame):
    with pytest.raises(ValueError, match="exactly one '~'"):
        mj.models.Poisson.from_formula("y + x1", frame)
    with pytest.raises(ValueError, match="columns: "):
        mj.models.Poisson.from_formula("y ~ nope", frame)
    with pytest.raises(ValueError, match="not a column"):
        mj.models.Poisson.from_formula("y ~ x1", frame).fit_batch(by="nope")
    with pytest.raises(ValueError, match="categorical models"):
        mj.models.Poisson.from_formula("g ~ x1", frame)


def test_categorical_response_labels(frame):
    """The categorical models take a string or pandas Categorical response as labels: the
    multinomial logit of ``g`` (strings, baseline the first sorted label "hi") equals
    statsmodels' MNLogit on the codes (1e-7); an ordered Categorical keeps its order (its
    cut-points are named by it), equal to the fit on its integer codes."""
    res = mj.models.MultinomialLogit.from_formula("g ~ x1 + np.log(x2)", frame).fit()
    codes = pd.Categorical(frame.g).codes          # hi=0, lo=1, mid=2 (sorted)
    ref = smf.mnlogit("c ~ x1 + np.log(x2)", frame.assign(c=codes)).fit(
        disp=0, method="newton", tol=1e-12)
    np.testing.assert_allclose(res.loglik, ref.llf, rtol=1e-10)
    assert "x1:y=lo" in res.param_names and "x1:y=mid" in res.param_names
    for j, lab in ((0, "lo"), (1, "mid")):      # statsmodels' columns: categories 1, 2
        for row in ref.params.index:
            k = res.param_names.index(f"{row}:y={lab}")
            np.testing.assert_allclose(res.fit_result.flat_params()[k], ref.params.loc[row, j],
                                       rtol=1e-7, err_msg=f"{row}, {lab}")
            np.testing.assert_allclose(res.fit_result.flat_stderr()[k], ref.bse.loc[row, j],
                                       rtol=1e-6, err_msg=f"{row}, {lab}")
    order = ["mid", "lo", "hi"]
    df = frame.assign(o=pd.Categorical(frame.g, categories=order, ordered=True),
                      c=lambda d: d.o.cat.codes.astype(float))
    labelled = mj.models.OrderedLogit.from_formula("o ~ x1 + np.log(x2) - 1", df).fit()
    coded = mj.models.OrderedLogit.from_formula("c ~ x1 + np.log(x2) - 1", df).fit()
    assert labelled.param_names[-2:] == ("mid|lo", "lo|hi")
    np.testing.assert_allclose(labelled.fit_result.flat_params(),
                               coded.fit_result.flat_params(), rtol=1e-12)
    probs = labelled.predict(df.iloc[:4])
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-12)
    # With the intercept in the formula, the ordered model drops its column after the
    # categorical terms are coded (reduced rank), as statsmodels' OrderedModel.from_formula.
    from statsmodels.miscmodels.ordinal_model import OrderedModel
    df = df.assign(h=np.where(np.arange(len(df)) % 3 == 0, "p", "q"))
    formula = "o ~ x1 + C(h)"
    res = mj.models.OrderedLogit.from_formula(formula, df).fit()
    ref = OrderedModel.from_formula(formula, df, distr="logit").fit(method="bfgs", disp=0,
                                                                     gtol=1e-10)
    assert res.param_names[:2] == ("x1", "C(h)[T.q]")
    np.testing.assert_allclose(res.fit_result.flat_params()[:2],
                               ref.params[["x1", "C(h)[T.q]"]], rtol=1e-6)
    np.testing.assert_allclose(res.loglik, ref.llf, rtol=1e-10)
    assert res.predict(df.iloc[:3]).shape == (3, 3)
