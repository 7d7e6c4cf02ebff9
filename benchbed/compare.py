"""Reading stored runs for people: ``benchbed show RUN`` and ``benchbed compare RUN_A RUN_B``.

Runs are looked up by id or unique prefix in result stores (SQLite) and published run files
(``runs.jsonl``), in the order given; the first source holding the run wins.  A run is the dict
:meth:`benchbed.store.Store.run` returns (a published record is turned into the same shape).

Times are shown in the local time zone; a configuration or provenance is shown as flattened dotted
keys (``model.params.latent_dim``), lists of scalars as one value.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchbed.errors import BenchbedError

#: Provenance keys ``show`` lists first, in this order (the rest follow, sorted).
KEY_PROVENANCE = ("benchbed", "git_commit", "python", "torch", "numpy", "device", "engine", "suite_file",
                  "platform")


def find_run(sources: Sequence[Path], run_id: str) -> tuple[Path, dict[str, Any]]:
    """The run ``run_id`` (id or unique prefix) from the first of ``sources`` holding it, and that source.

    Raises:
        BenchbedError: no source holds it (naming the sources), or a prefix is ambiguous in one.
    """
    for path in sources:
        run = _read(path, run_id)
        if run is not None:
            return path, run
    raise BenchbedError(f"no run with id (or unique prefix) {run_id!r} in {', '.join(map(str, sources))}")


def _read(path: Path, run_id: str) -> dict[str, Any] | None:
    from benchbed import published
    from benchbed.store import open_for_reading

    if path.suffix != ".jsonl":
        store = open_for_reading(path)
        try:
            return store.run(run_id)
        finally:
            store.close()
    found = [r for r in published.read_runs(path) if r["run"]["run_id"].startswith(run_id)]
    if len(found) > 1:
        raise BenchbedError(f"run id prefix {run_id!r} is ambiguous in {path}: {len(found)} runs start with it; "
                            "give more characters")
    if not found:
        return None
    (rec,) = found
    return {**rec["run"], "metrics": rec["metrics"]}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}``; lists of scalars stay one value, other lists are indexed
    (``a.0.name``); an empty dict is one value ``{}``."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple) and any(isinstance(v, Mapping | list | tuple) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: value}


def local_time(seconds: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS ZONE``; ``—`` when unset (0 or ``None``)."""
    if not seconds:
        return "—"
    return _dt.datetime.fromtimestamp(float(seconds)).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def number(value: float | None) -> str:
    """A metric value with 4 significant digits (``—`` for ``None``)."""
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> list[str]:
    rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def value_text(metric: Mapping[str, Any]) -> str:
    """``0.0123 ± 0.00045`` (value ± standard error), or the status when there is no value."""
    if metric.get("status") != "ok" or metric.get("value") is None:
        return str(metric.get("status", "—"))
    stderr = metric.get("stderr")
    return number(metric["value"]) + ("" if stderr is None else f" ± {stderr:.2g}")


def _cell_title(run: Mapping[str, Any]) -> str:
    parts = [str(run.get("model", "")), str(run.get("sampler", "")), str(run.get("dataset", ""))]
    held = run.get("config", {}).get("held_out") if isinstance(run.get("config"), dict) else None
    return " · ".join(p for p in parts if p) + f" · seed {run.get('seed')}" + (f" · held out {held}" if held else "")


def show_text(run: Mapping[str, Any], source: Path) -> str:
    """The human-readable ``benchbed show``: the cell, status, times, metrics table, configuration and key
    provenance."""
    steps = run.get("train_steps", 0)
    lines = [
        f"run {run['run_id']}  ({source})",
        f"  suite      {run.get('suite', '')}",
        f"  cell       {_cell_title(run)}  (kind {run.get('kind', 'model')}; model component "
        f"{run.get('model_component') or '—'})",
        f"  status     {run.get('status')}" + (f": {run['error']}" if run.get("error") else ""),
        f"  started    {local_time(run.get('started_at'))}",
        f"  finished   {local_time(run.get('finished_at'))}",
        f"  wall time  {run.get('wall_time', 0):.1f} s (training {run.get('train_time', 0):.1f} s, {steps} steps, "
        f"{run.get('n_params', 0):,} parameters)",
        f"  curves     {len(run.get('curves') or [])} points",
    ]
    metrics = run.get("metrics") or []
    lines += ["", "metrics" if metrics else "metrics: none stored"]
    if metrics:
        lines += _table(["metric", "value ± stderr", "estimator", "reason"],
                        [[m["metric"], value_text(m), m.get("estimator") or "", m.get("reason") or ""]
                         for m in metrics])
    config = flatten(run.get("config") or {})
    lines += ["", "configuration"] + _table(["key", "value"], [[k, _text(v)] for k, v in config.items()])
    prov = run.get("provenance") or {}
    lines += ["", "provenance" if prov else "provenance: none recorded"]
    if prov:
        rows = [[k, _text(prov[k])] for k in KEY_PROVENANCE if k in prov]
        comps = prov.get("components") or {}
        for kind in ("model", "sampler", "dataset"):
            c = comps.get(kind)
            if isinstance(c, Mapping):
                rows.append([kind, f"{c.get('name')} (plugin {c.get('plugin')}, {c.get('distribution')} "
                                   f"{c.get('version')})"])
        for split, digest in sorted((prov.get("data_hashes") or {}).items()):
            rows.append([f"data hash {split}", str(digest)])
        lines += _table(["key", "value"], rows)
        rest = sorted(k for k in prov if k not in KEY_PROVENANCE and k not in ("components", "data_hashes"))
        if rest:
            lines.append(f"  (also recorded: {', '.join(rest)}; --json shows everything)")
    return "\n".join(lines) + "\n"


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(key, A, B)`` for each flattened key whose values differ (``—``: absent), keys sorted; an empty
    table facing a filled one (``given = {}`` vs ``given.lr = 0.02``) shows as the filled keys only."""
    fa, fb = flatten(a), flatten(b)
    for mine, theirs in ((fa, fb), (fb, fa)):  # an empty table on one side is no difference of its own
        for key in [k for k, v in mine.items() if v == {} and any(t.startswith(k + ".") for t in theirs)]:
            del mine[key]
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, _ABSENT), fb.get(key, _ABSENT)
        if va != vb:
            out.append((key, "—" if va is _ABSENT else _text(va), "—" if vb is _ABSENT else _text(vb)))
    return out


_ABSENT = object()


def compare_text(a: Mapping[str, Any], source_a: Path, b: Mapping[str, Any], source_b: Path) -> str:
    """The ``benchbed compare`` report: the two runs, their configuration, provenance and run-column
    differences, and each metric side by side (A, B, B - A, estimator; estimators that differ are named,
    their values not comparable)."""
    lines = [f"A  {a['run_id']}  {_cell_title(a)}  ({a.get('status')}; {source_a})",
             f"B  {b['run_id']}  {_cell_title(b)}  ({b.get('status')}; {source_b})"]
    columns = ("suite", "kind", "model", "model_component", "sampler", "dataset", "seed", "status", "error",
               "train_steps", "n_params")
    sections = [("configuration", a.get("config") or {}, b.get("config") or {}),
                ("provenance", a.get("provenance") or {}, b.get("provenance") or {}),
                ("run", {k: a.get(k) for k in columns}, {k: b.get(k) for k in columns})]
    for title, left, right in sections:
        diff = differences(left, right)
        lines += ["", f"{title}: {'no differences' if not diff else f'{len(diff)} difference(s)'}"]
        if diff:
            lines += _table(["key", "A", "B"], diff)
    lines += ["", f"times: wall {a.get('wall_time', 0):.1f} s vs {b.get('wall_time', 0):.1f} s, training "
                  f"{a.get('train_time', 0):.1f} s vs {b.get('train_time', 0):.1f} s"]
    ma = {m["metric"]: m for m in a.get("metrics") or []}
    mb = {m["metric"]: m for m in b.get("metrics") or []}
    rows = []
    for name in sorted(set(ma) | set(mb)):
        x, y = ma.get(name), mb.get(name)
        ex, ey = (x or {}).get("estimator") or "", (y or {}).get("estimator") or ""
        both = x is not None and y is not None and x.get("status") == y.get("status") == "ok" \
            and x.get("value") is not None and y.get("value") is not None
        if both and ex == ey:
            assert x is not None and y is not None
            delta = number(float(y["value"]) - float(x["value"]))
        elif both:
            delta = "not comparable"
        else:
            delta = "—"
        rows.append([name, "—" if x is None else value_text(x), "—" if y is None else value_text(y), delta,
                     ex if ex == ey else f"{ex or '—'} vs {ey or '—'}"])
    lines += ["", "metrics" if rows else "metrics: none stored in either run"]
    if rows:
        lines += _table(["metric", "A", "B", "B - A", "estimator"], rows)
    return "\n".join(lines) + "\n"
