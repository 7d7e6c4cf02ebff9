"""Published leaderboards: the files written beside a suite, rendered from :mod:`benchbed.tables`.

============== ================ ==========================================================================
format         file             content
============== ================ ==========================================================================
``md``         ``README.md``    what was run, how to reproduce it, the tables with numbered notes
``csv``        ``results.csv``  one line per (run, metric): run id, seed, value, standard error, estimator
``summary``    ``summary.csv``  one line per (data set, row, metric): mean, standard error, marks
``json``       ``results.json`` the whole leaderboard with every run's record and provenance
``tex``        ``table.tex``    booktabs tables that fit an article page (:mod:`benchbed.latex`)
``html``       ``index.html``   sortable tables, samples, curves, cost-quality plots (:mod:`benchbed.html`)
============== ================ ==========================================================================

Where the suite has claims (:mod:`benchbed.claims`: its ``claims.toml``, or plugins' claims that fit it),
the README, ``results.json`` and ``index.html`` get a Claims section and :func:`write` also writes
``claims.csv`` (:mod:`benchbed.claims_table`).

Beside them :func:`write` keeps the portable run file (:mod:`benchbed.published`) that rebuilds all
of them in a fresh clone.  It never replaces a published, non-empty table with an empty one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbed import published
from benchbed.errors import BenchbedError
from benchbed.formats import FILENAMES, FORMATS, md_cell
from benchbed.registry import Registry
from benchbed.stats import ALPHA, TEST_NAME
from benchbed.store import Store
from benchbed.suite import Suite
from benchbed.tables import (
    COST_MEANINGS,
    PLATEAU,
    DatasetTable,
    Leaderboard,
    Notes,
    TableCell,
    build,
    iter_cells,
)

if TYPE_CHECKING:
    from benchbed.claims import ClaimResult

#: How cells are read, once per published file.
UNCERTAINTY = ("Cells: mean ± standard error over seeds (sample standard deviation / √n), rounded to two "
               "significant digits of the error; `(k/n seeds)` where fewer than all seeds have a value.")
MARKS = (f"Bold: the best model in its column among entries of the same estimator tag, using rows with every "
         f"seed; `≈`: not significantly different from that best entry ({TEST_NAME} over seeds, two-sided, "
         f"α = {ALPHA}); no mark is claimed for entries with fewer than two seeds. "
         "A tag in parentheses says what a value is where a column mixes estimators or scores.")
def column_names(board: Leaderboard) -> str:
    """What each cost column present in the tables holds, one sentence."""
    present = {c.key for t in board.tables for c in t.columns}
    return "; ".join(f"`{key}`: {meaning}" for key, meaning in COST_MEANINGS.items()
                     if key in present or key != PLATEAU) + "."


def legend_notes(board: Leaderboard, table: DatasetTable) -> list[str]:
    """Notes that explain the table: omitted columns, uniform and mixed estimator tags."""
    out = []
    for col, reason in table.omitted:
        out.append(f"Column {col.title} omitted for {table.dataset}: n/a for every model ({reason}).")
    for col in table.metric_columns:
        legend = board.legends.get(col.key, {})
        if col.key in table.uniform:
            tag = table.uniform[col.key]
            meaning = f": {legend[tag]}" if tag in legend else ""
            out.append(f"{col.title} on {table.dataset}: every value is {tag}{meaning}.")
            continue
        tags = sorted({c.estimator for r in table.rows if (c := r.cells.get(col.key)) and c.show_estimator})
        if tags:
            parts = [f"{t} = {legend[t]}" if t in legend else t for t in tags]
            out.append(f"{col.title} on {table.dataset}, tags: " + "; ".join(parts) + ".")
    return out


def provenance_summary(store: Store, board: Leaderboard) -> str:
    """One line on the software and machine behind the most recent run shown."""
    runs = [r for r in (store.run(i) for i in reversed(board.run_ids())) if r and r["kind"] == "model"]
    run = max((r for r in runs if r["provenance"]), key=lambda r: (r["started_at"], r["run_id"]), default=None)
    if run is None:
        return ""
    p = run["provenance"]
    return (f"Provenance: benchbed {p.get('benchbed')} (commit {str(p.get('git_commit'))[:12]}), "
            f"torch {p.get('torch')}, device {p.get('device')}, Python {p.get('python')}. "
            "Each run's record (configuration, provenance, metric settings) is in `results.json` and "
            f"`{published.RUNS_FILE}`; `benchbed show RUN` prints one.")


# -- Markdown -------------------------------------------------------------------------------------


def marked(cell: TableCell, text: str, bold: tuple[str, str], tie: str = " ≈") -> str:
    """``text`` with the cell's best (``bold`` wrap) or tie mark."""
    if cell.best:
        return f"{bold[0]}{text}{bold[1]}"
    return text + tie if cell.tie else text


def table_markdown(table: DatasetTable, notes: Notes) -> str:
    header = "| model | " + " | ".join(c.header for c in table.columns) + " |"
    sep = "|---|" + "|".join("---" for _ in table.columns) + "|"
    lines = [header, sep]
    for r in table.rows:
        cells = []
        for c in table.columns:
            cell = r.cells.get(c.key, TableCell())
            text = cell.text(notes)
            cells.append(md_cell(marked(cell, text, ("**", "**")) if text else ""))
        lines.append(f"| {md_cell(r.label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(board: Leaderboard) -> str:
    """All tables as GitHub Markdown (marks and numbered notes below)."""
    parts = []
    for t in board.tables:
        parts.append(f"### {t.dataset}\n\n" + table_markdown(t, board.notes))
        for text in legend_notes(board, t):
            board.notes.ref(text)
    if board.notes.items:
        parts.append("Notes:\n\n" + "\n".join(f"{i}. {md_cell(n)}" for i, n in enumerate(board.notes.items, 1)))
    return "\n\n".join(parts) + "\n"


def excerpt(board: Leaderboard, dataset: str, keys: tuple[str, ...]) -> str:
    """A Markdown excerpt of one data set's table: the metric columns ``keys`` (those present) and
    ``train s``, marks kept, note numbers dropped (the full table has the notes)."""
    (table,) = [t for t in board.tables if t.dataset == dataset]
    columns = [c for c in table.columns if c.key in keys or c.key == "train s"]
    part = DatasetTable(table.dataset, columns, table.rows)
    return re.sub(r" \[\d+\]", "", table_markdown(part, Notes()))


def reproduce_command(suite: Suite) -> str:
    """The command that reproduces a suite, from the repository root: by name for a folder under
    ``leaderboards/``, else by the suite file's path (relative where it can be)."""
    if suite.path is None:
        return "benchbed run SUITE.toml"
    path = suite.path.resolve()
    cwd = Path.cwd().resolve()
    if path.parent.parent == cwd / "leaderboards" and path.name == "suite.toml":
        return f"benchbed run {path.parent.name}"
    try:
        return f"benchbed run {path.relative_to(cwd).as_posix()}"
    except ValueError:
        return f"benchbed run {published.scrub(str(path))}"


def readme(store: Store, board: Leaderboard, claims: Sequence[ClaimResult] = ()) -> str:
    """The suite folder's README.md: what was run, how to reproduce it, the tables, provenance, and the
    Claims section when ``claims`` are given."""
    suite = board.suite
    lines = [f"# Leaderboard: {suite.name}", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [
        "Generated by `benchbed leaderboard` from the results of a real run; do not edit by hand. "
        f"`{reproduce_command(suite)}` reproduces it (finished runs are read from `{published.RUNS_FILE}`, "
        "so only missing cells are trained). The same tables, sortable, with samples, training curves and "
        "cost-quality plots: [index.html](index.html) (self-contained; open it in a browser). Per-run values: "
        "[results.csv](results.csv), [results.json](results.json); LaTeX: [table.tex](table.tex).", "",
        f"Seeds: {', '.join(map(str, suite.seeds))}. {UNCERTAINTY} ↑/↓: direction of better. {MARKS} "
        f"{column_names(board)}", "",
    ]
    if prov := provenance_summary(store, board):
        lines += [prov, ""]
    lines.append(to_markdown(board))
    if claims:
        from benchbed.claims_table import to_markdown as claims_markdown

        lines += ["", claims_markdown(claims)]
    return "\n".join(lines)


# -- CSV and JSON ---------------------------------------------------------------------------------


def _csv_field(value: Any) -> str:
    text = "" if value is None else str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _num(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join(",".join(_csv_field(v) for v in line) for line in [header, *rows]) + "\n"


def run_records(store: Store, board: Leaderboard) -> list[dict[str, Any]]:
    """Every shown run's record, as in the store (paths scrubbed), in table order."""
    runs = (store.run(i) for i in board.run_ids())
    # claim bookkeeping (host, pid, heartbeat) is local to the machine and left out of published files
    return [published.scrub({k: v for k, v in r.items() if k not in Store.LOCAL}) for r in runs if r is not None]


def to_csv(store: Store, board: Leaderboard) -> str:
    """One line per (run, metric); a run without metric records (failed, diverged) gets one line."""
    header = ["run_id", "dataset", "model", "sampler", "seed", "metric", "value", "stderr", "estimator",
              "settings_hash", "status", "reason"]
    labels = {i: (t.dataset, r.label) for t in board.tables for r in t.rows for i in r.run_ids}
    rows = []
    for run in run_records(store, board):
        dataset, label = labels[run["run_id"]]
        model = run["model"]
        base = [run["run_id"], dataset, model, run["sampler"], run["seed"]]
        if not run["metrics"]:
            rows.append([*base, "", "", "", "", "", run["status"], run["error"]])
        for m in run["metrics"]:
            status = m["status"] if run["status"] == "ok" else run["status"]
            reason = m["reason"] or ("" if run["status"] == "ok" else run["error"])
            rows.append([*base, m["metric"], _num(m["value"]), _num(m["stderr"]), m["estimator"], m["settings_hash"],
                         status, reason])
    return _csv(header, rows)


def to_summary_csv(board: Leaderboard) -> str:
    """One line per (data set, row, metric): the aggregated cell and its marks."""
    header = ["dataset", "row", "kind", "metric", "estimator", "mean", "se", "std", "n_ok", "n", "best",
              "not_significantly_worse", "status", "reason"]
    rows = []
    for t, r, c, cell in iter_cells(board):
        if not c.metric or cell.status == "":
            continue
        rows.append([t.dataset, r.label, r.kind, c.key, cell.estimator, _num(cell.mean), _num(cell.se),
                     _num(cell.std), cell.n_ok, cell.n, int(cell.best), int(cell.tie), cell.status,
                     cell.reasons[0] if cell.reasons else ""])
    return _csv(header, rows)


def _finite(obj: Any) -> Any:
    """JSON without NaN/inf tokens: non-finite floats become ``null``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def to_json(store: Store, board: Leaderboard, claims: Sequence[ClaimResult] = ()) -> str:
    """The whole leaderboard: tables with every cell's numbers and marks, notes, every run's record, and
    (with ``claims``) each claim's values, test and verdict under ``claims``."""
    notes = Notes(list(board.notes.items))
    tables = []
    for t in board.tables:
        rows = []
        for r in t.rows:
            cells = {}
            for c in t.columns:
                cell = r.cells.get(c.key)
                if cell is None:
                    continue
                cells[c.key] = {"display": cell.text(notes), "status": cell.status, "mean": cell.mean,
                                "se": cell.se, "std": cell.std, "values": cell.values, "n_ok": cell.n_ok,
                                "n": cell.n, "estimator": cell.estimator, "best": cell.best,
                                "not_significantly_worse": cell.tie, "reasons": cell.reasons,
                                "run_ids": cell.run_ids} if c.metric else {"display": cell.value}
            rows.append({"label": r.label, "kind": r.kind, "run_ids": r.run_ids, "cells": cells})
        for text in legend_notes(board, t):
            notes.ref(text)
        tables.append({"dataset": t.dataset,
                       "columns": [{"key": c.key, "title": c.title, "higher_is_better": c.higher_is_better,
                                    "metric": c.metric} for c in t.columns],
                       "omitted": [{"key": c.key, "reason": why} for c, why in t.omitted], "rows": rows})
    runs = []
    for run in run_records(store, board):
        run.pop("curves", None)
        runs.append(run)
    doc = {"format": "benchbed-leaderboard", "version": 1, "suite": board.suite.name,
           "seeds": list(board.suite.seeds), "uncertainty": "standard error over seeds",
           "significance": {"test": TEST_NAME, "alpha": ALPHA, "two_sided": True},
           "estimators": board.legends, "tables": tables, "notes": notes.items, "runs": runs}
    if claims:
        from benchbed.claims import TEST_NAME as CLAIMS_TEST
        from benchbed.claims_table import to_records

        doc["claims"] = to_records(claims)
        doc["claims_test"] = {"test": CLAIMS_TEST, "alpha": ALPHA, "one_sided": True}
    return json.dumps(_finite(doc), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# -- all formats ----------------------------------------------------------------------------------


def render(fmt: str, store: Store, board: Leaderboard, claims: Sequence[ClaimResult] = ()) -> str:
    """One leaderboard format (:data:`FORMATS`) as text; ``claims`` (:func:`evaluated_claims`) add the
    Claims section to ``md``, ``json`` and ``html``."""
    board = Leaderboard(board.suite, board.tables, Notes(list(board.notes.items)), board.legends)
    if fmt == "md":
        return readme(store, board, claims)
    if fmt == "csv":
        return to_csv(store, board)
    if fmt == "summary":
        return to_summary_csv(board)
    if fmt == "json":
        return to_json(store, board, claims)
    if fmt == "tex":
        from benchbed.latex import to_latex

        return to_latex(board)
    if fmt == "html":
        from benchbed.html import to_html

        return to_html(store, board, claims)
    raise ValueError(f"unknown leaderboard format {fmt!r}; choose from {', '.join(FORMATS)}")


def _published_rows(folder: Path) -> bool:
    """Whether ``folder`` holds a published table with at least one row (a non-empty results.csv or README)."""
    csv = folder / FILENAMES["csv"]
    if csv.is_file() and len(csv.read_text(encoding="utf-8", errors="replace").strip().splitlines()) > 1:
        return True
    md = folder / FILENAMES["md"]
    return md.is_file() and "\n| " in md.read_text(encoding="utf-8", errors="replace")


def refuse_empty(board: Leaderboard, store: Store, folder: Path) -> None:
    """Stop before writing empty tables (above all over published ones), saying what is missing and what
    to run."""
    if not board.empty:
        return
    runs = published.runs_path(folder)
    if not _published_rows(folder):
        raise BenchbedError(f"suite {board.suite.name!r} has no finished run in the store {store.path} to "
                            f"tabulate; run `{reproduce_command(board.suite)}` first. Nothing was written.")
    missing = f"{runs} is missing" if not runs.is_file() else f"{runs} holds no run of the suite as it is now"
    raise BenchbedError(
        f"suite {board.suite.name!r} has no results to publish: {missing}, and the store {store.path} holds "
        f"no finished run of it. The published files in {folder} were left unchanged. Restore {runs} "
        f"(e.g. `git checkout -- {runs}`) or run `{reproduce_command(board.suite)}` to produce the results.")


def evaluated_claims(store: Store, board: Leaderboard, registry: Registry | None) -> list[ClaimResult]:
    """The suite's claims (:func:`benchbed.claims.claims_for`) tested on ``board``; none without a registry.

    Raises:
        benchbed.claims.ClaimError: the suite's claims file is malformed or names what the suite lacks.
    """
    if registry is None:
        return []
    from benchbed.claims import claims_for, evaluate_all

    return evaluate_all(claims_for(board.suite, registry), board, store, registry)


def write(store: Store, suite: Suite, registry: Registry | None, folder: Path,
          formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the requested formats and the portable run file into ``folder``; returns the paths written.

    With claims (:func:`evaluated_claims`) ``claims.csv`` is written too; without, a stale one is removed.

    Raises:
        BenchbedError: the suite has no results while ``folder`` holds a non-empty published table, or
            its claims file is invalid (checked before any table is built).
    """
    if registry is not None:
        from benchbed.claims import claims_for

        claims_for(suite, registry)  # a bad claims file stops here, before anything is computed
    board = build(store, suite, registry)
    refuse_empty(board, store, folder)
    claims = evaluated_claims(store, board, registry)
    if folder.exists() and not folder.is_dir():
        raise BenchbedError(f"cannot write tables to {folder}: it is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in formats:
        path = folder / FILENAMES[f]
        path.write_text(render(f, store, board, claims), encoding="utf-8")
        paths.append(path)
    from benchbed.claims_table import CLAIMS_CSV
    from benchbed.claims_table import to_csv as claims_csv

    if claims:
        (folder / CLAIMS_CSV).write_text(claims_csv(claims), encoding="utf-8")
        paths.append(folder / CLAIMS_CSV)
    elif (folder / CLAIMS_CSV).is_file():
        (folder / CLAIMS_CSV).unlink()
    if not board.empty:
        paths.append(published.export_runs(store, board.run_ids(), published.runs_path(folder), suite.name))
    return paths
