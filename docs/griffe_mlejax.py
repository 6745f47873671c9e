"""Griffe extension: mlejax's docstrings, written for Sphinx-style readers, in mkdocstrings.

The docstrings are Google style (``Args:``, ``Returns:``, ``Example:`` with doctests) with a
few reStructuredText habits. Markdown has none of them, so before griffe parses a docstring
this extension rewrites:

* Sphinx roles (:class:`~mlejax.FitResult`, :func:`fit`, :mod:`mlejax._blocks`) into
  *optional* autorefs cross-references: a link where the target is documented on the
  site, plain code where it is not (a private module, say), never a warning. Relative
  targets (``fit``, ``MixtureResult.optima``) resolve in the scope of the docstring's
  object, as in Sphinx.
* ``Example:`` into ``Examples:``, the Google section whose ``>>>`` lines griffe renders
  as code (it reads the singular as an admonition of plain text); doctest directives
  (``# doctest: +SKIP``) are dropped from the rendered examples.
* ``a, b: ...`` entries of Args/Attributes sections into one entry (see _joined_names).
* reST simple tables (``====  ====`` borders) into Markdown tables, and the ``Recipe::``
  of a literal block into ``Recipe:``.

It also checks each name of an Args section against the signature (griffe's own check is
off in mkdocs.yml because it cannot read ``a, b:``), so a docstring that documents a
parameter the function lacks still fails the strict build.

Loaded by mkdocs.yml (``extensions: [dataclasses, docs/griffe_mlejax.py:SphinxRoles]``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|obj|exc|const)"
                  r":`(?P<target>[^`<>]+?)`")
DIRECTIVE = re.compile(r"[ \t]*#\s*doctest:[^\n]*")
LITERAL_BLOCK = re.compile(r"(?m)^(?P<lead>[^\n]*\S)::[ \t]*$")
EXAMPLE = re.compile(r"(?m)^(?P<indent>[ \t]*)Example:[ \t]*$")
SECTION = re.compile(r"^(?P<indent>[ \t]*)(?P<name>Args|Arguments|Attributes|Parameters"
                     r"|Keyword Args|Other Parameters):[ \t]*$")
ENTRY = re.compile(r"^(?P<names>[\w*]+(?:, [\w*]+)+)(?P<type> \([^)]*\))?:")
BORDER = re.compile(r"^(?P<indent>[ \t]*)=+(?:[ \t]+=+)+[ \t]*$")


def _cells(line: str, starts: list[int]) -> list[str]:
    bounds = starts[1:] + [None]
    return [line[a:b].strip() if len(line) > a else "" for a, b in zip(starts, bounds)]


CODE_SPAN = re.compile(r"(`+[^`]*?`+)")


def _escape_pipes(cell: str) -> str:
    """``|`` escaped outside code spans (inside them the table parser already ignores it)."""
    parts = CODE_SPAN.split(cell)
    return "".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_escape_pipes(c) for c in cells) + " |"


def _simple_tables(text: str) -> str:
    """reST simple tables (``=====  =====`` borders) as Markdown tables.

    A row whose first cell is blank continues the row above it (reST's rule); a table
    without a header row gets an empty one (Markdown tables need a header).
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        top = BORDER.match(lines[i])
        if not top:
            out.append(lines[i])
            i += 1
            continue
        starts = [m.start() for m in re.finditer(r"=+", lines[i])]
        borders, rows, j = 0, [[], []], i + 1
        while j < len(lines):
            if BORDER.match(lines[j]):
                borders += 1
                j += 1
                nxt = lines[j] if j < len(lines) else ""
                if borders == 2 or not nxt.strip() or BORDER.match(nxt):
                    break
                continue
            if not lines[j].strip():
                break
            cells = _cells(lines[j], starts)
            part = rows[min(borders, 1)]
            if cells[0] == "" and part:
                part[-1] = [f"{a} {b}".strip() for a, b in zip(part[-1], cells)]
            else:
                part.append(cells)
            j += 1
        header, body = rows
        if borders == 1 or (borders >= 1 and not body):   # top and bottom only: no header
            header, body = [], header + body
        indent = top["indent"]
        head = header[0] if header else [""] * len(starts)
        for extra in header[1:]:
            head = [f"{a} {b}".strip() for a, b in zip(head, extra)]
        out.append(indent + _md_row(head))
        out.append(indent + "|" + "---|" * len(starts))
        out.extend(indent + _md_row(r) for r in body)
        i = j
    return "\n".join(out)


def _annotation(obj: griffe.Object, name: str) -> str | None:
    try:
        annotation = obj[name].annotation
    except Exception:  # noqa: BLE001 - not a member, or no annotation
        return None
    return None if annotation is None else str(annotation)


def _joined_names(obj: griffe.Object, text: str) -> str:
    """``a, b: ...`` entries of Args/Attributes sections, kept as one entry.

    Google style reads ``name (type): description``, so griffe takes ``loglik, status:`` as
    the name ``loglik,`` of type ``status``. A no-break space after each comma keeps the
    names one entry, displayed as written. In an Attributes section the members' types are
    written out too (``loglik, status (Array):``): an attribute entry without a type
    would show the previous entry's (griffe 2.4 does not reset it between entries).
    """
    lines = text.split("\n")
    section = section_indent = entry_indent = None
    for i, line in enumerate(lines):
        header = SECTION.match(line)
        if header:
            section, section_indent, entry_indent = header["name"], len(header["indent"]), None
            continue
        if section_indent is None or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= section_indent:
            section_indent = None
            continue
        if entry_indent is None:
            entry_indent = indent
        entry = ENTRY.match(line[indent:]) if indent == entry_indent else None
        if not entry:
            continue
        names = entry["names"].split(", ")
        typed = entry["type"]
        if section == "Attributes" and not typed:
            types = [_annotation(obj, n) for n in names]
            if any(types):
                # One type when they agree; "a; b" otherwise (not Python, so shown verbatim
                # rather than as a tuple expression).
                shown = list(dict.fromkeys(t or "?" for t in types))
                typed = " (" + "; ".join(shown) + ")"
        lines[i] = (line[:indent] + ",\u00a0".join(names) + (typed or "") + ":"
                    + line[indent + entry.end():])
    return "\n".join(lines)


def _absolute(obj: griffe.Object, target: str) -> str:
    """The full dotted path of ``target`` as seen from ``obj`` (best effort)."""
    if target.startswith("mlejax"):
        return target
    head, _, rest = target.partition(".")
    scope: Any = obj
    while scope is not None:
        try:
            full = scope.resolve(head)
        except Exception:  # noqa: BLE001 - griffe raises NameResolutionError and friends
            scope = scope.parent
            continue
        return f"{full}.{rest}" if rest else full
    return target


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~.")
        title = target.rsplit(".", 1)[-1] if short else target
        if title.endswith("()"):
            title = title[:-2]
        ident = _absolute(obj, target.removesuffix("()"))
        return (f'<autoref identifier="{html.escape(ident)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    text = ROLE.sub(role, text)
    text = DIRECTIVE.sub("", text)
    text = _joined_names(obj, text)
    text = _simple_tables(text)
    # reST's "Recipe::" introduces a literal block; Markdown shows the indented block as code
    # already, so the paragraph ends with one colon, as Sphinx renders it.
    text = LITERAL_BLOCK.sub(lambda m: m["lead"] + ":", text)
    # Google style's section is "Examples:" (griffe reads "Example:" as an admonition and
    # its doctests as text); the singular is the same section.
    text = EXAMPLE.sub(lambda m: m["indent"] + "Examples:", text)
    return text


def _check_parameters(obj: griffe.Object) -> None:
    """Warns (failing a strict build) where ``Args:`` names a parameter the signature lacks.

    griffe's own check is off in mkdocs.yml because it reads ``a, b: ...`` (two parameters
    described together, as these docstrings do) as one unknown parameter named "a, b"; this
    one splits such entries and checks each name.
    """
    if not (obj.is_function or obj.is_class) or obj.docstring is None:
        return
    try:
        params = obj.parameters
    except Exception:  # noqa: BLE001 - a class without an __init__ griffe can see
        return
    names = {p.name for p in params}
    variadic = any(p.kind in (griffe.ParameterKind.var_keyword,) for p in params)
    sections = griffe.Docstring(obj.docstring.value, lineno=obj.docstring.lineno,
                                parent=obj).parse("google", warnings=False)
    for section in sections:
        if section.kind is not griffe.DocstringSectionKind.parameters:
            continue
        for entry in section.value:
            for name in (n.strip(" \u00a0*") for n in entry.name.split(",")):
                if name and name not in names and not variadic:
                    griffe.logger.warning(
                        f"{obj.relative_filepath}:{obj.docstring.lineno}: {obj.path}: "
                        f"parameter {name!r} of the docstring's Args is not in the signature")


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles into optional cross-references once the package is loaded,
    and checks the documented parameter names against the signatures."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
            _check_parameters(obj)
        for member in obj.members.values():
            if member.is_alias:
                continue
            self._walk(member, seen)
