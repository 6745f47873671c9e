"""The benchmark suite still runs (issue 6): its quickest path, in-process, smallest sizes.

Timings are never asserted; what is checked is that the suite runs end to end through both
front doors (``mlejax bench`` and ``python -m benchmarks``), prints its table, writes its
JSON, checks the optimum, and reports a peer that is not installed as skipped.
"""

import json

import pytest

from mlejax import cli

suite = cli._bench_suite()
pytestmark = pytest.mark.skipif(suite is None, reason="benchmarks/ is not in this checkout")


def test_bench_quick_batch_logistic(tmp_path, monkeypatch, capsys):
    from benchmarks import harness

    real = harness.optional
    # A peer and matplotlib "not installed": reported as skipped / a message, no crash.
    monkeypatch.setattr(harness, "optional",
                        lambda name: None if name in ("optimistix", "matplotlib") else real(name))
    out = tmp_path / "out.json"
    status = cli.main(["bench", "--quick", "--only", "batch_logistic", "--sizes", "16",
                       "--repeats", "1", "--budget", "0", "--peer-threads", "default",
                       "--json", str(out), "--plot", str(tmp_path / "out.png")])
    text = capsys.readouterr().out
    assert status == 0
    assert "mlejax fit_batch (newton) *" in text and "statsmodels Logit loop" in text
    assert "optimistix is not installed" in text and "needs matplotlib" in text
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1 and report["versions"]["jax"]
    (group,) = report["groups"]
    rows = {r["method"]: r for r in group["rows"]}
    assert rows["optimistix BFGS under vmap"]["skipped"]
    subject = rows["mlejax fit_batch (newton)"]
    assert subject["ok"] and subject["median_s"] > 0 and subject["compile_s"] is not None
    # CPU time beside wall time: how many cores each method kept busy.
    assert subject["cpu_median_s"] > 0 and subject["cores"] > 0 and "| cores |" in text
    assert rows["statsmodels Logit loop"]["ok"] and rows["statsmodels Logit loop"]["speedup"] > 0
    assert group["targets"], "the issue's targets are evaluated"


def test_bench_quick_nist_module_entry(capsys):
    status = suite.main(["--quick", "--only", "nist", "--sizes", "1", "--repeats", "1",
                         "--budget", "0", "--peer-threads", "default"])
    text = capsys.readouterr().out
    assert status == 0
    assert "mlejax newton *" in text and "LRE >= 6 on 2/2" in text
    assert "scipy least_squares (trf)" in text


def test_bench_rejects_unknown_workload():
    with pytest.raises(SystemExit, match="unknown workload"):
        suite.main(["--only", "no_such_workload"])
