"""The package's shape, read from its source with ``ast`` (no import of mlejax needed).

Three rules (issue 21): the modules of ``mlejax`` import each other without a cycle (imports
at module level, inside functions, and through ``importlib.import_module``, each counted);
no module uses a ``_private`` name of another module (imported by name, or read as an
attribute of an imported module: a private module's helpers are the public names of that
private module); and no module is longer than ``MAX_LINES``.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "mlejax"
MAX_LINES = 800


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _absolute(module: str | None, level: int, current: str, is_package: bool) -> str:
    """The absolute name a (possibly relative) ``from ... import`` refers to."""
    if level == 0:
        return module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _parents(name: str) -> list[str]:
    """The packages Python imports before ``name`` (the root package excepted: its
    ``__init__`` gathers the public API from every module above it)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


class _Imports(ast.NodeVisitor):
    """Every mlejax module a file imports, and every private name it takes from one."""

    def __init__(self, name: str, path: pathlib.Path):
        self.name, self.is_package = name, path.name == "__init__.py"
        self.edges: set[str] = set()
        self.private: set[tuple[str, str]] = set()
        self.aliases: dict[str, str] = {}     # local name -> mlejax module it is bound to

    def _edge(self, target: str) -> None:
        if target in MODULES and target != self.name:
            self.edges.add(target)
            # The packages Python initialises first, except this module's own packages
            # (already being imported when this module runs).
            own = set(_parents(self.name)) | {self.name}
            self.edges.update(p for p in _parents(target) if p in MODULES and p not in own)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "mlejax":
                self._edge(alias.name)
                if alias.asname:
                    self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        target = _absolute(node.module, node.level, self.name, self.is_package)
        if target.split(".")[0] != "mlejax":
            return
        for alias in node.names:
            full = f"{target}.{alias.name}"
            if full in MODULES:               # a module imported from its package
                self._edge(full)
                self.aliases[alias.asname or alias.name] = full
            else:
                self._edge(target)
                if alias.name.startswith("_") and target != self.name:
                    self.private.add((target, alias.name))

    def bind(self, node: ast.Assign) -> None:
        """``m = importlib.import_module("mlejax....")``: ``m`` is an alias of that module."""
        target = self._import_module(node.value)
        if target is not None:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.aliases[t.id] = target

    def visit_Assign(self, node: ast.Assign) -> None:
        self.bind(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self._import_module(node)
        self.generic_visit(node)

    def _import_module(self, node) -> str | None:
        """``importlib.import_module("mlejax....")``: an import too."""
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name != "import_module" or not node.args:
            return None
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                and arg.value.split(".")[0] == "mlejax":
            self._edge(arg.value)
            return arg.value
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in self.aliases:
            module = self.aliases[value.id]
            if (node.attr.startswith("_") and not node.attr.startswith("__")
                    and module != self.name and f"{module}.{node.attr}" not in MODULES):
                self.private.add((module, node.attr))
        self.generic_visit(node)


def _scan():
    found = {}
    for name, path in MODULES.items():
        visitor = _Imports(name, path)
        tree = ast.parse(path.read_text(), filename=str(path))
        # Aliases first (an alias may be bound below its first use in a function).
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                visitor.visit(node)
            elif isinstance(node, ast.Assign):
                visitor.bind(node)
        visitor.visit(tree)
        found[name] = visitor
    return found


SCAN = _scan()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_scan_sees_the_package():
    # The scanner itself: it finds the modules, an edge, and reads an importlib alias.
    assert "mlejax.constraints" in MODULES and "mlejax" in MODULES
    assert any(SCAN[m].edges for m in MODULES)


def test_the_scan_finds_what_it_must():
    # A made-up module with each kind of violation (checked on source text, not on disk).
    src = ("import importlib\n"
           "from mlejax.constraints import _hidden\n"
           "def f():\n"
           "    m = importlib.import_module('mlejax.status')\n"
           "    return m._private_thing\n")
    visitor = _Imports("mlejax.made_up", ROOT / "made_up.py")
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            visitor.bind(node)
    visitor.visit(tree)
    assert {"mlejax.constraints", "mlejax.status"} <= visitor.edges
    assert visitor.private == {("mlejax.constraints", "_hidden"),
                               ("mlejax.status", "_private_thing")}
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    edges = {name: visitor.edges for name, visitor in SCAN.items()}
    cycles = _cycles(edges)
    detail = []
    for comp in cycles:
        inside = set(comp)
        detail.append("; ".join(f"{m} -> {sorted(edges[m] & inside)}" for m in comp))
    assert not cycles, "import cycles among mlejax modules:\n  " + "\n  ".join(detail)


def test_no_private_name_crosses_a_module():
    crossings = sorted(f"{name} uses {target}.{attr}"
                       for name, visitor in SCAN.items()
                       for target, attr in visitor.private)
    assert not crossings, ("private names used across modules (make them public names of a "
                           "module, private or not, one layer down):\n  "
                           + "\n  ".join(crossings))


def test_no_module_over_the_limit():
    long = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    over = sorted(f"{name}: {n} lines" for name, n in long.items() if n > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines (split by concept):\n  " + "\n  ".join(over)
