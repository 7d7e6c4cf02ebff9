"""The command line through ``benchbed.cli.main``: help, list, plugins, run, leaderboard, show, errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import benchbed
from benchbed import cli
from benchbed.contracts import MetricResult
from benchbed.store import Store

HELP = {
    "run": ["SUITE", "--jobs", "--store", "--executor", "--device", "--retry-failed", "--out", "--no-tables",
            "--no-bars", "exit codes:", "--set KEY=VALUE", "--models", "--seeds", "--publish"],
    "plan": ["SUITE", "--store", "--jobs", "--set KEY=VALUE", "--models", "no timing"],
    "list": ["{models,samplers,datasets,metrics,trackers}", "--verbose"],
    "plugins": ["List loaded plugins"],
    "leaderboard": ["SUITE", "--format", "--store", "--out", "--publish", "--set KEY=VALUE"],
    "show": ["RUN", "--store", "--json"],
    "compare": ["RUN_A", "RUN_B", "--store"],
    "download": ["NAME", "--root"],
    "validate": ["SUITE", "Trains nothing"],
}

BUILTIN_SUITE = """
name = "cli"
seeds = [0]
[budget]
steps = 6
batch_size = 32
[datasets.gmm8]
n_train = 128
n_val = 64
n_test = 64
[models.vae]
latent_dim = 2
hidden = [16]
[metrics.recon_mse]
"""


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    """``benchbed run`` installs a SIGTERM handler; keep it from leaking into other tests."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("command", list(HELP))
def test_help_of_each_subcommand(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: benchbed {command}")
    for option in HELP[command]:
        assert option in out, f"'benchbed {command} --help' does not mention {option}"


def test_top_level_help_and_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in HELP)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"benchbed {benchbed.__version__}"
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


# -- with the real built-in plugins --------------------------------------------------------------------


def test_list_all_kinds(capsys) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for header in ("models:", "samplers:", "datasets:", "metrics:", "trackers:"):
        assert f"\n{header}\n" in f"\n{out}"
    lines = out.splitlines()
    assert next(line for line in lines if line.split()[:1] == ["tensorboard"]).endswith("(trackers)")
    vae = next(line for line in lines if line.split()[:1] == ["vae"])
    assert vae.endswith("(generators)")
    recon = next(line for line in lines if line.split()[:1] == ["recon_mse"])
    assert "[↓; requires reconstruct]" in recon and recon.endswith("(metrics)")
    assert "parameters:" not in out


def test_list_models_verbose(capsys) -> None:
    assert cli.main(["list", "models", "-v"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("models:\n") and "datasets:" not in out and "gmm8" not in out
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split()[:1] == ["vae"])
    assert lines[i + 1].strip().startswith("parameters: latent_dim=16, ")
    assert "lr=0.001" in lines[i + 1]


def test_plugins_shows_versions_and_components(capsys, monkeypatch) -> None:
    monkeypatch.delenv("BENCHBED_STRICT_PLUGINS", raising=False)
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"datasets  (benchbed {benchbed.__version__})" in out
    assert "    datasets: gmm8, " in out and "    models: vae, abp" in out
    assert "FAILED" not in out


def test_plugins_reports_a_broken_plugin(capsys, monkeypatch, third_party) -> None:
    monkeypatch.delenv("BENCHBED_STRICT_PLUGINS", raising=False)
    third_party({"bbt_cli_broken": "raise ImportError('nope')\n"}, {"broken": "bbt_cli_broken"})
    assert cli.main(["plugins"]) == 1
    captured = capsys.readouterr()
    out = captured.out
    # one line, as errors are (library callers of load_plugins get a PluginLoadWarning instead)
    assert captured.err.startswith("benchbed: warning: plugin 'broken' from bbthird 1.2.3 failed to import"), \
        captured.err
    assert "broken  FAILED: plugin 'broken' from bbthird 1.2.3 failed to import (bbt_cli_broken): ImportError: nope" \
        in out
    assert "datasets  (benchbed" in out


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory) -> tuple[Path, Path, str, str]:
    """``benchbed run`` once on a tiny built-in suite: (suite file, store, stdout, stderr)."""
    folder = tmp_path_factory.mktemp("cli")
    suite = folder / "suite.toml"
    suite.write_text(BUILTIN_SUITE)
    store = folder / "store.sqlite"
    out, err = io.StringIO(), io.StringIO()
    before = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["run", str(suite), "--store", str(store), "--no-bars"])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert code == 0, err.getvalue()
    return suite, store, out.getvalue(), err.getvalue()


def test_run_writes_the_tables_and_the_page(builtin_run) -> None:
    suite, store, out, err = builtin_run
    folder = suite.parent
    assert f"benchbed: suite cli: 1 cells (1 ok); store {store}" in out
    for name in ("README.md", "results.csv", "summary.csv", "results.json", "table.tex", "index.html", "runs.jsonl"):
        assert f"benchbed: wrote {folder / name}" in out
        assert (folder / name).is_file()
    readme = (folder / "README.md").read_text()
    assert "# Leaderboard: cli" in readme and "| vae |" in readme and "Recon MSE ↓" in readme
    assert (folder / "results.csv").read_text().startswith("run_id,dataset,model,sampler,seed,metric,value,stderr,")
    assert r"\toprule" in (folder / "table.tex").read_text()
    assert '<table class="sortable">' in (folder / "index.html").read_text()
    assert "[benchbed] suite cli: ok" in err  # plain progress lines without a TTY


def test_leaderboard_format_csv(builtin_run, capsys) -> None:
    suite, store, _, _ = builtin_run
    assert cli.main(["leaderboard", str(suite), "--store", str(store), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run_id,dataset,model,sampler,seed,metric,value,stderr,estimator,settings_hash,status,reason"
    (row,) = lines[1:]
    run_id, dataset, model, sampler, seed, metric, value, stderr, _, _, status, _ = row.split(",")
    assert (dataset, model, sampler, seed, metric, status) == ("gmm8", "vae", "", "0", "recon_mse", "ok")
    assert float(value) > 0 and float(stderr) > 0 and len(run_id) == 16
    assert cli.main(["leaderboard", str(suite), "--store", str(store), "--format", "summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dataset,row,kind,metric,estimator,mean,se,std,n_ok,n,best,")


def test_leaderboard_writes_files_to_out(builtin_run, tmp_path, capsys) -> None:
    suite, store, _, _ = builtin_run
    assert cli.main(["leaderboard", str(suite), "--store", str(store), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "index.html", "results.csv", "results.json",
                                                          "runs.jsonl", "summary.csv", "table.tex"]


def test_show_json_prints_the_stored_record(builtin_run, capsys) -> None:
    _, store, _, _ = builtin_run
    assert cli.main(["leaderboard", str(builtin_run[0]), "--store", str(store), "--format", "md"]) == 0
    capsys.readouterr()
    import sqlite3

    with sqlite3.connect(store) as db:
        (run_id,) = db.execute("SELECT run_id FROM runs WHERE kind='model'").fetchone()
    assert cli.main(["show", run_id[:6], "--store", str(store), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["run_id"] == run_id and run["status"] == "ok" and run["model"] == "vae"
    prov = run["provenance"]
    assert prov["benchbed"] == benchbed.__version__ and prov["git_commit"]
    assert {"torch", "pandas", "scikit-learn", "numpy", "python", "device", "data_hashes"} <= set(prov)
    assert prov["components"]["model"] == {"name": "vae", "plugin": "generators", "distribution": "benchbed",
                                           "version": benchbed.__version__}
    assert prov["components"]["dataset"]["plugin"] == "datasets"
    assert run["curves"].endswith(" points") and run["train_steps"] == 6
    assert run["config"]["model"]["params"]["latent_dim"] == 2
    (metric,) = run["metrics"]
    assert metric["metric"] == "recon_mse" and metric["status"] == "ok" and metric["settings"]["split"] == "test"


def test_show_unknown_run_is_an_error(builtin_run, capsys) -> None:
    _, store, _, _ = builtin_run
    assert cli.main(["show", "zzzz", "--store", str(store)]) == 2
    assert capsys.readouterr().err == f"benchbed: error: no run with id (or unique prefix) 'zzzz' in {store}\n"


def test_second_run_skips_the_finished_cell(builtin_run, capsys) -> None:
    suite, store, _, _ = builtin_run
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", "--no-tables"]) == 0
    out = capsys.readouterr().out
    assert "1 cells (1 skipped)" in out and "wrote" not in out


# -- errors ------------------------------------------------------------------------------------------


def test_unknown_suite_lists_known_suites(tmp_path: Path, monkeypatch, capsys) -> None:
    for name in ("beta", "alpha"):
        (tmp_path / "leaderboards" / name).mkdir(parents=True)
        (tmp_path / "leaderboards" / name / "suite.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "nosuch"]) == 2
    assert capsys.readouterr().err == ("benchbed: error: no suite 'nosuch': not a file, and "
                                       f"{Path('leaderboards/nosuch/suite.toml')} does not exist; "
                                       "suites under leaderboards/: alpha, beta\n")
    monkeypatch.chdir(tmp_path / "leaderboards")
    assert cli.main(["leaderboard", "nosuch"]) == 2
    assert "(no leaderboards/ folder here)" in capsys.readouterr().err


def test_suite_error_is_reported_not_raised(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "bad.toml"
    text = BUILTIN_SUITE.replace("[models.vae]", "[models.vea]")
    suite.write_text(text)
    line = text.splitlines().index("[models.vea]") + 1
    assert cli.main(["run", str(suite), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"benchbed: error: {suite}: [models.vea] ({suite}, line {line}): unknown model 'vea'; "
                          "did you mean ")
    assert "'vae'" in err.split("did you mean", 1)[1].split("?")[0]
    assert "Traceback" not in err


def test_several_suite_errors_get_a_line_each(tmp_path: Path, capsys) -> None:
    """Every bad entry is reported by one validation, each as its own ``benchbed: error:`` line."""
    suite = tmp_path / "bad.toml"
    suite.write_text(BUILTIN_SUITE.replace("[models.vae]", "[models.vea]") + "[metrics.recon_mess]\n")
    assert cli.main(["validate", str(suite)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"benchbed: error: {suite}: ") for line in lines)
    assert "unknown model 'vea'" in lines[0] and "unknown metric 'recon_mess'" in lines[1]


def test_suite_by_folder_name_and_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "leaderboards" / "mine").mkdir(parents=True)
    (tmp_path / "leaderboards" / "mine" / "suite.toml").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert cli.resolve_suite_path("mine") == Path("leaderboards/mine/suite.toml")
    assert cli.resolve_suite_path("leaderboards/mine") == Path("leaderboards/mine/suite.toml")
    assert cli.resolve_suite_path(str(tmp_path / "leaderboards/mine/suite.toml")).is_file()


# -- with the fake plugin: exit codes of run -------------------------------------------------------------


@pytest.fixture
def fake_cli(monkeypatch, helpers) -> None:
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: helpers.fake_plugin_set())


def test_run_strict_exit_code(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.bad]\ncomponent = 'linear'\nfail_at = 1\n[models.linear]\n"
                                        "[metrics.fake_mse]\n"))
    store = str(tmp_path / "s.sqlite")
    assert cli.main(["run", str(suite), "--store", store, "--no-tables", "--no-bars"]) == 3
    out, err = capsys.readouterr()
    assert "2 cells (1 failed, 1 ok)" in out and "1 cell(s) of suite t failed or diverged" in err
    fresh = str(tmp_path / "fresh.sqlite")
    assert cli.main(["run", str(suite), "--store", fresh, "--no-tables", "--no-bars", "--strict"]) == 3


def test_run_strict_still_fails_when_the_failed_cell_is_only_skipped(fake_cli, tmp_path: Path, helpers) -> None:
    """CI re-running a suite with --strict must not turn green because the failure is already stored."""
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.bad]\ncomponent = 'linear'\nfail_at = 1\n[metrics.fake_mse]\n"))
    store = str(tmp_path / "s.sqlite")
    assert cli.main(["run", str(suite), "--store", store, "--no-tables", "--no-bars"]) == 3
    assert cli.main(["run", str(suite), "--store", store, "--no-tables", "--no-bars"]) == 3


def test_run_interrupted_exits_130_then_resumes(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text(f"[models.linear]\nflag_file = '{flag}'\nflag_at = 3\n[metrics.fake_mse]\n"))
    store = str(tmp_path / "s.sqlite")
    assert cli.main(["run", str(suite), "--store", store, "--no-tables", "--no-bars"]) == 130
    assert "interrupted; finished cells are in the store" in capsys.readouterr().err
    assert cli.main(["run", str(suite), "--store", store, "--no-bars", "--out", str(tmp_path / "t")]) == 0
    assert "1 cells (1 ok)" in capsys.readouterr().out
    assert (tmp_path / "t" / "README.md").is_file()


def test_list_with_fake_plugin_exact_lines(fake_cli, capsys) -> None:
    assert cli.main(["list", "metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "metrics:"
    assert f"  {'fake_mse':16s}  [↓; requires reconstruct]  (fake)" in lines  # (no description)
    assert f"  {'fake_labels':16s}  [↑]  (fake)" in lines
    assert cli.main(["list", "samplers", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "      parameters: n_steps=5, step_size=0.1, jitter=0.0" in out.splitlines()


def test_default_store_is_beside_the_suite(fake_cli, tmp_path: Path, helpers) -> None:
    folder = tmp_path / "leaderboards" / "s"
    folder.mkdir(parents=True)
    (folder / "suite.toml").write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    assert cli.main(["run", str(folder), "--no-bars"]) == 0
    assert (folder / "results.sqlite").is_file() and (folder / "README.md").is_file()
    assert os.path.isdir(folder / "checkpoints")


# -- bad input: one line naming what is wrong, before any training --------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    ("[models.linear]\nbudget = 'fast'\n[metrics.fake_mse]\n",
     r"\[models\.linear\] 'budget' \(.*suite\.toml, line 8\) must be a table such as \{ steps = 1000 \}, "
     r"got str 'fast'"),
    ("[models.linear]\n[metrics.fake_mse]\n", None),  # the baseline: valid
])
def test_model_budget_must_be_a_table(fake_cli, tmp_path: Path, helpers, capsys, body, message) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text(body))
    code = cli.main(["run", str(suite), "--store", str(tmp_path / "s.sqlite"), "--no-tables", "--no-bars"])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "s.sqlite").exists(), "the store was created before the suite was validated"


def test_dataset_budget_list_non_utf8_and_bom(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n").replace(
        "[datasets.toy]\n", "[datasets.toy]\nbudget = [1, 2]\n"))
    assert cli.main(["run", str(suite), "--no-tables", "--no-bars"]) == 2
    assert "[datasets.toy] 'budget'" in capsys.readouterr().err
    suite.write_bytes(b'name = "caf\xe9"\n')
    assert cli.main(["run", str(suite), "--no-tables", "--no-bars"]) == 2
    assert capsys.readouterr().err == (f"benchbed: error: suite file {suite} is not UTF-8 text: byte 0xe9 at "
                                       "line 1 (save it as UTF-8)\n")
    suite.write_text("\ufeff" + helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"), encoding="utf-8")
    assert cli.main(["run", str(suite), "--store", str(tmp_path / "s.sqlite"), "--no-tables", "--no-bars"]) == 0


@pytest.mark.parametrize("args", [["--jobs", "0"], ["--jobs", "-3"], ["--jobs", "two"]])
def test_jobs_must_be_a_positive_integer(fake_cli, tmp_path: Path, helpers, capsys, args) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(suite), *args])
    assert exit_info.value.code == 2
    assert "argument --jobs/-j:" in capsys.readouterr().err


def test_device_store_and_out_errors(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    assert cli.main(["run", str(suite), "--device", "tpu", "--no-bars"]) == 2
    assert capsys.readouterr().err == ("benchbed: error: --device: device 'tpu' is not one of auto, cpu, mps, "
                                       "cuda, cuda:N\n")
    text = suite.read_text().replace('name = "t"\n', 'name = "t"\ndevice = "tpu"\n')
    (tmp_path / "dev.toml").write_text(text)
    assert cli.main(["run", str(tmp_path / "dev.toml"), "--no-bars"]) == 2
    assert "'device' (" in capsys.readouterr().err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert cli.main(["run", str(suite), "--store", str(blocker / "s.sqlite"), "--no-bars"]) == 2
    assert capsys.readouterr().err.startswith(f"benchbed: error: cannot create result store {blocker / 's.sqlite'}")
    assert cli.main(["run", str(suite), "--store", str(tmp_path / "s.sqlite"), "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == f"benchbed: error: --out {blocker}: is a file, not a folder for the tables\n"
    assert not (tmp_path / "s.sqlite").exists(), "--out is checked before anything is trained"


def test_show_ambiguous_prefix_and_missing_store(fake_cli, tmp_path: Path, helpers, capsys) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.a]\ncomponent = 'linear'\n[models.b]\ncomponent = 'linear'\n"
                                        "lr = 0.01\n[models.c]\ncomponent = 'linear'\nlr = 0.02\n[metrics.fake_mse]\n"))
    store = tmp_path / "s.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-tables", "--no-bars"]) == 0
    capsys.readouterr()
    assert cli.main(["show", "", "--store", str(store)]) == 2
    assert "is ambiguous" in capsys.readouterr().err
    assert cli.main(["show", "abc", "--store", str(tmp_path / "typo" / "x.sqlite")]) == 2
    assert capsys.readouterr().err == f"benchbed: error: no store at {tmp_path / 'typo' / 'x.sqlite'}\n"
    assert not (tmp_path / "typo").exists()


GMM8 = 'name = "v"\nseeds = [0]\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.gmm8]\n[models.vae]\n'


@pytest.mark.parametrize(("metric", "message"), [
    ("[metrics.outlier_auroc]\nclasses = [99]\n",
     "[metrics.outlier_auroc] on data set 'gmm8': held-out classes [99] are not classes of data set 'gmm8' (0..7)"),
    ("[metrics.recon_mse]\nsplit = 'tset'\n",
     "[metrics.recon_mse] on data set 'gmm8': split must be 'train', 'val' or 'test', got 'tset'"),
    ("[metrics.accuracy]\nn_labels_per_class = 100000\n",
     "[metrics.accuracy] on data set 'gmm8': n_labels_per_class = 100000, but the training split of 'gmm8' holds "
     "only "),
])
def test_settings_that_depend_on_the_data_fail_before_training(tmp_path: Path, capsys, metric: str,
                                                                 message: str) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(GMM8 + metric)
    store = tmp_path / "s.sqlite"
    assert cli.main(["validate", str(suite)]) == 2
    assert f"benchbed: error: {suite}: {message}" in capsys.readouterr().err
    assert cli.main(["run", str(suite), "--store", str(store)]) == 2
    assert message in capsys.readouterr().err
    assert not store.exists(), "nothing may be trained or stored"


def test_validate_a_good_suite_trains_nothing(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(GMM8 + "[metrics.outlier_auroc]\nclasses = [1]\n")
    assert cli.main(["validate", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "benchbed: suite v: 1 cells, 1 data set(s) loaded and checked, 1 metric(s)" in out
    assert "is valid; nothing was trained" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml"]


def test_internal_errors_are_one_line_unless_debug(fake_cli, tmp_path: Path, capsys, monkeypatch) -> None:
    def broken(args):  # noqa: ANN001, ANN202
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_list", broken)
    parser = cli.build_parser  # the sub-command table holds the function: rebuild with the patched one
    monkeypatch.setattr(cli, "build_parser", lambda: parser())
    assert cli.main(["list"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("benchbed: internal error: ZeroDivisionError: division by zero (run with --debug")
    assert "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "list"])


def test_a_failed_metric_is_reported_and_retried_without_training(fake_cli, tmp_path: Path, helpers, capsys,
                                                                  monkeypatch) -> None:
    """A metric that raises leaves an ``ok`` cell with a hole: the run names it and exits 3; once the metric
    is fixed, ``--retry-failed`` evaluates it again on the saved final model and trains nothing."""
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n[metrics.fake_boom]\n"))
    store = str(tmp_path / "s.sqlite")
    args = ["run", str(suite), "--store", store, "--no-tables", "--no-bars"]
    assert cli.main(args) == 3
    out, err = capsys.readouterr()
    assert "1 cells (1 ok)" in out
    assert "metric 'fake_boom' failed on" in err and "ValueError: metric exploded" in err
    assert "1 metric value(s) of suite t failed" in err and "--retry-failed" in err
    assert cli.main(args) == 3  # still a hole on a plain re-run: the stored failure counts
    capsys.readouterr()

    trained: list[int] = []
    monkeypatch.setattr(helpers.LinearAE, "train_step", lambda self, batch, step: trained.append(step) or {})
    boom = type(helpers.fake_plugin_set().registry.metric("fake_boom").factory())
    monkeypatch.setattr(boom, "evaluate", lambda self, ctx: MetricResult(1.5))
    assert cli.main([*args, "--retry-failed"]) == 0
    out, err = capsys.readouterr()
    assert trained == [] and "failed" not in err
    s = Store(Path(store))
    (run,) = helpers.model_runs(s)
    s.close()
    values = {m["metric"]: (m["status"], m["value"]) for m in run["metrics"]}
    assert values["fake_boom"] == ("ok", 1.5) and values["fake_mse"][0] == "ok"


def test_a_finished_cell_whose_data_changed_is_kept_with_a_warning(fake_cli, tmp_path: Path, helpers, capsys,
                                                                   monkeypatch) -> None:
    """The store records each run's data hash: when the same data set entry now loads other data, the
    finished cell is not retrained (nor silently trusted): the run warns, naming both hashes."""
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    args = ["run", str(suite), "--store", str(tmp_path / "s.sqlite"), "--no-tables", "--no-bars"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "finished before on other data" not in capsys.readouterr().err  # same data: nothing to say
    load = helpers.ToyData.load

    def shifted(self, *, seed: int):  # noqa: ANN001, ANN202
        bundle = load(self, seed=seed)
        return type(bundle)(bundle.info, type(bundle.train)(bundle.train.x + 0.5), bundle.val, bundle.test)

    monkeypatch.setattr(helpers.ToyData, "load", shifted)
    trained: list[int] = []
    monkeypatch.setattr(helpers.LinearAE, "train_step", lambda self, batch, step: trained.append(step) or {})
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: .* finished before on other data \(data hash [0-9a-f]{16}, now [0-9a-f]{16}\)", err)
    assert trained == []


def test_a_closed_pipe_is_not_an_internal_error(tmp_path: Path, monkeypatch, capsys) -> None:
    """`benchbed list -v | head -1`: once the reader has left, a write raises BrokenPipeError; benchbed
    exits 141 (SIGPIPE's shell code) quietly instead of reporting an internal error."""
    fd = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT)

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self) -> int:
            return fd  # benchbed points it at devnull, so that the interpreter's last flush is quiet

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert cli.main(["list", "-v"]) == cli.EXIT_BROKEN_PIPE
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    os.close(fd)


def test_a_device_this_machine_lacks_is_refused_before_anything_is_recorded(fake_cli, tmp_path: Path, helpers,
                                                                             capsys, monkeypatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # a machine without CUDA, wherever this runs
    suite = tmp_path / "suite.toml"
    text = helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n")
    suite.write_text(text.replace('name = "t"', 'name = "t"\ndevice = "cuda:1"'))
    store = tmp_path / "s.sqlite"
    assert cli.main(["validate", str(suite)]) == 2
    assert re.search(r"suite\.toml: device 'cuda:1': CUDA is not available on this machine", capsys.readouterr().err)
    assert cli.main(["run", str(suite), "--store", str(store), "--no-tables", "--no-bars"]) == 2
    assert "device 'cuda:1': CUDA is not available" in capsys.readouterr().err
    assert cli.main(["run", str(suite), "--store", str(store), "--no-tables", "--no-bars", "--device", "cuda"]) == 2
    assert "--device 'cuda': CUDA is not available" in capsys.readouterr().err
    assert not store.exists()  # nothing claimed, nothing recorded
    assert cli.main(["run", str(suite), "--store", str(store), "--no-tables", "--no-bars", "--device", "cpu"]) == 0


def test_a_store_damaged_inside_is_a_clean_error(fake_cli, tmp_path: Path, helpers, capsys, monkeypatch) -> None:
    """A store whose header reads but whose pages are damaged fails in a query (SQLite's DatabaseError,
    "database disk image is malformed"): the command says the store is damaged and what to do, exit 2,
    not an internal error."""
    import sqlite3

    from benchbed.store import Store

    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    store = tmp_path / "s.sqlite"

    def damaged(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Store, "claim", damaged)
    assert cli.main(["run", str(suite), "--store", str(store), "--no-tables", "--no-bars"]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert re.search(r"benchbed: error: result store .*s\.sqlite is damaged \(database disk image is malformed\): "
                     r"restore it from a copy, or move it away", err), err


@pytest.mark.parametrize(("flags", "message"), [
    (["--no-tables", "--publish"], "--no-tables and --publish: give one"),
    (["--no-tables", "--out", "tables"], "--no-tables and --out: give one"),
    (["--executor", "serial", "--jobs", "4"], "--executor serial and --jobs 4: the serial executor runs one cell"),
])
def test_contradictory_run_flags_are_refused(fake_cli, tmp_path: Path, helpers, capsys, flags: list[str],
                                             message: str) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    store = tmp_path / "s.sqlite"
    assert cli.main(["run", str(suite), "--store", str(store), "--no-bars", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not store.exists() and not (tmp_path / "tables").exists()


def test_an_unknown_component_that_earlier_runs_recorded_names_its_plugin(fake_cli, tmp_path: Path, helpers, capsys,
                                                                          monkeypatch) -> None:
    """After the plugin that registered a suite's model is uninstalled (or left out), "unknown model" comes
    with the plugin and distribution the suite's stored runs recorded for it: which package to install."""
    folder = tmp_path / "s"
    folder.mkdir()
    suite = folder / "suite.toml"
    suite.write_text(helpers.suite_text("[models.linear]\n[metrics.fake_mse]\n"))
    assert cli.main(["run", str(suite), "--no-bars", "--no-tables"]) == 0  # store beside the suite file
    capsys.readouterr()
    monkeypatch.setenv("BENCHBED_DISABLE_PLUGINS", "fake")  # the plugin is gone
    assert cli.main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'linear'" in err
    assert ("benchbed: note: earlier runs of this suite recorded model 'linear' from plugin 'fake' of (in-process) 0: "
            "install it to use them") in err
    assert "recorded dataset 'toy' from plugin 'fake'" in err
