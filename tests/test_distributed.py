"""Two local processes under jax.distributed split a batch and give one process's results."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

import mlejax as mj

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "distributed_fit.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_process_share_covers_the_batch():
    for k, p in [(10, 3), (7, 2), (2, 4), (1000, 7)]:
        shares = [mj.distributed.process_share(k, i, p) for i in range(p)]
        assert shares[0][0] == 0 and shares[-1][1] == k
        assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
        assert max(h - lo for lo, h in shares) - min(h - lo for lo, h in shares) <= 1


def test_two_processes_equal_one(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(EXAMPLE.parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    args = ["--k", "30", "--n", "60", "--d", "3"]
    one = tmp_path / "one.npy"
    two = tmp_path / "two.npy"
    single = subprocess.run([sys.executable, str(EXAMPLE), *args, "--out", str(one)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    coord = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, str(EXAMPLE), *args, "--num-processes", "2",
                               "--process-id", str(i), "--coordinator", coord]
                              + (["--out", str(two)] if i == 0 else []),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "datasets [0, 15)" in outs[0][0] and "datasets [15, 30)" in outs[1][0]
    a, b = np.load(one), np.load(two)
    assert a.shape == b.shape == (30, 3)
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
