"""Leaderboards from a store filled by a real (tiny) run: Markdown, CSV, LaTeX."""

from __future__ import annotations

import io
import math
import re
import statistics

import pandas as pd
import pytest

from benchbed import leaderboard
from benchbed.leaderboard import build_tables, fmt, to_csv, to_latex, to_markdown

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
    for r in store.frame():
        if r["kind"] == "model" and r["metric"] == "fake_mse" and r["metric_status"] == "ok":
            values.setdefault(r["model"], []).append(r["value"])
    return suite, store, values


def _table(filled, registry):
    suite, store, _ = filled
    tables, notes = build_tables(store, suite, registry)
    (table,) = tables
    return table, notes


def test_mean_std_arrows_bold_and_cost_columns(filled, fake_registry) -> None:
    suite, store, values = filled
    table, notes = _table(filled, fake_registry)
    frame = table.frame
    assert list(frame.columns) == ["MSE ↓", "fake_ll ↑", "fake_ref ↑", "params", "train s", "steps", "parameters",
                                   "seeds"]
    fast, slow = values["fast"], values["slow"]
    assert len(fast) == len(slow) == 2
    expected = f"{fmt(statistics.mean(fast))} ± {fmt(statistics.stdev(fast), 2)}"
    assert frame.loc["fast", "MSE ↓"] == expected
    assert frame.loc["fast", "seeds"] == "2/2" and frame.loc["bad", "seeds"] == "0/2"
    assert frame.loc["fast", "steps"] == "24" and frame.loc["fast", "parameters"] == "7"
    assert float(frame.loc["fast", "train s"]) > 0
    md = to_markdown([table], notes)
    best = table.best["MSE ↓"]
    assert f"| {best} | **{frame.loc[best, 'MSE ↓']}** |" in md
    assert md.count("**") == 2 * len(table.best)
    assert "| model | MSE ↓ | fake_ll ↑ | fake_ref ↑ | params | train s | steps | parameters | seeds |" in md


def test_best_is_chosen_among_rows_with_every_seed(filled, fake_registry) -> None:
    """'flaky' has a value for seed 0 only (seed 1 failed): its one-seed mean must not win the bold."""
    _, _, values = filled
    table, _ = _table(filled, fake_registry)
    fast, slow = statistics.mean(values["fast"]), statistics.mean(values["slow"])
    assert table.best["MSE ↓"] == ("fast" if fast < slow else "slow")


def test_na_and_failed_cells_carry_numbered_notes(filled, fake_registry) -> None:
    table, notes = _table(filled, fake_registry)
    frame = table.frame
    na = notes.items.index("model lacks log_likelihood (required by fake_ll)") + 1
    assert frame.loc["fast", "fake_ll ↑"] == f"n/a [{na}]"
    failed = frame.loc["bad", "MSE ↓"]
    number = int(re.fullmatch(r"failed \[(\d+)\]", failed).group(1))
    assert re.fullmatch(r"RuntimeError: fake failure at step 2 \(conftest\.py:\d+ in train_step\)",
                        notes.items[number - 1])
    # flaky failed on seed 1 only: the seed-0 value with a note on the partial count
    flaky = frame.loc["flaky", "MSE ↓"]
    assert re.fullmatch(rf"{re.escape(fmt(float(flaky.split()[0])))} \(1/2 seeds\) \[{number}\]", flaky), flaky
    md = to_markdown([table], notes)
    assert f"Notes:\n\n1. {notes.items[0]}" in md
    assert all(f"{i}. " in md for i in range(1, len(notes.items) + 1))


def test_differing_params_column_for_aliases(filled, fake_registry) -> None:
    table, _ = _table(filled, fake_registry)
    params = table.frame["params"]
    assert params["fast"] == "fail_at=-1, fail_seed=-1, lr=0.05"
    assert params["slow"] == "fail_at=-1, fail_seed=-1, lr=0.002"
    assert params["bad"] == "fail_at=2, fail_seed=-1, lr=0.05"
    assert params["flaky"] == "fail_at=2, fail_seed=1, lr=0.05"


def test_reference_rows_are_shown(filled, fake_registry) -> None:
    suite, store, _ = filled
    table, _ = _table(filled, fake_registry)
    assert "oracle" in table.frame.index, "the reference row of fake_ref is missing"
    refs = [r["value"] for r in store.frame() if r["kind"] == "reference"]
    assert table.frame.loc["oracle", "params"] == "reference"
    assert table.frame.loc["oracle", "fake_ref ↑"].startswith(fmt(statistics.mean(refs)))
    assert table.best.get("fake_ref ↑") != "oracle"  # references are never "best"


def test_reference_rows_of_a_metric_with_tuple_parameters_are_shown(make_suite, runner, fake_registry) -> None:
    """Its identity holds a tuple, the stored config a JSON list: they must still compare equal."""
    suite = make_suite("[models.linear]\n[metrics.fake_ref_t]\n", header=HEADER)
    _, store = runner(suite)
    assert any(r["kind"] == "reference" for r in store.frame())
    (table,), _ = build_tables(store, suite, fake_registry)
    assert "oracle" in table.frame.index, "a reference row disappears when its metric has a tuple parameter"


def test_csv_columns_and_numbers(filled, fake_registry) -> None:
    _, _, values = filled
    table, _ = _table(filled, fake_registry)
    text = to_csv([table])
    assert text.splitlines()[0] == "dataset,row,kind,metric,mean,std,n_ok,n,status,reason"
    df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    fast = df[(df["row"] == "fast") & (df["metric"] == "fake_mse")].iloc[0]
    assert fast["mean"] == pytest.approx(statistics.mean(values["fast"]), rel=1e-5)
    assert fast["std"] == pytest.approx(statistics.stdev(values["fast"]), rel=1e-5)
    assert (fast["n_ok"], fast["n"], fast["status"], fast["dataset"]) == (2, 2, "ok", "toy")
    bad = df[(df["row"] == "bad") & (df["metric"] == "fake_mse")].iloc[0]
    assert bad["status"] == "failed" and "fake failure" in bad["reason"] and math.isnan(bad["mean"])
    na = df[(df["row"] == "fast") & (df["metric"] == "fake_ll")].iloc[0]
    assert na["status"] == "n/a"


def test_latex_booktabs_and_bold(filled, fake_registry) -> None:
    table, notes = _table(filled, fake_registry)
    tex = to_latex([table], notes, caption="cap")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{l" + "r" * 8 + "}"):
        assert rule in tex
    best = table.best["MSE ↓"]
    cell = table.frame.loc[best, "MSE ↓"].replace("±", r"$\pm$")
    assert rf"\textbf{{{cell}}}" in tex
    assert r"MSE $\downarrow$" in tex and r"fake\_ll $\uparrow$" in tex
    assert tex.count(r"\textbf{") == len(table.best)
    assert r"\label{tab:benchbed-toy}" in tex and "% Notes: [1]" in tex


def test_stale_runs_of_an_edited_suite_are_not_shown(make_suite, runner, fake_registry) -> None:
    body = "[models.fast]\ncomponent = 'linear'\nlr = 0.05\n[metrics.fake_mse]\n"
    _, store = runner(make_suite(body, header=HEADER))
    edited = make_suite(body.replace("0.05", "0.02"), header=HEADER, name="edited.toml")
    (old_table,), _ = build_tables(store, edited, None)  # without a registry nothing is known to be stale
    assert old_table.frame.loc["fast", "seeds"] == "2/2"
    assert build_tables(store, edited, fake_registry)[0] == []  # the edited cells were never run
    runner(edited)
    (table,), _ = build_tables(store, edited, fake_registry)
    assert table.frame.loc["fast", "seeds"] == "2/2"
    assert int(table.stats.loc[table.stats["metric"] == "fake_mse", "n"].iloc[0]) == 2
    assert len({r["run_id"] for r in store.frame() if r["kind"] == "model"}) == 4


def test_write_produces_four_files_with_readme_provenance(filled, fake_registry, tmp_path) -> None:
    suite, store, _ = filled
    paths = leaderboard.write(store, suite, fake_registry, tmp_path / "out")
    assert [p.name for p in paths] == ["README.md", "results.csv", "table.tex", "index.html"]
    readme = paths[0].read_text()
    assert readme.startswith("# Leaderboard: lb\n")
    assert "Reproduce with `benchbed run lb`." in readme
    assert "Provenance: benchbed " in readme, "the provenance line is missing when the last run failed"
    assert "### toy" in readme and "| fast |" in readme


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
    tables, _ = build_tables(store, after, fake_registry)
    assert [t.dataset for t in tables] == ["line"]
    assert set(tables[0].frame.index) == {"quick", "oracle"}  # the reference row follows the data set


def test_tex_escape_leaves_no_unicode_that_pdflatex_rejects() -> None:
    from benchbed.leaderboard import tex_escape

    text = tex_escape("MMD² ↓ 0.1 ± 0.02 · 2×, ≈ & 50% #1 a_b")
    assert text.isascii(), text
    assert text == (r"MMD$^2$ $\downarrow$ 0.1 $\pm$ 0.02 $\cdot$ 2$\times$, $\approx$ \& 50\% \#1 a\_b")
