"""The leaderboard's data: one table per data set, rows = model (+ sampler), columns = metrics.

Every renderer (Markdown, CSV, JSON, LaTeX, HTML) reads these structures, so all formats agree on
what a cell holds, which value is best and which are not significantly different from it.

Rules (``docs/results.md`` states them for readers):

* a cell is the mean ± standard error over the seeds whose metric record is ``ok``
  (:mod:`benchbed.stats`), rounded to two significant digits of the error;
* each record carries a tag saying what its value is (``MetricResult.estimator``: the estimator or
  score); a column whose tags are not all equal shows the tag in every cell, and the best mark is
  only given among cells with the same tag, unless the metric's spec declares its tags comparable
  (``MetricSpec.ranks_across_estimators``);
* the best entry of a group is bold; entries that Welch's t-test over seeds cannot tell from it at
  :data:`benchbed.stats.ALPHA` are marked as ties; a row missing seeds is not ranked;
* a metric column that is ``n/a`` for every row of a data set is left out, with a note.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from benchbed.plateau import plateau, run_progress
from benchbed.published import scrub
from benchbed.registry import Registry
from benchbed.stats import format_number, format_with_error, not_significantly_different, summarize
from benchbed.store import Store
from benchbed.suite import Suite, config_hash

#: Columns after the metrics: cost and identification of each row.
HYPERPARAMETERS = "hyperparameters"
TRAIN_SECONDS = "train s"
STEPS = "steps"
PARAMETER_COUNT = "parameter count"
SEEDS = "seeds"
PLATEAU = "plateaued"
COST_COLUMNS = (HYPERPARAMETERS, TRAIN_SECONDS, STEPS, PARAMETER_COUNT, SEEDS, PLATEAU)
#: What each of them holds (every format explains them with these words).
COST_MEANINGS = {HYPERPARAMETERS: "the settings that tell apart rows of one model",
                 TRAIN_SECONDS: "training wall time per seed (mean over seeds)", STEPS: "training steps",
                 PARAMETER_COUNT: "trainable parameters", SEEDS: "seeds finished / seeds of the suite",
                 PLATEAU: "whether every metric has stopped moving over the last eval_at interval (the metrics "
                          "still moving, their relative change and the interval otherwise; suites with eval_at only)"}


@dataclass
class Notes:
    """Numbered footnotes (reasons of n/a and failures, legends), deduplicated."""

    items: list[str] = field(default_factory=list)

    def ref(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


@dataclass(frozen=True)
class Column:
    """A table column: a metric (``metric=True``, keyed by its suite label) or a cost column."""

    key: str
    title: str
    higher_is_better: bool | None = None
    metric: bool = True
    component: str = ""
    ranks_across: bool = False  # the metric's values of different estimator tags may be ranked together

    @property
    def header(self) -> str:
        arrow = "" if self.higher_is_better is None else (" ↑" if self.higher_is_better else " ↓")
        return self.title + arrow


@dataclass
class TableCell:
    """One (row, column) entry.

    ``value`` is the display text of the number (rounded to its error) without tag, note or emphasis;
    renderers build the full text with :meth:`text`.  ``values`` are the ``ok`` seed values.
    """

    status: str = ""  # ok, n/a, failed, diverged, missing; '' = nothing (a reference row's other columns)
    value: str = ""
    mean: float = math.nan
    se: float = math.nan
    std: float = math.nan
    values: list[float] = field(default_factory=list)
    n_ok: int = 0
    n: int = 0
    estimator: str = ""
    show_estimator: bool = False
    reasons: list[str] = field(default_factory=list)  # footnote texts: n/a reason, failures, partial seeds
    best: bool = False
    tie: bool = False  # not significantly different from the best of its group
    run_ids: list[str] = field(default_factory=list)
    warning: str = ""  # footnote when some seed's record carries a ``warning`` setting: never best

    @property
    def warned(self) -> bool:
        return bool(self.warning)

    def text(self, notes: Notes) -> str:
        """Display text with its tag, seed count and note numbers (no emphasis)."""
        if self.status in ("", "ok") and not self.value and not self.reasons:
            return ""
        if self.status not in ("", "ok"):
            return f"{self.status} [{notes.ref(self.reasons[0])}]" if self.reasons else self.status
        parts = [self.value]
        if self.show_estimator and self.estimator:
            parts.append(f"({self.estimator})")
        if self.n and self.n_ok < self.n:
            parts.append(f"({self.n_ok}/{self.n} seeds)")
        parts += [f"[{notes.ref(r)}]" for r in self.reasons]
        return " ".join(parts)


@dataclass
class Row:
    """A model (+ sampler) row, or a model-free reference row."""

    label: str
    kind: str  # "model" or "reference"
    cells: dict[str, TableCell] = field(default_factory=dict)  # column key -> cell
    run_ids: list[str] = field(default_factory=list)  # every run of the row, by seed
    ok_run_ids: list[str] = field(default_factory=list)  # runs that finished ok, by seed


@dataclass
class DatasetTable:
    """The table of one data set."""

    dataset: str
    columns: list[Column]
    rows: list[Row]
    omitted: list[tuple[Column, str]] = field(default_factory=list)  # metric columns n/a for every row
    uniform: dict[str, str] = field(default_factory=dict)  # column key -> the one tag all its values share

    def row(self, label: str) -> Row:
        return next(r for r in self.rows if r.label == label)

    def cell(self, row: str, column: str) -> TableCell:
        return self.row(row).cells[column]

    @property
    def metric_columns(self) -> list[Column]:
        return [c for c in self.columns if c.metric]

    def best(self, column: str) -> list[str]:
        """Row labels marked best in ``column`` (one per comparable group)."""
        return [r.label for r in self.rows if column in r.cells and r.cells[column].best]


@dataclass
class Leaderboard:
    """All tables of a suite, their shared notes, and the metric legends."""

    suite: Suite
    tables: list[DatasetTable]
    notes: Notes
    legends: dict[str, dict[str, str]] = field(default_factory=dict)  # metric label -> tag -> meaning

    @property
    def empty(self) -> bool:
        return not any(r.kind == "model" for t in self.tables for r in t.rows)

    def run_ids(self) -> list[str]:
        """Every run shown (model and reference rows), in table order."""
        seen: dict[str, None] = {}
        for t in self.tables:
            for r in t.rows:
                seen.update(dict.fromkeys(r.run_ids))
        return list(seen)


# -- from the store -------------------------------------------------------------------------------


def metric_columns(suite: Suite, registry: Registry | None) -> list[Column]:
    cols = []
    for e in suite.metrics:
        spec = registry.metric(e.component) if registry is not None and e.component in registry.entries["metric"] \
            else None
        title = e.label if e.label != e.component or spec is None else spec.title
        cols.append(Column(e.label, title, None if spec is None else spec.higher_is_better, True, e.component,
                           bool(spec and spec.ranks_across_estimators)))
    return cols


def _current(suite: Suite, run_ids: set[str] | None) -> Callable[[dict[str, Any]], bool]:
    """Whether a stored run belongs to the suite as it is now (edited suites leave old runs behind)."""
    # Compare hashes, not dicts: the stored config went through JSON (tuples became lists).  Labels are
    # not part of the identity (a renamed entry is the same data set).
    datasets = {config_hash(d.identity()) for d in suite.datasets}
    metrics = {config_hash(m.identity()) for m in suite.metrics}

    def current(row: dict[str, Any]) -> bool:
        if row["kind"] == "model":
            return run_ids is None or row["run_id"] in run_ids
        cfg = json.loads(row["config"])
        return config_hash(cfg.get("dataset")) in datasets \
            and config_hash(cfg.get("metric")) in metrics and cfg.get("seed") in suite.seeds

    return current


def tidy(store: Store, suite: Suite, run_ids: set[str] | None = None,
         labels: dict[str, tuple[str, str, str]] | None = None) -> pd.DataFrame:
    """One row per (run, metric) of the suite, with a ``row`` label = model (+ sampler).

    ``run_ids``: the cells of the suite's current plan; runs of earlier versions are left out.
    ``labels``: ``run_id -> (model, sampler, dataset)`` labels of the current plan; labels are not part
    of a cell's identity, so a renamed entry keeps its stored run and is shown under its new name.
    """
    # With the plan's run ids the runs are found by identity, whatever suite name they were stored
    # under (a renamed suite, or two suites sharing a store, publish exactly the cells that ran).
    rows = store.frame(None if run_ids is not None else suite.name)
    df = pd.DataFrame(list(filter(_current(suite, run_ids), rows)))
    if df.empty:
        return df
    by_hash = {config_hash(d.identity()): d.label for d in suite.datasets}
    for i, r in df.iterrows():
        if r["kind"] == "model" and labels and r["run_id"] in labels:
            df.loc[i, ["model", "sampler", "dataset"]] = list(labels[r["run_id"]])
        elif r["kind"] == "reference":
            df.loc[i, "dataset"] = by_hash.get(config_hash(json.loads(r["config"]).get("dataset")), r["dataset"])
    df = df[df["run_status"] != "running"].copy()
    df["row"] = df["model"] + df["sampler"].map(lambda s: f" + {s}" if s else "")
    return df


def differing_params(df: pd.DataFrame) -> dict[str, str]:
    """``row -> "k=v, ..."`` for hyperparameters that differ between rows of the same model component."""
    out: dict[str, str] = {}
    runs = df[df["kind"] == "model"].drop_duplicates("row")
    for _, group in runs.groupby("model_component"):
        params = {r["row"]: json.loads(r["config"])["model"]["params"] for _, r in group.iterrows()}
        keys = sorted({k for p in params.values() for k in p})
        differing = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params.values()}) > 1]
        for row, p in params.items():
            out[row] = ", ".join(f"{k}={p.get(k)}" for k in differing)
    return out


def _metric_cell(runs: pd.DataFrame, col: Column, kind: str, expected: int = 0) -> TableCell:
    """The cell of one row (all its runs' records) in one metric column; ``expected``: the number of seeds
    the row should have (the suite's), so that a seed with no run at all counts as missing."""
    first = runs.drop_duplicates("run_id")
    n = max(len(first), expected)
    bad = first[first["run_status"].isin(["failed", "diverged"])]
    vals = runs[runs["metric"] == col.key].sort_values("seed", kind="stable")
    ok = vals[vals["metric_status"] == "ok"]
    cell = TableCell(n=n, n_ok=len(ok), run_ids=list(vals["run_id"]))
    if len(bad) == n and n:
        cell.status, cell.reasons = str(bad["run_status"].iloc[0]), [scrub(str(bad["error"].iloc[0]))]
        return cell
    if ok.empty:
        other = vals[vals["metric_status"] != "ok"]
        if other.empty:
            if kind == "reference":
                return TableCell()
            cell.status, cell.reasons = "missing", ["not evaluated"]
        else:
            cell.status, cell.reasons = str(other["metric_status"].iloc[0]), [scrub(str(other["reason"].iloc[0]))]
        return cell
    cell.status = "ok"
    cell.values = [float(v) for v in ok["value"]]
    s = summarize(cell.values)
    cell.mean, cell.se, cell.std = s.mean, s.se, s.std
    if len(ok) == 1 and ok["stderr"].notna().iloc[0] and kind == "reference":
        cell.se = float(ok["stderr"].iloc[0])  # one value: its own standard error over examples
    cell.value = format_with_error(cell.mean, cell.se)
    tags = sorted(set(ok["estimator"].fillna("")))
    cell.estimator = " / ".join(t for t in tags if t)
    if len(ok) < n:
        reasons = list(bad["error"]) + list(vals[vals["metric_status"] != "ok"]["reason"])
        cell.reasons = [scrub(str(reasons[0])) if reasons else "some seeds missing"]
    if warnings := _warnings(ok):
        seed, text = warnings[0]
        cell.warning = f"unreliable on {len(warnings)} of {len(ok)} seeds, not ranked (seed {seed}: {scrub(text)})"
        cell.reasons.append(cell.warning)
    return cell


def _warnings(ok: pd.DataFrame) -> list[tuple[int, str]]:
    """``(seed, text)`` of the records whose settings carry a ``warning``
    (:class:`benchbed.contracts.MetricResult`), by seed."""
    out = []
    for _, r in ok.iterrows():
        settings = json.loads(r["settings"]) if isinstance(r.get("settings"), str) and r["settings"] else {}
        if isinstance(settings, dict) and settings.get("warning"):
            out.append((int(r["seed"]), str(settings["warning"])))
    return out


def _mark_best(rows: list[Row], col: Column, ranks_across: bool) -> None:
    """Bold the best complete entry of each comparable group; mark the entries Welch cannot tell from it."""
    if col.higher_is_better is None:
        return
    groups: dict[str, list[TableCell]] = {}
    for r in rows:
        c = r.cells.get(col.key)
        if r.kind != "model" or c is None or c.status != "ok" or c.n_ok < c.n or math.isnan(c.mean) or c.warned:
            continue
        groups.setdefault("" if ranks_across else c.estimator, []).append(c)
    for members in groups.values():
        if len(members) < 2:
            continue
        sign = 1.0 if col.higher_is_better else -1.0
        top = max(sign * c.mean for c in members)
        leaders = [c for c in members if sign * c.mean == top]
        for c in leaders:
            c.best = True
        for c in members:
            if not c.best and not_significantly_different(leaders[0].values, c.values):
                c.tie = True


def build(store: Store, suite: Suite, registry: Registry | None = None) -> Leaderboard:
    """The suite's leaderboard from the store (runs of the suite's current plan only)."""
    notes = Notes()
    run_ids, labels = None, None
    if registry is not None:
        from benchbed.grid import plan

        cells = plan(suite, registry)[0]
        run_ids = {c.run_id for c in cells}
        labels = {c.run_id: (c.model.label, c.sampler_label, c.dataset.label) for c in cells}
    columns = metric_columns(suite, registry)
    specs = {c.key: registry.metric(c.component) for c in columns
             if registry is not None and c.component in registry.entries["metric"]}
    board = Leaderboard(suite, [], notes, {k: dict(s.estimators) for k, s in specs.items() if s.estimators})
    df = tidy(store, suite, run_ids, labels)
    if df.empty:
        return board
    for col in ("estimator", "stderr"):
        if col not in df:
            df[col] = None
    params = differing_params(df)
    order = row_order(suite)
    for dataset in [d.label for d in suite.datasets]:
        sub = df[df["dataset"] == dataset]
        if not sub.empty:
            board.tables.append(_dataset_table(dataset, sub, columns, specs, params, order, len(suite.seeds)))
    if suite.eval_at:
        for table in board.tables:
            _plateau_column(store, suite, table)
    return board


def _plateau_column(store: Store, suite: Suite, table: DatasetTable) -> None:
    """Add the :data:`PLATEAU` column (:func:`benchbed.plateau.plateau` per metric column) to the model rows
    of ``table`` when at least one of them has metric values at two or more steps."""
    hashes = {e.label: config_hash(e.identity()) for e in suite.metrics}
    verdicts: dict[str, list[str]] = {}
    for row in table.rows:
        if row.kind != "model":
            continue
        runs = [run for i in row.ok_run_ids if (run := store.run(i)) is not None]
        moving, judged = [], False
        for col in table.metric_columns:
            if col.key not in hashes:
                continue
            verdict = plateau([run_progress(run, col.key, hashes[col.key]) for run in runs], col.higher_is_better)
            if verdict is not None:
                judged = True
                if verdict.moving:
                    moving.append(verdict.describe(col.title))
        if judged:
            verdicts[row.label] = moving
    if not verdicts:
        return
    for row in table.rows:
        if row.kind == "model":
            still = verdicts.get(row.label)
            text = "" if still is None else ("no: " + ", ".join(still) if still else "yes")
            row.cells[PLATEAU] = TableCell(value=text, mean=math.nan if still is None else float(not still))
    table.columns.append(Column(PLATEAU, PLATEAU, None, metric=False))


def row_order(suite: Suite) -> dict[str, int]:
    """``row label -> position``: model rows in the suite file's order of models, then of samplers.

    The tables (and the run lists of results.csv / results.json, which follow them) must not depend on
    the order in which cells happened to start: a suite run in parts, or from scratch with another
    ``--jobs``, publishes the same files as a rebuild from its runs.jsonl.
    """
    order: dict[str, int] = {}
    for model in suite.models:
        order[model.label] = len(order)
        for sampler in suite.samplers:
            order[f"{model.label} + {sampler.label}"] = len(order)
    return order


def _dataset_table(dataset: str, sub: pd.DataFrame, columns: list[Column], specs: dict[str, Any],
                   params: dict[str, str], order: Mapping[str, int], n_seeds: int = 0) -> DatasetTable:
    """One data set's table; ``n_seeds``: the suite's seed count, which every model row should reach
    (a seed with no run, e.g. a run file cut short or a part not run yet, shows as missing)."""
    rows: list[Row] = []
    # Reference rows first, in the order of the metric columns they fill; then model rows in the
    # suite's order; labels the suite does not name (none in a current plan) last, in store order.
    kinds = dict(zip(sub["row"], sub["kind"], strict=True))
    seen = list(dict.fromkeys(sub["row"]))
    column = {c.key: i for i, c in enumerate(columns)}
    references: dict[str, int] = {}
    for label, metric in zip(sub["row"], sub["metric"], strict=True):
        if kinds[label] == "reference":
            references[label] = min(references.get(label, len(column)), column.get(metric, len(column)))

    def position(label: str) -> tuple[bool, int, int]:
        if kinds[label] == "reference":
            return False, references[label], seen.index(label)
        return True, order.get(label, len(order)), seen.index(label)

    labels = sorted(seen, key=position)
    for label in labels:
        runs = sub[sub["row"] == label]
        kind = str(runs["kind"].iloc[0])
        first = runs.drop_duplicates("run_id").sort_values("seed", kind="stable")
        row = Row(label, kind, run_ids=list(first["run_id"]),
                  ok_run_ids=list(first[first["run_status"] == "ok"]["run_id"]))
        for col in columns:
            row.cells[col.key] = _metric_cell(runs, col, kind, n_seeds if kind == "model" else 0)
        if kind == "model":
            ok = first[first["run_status"] == "ok"]
            times = summarize([float(t) for t in ok["train_time"]])
            row.cells[HYPERPARAMETERS] = TableCell(value=scrub(params.get(label, "")))
            row.cells[TRAIN_SECONDS] = TableCell(value=format_number(times.mean, 3) if len(ok) else "",
                                                 mean=times.mean)
            steps = int(first["train_steps"].max())
            row.cells[STEPS] = TableCell(value=str(steps), mean=float(steps))
            count = int(first["n_params"].max())
            row.cells[PARAMETER_COUNT] = TableCell(value=f"{count:,}" if count else "", mean=float(count or math.nan))
            row.cells[SEEDS] = TableCell(value=f"{len(ok)}/{max(len(first), n_seeds)}", mean=float(len(ok)))
        rows.append(row)
    table = DatasetTable(dataset, [], rows)
    for col in columns:
        cells = [r.cells[col.key] for r in rows]
        # rows whose every run failed say nothing about the column: n/a for all the others omits it
        models = [r.cells[col.key] for r in rows if r.kind == "model" and r.ok_run_ids]
        if models and all(c.status == "n/a" for c in models) and not any(c.status == "ok" for c in cells):
            reasons = sorted({c.reasons[0] for c in models if c.reasons})
            table.omitted.append((col, "; ".join(reasons)))
            for r in rows:
                r.cells.pop(col.key)
            continue
        table.columns.append(col)
        tags = {c.estimator for c in cells if c.status == "ok"}
        if len(tags) > 1:
            for c in cells:
                c.show_estimator = c.status == "ok"
        elif tags and (tag := next(iter(tags))):
            table.uniform[col.key] = tag
        _mark_best(rows, col, col.ranks_across)
    has_params = any(r.cells.get(HYPERPARAMETERS, TableCell()).value for r in rows)
    for key in COST_COLUMNS:
        if key == PLATEAU:  # added by _plateau_column where a suite evaluates over training
            continue
        if key == HYPERPARAMETERS and not has_params:
            continue
        table.columns.append(Column(key, key, None, metric=False))
    return table


def iter_cells(board: Leaderboard) -> Iterable[tuple[DatasetTable, Row, Column, TableCell]]:
    """Every (table, row, column, cell), in table order."""
    for t in board.tables:
        for r in t.rows:
            for c in t.columns:
                if c.key in r.cells:
                    yield t, r, c, r.cells[c.key]
