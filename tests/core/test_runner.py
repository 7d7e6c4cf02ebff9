"""The runner through ``benchbed.execute.run_suite``: failures, divergence, n/a cells, resume,
checkpoints, references and determinism, with the tiny fake components of conftest.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from benchbed.grid import plan
from benchbed.store import Store


def _runs_by_model(store: Store, helpers) -> dict[str, dict]:
    return {r["model"]: r for r in helpers.model_runs(store)}


def _metrics(run: dict) -> dict[str, dict]:
    return {m["metric"]: m for m in run["metrics"]}


def _final_state(store: Store, run_id: str) -> dict[str, torch.Tensor]:
    ckpt = torch.load(store.path.parent / "checkpoints" / store.uid / f"{run_id}.pt", weights_only=False)
    return ckpt["model"]["module"]


def test_failing_and_diverging_cells_are_recorded_and_the_grid_goes_on(make_suite, runner, helpers) -> None:
    suite = make_suite("""
        [models.bad]
        component = "linear"
        fail_at = 3
        [models.nan]
        component = "linear"
        nan_at = 5
        [models.good]
        component = "linear"
        [metrics.fake_mse]
    """)
    summary, store = runner(suite)
    assert [o.status for o in summary.outcomes] == ["failed", "diverged", "ok"]
    runs = _runs_by_model(store, helpers)
    bad, nan, good = runs["bad"], runs["nan"], runs["good"]
    assert bad["status"] == "failed"
    assert re.fullmatch(r"RuntimeError: fake failure at step 3 \(conftest\.py:\d+ in train_step\)", bad["error"])
    assert summary.outcomes[0].message == bad["error"]
    # linear has no sampler: the likely cause does not send the user to one
    assert nan["status"] == "diverged" and nan["error"] == ("loss 'loss' became nan at step 5; likely cause: an "
                                                           "unstable model or loss (the losses were steady until "
                                                           "then)")
    assert bad["metrics"] == [] and nan["metrics"] == []
    assert good["status"] == "ok" and good["error"] == ""
    (mse,) = good["metrics"]
    assert mse["status"] == "ok" and 0 < mse["value"] < 1 and mse["settings"]["n_examples"] == 32


def test_incompatible_pairs_and_metric_errors(make_suite, runner, helpers) -> None:
    suite = make_suite("""
        [models.linear]
        [metrics.fake_mse]
        [metrics.fake_ll]
        [metrics.fake_img]
        [metrics.fake_labels]
        [metrics.fake_na]
        [metrics.fake_boom]
    """)
    summary, store = runner(suite)
    assert [o.status for o in summary.outcomes] == ["ok"]
    (run,) = helpers.model_runs(store)
    rows = {k: (m["status"], m["reason"]) for k, m in _metrics(run).items()}
    assert rows["fake_mse"] == ("ok", "")
    assert rows["fake_ll"] == ("n/a", "model lacks log_likelihood (required by fake_ll)")
    assert rows["fake_img"] == ("n/a", "fake_img applies to image data, not vector")
    assert rows["fake_labels"] == ("n/a", "fake_labels needs labels; data set 'toy' has none")
    assert rows["fake_na"] == ("n/a", "fake weights not found: set FAKE_WEIGHTS=/path/to/weights.pt")
    status, reason = rows["fake_boom"]
    assert status == "failed"
    assert re.fullmatch(r"ValueError: metric exploded \(conftest\.py:\d+ in evaluate\)", reason)
    assert _metrics(run)["fake_mse"]["value"] is not None and _metrics(run)["fake_boom"]["value"] is None


def test_non_finite_values_are_failures_and_per_example_values_are_stored(make_suite, runner, helpers) -> None:
    suite = make_suite("""
        [models.linear]
        [metrics.fake_mse]
        [metrics.fake_inf]
        [metrics.fake_nan]
    """)
    _, store = runner(suite)
    (run,) = helpers.model_runs(store)
    rows = _metrics(run)
    for label, text in (("fake_inf", "inf"), ("fake_nan", "nan")):
        assert rows[label]["status"] == "failed" and rows[label]["value"] is None
        assert rows[label]["reason"] == f"metric {label!r} returned a non-finite value ({text})"
    per = store.per_example(run["run_id"], "fake_mse")
    assert per is not None and per.dtype.name == "float64" and per.shape == (32,)  # the toy test split
    assert float(per.mean()) == pytest.approx(rows["fake_mse"]["value"], rel=1e-6)
    assert store.per_example(run["run_id"], "fake_inf") is None


def test_image_and_labelled_data_make_those_metrics_apply(make_suite, runner, helpers) -> None:
    header = helpers.HEADER.replace("[datasets.toy]\n", "[datasets.img]\ncomponent = 'toy'\nkind = 'image'\n"
                                                       "labels = true\n")
    suite = make_suite("[models.linear]\n[metrics.fake_img]\n[metrics.fake_labels]\n[metrics.fake_ll]\n",
                       header=header)
    _, store = runner(suite)
    (run,) = helpers.model_runs(store)
    rows = _metrics(run)
    assert rows["fake_img"]["status"] == "ok" and 0 < rows["fake_img"]["value"] < 1
    assert rows["fake_labels"]["status"] == "ok" and 0 < rows["fake_labels"]["value"] < 1
    assert rows["fake_ll"]["status"] == "n/a"  # capability is checked before the data kind


def test_second_run_trains_nothing(make_suite, runner, helpers) -> None:
    suite = make_suite("[models.linear]\n[models.bad]\ncomponent = 'linear'\nfail_at = 1\n[metrics.fake_mse]\n")
    first, store = runner(suite)
    values = {r["model"]: [m["value"] for m in r["metrics"]] for r in helpers.model_runs(store)}
    second, _ = runner(suite)
    assert [(o.status, o.message) for o in second.outcomes] == [("skipped", "finished before (ok)"),
                                                                ("skipped", "finished before (failed)")]
    assert not any(o.trained for o in second.outcomes)
    runs = helpers.model_runs(store)
    assert [r["train_count"] for r in runs] == [1, 1]
    assert {r["model"]: [m["value"] for m in r["metrics"]] for r in runs} == values


def test_retry_failed_trains_a_failed_cell_again(make_suite, runner, helpers, tmp_path: Path) -> None:
    flag = tmp_path / "fail.flag"
    flag.touch()
    suite = make_suite(f"[models.linear]\nflag_file = '{flag}'\nflag_at = 2\nflag_action = 'fail'\n"
                       "[metrics.fake_mse]\n")
    assert [o.status for o in runner(suite)[0].outcomes] == ["failed"]
    assert [o.status for o in runner(suite)[0].outcomes] == ["skipped"]
    summary, store = runner(suite, retry_failed=True)
    assert [o.status for o in summary.outcomes] == ["ok"]
    (run,) = helpers.model_runs(store)
    assert run["status"] == "ok" and run["error"] == "" and run["train_count"] == 2


def test_added_metric_is_evaluated_on_the_stored_model_without_retraining(make_suite, runner, helpers,
                                                                          fake_registry) -> None:
    before = make_suite("[models.linear]\n[metrics.fake_mse]\n", name="before.toml")
    after = make_suite("[models.linear]\n[metrics.fake_mse]\n[metrics.fake_ref]\n[metrics.fake_ll]\n",
                       name="after.toml")
    assert plan(before, fake_registry)[0][0].run_id == plan(after, fake_registry)[0][0].run_id
    runner(before)
    summary, store = runner(after)
    (outcome,) = summary.outcomes
    assert (outcome.status, outcome.message, outcome.trained) == ("evaluated", "2 new metric(s)", False)
    (run,) = helpers.model_runs(store)
    assert run["train_count"] == 1
    rows = _metrics(run)
    assert rows["fake_ref"]["status"] == "ok" and rows["fake_ll"]["status"] == "n/a"
    # The value equals a from-scratch run of the extended suite: the final checkpoint restores the model.
    _, fresh = runner(after, store_dir="fresh")
    (ref_run,) = helpers.model_runs(fresh)
    assert _metrics(ref_run)["fake_ref"]["value"] == rows["fake_ref"]["value"]
    assert _metrics(ref_run)["fake_mse"]["value"] == rows["fake_mse"]["value"]
    # Changed metric settings are evaluated again; unchanged ones are not.
    changed = make_suite("[models.linear]\n[metrics.fake_mse]\nsplit = 'val'\n[metrics.fake_ref]\n[metrics.fake_ll]\n",
                         name="changed.toml")
    (outcome,) = runner(changed)[0].outcomes
    assert (outcome.status, outcome.message) == ("evaluated", "1 new metric(s)")
    (run,) = helpers.model_runs(store)
    assert _metrics(run)["fake_mse"]["settings"]["split"] == "val" and run["train_count"] == 1
    assert [o.status for o in runner(changed)[0].outcomes] == ["skipped"]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: the CUDA RNG must be checkpointed too"))])
def test_interrupted_cell_resumes_from_its_checkpoint_deterministically(make_suite, runner, helpers, device: str,
                                                                         tmp_path: Path, capsys) -> None:
    flag = tmp_path / "interrupt.flag"
    body = f"[models.linear]\nflag_file = '{flag}'\nflag_at = 10\n[metrics.fake_mse]\n[metrics.fake_ref]\n"
    header = helpers.HEADER.replace("[budget]", f"checkpoint_every = 4\ndevice = '{device}'\n[budget]")
    suite = make_suite(body, header=header)
    flag.touch()
    with pytest.raises(KeyboardInterrupt):
        runner(suite)
    view = Store(tmp_path / "store" / "results.sqlite")  # the runner raised before returning its store
    (run,) = helpers.model_runs(view)
    view.close()
    assert (run["status"], run["train_count"], run["metrics"]) == ("interrupted", 1, [])
    ckpt = torch.load(tmp_path / "store" / "checkpoints" / view.uid / f"{run['run_id']}.pt", weights_only=False)
    assert ckpt["step"] == 7  # the last checkpoint before step 10 (every 4 steps)
    capsys.readouterr()

    summary, store = runner(suite)
    assert [o.status for o in summary.outcomes] == ["ok"]
    assert "resuming from checkpoint at step 8" in capsys.readouterr().err
    (resumed,) = helpers.model_runs(store)
    assert resumed["status"] == "ok" and resumed["train_count"] == 2

    _, clean = runner(suite, store_dir="uninterrupted")  # the flag is gone: runs straight through
    (straight,) = helpers.model_runs(clean)
    assert straight["run_id"] == resumed["run_id"] and straight["train_count"] == 1
    a, b = _final_state(store, resumed["run_id"]), _final_state(clean, straight["run_id"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["curves"] == straight["curves"]
    assert [m["value"] for m in resumed["metrics"]] == [m["value"] for m in straight["metrics"]]


def test_a_cell_interrupted_during_its_metrics_keeps_the_ones_it_stored(make_suite, runner, helpers, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """Each metric record is stored when computed; a resumed cell (its final checkpoint: no training)
    reuses them and computes only the rest, with the numbers of an uninterrupted run."""
    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n[metrics.fake_ref]\n")
    original = Store.put_metrics
    stored: list[str] = []

    def interrupt_at_the_second(self: Store, run_id: str, rows) -> None:  # noqa: ANN001
        stored.append(rows[0]["metric"])
        if len(stored) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second metric's record is written
        original(self, run_id, rows)

    monkeypatch.setattr(Store, "put_metrics", interrupt_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        runner(suite)
    monkeypatch.setattr(Store, "put_metrics", original)
    view = Store(tmp_path / "store" / "results.sqlite")
    (run,) = helpers.model_runs(view)
    view.close()
    assert run["status"] == "interrupted" and [m["metric"] for m in run["metrics"]] == ["fake_mse"]

    calls: list[str] = []
    real = helpers.FakeMSE.evaluate
    monkeypatch.setattr(helpers.FakeMSE, "evaluate", lambda self, ctx: calls.append("fake_mse") or real(self, ctx))
    summary, store = runner(suite)
    assert [o.status for o in summary.outcomes] == ["ok"] and calls == []  # fake_mse was not computed again
    (resumed,) = helpers.model_runs(store)
    assert resumed["train_count"] == 1  # resumed from the final checkpoint
    _, clean = runner(suite, store_dir="uninterrupted")
    (straight,) = helpers.model_runs(clean)
    assert [(m["metric"], m["value"]) for m in resumed["metrics"]] == \
        [(m["metric"], m["value"]) for m in straight["metrics"]]
    assert store.per_example(resumed["run_id"], "fake_mse") is not None  # kept with the record


def test_a_failed_cell_keeps_no_metric_record(make_suite, runner, helpers, monkeypatch) -> None:
    """Records are stored one by one, so a cell that fails after some were stored must drop them."""
    suite = make_suite("[models.linear]\nsample_fails = true\n[metrics.fake_mse]\n[metrics.fake_ref]\n")
    from benchbed import runner as runner_module

    monkeypatch.setattr(runner_module.CellRunner, "_store_preview",
                        lambda self, cell, model, data: (_ for _ in ()).throw(RuntimeError("late failure")))
    summary, store = runner(suite)
    assert [o.status for o in summary.outcomes] == ["failed"]
    (run,) = helpers.model_runs(store)
    assert run["metrics"] == []


def test_same_cell_twice_gives_the_same_numbers(make_suite, runner, helpers) -> None:
    suite = make_suite("""
        [models.linear]
        [models.dyn]
        [samplers.walk]
        jitter = 0.05
        [metrics.fake_mse]
        [metrics.fake_ref]
    """)
    _, one = runner(suite, store_dir="one")
    _, two = runner(suite, store_dir="two")
    runs_one, runs_two = helpers.model_runs(one), helpers.model_runs(two)
    assert [r["run_id"] for r in runs_one] == [r["run_id"] for r in runs_two]
    for a, b in zip(runs_one, runs_two, strict=True):
        assert a["status"] == b["status"] == "ok"
        assert [(m["metric"], m["value"]) for m in a["metrics"]] == [(m["metric"], m["value"]) for m in b["metrics"]]
        assert a["curves"] == b["curves"]
        sa, sb = _final_state(one, a["run_id"]), _final_state(two, b["run_id"])
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    dyn = next(r for r in runs_one if r["model"] == "dyn")
    assert dyn["sampler"] == "walk"
    assert dyn["provenance"]["sampler_roles"] == {"posterior": {"n_steps": 3, "step_size": 0.05, "jitter": 0.05}}
    # Different seeds give different numbers (the check above is not vacuous).
    header = helpers.HEADER.replace("seeds = [0]", "seeds = [1]")
    _, three = runner(make_suite("[models.linear]\n[metrics.fake_mse]\n", header=header, name="s1.toml"),
                      store_dir="three")
    (other,) = helpers.model_runs(three)
    assert other["metrics"][0]["value"] != next(r for r in runs_one if r["model"] == "linear")["metrics"][0]["value"]


def test_model_learns_and_metric_beats_untrained(make_suite, runner, helpers) -> None:
    """The fake is a real model: the trained MSE is below that of a 1-step model (sanity of the fixture)."""
    trained = make_suite("[models.linear]\n[metrics.fake_mse]\n", name="trained.toml")
    header = helpers.HEADER.replace("steps = 24", "steps = 1")
    untrained = make_suite("[models.linear]\n[metrics.fake_mse]\n", header=header, name="untrained.toml")
    _, a = runner(trained, store_dir="a")
    _, b = runner(untrained, store_dir="b")
    assert helpers.model_runs(a)[0]["metrics"][0]["value"] < 0.5 * helpers.model_runs(b)[0]["metrics"][0]["value"]


def test_references_are_stored_once_per_dataset_and_seed(make_suite, runner, fake_registry) -> None:
    header = 'name = "t"\nseeds = [0, 1]\n[budget]\nsteps = 4\nbatch_size = 16\n[datasets.toy]\n'
    suite = make_suite("[models.linear]\n[metrics.fake_ref]\n[metrics.fake_mse]\n", header=header)
    _, store = runner(suite)
    refs = [r for r in store.frame() if r["kind"] == "reference"]
    assert sorted((r["model"], r["seed"], r["metric"], r["metric_status"]) for r in refs) == [
        ("oracle", 0, "fake_ref", "ok"), ("oracle", 1, "fake_ref", "ok")]
    for r in refs:
        data = fake_registry.dataset("toy").factory().load(seed=r["seed"])
        assert r["value"] == pytest.approx(float(data.test.x[:, 0].mean()))
    runner(suite)
    assert len([r for r in store.frame() if r["kind"] == "reference"]) == 2


def test_variant_trainings_are_shared_between_metrics(make_suite, runner, helpers, monkeypatch) -> None:
    monkeypatch.setattr(helpers.LinearAE, "setups", 0)
    header = helpers.HEADER.replace("[datasets.toy]\n", "[datasets.toy]\nlabels = true\n")
    suite = make_suite("[models.linear]\n[metrics.o1]\ncomponent = 'fake_outlier'\n"
                       "[metrics.o2]\ncomponent = 'fake_outlier'\n[metrics.o3]\ncomponent = 'fake_outlier'\n"
                       "held_out = 1\n", header=header)
    _, store = runner(suite)
    (run,) = helpers.model_runs(store)
    rows = _metrics(run)
    assert all(rows[k]["status"] == "ok" for k in ("o1", "o2", "o3")), {k: r["reason"] for k, r in rows.items()}
    # o1 trains the variant, o2 reuses it: the same value, whatever the order (training the variant
    # must not shift the random stream the metric sees after seed_everything).
    assert rows["o1"]["value"] == rows["o2"]["value"] != rows["o3"]["value"]
    assert helpers.LinearAE.setups == 3  # the cell's model + one variant per held-out class


def test_sampler_axis_notes_and_default_sampler(make_suite, runner, helpers) -> None:
    suite = make_suite("[models.dyn]\n[models.free]\ncomponent = 'dyn_any'\n[samplers.other_walk]\n"
                       "[metrics.fake_mse]\n")
    summary, store = runner(suite)
    assert summary.notes == ["model 'dyn' does not accept sampler 'other_walk' (it accepts walk); "
                             "no cell for that pair"]
    runs = {r["model"]: r for r in helpers.model_runs(store)}
    assert runs["dyn"]["sampler"] == "walk" and runs["dyn"]["status"] == "ok"  # its default sampler
    assert runs["dyn"]["provenance"]["components"]["sampler"]["name"] == "walk"
    assert runs["free"]["sampler"] == "other_walk"


def test_a_data_set_that_fails_to_load_fails_its_cells_and_the_grid_goes_on(tmp_path) -> None:
    """MNIST files missing: its cells are 'failed' with the data error; the other data set's cells run."""
    from benchbed.execute import run_suite
    from benchbed.plugins import load_plugins
    from benchbed.runner import RunOptions
    from benchbed.store import Store
    from benchbed.suite import parse_suite

    registry = load_plugins(strict=True).registry
    suite = parse_suite(
        f"""name = "missing"\nseeds = [0]\n[budget]\nsteps = 5\nbatch_size = 32\n
[datasets.gmm8]\nn_train = 64\n[datasets.mnist]\nroot = "{tmp_path / 'nodata'}"\n
[models.vae]\n[metrics.recon_mse]\n[metrics.loglik]\nn_examples = 10\nk = 5\n""", registry)
    store = Store(tmp_path / "s.sqlite")
    summary = run_suite(suite, registry, store, options=RunOptions(bars=False))
    status = {o.title: (o.status, o.message) for o in summary.outcomes}
    assert status["vae · gmm8 · seed 0"][0] == "ok"
    failed, message = status["vae · mnist · seed 0"]
    assert failed == "failed" and "DataError" in message and "nodata" in message


def test_a_new_store_in_the_same_folder_never_adopts_another_stores_checkpoints(make_suite, tmp_path, helpers,
                                                                                fake_registry) -> None:
    """A second store beside the first trains its cells itself: train_count 1 and a real train time, not
    an "ok" cell that adopted the first store's final checkpoint without training."""
    from benchbed.execute import run_suite
    from benchbed.runner import RunOptions

    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n")
    for name in ("first.sqlite", "second.sqlite"):
        store = Store(tmp_path / "shared" / name)
        run_suite(suite, fake_registry, store, options=RunOptions(bars=False))
        (run,) = helpers.model_runs(store)
        assert run["status"] == "ok" and run["train_count"] == 1 and run["train_time"] > 0, name
        store.close()
    assert len(list((tmp_path / "shared" / "checkpoints").iterdir())) == 2


def test_a_divergence_names_the_learning_rate_when_the_losses_grew(make_suite, runner, helpers) -> None:
    suite = make_suite("[models.linear]\nlr = 1e6\nnoise = 0.0\n[metrics.fake_mse]\n")
    _, store = runner(suite)
    (run,) = helpers.model_runs(store)
    assert run["status"] == "diverged"
    assert "likely cause: the learning rate" in run["error"], run["error"]


def test_an_unreadable_snapshot_is_named_as_such_not_as_missing(make_suite, runner, helpers, tmp_path: Path) -> None:
    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n", header=helpers.HEADER.replace("[budget]",
                                                                                             "eval_at = [8]\n[budget]"))
    _, store = runner(suite)
    (run,) = helpers.model_runs(store)
    snapshot = next((tmp_path / "store" / "checkpoints").rglob(f"{run['run_id']}.step8.pt"))
    snapshot.write_bytes(b"not a checkpoint")
    with store.transaction() as db:
        db.execute("DELETE FROM eval_points WHERE run_id=?", (run["run_id"],))
    runner(suite)
    (point,) = store.eval_points(run["run_id"])
    assert point["status"] == "n/a" and "cannot be read" in point["reason"] and snapshot.name in point["reason"]
