"""The ``benchbed`` command line: run, plan, list, plugins, leaderboard, validate, show, compare, download.

Start-up is kept light: this module imports only the standard library and torch-free parts of benchbed,
so ``benchbed --help`` (and each ``benchbed COMMAND --help``) never imports torch or a plugin; each command
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbed import __version__
from benchbed.errors import BenchbedError, SuiteError
from benchbed.formats import FORMATS

if TYPE_CHECKING:
    from benchbed.plugins import PluginSet
    from benchbed.registry import Registry
    from benchbed.store import Store
    from benchbed.suite import Suite

KINDS = ("models", "samplers", "datasets", "metrics", "trackers")

#: Exit codes: 0 every cell ok or n/a; 2 bad input (nothing trained); 3 the run finished but a cell of
#: the suite failed or diverged (its reason is stored and tabulated); 4 internal error (a bug: the message
#: says so, --debug shows the traceback); 130 interrupted (resumable).
EXIT_BAD_INPUT, EXIT_CELLS_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 3, 4, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader closed the pipe
LEADERBOARDS = Path("leaderboards")


def resolve_suite_path(name: str) -> Path:
    """SUITE is a suite file, a folder holding ``suite.toml``, or a folder name under ``leaderboards/``."""
    p = Path(name)
    if p.is_file():
        return p
    if p.is_dir() and (p / "suite.toml").is_file():
        return p / "suite.toml"
    candidate = LEADERBOARDS / name / "suite.toml"
    if candidate.is_file():
        return candidate
    known = sorted(d.parent.name for d in LEADERBOARDS.glob("*/suite.toml")) if LEADERBOARDS.is_dir() else []
    raise BenchbedError(
        f"no suite {name!r}: not a file, and {candidate} does not exist"
        + (f"; suites under {LEADERBOARDS}/: {', '.join(known)}" if known else f" (no {LEADERBOARDS}/ folder here)")
    )


def load_plugins(**kwargs: Any) -> PluginSet:
    """:func:`benchbed.plugins.load_plugins`, imported when a command first needs the plugins."""
    from benchbed.plugins import load_plugins as load

    return load(**kwargs)


def _registry() -> Registry:
    return load_plugins().registry


SELECT = ("models", "samplers", "datasets", "metrics", "seeds")


def _suite(args: argparse.Namespace, registry: Registry) -> Suite:
    """Load the suite SUITE names, with the command's ``--set`` overrides and selection options (when it has
    them), and check its claims file, if any (:mod:`benchbed.claims`), before anything runs."""
    from benchbed.claims import claims_for
    from benchbed.overrides import parse_selection
    from benchbed.suite import load_suite

    selection = parse_selection({k: getattr(args, k, None) for k in SELECT})
    path = resolve_suite_path(args.suite)
    try:
        suite = load_suite(path, registry, overrides=getattr(args, "set", None) or (), selection=selection)
    except SuiteError as exc:
        for line in _recorded_plugins(str(exc), path, getattr(args, "store", None)):
            print(f"benchbed: note: {line}", file=sys.stderr)
        raise
    claims_for(suite, registry)
    return suite


def _recorded_plugins(error: str, suite_path: Path, store: str | list[str] | None) -> list[str]:
    """For each unknown component an error names, the plugin and distribution that earlier runs of the
    suite recorded for it (its store beside the suite file, or ``--store``, and its published runs.jsonl):
    after uninstalling a plugin, "unknown model" then says which package to install again.  Reads the
    files without changing them; anything unreadable is skipped (this is a hint, never an error)."""
    import re

    from benchbed.published import RUNS_FILE, read_runs

    wanted = set(re.findall(r"unknown (model|sampler|dataset|metric) '([^']+)'", error))
    if not wanted:
        return []
    stores = [Path(p) for p in ([store] if isinstance(store, str) else store or [])]
    folder = suite_path.parent if suite_path.is_file() else suite_path
    stores.append(folder / "results.sqlite")
    provenances: list[dict[str, Any]] = []
    for db_path in dict.fromkeys(stores):
        if not db_path.is_file():
            continue
        try:
            db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
            provenances += [json.loads(row[0]) for row in db.execute("SELECT provenance FROM runs")]
            db.close()
        except (sqlite3.Error, ValueError):
            continue
    runs = folder / RUNS_FILE
    if runs.is_file():
        try:
            provenances += [record["run"].get("provenance", {}) for record in read_runs(runs)]
        except BenchbedError:  # a damaged file is reported where it is read for real
            pass
    found: dict[tuple[str, str], str] = {}
    for prov in provenances:
        components = prov.get("components", {}) if isinstance(prov, dict) else {}
        for kind, recorded in components.items():
            for c in recorded if isinstance(recorded, list) else [recorded]:
                key = (kind.rstrip("s"), c.get("name", "")) if isinstance(c, dict) else ("", "")
                if key in wanted and key not in found:
                    found[key] = f"plugin {c.get('plugin')!r} of {c.get('distribution')} {c.get('version')}"
    return [f"earlier runs of this suite recorded {kind} {name!r} from {where}: install it to use them"
            for (kind, name), where in sorted(found.items())]


def _store(args: argparse.Namespace, suite: Suite, *, create: bool = True) -> Store:
    """The suite's store, with the suite folder's published runs imported (a fresh clone has only those).

    ``create=False``: refuse to create an empty store when there is neither a store nor published runs.
    """
    from benchbed import published
    from benchbed.execute import default_store_path
    from benchbed.store import Store, open_for_reading

    path = Path(args.store) if args.store else default_store_path(suite)
    runs = published.runs_path(suite.publish_folder) if suite.publish_folder is not None else None
    if not create and not path.exists() and (runs is None or not runs.is_file()):
        raise BenchbedError(
            f"suite {suite.name!r} has no results: no store at {path} and no published runs"
            + (f" ({runs} is missing)" if runs is not None else "")
            + f". Run `benchbed run {args.suite}` first, or restore {runs} (e.g. `git checkout -- {runs}`).")
    # a reading command (create=False) also works on a store it cannot write: on a private copy
    store = Store(path) if create else open_for_reading(path)
    if runs is not None:
        published.import_runs(store, runs)
    return store


def _view(suite: Suite) -> str:
    """The options that made ``suite`` a partial view (``--set ... --models ...``)."""
    return " ".join([*(f"--set {o}" for o in suite.overrides), suite.selection.describe()]).strip()


def _table_folder(args: argparse.Namespace, suite: Suite) -> Path | None:
    """Where this command writes tables: ``--out``; else the suite's publish folder, unless the suite is a
    partial view (``--set`` or a selection) and ``--publish`` was not given (then ``None``: none written).

    Raises:
        BenchbedError: ``--out`` together with ``--publish``.
    """
    if getattr(args, "publish", False) and args.out:
        raise BenchbedError("--out and --publish: give one (--out DIR writes the tables there, --publish to the "
                            "suite's folder)")
    if args.out:
        return Path(args.out)
    if suite.partial and not getattr(args, "publish", False):
        return None
    return suite.publish_folder or Path.cwd()


def _check_writable(folder: Path, what: str) -> None:
    """Raise :class:`BenchbedError` when ``folder`` (or, while it does not exist, its nearest existing
    parent) cannot take new files: known before training, where writing the tables after the run would
    fail with the results already computed."""
    if folder.exists() and not folder.is_dir():
        raise BenchbedError(f"{what} {folder}: is a file, not a folder for the tables")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise BenchbedError(f"{what} {folder}: cannot write the tables there ({exc.strerror or exc}); give a "
                            "writable folder with --out, or --no-tables") from None


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    from benchbed import leaderboard
    from benchbed.contracts import EngineOptions
    from benchbed.execute import run_suite
    from benchbed.grid import plan_run
    from benchbed.runner import RunOptions
    from benchbed.suite import check_device
    from benchbed.training import device_problem
    from benchbed.validate import check_data, check_models, loader

    if args.no_tables and (args.out or args.publish):  # contradictory: say so rather than drop one silently
        raise BenchbedError(f"--no-tables and {'--out' if args.out else '--publish'}: give one (--no-tables writes "
                            "no tables at all)")
    if args.executor == "serial" and args.jobs > 1:
        raise BenchbedError(f"--executor serial and --jobs {args.jobs}: the serial executor runs one cell at a time; "
                            "drop --executor (--jobs N then uses a process pool) or --jobs")
    registry = _registry()
    suite = _suite(args, registry)
    tables = None if args.no_tables else _table_folder(args, suite)
    if args.device is not None:
        check_device(args.device, "--device: ")
    device = args.device or suite.device
    if problem := device_problem(device):  # before any cell is claimed: nothing is recorded
        where = "--device" if args.device else f"{suite.path or '<suite>'}: device"
        raise BenchbedError(f"{where} {device!r}: {problem}")
    for name in args.track:
        try:  # an unknown tracker: close matches, before any training
            registry.get("tracker", name)
        except BenchbedError as exc:
            raise BenchbedError(f"--track {name}: {exc}") from None
    load = loader(registry)
    check_models(suite, registry)  # capability declarations, before training
    check_data(suite, registry, load)  # settings that depend on the data, before training
    # planned once: the cells to run, and the cells whose failures set the exit code
    planned = plan_run(suite, registry, lambda entry: load(entry, suite.seeds[0]).info)
    out = Path(args.out) if args.out else None
    if tables is not None:  # known now: say so before any training
        _check_writable(tables, "--out" if out is not None else "publish folder")
    store = _store(args, suite)
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    engine = EngineOptions(fused=False if args.no_fused else None,
                           concurrent_chains=False if args.no_concurrent_chains else None, threads=args.threads)
    options = RunOptions(retry_failed=args.retry_failed, bars=None if not args.no_bars else False, device=args.device,
                         steal_stale=args.steal_stale, engine=engine, track=tuple(args.track))
    try:
        summary = run_suite(suite, registry, store, jobs=args.jobs, executor=args.executor, options=options,
                            planned=planned)
    except KeyboardInterrupt:
        print("benchbed: interrupted; finished cells are in the store. Run the same command again to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    print(f"benchbed: suite {suite.name}: {len(summary.outcomes)} cells ({counts}); store {store.path}")
    if tables is not None:
        try:
            written = leaderboard.write(store, suite, registry, tables)
        except OSError as exc:  # e.g. the folder became read-only during the run: the results are safe
            raise BenchbedError(f"cannot write the tables to {tables}: {exc.strerror or exc}; the results are in "
                                f"the store {store.path}: write them with `benchbed leaderboard {args.suite} --out "
                                "DIR`") from None
        for path in written:
            print(f"benchbed: wrote {path}")
    elif not args.no_tables:
        print(f"benchbed: a partial run ({_view(suite)}): its results are in the store only; the published tables "
              f"in {suite.publish_folder or Path.cwd()} were left unchanged. See them with `benchbed leaderboard "
              f"{args.suite} {_view(suite)} --format md`; write them with --out DIR, or over the published tables "
              "with --publish")
    # From the store: a failure stored by an earlier run is "skipped" now but is still a failure (held-out
    # trainings included: the metrics that needed one failed with it).
    failed = sum(store.status(c.run_id) in ("failed", "diverged") for c in planned.order)
    if failed:
        print(f"benchbed: {failed} cell(s) of suite {suite.name} failed or diverged (reasons in the tables); "
              f"exit code {EXIT_CELLS_FAILED}", file=sys.stderr)
    # A cell that trained but whose metric raised (or returned a non-finite value) is "ok" with a hole
    # in the table: say which, and make it count like a failed cell.
    broken = [(cell.title, label, reason) for cell in planned.order
              if not cell.is_variant and store.status(cell.run_id) == "ok"
              for label, reason in store.failed_metrics(cell.run_id).items()]
    for title, label, reason in broken[:10]:
        print(f"benchbed: metric {label!r} failed on {title}: {reason}", file=sys.stderr)
    if broken:
        more = " (the first 10 shown)" if len(broken) > 10 else ""
        print(f"benchbed: {len(broken)} metric value(s) of suite {suite.name} failed{more}; after fixing the metric, "
              "`--retry-failed` evaluates them again on the saved final models (no training); exit code "
              f"{EXIT_CELLS_FAILED}", file=sys.stderr)
    return EXIT_CELLS_FAILED if failed or broken else 0


def _params_text(factory: Any) -> str:
    from benchbed.params import schema

    parts = []
    for p in schema(factory).values():
        parts.append(p.name if p.required else f"{p.name}={p.default!r}")
    return ", ".join(parts)


def _params_lines(factory: Any) -> list[str]:
    """One line per parameter of ``factory``: ``name: type = default (range) - meaning``.  The type and the
    range come from the annotations (:func:`benchbed.params.schema`), the meaning from the first sentence
    of the ``Args:`` entry of the factory's Google-style docstring (:mod:`benchbed.docstrings`)."""
    from benchbed.docstrings import parameter_docs
    from benchbed.params import _type_name as type_name  # the wording of the suite's type errors
    from benchbed.params import schema

    meanings = parameter_docs(factory)
    lines = []
    for p in schema(factory).values():
        text = f"{p.name}: {type_name(p.annotation)}" + (" (required)" if p.required else f" = {p.default!r}")
        if p.constraints:
            text += f"  [{p.constraints}]"
        if p.name in meanings:
            text += f"  - {meanings[p.name]}"
        lines.append(text)
    return lines


def _requirement_text(requires: Any) -> str:
    """A metric's ``requires`` as ``benchbed list`` shows it: a plain set's names sorted, alternatives
    (``AnyOf``) as they describe themselves."""
    if isinstance(requires, set | frozenset):
        return ", ".join(sorted(requires))
    return str(requires)


def cmd_list(args: argparse.Namespace) -> int:
    from benchbed.specs import MetricSpec

    registry = _registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        print(f"{kind}:")
        for entry in registry.entries[kind[:-1]].values():
            spec = entry.spec
            extra = ""
            if isinstance(spec, MetricSpec):
                extra = f" [{'↑' if spec.higher_is_better else '↓'}"
                extra += f"; requires {_requirement_text(spec.requires)}]" if spec.requires else "]"
            print(f"  {spec.name:16s} {spec.description}{extra}  ({entry.provenance.plugin})")
            if args.verbose:
                print(f"      parameters: {_params_text(spec.factory) or '(none)'}")
                for line in _params_lines(spec.factory):
                    print(f"        {line}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    loaded = load_plugins()
    for info in loaded.plugins:
        p = info.provenance
        took = f", imported in {info.import_seconds:.2f} s" if info.import_seconds >= 0.5 else ""
        print(f"{info.name}  ({p.distribution} {p.version}{took})")
        for kind, names in info.components.items():
            if names:
                print(f"    {kind}s: {', '.join(names)}")
    for name, message in loaded.failures.items():
        print(f"{name}  FAILED: {message}")
    return 1 if loaded.failures else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchbed import leaderboard

    registry = _registry()
    suite = _suite(args, registry)
    store = _store(args, suite, create=False)
    if args.format:
        board = leaderboard.build(store, suite, registry)
        sys.stdout.write(leaderboard.render(args.format, store, board,
                                            leaderboard.evaluated_claims(store, board, registry)))
        return 0
    folder = _table_folder(args, suite)
    if folder is None:
        raise BenchbedError(f"a partial view ({_view(suite)}) is not written over the published tables in "
                            f"{suite.publish_folder or Path.cwd()}: pass --out DIR, --format FMT, or --publish")
    for path in leaderboard.write(store, suite, registry, folder):
        print(f"benchbed: wrote {path}")
    return 0


def _run_sources(args: argparse.Namespace) -> list[Path]:
    """Where ``show`` and ``compare`` look: the stores given (``--store``, in order), else every store and
    published run file under leaderboards/ (stores first).

    Raises:
        BenchbedError: a store given does not exist; none given and none found.
    """
    if args.store:
        paths = [Path(p) for p in args.store]
        for path in paths:
            if not path.is_file():
                raise BenchbedError(f"no store at {path}")
        return paths
    from benchbed.published import RUNS_FILE

    found = sorted(LEADERBOARDS.glob("*/results.sqlite")) + sorted(LEADERBOARDS.glob(f"*/{RUNS_FILE}"))
    if not found:
        raise BenchbedError("no store given and none found under leaderboards/*/ (results.sqlite or runs.jsonl); "
                            "pass --store PATH")
    return found


def cmd_validate(args: argparse.Namespace) -> int:
    from benchbed.validate import loader, validate

    registry = _registry()
    suite = _suite(args, registry)
    for line in validate(suite, registry, loader(registry)):
        print(f"benchbed: {line}")
    print(f"benchbed: suite {suite.name} is valid; nothing was trained")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from benchbed.compare import find_run, show_text

    source, run = find_run(_run_sources(args), args.run)
    if args.json:
        run["curves"] = f"{len(run['curves'])} points"
        print(json.dumps(run, indent=2, sort_keys=True, default=str))
    else:
        sys.stdout.write(show_text(run, source))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from benchbed.compare import compare_text, find_run

    sources = _run_sources(args)
    source_a, a = find_run(sources, args.run_a)
    source_b, b = find_run(sources, args.run_b)
    sys.stdout.write(compare_text(a, source_a, b, source_b))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchbed import planning_report, published
    from benchbed.execute import default_store_path
    from benchbed.grid import plan_run
    from benchbed.store import open_for_reading
    from benchbed.validate import loader

    registry = _registry()
    suite = _suite(args, registry)
    load = loader(registry)
    infos: dict[str, Any] = {}
    notes: list[str] = []
    for dataset in suite.datasets:
        try:
            infos[dataset.label] = load(dataset, suite.seeds[0]).info
        except Exception as exc:  # noqa: BLE001 - reported; its held-out trainings and n/a pairs are unknown
            infos[dataset.label] = None
            notes.append(f"data set {dataset.label!r} did not load ({type(exc).__name__}: {exc}); its held-out "
                         "trainings and n/a pairs are not known")

    def info(entry: Any) -> Any:
        found = infos.get(entry.label)
        if found is None:
            raise BenchbedError(f"data set {entry.label!r} did not load")
        return found

    planned = plan_run(suite, registry, info)
    store_path = Path(args.store) if args.store else default_store_path(suite)
    runs_file = published.runs_path(suite.publish_folder) if suite.publish_folder is not None else None
    states: dict[str, str] = {}
    if runs_file is not None and runs_file.is_file():
        states.update((r["run"]["run_id"], r["run"]["status"]) for r in published.read_runs(runs_file))
    store = open_for_reading(store_path) if store_path.is_file() else None
    try:
        def status(run_id: str) -> str | None:
            mine = store.status(run_id) if store is not None else None
            return mine if mine is not None else states.get(run_id)

        past = planning_report.read_past_runs(store_path, runs_file)
        notes += list(planned.notes)
        if suite.partial:
            notes.insert(0, f"a partial view: {_view(suite)}")
        sys.stdout.write(planning_report.report(suite, registry, planned, status, past, infos, args.jobs, notes))
    finally:
        if store is not None:
            store.close()
    print(f"store: {store_path}" + ("" if store_path.is_file() else " (not created yet)")
          + (f"; published runs: {runs_file}" if runs_file is not None and runs_file.is_file() else ""))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from benchbed.downloads import download

    for path in download(args.names, root=args.root, registry=_registry()):
        print(f"benchbed: {path}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} is not a non-negative number of seconds")
    return value


class _Deferred:
    """A value in help text computed only when the help is shown (``%(name)s`` of an argument), so that
    building the parser imports nothing heavy."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


def _stale_seconds() -> str:
    from benchbed.store import HEARTBEAT_STALE_S

    return f"{HEARTBEAT_STALE_S:g}"


VIEW_HELP = ("--set and the selection options make a partial view of the suite: --set KEY=VALUE overrides a value "
             "of the suite file (KEY a dotted key such as models.vae.latent_dim or budget.steps, VALUE a TOML value "
             "typed as in the file: 16, 1e-3, [8, 16], \"mlp\", true), checked as the file is; --models, --samplers, "
             "--datasets, --metrics and --seeds keep only the named entries (the suite's labels; comma-separated) "
             "and the cells made of them, which keep their run ids, so a filtered run reuses and adds to the same "
             "store.")


def _add_view_options(p: argparse.ArgumentParser) -> None:
    """``--set`` and the selection options (:mod:`benchbed.overrides`)."""
    group = p.add_argument_group("partial views", VIEW_HELP)
    group.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a suite value (repeatable), e.g. --set models.vae.latent_dim=16 "
                            "--set budget.steps=200")
    for axis in ("models", "samplers", "datasets", "metrics"):
        group.add_argument(f"--{axis}", metavar="NAME[,NAME]",
                           help=f"only these {axis} entries of the suite"
                           + ("; models without dynamics (no sampler) are left out" if axis == "samplers" else "")
                           + ("; only these metrics are evaluated" if axis == "metrics" else ""))
    group.add_argument("--seeds", metavar="SEED[,SEED]", help="only these seeds of the suite")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchbed", description="Benchmark latent-variable deep generative models.")
    parser.add_argument("--version", action="version", version=f"benchbed {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train and evaluate every cell of a suite, then write its tables",
                         description="Train and evaluate every cell of SUITE not already in the store (resumable; "
                                     "the published runs.jsonl beside the suite file is imported first), then write "
                                     "its tables and runs.jsonl beside the suite file.",
                         epilog="exit codes: 0 every cell ok or n/a; 2 bad input, nothing trained; 3 finished, but "
                                "a cell of the suite failed or diverged, or a metric value failed; 4 internal error "
                                "(a bug; --debug shows the "
                                "traceback); 130 interrupted (run again to resume)")
    run.add_argument("suite", metavar="SUITE", help="suite file, or name of a folder under leaderboards/")
    run.add_argument("--jobs", "-j", type=_positive_int, default=1,
                     help="cells run in parallel in a local process pool (a positive integer)")
    run.add_argument("--store", help="SQLite result store (default: results.sqlite beside the suite file)")
    run.add_argument("--executor", choices=["auto", "serial", "pool", "ray"], default="auto",
                     help="auto = pool when --jobs > 1; ray uses RAY_ADDRESS or a local Ray")
    run.add_argument("--device", help="override the suite's device (auto, cpu, cuda, cuda:1)")
    run.add_argument("--retry-failed", action="store_true",
                     help="train failed and diverged cells again, and evaluate failed metric values again (on the "
                          "saved final models)")
    steal = run.add_argument("--steal-stale", type=_seconds, metavar="SECONDS",
                     help="take over cells claimed by another run whose heartbeat is older than SECONDS, whatever "
                          "host or pid holds them (0: every claim; a live holder then trains its cell in vain). "
                          "Without it a claim is taken over once its heartbeat is %(stale)s s old, or "
                          "at once on this host when its process is gone")
    steal.stale = _Deferred(_stale_seconds)  # type: ignore[attr-defined]  # read by the help's %(stale)s
    run.add_argument("--no-fused", action="store_true",
                     help="do not use the models' hand-written value-and-gradient paths (same numbers; for "
                          "checking them). Default: automatic")
    run.add_argument("--no-concurrent-chains", action="store_true",
                     help="never run a step's independent chain sets side by side in threads (same numbers). "
                          "Default: automatic")
    run.add_argument("--threads", type=_positive_int, metavar="N",
                     help="intra-op threads of each process running cells (default: torch's default; with "
                          "--jobs, the CPU count divided by the jobs)")
    run.add_argument("--out", help="folder for the tables (default: the suite's folder; for a partial view, none: "
                                   "see --publish)")
    run.add_argument("--publish", action="store_true",
                     help="a partial view (--set or a selection) writes its tables and runs.jsonl over the suite's "
                          "published ones. Without it such a run leaves the published files unchanged and writes "
                          "no tables (its results are in the store: see them with `benchbed leaderboard SUITE "
                          "<same options> --format md`, or write them with --out DIR)")
    run.add_argument("--no-tables", action="store_true", help="do not write tables")
    run.add_argument("--no-bars", action="store_true", help="plain log lines even on a terminal")
    run.add_argument("--track", action="append", default=[], metavar="TRACKER",
                     help="also send each trained cell's curves, metrics and samples to this tracker (tensorboard, "
                          "mlflow, or a plugin's); repeatable; adds to the suite's [tracking] backends")
    run.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    _add_view_options(run)
    run.set_defaults(func=cmd_run)

    pln = sub.add_parser("plan", help="show the cells a run would train, what is done, and how long the rest takes",
                         description="Show what `benchbed run SUITE` would do, training nothing: every cell (held-out "
                                     "trainings included) with its run id and whether the store or the published "
                                     "runs.jsonl has it finished; the (model, metric) pairs that are n/a on each data "
                                     "set, with the reason; and an estimated wall time per cell and in total, from "
                                     "the stored timings of the same cell, else of similar cells (same model "
                                     "component and data set, scaled by steps), else 'no timing'. Loads each data "
                                     "set once; writes nothing.")
    pln.add_argument("suite", metavar="SUITE", help="suite file, or name of a folder under leaderboards/")
    pln.add_argument("--store", help="SQLite result store (default: results.sqlite beside the suite file)")
    pln.add_argument("--jobs", "-j", type=_positive_int, default=1,
                     help="cells run in parallel: the total wall time is divided by it")
    _add_view_options(pln)
    pln.set_defaults(func=cmd_plan)

    lst = sub.add_parser("list", help="list registered components", description="List registered components.")
    lst.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    lst.add_argument("-v", "--verbose", action="store_true", help="show each component's parameters")
    lst.set_defaults(func=cmd_list)

    plg = sub.add_parser("plugins", help="list plugins, their versions and components",
                         description="List loaded plugins with distribution versions and components; failures too.")
    plg.set_defaults(func=cmd_plugins)

    lb = sub.add_parser("leaderboard", help="build a suite's tables from its store",
                        description="Build a suite's tables from its store and its published runs "
                                    "(runs.jsonl beside the suite file): with --format print one format, otherwise "
                                    "write README.md, results.csv, summary.csv, results.json, table.tex, "
                                    "index.html and runs.jsonl.  Never replaces a non-empty published table "
                                    "with an empty one.")
    lb.add_argument("suite", metavar="SUITE")
    lb.add_argument("--format", choices=list(FORMATS),
                    help="print this format to stdout: md (README.md), csv (results.csv, one line per run and "
                         "metric), summary (summary.csv), json (results.json), tex (table.tex), html (index.html)")
    lb.add_argument("--store", help="SQLite result store (default: results.sqlite beside the suite file)")
    lb.add_argument("--out", help="folder for the files (default: the suite's folder)")
    lb.add_argument("--publish", action="store_true",
                    help="write a partial view's files over the suite's published ones (without it a partial view "
                         "needs --out or --format)")
    _add_view_options(lb)
    lb.set_defaults(func=cmd_leaderboard)

    val = sub.add_parser("validate", help="check a suite completely, training nothing",
                         description="Check SUITE as `benchbed run` would before training: the file (types, "
                                     "ranges, names, sampler roles, duplicates), the grid, and the settings that "
                                     "depend on the data (held-out classes, label counts, split names), loading "
                                     "every data set once.  Trains nothing, writes nothing.")
    val.add_argument("suite", metavar="SUITE", help="suite file, or name of a folder under leaderboards/")
    _add_view_options(val)
    val.set_defaults(func=cmd_validate)

    stores = ("store or published runs.jsonl to look in (repeatable; default: every leaderboards/*/results.sqlite, "
              "then the published leaderboards/*/runs.jsonl)")
    show = sub.add_parser("show", help="show one stored run with its provenance",
                          description="Show one run (id or unique prefix): its cell, status and local times, a "
                                      "metrics table (value ± standard error, estimator), the configuration and "
                                      "key provenance; --json prints the stored record.")
    show.add_argument("run", metavar="RUN")
    show.add_argument("--store", action="append", help=stores)
    show.add_argument("--json", action="store_true", help="the raw stored record as JSON (curves as a count)")
    show.set_defaults(func=cmd_show)

    cmp = sub.add_parser("compare", help="compare two stored runs: configuration, provenance and metrics",
                         description="Compare RUN_A and RUN_B (ids or unique prefixes, found in any store given): "
                                     "the flattened configuration and provenance keys that differ, side by side, and "
                                     "each metric's value in A and B, B - A and the estimator (values of different "
                                     "estimators are not compared).")
    cmp.add_argument("run_a", metavar="RUN_A")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("--store", action="append", help=stores)
    cmp.set_defaults(func=cmd_compare)

    dl = sub.add_parser("download", help="fetch the files of data sets and metrics ahead of a run",
                        description="Fetch the files that registered data sets and metrics NAME... need "
                                    "(see benchbed.downloads), printing the path of each file held.")
    dl.add_argument("names", nargs="+", metavar="NAME", help="data set or metric name")
    dl.add_argument("--root", help="data root for data sets (default: $BENCHBED_DATA or ~/.cache/benchbed/data)")
    dl.set_defaults(func=cmd_download)
    return parser


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """A plugin that failed to load is reported as one line (as errors are), not with Python's source line."""
    print(f"benchbed: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchbed.plugins import PluginLoadWarning

    with warnings.catch_warnings():
        show = warnings.showwarning

        def route(message: Warning | str, category: type[Warning], *rest: Any, **kw: Any) -> None:
            (_warning_line if issubclass(category, PluginLoadWarning) else show)(message, category, *rest, **kw)

        warnings.showwarning = route
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except BenchbedError as exc:
        if args.debug:
            traceback.print_exc()
        # one line per error: multi-line messages (a data set's instructions) are joined, and several
        # problems found in one pass (SuiteErrors) get a line each
        for problem in getattr(exc, "problems", None) or [exc]:
            print("benchbed: error: " + " ".join(line.strip() for line in str(problem).splitlines() if line.strip()),
                  file=sys.stderr)
        return EXIT_BAD_INPUT
    except sqlite3.DatabaseError as exc:  # a store damaged inside (its header still reads): not a bug of ours
        if args.debug:
            traceback.print_exc()
        store = " ".join(str(p) for p in args.store) if isinstance(getattr(args, "store", None), list) else \
            getattr(args, "store", None) or "the suite's result store"
        print(f"benchbed: error: result store {store} is damaged ({exc}): restore it from a copy, or move it away "
              "and run again (a published suite's results are read back from its runs.jsonl)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader went away (`benchbed list | head`): not an error. Point stdout at devnull so that
        # the interpreter's final flush does not raise again, and exit as `head`'s writers do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input: one line unless --debug
        if args.debug:
            raise
        print(f"benchbed: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback; "
              "please report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
