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


def test_results_md_between_markers(tmp_path):
    """``--results-md``: the markers go in once, after the first heading; a second write
    replaces only what lies between them; the rest of the file is kept byte for byte."""
    from benchmarks import harness

    assert suite.parser().parse_args(["--results-md", "R.md"]).results_md == "R.md"
    path = tmp_path / "RESULTS.md"
    intro, history = "Produced by the suite.\n", "## History\n\n- tried a thing: 2x.\n"
    path.write_text(f"# Results\n\n{intro}\n{history}")
    report = {"command": ["python", "-m", "benchmarks", "--only", "nist"],
              "date": "2026-12-05 18:00:00 CET", "date_utc": "2026-12-05 17:00:00 UTC",
              "wall_s": 90.0, "quick": False, "errors": {"zoo:10": "RuntimeError: boom"},
              "machine": {"cpu": "Test CPU", "cpu_count": 2, "platform": "Linux-test",
                          "backend": "cpu", "devices": ["cpu:cpu"], "x64": True,
                          "loadavg": [1.0, 1.5, 2.0], "memory_gb": 8.0},
              "versions": {"python": "3.11", "jax": "0.10.2", "optimistix": None}}
    first = harness.markdown_report(report, "| a | b |\n|---|--:|\n| x | 1 |")
    harness.write_marked(str(path), first)
    text = path.read_text()
    assert text.startswith(f"# Results\n\n{harness.MD_BEGIN}\n**Suite run**")
    assert text.endswith(f"{harness.MD_END}\n\n{intro}\n{history}")
    assert text.count(harness.MD_BEGIN) == text.count(harness.MD_END) == 1
    for part in ("2026-12-05 17:00:00 UTC", "`python -m benchmarks --only nist`", "Test CPU x2",
                 "jax 0.10.2", "not installed: optimistix", "Device: cpu (cpu:cpu)",
                 "| x | 1 |", "zoo:10: RuntimeError: boom"):
        assert part in text, part

    harness.write_marked(str(path), "second run\n\n| y | 2 |")
    again = path.read_text()
    assert again == (f"# Results\n\n{harness.MD_BEGIN}\nsecond run\n\n| y | 2 |\n"
                     f"{harness.MD_END}\n\n{intro}\n{history}")
    harness.write_marked(str(path), "second run\n\n| y | 2 |")
    assert path.read_text() == again                       # idempotent
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]   # no temp file left

    path.write_text(f"{harness.MD_END}\n{harness.MD_BEGIN}\n")
    with pytest.raises(ValueError, match="markers by hand"):
        harness.write_marked(str(path), "x")
    assert path.read_text() == f"{harness.MD_END}\n{harness.MD_BEGIN}\n"   # untouched
