"""Metrics over training (``eval_at``): snapshots saved while a cell trains, evaluated after its final
evaluation, stored with their step and training time; training numbers do not move; resumable; carried
by runs.jsonl and plotted on the HTML page (docs/results.md#metrics-over-training)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchbed import cli, published
from benchbed.errors import SuiteError
from benchbed.runner import CellRunner
from benchbed.store import SCHEMA_VERSION, Store

METRICS = """
[metrics.mmd]
n_samples = 128
n_reference = 128
[metrics.recon_mse]
[metrics.outlier_auroc]
classes = [1]
n_examples = 64
"""
BOTH = "[models.vae]\n[models.gmmn]\n"


def suite_text(*, eval_at: str = "eval_at = [10, 20]", steps: int = 40, models: str = BOTH,
               metrics: str = METRICS) -> str:
    return f"""name = "ea"
seeds = [0]
{eval_at}
[budget]
steps = {steps}
batch_size = 64
[datasets.gmm8]
n_train = 256
n_val = 64
n_test = 128
{models}{metrics}"""


def run_cli(folder: Path, text: str, *extra: str) -> int:
    """``benchbed run`` of suite ``text`` written to ``folder/suite.toml``, store and tables in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.toml").write_text(text)
    return cli.main(["run", str(folder / "suite.toml"), "--no-bars", "--store", str(folder / "results.sqlite"),
                     "--out", str(folder / "out"), *extra])


def model_runs(folder: Path) -> dict[str, dict[str, Any]]:
    """``model label -> stored run`` of the suite cells of the store in ``folder``."""
    store = Store(folder / "results.sqlite")
    try:
        ids = [r[0] for r in store._db.execute("SELECT run_id FROM runs WHERE kind='model' ORDER BY started_at")]
        return {run["model"]: run for run in (store.run(i) for i in ids) if run is not None}
    finally:
        store.close()


def values(run: dict[str, Any]) -> dict[str, Any]:
    return {m["metric"]: (m["status"], m["value"], m["estimator"]) for m in run["metrics"]}


def points(run: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(p["metric"], p["step"]): p for p in run.get("eval_points", [])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The suite with ``eval_at = [10, 20]``, the same suite without it, and vae's 20-step run, each run
    once through the CLI (real plugins)."""
    root = tmp_path_factory.mktemp("eval_at")
    folders = {"eval_at": root / "eval_at", "plain": root / "plain", "short": root / "short"}
    assert run_cli(folders["eval_at"], suite_text()) == 0
    assert run_cli(folders["plain"], suite_text(eval_at="")) == 0
    assert run_cli(folders["short"], suite_text(eval_at="", steps=20, models="[models.vae]\n")) == 0
    return folders


@pytest.mark.slow
def test_intermediate_values_are_stored_with_their_step_and_training_time(runs: dict[str, Path]) -> None:
    for label, run in model_runs(runs["eval_at"]).items():
        got = points(run)
        assert set(got) == {(m, s) for m in ("mmd", "recon_mse", "outlier_auroc") for s in (10, 20)}, label
        t10, t20 = got["mmd", 10]["train_time"], got["mmd", 20]["train_time"]
        assert 0 < t10 < t20 < run["train_time"], label
        for (metric, step), p in got.items():
            assert p["train_time"] == got["mmd", step]["train_time"]  # one snapshot per step
            if label == "gmmn" and metric == "recon_mse":  # n/a at every step, as at the end
                assert p["status"] == "n/a" and "reconstruct" in p["reason"]
                continue
            assert p["status"] == "ok" and p["value"] is not None, (label, metric, step, p["reason"])
            assert p["estimator"] == next(m["estimator"] for m in run["metrics"] if m["metric"] == metric)
            assert p["settings_hash"] == next(m["settings_hash"] for m in run["metrics"] if m["metric"] == metric)
        # the models learn between the points: the values are not copies of one another
        assert got["mmd", 10]["value"] != got["mmd", 20]["value"]


@pytest.mark.slow
def test_training_and_final_values_do_not_move_with_eval_at(runs: dict[str, Path]) -> None:
    with_points, plain = model_runs(runs["eval_at"]), model_runs(runs["plain"])
    assert set(with_points) == set(plain) == {"vae", "gmmn"}
    for label in plain:
        assert with_points[label]["run_id"] == plain[label]["run_id"]  # eval_at is not part of a cell
        assert with_points[label]["curves"] == plain[label]["curves"]
        assert values(with_points[label]) == values(plain[label])
        assert "eval_points" not in plain[label]


@pytest.mark.slow
def test_the_value_at_step_20_is_that_of_a_20_step_run(runs: dict[str, Path]) -> None:
    """vae's schedule does not depend on the budget, so its state after 20 of 40 steps is that of a 20-step
    run; the outlier metric at step 20 uses the held-out model at step 20 too."""
    at_20 = points(model_runs(runs["eval_at"])["vae"])
    short = values(model_runs(runs["short"])["vae"])
    for metric in ("mmd", "recon_mse", "outlier_auroc"):
        status, value, estimator = short[metric]
        p = at_20[metric, 20]
        assert (p["status"], p["estimator"]) == (status, estimator) == ("ok", estimator)
        assert p["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), metric


@pytest.mark.slow
def test_runs_jsonl_carries_the_points_and_a_fresh_clone_plots_them(runs: dict[str, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = runs["eval_at"] / "out"
    records = published.read_runs(out / published.RUNS_FILE)
    stored = model_runs(runs["eval_at"])
    by_id = {r["run"]["run_id"]: r for r in records}
    for run in stored.values():
        assert by_id[run["run_id"]]["eval_points"] == run["eval_points"]
        assert "eval_points" not in by_id[run["run_id"]]["run"]
    assert all("eval_points" not in r for r in records if r["run"]["kind"] != "model")
    results = json.loads((out / "results.json").read_text())
    assert {r["run_id"]: r["eval_points"] for r in results["runs"] if "eval_points" in r} == \
        {run["run_id"]: run["eval_points"] for run in stored.values()}

    page = (out / "index.html").read_text()
    assert "<h3>Metrics over training</h3>" in page
    for header in ("MMD", "Outlier AUROC"):
        assert f'alt="{header}' in page, header

    # a fresh clone: the suite file and its published runs only
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(runs["eval_at"] / "suite.toml", clone / "suite.toml")
    shutil.copy(out / published.RUNS_FILE, clone / published.RUNS_FILE)
    monkeypatch.chdir(clone)
    assert cli.main(["leaderboard", "suite.toml"]) == 0
    assert (clone / "index.html").read_bytes() == (out / "index.html").read_bytes()
    assert (clone / published.RUNS_FILE).read_bytes() == (out / published.RUNS_FILE).read_bytes()
    store = Store(clone / "results.sqlite")
    try:
        for run in stored.values():
            assert store.eval_points(run["run_id"]) == run["eval_points"]
    finally:
        store.close()


VAE_ONLY = dict(models="[models.vae]\n")


@pytest.mark.slow
def test_an_interrupted_cell_resumes_without_recomputing_its_stored_points(
        runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each record at an intermediate step is stored as soon as it is computed: a cell interrupted while
    it stores step 10's second record keeps the first, and its resumed attempt computes only the rest."""
    original = Store.put_eval_points
    calls: list[tuple[str, int]] = []

    def interrupt_at_the_second(self: Store, run_id: str, rows: Any) -> None:
        calls.append((rows[0]["metric"], rows[0]["step"]))
        if len(calls) > 1:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) while step 10's second record is written
        original(self, run_id, rows)

    monkeypatch.setattr(Store, "put_eval_points", interrupt_at_the_second)
    assert run_cli(tmp_path, suite_text(**VAE_ONLY)) == cli.EXIT_INTERRUPTED
    (run,) = model_runs(tmp_path).values()
    assert run["status"] != "ok" and set(points(run)) == {("mmd", 10)}
    before = points(run)

    monkeypatch.setattr(Store, "put_eval_points", original)
    evaluated: list[tuple[int | None, list[str]]] = []
    real_evaluate = CellRunner._evaluate

    def spy(self: CellRunner, cell: Any, model: Any, data: Any, metrics: Any, at_step: int | None = None,
            **kwargs: Any) -> Any:
        evaluated.append((at_step, [m.label for m in metrics]))
        return real_evaluate(self, cell, model, data, metrics, at_step=at_step, **kwargs)

    monkeypatch.setattr(CellRunner, "_evaluate", spy)
    assert run_cli(tmp_path, suite_text(**VAE_ONLY)) == 0
    every = ["mmd", "recon_mse", "outlier_auroc"]
    # the final records are all stored (reused inside evaluate_metrics); step 10 lacks two, step 20 all
    assert evaluated == [(None, every), (10, ["recon_mse", "outlier_auroc"]), (20, every)], \
        "a stored record was evaluated again"
    (run,) = model_runs(tmp_path).values()
    assert run["status"] == "ok" and run["train_count"] == 1  # resumed from the final checkpoint
    after = points(run)
    assert after[("mmd", 10)] == before[("mmd", 10)]
    uninterrupted = model_runs(runs["eval_at"])["vae"]
    assert values(run) == values(uninterrupted)
    assert {k: v["value"] for k, v in after.items()} == {k: v["value"] for k, v in points(uninterrupted).items()}


@pytest.mark.slow
def test_eval_at_added_later_uses_the_snapshots_that_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recon = "[metrics.recon_mse]\n"
    assert run_cli(tmp_path, suite_text(eval_at="eval_at = [20]", models="[models.vae]\n", metrics=recon)) == 0
    (first,) = model_runs(tmp_path).values()
    assert set(points(first)) == {("recon_mse", 20)}

    # later: a step without a snapshot, and a new metric
    capsys.readouterr()
    later = recon + "[metrics.mmd]\nn_samples = 200\nn_reference = 128\n"
    assert run_cli(tmp_path, suite_text(eval_at="eval_at = [10, 20]", models="[models.vae]\n", metrics=later)) == 0
    assert "evaluated" in capsys.readouterr().out
    (run,) = model_runs(tmp_path).values()
    got = points(run)
    assert run["train_count"] == 1, "the cell was trained again"
    assert got["recon_mse", 20] == points(first)["recon_mse", 20]  # kept, not recomputed
    assert got["mmd", 20]["status"] == "ok"  # from the snapshot saved at step 20
    for metric in ("recon_mse", "mmd"):
        assert got[metric, 10]["status"] == "n/a" and "retrain" in got[metric, 10]["reason"]
    assert {m["metric"] for m in run["metrics"]} == {"recon_mse", "mmd"}

    capsys.readouterr()  # a third run has nothing left to do
    assert run_cli(tmp_path, suite_text(eval_at="eval_at = [10, 20]", models="[models.vae]\n", metrics=later)) == 0
    assert "1 skipped" in capsys.readouterr().out


# -- suite validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ("5", "must be a list of training steps (positive integers), got 5"),
    ('["10"]', "must be a list of training steps (positive integers), got ['10']"),
    ("[true]", "must be a list of training steps (positive integers), got [True]"),
    ("[0, 10]", "step 0 is not a positive number of training steps"),
    ("[-3]", "step -3 is not a positive number of training steps"),
    ("[10, 12, 10]", "repeats step 10: each step is evaluated once"),
    ("[10, 30]", "step 30 is past the budget of model 'linear' on data set 'toy' (24 steps)"),
])
def test_bad_eval_at_values_are_rejected_naming_file_key_and_value(
        make_suite: Callable[..., Any], tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SuiteError) as err:
        make_suite("[models.linear]\n[metrics.fake_mse]\n", header=f"eval_at = {value}\n" + HEADER)
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'suite.toml'}: 'eval_at' ({tmp_path / 'suite.toml'}, line 1)"), text
    assert message in text


def test_eval_at_is_checked_against_each_cells_budget(make_suite: Callable[..., Any]) -> None:
    with pytest.raises(SuiteError, match=r"step 12 is past the budget of model 'short' on data set 'toy' \(10 "):
        make_suite("[models.linear]\n[models.short]\ncomponent = 'linear'\nbudget = { steps = 10 }\n"
                   "[metrics.fake_mse]\n", header="eval_at = [12]\n" + HEADER)
    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n", header="eval_at = [24, 5]\n" + HEADER)
    assert suite.eval_at == (5, 24)  # sorted; 24 is the budget: the final evaluation


def test_a_step_equal_to_the_budget_is_the_final_evaluation(make_suite: Callable[..., Any], runner: Callable[..., Any],
                                                           helpers: Any) -> None:
    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n", header="eval_at = [12, 24]\n" + HEADER)
    _, store = runner(suite)
    (run,) = helpers.model_runs(store)
    assert {(p["metric"], p["step"]) for p in run["eval_points"]} == {("fake_mse", 12)}
    assert run["eval_points"][0]["status"] == "ok" and run["metrics"][0]["status"] == "ok"


HEADER = "seeds = [0]\n[budget]\nsteps = 24\nbatch_size = 16\n[datasets.toy]\n"


# -- the store -------------------------------------------------------------------------------------


def test_a_version_2_store_is_migrated(tmp_path: Path) -> None:
    """Stores written before metrics over training open, gain the eval_points table and keep their runs."""
    path = tmp_path / "v2.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE eval_points")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
        db.execute("INSERT INTO runs (run_id, suite, model, model_component, sampler, dataset, seed, status, "
                   "config) VALUES ('r1', 's', 'm', 'm', '', 'd', 0, 'ok', '{}')")
    store = Store(path)
    try:
        assert store.run("r1") is not None and store.eval_points("r1") == []
        store.put_eval_points("r1", [{"metric": "mmd", "step": 10, "train_time": 1.5, "status": "ok", "value": 0.25,
                                      "stderr": None, "estimator": "", "reason": "", "settings_hash": "h"}])
        assert store.eval_points("r1") == [{"metric": "mmd", "step": 10, "train_time": 1.5, "status": "ok",
                                            "value": 0.25, "stderr": None, "estimator": "", "reason": "",
                                            "settings_hash": "h"}]
        assert store.eval_point_hashes("r1") == {("mmd", 10): "h"}
        assert store.run("r1")["eval_points"] == store.eval_points("r1")
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        (version,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert version == str(SCHEMA_VERSION) == "3"
