"""The documentation site builds without a warning and documents every public name.

``mkdocs build --strict`` (mkdocs-material + mkdocstrings, configured by mkdocs.yml; the API
pages are generated from the ``__all__`` lists by docs/hooks.py) runs in a subprocess into a
temporary folder; any warning fails the test with the build log. Then every public name --
``mlejax.__all__`` and the ``__all__`` of every public module (``mlejax.<name>`` without a
leading underscore that defines ``__all__``) -- must be in the site's object inventory
(``objects.inv``) or be an anchor of the API pages. And every script of examples/ must have
its page (written by ``python docs/render_examples.py``) in the navigation.

Without mkdocs (the ``docs`` extra) the test is skipped, except under CI (the environment
variable ``CI`` set), which installs the extra and where a skip would hide a broken site.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import mlejax

ROOT = Path(__file__).resolve().parents[1]

# The modules the documentation must cover at least (more are found by public_modules()).
REQUIRED_MODULES = {"models", "distributions", "penalties", "anneal", "optima", "batching",
                    "distributed", "cache", "plot", "inference", "constraints", "methods",
                    "status", "result", "kmeans", "em", "mixture", "random_effects", "cli"}


def _need_docs_tools() -> None:
    def present(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:       # a parent package is missing
            return False

    missing = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
               if not present(m)]
    if missing:
        message = (f"the docs extra is not installed ({', '.join(missing)} missing): "
                   "pip install -e '.[docs]'")
        if os.environ.get("CI"):
            pytest.fail(message + " -- CI must build the documentation")
        pytest.skip(message)


def public_modules() -> list[str]:
    found = []
    for info in pkgutil.iter_modules(mlejax.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"mlejax.{info.name}")
        if isinstance(getattr(module, "__all__", None), (list, tuple)):
            found.append(info.name)
    return sorted(found)


def public_names() -> list[str]:
    """Every public name, fully qualified: mlejax.<name> and mlejax.<module>.<name>."""
    names = [f"mlejax.{n}" for n in mlejax.__all__]
    for module in public_modules():
        mod = importlib.import_module(f"mlejax.{module}")
        names.append(f"mlejax.{module}")
        names += [f"mlejax.{module}.{n}" for n in mod.__all__]
    return names


def _inventory(site: Path) -> set[str]:
    """The object names of a Sphinx-format objects.inv (what mkdocstrings writes)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):                       # four header lines, then the zlib stream
        header_end = raw.index(b"\n", header_end) + 1
    body = zlib.decompress(raw[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def _anchors(site: Path) -> set[str]:
    ids = set()
    for page in (site / "api").rglob("*.html"):
        ids.update(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
    return ids


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _need_docs_tools()
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", JAX_PLATFORMS="cpu")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if line.lstrip().startswith("WARNING")]
    assert proc.returncode == 0 and not warnings, (
        f"mkdocs build --strict failed (exit {proc.returncode}, {len(warnings)} warnings, "
        f"{elapsed:.1f} s):\n{log}")
    return out


def test_required_modules_are_public():
    assert REQUIRED_MODULES <= set(public_modules()), (
        "modules the docs must cover are not public modules with __all__: "
        f"{sorted(REQUIRED_MODULES - set(public_modules()))}")


def test_site_builds_strict_and_documents_every_public_name(site):
    documented = _inventory(site) | _anchors(site)
    missing = [name for name in public_names() if name not in documented]
    assert not missing, (
        f"{len(missing)} public names have no entry in the API reference (objects.inv or an "
        f"anchor of site/api/): {missing}")
    assert (site / "index.html").is_file() and (site / "api" / "index.html").is_file()


def test_every_example_has_a_page(site):
    nav = (ROOT / "mkdocs.yml").read_text()
    for script in sorted((ROOT / "examples").glob("*.py")):
        page = ROOT / "docs" / "examples" / f"{script.stem}.md"
        assert page.is_file(), (f"examples/{script.name} has no page: run "
                                "python docs/render_examples.py (and add it to its SPECS)")
        assert f"examples/{script.stem}.md" in nav, f"{page.name} is not in mkdocs.yml's nav"
        figures = re.findall(r"\]\((figures/[^)]+\.png)\)", page.read_text())
        assert figures, f"{page.name} shows no figure"
        for fig in figures:
            assert (site / "examples" / script.stem / ".." / fig).resolve().is_file(), (
                f"{page.name}: {fig} is missing from the built site")
