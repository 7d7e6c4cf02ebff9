"""Evaluating a cell's metrics: the compatibility matrix first, one record per metric, errors kept.

:func:`evaluate_metrics` is what a cell runs after training (and, for metrics added to a suite later,
on the model restored from the cell's final checkpoint); :func:`metric_row` is the record the store
keeps for one metric, also used for the model-free reference rows; :func:`eval_point` is the record of
one metric evaluated on a snapshot at one of the suite's ``eval_at`` steps.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from benchbed.contracts import EvalContext, MetricResult
from benchbed.errors import Diverged, NotApplicable
from benchbed.grid import incompatibility
from benchbed.progress import iterate
from benchbed.registry import Registry
from benchbed.suite import Entry, config_hash
from benchbed.training import seed_everything


def error_text(exc: BaseException) -> str:
    """``Type: message (file:line in function)`` of the innermost frame: enough to find the fault."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def settings_hash(entry: Entry) -> str:
    """The hash a metric record carries: a record whose hash differs from the suite's entry is stale."""
    return config_hash(entry.identity())


def metric_row(entry: Entry, status: str, result: MetricResult | None = None, reason: str = "",
               seconds: float = 0.0) -> dict[str, Any]:
    """The store's record of metric ``entry``: ``status`` is ok, n/a or failed; ``result`` when ok.

    A record carries the settings that produced it: the metric's own account when it gives one (an
    exact log-likelihood does not use the suite's AIS settings), else the entry's parameters.
    """
    settings = dict(result.settings) if result is not None and result.settings else dict(entry.params)
    row: dict[str, Any] = {
        "metric": entry.label, "component": entry.component, "status": status,
        "value": None if result is None else float(result.value), "reason": reason, "settings": settings,
        "details": {} if result is None else result.details, "settings_hash": settings_hash(entry),
        "wall_time": seconds}
    if result is not None:
        row["estimator"] = result.estimator
        row["stderr"] = None if result.stderr is None else float(result.stderr)
        if result.per_example is not None:
            per = result.per_example
            row["per_example"] = per.detach().double().cpu().numpy() if isinstance(per, torch.Tensor) else per
    return row


def eval_point(row: Mapping[str, Any], step: int, train_time: float) -> dict[str, Any]:
    """The store's record (:meth:`benchbed.store.Store.put_eval_points`) of metric record ``row``
    (:func:`metric_row`) evaluated on the snapshot after ``step`` training steps, ``train_time`` cumulative
    training seconds into the run (0 when unknown: no snapshot).  Settings, details and per-example values
    are left out: the final record keeps them."""
    return {"metric": row["metric"], "step": int(step), "train_time": float(train_time), "status": row["status"],
            "value": row.get("value"), "stderr": row.get("stderr"), "estimator": row.get("estimator", ""),
            "reason": row.get("reason", ""), "settings_hash": row["settings_hash"]}


def evaluate_metrics(registry: Registry, metrics: tuple[Entry, ...], ctx: EvalContext,
                     dataset: str | None = None, *, done: Mapping[str, Mapping[str, Any]] | None = None,
                     on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One record per metric of ``metrics`` on ``ctx``'s model, in order.

    ``n/a`` is decided up front from the suite (a metric not asked for on data set entry ``dataset``,
    :meth:`benchbed.suite.Entry.not_asked`) and the compatibility matrix (capabilities and data), or raised
    by a metric (:class:`NotApplicable`); an exception fails that metric's record only, and a non-finite
    value is a failure, never ranked.  Every metric starts from the global RNGs seeded with the
    cell's seed, so values do not depend on metric order.

    ``done``: records already computed on this same model (by metric label, e.g. before an
    interruption); one whose settings hash matches its entry and that is ``ok`` or ``n/a`` is returned
    as it is, not recomputed.  ``on_row``: called with each newly computed record as soon as it exists
    (the runner stores it, so that an interruption loses at most the metric being computed).

    Raises:
        Diverged: a metric reported that the model diverged; the cell is recorded as diverged.
    """
    rows: list[dict[str, Any]] = []
    caps = frozenset(ctx.model.capabilities)

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    for entry in iterate(metrics, len(metrics), "metrics", stage=lambda e: e.label):  # shows which runs
        previous = (done or {}).get(entry.label)
        if previous is not None and previous.get("settings_hash") == settings_hash(entry) and \
                previous.get("status") in ("ok", "n/a"):
            rows.append({k: v for k, v in previous.items() if k != "run_id"})
            continue
        spec = registry.metric(entry.component)
        reason = (entry.not_asked(dataset) if dataset is not None else None) or \
            incompatibility(spec, caps, ctx.data.info)
        if reason:
            add(metric_row(entry, "n/a", reason=reason))
            continue
        t = time.perf_counter()
        try:
            seed_everything(ctx.seed)
            with torch.no_grad():
                result = spec.factory(**entry.params).evaluate(ctx)
            if not isinstance(result, MetricResult):
                prov = registry.get("metric", entry.component).provenance
                add(metric_row(entry, "failed", reason=f"metric {entry.label!r} (plugin {prov.plugin!r}): evaluate() "
                               f"returned a {type(result).__name__}, not a benchbed.contracts.MetricResult",
                               seconds=time.perf_counter() - t))
                continue
            if not math.isfinite(float(result.value)):
                add(metric_row(entry, "failed", reason=f"metric {entry.label!r} returned a non-finite "
                               f"value ({float(result.value)})", seconds=time.perf_counter() - t))
                continue
            add(metric_row(entry, "ok", result, seconds=time.perf_counter() - t))
        except NotApplicable as exc:
            add(metric_row(entry, "n/a", reason=str(exc), seconds=time.perf_counter() - t))
        except Diverged:
            raise
        except Exception as exc:  # noqa: BLE001 - one failing metric does not lose the others
            add(metric_row(entry, "failed", reason=error_text(exc), seconds=time.perf_counter() - t))
    return rows
