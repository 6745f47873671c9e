"""Streaming, re-packing, ragged buckets, devices and checkpoints equal the plain batch.

The references are the plain ``fit_batch`` (one vmapped program over all K) and a loop of
``fit``, whose agreement with closed forms is proven elsewhere; tolerance 1e-12 in float64.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlejax as mj
from mlejax._kernels import kernel  # the compiled-program cache of fit_batch

jax.config.update("jax_enable_x64", True)

TRACES = {"n": 0}


def normal_loglik(p, x):
    TRACES["n"] += 1  # counts traces (compilations), not calls
    return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])


INIT = {"mu": 0.0, "sigma": 1.0}
CONS = {"sigma": mj.positive}


@pytest.fixture(scope="module")
def xs():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 3.0, size=(200, 40))
    x[::23] *= 50.0  # stragglers: far from the start, many more steps
    return x


@pytest.fixture(scope="module")
def plain(xs):
    return mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS)


def close(a, b, tol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)) <= tol


def test_chunks_equal_plain_and_compile_once(xs, plain):
    compiled = kernel(plain.context.config)  # the same static configuration
    before = compiled._cache_size()
    res = mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS, datasets_per_chunk=20)
    assert kernel(res.context.config) is compiled
    assert compiled._cache_size() == before + 1  # 10 chunks, one compilation
    traced = TRACES["n"]
    mj.fit_batch(normal_loglik, INIT, xs + 1.0, constraints=CONS, datasets_per_chunk=20)
    assert TRACES["n"] == traced  # a second stream of the same shapes does not retrace
    for name in ("mu", "sigma"):
        assert close(res.params[name], plain.params[name])
        assert close(res.stderr[name], plain.stderr[name])
    assert np.array_equal(res.status, plain.status)
    assert np.array_equal(res.n_steps, plain.n_steps)


def test_cpu_blocks_equal_one_block(xs, plain, monkeypatch):
    # On CPU fit_batch runs its datasets in cache-sized blocks (fit._BLOCK_BYTES of data a
    # block); a budget of 7 datasets makes 29 blocks of 7, the last padded with copies.
    import importlib

    kernels = importlib.import_module("mlejax._kernels")
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 7 * xs.shape[1] * 8)
    assert kernels.batch_block(plain.context.config, xs, None) == 7
    res = mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS)
    for name in ("mu", "sigma"):
        assert close(res.params[name], plain.params[name])
        assert close(res.stderr[name], plain.stderr[name])
    assert np.array_equal(res.status, plain.status)
    assert np.array_equal(res.n_steps, plain.n_steps)
    # Per-dataset starts and weights are split into the same blocks.
    w = np.where(np.arange(xs.shape[1]) % 5 == 0, 0.0, 1.0) * np.ones_like(xs)
    init_b = {"mu": np.linspace(-1, 1, xs.shape[0]), "sigma": np.full(xs.shape[0], 2.0)}
    blocked = mj.fit_batch(normal_loglik, init_b, xs, constraints=CONS, weights=w,
                           init_batched=True)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 1 << 40)
    whole = mj.fit_batch(normal_loglik, init_b, xs, constraints=CONS, weights=w,
                         init_batched=True)
    for name in ("mu", "sigma"):
        assert close(blocked.params[name], whole.params[name])
        assert close(blocked.stderr[name], whole.stderr[name])
    assert np.array_equal(blocked.n_steps, whole.n_steps)


def test_blocks_repacked_in_program_equal_one_program(xs, monkeypatch):
    # In blocks, fit_batch stops every fit after fit._SEGMENT steps and resumes the ones still
    # running packed into as few blocks as they fill: each fit takes the same steps as in
    # one vmapped program, stragglers included (every 10th dataset starts far away).
    import importlib

    kernels = importlib.import_module("mlejax._kernels")
    init_b = {"mu": np.where(np.arange(xs.shape[0]) % 10 == 0, 40.0, 0.0),
              "sigma": np.where(np.arange(xs.shape[0]) % 10 == 0, 30.0, 1.0)}
    kw = dict(constraints=CONS, init_batched=True, warn=False)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 1 << 40)
    whole = mj.fit_batch(normal_loglik, init_b, xs, **kw)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 5 * xs.shape[1] * 8)
    monkeypatch.setattr(kernels, "SEGMENT", 2)
    res = mj.fit_batch(normal_loglik, init_b, xs, **kw)
    steps = np.asarray(res.n_steps)
    hard, easy = steps[::10], np.delete(steps, np.s_[::10])
    assert hard.mean() >= easy.mean() + 2 and steps.max() > 3 * 2   # stragglers, 3+ segments
    assert np.array_equal(steps, np.asarray(whole.n_steps))
    assert np.array_equal(res.status, whole.status)
    t1, t2 = np.asarray(res.trace), np.asarray(whole.trace)
    assert np.array_equal(np.isnan(t1), np.isnan(t2))
    assert close(np.nan_to_num(t1), np.nan_to_num(t2))
    for name in ("mu", "sigma"):
        assert close(res.params[name], whole.params[name])
        assert close(res.stderr[name], whole.stderr[name])


def test_concurrent_shares_equal_one_program(xs, plain, monkeypatch):
    # With several cores, fit_batch runs shares of the blocked batch from one thread each
    # (mlejax._blocks.concurrently); three shares of 200 datasets (67, 67, 66 + a padded
    # copy) in blocks of 7 give each fit exactly what the one program gives it.
    import importlib

    from mlejax import _blocks

    kernels = importlib.import_module("mlejax._kernels")
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 7 * xs.shape[1] * 8)
    monkeypatch.setenv(_blocks.WORKERS_ENV, "1")
    one = mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS)
    monkeypatch.setenv(_blocks.WORKERS_ENV, "3")
    assert _blocks.shares(200, 7, "cpu", True) == 3
    res = mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS)
    for name in ("mu", "sigma"):
        np.testing.assert_array_equal(np.asarray(res.params[name]), np.asarray(one.params[name]))
        np.testing.assert_array_equal(np.asarray(res.stderr[name]), np.asarray(one.stderr[name]))
        assert close(res.params[name], plain.params[name])
    assert np.array_equal(res.status, one.status)
    assert np.array_equal(res.n_steps, one.n_steps)
    assert res.params["mu"].shape == (200,)
    # In blocks on CPU, repack= is not needed and not used: the same shares run.
    rep = mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS, repack=3)
    np.testing.assert_array_equal(np.asarray(rep.params["mu"]), np.asarray(one.params["mu"]))
    assert np.array_equal(rep.n_steps, one.n_steps)
    # Under jit there is one program (the shares need concrete arrays and threads).
    jitted = jax.jit(lambda x: mj.fit_batch(normal_loglik, INIT, x, constraints=CONS,
                                            warn=False).params["mu"])(jnp.asarray(xs))
    assert close(jitted, one.params["mu"])
    monkeypatch.setenv(_blocks.WORKERS_ENV, "zero")
    with pytest.raises(ValueError, match="MLEJAX_CPU_WORKERS"):
        _blocks.cpu_workers()


def test_uneven_last_chunk_and_memmap(xs, plain, tmp_path):
    path = tmp_path / "xs.npy"
    np.save(path, xs)
    mm = np.load(path, mmap_mode="r")
    res = mj.fit_batch(normal_loglik, INIT, mm, constraints=CONS, datasets_per_chunk=64,
                       progress=True)
    assert res.params["mu"].shape == (200,)
    assert close(res.params["mu"], plain.params["mu"])


def test_repack_equals_uninterrupted(xs, plain):
    res = mj.fit_batch(normal_loglik, INIT, xs, constraints=CONS, repack=3)
    assert close(res.params["mu"], plain.params["mu"])
    assert close(res.params["sigma"], plain.params["sigma"])
    assert np.array_equal(res.n_steps, plain.n_steps)
    assert np.array_equal(res.status, plain.status)
    t1, t2 = np.asarray(res.trace), np.asarray(plain.trace)
    assert np.array_equal(np.isnan(t1), np.isnan(t2))
    assert close(np.nan_to_num(t1), np.nan_to_num(t2))


def test_repack_with_restarts_and_chunks(xs):
    key = jax.random.key(3)
    ref = mj.fit_batch(normal_loglik, INIT, xs[:16], constraints=CONS, restarts=2, key=key)
    res = mj.fit_batch(normal_loglik, INIT, xs[:16], constraints=CONS, restarts=2, key=key,
                       repack=3, datasets_per_chunk=8)
    assert np.asarray(res.restarts.loglik).shape == (16, 2)
    assert close(res.restarts.params["mu"], ref.restarts.params["mu"])
    assert close(res.loglik, ref.loglik)


def test_ragged_equals_fitting_each_alone(xs):
    lengths = [(6, 13, 29)[i % 3] + (i % 2) for i in range(30)]  # buckets 8, 16, 32
    data = [xs[i, :n] for i, n in enumerate(lengths)]
    res = mj.fit_batch(normal_loglik, INIT, mj.ragged(data), constraints=CONS)
    buckets = {mj.batching.bucket_length(n) for n in lengths}
    # One compiled program per length bucket, however many datasets.
    assert kernel(res.context.config)._cache_size() <= len(buckets)
    assert np.array_equal(res.nobs, lengths)
    for i in (0, 1, 2):
        one = mj.fit(normal_loglik, INIT, data[i], constraints=CONS)
        assert close(res.params["mu"][i], one.params["mu"])
        assert close(res.params["sigma"][i], one.params["sigma"])
        assert close(res.stderr["mu"][i], one.stderr["mu"])
        assert close(res.loglik[i], one.loglik)


def test_generator_of_chunks(xs, plain):
    gen = (xs[i:i + 50] for i in range(0, 200, 50))
    res = mj.fit_batch(normal_loglik, INIT, gen, constraints=CONS)
    assert res.params["mu"].shape == (200,)
    assert close(res.params["mu"], plain.params["mu"])


def test_checkpoint_resume_and_interrupt(xs, plain, tmp_path):
    calls = {"n": 0}

    def interrupted():
        for i in range(0, 200, 50):
            calls["n"] += 1
            if i == 100:
                raise KeyboardInterrupt
            yield xs[i:i + 50]

    with pytest.warns(UserWarning, match="interrupted"):
        part = mj.fit_batch(normal_loglik, INIT, interrupted(), constraints=CONS,
                            checkpoint=str(tmp_path), warn=False)
    assert part.params["mu"].shape == (100,)
    assert close(part.params["mu"], plain.params["mu"][:100])
    saved = sorted(f for f in os.listdir(tmp_path) if f.startswith("chunk_"))
    assert len(saved) == 2
    # A rerun with the same checkpoint skips the saved chunks and fits the rest.
    res = mj.fit_batch(normal_loglik, INIT, (xs[i:i + 50] for i in range(0, 200, 50)),
                       constraints=CONS, checkpoint=str(tmp_path))
    assert close(res.params["mu"], plain.params["mu"])


def test_nan_dataset_is_named_and_flagged(xs):
    bad = xs[:40].copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"datasets \[7\]"):
        mj.fit_batch(normal_loglik, INIT, bad, constraints=CONS)
    with pytest.warns(UserWarning, match=r"datasets \[7\]"):
        res = mj.fit_batch(normal_loglik, INIT, bad, constraints=CONS, datasets_per_chunk=16,
                           warn=False)
    status = np.asarray(res.status)
    assert status[7] == mj.Status.NONFINITE
    assert np.all(np.delete(status, 7) == mj.Status.CONVERGED)


def test_sharded_over_four_host_devices():
    code = textwrap.dedent("""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        import mlejax as mj
        assert len(jax.devices()) == 4
        def loglik(p, x):
            return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])
        xs = np.random.default_rng(1).normal(2.0, 1.5, size=(50, 30))
        init, cons = {"mu": 0.0, "sigma": 1.0}, {"sigma": mj.positive}
        ref = mj.fit_batch(loglik, init, xs, constraints=cons)
        res = mj.fit_batch(loglik, init, xs, constraints=cons, devices=jax.devices(),
                           datasets_per_chunk=16, repack=2)
        err = np.max(np.abs(np.asarray(res.params["mu"]) - np.asarray(ref.params["mu"])))
        assert err <= 1e-12, err
        print("sharded ok")
    """)
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sharded ok" in out.stdout


def test_init_function_with_streaming(xs):
    def init_fn(k):
        return {"mu": jax.random.normal(k), "sigma": 1.0 + jax.random.uniform(k)}

    key = jax.random.key(4)
    ref = mj.fit_batch(normal_loglik, init_fn, xs[:16], constraints=CONS, restarts=2, key=key)
    res = mj.fit_batch(normal_loglik, init_fn, xs[:16], constraints=CONS, restarts=2, key=key,
                       datasets_per_chunk=8, repack=3)
    assert close(res.restarts.params["mu"], ref.restarts.params["mu"])
