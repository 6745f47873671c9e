"""Solver objects (issue 21): ``method=mj.Newton(...)`` etc. equal the string and keywords bit
for bit; conflicting arguments raise; renamed keywords still work with a DeprecationWarning."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mlejax as mj

jax.config.update("jax_enable_x64", True)

X = jnp.asarray(np.random.default_rng(0).gamma(2.0, 1.5, size=60))
INIT = {"mu": 0.5, "sigma": 2.0}
CONS = {"sigma": mj.positive}


def loglik(p, x):
    return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])


def _same(a, b):
    """Bit-for-bit: every array leaf of the two results equal (NaN where NaN)."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.method == b.method


ADAM = optax.adam(0.05)
CASES = [
    (mj.Newton(), dict(method="newton")),
    (mj.Newton(max_steps=3, gtol=1e-4), dict(method="newton", max_steps=3, gtol=1e-4)),
    (mj.BFGS(ftol=1e-9), dict(method="bfgs", ftol=1e-9)),
    (mj.LBFGS(), dict(method="lbfgs")),
    (mj.Gradient(ADAM, max_steps=300), dict(method="gradient", optimizer=ADAM, max_steps=300)),
]


@pytest.mark.parametrize("solver,keywords", CASES, ids=lambda c: repr(c)[:30])
def test_object_equals_string_and_keywords(solver, keywords):
    a = mj.fit(loglik, INIT, X, constraints=CONS, method=solver, warn=False)
    b = mj.fit(loglik, INIT, X, constraints=CONS, warn=False, **keywords)
    _same(a, b)


def test_object_equals_keywords_in_a_batch_and_minibatches():
    xs = jnp.stack([X, X[::-1] * 1.1, X + 0.3])
    a = mj.fit_batch(loglik, INIT, xs, constraints=CONS, method=mj.BFGS(max_steps=40),
                     warn=False)
    b = mj.fit_batch(loglik, INIT, xs, constraints=CONS, method="bfgs", max_steps=40,
                     warn=False)
    _same(a, b)
    key = jax.random.key(1)
    a = mj.fit(loglik, INIT, X, constraints=CONS, key=key, warn=False,
               method=mj.Gradient(ADAM, minibatch=16, max_steps=200))
    with pytest.warns(DeprecationWarning, match="batch_size= is renamed minibatch="):
        b = mj.fit(loglik, INIT, X, constraints=CONS, key=key, warn=False, method="gradient",
                   optimizer=ADAM, batch_size=16, max_steps=200)
    c = mj.fit(loglik, INIT, X, constraints=CONS, key=key, warn=False, method="gradient",
               optimizer=ADAM, minibatch=16, max_steps=200)
    _same(a, b)
    _same(a, c)


def test_lbfgs_memory_is_used():
    # A different memory is a different solver: same optimum, other path.
    a = mj.fit(loglik, INIT, X, constraints=CONS, method=mj.LBFGS(memory=1), warn=False)
    b = mj.fit(loglik, INIT, X, constraints=CONS, method=mj.LBFGS(), warn=False)
    assert a.converged and b.converged
    np.testing.assert_allclose(a.params["mu"], float(jnp.mean(X)), rtol=1e-8)
    assert a.context.config.lbfgs_memory == 1 and b.context.config.lbfgs_memory == 10


def test_defaults_per_dtype_are_the_objects():
    from mlejax.methods import default_settings
    eps64, eps32 = float(jnp.finfo(jnp.float64).eps), float(jnp.finfo(jnp.float32).eps)
    assert default_settings("newton", jnp.float64) == (500, eps64 ** 0.75, 10 * eps64)
    assert default_settings("lbfgs", jnp.float32)[0] == 1000
    assert default_settings("gradient", jnp.float32)[1:] == (eps32 ** 0.5, eps32 ** 0.5)
    res = mj.fit(loglik, INIT, X, constraints=CONS, method="bfgs", warn=False)
    cfg = res.context.config
    assert (cfg.max_steps, cfg.gtol, cfg.ftol) == mj.BFGS().settings(jnp.float64)


@pytest.mark.parametrize("keyword", [dict(max_steps=10), dict(gtol=1e-6), dict(ftol=1e-6),
                                     dict(optimizer=ADAM), dict(minibatch=8)])
def test_conflicting_keyword_raises(keyword):
    with pytest.raises(ValueError, match="solver object"):
        mj.fit(loglik, INIT, X, constraints=CONS, method=mj.Newton(), key=jax.random.key(0),
               **keyword)


def test_bad_solver_objects_raise_before_fitting():
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        mj.Newton(max_steps=0)
    with pytest.raises(ValueError, match="memory must be a positive integer"):
        mj.LBFGS(memory=0)
    with pytest.raises(ValueError, match="minibatch"):
        mj.Gradient(ADAM, minibatch=0)
    with pytest.raises(ValueError, match="not known"):
        mj.fit(loglik, INIT, X, method="newtn")
    with pytest.raises(ValueError, match="minibatch"):
        mj.fit(loglik, INIT, X, method="newton", minibatch=8)


def test_renamed_keywords_warn_and_mean_the_same():
    # fit(devices=) is now obs_devices= (rows of one fit); fit_batch's devices= shards the batch.
    dev = jax.devices()[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = mj.fit(loglik, INIT, X, constraints=CONS, obs_devices=dev)
    with pytest.warns(DeprecationWarning, match="devices= is renamed obs_devices="):
        b = mj.fit(loglik, INIT, X, constraints=CONS, devices=dev)
    _same(a, b)
    with pytest.raises(ValueError, match="give only minibatch="):
        mj.fit(loglik, INIT, X, method="gradient", minibatch=8, batch_size=8,
               key=jax.random.key(0))
    # fit_batch(chunk_size=) is now datasets_per_chunk= (datasets per streamed chunk; not
    # obs_chunk=, rows of one dataset).
    xs = jnp.stack([X, X[::-1] * 1.1, X + 0.3, X * 0.9, X - 0.2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = mj.fit_batch(loglik, INIT, xs, constraints=CONS, datasets_per_chunk=2)
    with pytest.warns(DeprecationWarning,
                      match="chunk_size= is renamed datasets_per_chunk=") as rec:
        b = mj.fit_batch(loglik, INIT, xs, constraints=CONS, chunk_size=2)
    assert [w.category for w in rec] == [DeprecationWarning]
    _same(a, b)
    with pytest.raises(ValueError, match="give only datasets_per_chunk="):
        mj.fit_batch(loglik, INIT, xs, constraints=CONS, datasets_per_chunk=2, chunk_size=2)


def test_bootstrap_chunk_size_is_renamed_replicates_per_chunk():
    # bootstrap(chunk_size=) (replicates per chunk) is now replicates_per_chunk=.
    res = mj.fit(loglik, INIT, X, constraints=CONS)
    key = jax.random.key(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = mj.bootstrap(res, n=6, key=key, replicates_per_chunk=3)
    with pytest.warns(DeprecationWarning,
                      match="chunk_size= is renamed replicates_per_chunk="):
        b = mj.bootstrap(res, n=6, key=key, chunk_size=3)
    for x, y in zip(jax.tree_util.tree_leaves(a.replicates),
                    jax.tree_util.tree_leaves(b.replicates)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="give only replicates_per_chunk="):
        mj.bootstrap(res, n=6, key=key, replicates_per_chunk=3, chunk_size=3)


def test_stream_object_equals_the_streaming_keywords(tmp_path):
    # fit_batch's streaming options grouped as one object: the same fit bit for bit as the
    # keywords, conflicting keywords beside it raise, and stream= alone always streams.
    xs = jnp.stack([X, X[::-1] * 1.1, X + 0.3, X * 0.9, X - 0.2])
    a = mj.fit_batch(loglik, INIT, xs, constraints=CONS, datasets_per_chunk=2,
                     first_index=3, checkpoint=str(tmp_path / "a"))
    b = mj.fit_batch(loglik, INIT, xs, constraints=CONS,
                     stream=mj.Stream(datasets_per_chunk=2, first_index=3,
                                      checkpoint=str(tmp_path / "b")))
    _same(a, b)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        p.name for p in (tmp_path / "a").iterdir())
    # mj.Stream() streams (results assembled on the host as NumPy arrays), same estimates.
    c = mj.fit_batch(loglik, INIT, xs, constraints=CONS, stream=mj.Stream())
    d = mj.fit_batch(loglik, INIT, xs, constraints=CONS)
    assert isinstance(c.params["mu"], np.ndarray) and not isinstance(d.params["mu"], np.ndarray)
    np.testing.assert_allclose(c.params["mu"], d.params["mu"], rtol=1e-12)
    with pytest.raises(ValueError, match=r"set datasets_per_chunk, out on the object"):
        mj.fit_batch(loglik, INIT, xs, constraints=CONS, datasets_per_chunk=2,
                     out=str(tmp_path / "o"), stream=mj.Stream(progress=False))
    with pytest.raises(ValueError, match="stream= takes an mj.Stream"):
        mj.fit_batch(loglik, INIT, xs, constraints=CONS, stream={"datasets_per_chunk": 2})
    for bad in (dict(datasets_per_chunk=0), dict(first_index=-1), dict(progress="yes")):
        with pytest.raises(ValueError, match="Stream: "):
            mj.Stream(**bad)


def test_distributed_fit_takes_a_stream_object():
    # fit_batch_distributed numbers its share's rows on the Stream object (first_index), not
    # as a keyword beside it: in one process it is fit_batch with the same stream.
    xs = jnp.stack([X, X + 0.3, X * 0.9])
    stream = mj.Stream(datasets_per_chunk=2)
    a = mj.distributed.fit_batch_distributed(loglik, INIT, xs, constraints=CONS, stream=stream)
    b = mj.fit_batch(loglik, INIT, xs, constraints=CONS, stream=stream)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
