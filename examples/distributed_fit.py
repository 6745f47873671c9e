"""Fit a batch of logistic regressions across several processes with jax.distributed.

Every process runs this same script; each fits its share and the results are gathered.
Two processes on this machine (the coordinator on 127.0.0.1):

    python examples/distributed_fit.py --num-processes 2 --process-id 0 &
    python examples/distributed_fit.py --num-processes 2 --process-id 1

On a cluster, give --coordinator the address of process 0's host, and start one process
per host (a scheduler such as SLURM can fill these in).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np


def logistic_loglik(params, data):
    X, y = data
    eta = X @ params["beta"]
    return y * eta - jnp.logaddexp(0.0, eta)


def make_batch(k: int, n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)  # the same data on every process
    X = np.concatenate([np.ones((k, n, 1)), rng.normal(size=(k, n, d - 1))], axis=2)
    beta = rng.normal(scale=0.5, size=(k, d))
    y = (rng.uniform(size=(k, n)) < 1 / (1 + np.exp(-np.einsum("knd,kd->kn", X, beta))))
    return X, y.astype(float)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-processes", type=int, default=1)
    ap.add_argument("--process-id", type=int, default=0)
    ap.add_argument("--coordinator", default="127.0.0.1:12355")
    ap.add_argument("--k", type=int, default=1000, help="datasets in the batch")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--out", default=None, help="save the gathered estimates (.npy), process 0")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if args.num_processes > 1:
        # CPU processes need a cross-process collectives backend for the gather.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=args.coordinator,
                                   num_processes=args.num_processes,
                                   process_id=args.process_id)
    import mlejax as mj

    X, y = make_batch(args.k, args.n, args.d)
    lo, hi = mj.distributed.process_share(args.k)
    print(f"process {jax.process_index()} of {jax.process_count()}: datasets [{lo}, {hi})")
    res = mj.distributed.fit_batch_distributed(logistic_loglik, {"beta": np.zeros(args.d)},
                                               (X, y), warn=False)
    if jax.process_index() == 0:
        print(res.summary())
        if args.out:
            np.save(args.out, np.asarray(res.params["beta"]))
    if args.num_processes > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
