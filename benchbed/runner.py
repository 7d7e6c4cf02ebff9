"""Executes one cell: claim, train (resuming a checkpoint), evaluate, store; failures recorded.

``CellRunner.run(cell)`` is the unit of work every executor (serial, process pool, Ray) calls.
It claims the cell in the store first, so a finished cell is never trained twice, a cell held by a
live process is left to it, and a cell whose process died is resumed from its last checkpoint.
While it trains and evaluates a cell, a daemon thread keeps the claim's heartbeat fresh, so a
claim whose heartbeat stops is known to be stale on every host (:meth:`benchbed.store.Store.claim`).

A held-out training (a variant cell, :attr:`benchbed.grid.Cell.held_out`) is trained and stored like
any cell but not evaluated.  When the suite cell it belongs to evaluates, ``train_variant`` gives the
metric the variant's model restored from its final checkpoint; a variant not finished yet is run
right there, as that cell, or waited for while another live process holds it.  Both happen inside
:func:`benchbed.training.nested_training`, so the metric's random stream is the same either way.

Metrics over training (the suite's ``eval_at``): while a cell trains, the runner saves a snapshot of
the model at each of those steps (:meth:`benchbed.checkpoint.Checkpoints.save_snapshot`, which reads no
random number, so training computes the same numbers with and without ``eval_at``) with the cumulative
training seconds then.  After the final evaluation each snapshot is restored into a freshly built
model and the suite's metrics are evaluated on it, exactly as on a final checkpoint; a held-out
training saves snapshots at the same steps, so an outlier metric at step s uses the held-out models
at step s.  The records go to the store's ``eval_points`` table one by one as they are computed, so an
interrupted cell evaluates only the (step, metric) records it lacks, and a finished cell whose suite
gained ``eval_at`` evaluates the points whose snapshots exist (the others are ``n/a``: they need
retraining).

The other jobs live beside it: planning in :mod:`benchbed.grid`, metric records in
:mod:`benchbed.evaluation`, checkpoints in :mod:`benchbed.checkpoint`, reference rows in
:mod:`benchbed.references`, executors in :mod:`benchbed.execute`.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbed import store as store_module
from benchbed.checkpoint import Checkpoints, restore_rng
from benchbed.contracts import DataBundle, EngineOptions, EvalContext, Model
from benchbed.errors import Diverged, NotApplicable, PluginError
from benchbed.evaluation import error_text, eval_point, evaluate_metrics, metric_row, settings_hash
from benchbed.grid import Cell
from benchbed.guard import checked_outputs
from benchbed.preview import make_preview
from benchbed.progress import Progress
from benchbed.provenance import device_description, environment
from benchbed.published import scrub
from benchbed.references import store_references
from benchbed.registry import Registry
from benchbed.sampling import BoundSampler
from benchbed.store import FINISHED, Store
from benchbed.suite import Entry, Suite, config_hash
from benchbed.tracking import track_cell
from benchbed.training import History, nested_training, resolve_device, seed_everything, setup_model, train

#: Seconds between looks at the store while waiting for a cell another live process holds.
WAIT_POLL_S = 2.0


@dataclass(frozen=True)
class CellOutcome:
    """What happened to a cell in this process."""

    run_id: str
    title: str
    status: str  # ok, failed, diverged, skipped (finished before), held (another live process), evaluated
    message: str = ""
    trained: bool = False
    seconds: float = 0.0


@dataclass
class RunOptions:
    """Options of one ``benchbed run``.

    ``engine`` says how cells compute (:class:`EngineOptions`), never what: it reaches every model's
    setup and the provenance's environment, never a run id, a configuration or a table.
    """

    retry_failed: bool = False
    bars: bool | None = None  # None: bars on a TTY
    device: str | None = None  # overrides the suite's device
    steal_stale: float | None = None  # seconds: also take over claims whose heartbeat is older (--steal-stale)
    engine: EngineOptions = field(default_factory=EngineOptions)
    track: tuple[str, ...] = ()  # trackers besides the suite's [tracking] backends (--track NAME)


class HeldOutTrainingFailed(RuntimeError):
    """A held-out training a metric needs failed or diverged; the metric fails, the cell does not."""


class _Heartbeat:
    """Beats a claim every ``interval`` seconds from a daemon thread until stopped (a context manager).

    The thread opens its own store connection on its first beat (a cell shorter than one interval
    never opens one) and writes only in its own short transactions, so it never touches the main
    thread's connection.  A failed beat is reported once and retried at the next interval; nothing
    it does can fail the cell.  It stops by itself when the claim is no longer this process's.
    """

    def __init__(self, path: Path, run_id: str, interval: float) -> None:
        self.path, self.run_id, self.interval = path, run_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"benchbed-heartbeat-{run_id[:12]}", daemon=True)

    def _loop(self) -> None:
        store: Store | None = None
        reported = False
        try:
            while not self._stop.wait(self.interval):
                try:
                    if store is None:  # never create an empty store where a removed one was
                        store = Store(self.path, must_exist=True)
                    if not store.heartbeat(self.run_id):
                        return  # finished, released or taken over: nothing left to keep alive
                except Exception as exc:  # noqa: BLE001 - a busy or unwritable store: try again next time
                    if not reported:
                        print(f"benchbed: heartbeat of cell {self.run_id} failed (retrying): {exc}", file=sys.stderr)
                        reported = True
        finally:
            if store is not None:
                store.close()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)  # a beat stuck on a locked store is harmless: it only updates 'running'


def wait_for_claims(store: Store, run_ids: list[str], *, stale_after: float | None = None,
                    poll_s: float | None = None, on_wait: Callable[[int], None] | None = None) -> None:
    """Return once none of ``run_ids`` is held by another live process: each finished, or its claim went
    stale (heartbeat; ``stale_after``: see :meth:`Store.claim`).  The store is read every ``poll_s``
    seconds (default :data:`WAIT_POLL_S`); ``on_wait(n)`` is called once, before waiting, with how many
    are held."""
    held = store.foreign_claims(run_ids, stale_after=stale_after)
    if held and on_wait is not None:
        on_wait(len(held))
    while held:
        time.sleep(WAIT_POLL_S if poll_s is None else poll_s)
        held = store.foreign_claims(held, stale_after=stale_after)


def _who(cell: Cell) -> str:
    """How errors name the model of ``cell``: its suite entry and component."""
    return f"model {cell.model.label!r} (component {cell.model.component!r})"


def parameter_count(model: object) -> int:
    """``model.n_parameters()``; 0 (shown blank in the tables) when a model (a one-shot one) has no
    such method or it returns ``None``."""
    count = getattr(model, "n_parameters", None)
    value = count() if callable(count) else None
    return 0 if value is None else int(value)


class CellRunner:
    """Executes cells of one suite against one store (one instance per process).

    ``options.engine.threads``, when set, sets this process's intra-op threads.
    """

    def __init__(self, suite: Suite, registry: Registry, store: Store, options: RunOptions | None = None) -> None:
        self.suite = suite
        self.registry = registry
        self.store = store
        self.options = options or RunOptions()
        self.device = resolve_device(self.options.device or suite.device)
        self._data: dict[tuple[str, int], DataBundle] = {}
        self._hashes: dict[tuple[str, int, tuple[int, ...]], str] = {}  # content hash per (data, seed, held out)
        # per store: a second store in the same folder must not find (and skip training on) this one's
        self.checkpoints = Checkpoints(store.path.parent / "checkpoints" / store.uid, self.device)
        if self.options.engine.threads:
            torch.set_num_threads(self.options.engine.threads)

    # -- data -----------------------------------------------------------------------------------

    def data(self, entry: Entry, seed: int) -> DataBundle:
        """Load (once per process) the data set of ``entry`` for ``seed``."""
        key = (config_hash(entry.identity()), seed)
        if key not in self._data:
            self._data[key] = self.registry.load_dataset(entry.component, entry.params, seed)
        return self._data[key]

    def cell_data(self, cell: Cell) -> DataBundle:
        """The data a cell trains on: its data set, without the held-out classes of a variant."""
        data = self.data(cell.dataset, cell.seed)
        return data.hold_out(cell.held_out) if cell.held_out else data

    # -- one cell -------------------------------------------------------------------------------

    def run(self, cell: Cell) -> CellOutcome:
        """Claim, train (resuming a checkpoint), evaluate and store one cell.

        A finished suite cell whose metric set changed is evaluated on its final checkpoint; a finished
        variant is left as it is.
        """
        t0 = time.perf_counter()
        run_id = cell.run_id
        claim = self.store.claim(run_id, cell.identity(), retry_failed=self.options.retry_failed,
                                 stale_after=self.options.steal_stale)
        if not claim.acquired:
            if claim.holder:
                return CellOutcome(run_id, cell.title, "held", f"running in {claim.holder}")
            self._warn_if_data_changed(cell)
            if claim.status == "ok" and not cell.is_variant:
                return self._evaluate_missing(cell, t0)
            return CellOutcome(run_id, cell.title, "skipped", f"finished before ({claim.status})")
        return self._run_claimed(cell, t0)[0]

    def _warn_if_data_changed(self, cell: Cell) -> None:
        """Warn when a finished cell's stored data hash is not the hash of the data it would load now:
        its results are kept (a data set's ``revision`` or deleting the run retrains it), but a table
        mixing data versions must not pass unnoticed.  A run stored without a hash is not compared."""
        stored = self.store.data_hash(cell.run_id)
        if not stored:
            return
        key = (config_hash(cell.dataset.identity()), cell.seed, tuple(cell.held_out))
        if key not in self._hashes:
            try:
                self._hashes[key] = self.cell_data(cell).content_hash()
            except Exception:  # noqa: BLE001 - a data set that no longer loads is reported where it is used
                return
        now = self._hashes[key]
        if now != stored:
            print(f"benchbed: warning: {cell.title} finished before on other data (data hash {stored}, now {now}); "
                  "its results are kept: give the data set a new revision, or delete the run, to train it again",
                  file=sys.stderr)

    def _run_claimed(self, cell: Cell, t0: float) -> tuple[CellOutcome, Any]:
        """Execute a cell this process has claimed, under a heartbeat; the claim is released when
        interrupted.  Returns the outcome and the trained model (``None`` when it failed)."""
        try:
            with _Heartbeat(self.store.path, cell.run_id, store_module.HEARTBEAT_INTERVAL_S):
                return self._execute(cell, t0)
        except KeyboardInterrupt:
            self.store.release(cell.run_id)
            raise

    def _execute(self, cell: Cell, t0: float) -> tuple[CellOutcome, Any]:
        """Train, evaluate (suite cells) and record a claimed cell; any failure is recorded, never raised
        (but an interrupt)."""
        run_id = cell.run_id
        fields: dict[str, Any] = {}
        data: DataBundle | None = None
        model: Any = None
        sampler: BoundSampler | None = None
        metrics: list[dict[str, Any]] = []
        preview_error = ""
        try:
            data = self.cell_data(cell)
            fields["data_hash"] = data.content_hash()
            model, sampler = self._build(cell, data)
            history, train_time = self._train(cell, model, data)
            fields.update(train_time=train_time, train_steps=0 if cell.one_shot else cell.budget.steps,
                          curves=history.points, n_params=parameter_count(model))
            if not cell.is_variant:
                # Each record is stored as soon as it is computed, and the records an interrupted attempt
                # stored are kept (the model is the same: _train drops them whenever it trains a step).
                stored = {m["metric"]: m for m in (self.store.run(run_id) or {}).get("metrics", [])}
                metrics = self._evaluate(cell, model, data, self.suite.metrics, done=stored,
                                         on_row=lambda row: self.store.put_metrics(run_id, [row]))
                preview_error = self._store_preview(cell, model, data)
                self._evaluate_steps(cell)  # stored step by step: an interrupted cell redoes none of them
            status, error = "ok", ""
        except Diverged as exc:
            status, error = "diverged", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failing cell is recorded and the grid goes on
            status, error = "failed", error_text(exc)
        if data is not None:  # failed cells carry it too
            fields["provenance"] = self._provenance(cell, data, sampler, model if status == "ok" else None,
                                                    preview_error)
        if status != "ok" and model is not None and "n_params" not in fields:
            try:
                fields["n_params"] = parameter_count(model)
            except Exception:  # noqa: BLE001 - a count is not worth a second error
                pass
        fields["wall_time"] = time.perf_counter() - t0
        if status != "ok":  # a failed or diverged cell shows no metric values, not even those computed
            self.store.drop_metrics(run_id)
        self.store.finish(run_id, status=status, error=error, fields=fields)
        if self.suite.tracking.backends or self.options.track:  # curves, metrics, samples to TensorBoard, MLflow...
            track_cell(self.suite.tracking, self.options.track, self.registry, suite=self.suite.name,
                       base=self.suite.folder or Path.cwd(), cell=cell, status=status, curves=fields.get("curves", []),
                       metrics=metrics if status == "ok" else [], preview=self.store.preview(run_id))
        outcome = CellOutcome(run_id, cell.title, status, error, True, fields["wall_time"])
        return outcome, model if status == "ok" else None

    def _provenance(self, cell: Cell, data: DataBundle, sampler: BoundSampler | None, model: Model | None,
                    preview_error: str) -> dict[str, Any]:
        """The run's provenance, built once when it finishes: environment (with how it computed),
        components and their plugins, the sampler roles the model asked for, the data's hashes, the
        settings a (trained) ``model`` derived from the data, and why the preview failed."""
        def who(kind: str, name: str) -> dict[str, str]:
            p = self.registry.get(kind, name).provenance
            return {"name": name, "plugin": p.plugin, "distribution": p.distribution, "version": p.version}

        components: dict[str, Any] = {"model": who("model", cell.model.component),
                                      "dataset": who("dataset", cell.dataset.component)}
        if cell.sampler is not None:
            components["sampler"] = who("sampler", cell.sampler.component)
        components["metrics"] = [] if cell.is_variant else [who("metric", m.component) for m in self.suite.metrics]
        prov: dict[str, Any] = {
            **environment(),
            "device": device_description(self.device),
            "engine": dataclasses.asdict(self.options.engine),
            "components": components,
            "sampler_roles": {} if sampler is None else sampler.resolved,
            "data_hashes": {s: getattr(data, s).content_hash() for s in ("train", "val", "test")},
            "suite_file": scrub(str(self.suite.path)) if self.suite.path else "",  # no machine paths
        }
        if callable(settings := getattr(model, "resolved_settings", None)):
            prov["model_settings"] = settings()  # settings a model derived from the data
        if preview_error:
            prov["preview_error"] = preview_error
        return prov

    def _build(self, cell: Cell, data: DataBundle) -> tuple[Any, BoundSampler | None]:
        spec = self.registry.model(cell.model.component)
        model = spec.factory(**cell.model.params)
        sampler = None
        if cell.sampler is not None:
            sampler = BoundSampler(self.registry.sampler(cell.sampler.component), cell.sampler.given,
                                   cell.sampler.roles)
        setup_model(model, data, cell.budget, seed=cell.seed, device=self.device, sampler=sampler,
                    engine=self.options.engine)
        if sampler is not None and spec.sampler_roles is not None and (odd := set(sampler.resolved) -
                                                                          set(spec.sampler_roles)):
            # the suite's role tables were checked against the declaration; keep the declaration honest
            raise PluginError(f"model {spec.name!r} asked its sampler for role(s) {sorted(odd)} outside its declared "
                              f"sampler_roles {list(spec.sampler_roles)}")
        return model, sampler

    def _train(self, cell: Cell, model: Model, data: DataBundle) -> tuple[History, float]:
        """Train from the last checkpoint (if any) to the budget, checkpointing as configured.

        Returns the history and the seconds spent in the model's training steps (a one-shot model's
        ``fit`` call), those before an interruption included.  Saves a snapshot after each of
        :meth:`_eval_steps` steps."""
        run_id, total = cell.run_id, cell.steps
        state = self.checkpoints.load(run_id)
        history, start, before = History(total), 0, 0.0
        if state is not None:
            model.restore(state["model"])
            history.__dict__.update(state["history"])
            start = int(state["step"]) + 1
            before = float(state.get("train_time", 0.0))  # seconds trained before the interruption
            restore_rng(state["rng"])
        if start < total:
            self.store.count_training(run_id)
            self.store.drop_metrics(run_id)  # records of an earlier attempt belong to another model
        every = self.suite.checkpoint_every
        snapshots = frozenset(self._eval_steps(cell))
        with Progress(total, cell.title, bars=self.options.bars, leave=False, position=1) as bar:
            bar.n = start
            if start:
                bar.log(f"resuming from checkpoint at step {start}")

            bookkeeping = 0.0

            def on_step(step: int, losses: Mapping[str, float]) -> None:
                nonlocal bookkeeping
                t = time.perf_counter()
                bar.update(1, **losses)
                so_far = before + t - t_train - bookkeeping  # training seconds up to this step
                if step + 1 in snapshots:
                    self.checkpoints.save_snapshot(run_id, model, step + 1, so_far)
                if every and (step + 1) % every == 0 and step + 1 < total:
                    self.checkpoints.save(run_id, model, step, history, so_far)
                    self.store.heartbeat(run_id)
                bookkeeping += time.perf_counter() - t

            t_train = time.perf_counter()
            train(model, data, cell.budget, seed=cell.seed, device=self.device, start_step=start, history=history,
                  on_step=on_step, one_shot=cell.one_shot, sampler=cell.sampler is not None)
            # Training time excludes the runner's own per-step work (progress, checkpoints), which
            # counts as overhead in the cell's wall time.
            train_time = before + time.perf_counter() - t_train - bookkeeping
        # The final state is kept so that metrics added to the suite later need no retraining, and so
        # that the suite cell of a held-out training can restore it.
        self.checkpoints.save(run_id, model, total - 1, history, train_time)
        return history, train_time

    def _restore(self, cell: Cell, data: DataBundle) -> Any | None:
        """The trained model of a finished cell, from its final checkpoint (``None`` without one)."""
        state = self.checkpoints.load(cell.run_id)
        if state is None:
            return None
        model, _ = self._build(cell, data)
        model.restore(state["model"])
        if hasattr(model, "eval"):
            model.eval()
        return model

    def needs_work(self, cell: Cell) -> bool:
        """Whether running suite cell ``cell`` would train or evaluate anything.

        A cell finished ``ok`` with a current record of every suite metric (and of every ``eval_at`` step)
        needs nothing, and neither do its held-out trainings: a fresh clone, whose store holds only the
        published runs (held-out cells are not published), must not train them again.  A failed or
        diverged cell, and an ``ok`` cell with a failed metric record, need work only with
        ``--retry-failed`` (the failed metrics are evaluated again on the final checkpoint).
        """
        status = self.store.status(cell.run_id)
        if status not in FINISHED:
            return True
        if status != "ok":
            return self.options.retry_failed
        return bool(self._metrics_to_evaluate(cell)) or bool(self._missing_steps(cell))

    def _metrics_to_evaluate(self, cell: Cell) -> tuple[Entry, ...]:
        """The suite metrics a finished ``ok`` cell lacks a current record of, and with
        ``--retry-failed`` those whose record failed."""
        have = self.store.metric_hashes(cell.run_id)
        failed = self.store.failed_metrics(cell.run_id) if self.options.retry_failed else {}
        return tuple(m for m in self.suite.metrics if have.get(m.label) != settings_hash(m) or m.label in failed)

    def _evaluate_missing(self, cell: Cell, t0: float) -> CellOutcome:
        """A finished cell whose metric set changed, that has no sample preview yet (a store written
        before previews existed), or that lacks metric records at some of the suite's ``eval_at`` steps:
        evaluate / draw what is missing from the saved final model and snapshots."""
        todo = self._metrics_to_evaluate(cell)
        needs_preview = self.store.preview(cell.run_id) is None  # stores made before previews existed
        steps = self._missing_steps(cell)
        details = [self._evaluate_final(cell, todo, needs_preview)] if todo or needs_preview else []
        if steps:
            count = self._evaluate_steps(cell)
            details.append(f"{count} value(s) at step(s) {', '.join(map(str, steps))}")
        details = [d for d in details if d]
        if not details:
            return CellOutcome(cell.run_id, cell.title, "skipped", "finished before (ok)")
        return CellOutcome(cell.run_id, cell.title, "evaluated", "; ".join(details),
                           seconds=time.perf_counter() - t0)

    def _evaluate_final(self, cell: Cell, todo: tuple[Entry, ...], needs_preview: bool) -> str:
        """Evaluate metrics ``todo`` and draw the preview (``needs_preview``) of a finished cell from its
        final checkpoint; returns what was done ('' when only the preview was missing and cannot be
        drawn: not worth a failure)."""
        if not self.checkpoints.path(cell.run_id).exists():
            if not todo:
                return ""
            rows = [metric_row(m, "failed", reason="the cell's final checkpoint is missing: delete the run to "
                               "retrain it") for m in todo]
            self.store.put_metrics(cell.run_id, rows)
            return "final checkpoint missing"
        data = self.data(cell.dataset, cell.seed)
        model = self._restore(cell, data)
        if model is None:  # unreadable
            rows = [metric_row(m, "failed", reason="the cell's final checkpoint cannot be read: delete the run "
                               "to retrain it") for m in todo]
            self.store.put_metrics(cell.run_id, rows)
            return "final checkpoint unreadable"
        if todo:  # stored one by one, as in a cell's first evaluation
            self._evaluate(cell, model, data, todo, on_row=lambda row: self.store.put_metrics(cell.run_id, [row]))
        if needs_preview:
            self._store_preview(cell, model, data)
        return f"{len(todo)} new metric(s)" if todo else "sample preview drawn"

    # -- metrics over training (eval_at) ------------------------------------------------------------

    def _eval_steps(self, cell: Cell) -> tuple[int, ...]:
        """The suite's ``eval_at`` steps before ``cell``'s final one (which is the final evaluation); none
        for a one-shot model."""
        return () if cell.one_shot else tuple(s for s in self.suite.eval_at if s < cell.steps)

    def _missing_steps(self, cell: Cell) -> tuple[int, ...]:
        """The steps of :meth:`_eval_steps` at which some metric of the suite has no current record."""
        steps = self._eval_steps(cell)
        have = self.store.eval_point_hashes(cell.run_id) if steps else {}
        return tuple(s for s in steps if any(have.get((m.label, s)) != settings_hash(m) for m in self.suite.metrics))

    def _evaluate_steps(self, cell: Cell) -> int:
        """Evaluate the metrics a suite cell lacks at its ``eval_at`` steps on the snapshots saved then,
        storing each step's records as soon as they exist; returns how many records were stored.

        A missing snapshot makes that step's records ``n/a`` (retraining is the only way to get them).
        A failure fails that step's records, never the cell (the final evaluation stands).
        """
        have = self.store.eval_point_hashes(cell.run_id)
        count = 0
        for step in self._missing_steps(cell):
            todo = tuple(m for m in self.suite.metrics if have.get((m.label, step)) != settings_hash(m))
            state = self.checkpoints.load_snapshot(cell.run_id, step)
            if state is None:
                path = self.checkpoints.snapshot_path(cell.run_id, step)
                reason = (f"the checkpoint of this cell at step {step} cannot be read ({path.name} is corrupt or "
                          "truncated): delete the run to retrain it") if path.exists() else (
                    f"no checkpoint of this cell at step {step} (saved only while a suite whose eval_at names "
                    "the step trains it): delete the run to retrain it")
                points = [eval_point(metric_row(m, "n/a", reason=reason), step, 0.0) for m in todo]
            else:
                seconds = float(state.get("train_time", 0.0))

                def keep(row: dict[str, Any], step: int = step, seconds: float = seconds) -> None:
                    # each record as soon as it exists: an interruption loses only the metric in progress
                    self.store.put_eval_points(cell.run_id, [eval_point(row, step, seconds)])

                try:
                    data = self.cell_data(cell)
                    model, _ = self._build(cell, data)
                    model.restore(state["model"])
                    if hasattr(model, "eval"):
                        model.eval()
                    rows = self._evaluate(cell, model, data, todo, at_step=step, on_row=keep)
                except Diverged as exc:
                    rows = [metric_row(m, "failed", reason=f"diverged: {exc}") for m in todo]
                except Exception as exc:  # noqa: BLE001 - one step's failure does not lose the cell
                    rows = [metric_row(m, "failed", reason=error_text(exc)) for m in todo]
                points = [eval_point(r, step, seconds) for r in rows]
            self.store.put_eval_points(cell.run_id, points)
            count += len(points)
        return count

    def _variant_at(self, cell: Cell, variant: DataBundle, step: int) -> Any:
        """``cell``'s held-out training on ``variant`` restored from its snapshot after ``step`` steps (run
        here or waited for first when it has not finished).  Call inside :func:`nested_training`.

        Raises:
            NotApplicable: the variant is not a held-out-class cell, or has no snapshot at ``step``.
            HeldOutTrainingFailed: the held-out training failed or diverged.
        """
        vcell = cell.variant(variant.held_out)
        if not variant.held_out or self.cell_data(vcell).content_hash() != variant.content_hash():
            raise NotApplicable("this metric trains its variant model in memory, which keeps no checkpoints at "
                                "intermediate steps")
        if self.store.status(vcell.run_id) != "ok":
            self._variant_model(cell, variant)  # trains it (saving its snapshots) or waits for it
        state = self.checkpoints.load_snapshot(vcell.run_id, step)
        if state is None:
            raise NotApplicable(f"held-out training {vcell.title!r} (run {vcell.run_id}) has no checkpoint at step "
                                f"{step} (it trained before eval_at named that step, or elsewhere): delete that run "
                                "to retrain it")
        model, _ = self._build(vcell, variant)
        model.restore(state["model"])
        if hasattr(model, "eval"):
            model.eval()
        return model

    def _store_preview(self, cell: Cell, model: Model, data: DataBundle) -> str:
        """Draw and store the cell's sample preview after its metrics; returns why it failed, or ''.

        A preview is an illustration, so its failure never fails the cell.  A model that cannot sample,
        or whose sampling failed, gets an empty payload, so that a later run does not try again.
        """
        payload, reason = b"", ""
        try:
            seed_everything(cell.seed)
            with checked_outputs(model, data.info.shape, _who(cell)):
                preview = make_preview(model, data)
            payload = b"" if preview is None else preview.to_bytes()
        except Exception as exc:  # noqa: BLE001 - recorded in the run's provenance instead
            reason = error_text(exc)
        self.store.put_preview(cell.run_id, payload)
        return reason

    # -- metrics --------------------------------------------------------------------------------

    def _evaluate(self, cell: Cell, model: Model, data: DataBundle, metrics: tuple[Entry, ...],
                  at_step: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Every metric of the cell (see :func:`benchbed.evaluation.evaluate_metrics`, which takes
        ``kwargs``: ``done``, ``on_row``); held-out trainings are shared between the metrics of the cell.
        ``at_step``: ``model`` is the snapshot after that many steps, and the held-out models are theirs at
        the same step (:meth:`_variant_at`)."""
        variants: dict[str, Any] = {}
        # Every capability output, of the model and of its held-out variants, is checked against its
        # contract's shape (benchbed.guard): a wrong one fails the metric that asked, naming the model.
        with ExitStack() as guards:

            def train_variant(variant: DataBundle) -> Any:
                key = variant.content_hash()
                if key not in variants:
                    with nested_training(self.device):
                        variants[key] = self._variant_model(cell, variant) if at_step is None else \
                            self._variant_at(cell, variant, at_step)
                    guards.enter_context(checked_outputs(variants[key], data.info.shape,
                                                         f"{_who(cell)} held out {list(variant.held_out)}"))
                return variants[key]

            guards.enter_context(checked_outputs(model, data.info.shape, _who(cell)))
            ctx = EvalContext(model=model, data=data, device=self.device, seed=cell.seed,
                              train_variant=train_variant)
            return evaluate_metrics(self.registry, metrics, ctx, dataset=cell.dataset.label, **kwargs)

    def _variant_model(self, cell: Cell, variant: DataBundle) -> Any:
        """The model of ``cell`` trained on ``variant``: its held-out training's cell, restored from that
        cell's final checkpoint, run here as that cell when nobody has, or waited for while another
        live process runs it.  A variant that is not a held-out-class one (or whose data differs from
        the cell's) is trained here, in memory, as before held-out trainings were cells."""
        vcell = cell.variant(variant.held_out)
        if not variant.held_out or self.cell_data(vcell).content_hash() != variant.content_hash():
            return self._train_in_memory(cell, variant)
        while True:
            status = self.store.status(vcell.run_id)
            if status == "ok":
                model = self._restore(vcell, variant)
                # a finished training whose checkpoint is gone (another machine's, deleted) is redone here
                return model if model is not None else self._train_in_memory(cell, variant)
            claim = self.store.claim(vcell.run_id, vcell.identity(), stale_after=self.options.steal_stale)
            if claim.acquired:
                outcome, model = self._run_claimed(vcell, time.perf_counter())
                if outcome.status == "ok":
                    return model
                status, error = outcome.status, outcome.message
            elif claim.holder:
                wait_for_claims(self.store, [vcell.run_id], stale_after=self.options.steal_stale)
                continue
            else:
                status, error = claim.status or "", (self.store.run(vcell.run_id) or {}).get("error", "")
            raise HeldOutTrainingFailed(f"held-out training {vcell.title!r} (run {vcell.run_id}) {status}: {error}")

    def _train_in_memory(self, cell: Cell, variant: DataBundle) -> Any:
        """Train ``cell``'s model on ``variant`` from scratch, storing nothing."""
        fresh, _ = self._build(cell, variant)
        title = f"{cell.title} · held out {list(variant.held_out)}"
        with Progress(cell.steps, title, bars=self.options.bars, leave=False, position=1) as bar:
            train(fresh, variant, cell.budget, seed=cell.seed, device=self.device, one_shot=cell.one_shot,
                  sampler=cell.sampler is not None, on_step=lambda s, losses: bar.update(1, **losses))
        return fresh

    # -- references -----------------------------------------------------------------------------

    def references(self) -> int:
        """Store the metrics' model-free rows once per (data set, seed); returns how many were added."""
        return store_references(self.suite, self.registry, self.store, self.data)
