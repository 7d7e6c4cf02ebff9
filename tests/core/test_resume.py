"""Crash safety through the real CLI: SIGKILL mid-grid then resume; two processes on one store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SUITE = """
name = "crash"
seeds = [0, 1, 2, 3]
checkpoint_every = 50
[budget]
steps = 300
batch_size = 64
[datasets.gmm8]
n_train = 512
[models.vae]
[metrics.recon_mse]
"""


def _benchbed(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchbed", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "BENCHBED_STRICT_PLUGINS": "1"}


def _rows(store: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT run_id, status, train_count FROM runs WHERE kind='model'").fetchall()


def _write_suite(tmp_path: Path) -> tuple[Path, Path]:
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    return suite, tmp_path / "store.sqlite"


def test_sigkill_mid_grid_then_resume_trains_no_finished_cell_twice(tmp_path: Path) -> None:
    suite, store = _write_suite(tmp_path)
    proc = subprocess.Popen(_benchbed("run", str(suite), "--store", str(store), "--no-tables"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    finished_before: set[str] = set()
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                finished_before = {r for r, s, _ in _rows(store) if s == "ok"}
            except sqlite3.OperationalError:
                finished_before = set()
            if len(finished_before) >= 1:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed; make the suite longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {r for r, s, _ in _rows(store) if s == "ok"}
    assert 1 <= len(finished_before) < 4

    out = subprocess.run(_benchbed("run", str(suite), "--store", str(store), "--out", str(tmp_path)), env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = _rows(store)
    assert len(rows) == 4 and all(s == "ok" for _, s, _ in rows)
    for run_id, _, count in rows:
        if run_id in finished_before:
            assert count == 1, f"finished cell {run_id} was trained again"
    assert f"{len(finished_before)} skipped" in out.stdout
    table = (tmp_path / "README.md").read_text()
    assert "| vae |" in table and "4/4" in table


@pytest.mark.slow
def test_two_processes_on_one_store_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    suite, store = _write_suite(tmp_path)
    cmd = _benchbed("run", str(suite), "--store", str(store), "--no-tables")
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    rows = _rows(store)
    assert len(rows) == 4 and all(s == "ok" for _, s, _ in rows)
    assert all(count == 1 for _, _, count in rows), rows
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM metrics WHERE status='ok'").fetchone()[0] == 4
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
