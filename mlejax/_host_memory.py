"""Host memory: what is available to a new allocation, and releasing the pages of memmaps.

Streams read datasets from memmapped files and write results into memmapped files
(:mod:`mlejax._chunks`, :mod:`mlejax._results_io`); each releases the pages it touched once a
chunk is done (:func:`drop_pages`), so the resident set of a stream stays flat however large
the files are.
"""

from __future__ import annotations

import mmap
import os

import jax
import numpy as np

__all__ = ["available_memory", "drop_pages", "shared_mmap"]


def shared_mmap(x) -> mmap.mmap | None:
    """The ``mmap`` behind a NumPy memmap (or a view of one) when its pages can be dropped
    from this process without losing anything: a read-only or shared mapping (modes "r",
    "r+", "w+"; a copy-on-write "c" mapping holds private changes and is left alone)."""
    for _ in range(32):  # walk the chain of views down to the memmap
        raw = getattr(x, "_mmap", None)
        if isinstance(raw, mmap.mmap):
            return raw if getattr(x, "mode", "c") in ("r", "r+", "w+") else None
        x = getattr(x, "base", None)
        if x is None:
            return None
    return None


def drop_pages(tree) -> None:
    """Releases from this process the pages of the memmapped leaves of ``tree``.

    Reading (or writing) a memmap maps its pages into the process, and they count in its
    resident set until unmapped: a stream over an 11 GB file would end with 11 GB resident.
    ``MADV_DONTNEED`` on a read-only or shared mapping only unmaps them (the OS page cache
    keeps them, dirty pages included, and writes those back); a later access maps them
    again, so this is safe at any time and costs nothing but page faults.
    """
    if not hasattr(mmap, "MADV_DONTNEED"):  # not on this platform: nothing to release
        return
    seen = set()
    for x in jax.tree_util.tree_leaves(tree):
        raw = shared_mmap(x) if isinstance(x, np.ndarray) else None
        if raw is not None and id(raw) not in seen:
            seen.add(id(raw))
            try:
                raw.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # closed, or refused: only memory is at stake
                pass


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None

