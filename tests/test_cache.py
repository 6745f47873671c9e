"""The persistent compilation cache is opt-in: importing mlejax leaves JAX's settings alone,
and ``mj.enable_compilation_cache`` turns it on (small programs included), in a fresh
process each so the test session's own configuration is never changed."""

import subprocess
import sys


def _run(code: str, env_extra: dict | None = None) -> str:
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "JAX_ENABLE_COMPILATION_CACHE", "MLEJAX_CACHE_DIR"))}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_leaves_the_compilation_cache_off():
    code = ("import jax; before = (jax.config.jax_compilation_cache_dir, "
            "jax.config.jax_persistent_cache_min_compile_time_secs, "
            "jax.config.jax_persistent_cache_min_entry_size_bytes); "
            "import mlejax; "
            "after = (jax.config.jax_compilation_cache_dir, "
            "jax.config.jax_persistent_cache_min_compile_time_secs, "
            "jax.config.jax_persistent_cache_min_entry_size_bytes); "
            "assert before == after and after[0] is None, after; print('ok')")
    assert "ok" in _run(code)


def test_enable_compilation_cache_writes_and_reads_small_programs(tmp_path):
    fit = ("import jax, jax.numpy as jnp, numpy as np, mlejax as mj; "
           "hits = []; "
           "jax.monitoring.register_event_listener("
           "lambda e, **k: hits.append(e) if e.endswith('cache_hits') else None); "
           f"folder = mj.enable_compilation_cache({str(tmp_path)!r}); "
           "assert jax.config.jax_compilation_cache_dir == str(folder); "
           "assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0; "
           "x = np.linspace(-1.0, 3.0, 50).astype(np.float32); "
           "res = mj.fit(lambda p, x: -0.5 * (x - p['mu']) ** 2, {'mu': 0.0}, x); "
           "assert bool(res.converged); print('hits', len(hits))")
    first = _run(fit)
    assert "hits 0" in first
    assert any(tmp_path.iterdir()), "the small fit's programs were written to the cache"
    second = _run(fit)   # a fresh process reads them back
    assert "hits 0" not in second


def test_default_folder_follows_the_environment(tmp_path):
    code = ("import mlejax as mj; "
            "print(mj.cache.default_cache_dir())")
    out = _run(code, {"MLEJAX_CACHE_DIR": str(tmp_path / "c")})
    assert out.strip() == str(tmp_path / "c")
