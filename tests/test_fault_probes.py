"""Nothing silently wrong: inputs that used to give a wrong answer, or an error from deep
inside, give a clear error (or the right answer) instead.

* a checkpoint written by another problem (data, init, log-likelihood, weights, a value the
  log-likelihood closes over) is refused, naming what differs; the same problem resumes;
* a truncated or corrupt chunk file is named in a warning and fitted again;
* ``open_results`` never unpickles: a crafted pickle in the directory is not executed;
* the CLI refuses a header naming a column twice;
* ``fit_batch`` checks every dataset's weights and names the bad datasets;
* scalar data fits (a total log-likelihood); empty batches and ragged lists say what to do.

The fits are tiny (8 datasets of 12 observations, one log-likelihood): every refusal comes
before anything is compiled, and the fits share one compiled program.
"""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import mlejax as mj
from mlejax import batching
from mlejax.cli import main

INIT = {"mu": 0.0, "sigma": 1.0}
CONS = {"sigma": mj.positive}


def loglik(p, x):
    return jax.scipy.stats.norm.logpdf(x, p["mu"], p["sigma"])


def other_loglik(p, x):   # the same shapes, another model
    return jax.scipy.stats.logistic.logpdf(x, p["mu"], p["sigma"])


@pytest.fixture(scope="module")
def xs():
    return np.random.default_rng(0).normal(1.0, 2.0, size=(8, 12))


def run(xs, folder, fn=loglik, init=INIT, weights=None, datasets_per_chunk=4, **kw):
    return mj.fit_batch(fn, init, xs, constraints=CONS, weights=weights,
                        datasets_per_chunk=datasets_per_chunk, checkpoint=str(folder), **kw)


def same(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v), equal_nan=True)
               for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


# ------------------------------------------------------------------ checkpoints

def test_checkpoint_of_the_same_problem_resumes_without_refitting(xs, tmp_path, monkeypatch):
    first = run(xs, tmp_path)
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("chunk_")) == [
        "chunk_0000000.npz", "chunk_0000001.npz"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["loglik_fn"]["name"].endswith("test_fault_probes.loglik")
    # datasets_per_chunk is recorded under its old name, so checkpoints written before the
    # rename (chunk_size=) still resume.
    assert meta["chunk_size"] == 4 and "datasets_per_chunk" not in meta
    # Where the fits run is not part of the problem: a run may resume on another platform.
    assert "platform" not in meta["settings"] and "random" in meta["settings"]
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]   # written atomically

    def refit(*args, **kwargs):
        raise AssertionError("a saved chunk was fitted again")

    monkeypatch.setattr(batching.Streamer, "_launch", refit)
    again = run(xs, tmp_path)
    assert same(again, first)


def closing_over(s):
    return lambda p, x: jax.scipy.stats.norm.logpdf(x, p["mu"], s * p["sigma"])


@pytest.mark.parametrize("change, what", [
    ("data", "the data"),
    ("init", "the starting values (init)"),
    ("loglik", "the log-likelihood function (loglik_fn)"),
    ("weights", "the weights"),
    ("closure", "its code or the values it uses"),
    ("constraints", "the setting problem.constraints"),
    ("max_steps", "the setting max_steps"),
    ("datasets_per_chunk", "datasets_per_chunk (4 then, 2 now)"),
])
def test_checkpoint_of_another_problem_is_refused(xs, tmp_path, change, what, monkeypatch):
    w = np.ones_like(xs)
    fn = closing_over(1.0) if change == "closure" else loglik
    before = dict(fn=fn, weights=w if change == "weights" else None)
    run(xs, tmp_path, **before)
    # Nothing is fitted before the refusal: it comes with the first chunk's fingerprint.
    monkeypatch.setattr(batching.Streamer, "_launch", lambda *a, **k: pytest.fail("fitted"))
    after = dict(before)
    if change == "data":
        after["xs"] = xs.copy()
        after["xs"][1, 3] += 1e-9           # one value of one dataset
    elif change == "init":
        after["init"] = {"mu": 0.5, "sigma": 1.0}
    elif change == "loglik":
        after["fn"] = other_loglik
    elif change == "weights":
        after["weights"] = w.copy()
        after["weights"][2, 0] = 0.5
    elif change == "closure":
        after["fn"] = closing_over(2.0)     # the same code, another value closed over
    elif change == "max_steps":
        after["max_steps"] = 77
    elif change == "datasets_per_chunk":
        after["datasets_per_chunk"] = 2
    data = after.pop("xs", xs)
    with pytest.raises(ValueError, match="another problem") as err:
        if change == "constraints":
            mj.fit_batch(loglik, INIT, data, datasets_per_chunk=4, checkpoint=str(tmp_path),
                         constraints={"sigma": mj.interval(0.0, 100.0)})
        else:
            run(data, tmp_path, **after)
    msg = str(err.value)
    assert what in msg, msg
    assert "delete" in msg and str(tmp_path) in msg and "another checkpoint directory" in msg


def test_checkpoint_without_a_fingerprint_is_refused(xs, tmp_path):
    # The meta.json mlejax wrote before fingerprints: its chunks cannot be checked.
    (tmp_path / "meta.json").write_text(json.dumps(
        {"n_total": 8, "chunk_size": 4, "param_names": ["mu", "sigma"], "method": "newton",
         "restarts": None}))
    with pytest.raises(ValueError, match="did not record the fingerprint.*Delete"):
        run(xs, tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_chunk_file_is_named_and_fitted_again(xs, tmp_path, damage):
    first = run(xs, tmp_path)
    chunk = tmp_path / "chunk_0000001.npz"
    blob = chunk.read_bytes()
    chunk.write_bytes({"truncate": blob[: len(blob) // 2], "garbage": b"\x00junk" * 40,
                       "empty": b""}[damage])
    with pytest.warns(UserWarning, match="chunk_0000001.npz cannot be read") as rec:
        again = run(xs, tmp_path)
    assert "delete that file" in str(rec[0].message)
    assert same(again, first)
    with np.load(chunk) as z:   # rewritten whole, and readable again
        assert "fingerprint" in z.files
        assert len(z.files) == len(jax.tree_util.tree_leaves(first)) + 1
    assert same(run(xs, tmp_path), first)   # and resumed from, without a warning


def test_fingerprints_are_the_same_in_another_process(tmp_path):
    # A checkpoint is resumed later, by a new interpreter: nothing in a fingerprint may
    # depend on the process (addresses, string hashing, set order).
    (tmp_path / "probe_model.py").write_text(textwrap.dedent("""
        import functools
        import jax
        import numpy as np
        import optax
        import mlejax as mj

        SCALE = 2.0
        COUNTS = {"calls": 0}      # mutable state a log-likelihood may touch

        def loglik(p, x, shift=0.5):
            COUNTS["calls"] += 1
            return jax.scipy.stats.norm.logpdf(x + shift, p["mu"], SCALE * p["sigma"])

        def make(offset):
            return lambda p, x: loglik(p, x) + offset

        VALUES = [loglik, make(np.arange(3.0)), functools.partial(loglik, shift=1.0),
                  optax.adam(1e-2), {"b": mj.positive, "a": mj.interval(0.0, 1.0)},
                  frozenset({"x", "y", "z"}), jax.tree_util.tree_structure({"a": 1, "b": 2})]
    """))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import probe_model; "
            "from mlejax._fingerprint import digest; "
            "print([digest(v) for v in probe_model.VALUES])")
    # This process hashes strings with a random seed; the other with a fixed one.
    env = dict(os.environ, PYTHONHASHSEED="1")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    outs = [out.stdout.strip()]
    sys.path.insert(0, str(tmp_path))
    try:
        import probe_model
        from mlejax._fingerprint import digest

        probe_model.COUNTS["calls"] += 5   # state changed between runs: the same problem
        assert str([digest(v) for v in probe_model.VALUES]) == outs[0]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("probe_model", None)


# ------------------------------------------------------------------ open_results

class _Marker:
    """A pickle whose loading would create a file (as a crafted one could run anything)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_open_results_never_unpickles(xs, tmp_path):
    out = tmp_path / "res"
    res = mj.fit_batch(loglik, INIT, xs, constraints=CONS, datasets_per_chunk=4, out=out)
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(_Marker(str(marker)))
    (out / "fit_batch.treedef.pkl").write_bytes(crafted)
    again = batching.open_results(out)          # the structure comes from the JSON
    assert not marker.exists()
    assert same(again, res)
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(
        dataclasses.replace(res, context=None))   # everything but the context (not saved)
    assert again.param_names == ("mu", "sigma") and again.method == res.method
    manifest = json.loads((out / "fit_batch.json").read_text())
    # A directory in the old format (structure only in the pickle) is refused, not loaded.
    old = dict(manifest)
    del old["structure"]
    (out / "fit_batch.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="no longer unpickles"):
        batching.open_results(out)
    assert not marker.exists()
    # A crafted structure is refused, whatever it names.
    for structure in ({"pickle": crafted.hex()},
                      {"fit_result": {"fields": {"params": {"leaf": 99}}, "static": {}}},
                      {"dict": [["mu", {"leaf": 0}], ["mu2", {"leaf": 0}]]}):
        (out / "fit_batch.json").write_text(json.dumps(dict(manifest, structure=structure)))
        with pytest.raises(ValueError, match="not one mlejax writes"):
            batching.open_results(out)
    (out / "fit_batch.json").write_text(json.dumps(dict(
        # a crafted entry that climbs out of the folder
        manifest, leaves=[dict(manifest["leaves"][0], file="/".join(["..", "..", "x.npy"]))])))
    with pytest.raises(ValueError, match="not one mlejax writes"):
        batching.open_results(out)
    assert not marker.exists()


# ------------------------------------------------------------------ the command line

def test_cli_duplicate_header_is_an_error(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    path.write_text("x,y,x\n" + "".join(f"{i + 1},{i},{2 * i + 1}\n" for i in range(20)))
    assert main(["fit", str(path), "--column", "x", "--dist", "gamma"]) == 2
    err = capsys.readouterr().err
    assert "more than once" in err and "'x' in columns 1, 3" in err


# ------------------------------------------------------------------ batches

def test_fit_batch_checks_every_datasets_weights(xs):
    w = np.ones_like(xs)
    w[3, 5] = -1.0
    w[6, 0] = np.nan
    for kw in ({}, {"datasets_per_chunk": 4}):   # in one program and streamed
        with pytest.raises(ValueError, match=r"weights of datasets \[3, 6\]"):
            mj.fit_batch(loglik, INIT, xs, constraints=CONS, weights=w, **kw)
    datasets = [xs[i, : 6 + i] for i in range(4)]
    wr = [np.ones(6 + i) for i in range(4)]
    wr[2][1] = -0.5
    with pytest.raises(ValueError, match=r"weights of datasets \[2\]"):
        mj.fit_batch(loglik, INIT, mj.ragged(datasets, wr), constraints=CONS)
    with pytest.raises(ValueError, match="weights of dataset 1 have shape"):
        mj.ragged(datasets, [np.ones(6), np.ones(3), np.ones(8), np.ones(9)])
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        mj.fit(loglik, INIT, xs[0], constraints=CONS, weights=np.where(np.arange(12) == 4,
                                                                         -1.0, 1.0))


def test_scalar_data_is_a_total_loglik():
    # One count: the Poisson MLE is the count itself. A Python number works as an array.
    def pois(p, k):
        return jax.scipy.stats.poisson.logpmf(k, p["lam"])

    for k in (3.0, 3):
        res = mj.fit(pois, {"lam": 1.0}, k, constraints={"lam": mj.positive})
        assert bool(res.converged) and abs(float(res.params["lam"]) - 3.0) < 1e-8
    with pytest.raises(ValueError, match="is a scalar; every data leaf needs the leading "
                                         "batch axis"):
        mj.fit_batch(pois, {"lam": 1.0}, 3.0, constraints={"lam": mj.positive})


def test_empty_batches_are_refused(xs):
    for data, kw in ((xs[:0], {}), (xs[:0], {"datasets_per_chunk": 4})):
        with pytest.raises(ValueError, match="0 datasets.*at least one"):
            mj.fit_batch(loglik, INIT, data, constraints=CONS, **kw)
    with pytest.raises(ValueError, match="an empty list, which holds no arrays"):
        mj.fit_batch(loglik, INIT, [], constraints=CONS)
    with pytest.raises(ValueError, match="ragged.*empty list.*at least one dataset"):
        mj.ragged([])
    with pytest.raises(ValueError, match="generator of chunks yielded nothing"):
        mj.fit_batch(loglik, INIT, iter([]), constraints=CONS)


def test_a_list_of_ragged_datasets_names_ragged(xs):
    datasets = [xs[0, :5], xs[1, :8], xs[2, :7]]   # one length bucket: one compilation
    with pytest.raises(ValueError, match=r"pass mj\.ragged\(datasets\)"):
        mj.fit_batch(loglik, INIT, datasets, constraints=CONS)
    res = mj.fit_batch(loglik, INIT, mj.ragged(datasets), constraints=CONS)
    assert np.array_equal(res.nobs, [5, 8, 7]) and bool(np.all(res.converged))
