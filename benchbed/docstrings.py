"""The ``Args:`` section of Google-style docstrings: one line of meaning per parameter.

Used by ``benchbed list -v`` to say what each hyperparameter of a factory means.  A factory class is
read from its class docstring, then its ``__init__`` docstring (the first that describes a parameter
wins); a factory function from its docstring.  Recognised headers: ``Args:``, ``Arguments:``,
``Parameters:``, ``Keyword Args:``, ``Keyword Arguments:``, ``Other Parameters:``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

_HEADERS = {"args", "arguments", "parameters", "keyword args", "keyword arguments", "other parameters"}
_ENTRY = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(?P<text>.*)$")


def args_section(doc: str | None) -> dict[str, str]:
    """``{parameter: description}`` from the argument sections of Google-style docstring ``doc``.

    A description's continuation lines (indented deeper than its entry) are joined with single spaces;
    a section ends at a line indented no deeper than its header, or at the next section header.  Returns
    ``{}`` for a docstring without such a section.
    """
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        header = lines[i].strip().rstrip(":").lower()
        if not (lines[i].rstrip().endswith(":") and header in _HEADERS):
            i += 1
            continue
        base = _indent(lines[i])
        i += 1
        entry_indent: int | None = None
        current: str | None = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            indent = _indent(line)
            if indent <= base:
                break
            if entry_indent is None:
                entry_indent = indent
            match = _ENTRY.match(line.strip())
            if indent == entry_indent and match:
                current = match["name"].lstrip("*")
                out[current] = match["text"].strip()
            elif current is not None and indent > entry_indent:
                out[current] = f"{out[current]} {line.strip()}".strip()
            i += 1
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def first_sentence(text: str) -> str:
    """The first sentence of ``text``: up to the first ``". "`` outside parentheses and backquotes,
    without its closing period."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == "`":
            quoted = not quoted
        elif ch in "([{" and not quoted:
            depth += 1
        elif ch in ")]}" and not quoted:
            depth = max(0, depth - 1)
        elif ch == "." and depth == 0 and not quoted and text[i + 1:i + 2] in (" ", "") and i > 0 \
                and text[i - 1] != ".":
            return text[:i].strip()
    return text.rstrip(".").strip()


def parameter_docs(factory: Callable[..., Any]) -> dict[str, str]:
    """One line of meaning per parameter of ``factory`` (a class: its docstring, then its ``__init__``'s;
    a function: its docstring), as the first sentence of its ``Args:`` entry."""
    docs = [inspect.getdoc(factory)]
    if inspect.isclass(factory):
        init = factory.__dict__.get("__init__")
        docs.append(inspect.getdoc(init) if init is not None else None)
    out: dict[str, str] = {}
    for doc in docs:
        for name, text in args_section(doc).items():
            out.setdefault(name, first_sentence(text))
    return out
