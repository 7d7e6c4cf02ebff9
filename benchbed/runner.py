"""Runs the cells of a suite: train, checkpoint, evaluate, store; failures recorded, the grid goes on.

``CellRunner.run(cell)`` is the unit of work every executor (serial, process pool, Ray) calls.
It claims the cell in the store first, so a finished cell is never trained twice, a cell held by a
live process is left to it, and a cell whose process died is resumed from its last checkpoint.
While it trains and evaluates a cell, a daemon thread keeps the claim's heartbeat fresh, so a
claim whose heartbeat stops is known to be stale on every host (:meth:`benchbed.store.Store.claim`).
"""

from __future__ import annotations

import inspect
import math
import random
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbed import store as store_module
from benchbed.contracts import DataBundle, EvalContext, MetricResult
from benchbed.errors import Diverged, NotApplicable, PluginError
from benchbed.grid import Cell, data_incompatibility, incompatibility
from benchbed.preview import make_preview
from benchbed.progress import Progress
from benchbed.provenance import device_description, environment
from benchbed.published import scrub
from benchbed.registry import Registry
from benchbed.sampling import BoundSampler
from benchbed.store import Store
from benchbed.suite import Entry, Suite, config_hash
from benchbed.training import History, nested_training, resolve_device, seed_everything, setup_model, train


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
    """Options of one ``benchbed run``."""

    retry_failed: bool = False
    bars: bool | None = None  # None: bars on a TTY
    device: str | None = None  # overrides the suite's device
    steal_stale: float | None = None  # seconds: also take over claims whose heartbeat is older (--steal-stale)


def _error_text(exc: BaseException) -> str:
    """``Type: message (file:line in function)`` of the innermost frame: enough to find the fault."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _metric_settings_hash(entry: Entry) -> str:
    return config_hash(entry.identity())


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
                    if store is None:
                        store = Store(self.path)
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


class CellRunner:
    """Executes cells of one suite against one store (one instance per process)."""

    def __init__(self, suite: Suite, registry: Registry, store: Store, options: RunOptions | None = None) -> None:
        self.suite = suite
        self.registry = registry
        self.store = store
        self.options = options or RunOptions()
        self.device = resolve_device(self.options.device or suite.device)
        self._data: dict[tuple[str, int], DataBundle] = {}
        # per store: a second store in the same folder must not find (and skip training on) this one's
        self.checkpoint_dir = store.path.parent / "checkpoints" / store.uid

    # -- data -----------------------------------------------------------------------------------

    def data(self, entry: Entry, seed: int) -> DataBundle:
        """Load (once per process) the data set of ``entry`` for ``seed``."""
        key = (config_hash(entry.identity()), seed)
        if key not in self._data:
            spec = self.registry.dataset(entry.component)
            self._data[key] = spec.factory(**entry.params).load(seed=seed)
        return self._data[key]

    # -- one cell -------------------------------------------------------------------------------

    def run(self, cell: Cell) -> CellOutcome:
        """Claim, train (resuming a checkpoint), evaluate and store one cell."""
        t0 = time.perf_counter()
        run_id = cell.run_id
        claim = self.store.claim(run_id, cell.identity(), retry_failed=self.options.retry_failed,
                                 stale_after=self.options.steal_stale)
        if not claim.acquired:
            if claim.holder:
                return CellOutcome(run_id, cell.title, "held", f"running in {claim.holder}")
            if claim.status == "ok":
                return self._evaluate_missing(cell, t0)
            return CellOutcome(run_id, cell.title, "skipped", f"finished before ({claim.status})")
        try:
            with _Heartbeat(self.store.path, run_id, store_module.HEARTBEAT_INTERVAL_S):
                return self._train_and_evaluate(cell, t0)
        except KeyboardInterrupt:
            self.store.release(run_id)
            raise

    def _provenance(self, cell: Cell, data: DataBundle, sampler: BoundSampler | None) -> dict[str, Any]:
        def who(kind: str, name: str) -> dict[str, str]:
            p = self.registry.get(kind, name).provenance
            return {"name": name, "plugin": p.plugin, "distribution": p.distribution, "version": p.version}

        components = {"model": who("model", cell.model.component), "dataset": who("dataset", cell.dataset.component)}
        if cell.sampler is not None:
            components["sampler"] = who("sampler", cell.sampler.component)
        components["metrics"] = [who("metric", m.component) for m in self.suite.metrics]  # type: ignore[assignment]
        return {
            **environment(),
            "device": device_description(self.device),
            "components": components,
            "sampler_roles": {} if sampler is None else sampler.resolved,
            "data_hashes": {s: getattr(data, s).content_hash() for s in ("train", "val", "test")},
            "suite_file": scrub(str(self.suite.path)) if self.suite.path else "",  # no machine paths
        }

    def _build(self, cell: Cell, data: DataBundle) -> tuple[Any, BoundSampler | None]:
        spec = self.registry.model(cell.model.component)
        model = spec.factory(**cell.model.params)
        sampler = None
        if cell.sampler is not None:
            sampler = BoundSampler(self.registry.sampler(cell.sampler.component), cell.sampler.given,
                                   cell.sampler.roles)
        setup_model(model, data, cell.budget, seed=cell.seed, device=self.device, sampler=sampler)
        if sampler is not None and spec.sampler_roles is not None and (odd := set(sampler.resolved) -
                                                                          set(spec.sampler_roles)):
            # the suite's role tables were checked against the declaration; keep the declaration honest
            raise PluginError(f"model {spec.name!r} asked its sampler for role(s) {sorted(odd)} outside its declared "
                              f"sampler_roles {list(spec.sampler_roles)}")
        return model, sampler

    def _checkpoint_path(self, run_id: str) -> Path:
        return self.checkpoint_dir / f"{run_id}.pt"

    def _save_checkpoint(self, run_id: str, model: Any, step: int, history: History) -> None:
        """Atomic write (temp file + rename) so a kill never leaves a half-written checkpoint."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self._checkpoint_path(run_id)
        tmp = path.with_suffix(".tmp")
        torch.save({"step": step, "model": model.checkpoint(), "history": history.__dict__,
                    "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                            "python": random.getstate(),
                            # models on a GPU draw noise from the CUDA generators
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}, tmp)
        tmp.replace(path)

    def _load_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        path = self._checkpoint_path(run_id)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location=self.device, weights_only=False)
        except Exception:  # noqa: BLE001 - a corrupt checkpoint means training starts over
            return None

    def _train(self, cell: Cell, model: Any, data: DataBundle, title: str) -> tuple[History, float]:
        """Train from the last checkpoint (if any) to the budget, checkpointing as configured.

        Returns the history and the seconds spent in the model's training steps."""
        run_id, budget = cell.run_id, cell.budget
        state = self._load_checkpoint(run_id)
        history, start = History(budget.steps), 0
        if state is not None:
            model.restore(state["model"])
            history.__dict__.update(state["history"])
            start = int(state["step"]) + 1
            torch.set_rng_state(state["rng"]["torch"].cpu())
            np.random.set_state(state["rng"]["numpy"])
            random.setstate(state["rng"]["python"])
            if state["rng"].get("cuda"):
                torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        if start < budget.steps:
            self.store.count_training(run_id)
        every = self.suite.checkpoint_every
        with Progress(budget.steps, title, bars=self.options.bars, leave=False, position=1) as bar:
            bar.n = start
            if start:
                bar.log(f"resuming from checkpoint at step {start}")

            bookkeeping = 0.0

            def on_step(step: int, losses: Mapping[str, float]) -> None:
                nonlocal bookkeeping
                t = time.perf_counter()
                bar.update(1, **losses)
                if every and (step + 1) % every == 0 and step + 1 < budget.steps:
                    self._save_checkpoint(run_id, model, step, history)
                    self.store.heartbeat(run_id)
                bookkeeping += time.perf_counter() - t

            t_train = time.perf_counter()
            train(model, data, budget, seed=cell.seed, device=self.device, start_step=start, history=history,
                  on_step=on_step)
            # Training time excludes the runner's own per-step work (progress, checkpoints), which
            # counts as overhead in the cell's wall time.
            train_time = time.perf_counter() - t_train - bookkeeping
        # The final state is kept so that metrics added to the suite later need no retraining.
        self._save_checkpoint(run_id, model, budget.steps - 1, history)
        return history, train_time

    def _train_and_evaluate(self, cell: Cell, t0: float) -> CellOutcome:
        run_id = cell.run_id
        fields: dict[str, Any] = {}
        try:
            data = self.data(cell.dataset, cell.seed)
            fields["data_hash"] = data.content_hash()
            model, sampler = self._build(cell, data)
            fields["n_params"] = int(model.n_parameters())
            fields["provenance"] = self._provenance(cell, data, sampler)  # failed cells carry it too
            history, train_time = self._train(cell, model, data, cell.title)
            fields.update(train_time=train_time, train_steps=cell.budget.steps, curves=history.points)
            if sampler is not None:  # roles a model asked for during training
                fields["provenance"]["sampler_roles"] = sampler.resolved
            if callable(getattr(model, "resolved_settings", None)):  # settings a model derived from the data
                fields["provenance"]["model_settings"] = model.resolved_settings()
            metrics = self._evaluate(cell, model, data, self.suite.metrics)
            if reason := self._store_preview(cell, model, data):
                fields["provenance"]["preview_error"] = reason
        except Diverged as exc:
            fields["wall_time"] = time.perf_counter() - t0
            self.store.finish(run_id, status="diverged", error=str(exc), fields=fields)
            return CellOutcome(run_id, cell.title, "diverged", str(exc), True, fields["wall_time"])
        except Exception as exc:  # noqa: BLE001 - a failing cell is recorded and the grid goes on
            fields["wall_time"] = time.perf_counter() - t0
            self.store.finish(run_id, status="failed", error=_error_text(exc), fields=fields)
            return CellOutcome(run_id, cell.title, "failed", _error_text(exc), True, fields["wall_time"])
        fields["wall_time"] = time.perf_counter() - t0
        self.store.finish(run_id, status="ok", fields=fields, metrics=metrics)
        return CellOutcome(run_id, cell.title, "ok", "", True, fields["wall_time"])

    def _evaluate_missing(self, cell: Cell, t0: float) -> CellOutcome:
        """A finished cell whose metric set changed, or that has no sample preview yet (a store written
        before previews existed): evaluate / draw what is missing from the saved final model."""
        have = self.store.metric_hashes(cell.run_id)
        todo = tuple(m for m in self.suite.metrics if have.get(m.label) != _metric_settings_hash(m))
        needs_preview = self.store.preview(cell.run_id) is None  # stores made before previews existed
        if not todo and not needs_preview:
            return CellOutcome(cell.run_id, cell.title, "skipped", "finished before (ok)")
        state = self._load_checkpoint(cell.run_id)
        if state is None and not todo:  # only the preview is missing: not worth a failure
            return CellOutcome(cell.run_id, cell.title, "skipped", "finished before (ok)")
        if state is None:
            rows = [self._row(m, "failed", reason="the cell's final checkpoint is missing: delete the run to "
                              "retrain it") for m in todo]
            self.store.put_metrics(cell.run_id, rows)
            return CellOutcome(cell.run_id, cell.title, "evaluated", "final checkpoint missing")
        data = self.data(cell.dataset, cell.seed)
        model, _ = self._build(cell, data)
        model.restore(state["model"])
        if hasattr(model, "eval"):
            model.eval()
        if todo:
            self.store.put_metrics(cell.run_id, self._evaluate(cell, model, data, todo))
        if needs_preview:
            self._store_preview(cell, model, data)
        detail = f"{len(todo)} new metric(s)" if todo else "sample preview drawn"
        return CellOutcome(cell.run_id, cell.title, "evaluated", detail, seconds=time.perf_counter() - t0)

    def _store_preview(self, cell: Cell, model: Any, data: DataBundle) -> str:
        """Draw and store the cell's sample preview after its metrics; returns why it failed, or ''.

        A preview is an illustration, so its failure never fails the cell.  A model that cannot sample,
        or whose sampling failed, gets an empty payload, so that a later run does not try again.
        """
        payload, reason = b"", ""
        try:
            seed_everything(cell.seed)
            preview = make_preview(model, data)
            payload = b"" if preview is None else preview.to_bytes()
        except Exception as exc:  # noqa: BLE001 - recorded in the run's provenance instead
            reason = _error_text(exc)
        self.store.put_preview(cell.run_id, payload)
        return reason

    # -- metrics --------------------------------------------------------------------------------

    @staticmethod
    def _row(entry: Entry, status: str, result: MetricResult | None = None, reason: str = "",
             seconds: float = 0.0) -> dict[str, Any]:
        # A record carries the settings that produced it: the metric's own account when it gives one
        # (an exact log-likelihood does not use the suite's AIS settings), else the entry's parameters.
        settings = dict(result.settings) if result is not None and result.settings else dict(entry.params)
        row: dict[str, Any] = {
            "metric": entry.label, "component": entry.component, "status": status,
            "value": None if result is None else float(result.value), "reason": reason, "settings": settings,
            "details": {} if result is None else result.details, "settings_hash": _metric_settings_hash(entry),
            "wall_time": seconds}
        if result is not None:
            row["estimator"] = result.estimator
            row["stderr"] = None if result.stderr is None else float(result.stderr)
            if result.per_example is not None:
                per = result.per_example
                row["per_example"] = per.detach().double().cpu().numpy() if isinstance(per, torch.Tensor) else per
        return row

    def _evaluate(self, cell: Cell, model: Any, data: DataBundle, metrics: tuple[Entry, ...]) -> list[dict[str, Any]]:
        """Every metric of the cell: ``n/a`` decided up front from the compatibility matrix, errors recorded."""
        variants: dict[str, Any] = {}

        def train_variant(variant: DataBundle) -> Any:
            key = variant.content_hash()
            if key not in variants:
                with nested_training(self.device):
                    fresh, _ = self._build(cell, variant)
                    title = f"{cell.title} · held out {list(variant.held_out)}"
                    with Progress(cell.budget.steps, title, bars=self.options.bars, leave=False, position=1) as bar:
                        train(fresh, variant, cell.budget, seed=cell.seed, device=self.device,
                              on_step=lambda s, losses: bar.update(1, **losses))
                variants[key] = fresh
            return variants[key]

        ctx = EvalContext(model=model, data=data, device=self.device, seed=cell.seed, train_variant=train_variant)
        rows = []
        caps = frozenset(model.capabilities)
        for entry in metrics:
            spec = self.registry.metric(entry.component)
            reason = incompatibility(spec, caps, data.info)
            if reason:
                rows.append(self._row(entry, "n/a", reason=reason))
                continue
            t = time.perf_counter()
            try:
                seed_everything(cell.seed)  # metric values do not depend on metric order
                with torch.no_grad():
                    result = spec.factory(**entry.params).evaluate(ctx)
                if not math.isfinite(float(result.value)):  # never "ok", never ranked
                    rows.append(self._row(entry, "failed", reason=f"metric {entry.label!r} returned a non-finite "
                                          f"value ({float(result.value)})", seconds=time.perf_counter() - t))
                    continue
                rows.append(self._row(entry, "ok", result, seconds=time.perf_counter() - t))
            except NotApplicable as exc:
                rows.append(self._row(entry, "n/a", reason=str(exc), seconds=time.perf_counter() - t))
            except Diverged:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing metric does not lose the others
                rows.append(self._row(entry, "failed", reason=_error_text(exc), seconds=time.perf_counter() - t))
        return rows

    # -- references -----------------------------------------------------------------------------

    def references(self) -> int:
        """Store the metrics' model-free rows once per (data set, seed); returns how many were added."""
        added = 0
        for dataset in self.suite.datasets:
            for seed in self.suite.seeds:
                for entry in self.suite.metrics:
                    metric = self.registry.metric(entry.component).factory(**entry.params)
                    if not callable(getattr(metric, "references", None)):
                        continue
                    try:
                        data = self.data(dataset, seed)
                    except Exception:  # noqa: BLE001 - the data set's cells record the error
                        continue
                    spec = self.registry.metric(entry.component)
                    if data_incompatibility(spec, data.info):
                        continue
                    seed_everything(seed)
                    takes_seed = "seed" in inspect.signature(metric.references).parameters
                    refs = metric.references(data, seed=seed) if takes_seed else metric.references(data)
                    for ref in refs:
                        ident = {"suite": self.suite.name, "model": ref.label, "model_component": "",
                                 "sampler": "", "dataset": dataset.label, "seed": seed,
                                 "config": {"reference": ref.label, "metric": entry.identity(),
                                            "dataset": dataset.identity(), "seed": seed}}
                        run_id = config_hash(ident["config"])
                        if self.store.status(run_id) == "ok" and entry.label in self.store.metric_hashes(run_id):
                            continue
                        self.store.put_reference(run_id, ident, self._row(entry, "ok", ref.result))
                        added += 1
        return added
