"""Claims and their staleness: heartbeat age on every host, explicit takeover (--steal-stale), the
heartbeat thread that keeps a working cell's claim fresh."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

import benchbed.store
from benchbed import cli
from benchbed.grid import plan
from benchbed.store import HEARTBEAT_STALE_S, Store
from benchbed.suite import load_suite

OLD = HEARTBEAT_STALE_S + 10  # seconds: a heartbeat this old is stale


# -- the store ------------------------------------------------------------------------------------------


def test_a_live_unrelated_pid_with_an_old_heartbeat_is_taken_over_at_once(store: Store, helpers) -> None:
    """A dead run whose pid now belongs to another live process must not make the rerun wait forever."""
    store.claim("aaa", helpers.identity())
    unrelated = subprocess.Popen(["sleep", "30"])
    try:
        helpers.set_columns(store, "aaa", pid=unrelated.pid, heartbeat=time.time())  # fresh: held
        claim = store.claim("aaa", helpers.identity())
        assert (claim.acquired, claim.holder) == (False, f"{socket.gethostname()}:{unrelated.pid}")
        assert store.foreign_claims(["aaa"]) == ["aaa"]
        helpers.set_columns(store, "aaa", heartbeat=time.time() - OLD)  # its heartbeat stopped: the pid proves nothing
        assert store.foreign_claims(["aaa"]) == []
        claim = store.claim("aaa", helpers.identity())
        assert (claim.acquired, claim.status) == (True, "running")
        assert store.run("aaa")["pid"] == os.getpid()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_the_parent_pid_as_holder_is_held_while_fresh_and_stale_when_old(store: Store, helpers) -> None:
    store.claim("bbb", helpers.identity())
    helpers.set_columns(store, "bbb", pid=os.getppid(), heartbeat=time.time() - HEARTBEAT_STALE_S / 2)
    assert not store.claim("bbb", helpers.identity()).acquired
    helpers.set_columns(store, "bbb", heartbeat=time.time() - OLD)
    assert store.claim("bbb", helpers.identity()).acquired


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="zombies are seen through /proc")
def test_a_zombie_holder_on_this_host_is_dead_at_once(store: Store, helpers) -> None:
    """A killed holder not yet reaped (its parent, or a container's PID 1, has not waited for it)."""
    store.claim("zzz", helpers.identity())
    zombie = subprocess.Popen(["sleep", "30"])
    try:
        zombie.kill()
        deadline = time.time() + 5
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.01)
        helpers.set_columns(store, "zzz", pid=zombie.pid, heartbeat=time.time())
        assert store.foreign_claims(["zzz"]) == []
        assert store.claim("zzz", helpers.identity()).acquired
    finally:
        zombie.wait()


def test_a_claim_from_another_host_is_held_while_fresh_and_taken_over_when_old(store: Store, helpers) -> None:
    store.claim("ccc", helpers.identity())
    # our pid on another host is not us
    helpers.set_columns(store, "ccc", host="elsewhere", pid=os.getpid(), heartbeat=time.time())
    assert store.claim("ccc", helpers.identity()).holder == f"elsewhere:{os.getpid()}"
    assert store.foreign_claims(["ccc"]) == ["ccc"]
    assert store.claim("ccc", helpers.identity(), stale_after=3600).holder == f"elsewhere:{os.getpid()}"
    helpers.set_columns(store, "ccc", heartbeat=time.time() - OLD)  # a restarted container: minutes, not hours
    assert store.foreign_claims(["ccc"]) == []
    claim = store.claim("ccc", helpers.identity())
    assert (claim.acquired, store.run("ccc")["host"]) == (True, socket.gethostname())


def test_steal_stale_takes_over_a_fresh_claim_of_any_holder_only_when_asked(store: Store, helpers) -> None:
    live = subprocess.Popen(["sleep", "30"])
    try:
        for run_id, host, pid in (("ddd", "elsewhere", 12345), ("eee", socket.gethostname(), live.pid)):
            store.claim(run_id, helpers.identity())
            helpers.set_columns(store, run_id, host=host, pid=pid, heartbeat=time.time() - 5)
            assert store.foreign_claims([run_id]) == [run_id]
            assert store.foreign_claims([run_id], stale_after=60) == [run_id]
            assert not store.claim(run_id, helpers.identity(), stale_after=60).acquired
            assert store.foreign_claims([run_id], stale_after=1) == []
            claim = store.claim(run_id, helpers.identity(), stale_after=0)
            assert (claim.acquired, claim.status) == (True, "running")
            assert (store.run(run_id)["host"], store.run(run_id)["pid"]) == (socket.gethostname(), os.getpid())
    finally:
        live.kill()
        live.wait()


def test_heartbeat_refreshes_only_a_claim_this_process_holds(store: Store, helpers) -> None:
    store.claim("fff", helpers.identity())
    helpers.set_columns(store, "fff", heartbeat=1.0)
    assert store.heartbeat("fff") and store.run("fff")["heartbeat"] > 1.0
    helpers.set_columns(store, "fff", host="elsewhere", heartbeat=1.0)  # taken over by a process with our pid elsewhere
    assert not store.heartbeat("fff") and store.run("fff")["heartbeat"] == 1.0
    helpers.set_columns(store, "fff", host=socket.gethostname(), status="ok")
    assert not store.heartbeat("fff")
    assert not store.heartbeat("unknown")


# -- the heartbeat thread of CellRunner.run --------------------------------------------------------------


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("benchbed-heartbeat")]


def test_the_heartbeat_advances_while_a_cell_trains(make_suite, runner, helpers, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchbed.store, "HEARTBEAT_INTERVAL_S", 0.05)
    path = tmp_path / "store" / "results.sqlite"
    seen: list[tuple[float, float]] = []  # (started_at, heartbeat) read from another connection during training
    plain = helpers.LinearAE.train_step

    def slow_step(self, batch, step):
        time.sleep(0.03)
        with sqlite3.connect(path) as db:
            seen.extend(db.execute("SELECT started_at, heartbeat FROM runs WHERE status='running'").fetchall())
        return plain(self, batch, step)

    monkeypatch.setattr(helpers.LinearAE, "train_step", slow_step)
    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n")  # checkpoint_every = 0: no beat at checkpoints
    summary, store = runner(suite)
    assert [o.status for o in summary.outcomes] == ["ok"]
    assert len(seen) == 24  # one read per training step (HEADER: steps = 24)
    started = seen[0][0]
    beats = sorted({hb for _, hb in seen})
    assert len(beats) >= 4, beats  # ~0.7 s of training, a beat every 0.05 s
    assert beats[-1] - started > 0.3
    assert not _heartbeat_threads(), "the heartbeat thread is stopped when the cell is done"


def test_a_failing_heartbeat_never_fails_the_cell(make_suite, runner, helpers, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(benchbed.store, "HEARTBEAT_INTERVAL_S", 0.02)
    plain = helpers.LinearAE.train_step

    def slow_step(self, batch, step):
        time.sleep(0.01)
        return plain(self, batch, step)

    def broken(self, run_id):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(helpers.LinearAE, "train_step", slow_step)
    monkeypatch.setattr(Store, "heartbeat", broken)
    summary, _ = runner(make_suite("[models.linear]\n[metrics.fake_mse]\n"))
    assert [o.status for o in summary.outcomes] == ["ok"]
    err = capsys.readouterr().err
    assert err.count("heartbeat of cell") == 1 and "database is locked" in err  # said once, retried quietly
    assert not _heartbeat_threads()


# -- benchbed run --steal-stale, end to end --------------------------------------------------------------


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: helpers.fake_plugin_set())


def _claimed_elsewhere(tmp_path: Path, helpers, name: str) -> tuple[Path, Path, str]:
    """A one-cell suite whose cell another host claimed a few seconds ago (a fresh, live-looking claim)."""
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    registry = helpers.fake_plugin_set().registry
    (cell,), _ = plan(load_suite(suite, registry), registry)
    path = tmp_path / name
    store = Store(path)
    store.claim(cell.run_id, cell.identity())
    helpers.set_columns(store, cell.run_id, host="elsewhere", pid=4242, heartbeat=time.time() - 3)
    store.close()
    return suite, path, cell.run_id


def test_cli_steal_stale_takes_over_a_fresh_foreign_claim(fake_cli, tmp_path: Path, helpers,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    suite, path, run_id = _claimed_elsewhere(tmp_path, helpers, "steal.sqlite")
    args = ["run", str(suite), "--store", str(path), "--no-tables", "--no-bars"]
    assert cli.main([*args, "--steal-stale", "0"]) == 0
    out, err = capsys.readouterr()
    assert "1 cells (1 ok)" in out and "waiting" not in err
    run = Store(path).run(run_id)
    assert (run["status"], run["host"], run["pid"], run["train_count"]) == ("ok", socket.gethostname(),
                                                                            os.getpid(), 1)


def test_cli_without_steal_stale_waits_for_a_fresh_foreign_claim(fake_cli, tmp_path: Path, helpers,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Held (the run waits) until the holder's heartbeat is older than the limit; then the cell runs here.
    ``HEARTBEAT_STALE_S`` is shortened so the wait is seconds; ``--steal-stale 3600`` changes nothing."""
    suite, path, run_id = _claimed_elsewhere(tmp_path, helpers, "wait.sqlite")
    monkeypatch.setattr(benchbed.store, "HEARTBEAT_STALE_S", 4.0)
    args = ["run", str(suite), "--store", str(path), "--no-tables", "--no-bars", "--steal-stale", "3600"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert "held" in err and "running in elsewhere:4242" in err
    assert "waiting for 1 cell(s) running in other processes" in err and "after its holder died" in err
    assert Store(path).run(run_id)["host"] == socket.gethostname()


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_steal_stale_must_be_non_negative_seconds(fake_cli, tmp_path: Path, value: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(tmp_path / "suite.toml"), "--steal-stale", value])
    assert exc.value.code == 2 and "--steal-stale" in capsys.readouterr().err
