"""The SQLite result store: claims, lookups, provenance, schema checks."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas
import pytest
import sklearn
import torch

import benchbed
from benchbed.errors import StoreError
from benchbed.published import scrub
from benchbed.store import HEARTBEAT_STALE_S, Store


def test_new_cell_is_claimed_and_finished_cell_is_not(store: Store, helpers) -> None:
    first = store.claim("aaa", helpers.identity())
    assert (first.acquired, first.status, first.holder) == (True, None, "")
    assert store.status("aaa") == "running"
    assert store.claim("aaa", helpers.identity()).acquired  # our own claim is ours to take again
    store.finish("aaa", status="ok", fields={"train_steps": 5},
                 metrics=[{"metric": "x", "component": "x", "status": "ok", "value": 1.5}])
    again = store.claim("aaa", helpers.identity())
    assert (again.acquired, again.status, again.holder) == (False, "ok", "")
    store.finish("aaa", status="failed", error="boom")
    assert not store.claim("aaa", helpers.identity()).acquired
    assert store.claim("aaa", helpers.identity(), retry_failed=True).acquired


def test_claim_of_a_dead_process_is_stale_and_taken_over(store: Store, helpers) -> None:
    store.claim("bbb", helpers.identity())
    dead = subprocess.Popen(["true"])
    dead.wait()
    helpers.set_columns(store, "bbb", pid=dead.pid)
    assert store.foreign_claims(["bbb"]) == []
    claim = store.claim("bbb", helpers.identity())
    assert (claim.acquired, claim.status) == (True, "running")
    assert store.run("bbb")["pid"] == os.getpid()


def test_claim_of_a_live_foreign_process_is_held(store: Store, helpers) -> None:
    store.claim("ccc", helpers.identity())
    live = subprocess.Popen(["sleep", "30"])
    try:
        helpers.set_columns(store, "ccc", pid=live.pid)
        claim = store.claim("ccc", helpers.identity())
        assert (claim.acquired, claim.status, claim.holder) == (False, "running", f"{socket.gethostname()}:{live.pid}")
        assert store.foreign_claims(["ccc", "unknown"]) == ["ccc"]
    finally:
        live.kill()
        live.wait()
    assert store.claim("ccc", helpers.identity()).acquired


def test_claim_from_another_host_is_stale_only_after_the_heartbeat_timeout(store: Store, helpers) -> None:
    store.claim("ddd", helpers.identity())
    helpers.set_columns(store, "ddd", host="elsewhere", pid=12345, heartbeat=time.time())
    assert store.claim("ddd", helpers.identity()).holder == "elsewhere:12345"
    helpers.set_columns(store, "ddd", heartbeat=time.time() - HEARTBEAT_STALE_S - 10)
    assert store.claim("ddd", helpers.identity()).acquired


def test_release_leaves_an_interrupted_cell_to_resume_with_its_stored_metrics(store: Store, helpers) -> None:
    store.claim("eee", helpers.identity())
    store.put_metrics("eee", [{"metric": "x", "component": "x", "status": "ok", "value": 2.0}])
    store.release("eee")
    run = store.run("eee")
    assert (run["status"], run["pid"], [m["value"] for m in run["metrics"]]) == ("interrupted", 0, [2.0])
    assert store.claim("eee", helpers.identity()).acquired
    store.drop_metrics("eee")
    assert store.run("eee")["metrics"] == []


def test_run_lookup_by_unique_prefix(store: Store, helpers) -> None:
    for run_id in ("abc123", "abd456"):
        store.claim(run_id, helpers.identity())
    assert store.run("abc")["run_id"] == "abc123"
    assert store.run("abd456")["run_id"] == "abd456"
    with pytest.raises(StoreError, match="run id prefix 'ab' is ambiguous .*: 2 runs start with it"):
        store.run("ab")
    assert store.run("zzz") is None
    assert store.run("a_c") is None, "'_' is a LIKE wildcard: a prefix must match literally"


def test_json_columns_round_trip(store: Store, helpers) -> None:
    store.claim("fff", helpers.identity())
    store.finish("fff", status="ok", fields={"provenance": {"torch": "x"}, "curves": [{"step": 0.0, "loss": 1.0}]},
                 metrics=[{"metric": "m", "component": "c", "status": "ok", "value": 0.25,
                           "settings": {"k": 3, "t": (1, 2)}, "details": {"per_class": {"0": 0.5}}}])
    run = store.run("fff")
    assert run["config"] == {"seed": 0} and run["provenance"] == {"torch": "x"}
    assert run["curves"] == [{"step": 0.0, "loss": 1.0}]
    (m,) = run["metrics"]
    assert (m["value"], m["settings"], m["details"]) == (0.25, {"k": 3, "t": [1, 2]}, {"per_class": {"0": 0.5}})
    assert store.metric_hashes("fff") == {"m": ""}


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    """Stores written before metric records had tags and standard errors open and gain both columns."""
    path = tmp_path / "v1.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE metrics DROP COLUMN estimator")
        db.execute("ALTER TABLE metrics DROP COLUMN stderr")
        db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    Store(path).close()
    with sqlite3.connect(path) as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(metrics)")}
        (version,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert {"estimator", "stderr"} <= columns and version == "3"


def test_schema_version_mismatch_and_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match=f"store {path}: schema version 99, this benchbed reads 3"):
        Store(path)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=f"cannot open result store {garbage}"):
        Store(garbage)


def test_provenance_of_a_finished_run(make_suite, runner, helpers, fake_registry) -> None:
    suite = make_suite("[models.linear]\n[models.dyn]\n[metrics.fake_mse]\n[metrics.fake_na]\n")
    _, store = runner(suite)
    lin, dyn = helpers.model_runs(store)
    p = lin["provenance"]
    assert p["benchbed"] == benchbed.__version__
    assert p["git_commit"] and p["git_commit"] != "unknown"
    assert p["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert p["pandas"] == pandas.__version__ and p["scikit-learn"] == sklearn.__version__
    assert p["python"] and p["numpy"] and p["pluggy"]
    assert p["device"].startswith("cpu (")
    fake = {"plugin": "fake", "distribution": "(in-process)", "version": "0"}
    assert p["components"]["model"] == {"name": "linear", **fake}
    assert p["components"]["dataset"] == {"name": "toy", **fake}
    assert p["components"]["metrics"] == [{"name": "fake_mse", **fake}, {"name": "fake_na", **fake}]
    assert "sampler" not in p["components"] and dyn["provenance"]["components"]["sampler"]["name"] == "walk"
    bundle = fake_registry.dataset("toy").factory().load(seed=0)
    assert p["data_hashes"] == {s: getattr(bundle, s).content_hash() for s in ("train", "val", "test")}
    assert lin["data_hash"] == bundle.content_hash()
    assert p["suite_file"] == scrub(str(suite.path)) and not p["suite_file"].startswith("/")
    assert lin["train_steps"] == 24 and lin["n_params"] == 2 * 1 + 1 + 1 * 2 + 2
    assert 0 < lin["train_time"] <= lin["wall_time"]
    assert lin["curves"][0]["step"] == 0.0 and lin["curves"][-1]["step"] == 23.0
    assert lin["config"]["model"]["params"]["lr"] == 0.05 and lin["config"]["budget"] == {"steps": 24,
                                                                                         "batch_size": 16}
    assert lin["host"] == socket.gethostname() and lin["finished_at"] >= lin["started_at"] > 0
    (mse,) = [m for m in lin["metrics"] if m["metric"] == "fake_mse"]
    assert mse["settings"] == {"split": "test", "n_examples": 32} and mse["settings_hash"]
    assert mse["wall_time"] >= 0


def test_failed_and_diverged_runs_carry_their_provenance(make_suite, runner, helpers) -> None:
    """docs/architecture.md#suites-cells-runs: every record holds versions, commit, device and plugins,
    failures included (which version of which plugin failed is exactly what a user needs to know)."""
    suite = make_suite("[models.bad]\ncomponent = 'linear'\nfail_at = 2\n[models.nan]\ncomponent = 'linear'\n"
                       "nan_at = 2\n[metrics.fake_mse]\n")
    _, store = runner(suite)
    for run in helpers.model_runs(store):
        assert run["status"] in ("failed", "diverged")
        prov = run["provenance"]
        assert prov.get("benchbed") == benchbed.__version__, f"{run['model']}: no provenance: {prov}"
        assert prov["components"]["model"]["plugin"] == "fake" and prov["git_commit"]
        assert run["data_hash"] and run["n_params"] == 7


def test_a_store_removed_while_in_use_is_noticed_and_its_content_saved(tmp_path: Path, helpers) -> None:
    """An open SQLite connection keeps writing to a removed file: finishing a cell must notice that the
    path no longer names the open store, copy what the connection holds beside it, and fail loudly,
    never report the cell ok and lose it at exit; a heartbeat must not create an empty store there."""
    path = tmp_path / "results.sqlite"
    store = Store(path)
    assert store.claim("r1", helpers.identity()).acquired
    for leftover in tmp_path.glob("results.sqlite*"):
        leftover.unlink()
    with pytest.raises(StoreError, match=r"was removed or replaced while this run used it; everything this "
                                         r"process held is saved to .*results\.sqlite\.recovered-"):
        store.finish("r1", status="ok")
    (recovered,) = tmp_path.glob("results.sqlite.recovered-*")
    copy = Store(recovered)
    assert copy.status("r1") == "ok"
    copy.close()
    with pytest.raises(StoreError, match="does not exist"):
        Store(path, must_exist=True)
    assert not path.exists()
    with pytest.raises(StoreError, match="removed or replaced"):  # and no new cell is claimed into it
        store.claim("r2", helpers.identity(seed=1))
    store.close()


def test_a_store_that_cannot_be_written_is_read_from_a_private_copy(tmp_path: Path, helpers, monkeypatch) -> None:
    """Opening a store writes (schema, write-ahead log), so a read-only file or folder would stop even
    `benchbed leaderboard`; reading commands fall back to an in-memory copy and never write the file."""
    from benchbed import store as store_module

    path = tmp_path / "results.sqlite"
    original = Store(path)
    assert original.claim("r1", helpers.identity()).acquired
    original.finish("r1", status="ok", metrics=[{"metric": "m", "component": "c", "status": "ok", "value": 1.5}])
    original._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    original.close()
    before = path.read_bytes()

    copy = Store.read_only_copy(path)
    assert copy.status("r1") == "ok" and copy.run("r1")["metrics"][0]["value"] == 1.5
    assert copy.claim("r2", helpers.identity(seed=1)).acquired  # the copy takes writes, privately
    copy.close()
    assert path.read_bytes() == before

    real_init = Store.__init__

    def unwritable(self, p, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if Path(p) == path:
            raise StoreError(f"cannot open result store {p}: attempt to write a readonly database")
        real_init(self, p, **kwargs)

    monkeypatch.setattr(Store, "__init__", unwritable)
    reader = store_module.open_for_reading(path)
    assert reader.status("r1") == "ok"
    reader.close()
    with pytest.raises(StoreError, match="readonly"):  # a run, which must write, still fails clearly
        Store(path)
    assert path.read_bytes() == before
