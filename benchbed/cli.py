"""The ``benchbed`` command line: run, list, plugins, leaderboard, show."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbed import __version__
from benchbed.errors import BenchbedError
from benchbed.formats import FORMATS
from benchbed.params import schema
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.specs import MetricSpec
from benchbed.store import HEARTBEAT_STALE_S
from benchbed.suite import Suite, check_device, load_suite

if TYPE_CHECKING:
    from benchbed.store import Store

KINDS = ("models", "samplers", "datasets", "metrics")

#: Exit codes: 0 every cell ok or n/a; 2 bad input (nothing trained); 3 the run finished but a cell of
#: the suite failed or diverged (its reason is stored and tabulated); 4 internal error (a bug: the message
#: says so, --debug shows the traceback); 130 interrupted (resumable).
EXIT_BAD_INPUT, EXIT_CELLS_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 3, 4, 130
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


def _registry() -> Registry:
    return load_plugins().registry


def _suite(name: str, registry: Registry) -> Suite:
    """Load a suite and check its claims file, if any (:mod:`benchbed.claims`), before anything runs."""
    from benchbed.claims import claims_for

    suite = load_suite(resolve_suite_path(name), registry)
    claims_for(suite, registry)
    return suite


def _store(args: argparse.Namespace, suite: Suite, *, create: bool = True) -> Store:
    """The suite's store, with the suite folder's published runs imported (a fresh clone has only those).

    ``create=False``: refuse to create an empty store when there is neither a store nor published runs.
    """
    from benchbed import published
    from benchbed.execute import default_store_path
    from benchbed.store import Store

    path = Path(args.store) if args.store else default_store_path(suite)
    runs = published.runs_path(suite.publish_folder) if suite.publish_folder is not None else None
    if not create and not path.exists() and (runs is None or not runs.is_file()):
        raise BenchbedError(
            f"suite {suite.name!r} has no results: no store at {path} and no published runs"
            + (f" ({runs} is missing)" if runs is not None else "")
            + f". Run `benchbed run {args.suite}` first, or restore {runs} (e.g. `git checkout -- {runs}`).")
    store = Store(path)
    if runs is not None:
        published.import_runs(store, runs)
    return store


def _out_folder(args: argparse.Namespace, suite: Suite) -> Path:
    """Where the tables go: ``--out``, else the suite's publish folder."""
    return Path(args.out) if args.out else (suite.publish_folder or Path.cwd())


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    from benchbed import leaderboard
    from benchbed.contracts import EngineOptions
    from benchbed.execute import run_suite
    from benchbed.grid import plan_run
    from benchbed.runner import RunOptions
    from benchbed.validate import check_data, loader

    registry = _registry()
    suite = _suite(args.suite, registry)
    if args.device is not None:
        check_device(args.device, "--device: ")
    load = loader(registry)
    check_data(suite, registry, load)  # settings that depend on the data, before training
    # planned once: the cells to run, and the cells whose failures set the exit code
    planned = plan_run(suite, registry, lambda entry: load(entry, suite.seeds[0]).info)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():  # known now: say so before any training
        raise BenchbedError(f"--out {out}: is a file, not a folder for the tables")
    store = _store(args, suite)
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    engine = EngineOptions(fused=False if args.no_fused else None,
                           concurrent_chains=False if args.no_concurrent_chains else None, threads=args.threads)
    options = RunOptions(retry_failed=args.retry_failed, bars=None if not args.no_bars else False, device=args.device,
                         steal_stale=args.steal_stale, engine=engine)
    try:
        summary = run_suite(suite, registry, store, jobs=args.jobs, executor=args.executor, options=options,
                            planned=planned)
    except KeyboardInterrupt:
        print("benchbed: interrupted; finished cells are in the store. Run the same command again to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    print(f"benchbed: suite {suite.name}: {len(summary.outcomes)} cells ({counts}); store {store.path}")
    if not args.no_tables:
        for path in leaderboard.write(store, suite, registry, _out_folder(args, suite)):
            print(f"benchbed: wrote {path}")
    # From the store: a failure stored by an earlier run is "skipped" now but is still a failure (held-out
    # trainings included: the metrics that needed one failed with it).
    failed = sum(store.status(c.run_id) in ("failed", "diverged") for c in planned.order)
    if failed:
        print(f"benchbed: {failed} cell(s) of suite {suite.name} failed or diverged (reasons in the tables); "
              f"exit code {EXIT_CELLS_FAILED}", file=sys.stderr)
    return EXIT_CELLS_FAILED if failed else 0


def _params_text(factory: Any) -> str:
    parts = []
    for p in schema(factory).values():
        parts.append(p.name if p.required else f"{p.name}={p.default!r}")
    return ", ".join(parts)


def _requirement_text(requires: Any) -> str:
    """A metric's ``requires`` as ``benchbed list`` shows it: a plain set's names sorted, alternatives
    (``AnyOf``) as they describe themselves."""
    if isinstance(requires, set | frozenset):
        return ", ".join(sorted(requires))
    return str(requires)


def cmd_list(args: argparse.Namespace) -> int:
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
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    loaded = load_plugins()
    for info in loaded.plugins:
        p = info.provenance
        print(f"{info.name}  ({p.distribution} {p.version})")
        for kind, names in info.components.items():
            if names:
                print(f"    {kind}s: {', '.join(names)}")
    for name, message in loaded.failures.items():
        print(f"{name}  FAILED: {message}")
    return 1 if loaded.failures else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchbed import leaderboard

    registry = _registry()
    suite = _suite(args.suite, registry)
    store = _store(args, suite, create=False)
    if args.format:
        board = leaderboard.build(store, suite, registry)
        sys.stdout.write(leaderboard.render(args.format, store, board,
                                            leaderboard.evaluated_claims(store, board, registry)))
        return 0
    for path in leaderboard.write(store, suite, registry, _out_folder(args, suite)):
        print(f"benchbed: wrote {path}")
    return 0


def _show_sources(args: argparse.Namespace) -> list[Path]:
    """Where ``show`` looks: the store given, else every store and published run file under leaderboards/."""
    if args.store:
        path = Path(args.store)
        if not path.is_file():
            raise BenchbedError(f"no store at {path}")
        return [path]
    from benchbed.published import RUNS_FILE

    return sorted(LEADERBOARDS.glob("*/results.sqlite")) + sorted(LEADERBOARDS.glob(f"*/{RUNS_FILE}"))


def _find_run(path: Path, run_id: str) -> dict[str, Any] | None:
    """A run (id or unique prefix) in a store or a published run file, as ``Store.run`` returns it."""
    from benchbed import published
    from benchbed.store import Store

    if path.suffix != ".jsonl":
        return Store(path).run(run_id)
    found = [r for r in published.read_runs(path) if r["run"]["run_id"].startswith(run_id)]
    if len(found) > 1:
        raise BenchbedError(f"run id prefix {run_id!r} is ambiguous in {path}: {len(found)} runs start with it; "
                            "give more characters")
    if not found:
        return None
    (rec,) = found
    return {**rec["run"], "metrics": rec["metrics"]}


def cmd_validate(args: argparse.Namespace) -> int:
    from benchbed.validate import loader, validate

    registry = _registry()
    suite = _suite(args.suite, registry)
    for line in validate(suite, registry, loader(registry)):
        print(f"benchbed: {line}")
    print(f"benchbed: suite {suite.name} is valid; nothing was trained")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    sources = _show_sources(args)
    if not sources:
        raise BenchbedError("no store given and none found under leaderboards/*/ (results.sqlite or runs.jsonl); "
                            "pass --store PATH")
    for path in sources:
        run = _find_run(path, args.run)
        if run is not None:
            run["curves"] = f"{len(run['curves'])} points"
            print(json.dumps(run, indent=2, sort_keys=True, default=str))
            return 0
    raise BenchbedError(f"no run with id (or unique prefix) {args.run!r} in {', '.join(map(str, sources))}")


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
                                "a cell of the suite failed or diverged; 4 internal error (a bug; --debug shows the "
                                "traceback); 130 interrupted (run again to resume)")
    run.add_argument("suite", metavar="SUITE", help="suite file, or name of a folder under leaderboards/")
    run.add_argument("--jobs", "-j", type=_positive_int, default=1,
                     help="cells run in parallel in a local process pool (a positive integer)")
    run.add_argument("--store", help="SQLite result store (default: results.sqlite beside the suite file)")
    run.add_argument("--executor", choices=["auto", "serial", "pool", "ray"], default="auto",
                     help="auto = pool when --jobs > 1; ray uses RAY_ADDRESS or a local Ray")
    run.add_argument("--device", help="override the suite's device (auto, cpu, cuda, cuda:1)")
    run.add_argument("--retry-failed", action="store_true", help="train failed and diverged cells again")
    run.add_argument("--steal-stale", type=_seconds, metavar="SECONDS",
                     help="take over cells claimed by another run whose heartbeat is older than SECONDS, whatever "
                          "host or pid holds them (0: every claim; a live holder then trains its cell in vain). "
                          f"Without it a claim is taken over once its heartbeat is {HEARTBEAT_STALE_S:g} s old, or "
                          "at once on this host when its process is gone")
    run.add_argument("--no-fused", action="store_true",
                     help="do not use the models' hand-written value-and-gradient paths (same numbers; for "
                          "checking them). Default: automatic")
    run.add_argument("--no-concurrent-chains", action="store_true",
                     help="never run a step's independent chain sets side by side in threads (same numbers). "
                          "Default: automatic")
    run.add_argument("--threads", type=_positive_int, metavar="N",
                     help="intra-op threads of each process running cells (default: torch's default; with "
                          "--jobs, the CPU count divided by the jobs)")
    run.add_argument("--out", help="folder for the tables (default: the suite's folder)")
    run.add_argument("--no-tables", action="store_true", help="do not write tables")
    run.add_argument("--no-bars", action="store_true", help="plain log lines even on a terminal")
    run.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    run.set_defaults(func=cmd_run)

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
    lb.set_defaults(func=cmd_leaderboard)

    val = sub.add_parser("validate", help="check a suite completely, training nothing",
                         description="Check SUITE as `benchbed run` would before training: the file (types, "
                                     "ranges, names, sampler roles, duplicates), the grid, and the settings that "
                                     "depend on the data (held-out classes, label counts, split names), loading "
                                     "every data set once.  Trains nothing, writes nothing.")
    val.add_argument("suite", metavar="SUITE", help="suite file, or name of a folder under leaderboards/")
    val.set_defaults(func=cmd_validate)

    show = sub.add_parser("show", help="show one stored run with its provenance",
                          description="Show one run (id or unique prefix) with config, provenance and metrics.")
    show.add_argument("run", metavar="RUN")
    show.add_argument("--store", help="store to look in (default: every leaderboards/*/results.sqlite and the "
                                      "published leaderboards/*/runs.jsonl)")
    show.set_defaults(func=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BenchbedError as exc:
        if args.debug:
            traceback.print_exc()
        # one line: multi-line messages (a data set's instructions) are joined
        print("benchbed: error: " + " ".join(line.strip() for line in str(exc).splitlines() if line.strip()),
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input: one line unless --debug
        if args.debug:
            raise
        print(f"benchbed: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback; "
              "please report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
