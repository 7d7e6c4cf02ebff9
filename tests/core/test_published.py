"""Published results live in the repository: a fresh clone rebuilds every published file from the
portable run file byte-identically, retrains nothing, and never overwrites a table with an empty one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchbed import cli, published
from benchbed.formats import FILENAMES

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = [*FILENAMES.values(), published.RUNS_FILE]
SUITE = """\
name = "s"
seeds = [0, 1]
[budget]
steps = 24
batch_size = 16
[datasets.toy]
[models.linear]
[models.bad]
component = "linear"
fail_at = 2
[metrics.fake_mse]
[metrics.fake_ref]
[metrics.fake_ll]
"""


@pytest.fixture
def fake_cli(monkeypatch, helpers) -> None:
    monkeypatch.setattr(cli, "load_plugins", lambda **kw: helpers.fake_plugin_set())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in PUBLISHED if (folder / name).is_file()}


def _clone(src_root: Path, dst_root: Path, rel: str) -> Path:
    """What git would give a fresh clone: the suite folder's committed files, no store, no checkpoints."""
    dst = dst_root / rel
    dst.mkdir(parents=True)
    for name in ["suite.toml", *PUBLISHED]:
        if (src_root / rel / name).is_file():
            shutil.copy2(src_root / rel / name, dst / name)
    return dst


@pytest.fixture
def origin(fake_cli, tmp_path: Path, monkeypatch) -> Path:
    """A repository whose suite ``leaderboards/s`` was run: (its root)."""
    root = tmp_path / "origin"
    (root / "leaderboards" / "s").mkdir(parents=True)
    (root / "leaderboards" / "s" / "suite.toml").write_text(SUITE)
    monkeypatch.chdir(root)
    assert cli.main(["run", "s", "--no-bars"]) == 3  # the "bad" model fails
    return root


def test_a_fresh_clone_rebuilds_every_file_and_trains_nothing(origin, tmp_path, monkeypatch, helpers, capsys) -> None:
    folder = origin / "leaderboards" / "s"
    committed = _snapshot(folder)
    assert set(committed) == set(PUBLISHED)
    clone = _clone(origin, tmp_path / "clone", "leaderboards/s")
    monkeypatch.chdir(tmp_path / "clone")
    assert cli.main(["leaderboard", "s"]) == 0
    assert _snapshot(clone) == committed
    for fmt, name in FILENAMES.items():  # --format prints the same bytes
        capsys.readouterr()
        assert cli.main(["leaderboard", "s", "--format", fmt]) == 0
        assert capsys.readouterr().out.encode() == committed[name], fmt
    setups = helpers.LinearAE.setups
    assert cli.main(["run", "s", "--no-bars"]) == 3  # still failed, from the published record
    assert "4 cells (4 skipped)" in capsys.readouterr().out
    assert helpers.LinearAE.setups == setups, "a finished cell was built or trained again"
    assert _snapshot(clone) == committed


def test_show_finds_a_published_run_without_a_store(origin, tmp_path, monkeypatch, capsys) -> None:
    clone = _clone(origin, tmp_path / "clone", "leaderboards/s")
    run_id = (clone / "results.csv").read_text().splitlines()[1].split(",")[0]
    monkeypatch.chdir(tmp_path / "clone")
    capsys.readouterr()
    assert cli.main(["show", run_id[:8], "--json"]) == 0
    assert f'"run_id": "{run_id}"' in capsys.readouterr().out
    assert cli.main(["show", run_id[:8]]) == 0  # human-readable by default
    assert capsys.readouterr().out.startswith(f"run {run_id}")
    assert not (clone / "results.sqlite").exists()


@pytest.mark.parametrize("leave_store", [False, True])
def test_missing_portable_file_never_empties_the_published_tables(origin, tmp_path, monkeypatch, capsys,
                                                                  leave_store: bool) -> None:
    clone = _clone(origin, tmp_path / "clone", "leaderboards/s")
    (clone / published.RUNS_FILE).unlink()
    if leave_store:  # an empty store (e.g. created by an earlier command) is no excuse either
        from benchbed.store import Store

        Store(clone / "results.sqlite").close()
    before = _snapshot(clone)
    monkeypatch.chdir(tmp_path / "clone")
    capsys.readouterr()
    assert cli.main(["leaderboard", "s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchbed: error: ") and "runs.jsonl" in err and "benchbed run s" in err
    assert _snapshot(clone) == before


def test_export_after_import_is_the_identity(origin, tmp_path) -> None:
    from benchbed.store import Store

    runs = origin / "leaderboards" / "s" / published.RUNS_FILE
    store = Store(tmp_path / "fresh.sqlite")
    assert published.import_runs(store, runs) == len(runs.read_text().splitlines()) - 1
    assert published.import_runs(store, runs) == 0  # finished runs are never replaced
    records = published.read_runs(runs)
    out = published.export_runs(store, [r["run"]["run_id"] for r in records], tmp_path / "again.jsonl", "s")
    assert out.read_bytes() == runs.read_bytes()


def test_a_damaged_portable_file_is_named(origin, tmp_path) -> None:
    from benchbed.errors import BenchbedError

    bad = tmp_path / "runs.jsonl"
    text = (origin / "leaderboards" / "s" / published.RUNS_FILE).read_text().splitlines()
    bad.write_text("\n".join([text[0], "{not json", *text[2:]]))
    with pytest.raises(BenchbedError, match=r"runs\.jsonl: line 2 is not JSON"):
        published.read_runs(bad)
    bad.write_text(text[0].replace('"version":1', '"version":9') + "\n")
    with pytest.raises(BenchbedError, match="format version 9"):
        published.read_runs(bad)


def _records(origin: Path) -> list[str]:
    return (origin / "leaderboards" / "s" / published.RUNS_FILE).read_text().splitlines()


def test_a_file_cut_at_a_line_boundary_is_refused_not_published_as_complete(origin, tmp_path, monkeypatch,
                                                                            capsys) -> None:
    """Lost lines leave valid JSON: only the header's count can tell, and the tables must not shrink."""
    clone = _clone(origin, tmp_path / "clone", "leaderboards/s")
    lines = _records(origin)
    (clone / published.RUNS_FILE).write_text("\n".join(lines[:-2]) + "\n")
    before = _snapshot(clone)
    monkeypatch.chdir(tmp_path / "clone")
    capsys.readouterr()
    assert cli.main(["leaderboard", "s"]) == 2
    err = capsys.readouterr().err
    assert f"announces {len(lines) - 1} runs but the file holds {len(lines) - 3}" in err and "runs.jsonl" in err
    assert _snapshot(clone) == before


def _edit(line: str, edit) -> str:
    import json

    rec = json.loads(line)
    edit(rec)
    return json.dumps(rec)


def _value(rec: dict, value) -> None:
    ok = next(m for m in rec["metrics"] if m["status"] == "ok")
    ok["value"] = value


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: _value(r, "0.5"), "must be a finite number or null, got '0.5'"),
    (lambda r: _value(r, float("nan")), "must be a finite number or null, got nan"),
    (lambda r: _value(r, float("inf")), "must be a finite number or null, got inf"),
    (lambda r: _value(r, None), "has status 'ok' but no value"),
    (lambda r: r["metrics"][0].update(status="great"), "'status' must be one of ok, n/a, failed"),
    (lambda r: r["metrics"][0].pop("metric"), r"metrics\[0\] lacks \['metric'\]"),
    (lambda r: r["metrics"].append(dict(r["metrics"][0])), "repeats metric"),
    (lambda r: r["run"].update(status="weird"), "run key 'status' must be a finished status"),
    (lambda r: r["run"].update(config="garbage"), "run key 'config' must be a table"),
    (lambda r: r["run"].update(seed="x"), "run key 'seed' must be an integer, got 'x'"),
    (lambda r: r["run"].update(seed=True), "run key 'seed' must be an integer, got True"),
    (lambda r: r["run"].update(foo=1), r"run has unknown key\(s\) \['foo'\]"),
    (lambda r: r["run"].update({"status) VALUES ('x'); --": 1}), "run has unknown key"),
    (lambda r: r.update(metrics={}), "'metrics' must be a list"),
    (lambda r: r.update(extra=1), r"unknown key\(s\) \['extra'\]"),
], ids=["string value", "nan", "inf", "ok without value", "metric status", "metric key missing", "metric twice",
        "run status", "config", "seed string", "seed bool", "unknown run key", "sql in a key", "metrics type",
        "record key"])
def test_a_bad_record_is_refused_with_its_line_and_key(origin, tmp_path, edit, message) -> None:
    from benchbed.errors import BenchbedError
    from benchbed.store import Store

    lines = _records(origin)
    bad = tmp_path / "runs.jsonl"
    bad.write_text("\n".join([lines[0], lines[1], _edit(lines[2], edit), *lines[3:]]) + "\n")
    store = Store(tmp_path / "fresh.sqlite")
    with pytest.raises(BenchbedError, match=message) as info:
        published.import_runs(store, bad)
    assert "runs.jsonl: line 3: " in str(info.value)
    assert store.export_run(__import__("json").loads(lines[1])["run"]["run_id"]) is None  # nothing half-imported


def test_a_run_given_twice_names_both_lines_and_blank_lines_keep_the_numbering(origin, tmp_path) -> None:
    from benchbed.errors import BenchbedError

    lines = _records(origin)
    bad = tmp_path / "runs.jsonl"
    header = lines[0].replace(f'"runs":{len(lines) - 1}', f'"runs":{len(lines)}')
    bad.write_text("\n".join([header, "", lines[1], *lines[2:], _edit(lines[1], lambda r: _value(r, 1e-4))]) + "\n")
    with pytest.raises(BenchbedError, match=rf"is on lines 3 and {len(lines) + 2}"):
        published.read_runs(bad)


def test_a_seed_with_no_run_counts_as_missing_in_the_tables(origin, tmp_path, monkeypatch, capsys) -> None:
    """A row is judged against the suite's seeds, not the runs that happen to be there: a seed never run
    (a part not run yet, a file that lost a line and was rebuilt) shows as missing and is not ranked."""
    import json

    clone = _clone(origin, tmp_path / "clone", "leaderboards/s")
    lines = _records(origin)
    keep = [line for line in lines[1:] if not (json.loads(line)["run"]["model"] == "linear"
                                               and json.loads(line)["run"]["seed"] == 1)]
    assert len(keep) == len(lines) - 2
    header = lines[0].replace(f'"runs":{len(lines) - 1}', f'"runs":{len(keep)}')
    (clone / published.RUNS_FILE).write_text("\n".join([header, *keep]) + "\n")
    monkeypatch.chdir(tmp_path / "clone")
    capsys.readouterr()
    assert cli.main(["leaderboard", "s", "--format", "md"]) == 0
    row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("| linear |"))
    assert "(1/2 seeds)" in row and "| 1/2 |" in row and "**" not in row, row


def test_the_record_schema_is_the_stores_runs_table(tmp_path) -> None:
    """run_record.RUN_FIELDS must follow the store's schema: a new column must be allowed in files."""
    from benchbed.run_record import RUN_FIELDS
    from benchbed.store import Store

    store = Store(tmp_path / "s.sqlite")
    with store.transaction() as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    assert set(RUN_FIELDS) == columns - set(Store.LOCAL)


def test_the_store_refuses_a_field_it_has_no_column_for(origin, tmp_path) -> None:
    import json

    from benchbed.errors import StoreError
    from benchbed.store import Store

    rec = json.loads(_records(origin)[1])
    rec["run"]["host"] = "elsewhere"  # a store column, but local to the machine that ran it
    with pytest.raises(StoreError, match="unknown field"):
        Store(tmp_path / "fresh.sqlite").import_run(rec)


def test_a_preview_whose_base64_spells_a_machine_path_survives_export(origin, tmp_path, monkeypatch) -> None:
    """Base64 text can contain a path prefix by chance (it did: "/tmp" inside a quick-suite preview,
    which the export turned into "$TMPDIR"); scrubbing must leave previews alone."""
    import base64
    import tempfile

    from benchbed.store import Store

    runs = origin / "leaderboards" / "s" / published.RUNS_FILE
    store = Store(tmp_path / "fresh.sqlite")
    published.import_runs(store, runs)
    run_id = published.read_runs(runs)[0]["run"]["run_id"]
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")  # a scrubbed prefix made of base64 characters
    prefix = tempfile.gettempdir()
    assert published.scrub(prefix) == "$TMPDIR"
    text = "AA" + prefix
    text += "A" * (-len(text) % 4)  # a valid base64 string that holds the prefix
    raw = base64.b64decode(text, validate=True)
    assert prefix in base64.b64encode(raw).decode("ascii")
    store.put_preview(run_id, raw)
    out = published.export_runs(store, [run_id], tmp_path / "out.jsonl", "s")
    (record,) = published.read_runs(out)
    assert record["preview"] == raw


def test_scrub_replaces_machine_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = f"cannot read {Path.home() / 'data' / 'x.bin'} nor {tmp_path / 'y'}"
    assert published.scrub(text) == "cannot read ~/data/x.bin nor ./y"
    assert published.scrub({"a": [str(tmp_path)]}) == {"a": ["."]}


# -- the committed small suite and every committed leaderboard ---------------------------------------

COMMITTED = "tests/data/published"


def test_the_committed_suite_rebuilds_byte_identically(tmp_path, monkeypatch, capsys) -> None:
    """The real plugins, a real (small) committed run: `benchbed leaderboard` in a fresh clone reproduces
    every committed file; `benchbed run` trains no cell."""
    clone = _clone(REPO, tmp_path, COMMITTED)
    committed = _snapshot(REPO / COMMITTED)
    assert set(committed) == set(PUBLISHED)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["leaderboard", COMMITTED]) == 0
    changed = [name for name, data in _snapshot(clone).items() if data != committed[name]]
    assert not changed, f"rebuilt files differ from the committed ones: {changed}"
    capsys.readouterr()
    assert cli.main(["run", COMMITTED, "--no-bars", "--no-tables"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"(\d+) cells \(\1 skipped\)", out), out
    assert not (clone / "checkpoints").exists()


ABSOLUTE = re.compile(r"(?<![\w.~$])(/(?:root|home|tmp|work|Users|var|opt|mnt|srv)/|[A-Z]:\\\\)")


@pytest.mark.parametrize("folder", sorted({p.parent.relative_to(REPO).as_posix()
                                           for p in REPO.glob("leaderboards/*/suite.toml")} | {COMMITTED}))
def test_no_published_file_holds_a_machine_path(folder: str) -> None:
    for name in PUBLISHED:
        path = REPO / folder / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if name == FILENAMES["html"]:  # embedded PNGs are base64, where "/tmp/" can occur by chance
            text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
        if name == published.RUNS_FILE:
            text = re.sub(r'"preview":"[A-Za-z0-9+/=]*"', "", text)
        hit = ABSOLUTE.search(text)
        context = "" if hit is None else text[max(0, hit.start() - 60):hit.end() + 60]
        assert hit is None, f"{folder}/{name} holds a machine path: ...{context}..."


EXCERPT_COLUMNS = ("recon_mse", "mmd", "fd_domain", "loglik", "outlier_auroc", "accuracy")


def test_the_readme_excerpt_comes_from_the_committed_quick_runs(tmp_path) -> None:
    """The README's excerpt of the quick leaderboard is generated, never typed: regenerate it with
    ``leaderboard.excerpt(board, "digits", EXCERPT_COLUMNS)`` on ``tables.build`` of the quick suite."""
    from benchbed import leaderboard, tables
    from benchbed.plugins import load_plugins
    from benchbed.store import Store
    from benchbed.suite import load_suite

    folder = REPO / "leaderboards" / "quick"
    if not (folder / published.RUNS_FILE).is_file():
        pytest.fail("leaderboards/quick/runs.jsonl is not committed")
    registry = load_plugins().registry
    store = Store(tmp_path / "quick.sqlite")
    published.import_runs(store, folder / published.RUNS_FILE)
    board = tables.build(store, load_suite(folder / "suite.toml", registry), registry)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- leaderboard-excerpt -->\n", 1)[1].split("<!-- /leaderboard-excerpt -->", 1)[0]
    assert leaderboard.excerpt(board, "digits", EXCERPT_COLUMNS) in block


def test_a_renamed_suite_publishes_the_runs_it_finds(fake_cli, tmp_path, monkeypatch, helpers, capsys) -> None:
    root = tmp_path / "repo"
    (root / "leaderboards" / "s").mkdir(parents=True)
    suite = root / "leaderboards" / "s" / "suite.toml"
    suite.write_text(SUITE.replace("[models.bad]\ncomponent = \"linear\"\nfail_at = 2\n", ""))
    monkeypatch.chdir(root)
    assert cli.main(["run", "s", "--no-bars"]) == 0
    suite.write_text(suite.read_text().replace('name = "s"', 'name = "renamed"'))
    (root / "leaderboards" / "s" / published.RUNS_FILE).unlink()  # only the store knows the runs now
    setups = helpers.LinearAE.setups
    capsys.readouterr()
    assert cli.main(["run", "s", "--no-bars"]) == 0
    assert "2 cells (2 skipped)" in capsys.readouterr().out and helpers.LinearAE.setups == setups
    readme = (root / "leaderboards" / "s" / "README.md").read_text()
    assert readme.startswith("# Leaderboard: renamed") and "| linear |" in readme


def test_two_suite_files_in_one_folder_publish_apart(fake_cli, tmp_path, monkeypatch) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.toml").write_text(SUITE.replace('name = "s"', f'name = "{name}"'))
        assert cli.main(["run", str(tmp_path / f"{name}.toml"), "--no-bars"]) == 3
    for name in ("a", "b"):
        assert (tmp_path / name / "README.md").read_text().startswith(f"# Leaderboard: {name}\n")
        assert (tmp_path / name / published.RUNS_FILE).is_file()
    assert not (tmp_path / "README.md").exists()
