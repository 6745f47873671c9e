"""The persistent compilation cache, switched on by one explicit call (never on import).

A one-off fit of a custom model spends most of its first call compiling. JAX can keep
compiled programs on disk and reuse them in later processes; by default it does not, and
it writes only programs that took over a second to compile, which leaves out every program
of a small fit. :func:`enable_compilation_cache` turns the cache on for this process with
thresholds that keep small programs too. Importing mlejax never changes JAX's
configuration: nothing here runs unless called.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_compilation_cache", "default_cache_dir"]

#: The JAX options :func:`enable_compilation_cache` sets.
SETTINGS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
            "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")

#: Environment variable naming the cache folder used when no ``path`` is given.
CACHE_DIR_ENV = "MLEJAX_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$MLEJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlejax/jax`` (``~/.cache/mlejax/jax``)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mlejax" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None, *,
                             min_compile_time_s: float = 0.0,
                             min_entry_size_bytes: int = -1) -> Path:
    """Turns on JAX's persistent compilation cache for this process, small programs included.

    Compiled programs are written to ``path`` and read back by later processes that make
    the same program (the same model, shapes, dtypes, options and JAX version): their first
    call then skips XLA's compilation. This sets JAX's global options
    ``jax_enable_compilation_cache``, ``jax_compilation_cache_dir``,
    ``jax_persistent_cache_min_compile_time_secs`` and
    ``jax_persistent_cache_min_entry_size_bytes`` -- which is why it is a call of your own,
    never done by importing mlejax. It affects every JAX program of the process, not only
    mlejax's. Call it before the first fit (calling later also works; programs compiled
    before are not written).

    Args:
      path: the cache folder (created if missing); default :func:`default_cache_dir`.
      min_compile_time_s: write only programs whose compilation took at least this long
        (JAX's default is 1 s, which leaves out every program of a small fit).
      min_entry_size_bytes: write only entries at least this large (-1: no minimum).

    Returns:
      The cache folder.

    Example:
      >>> import tempfile
      >>> before = {name: getattr(jax.config, name) for name in mj.cache.SETTINGS}
      >>> folder = mj.enable_compilation_cache(tempfile.mkdtemp())
      >>> jax.config.jax_compilation_cache_dir == str(folder)
      True
      >>> for name, value in before.items():   # this example only: put JAX's settings back
      ...     jax.config.update(name, value)
    """
    folder = Path(default_cache_dir() if path is None else path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", int(min_entry_size_bytes))
    return folder
