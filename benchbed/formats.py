"""The published leaderboard formats and their file names (kept import-light for the command line)."""

from __future__ import annotations

import re

FORMATS = ("md", "csv", "summary", "json", "tex", "html")
FILENAMES = {"md": "README.md", "csv": "results.csv", "summary": "summary.csv", "json": "results.json",
             "tex": "table.tex", "html": "index.html"}


_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def md_cell(text: object) -> str:
    """``text`` as one Markdown table cell: ``|`` escaped, newlines joined, and ``<`` before a letter (an
    HTML tag, e.g. from a hostile entry label) written ``&lt;`` so that it shows as text; comparisons such
    as ``p < 0.05`` are left as they are."""
    return _TAG.sub("&lt;", str(text).replace("|", "\\|").replace("\n", " "))
