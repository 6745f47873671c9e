"""Weighted summaries of one dataset (pure JAX) and the host-side integer test, shared by the
families' starting points, closed forms and checks.

All weighted helpers take one dataset: x (n,) [or (n, d)], w (n,) non-negative frequency
weights.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def wsum(w, v):
    return jnp.sum(w * v, axis=0)


def wmean(x, w):
    return jnp.sum(w * x) / jnp.sum(w)


def wvar(x, w, m=None):
    m = wmean(x, w) if m is None else m
    return jnp.sum(w * (x - m) ** 2) / jnp.sum(w)


def wquantile(x, w, q):
    """The smallest x with at least a fraction q of the weight at or below it."""
    order = jnp.argsort(x)
    xs, ws = x[order], w[order]
    cw = jnp.cumsum(ws)
    idx = jnp.argmax(cw >= q * cw[-1])
    return xs[idx]


def wmedian(x, w):
    """The weighted median; with unit weights exactly ``np.median`` (mean of the middle two)."""
    order = jnp.argsort(x)
    xs, ws = x[order], w[order]
    cw = jnp.cumsum(ws)
    half = 0.5 * cw[-1]
    lo = xs[jnp.argmax(cw >= half)]
    hi = xs[jnp.argmax(cw > half)]
    return 0.5 * (lo + hi)


def wmin(x, w):
    return jnp.min(jnp.where(w > 0, x, jnp.inf))


def wmax(x, w):
    return jnp.max(jnp.where(w > 0, x, -jnp.inf))


def clip_pos(v, lo=1e-3):
    return jnp.maximum(v, lo)



def integers(x):
    return np.equal(np.floor(x), x)
