"""mkdocs hook: the API reference, generated at build time from the ``__all__`` lists.

Every public name gets documented on the page of its public module, ``api/<module>.md``:

* a name of ``mlejax.__all__`` (``mj.fit``, ``mj.FitResult``, ``mj.bootstrap``) is rendered
  once, under the name users type, ``mlejax.<name>``, on the page of the public module that
  also exports it (``mj.bootstrap`` on the ``mlejax.inference`` page); the module's own path
  (``mlejax.inference.bootstrap``) is an anchor on the same heading, so both resolve;
* a name only in a submodule's ``__all__`` is rendered as ``mlejax.<module>.<name>``;
* the names of ``mlejax.__all__`` that no public module exports (``fit``, ``fit_batch``,
  ``FitWarning``) are on the ``mlejax`` page, with a table of every top-level name.

The public modules are found, not listed: every ``mlejax.<name>`` module without a leading
underscore that defines ``__all__``. So a model added to ``mlejax.models.__all__``, or a new
public module, appears in the reference at the next build without editing the docs.
``tests/test_docs.py`` checks that every public name has its anchor in the built site.

The guide pages may also hold markers that this hook replaces with tables generated from
the code, so that they list what exists: ``<!-- mlejax:models-table -->`` (every name of
``mlejax.models.__all__`` with the first line of its docstring) and
``<!-- mlejax:distributions-table -->`` (the registry ``mlejax.distributions.DISTRIBUTIONS``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

API_DIR = "api"
NAV_TITLE = "API reference"

# Page order in the navigation (public modules found later are appended, sorted).
ORDER = ["result", "status", "methods", "constraints", "batching", "cache", "inference",
         "optima", "penalties", "anneal", "em", "kmeans", "mixture", "random_effects",
         "models", "distributions", "distributed", "plot", "cli", "solvers"]

TITLES = {
    "mlejax": "mlejax: fit, fit_batch",
    "result": "Results",
    "status": "Status codes",
    "methods": "Methods (solvers)",
    "constraints": "Constraints",
    "batching": "Batches of fits",
    "cache": "Compilation cache",
    "inference": "Inference",
    "optima": "Optima map",
    "penalties": "Penalties",
    "anneal": "Annealing",
    "em": "EM",
    "kmeans": "k-means",
    "mixture": "Mixtures",
    "random_effects": "Random effects",
    "models": "Regression models",
    "distributions": "Distributions",
    "distributed": "Many processes",
    "plot": "Plots",
    "cli": "Command line",
    "solvers": "Solver internals",
}

NOTES = {
    "models": "This page is generated from `mlejax.models.__all__` at every build: a model "
              "added there appears here without editing the docs.",
    "solvers": "The solver kernels under `mj.fit`'s `method=`; most users want the solver "
               "objects of [`mlejax.methods`][mlejax.methods] instead.",
    "plot": "matplotlib is an optional extra: `pip install \"mlejax[plot]\"`.",
}


def public_modules() -> list[str]:
    """Names of the public modules of mlejax (no leading underscore, with ``__all__``)."""
    import mlejax

    found = []
    for info in pkgutil.iter_modules(mlejax.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"mlejax.{info.name}")
        if isinstance(getattr(module, "__all__", None), (list, tuple)):
            found.append(info.name)
    known = [m for m in ORDER if m in found]
    return known + sorted(set(found) - set(known))


def public_names() -> dict[str, list[str]]:
    """``{"mlejax": mlejax.__all__, "mlejax.<module>": <module>.__all__, ...}``."""
    import mlejax

    out = {"mlejax": list(mlejax.__all__)}
    for name in public_modules():
        out[f"mlejax.{name}"] = list(importlib.import_module(f"mlejax.{name}").__all__)
    return out


def _kind(obj: Any) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "attribute"


def _directive(path: str, *, anchors: tuple[str, ...] = (), **options: Any) -> str:
    lines = [f'[](){{ id="{a}" }}' for a in anchors]
    lines.append(f"::: {path}")
    if options:
        lines.append("    options:")
        for key, value in options.items():
            lines.append(f"      {key}: {value}")
    return "\n".join(lines) + "\n"


def _home() -> dict[str, str]:
    """Where each top-level name is rendered: ``{name: module}`` (``"mlejax"`` if none)."""
    import mlejax

    home = {}
    for name in mlejax.__all__:
        obj = getattr(mlejax, name)
        home[name] = "mlejax"
        if inspect.ismodule(obj):
            home[name] = obj.__name__.removeprefix("mlejax.")
            continue
        for module in public_modules():
            mod = importlib.import_module(f"mlejax.{module}")
            if name in mod.__all__ and getattr(mod, name) is obj:
                home[name] = module
                break
    return home


def api_pages() -> dict[str, str]:
    """``{src_uri: markdown}`` for the API reference."""
    import mlejax

    home = _home()
    pages: dict[str, str] = {}

    # The top-level package: its docstring, what only it exports, a table of every name.
    top = [n for n in mlejax.__all__ if home[n] == "mlejax"]
    body = [_directive("mlejax", heading_level=1, members="false", show_root_heading="true",
                       show_root_toc_entry="false"),
            "Everything below is `mj.<name>` after `import mlejax as mj`.\n",
            "| name | kind | documented on |", "|---|---|---|"]
    for name in sorted(mlejax.__all__, key=str.lower):
        obj = getattr(mlejax, name)
        where = home[name]
        page = "this page" if where == "mlejax" else f"[`mlejax.{where}`]({where}.md)"
        body.append(f"| [`{name}`][mlejax.{name}] | {_kind(obj)} | {page} |")
    body.append("")
    for name in top:
        body.append(_directive(f"mlejax.{name}"))
    pages[f"{API_DIR}/mlejax.md"] = "\n".join(body)

    for module in public_modules():
        mod = importlib.import_module(f"mlejax.{module}")
        body = [_directive(f"mlejax.{module}", heading_level=1, members="false",
                           show_root_heading="true", show_root_toc_entry="false")]
        if module in NOTES:
            body.append(f"!!! note\n    {NOTES[module]}\n")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if name in mlejax.__all__ and getattr(mlejax, name) is obj and home[name] == module:
                body.append(_directive(f"mlejax.{name}", anchors=(f"mlejax.{module}.{name}",)))
            elif name in mlejax.__all__ and getattr(mlejax, name) is obj:
                body.append(f'[](){{ id="mlejax.{module}.{name}" }}\n'
                            f"`mlejax.{module}.{name}` is [`mlejax.{name}`][mlejax.{name}].\n")
            else:
                body.append(_directive(f"mlejax.{module}.{name}"))
        pages[f"{API_DIR}/{module}.md"] = "\n".join(body)

    # The overview: every public name, by module, linked to its documentation.
    body = ["# API reference\n",
            "Every public name of mlejax: `mlejax.__all__` (what `import mlejax as mj` gives) "
            "and the `__all__` of each public module. These pages are generated from those "
            "lists at every build (`docs/hooks.py`), so they cannot fall behind the code. A "
            "name that is both `mj.<name>` and `mlejax.<module>.<name>` is documented once, "
            "under `mlejax.<name>`, and both links lead there.\n"]
    for qual, names in public_names().items():
        where = "mlejax" if qual == "mlejax" else qual.removeprefix("mlejax.")
        body.append(f"## [`{qual}`]({where}.md)\n")
        items = []
        for name in names:
            target = (f"mlejax.{name}" if qual == "mlejax" or
                      (name in mlejax.__all__
                       and getattr(mlejax, name) is getattr(importlib.import_module(qual), name))
                      else f"{qual}.{name}")
            items.append(f"[`{name}`][{target}]")
        body.append(", ".join(items) + "\n")
    pages[f"{API_DIR}/index.md"] = "\n".join(body)
    return pages


def _nav_pages() -> list:
    titles = [{"Overview": f"{API_DIR}/index.md"}, {TITLES["mlejax"]: f"{API_DIR}/mlejax.md"}]
    for module in public_modules():
        titles.append({f"{TITLES.get(module, module)} (mlejax.{module})":
                       f"{API_DIR}/{module}.md"})
    return titles


def on_config(config, **kwargs):
    """Fills the navigation's "API reference" section with the generated pages, and roots
    the snippets (the example pages include ``examples/<name>.py``) at the repository, so
    that ``mkdocs build -f path/to/mkdocs.yml`` works from any folder."""
    root = str(Path(config.config_file_path).resolve().parent)
    snippets = config.get("mdx_configs", {}).get("pymdownx.snippets")
    if snippets is not None:
        snippets["base_path"] = [root]
    nav = config.get("nav")
    if nav:
        for i, item in enumerate(nav):
            if isinstance(item, dict) and NAV_TITLE in item:
                nav[i] = {NAV_TITLE: _nav_pages()}
    return config


def on_files(files: Files, config, **kwargs) -> Files:
    """Adds the generated API pages to the site."""
    for uri, content in api_pages().items():
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=content))
    return files


# ------------------------------------------------------------- tables in the guide pages

ROLE = re.compile(r":(?:py:)?[a-z]+:`~?(?P<target>[^`]+)`")


def _summary(obj: Any) -> str:
    """The first sentence-line of a docstring, Sphinx roles shown as code."""
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    first = ROLE.sub(lambda m: f"``{m['target'].rsplit('.', 1)[-1]}``", first)
    return first.replace("|", "\\|")


def models_table() -> str:
    import mlejax.models as models

    rows = ["| name | what it is |", "|---|---|"]
    for name in models.__all__:
        rows.append(f"| [`{name}`][mlejax.models.{name}] | {_summary(getattr(models, name))} |")
    return "\n".join(rows)


def distributions_table() -> str:
    import mlejax.distributions as dists

    rows = ["| name | parameters | support | closed-form MLE |", "|---|---|---|---|"]
    for name in dists.DISTRIBUTIONS:
        d = dists.get(name)
        params = ", ".join(f"`{p}`" for p in d.params)
        rows.append(f"| `{name}` | {params} | {d.support_text} | "
                    f"{'yes' if d.closed_form is not None else 'no'} |")
    return "\n".join(rows)


MARKERS = {
    "<!-- mlejax:models-table -->": models_table,
    "<!-- mlejax:distributions-table -->": distributions_table,
}


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """Fills the generated tables into the guide pages that ask for them."""
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
