"""One cache for compiled programs.

Every function that builds a ``jax.jit`` program from a static configuration (a fit's
:class:`~mlejax._config.Config`, a mixture's, a bootstrap's) is wrapped in
:func:`program_cache`: a second call with the same configuration gets the same compiled
program back (no retracing), and the cache is bounded, so a long session that fits many
different models does not hold every program it ever compiled.
"""

from __future__ import annotations

import functools

__all__ = ["PROGRAM_CACHE_SIZE", "program_cache"]

#: Programs kept per cached builder (least recently used dropped first).
PROGRAM_CACHE_SIZE = 256


def program_cache(builder):
    """``builder`` (hashable arguments -> a compiled program), memoised with a bounded LRU
    cache of :data:`PROGRAM_CACHE_SIZE` entries."""
    return functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)(builder)
