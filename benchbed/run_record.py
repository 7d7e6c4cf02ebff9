"""The schema of one portable run record (a line of ``runs.jsonl``), checked before anything is imported.

A published file is input like any other: it may be truncated, merged by hand, edited or written by
another tool.  :func:`record_problem` checks every field a record carries against the columns of the store
(:mod:`benchbed.store`) it will be inserted into, so that a bad record is refused with the file, line
and key at fault instead of being tabulated (a value given as a string, a non-finite "ok" value) or
failing inside SQLite.  Field names never reach SQL unchecked: only the names of :data:`RUN_FIELDS`
pass.

Shapes: a record is ``{"run": {...}, "metrics": [{...}, ...], "preview": str | None,
"eval_points": [{...}, ...]}`` (``eval_points`` only when the suite evaluates over training).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from benchbed.errors import BenchbedError
from benchbed.store import FINISHED

#: Value kinds of the fields below; ``number`` is an int or a float (never a bool).
_STR, _INT, _NUMBER, _DICT, _LIST = "text", "integer", "number", "table", "list"

_ARTICLE = {_STR: "text", _INT: "an integer", _NUMBER: "a finite number", _DICT: "a table (JSON object)",
            _LIST: "a list"}

#: Run fields a portable record may carry (the store's ``runs`` columns less its host-local ones), by kind.
RUN_FIELDS: dict[str, str] = {
    "run_id": _STR, "kind": _STR, "suite": _STR, "model": _STR, "model_component": _STR, "sampler": _STR,
    "dataset": _STR, "seed": _INT, "status": _STR, "error": _STR, "config": _DICT, "provenance": _DICT,
    "data_hash": _STR, "train_steps": _INT, "wall_time": _NUMBER, "train_time": _NUMBER, "n_params": _INT,
    "curves": _LIST, "started_at": _NUMBER, "finished_at": _NUMBER, "train_count": _INT,
}
#: Run fields every record must carry.
RUN_REQUIRED = frozenset({"run_id", "kind", "suite", "model", "model_component", "sampler", "dataset", "seed",
                          "status", "config", "provenance", "curves", "started_at"})
RUN_KINDS = ("model", "reference", "variant")
#: Metric record fields (``value`` and ``stderr`` are checked apart: a finite number or null).
METRIC_FIELDS: dict[str, str] = {
    "metric": _STR, "component": _STR, "status": _STR, "reason": _STR, "settings": _DICT, "details": _DICT,
    "settings_hash": _STR, "wall_time": _NUMBER, "estimator": _STR,
}
METRIC_REQUIRED = frozenset({"metric", "component", "status"})
#: Intermediate metric record fields (metrics at the suite's ``eval_at`` steps).
POINT_FIELDS: dict[str, str] = {
    "metric": _STR, "step": _INT, "train_time": _NUMBER, "status": _STR, "estimator": _STR, "reason": _STR,
    "settings_hash": _STR,
}
POINT_REQUIRED = frozenset({"metric", "step", "train_time", "status"})
METRIC_STATUSES = ("ok", "n/a", "failed")
RECORD_KEYS = frozenset({"run", "metrics", "preview", "eval_points"})


def _is(value: Any, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == _DICT:
        return isinstance(value, dict)
    return isinstance(value, list)


def _fields(obj: Any, fields: Mapping[str, str], required: frozenset[str], what: str,
            extra: frozenset[str] = frozenset()) -> str:
    """The first problem of ``obj`` against ``fields`` (``extra``: other keys checked by the caller), or ''."""
    if not isinstance(obj, dict):
        return f"{what} must be a table (JSON object), got {type(obj).__name__}"
    if missing := sorted(required - set(obj)):
        return f"{what} lacks {missing}"
    if unknown := sorted(set(obj) - set(fields) - extra):
        return f"{what} has unknown key(s) {unknown} (known: {', '.join(sorted({*fields, *extra}))})"
    for key, kind in fields.items():
        if key in obj and not _is(obj[key], kind):
            return f"{what} key {key!r} must be {_ARTICLE[kind]}, got {obj[key]!r}"
    return ""


def _measured(obj: Mapping[str, Any], what: str) -> str:
    """The first problem of a metric-like record's ``status``, ``value`` and ``stderr``, or ''."""
    status = obj["status"]
    if status not in METRIC_STATUSES:
        return f"{what} key 'status' must be one of {', '.join(METRIC_STATUSES)}, got {status!r}"
    for key in ("value", "stderr"):
        value = obj.get(key)
        if value is not None and not _is(value, _NUMBER):
            return f"{what} key {key!r} must be a finite number or null, got {value!r}"
    if status == "ok" and obj.get("value") is None:
        return f"{what} has status 'ok' but no value"
    if obj.get("stderr") is not None and obj["stderr"] < 0:
        return f"{what} key 'stderr' must be >= 0, got {obj['stderr']!r}"
    return ""


def record_problem(rec: Any) -> str:
    """The first problem of one portable record, or '' when it can be imported (module docstring)."""
    if not isinstance(rec, dict):
        return f"a run record must be a JSON object, got {type(rec).__name__}"
    if unknown := sorted(set(rec) - RECORD_KEYS):
        return f"unknown key(s) {unknown} (a run record has {', '.join(sorted(RECORD_KEYS))})"
    if "run" not in rec:
        return "not a run record (missing 'run')"
    run = rec["run"]
    if problem := _fields(run, RUN_FIELDS, RUN_REQUIRED, "run"):
        return problem
    if run["kind"] not in RUN_KINDS:
        return f"run key 'kind' must be one of {', '.join(RUN_KINDS)}, got {run['kind']!r}"
    if run["status"] not in FINISHED:
        return f"run key 'status' must be a finished status ({', '.join(FINISHED)}), got {run['status']!r}"
    if not run["run_id"]:
        return "run key 'run_id' is empty"
    for key, fields, required in (("metrics", METRIC_FIELDS, METRIC_REQUIRED),
                                  ("eval_points", POINT_FIELDS, POINT_REQUIRED)):
        items = rec.get(key, [])
        if not isinstance(items, list):
            return f"{key!r} must be a list, got {type(items).__name__}"
        seen: set[tuple[str, int]] = set()
        for i, item in enumerate(items):
            what = f"{key}[{i}]"
            if problem := _fields(item, fields, required, what, frozenset({"value", "stderr"})) or _measured(
                    item, what):
                return problem
            ident = (item["metric"], item.get("step", -1))
            if ident in seen:
                return f"{what} repeats metric {item['metric']!r}" + (f" at step {item['step']}" if "step" in item
                                                                      else "")
            seen.add(ident)
    if rec.get("preview") is not None and not isinstance(rec["preview"], str):
        return f"'preview' must be base64 text or null, got {type(rec['preview']).__name__}"
    return ""


def check_records(numbered: list[tuple[int, Any]], where: str) -> None:
    """Raise :class:`BenchbedError` naming ``where`` and the line for the first bad record of ``numbered``
    (``(line number, parsed JSON)``) or a run id given twice (both lines named)."""
    lines: dict[str, int] = {}
    for number, rec in numbered:
        if problem := record_problem(rec):
            raise BenchbedError(f"published results {where}: line {number}: {problem}; restore the file (e.g. "
                                f"`git checkout -- {where}`)")
        run_id = rec["run"]["run_id"]
        if run_id in lines:
            raise BenchbedError(f"published results {where}: run {run_id} is on lines {lines[run_id]} and {number}; "
                                "a run may appear once (a hand merge?): keep one line and rebuild with "
                                "`benchbed leaderboard`")
        lines[run_id] = number
