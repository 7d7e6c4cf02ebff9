"""Leaderboards from a store: cells, marks, tags, notes, per-run CSV, summary CSV and JSON."""

from __future__ import annotations

import io
import json
import math
import re
import statistics

import pandas as pd
import pytest

from benchbed import leaderboard, tables
from benchbed.grid import plan
from benchbed.stats import format_with_error, summarize
from benchbed.store import Store
from benchbed.tables import Notes

HEADER = 'name = "lb"\nseeds = [0, 1]\n[budget]\nsteps = 24\nbatch_size = 16\n[datasets.toy]\n'

BODY = """
[models.fast]
component = "linear"
lr = 0.05
[models.slow]
component = "linear"
lr = 0.002
[models.bad]
component = "linear"
fail_at = 2
[models.flaky]
component = "linear"
fail_at = 2
fail_seed = 1
[metrics.fake_mse]
[metrics.fake_ll]
[metrics.fake_ref]
"""


@pytest.fixture
def filled(make_suite, runner, fake_registry):
    """The suite, its store after one run, and the per-model MSE values per seed."""
    suite = make_suite(BODY, header=HEADER)
    _, store = runner(suite)
    values: dict[str, list[float]] = {}
    for r in sorted(store.frame(), key=lambda r: r["seed"]):
        if r["kind"] == "model" and r["metric"] == "fake_mse" and r["metric_status"] == "ok":
            values.setdefault(r["model"], []).append(r["value"])
    return suite, store, values


def _table(filled, registry) -> tuple[tables.DatasetTable, tables.Leaderboard]:
    suite, store, _ = filled
    board = tables.build(store, suite, registry)
    (table,) = board.tables
    return table, board


def test_cells_are_mean_and_standard_error_rounded_to_the_error(filled, fake_registry) -> None:
    _, _, values = filled
    table, board = _table(filled, fake_registry)
    assert [c.header for c in table.columns] == ["MSE ↓", "fake_ref ↑", "hyperparameters", "train s", "steps",
                                                 "parameter count", "seeds"]
    fast = table.cell("fast", "fake_mse")
    se = statistics.stdev(values["fast"]) / math.sqrt(2)
    assert fast.mean == pytest.approx(statistics.mean(values["fast"])) and fast.se == pytest.approx(se)
    assert fast.value == format_with_error(statistics.mean(values["fast"]), se)
    assert table.cell("fast", "seeds").value == "2/2" and table.cell("bad", "seeds").value == "0/2"
    assert table.cell("fast", "steps").value == "24" and table.cell("fast", "parameter count").value == "7"
    assert float(table.cell("fast", "train s").value) > 0


@pytest.mark.parametrize(("mean", "error", "text"), [
    (0.007821, 0.00023, "0.00782 ± 0.00023"),
    (647.3, 510.0, "650 ± 510"),
    (0.99998, 1.9e-05, "0.999980 ± 0.000019"),
    (40.01, 12.0, "40 ± 12"),
    (43.74, 0.28, "43.74 ± 0.28"),
    (1.0, 0.0, "1 ± 0"),
    (3.14159, math.nan, "3.142"),
    (2.5e-9, 3.1e-10, "(2.50 ± 0.31)e-09"),
    (0.05185107, 8.8e-07, "(5.185107 ± 0.000088)e-02"),  # exponent from the mean, not the error
    (1.2346e8, 3.1e6, "(1.235 ± 0.031)e+08"),
    (-4.2e-8, 6.3e-7, "(-0.4 ± 6.3)e-07"),  # error larger than the mean: its magnitude sets the exponent
])
def test_rounding_to_two_significant_digits_of_the_error(mean: float, error: float, text: str) -> None:
    assert format_with_error(mean, error) == text


@pytest.mark.parametrize("value", [0.76, 0.1, 1 / 3, 123.456])
def test_identical_seed_values_have_zero_spread_not_rounding_noise(value: float) -> None:
    """Three equal values (a model-free reference row) read ``0.7600 ± 0``, never ``(7.6…e-01 ± 8e-16)``."""
    s = summarize([value] * 3)
    assert s.se == 0.0 and s.std == 0.0 and s.n == 3
    assert format_with_error(s.mean, s.se).endswith(" ± 0")


def test_best_is_bold_among_rows_with_every_seed(filled, fake_registry) -> None:
    """'flaky' has a value for seed 0 only (seed 1 failed): its one-seed mean must not win the bold."""
    _, _, values = filled
    table, board = _table(filled, fake_registry)
    fast, slow = statistics.mean(values["fast"]), statistics.mean(values["slow"])
    assert table.best("fake_mse") == ["fast" if fast < slow else "slow"]
    assert not table.cell("flaky", "fake_mse").best and not table.cell("flaky", "fake_mse").tie
    md = leaderboard.to_markdown(board)
    best = table.best("fake_mse")[0]
    assert re.search(rf"\| {best} \| \*\*{re.escape(table.cell(best, 'fake_mse').value)}\*\* \|", md)


def test_na_and_failed_cells_carry_numbered_notes(filled, fake_registry) -> None:
    table, board = _table(filled, fake_registry)
    notes = Notes()
    # fake_ll is n/a for every model: the column is left out, with a note saying so
    assert "fake_ll" not in [c.key for c in table.columns]
    assert table.omitted[0][0].key == "fake_ll" and "model lacks log_likelihood" in table.omitted[0][1]
    failed = table.cell("bad", "fake_mse").text(notes)
    number = int(re.fullmatch(r"failed \[(\d+)\]", failed).group(1))
    assert re.fullmatch(r"RuntimeError: fake failure at step 2 \(conftest\.py:\d+ in train_step\)",
                        notes.items[number - 1])
    flaky = table.cell("flaky", "fake_mse").text(notes)
    assert flaky.endswith(f"(1/2 seeds) [{number}]"), flaky
    md = leaderboard.to_markdown(board)
    assert "Column fake_ll omitted for toy: n/a for every model" in md


def test_hyperparameters_column_tells_aliases_apart(filled, fake_registry) -> None:
    table, _ = _table(filled, fake_registry)
    assert table.cell("fast", "hyperparameters").value == "fail_at=-1, fail_seed=-1, lr=0.05"
    assert table.cell("slow", "hyperparameters").value == "fail_at=-1, fail_seed=-1, lr=0.002"
    assert table.cell("flaky", "hyperparameters").value == "fail_at=2, fail_seed=1, lr=0.05"


def test_reference_rows_are_shown_and_never_best(filled, fake_registry) -> None:
    suite, store, _ = filled
    table, _ = _table(filled, fake_registry)
    refs = [r["value"] for r in store.frame() if r["kind"] == "reference"]
    oracle = table.cell("oracle", "fake_ref")
    assert table.row("oracle").kind == "reference"
    assert oracle.mean == pytest.approx(statistics.mean(refs))
    assert not oracle.best


def test_reference_rows_of_a_metric_with_tuple_parameters_are_shown(make_suite, runner, fake_registry) -> None:
    """Its identity holds a tuple, the stored config a JSON list: they must still compare equal."""
    suite = make_suite("[models.linear]\n[metrics.fake_ref_t]\n", header=HEADER)
    _, store = runner(suite)
    (table,) = tables.build(store, suite, fake_registry).tables
    assert "oracle" in [r.label for r in table.rows], "a reference row disappears when its metric has a tuple"


def test_results_csv_has_one_line_per_run_and_metric(filled, fake_registry) -> None:
    suite, store, values = filled
    _, board = _table(filled, fake_registry)
    text = leaderboard.render("csv", store, board)
    assert text.splitlines()[0] == ("run_id,dataset,model,sampler,seed,metric,value,stderr,estimator,settings_hash,"
                                    "status,reason")
    df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""], dtype={"run_id": str})
    fast = df[(df["model"] == "fast") & (df["metric"] == "fake_mse")].sort_values("seed")
    assert list(fast["seed"]) == [0, 1] and list(fast["value"]) == pytest.approx(values["fast"], rel=1e-12)
    assert fast["run_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    bad = df[df["model"] == "bad"]
    assert (bad["status"] == "failed").all() and bad["reason"].str.contains("fake failure").all()
    assert len(df[df["model"] == "oracle"]) == 2  # reference rows, one per seed
    for run_id in fast["run_id"]:
        assert store.run(run_id) is not None


def test_summary_csv_and_json_agree_with_the_table(filled, fake_registry) -> None:
    suite, store, values = filled
    table, board = _table(filled, fake_registry)
    summary = pd.read_csv(io.StringIO(leaderboard.render("summary", store, board)), keep_default_na=False,
                          na_values=[""])
    fast = summary[(summary["row"] == "fast") & (summary["metric"] == "fake_mse")].iloc[0]
    assert fast["mean"] == pytest.approx(statistics.mean(values["fast"]))
    assert fast["se"] == pytest.approx(statistics.stdev(values["fast"]) / math.sqrt(2))
    assert (fast["n_ok"], fast["n"], fast["status"]) == (2, 2, "ok")
    doc = json.loads(leaderboard.render("json", store, board))
    assert doc["significance"] == {"alpha": 0.05, "test": "Welch's t-test", "two_sided": True}
    (jt,) = doc["tables"]
    row = next(r for r in jt["rows"] if r["label"] == "fast")
    assert row["cells"]["fake_mse"]["values"] == pytest.approx(values["fast"])
    assert {r["run_id"] for r in doc["runs"]} >= set(row["run_ids"])
    run = next(r for r in doc["runs"] if r["run_id"] == row["run_ids"][0])
    assert run["provenance"]["torch"] and run["metrics"][0]["settings_hash"]


def test_stale_runs_of_an_edited_suite_are_not_shown(make_suite, runner, fake_registry) -> None:
    body = "[models.fast]\ncomponent = 'linear'\nlr = 0.05\n[metrics.fake_mse]\n"
    _, store = runner(make_suite(body, header=HEADER))
    edited = make_suite(body.replace("0.05", "0.02"), header=HEADER, name="edited.toml")
    (old_table,) = tables.build(store, edited, None).tables  # without a registry nothing is known to be stale
    assert old_table.cell("fast", "seeds").value == "2/2"
    assert tables.build(store, edited, fake_registry).tables == []  # the edited cells were never run
    runner(edited)
    (table,) = tables.build(store, edited, fake_registry).tables
    assert table.cell("fast", "seeds").value == "2/2" and table.cell("fast", "fake_mse").n == 2
    assert len({r["run_id"] for r in store.frame() if r["kind"] == "model"}) == 4


def test_renamed_labels_follow_the_suite(make_suite, runner, fake_registry) -> None:
    """Labels are not part of a cell's identity (renaming retrains nothing), so the table must show the
    suite's current labels rather than those stored by the first run."""
    before = make_suite("[models.fast]\ncomponent = 'linear'\n[metrics.fake_mse]\n[metrics.fake_ref]\n", header=HEADER)
    header = HEADER.replace("[datasets.toy]\n", "[datasets.line]\ncomponent = 'toy'\n")
    after = make_suite("[models.quick]\ncomponent = 'linear'\n[metrics.fake_mse]\n[metrics.fake_ref]\n", header=header,
                       name="renamed.toml")
    runner(before)
    summary, store = runner(after)
    assert {o.status for o in summary.outcomes} == {"skipped"}
    board = tables.build(store, after, fake_registry)
    assert [t.dataset for t in board.tables] == ["line"]
    assert {r.label for r in board.tables[0].rows} == {"quick", "oracle"}  # the reference row follows the data set


def test_rows_follow_the_suite_not_the_order_in_which_cells_ran(make_suite, fake_registry, tmp_path) -> None:
    """A suite run in parts, or from scratch with other --jobs, must publish the same tables and files as a
    rebuild: rows (and the run lists that follow them) in the suite's order, never in the store's."""
    labels = ["zeta", "alpha", "mid"]  # neither alphabetical nor reversed
    body = "".join(f"[models.{m}]\ncomponent = 'linear'\nlr = {0.01 * (i + 1)}\n" for i, m in enumerate(labels))
    suite = make_suite(body + "[metrics.fake_mse]\n", header=HEADER, name="order.toml")
    cells = plan(suite, fake_registry)[0]
    csvs = []
    for name, order in (("forward", cells), ("backward", cells[::-1])):
        store = Store(tmp_path / f"{name}.sqlite")
        for cell in order:  # claimed (started) in this order
            store.claim(cell.run_id, cell.identity())
            store.finish(cell.run_id, status="ok", fields={"train_steps": 24, "n_params": 7},
                         metrics=[{"metric": "fake_mse", "component": "fake_mse", "status": "ok",
                                   "value": 0.1 * labels.index(cell.model.label) + 0.01 * cell.seed}])
        board = tables.build(store, suite, fake_registry)
        assert [r.label for r in board.tables[0].rows] == labels, name
        csvs.append(leaderboard.to_csv(store, board))
    assert csvs[0] == csvs[1]


# -- marks on constructed values --------------------------------------------------------------------


def _constructed(make_suite, fake_registry, tmp_path, metric: str, values: dict[str, list[tuple]]):
    """A store whose models (aliases of ``linear``) have the given (value, estimator tag[, warning]) per seed
    in ``metric``."""
    n_seeds = len(next(iter(values.values())))
    body = "".join(f"[models.{m}]\ncomponent = 'linear'\nlr = {0.01 * (i + 1)}\n" for i, m in enumerate(values))
    header = HEADER.replace("seeds = [0, 1]", f"seeds = {list(range(n_seeds))}")
    suite = make_suite(body + f"[metrics.{metric}]\n", header=header, name=f"{metric}.toml")
    store = Store(tmp_path / f"{metric}.sqlite")
    for cell in plan(suite, fake_registry)[0]:
        value, tag, *warning = values[cell.model.label][cell.seed]
        store.claim(cell.run_id, cell.identity())
        settings = {"estimator": tag, **({"warning": warning[0]} if warning else {})}
        store.finish(cell.run_id, status="ok", fields={"train_steps": 24, "n_params": 7},
                     metrics=[{"metric": metric, "component": metric, "status": "ok", "value": value,
                               "estimator": tag, "settings": settings}])
    (table,) = tables.build(store, suite, fake_registry).tables
    return table


def test_parzen_and_iwae_are_never_ranked_against_each_other(make_suite, fake_registry, tmp_path) -> None:
    values = {  # higher is better; Parzen's -3.0 is "higher" than every IWAE value
        "kde": [(-3.0, "Parzen"), (-3.01, "Parzen")],
        "kde2": [(-5.0, "Parzen"), (-5.02, "Parzen")],
        "enc": [(-3.4, "IWAE lb"), (-3.42, "IWAE lb")],
        "enc2": [(-3.9, "IWAE lb"), (-3.91, "IWAE lb")],
        "lone": [(-9.0, "AIS lb"), (-9.1, "AIS lb")],
    }
    table = _constructed(make_suite, fake_registry, tmp_path, "fake_est", values)
    assert sorted(table.best("fake_est")) == ["enc", "kde"]  # one best per estimator, never across
    assert not table.cell("lone", "fake_est").best  # alone in its group: nothing to be best among
    for label in values:
        cell = table.cell(label, "fake_est")
        assert cell.show_estimator and f"({cell.estimator})" in cell.text(Notes())
    md_row = [r for r in table.rows if r.label == "enc"][0]
    assert md_row.cells["fake_est"].estimator == "IWAE lb"


def test_a_metric_that_ranks_across_its_tags_bolds_one_entry(make_suite, fake_registry, tmp_path) -> None:
    values = {"a": [(0.9, "model score"), (0.91, "model score")], "b": [(0.7, "NLL IWAE"), (0.71, "NLL IWAE")]}
    table = _constructed(make_suite, fake_registry, tmp_path, "fake_score", values)
    assert table.best("fake_score") == ["a"]
    assert table.cell("b", "fake_score").show_estimator  # the tags are still shown


@pytest.mark.parametrize(("other", "tie"), [
    ([(0.50, ""), (0.51, ""), (0.49, "")], False),  # clearly separated from the best (0.9 ± 0.01)
    ([(0.70, ""), (0.95, ""), (1.00, "")], True),  # overlapping: Welch cannot tell them apart
])
def test_significance_marks(make_suite, fake_registry, tmp_path, other, tie) -> None:
    values = {"best": [(0.90, ""), (0.91, ""), (0.89, "")], "other": other}
    table = _constructed(make_suite, fake_registry, tmp_path, "fake_est", values)
    assert table.best("fake_est") == ["best"]
    assert table.cell("other", "fake_est").tie is tie


def test_one_seed_makes_no_significance_claim(make_suite, fake_registry, tmp_path) -> None:
    values = {"a": [(0.9, "")], "b": [(0.89, "")], "c": [(0.1, "")]}
    table = _constructed(make_suite, fake_registry, tmp_path, "fake_est", values)
    assert table.best("fake_est") == ["a"]
    assert not any(table.cell(label, "fake_est").tie for label in values)
    assert table.cell("b", "fake_est").text(Notes()) == "0.89"  # no ± without a second seed


def test_a_value_its_metric_marks_unreliable_is_footnoted_and_never_best(make_suite, fake_registry, tmp_path) -> None:
    """A record whose settings carry a ``warning`` (e.g. log Z from 1.3 effective draws) keeps its value
    in the table, footnoted with the warning and the seeds it concerns, and is ranked against nothing."""
    values = {  # "wild" would be best by far, but one seed's estimate is marked unreliable
        "wild": [(25.0, "IWAE-logZ", "log Z rests on 1.35 effective of 50000 base draws"), (-3.0, "IWAE-logZ")],
        "good": [(-2.2, "IWAE-logZ"), (-2.21, "IWAE-logZ")],
        "bad": [(-3.3, "IWAE-logZ"), (-3.31, "IWAE-logZ")],
    }
    table = _constructed(make_suite, fake_registry, tmp_path, "fake_est", values)
    wild = table.cell("wild", "fake_est")
    assert wild.warned and wild.status == "ok" and wild.mean == pytest.approx(11.0)
    assert table.best("fake_est") == ["good"] and not wild.best and not wild.tie
    notes = Notes()
    text = wild.text(notes)
    assert text.endswith("[1]") and notes.items == [
        "unreliable on 1 of 2 seeds, not ranked (seed 0: log Z rests on 1.35 effective of 50000 base draws)"]
    assert not table.cell("good", "fake_est").warned and not table.cell("good", "fake_est").reasons


def test_write_produces_every_format_and_the_portable_file(filled, fake_registry, tmp_path) -> None:
    suite, store, _ = filled
    paths = leaderboard.write(store, suite, fake_registry, tmp_path / "out")
    assert [p.name for p in paths] == ["README.md", "results.csv", "summary.csv", "results.json", "table.tex",
                                       "index.html", "runs.jsonl"]
    readme = paths[0].read_text()
    assert readme.startswith("# Leaderboard: lb\n")
    assert "`benchbed run suite.toml` reproduces it" in readme or "`benchbed run " in readme
    assert "Provenance: benchbed " in readme, "the provenance line is missing when the last run failed"
    assert "### toy" in readme and "| fast |" in readme
    assert "hyperparameters" in readme and "parameter count" in readme and "| params |" not in readme


def test_a_markdown_cell_cannot_carry_html_or_break_the_table() -> None:
    """Entry labels and reasons are user text: a label like ``a|b<script>`` must stay one cell of text."""
    from benchbed.formats import md_cell

    assert md_cell("a|b<script>alert(1)</script>\nx") == "a\\|b&lt;script>alert(1)&lt;/script> x"
    assert md_cell("p < 0.05, 3<4") == "p < 0.05, 3<4"
