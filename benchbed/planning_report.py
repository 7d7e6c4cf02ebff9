"""``benchbed plan SUITE``: what a run would do, before it does it.

The report lists every cell of the run (held-out-class trainings included, each before the suite cell
that needs it), whether it is already finished in the store or the suite's published ``runs.jsonl``,
the (model, metric) pairs that are ``n/a`` on each data set with the reason, and an estimated wall time
per cell and in total.

Estimates come from stored timings (``wall_time``, ``train_time``, ``train_steps`` of finished ``ok``
runs): the same run id when it was run before (its wall time), else the median over *similar* runs, the
same model component on the same data set (same settings; failing that, the same data set component),
with the training time scaled by the ratio of steps and the metric time (wall minus training) added for
suite cells (a held-out training evaluates no metric).  A cell with neither says ``no timing``.  The total
counts the cells still to run, divided by ``--jobs`` (never less than the longest cell).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbed.contracts import DatasetInfo
from benchbed.grid import Cell, Plan, data_incompatibility, incompatibility
from benchbed.registry import Registry
from benchbed.store import FINISHED
from benchbed.suite import Entry, Suite, config_hash


@dataclass(frozen=True)
class PastRun:
    """The timing facts of one stored run."""

    run_id: str
    status: str
    model_component: str
    dataset_key: str  # hash of the data set's identity (component and settings)
    dataset_component: str
    train_steps: int
    wall_time: float
    train_time: float
    source: str  # "store" or "published"


@dataclass(frozen=True)
class Estimate:
    """Estimated seconds of one cell (``None``: no timing) and what the estimate rests on."""

    seconds: float | None
    basis: str


def past_runs(rows: Iterable[Mapping[str, Any]], source: str) -> list[PastRun]:
    """:class:`PastRun` of run rows (``Store.frame()`` rows or published run records' ``run``), one per run id."""
    out: dict[str, PastRun] = {}
    for row in rows:
        if row["run_id"] in out:
            continue
        config = row.get("config") or {}
        if isinstance(config, str):
            config = json.loads(config)
        dataset = config.get("dataset") or {}
        out[row["run_id"]] = PastRun(
            run_id=row["run_id"], status=str(row.get("run_status", row.get("status", ""))),
            model_component=str(row.get("model_component", "")),
            dataset_key=config_hash(dataset) if dataset else "", dataset_component=str(dataset.get("component", "")),
            train_steps=int(row.get("train_steps") or 0), wall_time=float(row.get("wall_time") or 0.0),
            train_time=float(row.get("train_time") or 0.0), source=source)
    return list(out.values())


def read_past_runs(store_path: Path | None, published_path: Path | None) -> list[PastRun]:
    """The runs of the store at ``store_path`` (when it exists; it is only read) and of the published file
    ``published_path`` (when it exists), the store's first."""
    from benchbed import published
    from benchbed.store import open_for_reading

    runs: list[PastRun] = []
    if store_path is not None and store_path.is_file():
        store = open_for_reading(store_path)
        try:
            runs += past_runs(store.frame(), "store")
        finally:
            store.close()
    if published_path is not None and published_path.is_file():
        runs += past_runs((r["run"] for r in published.read_runs(published_path)), "published")
    return runs


def estimate(cell: Cell, runs: list[PastRun]) -> Estimate:
    """The estimated wall time of ``cell`` from ``runs`` (see the module docstring)."""
    timed = [r for r in runs if r.status == "ok" and r.wall_time > 0]
    same = [r for r in timed if r.run_id == cell.run_id]
    if same:
        return Estimate(same[0].wall_time, "same run")
    key = config_hash(cell.dataset.identity())
    for similar, what in (
        ([r for r in timed if r.model_component == cell.model.component and r.dataset_key == key],
         "same data set settings"),
        ([r for r in timed if r.model_component == cell.model.component
          and r.dataset_component == cell.dataset.component], f"data set {cell.dataset.component}, other settings"),
    ):
        if similar:
            values = [_scaled(r, cell) for r in similar]
            return Estimate(statistics.median(values),
                            f"similar: {len(similar)} run(s) of {cell.model.component}, {what}, scaled by steps")
    return Estimate(None, "no timing")


def _scaled(run: PastRun, cell: Cell) -> float:
    train = run.train_time * (cell.steps / run.train_steps) if run.train_steps > 0 else run.train_time
    return train + (0.0 if cell.is_variant else max(0.0, run.wall_time - run.train_time))


def duration(seconds: float) -> str:
    """``42 s``, ``12.5 min``, ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def not_applicable(suite: Suite, registry: Registry, infos: Mapping[str, DatasetInfo | None]) -> list[str]:
    """One line per (data set, model, metric) triple that is ``n/a``, with the reason
    (:func:`benchbed.grid.incompatibility` with the capabilities the model declares before setup)."""
    lines: list[str] = []
    for dataset in suite.datasets:
        info = infos.get(dataset.label)
        if info is None:
            continue
        for model in suite.models:
            caps = _capabilities(registry, model)
            for metric in suite.metrics:
                spec = registry.metric(metric.component)
                reason = metric.not_asked(dataset.label) or (
                    data_incompatibility(spec, info) if caps is None else incompatibility(spec, caps, info))
                if reason:
                    lines.append(f"{model.label} × {metric.label} on {dataset.label}: {reason}")
    return lines


def _capabilities(registry: Registry, model: Entry) -> frozenset[str] | None:
    try:
        return frozenset(registry.model(model.component).factory(**model.params).capabilities)
    except Exception:  # noqa: BLE001 - known only after setup
        return None


def report(suite: Suite, registry: Registry, planned: Plan, status: Callable[[str], str | None],
           runs: list[PastRun], infos: Mapping[str, DatasetInfo | None], jobs: int,
           notes: Iterable[str] = ()) -> str:
    """The text of ``benchbed plan``.

    Args:
        planned: the run's plan (:func:`benchbed.grid.plan_run`).
        status: ``run id -> status`` in the store or the published runs (``None``: never run).
        runs: past runs whose timings the estimates use.
        infos: each data set label's :class:`DatasetInfo` (``None``: it did not load).
        jobs: cells run in parallel (``--jobs``).
        notes: lines to add under the header (data sets that did not load, the plan's notes).
    """
    cells = planned.order
    variants = sum(c.is_variant for c in cells)
    lines = [f"suite {suite.name}: {len(cells)} cells ({len(cells) - variants} table cells, {variants} held-out "
             f"training(s)); seeds {', '.join(map(str, suite.seeds))}"]
    lines += [f"note: {n}" for n in notes]
    rows: list[list[str]] = []
    remaining: list[float] = []
    untimed = done = 0
    for cell in cells:
        state = status(cell.run_id)
        est = estimate(cell, runs)
        finished = state in FINISHED
        done += finished
        if not finished:
            if est.seconds is None:
                untimed += 1
            else:
                remaining.append(est.seconds)
        what = f"done ({state})" if finished else ("to resume" if state else "to run")
        rows.append([what, "—" if est.seconds is None else duration(est.seconds), cell.run_id, cell.title,
                     est.basis])
    header = ["status", "estimate", "run id", "cell", "estimate from"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines += ["", "cells"] + ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                              for r in [header, *rows]]
    na = not_applicable(suite, registry, infos)
    lines += ["", f"n/a pairs: {len(na)}" + (" (none)" if not na else "")] + [f"  {line}" for line in na]
    total = sum(remaining)
    wall = max(total / jobs, max(remaining, default=0.0))
    todo = len(cells) - done
    if todo and untimed == todo:
        lines += ["", f"estimated wall time: unknown: no stored timing for any of the {todo} cell(s) to run "
                      f"(no finished run of the same model component and data set); {done} cell(s) already "
                      "finished"]
    else:
        lines += ["", f"estimated wall time: {duration(wall)} for {todo} cell(s) to run "
                      f"({duration(total)} of cell time, --jobs {jobs}); {done} cell(s) already finished"
                  + (f"; {untimed} cell(s) have no timing and are not counted" if untimed else "")]
    return "\n".join(lines) + "\n"
