"""The researcher's workflow through the real command line (``benchbed.cli.main``): ``--set`` overrides and
cell selection on run, plan and leaderboard, where a partial run's tables go, ``plan``, ``compare``, the
human-readable ``show``, ``list -v`` parameter lines, ``download``, and a ``--help`` that imports no torch."""

from __future__ import annotations

import json
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchbed import cli
from benchbed.docstrings import args_section, first_sentence
from benchbed.errors import SuiteError
from benchbed.grid import plan
from benchbed.overrides import Selection, parse_override
from benchbed.suite import load_suite

TWO_MODELS = """\
[models.a]
component = "linear"
[models.b]
component = "linear"
lr = 0.01
[metrics.fake_mse]
"""
TWO_SEEDS = 'name = "t"\nseeds = [0, 1]\n[budget]\nsteps = 24\nbatch_size = 16\n[datasets.toy]\n'


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.fixture
def fake_cli(monkeypatch, helpers) -> None:
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: helpers.fake_plugin_set())


def _suite(tmp_path: Path, helpers, body: str = TWO_MODELS, header: str = TWO_SEEDS) -> Path:
    folder = tmp_path / "s"
    folder.mkdir(exist_ok=True)
    path = folder / "suite.toml"
    path.write_text(helpers.suite_text(body, header))
    return path


def _runs(store: Path) -> dict[str, dict]:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT run_id, model, seed, config, status FROM runs WHERE kind='model'").fetchall()
    return {r[0]: {"model": r[1], "seed": r[2], "config": json.loads(r[3]), "status": r[4]} for r in rows}


# -- --set -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "path", "value"), [
    ("models.vae.latent_dim=16", ("models", "vae", "latent_dim"), 16),
    ("models.vae.lr=1e-3", ("models", "vae", "lr"), 1e-3),
    ("models.vae.hidden=[8, 16]", ("models", "vae", "hidden"), [8, 16]),
    ('models.vae.arch="mlp"', ("models", "vae", "arch"), "mlp"),
    ("models.vae.arch=mlp", ("models", "vae", "arch"), "mlp"),  # a bare word is a string
    ("metrics.m.flag=true", ("metrics", "m", "flag"), True),
    ('models."a.b".x = 2', ("models", "a.b", "x"), 2),
    ("samplers.s.posterior={ n_steps = 5 }", ("samplers", "s", "posterior"), {"n_steps": 5}),
])
def test_set_values_are_typed_as_toml(text: str, path: tuple[str, ...], value: object) -> None:
    override = parse_override(text)
    assert override.path == path and override.value == value and type(override.value) is type(value)


@pytest.mark.parametrize(("text", "message"), [
    ("lr", "--set lr: expected KEY=VALUE"),
    ("models.vae.hidden=[8,", "is not a TOML value"),
    ("models..x=1", "is not a dotted key"),
    ("models.vae.lr=", "no value after '='"),
])
def test_set_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SuiteError, match=re.escape(message)):
        parse_override(text)


def test_set_is_applied_before_training_and_stored(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    suite = _suite(tmp_path, helpers, "[models.a]\ncomponent = 'linear'\n[metrics.fake_mse]\n",
                   TWO_SEEDS.replace("[0, 1]", "[0]"))
    store = tmp_path / "x.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--set", "models.a.lr=0.02",
                     "--set", "models.a.hidden=[3, 2]", "--set", "models.a.mode=fancy", "--set", "budget.steps=8",
                     "--set", "models.a.budget.batch_size=8"]) == 0
    (run,) = _runs(store).values()
    params = run["config"]["model"]["params"]
    assert params["lr"] == 0.02 and params["hidden"] == [3, 2] and params["mode"] == "fancy"
    assert run["config"]["budget"] == {"steps": 8, "batch_size": 8}
    assert "a partial run (--set models.a.lr=0.02" in capsys.readouterr().out


@pytest.mark.parametrize(("option", "message"), [
    ("models.a.lr=abc", "model 'a' (component 'linear'): parameter 'lr' (--set models.a.lr=abc) must be float, "
                        "got str 'abc'"),
    ("models.a.latnt_dim=2", "unknown parameter 'latnt_dim' (--set models.a.latnt_dim=2); valid parameters: "
                             "latent_dim, "),
    ("models.aa.lr=1", "--set models.aa.lr=1: the suite has no entry [models.aa] (did you mean 'a'?); entries: a"),
    ("budget.steps=0", "[budget] 'steps' (--set budget.steps=0) must be a positive integer (at most 1e+12), got 0"),
    ("seeds=[0, 0]", "'seeds' (--set seeds=[0, 0]) repeats 0"),
    ("models.a.mode=odd", "parameter 'mode' (--set models.a.mode=odd) must be one of 'plain', 'fancy', got str 'odd'"),
    ("nosuch=1", "unknown top-level key 'nosuch' (--set nosuch=1); valid keys: "),
    ("nosuch.key=1", "unknown top-level key 'nosuch' (--set nosuch.key=1); valid keys: "),
    ("models.a=1", "--set models.a=1: set a parameter of an entry (models.<entry>.<parameter>)"),
])
def test_set_errors_name_the_override(fake_cli, tmp_path: Path, helpers, capsys, option: str, message: str) -> None:
    suite = _suite(tmp_path, helpers, "[models.a]\ncomponent = 'linear'\n[metrics.fake_mse]\n")
    store = tmp_path / "x.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--set", option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchbed: error: ") and message in err, err
    assert not store.exists(), "nothing may be stored before the suite is valid"
    assert cli.main(["plan", str(suite), "--set", option]) == 2  # plan checks the same way
    assert message in capsys.readouterr().err


# -- selection ----------------------------------------------------------------------------------------------


def test_selected_cells_keep_their_run_ids_and_resume_into_the_full_suite(fake_cli, tmp_path: Path, helpers,
                                                                          capsys) -> None:
    suite = _suite(tmp_path, helpers)
    full = {c.run_id: (c.model.label, c.seed) for c in plan(load_suite(suite, helpers.fake_plugin_set().registry),
                                                             helpers.fake_plugin_set().registry)[0]}
    store = tmp_path / "x.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--models", "b", "--seeds", "1"]) == 0
    assert "1 cells (1 ok)" in capsys.readouterr().out
    ((run_id, run),) = _runs(store).items()
    assert full[run_id] == ("b", 1) and run["status"] == "ok"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--no-tables"]) == 0
    assert "4 cells (3 ok, 1 skipped)" in capsys.readouterr().out
    assert set(_runs(store)) == set(full)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--models", "a,c", "--models: 'c' is not an entry of the suite; valid: a, b"),
    ("--seeds", "0,5", "--seeds: 5 is not a seed of the suite; valid: 0, 1"),
    ("--seeds", "x", "--seeds 'x': seeds are integers, e.g. --seeds 0,1"),
    ("--metrics", "fake_ms", "--metrics: 'fake_ms' is not an entry of the suite (did you mean 'fake_mse'?); valid: "
                             "fake_mse"),
    ("--datasets", "", "--datasets '': give one or more comma-separated names"),
    ("--samplers", "walk", "--samplers: 'walk' is not an entry of the suite; valid: none"),
])
def test_unknown_selection_names_list_the_valid_ones(fake_cli, tmp_path: Path, helpers, capsys, option: str,
                                                     value: str, message: str) -> None:
    suite = _suite(tmp_path, helpers)
    assert cli.main(["run", str(suite), "--store", str(tmp_path / "x.sqlite"), option, value]) == 2
    assert capsys.readouterr().err == f"benchbed: error: {message}\n"
    assert not (tmp_path / "x.sqlite").exists()


def test_sampler_selection_keeps_only_cells_with_those_samplers(helpers, tmp_path: Path) -> None:
    registry = helpers.fake_plugin_set().registry
    path = _suite(tmp_path, helpers, "[models.lin]\ncomponent = 'linear'\n[models.d]\ncomponent = 'dyn_any'\n"
                                     "[models.p]\ncomponent = 'dyn_any'\nsamplers = ['walk']\n"
                                     "[samplers.walk]\n[samplers.other_walk]\n[metrics.fake_mse]\n")
    full = {c.run_id: c.title for c in plan(load_suite(path, registry), registry)[0]}
    suite = load_suite(path, registry, selection=Selection(samplers=("other_walk",)))
    cells = plan(suite, registry)[0]
    assert [c.title for c in cells] == ["d · other_walk · toy · seed 0", "d · other_walk · toy · seed 1"]
    assert all(full[c.run_id] == c.title for c in cells)  # same run ids as in the full suite
    both = load_suite(path, registry, selection=Selection(samplers=("walk",), seeds=(0,)))
    assert [c.title for c in plan(both, registry)[0]] == ["d · walk · toy · seed 0", "p · walk · toy · seed 0"]


def test_metric_selection_evaluates_only_those_metrics(fake_cli, tmp_path: Path, helpers) -> None:
    suite = _suite(tmp_path, helpers, "[models.a]\ncomponent = 'linear'\n[metrics.fake_mse]\n[metrics.mse2]\n"
                                      "component = 'fake_mse'\nsplit = 'val'\n", TWO_SEEDS.replace("[0, 1]", "[0]"))
    store = tmp_path / "x.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--metrics", "mse2"]) == 0
    with sqlite3.connect(store) as db:
        assert [r[0] for r in db.execute("SELECT metric FROM metrics")] == ["mse2"]
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--no-tables"]) == 0  # adds the other
    with sqlite3.connect(store) as db:
        assert sorted(r[0] for r in db.execute("SELECT metric FROM metrics")) == ["fake_mse", "mse2"]


def test_a_suite_source_loads_the_same_partial_suite_in_another_process(helpers, tmp_path: Path) -> None:
    registry = helpers.fake_plugin_set().registry
    path = _suite(tmp_path, helpers)
    suite = load_suite(path, registry, overrides=["budget.steps=7"], selection=Selection(models=("b",), seeds=(1,)))
    source = pickle.loads(pickle.dumps(suite.source))  # what pool and Ray workers receive
    again = load_suite(source, registry)
    assert again == suite and again.partial and again.budget.steps == 7 and [m.label for m in again.models] == ["b"]
    assert not load_suite(path, registry).partial


# -- where a partial run's tables go -------------------------------------------------------------------------


def test_a_partial_run_never_overwrites_the_published_tables_unless_told(fake_cli, tmp_path: Path, helpers,
                                                                        capsys) -> None:
    suite = _suite(tmp_path, helpers)
    folder = suite.parent
    assert cli.main(["run", str(suite), "--no-bars"]) == 0
    published = {name: (folder / name).read_bytes() for name in ("README.md", "results.csv", "runs.jsonl")}
    assert "| a |" in published["README.md"].decode() and "| b |" in published["README.md"].decode()
    capsys.readouterr()

    assert cli.main(["run", str(suite), "--no-bars", "--models", "a", "--set", "models.a.lr=0.02"]) == 0
    out = capsys.readouterr().out
    assert "wrote" not in out and f"the published tables in {folder} were left unchanged" in out
    assert {name: (folder / name).read_bytes() for name in published} == published

    assert cli.main(["leaderboard", str(suite), "--models", "a"]) == 2
    assert "is not written over the published tables" in capsys.readouterr().err
    assert cli.main(["leaderboard", str(suite), "--models", "a", "--format", "md"]) == 0
    view = capsys.readouterr().out
    assert "| a |" in view and "| b |" not in view

    out_dir = tmp_path / "view"
    assert cli.main(["run", str(suite), "--no-bars", "--models", "a", "--out", str(out_dir)]) == 0
    assert "| b |" not in (out_dir / "README.md").read_text() and "| a |" in (out_dir / "README.md").read_text()
    assert {name: (folder / name).read_bytes() for name in published} == published

    assert cli.main(["run", str(suite), "--no-bars", "--models", "a", "--out", str(out_dir), "--publish"]) == 2
    assert "--out and --publish: give one" in capsys.readouterr().err
    assert cli.main(["run", str(suite), "--no-bars", "--models", "a", "--publish"]) == 0
    readme = (folder / "README.md").read_text()
    assert "| a |" in readme and "| b |" not in readme  # asked for: the partial view is published


# -- plan ----------------------------------------------------------------------------------------------------


def test_plan_lists_cells_na_pairs_what_is_done_and_estimates(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    body = "[models.a]\ncomponent = 'linear'\n[metrics.fake_mse]\n[metrics.fake_img]\n"
    suite = _suite(tmp_path, helpers, body)
    store = tmp_path / "x.sqlite"
    assert cli.main(["plan", str(suite), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suite t: 2 cells (2 table cells, 0 held-out training(s)); seeds 0, 1\n")
    assert len(re.findall(r"to run +— +[0-9a-f]{16} +a · toy · seed \d +no timing", out)) == 2
    assert "a × fake_img on toy: fake_img applies to image data, not vector" in out
    assert "estimated wall time: unknown: no stored timing for any of the 2 cell(s) to run" in out
    assert "(not created yet)" in out
    assert not store.exists(), "plan writes nothing"

    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--no-tables", "--seeds", "0"]) == 0
    capsys.readouterr()
    assert cli.main(["plan", str(suite), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"done \(ok\) +\d+ s +[0-9a-f]{16} +a · toy · seed 0 +same run", out), out
    assert re.search(r"to run +\d+ s +[0-9a-f]{16} +a · toy · seed 1 +similar: 1 run\(s\) of linear, same data set "
                     r"settings, scaled by steps", out), out
    assert re.search(r"estimated wall time: \d+ s for 1 cell\(s\) to run .*; 1 cell\(s\) already finished\n", out)

    # 4x the steps: new run ids, estimated from the finished cell of the same model and data set
    assert cli.main(["plan", str(suite), "--store", str(store), "--set", "budget.steps=96", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "note: a partial view: --set budget.steps=96" in out
    assert len(re.findall(r"to run +\d+ s +[0-9a-f]{16} .* similar: 1 run\(s\) of linear", out)) == 2
    assert re.search(r"estimated wall time: \d+ s for 2 cell\(s\) to run \(\d+ s of cell time, --jobs 2\)", out)


def test_plan_shows_held_out_trainings_with_the_builtin_plugins(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "v"\nseeds = [0]\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.gmm8]\n[models.vae]\n'
                     "[metrics.outlier_auroc]\nclasses = [1]\n[metrics.fid]\n")
    assert cli.main(["plan", str(suite)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suite v: 2 cells (1 table cells, 1 held-out training(s)); seeds 0\n"), out
    rows = [line for line in out.splitlines() if "vae · gmm8" in line]
    assert "held out [1]" in rows[0] and "held out" not in rows[1]  # the training first, then its cell
    assert re.search(r"vae × fid on gmm8: fid applies to image data, not vector", out), out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml"]


def test_plan_estimates_scale_training_time_by_steps(helpers, tmp_path: Path) -> None:
    from benchbed.planning_report import PastRun, estimate

    registry = helpers.fake_plugin_set().registry
    path = _suite(tmp_path, helpers, "[models.a]\ncomponent = 'linear'\n[metrics.fake_mse]\n")
    cell = plan(load_suite(path, registry, overrides=["budget.steps=100"]), registry)[0][0]
    from benchbed.suite import config_hash

    key = config_hash(cell.dataset.identity())
    runs = [PastRun("x", "ok", "linear", key, "toy", 50, wall_time=12.0, train_time=10.0, source="store"),
            PastRun("y", "failed", "linear", key, "toy", 50, wall_time=99.0, train_time=99.0, source="store")]
    est = estimate(cell, runs)
    assert est.seconds == pytest.approx(10.0 * 2 + 2.0) and "similar: 1 run(s)" in est.basis
    assert estimate(cell, []).basis == "no timing"
    assert estimate(cell.variant((0,)), runs).seconds == pytest.approx(20.0)  # no metrics in a held-out training


# -- show and compare -------------------------------------------------------------------------------------------


def test_show_is_readable_and_compare_lists_the_differences(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    suite = _suite(tmp_path, helpers, header=TWO_SEEDS.replace("[0, 1]", "[0]"))
    store = tmp_path / "x.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--no-tables"]) == 0
    capsys.readouterr()
    ids = {run["model"]: run_id for run_id, run in _runs(store).items()}

    assert cli.main(["show", ids["b"][:8], "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {ids['b']}  ({store})\n")
    assert re.search(r"  started +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out) and "17" not in out.split("started")[1][:6]
    assert re.search(r"  metric +value ± stderr +estimator +reason\n  fake_mse +\d\.\d+", out), out
    assert "model.params.lr" in out and "0.01" in out and "configuration" in out and "provenance" in out
    assert re.search(r"  model +linear \(plugin fake", out)
    assert cli.main(["show", ids["b"], "--store", str(store), "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["run_id"] == ids["b"] and isinstance(raw["started_at"], float)

    other = tmp_path / "other.sqlite"
    assert cli.main(["run", str(suite), "--store", str(other), "--no-bars", "--no-tables",
                     "--set", "models.a.lr=0.02"]) == 0
    capsys.readouterr()
    (tuned,) = [i for i, r in _runs(other).items() if r["model"] == "a"]
    assert cli.main(["compare", ids["a"], tuned, "--store", str(store), "--store", str(other)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"A  {ids['a']}  a · toy · seed 0  (ok; {store})\n"
                          f"B  {tuned}  a · toy · seed 0  (ok; {other})\n")
    assert re.search(r"  model\.params\.lr +0\.05 +0\.02\n", out), out
    assert re.search(r"  model\.given\.lr +— +0\.02\n", out)
    assert "configuration: 2 difference(s)" in out  # model.given.lr, model.params.lr
    row = next(line for line in out.splitlines() if line.strip().startswith("fake_mse"))
    _, a_value, b_value, delta = (float(v) if i else v for i, v in enumerate(row.split()))
    assert delta == pytest.approx(b_value - a_value, rel=1e-2, abs=1e-3) and a_value != b_value
    assert cli.main(["compare", ids["a"], "ffff", "--store", str(store)]) == 2
    assert "no run with id (or unique prefix) 'ffff'" in capsys.readouterr().err


# -- list -v, download, --help ----------------------------------------------------------------------------------


def test_metric_values_with_stderr_and_estimators_that_differ() -> None:
    from benchbed.compare import compare_text, value_text

    assert value_text({"status": "ok", "value": 0.012345, "stderr": 0.00045}) == "0.01235 ± 0.00045"
    assert value_text({"status": "n/a", "value": None}) == "n/a"
    a = {"run_id": "a" * 16, "model": "m", "dataset": "d", "seed": 0, "status": "ok", "config": {"x": 1},
         "metrics": [{"metric": "ll", "status": "ok", "value": -3.0, "stderr": 0.1, "estimator": "IWAE"}]}
    b = {**a, "run_id": "b" * 16, "config": {"x": 2, "y": [1, 2]},
         "metrics": [{"metric": "ll", "status": "ok", "value": -2.5, "stderr": 0.1, "estimator": "AIS"}]}
    out = compare_text(a, Path("s1"), b, Path("s2"))
    assert re.search(r"  x +1 +2\n  y +— +\[1, 2\]\n", out), out
    assert re.search(r"  ll +-3 ± 0\.1 +-2\.5 ± 0\.1 +not comparable +IWAE vs AIS", out), out
    same = compare_text(a, Path("s1"), {**b, "metrics": [{**b["metrics"][0], "estimator": "IWAE"}]}, Path("s2"))
    assert re.search(r"  ll +-3 ± 0\.1 +-2\.5 ± 0\.1 +0\.5 +IWAE", same), same


def test_google_docstring_args_section() -> None:
    doc = """Summary.

    Args:
        latent_dim: size of z. The rest is detail.
        hidden (tuple[int, ...]): widths of the
            hidden layers (e.g. 2 layers).
        **kwargs: ignored.

    Returns:
        nothing: not a parameter.
    """
    args = args_section(doc)
    assert args == {"latent_dim": "size of z. The rest is detail.",
                    "hidden": "widths of the hidden layers (e.g. 2 layers).", "kwargs": "ignored."}
    assert first_sentence(args["latent_dim"]) == "size of z"
    assert first_sentence(args["hidden"]) == "widths of the hidden layers (e.g. 2 layers)"
    assert args_section("No sections.") == {}


def test_list_verbose_shows_type_default_range_and_meaning(capsys) -> None:
    assert cli.main(["list", "models", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split()[:1] == ["vae"])
    block = lines[i + 1:next(j for j in range(i + 1, len(lines)) if not lines[j].startswith("      "))]
    assert block[0].strip().startswith("parameters: latent_dim=16")
    latent = next(line for line in block if line.strip().startswith("latent_dim:"))
    assert latent.strip() == "latent_dim: int = 16  [> 0]  - size of z"
    assert any(line.strip().startswith("lr: float = 0.001") for line in block)


def test_download_calls_benchbed_downloads(fake_cli, monkeypatch, capsys, tmp_path: Path) -> None:
    import benchbed.downloads

    calls = []

    def fake(names, *, root=None, registry=None):  # noqa: ANN001, ANN202
        calls.append((list(names), root, registry is not None))
        return [tmp_path / "a.bin"]

    monkeypatch.setattr(benchbed.downloads, "download", fake)
    assert cli.main(["download", "mnist", "fid", "--root", str(tmp_path)]) == 0
    assert calls == [(["mnist", "fid"], str(tmp_path), True)]
    assert capsys.readouterr().out == f"benchbed: {tmp_path / 'a.bin'}\n"


HELP_PROBE = """
import contextlib, io, sys
from benchbed import cli
for argv in ({argv}):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main(argv)
        except SystemExit:
            pass
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'pandas')
               or m.startswith('benchbed_'))
print(heavy)
"""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["plan", "--help"], ["show", "--help"]])
def test_help_imports_no_torch_and_no_plugin(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", HELP_PROBE.format(argv=repr(argv) + ",")], capture_output=True,
                         text=True, check=True).stdout
    heavy = eval(out)  # noqa: S307 - our own probe's printed list
    assert not [m for m in heavy if m.startswith(("torch", "benchbed_", "pandas"))], heavy


def test_top_level_help_is_fast() -> None:
    """``python -m benchbed --help``, best of 3, well under a second (0.5 s on an idle machine; the margin is
    for loaded CI machines, where the start of Python itself takes a good part of that)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchbed", "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    assert best < 1.5, f"benchbed --help took {best:.2f} s"


def test_run_help_still_names_the_stale_claim_age(capsys) -> None:
    """The age comes from benchbed.store, read only when the help is shown."""
    from benchbed.store import HEARTBEAT_STALE_S

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert f"once its heartbeat is {HEARTBEAT_STALE_S:g} s old" in " ".join(capsys.readouterr().out.split())


def test_pool_workers_run_the_partial_suite(tmp_path: Path, capsys) -> None:
    """``--jobs 2``: the spawned workers load the suite with the same --set and selection (``Suite.source``),
    so a metric setting overridden on the command line is the one evaluated and stored."""
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "p"\nseeds = [0, 1, 2]\n[budget]\nsteps = 4\nbatch_size = 32\n'
                     "[datasets.gmm8]\nn_train = 128\nn_val = 64\nn_test = 64\n"
                     "[models.vae]\nlatent_dim = 2\nhidden = [8]\n[models.other]\ncomponent = 'vae'\n"
                     "[metrics.recon_mse]\n")
    store = tmp_path / "x.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--jobs", "2", "--models", "vae",
                     "--seeds", "0,2", "--set", "metrics.recon_mse.split=val"]) == 0
    assert "2 cells (2 ok)" in capsys.readouterr().out
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT r.model, r.seed, m.settings FROM runs r JOIN metrics m USING (run_id)").fetchall()
    assert sorted((model, seed) for model, seed, _ in rows) == [("vae", 0), ("vae", 2)]
    assert all(json.loads(settings)["split"] == "val" for _, _, settings in rows)
