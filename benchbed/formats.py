"""The published leaderboard formats and their file names (kept import-light for the command line)."""

from __future__ import annotations

FORMATS = ("md", "csv", "summary", "json", "tex", "html")
FILENAMES = {"md": "README.md", "csv": "results.csv", "summary": "summary.csv", "json": "results.json",
             "tex": "table.tex", "html": "index.html"}
