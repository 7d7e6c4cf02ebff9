"""Pool workers die with their parent: a SIGKILLed ``benchbed run --jobs 2`` leaves no worker behind.

Linux only (children are found through ``/proc``); the mechanisms are ``PR_SET_PDEATHSIG`` and a thread
watching ``os.getppid()`` (``benchbed.execute._die_with_parent``), each tested on its own too.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchbed.store import Store

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds processes through /proc")

SUITE = """
name = "orphans"
seeds = [0, 1, 2, 3]
checkpoint_every = 100
[budget]
steps = 3000
batch_size = 64
[datasets.gmm8]
n_train = 512
[models.vae]
[metrics.recon_mse]
"""

EXIT_WITHIN_S = 10.0


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "BENCHBED_STRICT_PLUGINS": "1"}


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids |= {int(k) for k in task.read_text().split()}
        except OSError:
            pass
    return kids


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps yet, e.g. under a PID 1 that does not reap, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_gone(pids: set[int], limit: float) -> float:
    """Seconds until none of ``pids`` runs; fails (killing the survivors) after ``limit``."""
    t0 = time.monotonic()
    while any(_alive(p) for p in pids):
        if time.monotonic() - t0 > limit:
            survivors = {p: _cmdline(p) for p in pids if _alive(p)}
            for p in survivors:
                os.kill(p, signal.SIGKILL)
            pytest.fail(f"still running {limit:.0f} s after their parent was killed: {survivors}")
        time.sleep(0.05)
    return time.monotonic() - t0


def _start_pool_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, list[tuple[str, int]]]:
    """``benchbed run --jobs 2`` of :data:`SUITE`, returned once both workers hold a cell."""
    suite, store = tmp_path / "suite.toml", tmp_path / "store.sqlite"
    suite.write_text(SUITE)
    cmd = [sys.executable, "-m", "benchbed", "run", str(suite), "--jobs", "2", "--store", str(store), "--no-tables",
           "--no-bars"]
    parent = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180  # generous: on a loaded 2-core machine spawning two workers is slow
    claimed: list[tuple[str, int]] = []
    while time.monotonic() < deadline and parent.poll() is None:  # both workers initialised and training
        try:
            with sqlite3.connect(store) as db:
                claimed = db.execute("SELECT run_id, pid FROM runs WHERE status='running'").fetchall()
        except sqlite3.Error:
            claimed = []
        if len(claimed) >= 2:
            break
        time.sleep(0.1)
    if parent.poll() is not None or len(claimed) < 2:
        parent.kill()
        parent.wait()
        pytest.fail("the workers never claimed two cells")
    return parent, store, claimed


def test_pool_workers_exit_when_their_parent_is_sigkilled(tmp_path: Path) -> None:
    parent, store, claimed = _start_pool_run(tmp_path)
    workers: set[int] = set()
    try:
        children = _children(parent.pid)
        workers = {p for p in children if "spawn_main" in _cmdline(p)}
        assert {pid for _, pid in claimed} <= workers and len(workers) == 2, (claimed, children)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        seconds = _wait_gone(children, EXIT_WITHIN_S)  # the workers and multiprocessing's resource tracker
        print(f"workers gone {seconds:.2f} s after the parent's SIGKILL")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    # The workers' cells keep their claims, which are stale at once here (dead pids): the next run resumes them.
    s = Store(store)
    try:
        assert s.foreign_claims([run_id for run_id, _ in claimed]) == []
    finally:
        s.close()


def test_an_interrupted_pool_run_stops_at_once_and_resumes(tmp_path: Path) -> None:
    """SIGTERM (what Ctrl-C does too) ends ``run --jobs 2`` within seconds, not after the running cells:
    exit code 130, no worker left, and every held cell resumable by the next run."""
    parent, store, claimed = _start_pool_run(tmp_path)
    children = {p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)}
    try:
        t0 = time.monotonic()
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=EXIT_WITHIN_S) == 130
        seconds = time.monotonic() - t0
        _wait_gone(children, EXIT_WITHIN_S)
        print(f"run ended {seconds:.2f} s after SIGTERM")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    s = Store(store)
    try:
        assert s.foreign_claims([run_id for run_id, _ in claimed]) == []  # nothing blocks the next run
        assert all(s.status(run_id) != "ok" for run_id, _ in claimed)  # they had 3000 steps to go
    finally:
        s.close()


# One mechanism at a time: a grandchild calls _die_with_parent() for its parent, which the test then kills.
_GRANDCHILD = textwrap.dedent("""
    import os, sys, time
    import benchbed.execute as ex
    if sys.argv[1] == "prctl":
        ex.PARENT_POLL_S = 3600.0  # the watching thread would never notice in time
    else:
        ex.sys.platform = "elsewhere"  # no prctl: only the watching thread
    ex._die_with_parent(os.getppid())
    print("ready", flush=True)
    time.sleep(60)
""")
_MIDDLE = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
    print(child.pid, flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("mechanism", ["prctl", "getppid"])
def test_die_with_parent_each_mechanism_alone(mechanism: str) -> None:
    if mechanism == "prctl" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    middle = subprocess.Popen([sys.executable, "-c", _MIDDLE, _GRANDCHILD, mechanism], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    grandchild = 0
    try:
        grandchild = int(middle.stdout.readline())
        assert middle.stdout.readline().strip() == "ready"
        middle.send_signal(signal.SIGKILL)
        middle.wait()
        _wait_gone({grandchild}, 5.0)
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
        if grandchild and _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)
