"""The result store: SQLite (embedded), safe for several ``benchbed run`` processes at once.

Every write is one short transaction; the database runs in WAL mode with a busy timeout, so
concurrent writers queue instead of failing and a killed process leaves the file consistent.
A cell being trained holds a *claim* (status ``running`` with host, pid and a heartbeat); a claim
whose process is gone is stale and may be taken over (see :meth:`Store.claim`).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.errors import StoreError

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'model',      -- 'model', 'reference' or 'variant' (a held-out training)
    suite TEXT NOT NULL,
    model TEXT NOT NULL,                     -- entry label (reference rows: their label)
    model_component TEXT NOT NULL,
    sampler TEXT NOT NULL,                   -- '' for models without dynamics
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,                    -- running, ok, failed, diverged, n/a
    error TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL,                    -- resolved configuration (JSON)
    provenance TEXT NOT NULL DEFAULT '{}',   -- versions, commit, device, plugins (JSON)
    data_hash TEXT NOT NULL DEFAULT '',
    train_steps INTEGER NOT NULL DEFAULT 0,
    wall_time REAL NOT NULL DEFAULT 0,       -- seconds: training + metrics
    train_time REAL NOT NULL DEFAULT 0,
    n_params INTEGER NOT NULL DEFAULT 0,
    curves TEXT NOT NULL DEFAULT '[]',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    heartbeat REAL NOT NULL DEFAULT 0,
    started_at REAL NOT NULL DEFAULT 0,
    finished_at REAL NOT NULL DEFAULT 0,
    train_count INTEGER NOT NULL DEFAULT 0   -- how many times training started (resume audits)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    metric TEXT NOT NULL,                    -- entry label
    component TEXT NOT NULL,
    status TEXT NOT NULL,                    -- ok, n/a, failed
    value REAL,
    reason TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    details TEXT NOT NULL DEFAULT '{}',
    settings_hash TEXT NOT NULL DEFAULT '',
    wall_time REAL NOT NULL DEFAULT 0,
    estimator TEXT NOT NULL DEFAULT '',      -- what the value is (MetricResult.estimator): a table tag
    stderr REAL,                             -- standard error within the run, where the metric has one
    PRIMARY KEY (run_id, metric)
);
CREATE INDEX IF NOT EXISTS runs_suite ON runs(suite);
CREATE TABLE IF NOT EXISTS per_example (     -- per-example values a metric aggregated (float64 bytes)
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS eval_points (     -- metrics at the suite's eval_at steps (before the final budget)
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    metric TEXT NOT NULL,                    -- entry label
    step INTEGER NOT NULL,                   -- training steps done when the snapshot was saved
    train_time REAL NOT NULL DEFAULT 0,      -- cumulative training seconds at that step
    status TEXT NOT NULL,                    -- ok, n/a, failed
    value REAL,
    stderr REAL,
    estimator TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    settings_hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, metric, step)
);
CREATE TABLE IF NOT EXISTS previews (        -- a few samples per run, for the HTML leaderboard
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
    payload BLOB NOT NULL                    -- benchbed.preview.Preview.to_bytes(), or empty: none
);
"""

FINISHED = ("ok", "failed", "diverged", "n/a")
#: Seconds between the heartbeats of a claim while its cell trains and is evaluated (``CellRunner.run``).
HEARTBEAT_INTERVAL_S = 20.0
#: A claim whose heartbeat is older than this (several missed beats) is stale on every host.
HEARTBEAT_STALE_S = 120.0


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; a zombie (dead, not yet reaped by its parent or by a
    PID 1 that is slow to reap, as in many containers) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # Linux: the state letter after "(command)" in /proc/<pid>/stat
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to claim a cell."""

    acquired: bool
    status: str | None  # the cell's status before the attempt (None: not in the store)
    holder: str = ""  # "host:pid" of a live claim held by someone else


def open_for_reading(path: str | Path) -> Store:
    """The store at ``path`` for a command that only reads it; when the file or its folder cannot be
    written (opening a store writes its schema and log), a private in-memory copy of it
    (:meth:`Store.read_only_copy`) instead of an error.

    Raises:
        StoreError: the file cannot be opened for another reason, or read at all.
    """
    try:
        return Store(path)
    except StoreError as exc:
        unwritable = ("readonly", "read-only", "unable to open", "permission denied")
        if not Path(path).is_file() or not any(word in str(exc).lower() for word in unwritable):
            raise
    return Store.read_only_copy(path)


class Store:
    """A benchbed result store in one SQLite file."""

    def __init__(self, path: str | Path, *, must_exist: bool = False) -> None:
        """Open (``must_exist=False``: create) the store at ``path``.

        Raises:
            StoreError: the file cannot be opened or created, is not a store, or (``must_exist``) is
                missing: a heartbeat must not create an empty store where a removed one was.
        """
        self.path = Path(path)
        try:
            if must_exist and not self.path.is_file():
                raise StoreError(f"result store {self.path} does not exist (any more)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._prepare()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open result store {self.path}: {exc}") from exc
        except OSError as exc:  # e.g. a parent "folder" that is a file
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            why = f"{blocker} is a file, not a folder" if blocker else \
                f"{exc.strerror or exc} ({exc.filename or self.path.parent})"
            raise StoreError(f"cannot create result store {self.path}: {why}") from exc
        self.host = socket.gethostname()
        self.uid = self._uid()
        self._file = self._file_identity()

    @classmethod
    def read_only_copy(cls, path: str | Path) -> Store:
        """A private in-memory copy of the store file at ``path``, for commands that only read it
        (``leaderboard``, ``plan``, ``show``, ``compare``) when the file or its folder cannot be written
        (a read-only checkout, a shared results folder): published runs can be imported into the copy,
        and nothing is ever written back to ``path``.

        Raises:
            StoreError: the file cannot be read as a store.
        """
        store = cls.__new__(cls)
        store.path = Path(path)
        try:
            try:  # read-only; a folder that cannot take the write-ahead log's index needs ``immutable``
                source = sqlite3.connect(f"{store.path.resolve().as_uri()}?mode=ro", uri=True)
                source.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                source = sqlite3.connect(f"{store.path.resolve().as_uri()}?immutable=1", uri=True)
            store._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            source.backup(store._db)
            source.close()
            store._db.row_factory = sqlite3.Row
            store._prepare()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read result store {store.path}: {exc}") from exc
        store.host = socket.gethostname()
        store.uid = store._uid()
        store._file = store._file_identity()
        return store

    def _prepare(self) -> None:
        """Foreign keys on; the schema created, or an older one migrated (raises on a newer one)."""
        self._db.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as db:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) not in range(1, SCHEMA_VERSION + 1):
                raise StoreError(f"store {self.path}: schema version {row[0]}, "
                                 f"this benchbed reads {SCHEMA_VERSION}")
            elif int(row[0]) < SCHEMA_VERSION:
                if int(row[0]) == 1:  # version 2 added the metric tag and standard error columns
                    db.execute("ALTER TABLE metrics ADD COLUMN estimator TEXT NOT NULL DEFAULT ''")
                    db.execute("ALTER TABLE metrics ADD COLUMN stderr REAL")
                # version 3 added the eval_points table, created with the others above
                db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def _file_identity(self) -> tuple[int, int] | None:
        """``(device, inode)`` of the file at :attr:`path` now (``None``: no file there)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check_file(self) -> None:
        """Raise :class:`StoreError` when the file at :attr:`path` is no longer the one this store has open
        (removed, or replaced by another file), after copying everything the open connection still holds
        to ``<path>.recovered-<host>-<pid>`` beside it: an open SQLite connection keeps writing to a
        removed file, so without this check a run would report its cells ok and lose them at exit."""
        if self._file_identity() == self._file:
            return
        target = self.path.with_name(f"{self.path.name}.recovered-{self.host}-{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(target) as copy:
                self._db.backup(copy)
            copy.close()
            saved = f"everything this process held is saved to {target}: move it to {self.path} (or pass it " \
                    "as --store) and run again to continue"
        except (OSError, sqlite3.Error) as exc:
            saved = f"and its copy to {target} failed ({exc}): the results of this run are lost"
        raise StoreError(f"the result store {self.path} was removed or replaced while this run used it; {saved}")

    def _uid(self) -> str:
        """This store's identity (made once, kept in ``meta``): its checkpoints live under it, so a new
        store beside an old one never adopts the old one's checkpoints."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
            if row is not None:
                return str(row[0])
            uid = uuid.uuid4().hex[:12]
            db.execute("INSERT INTO meta VALUES ('store_id', ?)", (uid,))
            return uid

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error): one writer at a time."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to result store {self.path}: {exc}") from exc
        try:
            yield self._db
        except sqlite3.OperationalError as exc:
            self._db.execute("ROLLBACK")
            if "readonly" in str(exc):  # read-only file or folder: say where, not a traceback
                raise StoreError(f"cannot write to result store {self.path}: {exc}") from exc
            raise
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- claims ---------------------------------------------------------------------------------

    def _stale(self, row: sqlite3.Row, stale_after: float | None = None) -> bool:
        """Whether a ``running`` row's holder may be presumed gone (or, with ``stale_after``, overruled)."""
        age = time.time() - float(row["heartbeat"])
        if stale_after is not None and age > stale_after:
            return True
        if row["host"] == self.host and not _pid_alive(int(row["pid"])):
            return True  # on this host a dead pid is known at once
        return age > HEARTBEAT_STALE_S

    def _ours(self, row: sqlite3.Row) -> bool:
        return row["host"] == self.host and int(row["pid"]) == os.getpid()

    def claim(self, run_id: str, identity: Mapping[str, Any], retry_failed: bool = False,
              stale_after: float | None = None) -> Claim:
        """Atomically mark a cell ``running`` for this process, unless it is finished or held.

        ``identity`` holds the columns suite, model, model_component, sampler, dataset, seed, config.
        A finished cell is never claimed (``failed``/``diverged`` ones are with ``retry_failed``).

        A ``running`` cell is held by its claim until the claim is stale: its heartbeat is older than
        :data:`HEARTBEAT_STALE_S` (its holder beats every :data:`HEARTBEAT_INTERVAL_S` while it works),
        on whatever host it was made, or it was made on this host by a process that no longer exists.
        ``stale_after`` (seconds; ``benchbed run --steal-stale``) also takes over claims whose heartbeat is
        older than that, whichever host and pid they name.  Heartbeats are wall-clock times written by the
        holder's host and read on this one, so hosts sharing a store must have clocks in sync to well
        within :data:`HEARTBEAT_STALE_S` (NTP); a holder that is suspended (or whose clock lags) that
        long loses its claim and the cell may then be trained twice, never lost.

        Raises:
            StoreError: the store's file was removed or replaced (:meth:`check_file`).
        """
        self.check_file()
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT status, host, pid, heartbeat FROM runs WHERE run_id=?", (run_id,)).fetchone()
            status = None if row is None else row["status"]
            if row is not None:
                retry = retry_failed and status in ("failed", "diverged")
                if status in FINISHED and not retry:
                    return Claim(False, status)
                if status == "running" and not self._ours(row) and not self._stale(row, stale_after):
                    return Claim(False, status, f"{row['host']}:{row['pid']}")
            cols = {**identity, "status": "running", "error": "", "host": self.host, "pid": os.getpid(),
                    "heartbeat": now, "started_at": now, "config": json.dumps(identity["config"], sort_keys=True)}
            if row is None:
                names = ", ".join(["run_id", *cols])
                db.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * (len(cols) + 1))})",
                           (run_id, *cols.values()))
            else:
                sets = ", ".join(f"{k}=?" for k in cols)
                db.execute(f"UPDATE runs SET {sets} WHERE run_id=?", (*cols.values(), run_id))
            return Claim(True, status)

    def heartbeat(self, run_id: str) -> bool:
        """Refresh this process's claim on ``run_id``; ``False`` if it holds none (finished, or taken over).

        Uses this store's connection: a thread that beats beside the main thread opens a ``Store`` of
        its own (as ``CellRunner.run`` does), since one connection's transactions must not interleave.
        """
        with self.transaction() as db:
            cur = db.execute("UPDATE runs SET heartbeat=? WHERE run_id=? AND status='running' AND host=? AND pid=?",
                             (time.time(), run_id, self.host, os.getpid()))
            return cur.rowcount > 0

    def count_training(self, run_id: str) -> None:
        """Record that training of this cell (re)started: the resume guarantee is audited with it."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET train_count=train_count+1 WHERE run_id=?", (run_id,))

    def release(self, run_id: str) -> None:
        """Drop this process's claim on an unfinished cell (Ctrl-C): the cell stays to be resumed, with
        the metric records it stored (computed on its final model: a resumed attempt that trains again
        drops them, :meth:`drop_metrics`)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET status='interrupted', pid=0 WHERE run_id=? AND status='running' AND pid=?",
                       (run_id, os.getpid()))

    def foreign_claims(self, run_ids: list[str], stale_after: float | None = None) -> list[str]:
        """Of ``run_ids``, those held by another process whose claim is not stale (see :meth:`claim`)."""
        held = []
        for run_id in run_ids:
            row = self._db.execute("SELECT status, host, pid, heartbeat FROM runs WHERE run_id=?",
                                   (run_id,)).fetchone()
            if row is None or row["status"] != "running" or self._ours(row):
                continue
            if not self._stale(row, stale_after):
                held.append(run_id)
        return held

    # -- results --------------------------------------------------------------------------------

    def finish(self, run_id: str, *, status: str, error: str = "", fields: Mapping[str, Any] | None = None,
               metrics: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write a cell's outcome and its metric rows in one transaction.

        Raises:
            StoreError: the store's file was removed or replaced meanwhile (:meth:`check_file`: what the
                open connection holds, this cell included, is copied beside it first).
        """
        cols = {"status": status, "error": error, "finished_at": time.time(), **(fields or {})}
        for key in ("provenance", "curves"):
            if key in cols and not isinstance(cols[key], str):
                cols[key] = json.dumps(cols[key], sort_keys=True, default=str)
        with self.transaction() as db:
            sets = ", ".join(f"{k}=?" for k in cols)
            db.execute(f"UPDATE runs SET {sets} WHERE run_id=?", (*cols.values(), run_id))
            for m in metrics:
                self._put_metric(db, run_id, m)
        self.check_file()

    def drop_metrics(self, run_id: str) -> None:
        """Delete a run's final metric records (and their per-example values)."""
        with self.transaction() as db:
            db.execute("DELETE FROM metrics WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM per_example WHERE run_id=?", (run_id,))

    def put_metrics(self, run_id: str, metrics: Sequence[Mapping[str, Any]]) -> None:
        with self.transaction() as db:
            for m in metrics:
                self._put_metric(db, run_id, m)

    @staticmethod
    def _put_metric(db: sqlite3.Connection, run_id: str, m: Mapping[str, Any]) -> None:
        """One metric record; ``m["per_example"]`` (a float sequence), when given, goes to its own table."""
        db.execute(
            "INSERT OR REPLACE INTO metrics (run_id, metric, component, status, value, reason, settings, details,"
            " settings_hash, wall_time, estimator, stderr) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, m["metric"], m["component"], m["status"], m.get("value"), m.get("reason", ""),
             json.dumps(m.get("settings", {}), sort_keys=True, default=str),
             json.dumps(m.get("details", {}), sort_keys=True, default=str),
             m.get("settings_hash", ""), float(m.get("wall_time", 0.0)), m.get("estimator", ""), m.get("stderr")),
        )
        db.execute("DELETE FROM per_example WHERE run_id=? AND metric=?", (run_id, m["metric"]))
        if m.get("per_example") is not None:
            payload = np.asarray(m["per_example"], dtype="<f8").tobytes()
            db.execute("INSERT INTO per_example (run_id, metric, payload) VALUES (?, ?, ?)",
                       (run_id, m["metric"], payload))

    #: The columns of an :meth:`eval_points` record.
    EVAL_COLUMNS = ("metric", "step", "train_time", "status", "value", "stderr", "estimator", "reason",
                    "settings_hash")

    def put_eval_points(self, run_id: str, points: Sequence[Mapping[str, Any]]) -> None:
        """Store (or replace) metric records at intermediate steps in one transaction; each point holds the
        keys of :data:`EVAL_COLUMNS` (``value``, ``stderr``, ``estimator``, ``reason`` may be left out)."""
        with self.transaction() as db:
            self._put_eval_points(db, run_id, points)

    @classmethod
    def _put_eval_points(cls, db: sqlite3.Connection, run_id: str, points: Sequence[Mapping[str, Any]]) -> None:
        for p in points:
            db.execute(f"INSERT OR REPLACE INTO eval_points (run_id, {', '.join(cls.EVAL_COLUMNS)}) "
                       f"VALUES (?{', ?' * len(cls.EVAL_COLUMNS)})",
                       (run_id, p["metric"], int(p["step"]), float(p["train_time"]), p["status"], p.get("value"),
                        p.get("stderr"), p.get("estimator", ""), p.get("reason", ""), p.get("settings_hash", "")))

    def eval_points(self, run_id: str) -> list[dict[str, Any]]:
        """A run's metric records at intermediate steps (:data:`EVAL_COLUMNS`), by metric label then step;
        the final evaluation is not among them (it is the run's metric record)."""
        rows = self._db.execute(f"SELECT {', '.join(self.EVAL_COLUMNS)} FROM eval_points WHERE run_id=? "
                                "ORDER BY metric, step", (run_id,))
        return [dict(r) for r in rows]

    def eval_point_hashes(self, run_id: str) -> dict[tuple[str, int], str]:
        """``(metric label, step) -> settings hash`` of the intermediate records stored for a run."""
        rows = self._db.execute("SELECT metric, step, settings_hash FROM eval_points WHERE run_id=?", (run_id,))
        return {(r[0], int(r[1])): r[2] for r in rows}

    def put_reference(self, run_id: str, identity: Mapping[str, Any], metric: Mapping[str, Any]) -> None:
        """Store a model-free reference row (``kind='reference'``) and its one metric value."""
        now = time.time()
        cols = {**identity, "kind": "reference", "status": "ok", "host": self.host,
                "config": json.dumps(identity["config"], sort_keys=True), "started_at": now, "finished_at": now}
        marks = ", ".join("?" * (len(cols) + 1))
        with self.transaction() as db:
            db.execute(f"INSERT OR IGNORE INTO runs (run_id, {', '.join(cols)}) VALUES ({marks})",
                       (run_id, *cols.values()))
            self._put_metric(db, run_id, metric)

    def put_preview(self, run_id: str, payload: bytes) -> None:
        """Store (or replace) a run's sample preview (bytes of :class:`benchbed.preview.Preview`)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO previews (run_id, payload) VALUES (?, ?)", (run_id, payload))

    # -- reading --------------------------------------------------------------------------------

    def preview(self, run_id: str) -> bytes | None:
        """A run's stored sample preview; ``b""`` if it has none (cannot sample), ``None`` if not yet drawn."""
        row = self._db.execute("SELECT payload FROM previews WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def per_example(self, run_id: str, metric: str) -> np.ndarray | None:
        """The per-example values [N] (float64) behind a run's metric value, or ``None`` if it stored none.

        Public API for significance tests over examples and for plugin authors: e.g. the test
        log-likelihood of every evaluated example, or every scored example's anomaly score.
        """
        row = self._db.execute("SELECT payload FROM per_example WHERE run_id=? AND metric=?",
                               (run_id, metric)).fetchone()
        return None if row is None else np.frombuffer(bytes(row[0]), dtype="<f8").copy()

    # -- portable records (benchbed.published) ---------------------------------------------------

    #: Run columns a portable record leaves out: claim bookkeeping of the machine that ran it.
    LOCAL = ("host", "pid", "heartbeat")

    def export_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a JSON-able record: its columns (JSON ones decoded), metric records and preview bytes,
        and its intermediate metric records (``eval_points``) when it has any."""
        run = self.run(run_id)
        if run is None:
            return None
        metrics = [{k: v for k, v in m.items() if k != "run_id"} for m in run.pop("metrics")]
        record = {"run": {k: v for k, v in run.items() if k not in self.LOCAL and k != "eval_points"},
                  "metrics": metrics, "preview": self.preview(run["run_id"])}
        if run.get("eval_points"):  # only then: records of runs without them keep their old bytes
            record["eval_points"] = run["eval_points"]
        return record

    @functools.cached_property
    def _portable_columns(self) -> frozenset[str]:
        """The ``runs`` columns a portable record may set (read once: the schema is fixed once opened)."""
        return frozenset(r[1] for r in self._db.execute("PRAGMA table_info(runs)")) - set(self.LOCAL)

    def import_run(self, record: Mapping[str, Any]) -> bool:
        """Insert a portable record unless this store has the run finished; returns whether it did."""
        run = dict(record["run"])
        run_id = run["run_id"]
        with self.transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is not None and row["status"] in FINISHED:
                return False
            if row is not None:  # an unfinished local attempt: the published, finished run replaces it
                db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
            for key in ("config", "provenance", "curves"):
                run[key] = json.dumps(run[key], sort_keys=True, default=str)
            # Column names come from a file: only the store's own columns may reach the SQL text.
            columns = self._portable_columns
            if unknown := sorted(set(run) - columns):
                raise StoreError(f"run {run_id}: unknown field(s) {unknown} (a run has {', '.join(sorted(columns))})")
            names = ", ".join(run)
            db.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(run))})", tuple(run.values()))
            for m in record.get("metrics", []):
                self._put_metric(db, run_id, m)
            self._put_eval_points(db, run_id, record.get("eval_points", []))
            if record.get("preview") is not None:
                db.execute("INSERT OR REPLACE INTO previews (run_id, payload) VALUES (?, ?)",
                           (run_id, bytes(record["preview"])))
        return True

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its metrics, JSON columns decoded; a unique prefix of the id is enough.  A run with
        metric records at intermediate steps also has ``eval_points`` (:meth:`eval_points`)."""
        rows = self._db.execute("SELECT * FROM runs WHERE substr(run_id, 1, length(?)) = ?",
                                (run_id, run_id)).fetchall()
        if len(rows) > 1:
            raise StoreError(f"run id prefix {run_id!r} is ambiguous in {self.path}: {len(rows)} runs start with "
                             "it; give more characters")
        if len(rows) != 1:
            return None
        out = dict(rows[0])
        for key in ("config", "provenance", "curves"):
            out[key] = json.loads(out[key])
        out["metrics"] = [
            {**dict(m), "settings": json.loads(m["settings"]), "details": json.loads(m["details"])}
            for m in self._db.execute("SELECT * FROM metrics WHERE run_id=? ORDER BY metric", (out["run_id"],))
        ]
        if points := self.eval_points(out["run_id"]):  # absent otherwise: published files keep their bytes
            out["eval_points"] = points
        return out

    def status(self, run_id: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else row[0]

    def data_hash(self, run_id: str) -> str:
        """The content hash of the data a run trained on ('' when unknown or not stored)."""
        row = self._db.execute("SELECT data_hash FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return "" if row is None else str(row[0])

    def failed_metrics(self, run_id: str) -> dict[str, str]:
        """``metric label -> reason`` of a run's final-evaluation records that failed."""
        rows = self._db.execute("SELECT metric, reason FROM metrics WHERE run_id=? AND status='failed' ORDER BY metric",
                                (run_id,))
        return {r[0]: r[1] for r in rows}

    def metric_hashes(self, run_id: str) -> dict[str, str]:
        """``metric label -> settings hash`` of the metrics stored for a run."""
        rows = self._db.execute("SELECT metric, settings_hash FROM metrics WHERE run_id=?", (run_id,))
        return {r[0]: r[1] for r in rows}

    def frame(self, suite: str | None = None) -> list[dict[str, Any]]:
        """All (run, metric) rows as dicts, for the leaderboard (runs without metrics appear once)."""
        query = (
            "SELECT r.run_id, r.kind, r.suite, r.model, r.model_component, r.sampler, r.dataset, r.seed,"
            " r.status AS run_status, r.error, r.config, r.train_steps, r.wall_time, r.train_time, r.n_params,"
            " m.metric, m.component AS metric_component, m.status AS metric_status, m.value, m.reason, m.settings,"
            " m.estimator, m.stderr"
            " FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id"
        )
        args: tuple[Any, ...] = ()
        if suite is not None:
            query += " WHERE r.suite = ?"
            args = (suite,)
        return [dict(r) for r in self._db.execute(query + " ORDER BY r.started_at", args)]
