"""A neural network is a likelihood too: an MLP classifier fitted by maximum likelihood.

Two interleaved half-moons in 2-D (drawn with jax.random); a one-hidden-layer tanh network
gives the logit of P(y = 1 | x), and mj.fit maximises the Bernoulli log-likelihood
sum_i y_i eta_i - log(1 + exp(eta_i)) over the weights (a dict pytree of matrices) with
optax's Adam, on the full data and then on minibatches (minibatch=, key=). A logistic
regression (a straight boundary) and, if installed, scikit-learn's MLPClassifier (same
architecture, no penalty) are the references.

The network's log-likelihood is not concave (hidden units can be permuted or flipped in
sign), and first-order ascent with a fixed step stops at max_steps rather than at a zero
gradient: the status says which. The standard errors of such a fit mean little and are
not shown.

Run:  python examples/neural_net.py [--n 400] [--hidden 16] [--steps 2000] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mlejax as mj


def two_moons(key, n, noise=0.2):
    """n points on two interleaved half circles, labels 0 / 1, plus Gaussian noise."""
    k1, k2, k3 = jax.random.split(key, 3)
    y = jax.random.bernoulli(k1, 0.5, (n,))
    t = jax.random.uniform(k2, (n,), minval=0.0, maxval=jnp.pi)
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    lower = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
    x = jnp.where(y[:, None], lower, upper) + noise * jax.random.normal(k3, (n, 2))
    return x, y.astype(x.dtype)


def logits(params, x):
    """One hidden tanh layer: (n, 2) -> (n,) logits."""
    h = jnp.tanh(x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def bernoulli_loglik(params, data):
    """Per-observation log P(y_i | x_i): the likelihood the network is fitted by."""
    x, y = data
    eta = logits(params, x)
    return y * eta - jnp.logaddexp(0.0, eta)


def init_params(key, hidden):
    k1, k2 = jax.random.split(key)
    return {"W1": jax.random.normal(k1, (2, hidden)),
            "b1": jnp.zeros(hidden),
            "W2": jax.random.normal(k2, (hidden,)) / jnp.sqrt(hidden),
            "b2": jnp.zeros(())}


def accuracy(params, x, y):
    return float(jnp.mean((logits(params, x) > 0) == (y > 0.5)))


def report(name, res, x, y):
    status = mj.Status(int(res.status)).name
    print(f"  {name:<34} loglik {float(res.loglik):>10.3f}  accuracy "
          f"{accuracy(res.params, x, y):6.1%}  steps {int(res.n_steps):>5}  status {status}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="training points")
    ap.add_argument("--hidden", type=int, default=16, help="hidden units")
    ap.add_argument("--steps", type=int, default=2000, help="optimiser steps")
    ap.add_argument("--batch-size", type=int, default=64, help="minibatch size")
    ap.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    args = ap.parse_args(argv)
    jax.config.update("jax_enable_x64", True)   # examples may; the library never does
    k_data, k_init, k_batch = jax.random.split(jax.random.key(0), 3)
    x, y = two_moons(k_data, args.n)
    init = init_params(k_init, args.hidden)
    n_weights = sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(init))
    print(f"two moons, n={args.n}; MLP 2 -> {args.hidden} (tanh) -> 1, {n_weights} weights; "
          f"Adam(lr={args.lr}), {args.steps} steps")

    # A straight boundary first: logistic regression on (1, x1, x2) by Newton.
    X = jnp.column_stack([jnp.ones(args.n), x])
    lin = mj.fit(lambda p, d: d[1] * (d[0] @ p["beta"]) - jnp.logaddexp(0.0, d[0] @ p["beta"]),
                 {"beta": jnp.zeros(3)}, (X, y))
    lin_acc = float(jnp.mean(((X @ lin.params["beta"]) > 0) == (y > 0.5)))
    print(f"  {'logistic regression (Newton)':<34} loglik {float(lin.loglik):>10.3f}  accuracy "
          f"{lin_acc:6.1%}  steps {int(lin.n_steps):>5}  status "
          f"{mj.Status(int(lin.status)).name}")

    # The network, full batch. warn=False: the status is printed on the line instead.
    full = mj.fit(bernoulli_loglik, init, (x, y), method="gradient",
                  optimizer=optax.adam(args.lr), max_steps=args.steps, warn=False)
    report("MLP, full-batch Adam", full, x, y)

    # The network, stochastic: each step sees batch_size points drawn with replacement.
    mini = mj.fit(bernoulli_loglik, init, (x, y), method="gradient",
                  optimizer=optax.adam(args.lr), minibatch=args.batch_size,
                  max_steps=args.steps, key=k_batch, warn=False)
    report(f"MLP, minibatch Adam (batch {args.batch_size})", mini, x, y)
    trace = np.asarray(full.trace)
    trace = trace[np.isfinite(trace)]
    marks = np.unique(np.linspace(0, trace.size - 1, 6).astype(int))
    print("  full-batch log-likelihood trace: "
          + ", ".join(f"step {i}: {trace[i]:.2f}" for i in marks))
    if int(full.status) != mj.Status.CONVERGED:
        print(f"  full-batch status: {full.message}")

    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        print("scikit-learn is not installed: the comparison with MLPClassifier is skipped.")
    else:
        xn, yn = np.asarray(x), np.asarray(y).astype(int)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf = MLPClassifier(hidden_layer_sizes=(args.hidden,), activation="tanh",
                                solver="lbfgs", alpha=0.0, max_iter=args.steps, tol=1e-10,
                                random_state=0).fit(xn, yn)
        hit_limit = any("iteration" in str(w.message) for w in caught)
        prob = np.clip(clf.predict_proba(xn)[:, 1], 1e-300, 1 - 1e-16)
        ll = float(np.sum(yn * np.log(prob) + (1 - yn) * np.log1p(-prob)))
        print(f"  {'sklearn MLPClassifier (L-BFGS)':<34} loglik {ll:>10.3f}  accuracy "
              f"{clf.score(xn, yn):6.1%}  iterations {clf.n_iter_:>5}"
              + ("  (stopped at its iteration limit)" if hit_limit else ""))
        print(f"  loglik difference, mlejax full-batch minus sklearn: "
              f"{float(full.loglik) - ll:+.3f} (different starts, different optimisers: "
              "each finds its own point of a non-concave likelihood)")
    if int(full.status) != mj.Status.CONVERGED and trace[-1] > trace[-2]:
        print(f"The log-likelihood was still rising at step {trace.size - 1}: more steps would "
              "raise it further, and a network flexible enough to separate the training points "
              "has no maximum at all (the likelihood tends to 0 as the weights grow). Held-out "
              "data or a penalty, not a longer run, decides when to stop.")


if __name__ == "__main__":
    main()
