"""Published results that live in the repository: the portable run file beside each table.

``runs.jsonl`` (:data:`RUNS_FILE`) holds every run a published table shows: one JSON object per
line, keys sorted, runs in the order they were started, after a header line naming the format and its
version.  Each run carries its configuration, provenance, status, training curve, metric records
(value, standard error, estimator tag, settings, details), its small sample preview and, when the suite
evaluates metrics over training (``eval_at``), its metric records at those steps (``eval_points``:
step, training seconds, status, value, standard error, tag, reason, settings hash), so the plots of
metrics against steps rebuild too; checkpoints and per-example values stay in the local SQLite store.

* ``benchbed leaderboard SUITE`` and ``benchbed run SUITE`` first :func:`import_runs` the file into the
  store (runs the store lacks or has not finished), so a fresh clone rebuilds every published file
  byte-identically and retrains no finished cell.
* Writing the tables :func:`export_runs` the shown runs again; export after import is the identity.

Published text never holds a path of the machine that made it: :func:`scrub` replaces the home
folder, the working directory and the temporary folder with ``~``, ``.`` and ``$TMPDIR``.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchbed.errors import BenchbedError
from benchbed.run_record import check_records
from benchbed.store import Store

RUNS_FILE = "runs.jsonl"
FORMAT = "benchbed-runs"
VERSION = 1


def _prefixes() -> list[tuple[str, str]]:
    """(absolute prefix, replacement), longest first, so the most specific one wins."""
    pairs = {str(Path.cwd().resolve()): ".", str(Path.home()): "~", tempfile.gettempdir(): "$TMPDIR"}
    if root := os.environ.get("BENCHBED_DATA"):
        pairs[str(Path(root).expanduser().resolve())] = "$BENCHBED_DATA"
    return sorted(((k, v) for k, v in pairs.items() if len(k) > 1), key=lambda kv: -len(kv[0]))


def scrub(value: Any) -> Any:
    """``value`` with every string's absolute machine paths replaced (recursively through dicts, lists)."""
    return _scrub(value, _prefixes())


def _scrub(value: Any, prefixes: list[tuple[str, str]]) -> Any:
    # The prefixes are resolved once per call of scrub, not per string: resolving them costs system
    # calls, and a published run record holds thousands of strings.
    if isinstance(value, str):
        for prefix, replacement in prefixes:
            if prefix in value:
                value = value.replace(prefix, replacement)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, prefixes) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, prefixes) for v in value]
    return value


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def export_runs(store: Store, run_ids: Iterable[str], path: Path, suite: str) -> Path:
    """Write the portable file of ``run_ids`` (as stored now) to ``path``; returns ``path``."""
    records = [r for r in (store.export_run(i) for i in run_ids) if r is not None]
    records.sort(key=lambda r: (r["run"]["started_at"], r["run"]["run_id"]))
    lines = [_line({"format": FORMAT, "version": VERSION, "suite": suite, "runs": len(records)})]
    for rec in records:
        preview = rec.pop("preview")
        rec = scrub(rec)
        # Encoded after scrubbing: base64 text may contain a machine path by chance ("/tmp" is four
        # base64 characters), and replacing it would corrupt the image.
        rec["preview"] = None if preview is None else base64.b64encode(preview).decode("ascii")
        lines.append(_line(rec))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The run records of a portable file (previews decoded to bytes), checked against its header."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchbedError(f"cannot read published results {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise BenchbedError(f"published results {path} is not UTF-8 text; restore the file (e.g. `git checkout -- "
                            f"{path}`)") from None
    lines = text.splitlines()
    parsed: list[tuple[int, Any]] = []  # (line number in the file, JSON): blank lines keep the numbering
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise BenchbedError(f"published results {path}: line {number} is not JSON ({exc.msg}, column "
                                f"{exc.colno}); restore the file (e.g. `git checkout -- {path}`)") from None
    header = parsed[0][1] if parsed and isinstance(parsed[0][1], dict) else {}
    numbered = parsed[1:]
    if header.get("format") != FORMAT:
        first = lines[0] if lines else ""
        shown = first if len(first) <= 200 else first[:200] + f"... ({len(first)} characters)"
        raise BenchbedError(f"published results {path}: not a {FORMAT} file (its first line: {shown!r})")
    if header.get("version") != VERSION:
        raise BenchbedError(f"published results {path}: format version {header.get('version')!r}, "
                            f"this benchbed reads version {VERSION!r}")
    count = header.get("runs")
    if count is not None and count != len(numbered):
        # the header is written with the file: a different count means lines were lost or added since
        raise BenchbedError(f"published results {path}: the header announces {count!r} runs but the file holds "
                            f"{len(numbered)} (cut off or merged by hand?); restore the file (e.g. `git checkout -- "
                            f"{path}`), or move it out of the folder and rebuild it with `benchbed leaderboard "
                            "--publish` from a store that holds the runs (benchbed reads the file whenever it is "
                            "there)")
    check_records(numbered, str(path))
    records = [rec for _, rec in numbered]
    for i, rec in numbered:
        if rec.get("preview") is not None:
            try:
                rec["preview"] = base64.b64decode(rec["preview"], validate=True)
            except (ValueError, TypeError) as exc:
                raise BenchbedError(f"published results {path}: line {i}: preview is not base64 ({exc})") from None
    return records


def import_runs(store: Store, path: Path) -> int:
    """Add the runs of a portable file that ``store`` lacks (or holds unfinished); returns how many."""
    if not path.exists():
        return 0
    if not path.is_file():  # known before anything trains; writing it after the run would fail
        raise BenchbedError(f"published results {path} is not a file")
    return sum(store.import_run(rec) for rec in read_runs(path))


def runs_path(folder: Path) -> Path:
    return folder / RUNS_FILE
