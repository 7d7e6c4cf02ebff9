"""Metrics over training (a suite's ``eval_at``) and whether each model has plateaued at its budget.

A model's metric at the suite's ``eval_at`` steps and at the final budget forms one curve per seed
(:func:`run_progress`); :func:`aggregate_progress` averages the seeds for the plots, and
:func:`plateau` decides from the last interval of the curve whether the metric is still moving.

The rule (``docs/results.md#has-it-plateaued`` states it for readers): over the last interval
(the last ``eval_at`` step before the budget → the budget), the mean over seeds of the per-seed
change is compared with

* the spread of the final values over seeds (their sample standard deviation): a change smaller than
  the seed-to-seed spread cannot change a ranking the table's significance marks would make, and
* :data:`RELATIVE_TOLERANCE` of the final mean's magnitude: a change of a percent or two is within
  what any published table rounds away.

A metric has *not plateaued* when the change exceeds both. The rule is about the last interval only,
so a suite that wants the verdict to mean something spaces its ``eval_at`` steps so that the last
interval is a sizeable fraction of the budget (the standard suite's is half of it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RELATIVE_TOLERANCE", "Curve", "Plateau", "aggregate_progress", "plateau", "run_progress"]

#: A change over the last interval smaller than this fraction of the final mean's magnitude is a plateau.
RELATIVE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Curve:
    """One model's metric over training: at each step (ascending, the final budget last) the mean over
    seeds of the cumulative training seconds and of the value, and how many seeds have a value there."""

    label: str
    steps: list[int]
    seconds: list[float]
    values: list[float]
    n: list[int]


@dataclass(frozen=True)
class Plateau:
    """The verdict on one metric of one model over the last interval ``start`` → ``end`` (steps).

    ``change`` is the mean over the ``n`` seeds that have both points of (value at ``end`` − value at
    ``start``); ``relative`` is it divided by ``|final mean|`` (``nan`` when that is 0); ``spread`` the
    standard deviation of the final values over those seeds (0 with one seed); ``improving`` whether the
    change goes the metric's better way (``None`` when the metric has no direction)."""

    start: int
    end: int
    n: int
    change: float
    relative: float
    spread: float
    moving: bool
    improving: bool | None

    def describe(self, title: str) -> str:
        """E.g. ``"MMD² −18% (2000→4000)"``: the metric, its relative change, the interval."""
        amount = f"{self.relative:+.0%}" if math.isfinite(self.relative) else f"{self.change:+.3g}"
        return f"{title} {amount.replace('-', '−')} ({self.start}→{self.end})"


def run_progress(run: Mapping[str, Any], metric: str, settings_hash: str) -> dict[int, tuple[float, float]]:
    """``step -> (training seconds, value)`` of one stored run (:meth:`benchbed.store.Store.run`) for
    ``metric``: its ``ok`` records at intermediate steps and its final ``ok`` record at ``train_steps``,
    those with ``settings_hash`` only (records of other settings are stale)."""
    out = {int(p["step"]): (float(p["train_time"]), float(p["value"])) for p in run.get("eval_points", ())
           if p["metric"] == metric and p["status"] == "ok" and p["settings_hash"] == settings_hash
           and p["value"] is not None}
    for m in run.get("metrics", ()):
        if m["metric"] == metric and m["status"] == "ok" and m["settings_hash"] == settings_hash \
                and m["value"] is not None:
            out[int(run["train_steps"])] = (float(run["train_time"]), float(m["value"]))
    return out


def aggregate_progress(label: str, runs: Sequence[Mapping[int, tuple[float, float]]]) -> Curve:
    """The mean over ``runs`` (one per seed, :func:`run_progress`) at each step some run has, of the
    finite values only."""
    by_step: dict[int, list[tuple[float, float]]] = {}
    for points in runs:
        for step, (seconds, value) in points.items():
            if math.isfinite(value):
                by_step.setdefault(step, []).append((seconds, value))
    steps = sorted(by_step)
    return Curve(label, steps, [math.fsum(t for t, _ in by_step[s]) / len(by_step[s]) for s in steps],
                    [math.fsum(v for _, v in by_step[s]) / len(by_step[s]) for s in steps],
                    [len(by_step[s]) for s in steps])


def plateau(runs: Sequence[Mapping[int, tuple[float, float]]], higher_is_better: bool | None) -> Plateau | None:
    """The verdict over the last interval of the curves ``runs`` (one per seed, :func:`run_progress`).

    The interval ends at the latest step any seed reached and starts at the latest earlier step; only the
    seeds with finite values at both count. ``None`` when fewer than two steps or no such seed exist
    (a one-shot model, a suite without ``eval_at``)."""
    steps = sorted({s for points in runs for s in points})
    if len(steps) < 2:
        return None
    start, end = steps[-2], steps[-1]
    pairs = [(points[start][1], points[end][1]) for points in runs
             if start in points and end in points
             and math.isfinite(points[start][1]) and math.isfinite(points[end][1])]
    if not pairs:
        return None
    change = math.fsum(b - a for a, b in pairs) / len(pairs)
    final = math.fsum(b for _, b in pairs) / len(pairs)
    spread = statistics.stdev([b for _, b in pairs]) if len(pairs) > 1 else 0.0
    relative = change / abs(final) if final != 0 else math.nan
    moving = abs(change) > max(spread, RELATIVE_TOLERANCE * abs(final))
    improving = None if higher_is_better is None or change == 0 else (change > 0) == higher_is_better
    return Plateau(start, end, len(pairs), change, relative, spread, moving, improving)
