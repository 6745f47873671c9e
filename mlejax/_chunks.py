"""Chunks of a stream of datasets: each ``chunk_size`` datasets (the last padded with copies of
its last dataset), from arrays (a NumPy memmap read one chunk at a time, its pages released
once copied) or from a generator of batched pytrees; and the host-side checks made on them as
they stream past (NaN in the data, weights finite and >= 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from mlejax import _validate as V
from mlejax._host_memory import drop_pages

__all__ = ["Chunk", "array_chunks", "check_weights_streamed", "generator_chunks",
           "nan_datasets", "pad_rows", "take_rows"]


@dataclasses.dataclass
class Chunk:
    """``chunk_size`` datasets as they go to the compiled program: their numbers, and the
    start, data and weights of each (padding included)."""

    index: np.ndarray    # (chunk_size,) dataset numbers; padding repeats the last one
    count: int           # real datasets in the chunk (the rest is padding)
    start: Any
    data: Any
    weights: Any


def pad_rows(x, size):
    """``x`` grown along axis 0 to ``size`` rows by repeating its last row."""
    x = np.asarray(x)
    if x.shape[0] == size:
        return x
    reps = np.repeat(x[-1:], size - x.shape[0], axis=0)
    return np.concatenate([x, reps], axis=0)


def take_rows(tree, rows, size):
    """The ``rows`` of every leaf of ``tree``, padded to ``size`` (:func:`pad_rows`)."""
    return jax.tree_util.tree_map(lambda x: pad_rows(x[rows], size), tree)


def nan_datasets(chunk: Chunk) -> list[int]:
    """The numbers of the datasets of ``chunk`` (padding left out) with a NaN or infinite
    value in a float leaf."""
    bad = np.zeros(chunk.count, bool)
    for x in jax.tree_util.tree_leaves(chunk.data):
        x = np.asarray(x)[: chunk.count]
        if x.dtype.kind in "fc":
            bad |= ~np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
    return [int(i) for i in chunk.index[: chunk.count][bad]]


def array_chunks(start, data, weights, k: int, chunk_size: int, init_batched: bool,
                 ids: np.ndarray | None = None) -> Iterator[Chunk]:
    """Chunks of a batch of ``k`` datasets held in arrays (a NumPy memmap is read one chunk
    at a time); ``ids`` numbers the datasets in the result (default ``0 .. k-1``)."""
    ids = np.arange(k) if ids is None else np.asarray(ids)
    for lo in range(0, k, chunk_size):
        rows = np.arange(lo, min(lo + chunk_size, k))
        count = rows.size
        chunk = Chunk(
            index=pad_rows(ids[rows], chunk_size), count=count,
            start=take_rows(start, rows, chunk_size) if init_batched else start,
            data=take_rows(data, rows, chunk_size),
            weights=None if weights is None else take_rows(weights, rows, chunk_size))
        drop_pages((start, data, weights))  # the chunk is a copy: release what was read
        yield chunk
        del chunk


def generator_chunks(items, start, chunk_size: int) -> Iterator[Chunk]:
    """Chunks from an iterable of batched pytrees, each padded to ``chunk_size``."""
    offset = 0
    for item in items:
        n = jax.tree_util.tree_leaves(item)[0].shape[0]
        if n > chunk_size:
            raise ValueError(f"a chunk from the generator holds {n} datasets, more than "
                             f"datasets_per_chunk={chunk_size}; pass a larger "
                             "datasets_per_chunk.")
        if n == 0:   # an empty chunk holds nothing to fit
            continue
        rows = np.arange(n)
        chunk = Chunk(pad_rows(np.arange(offset, offset + n), chunk_size), n, start,
                      take_rows(item, rows, chunk_size), None)
        drop_pages(item)
        del item
        yield chunk
        del chunk
        offset += n


def check_weights_streamed(weights, k: int, size: int) -> None:
    """Every dataset's weights finite and >= 0, read ``size`` datasets at a time (a memmap's
    pages released as it is read), before anything is compiled; the error names them all."""
    bad: list[int] = []
    for lo in range(0, k, size):
        bad += (lo + V.bad_weight_rows(np.asarray(weights[lo:lo + size]))).tolist()
        drop_pages(weights)
    if bad:
        raise V.weights_error(bad, np.asarray(weights[bad[0]]))

