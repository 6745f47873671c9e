"""Helpers shared by the regression models: where in a batch a check failed, the weighted
least-squares start and the exact-fit check of the Gaussian-like models."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def in_datasets(mask: np.ndarray, batched: bool, what: str = "dataset") -> str:
    """Where in a batch the flagged datasets are, appended to an error message: e.g.
    ``" (in datasets [0, 3], 2 of 5)"``; ``""`` for one fit."""
    if not batched:
        return ""
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:8])
    more = f" and {idx.size - 8} more" if idx.size > 8 else ""
    return f" (in {what}s [{shown}{more}], {idx.size} of {mask.size})"


def wls(X, z, w):
    """Weighted least squares ``argmin sum w (z - X b)^2`` (a starting point)."""
    sw = jnp.sqrt(w)
    return jnp.linalg.lstsq(X * sw[:, None], z * sw)[0]


def check_exact_fit(X, y, inside, batched, name):
    """An exact linear fit puts the MLE of sigma at 0."""
    Xm = X * inside[..., None]
    ym = y * inside
    beta = np.einsum("kdn,kn->kd", np.linalg.pinv(Xm), ym)
    r = (ym - np.einsum("knd,kd->kn", Xm, beta))
    rss = np.sum(r ** 2, axis=1)
    tss = np.sum((ym - ym.sum(1, keepdims=True) / np.maximum(inside.sum(1, keepdims=True), 1)
                  * inside) ** 2, axis=1)
    exact = rss <= 1e-24 * np.maximum(tss, np.sum(ym ** 2, axis=1))
    if np.any(exact):
        raise ValueError(f"y is an exact linear function of X{in_datasets(exact, batched)}: the "
                         f"MLE of sigma is 0 (on the boundary) and {name} has no MLE.")
