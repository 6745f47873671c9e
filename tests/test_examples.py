"""Every example runs, small."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script, args, expect", [
    ("quickstart.py", ["--n", "100", "--k", "8"], "CONVERGED"),
    ("closed_forms.py", ["--n", "40", "--k", "40", "--small-n", "5"], "closed form p"),
    ("outliers.py", ["--n", "40", "--outliers", "4"], "Student-t MLE"),
    ("consistency.py", ["--sizes", "30", "--k", "20"], "sd*sqrt(n)"),
    ("regression.py", ["--n", "60", "--p", "2"], "least squares (numpy lstsq)"),
    ("neural_net.py", ["--n", "60", "--hidden", "4", "--steps", "100", "--batch-size", "16"],
     "minibatch Adam"),
    ("multimodal.py", ["--n", "60", "--restarts", "4", "--grid", "41"], "n_best ="),
    ("gmm_em.py", ["--n", "90", "--k", "2", "--n-init", "2"], "EM trace"),
    ("survival_weibull.py", ["--n", "40", "--boot", "10"], "profile likelihood"),
    ("many_fits.py", ["--k", "64", "--n", "20", "--chunk-size", "32", "--check", "3"],
     "fits/second"),
    ("mixed_model.py", ["--groups", "20", "--per-group", "4", "--n", "20", "--show", "2",
                        "--nodes", "0"],
     "exact (quad)"),
])
def test_example_runs(script, args, expect, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script] + args)
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    assert expect in out
    assert "mlejax" in out or script != "quickstart.py"
