"""A clone of the repository alone has everything its tests, benchmarks and examples read.

Two checks: (1) a ``git clone`` of this checkout into an empty temporary folder finds the NIST
StRD data inside the clone and parses all 27 problems from there; (2) no file of tests/,
benchmarks/ or examples/ names a path that climbs out of the repository (``../``, or
``Path(__file__)...parents[k]`` past the root).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs git and a git checkout")
def test_clone_alone_has_nist_data(tmp_path):
    clone = tmp_path / "alone" / "mlejax"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The working tree's data may not be committed yet when run by hand: compare by content.
    assert (clone / "data" / "nist-strd").is_dir(), "data/nist-strd is not committed"
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import nist_problems as n;"
            "d = n.data_dir().resolve(); assert str(d).startswith(sys.argv[1]), d;"
            "probs = n.load_all(); print(len(probs))")
    out = subprocess.run([sys.executable, "-c", code, str(clone.resolve())], cwd=clone,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "27"


def _climbs_out(path: Path, text: str) -> list[str]:
    depth = len(path.relative_to(ROOT).parts) - 1    # folders between the file and the root
    bad = []
    for m in re.finditer(r"parents\[(\d+)\]((?:\s*\.parent)*)", text):
        up = int(m.group(1)) + m.group(2).count(".parent")   # levels above the file's folder
        if up > depth:
            bad.append(m.group(0))
    bad += re.findall(r"[\"']\.\./[^\"']*[\"']", text)
    bad += re.findall(r"[\"']/work/[^\"']*[\"']", text)
    return bad


def test_no_path_outside_the_repository():
    offenders = {}
    for folder in ("tests", "benchmarks", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            bad = _climbs_out(path, path.read_text())
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, f"paths that leave the repository: {offenders}"
