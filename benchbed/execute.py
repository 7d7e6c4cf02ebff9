"""Executors: serial (default), a local process pool (``--jobs N``) and Ray (``--executor ray``).

Every executor calls :meth:`benchbed.runner.CellRunner.run` in a worker that loads the plugins,
the suite and the store itself, so workers write their results directly and a killed parent
loses nothing a worker finished.

Pool workers die with their parent (``prctl(PR_SET_PDEATHSIG)`` on Linux, and a thread watching
``os.getppid()`` everywhere): a killed ``benchbed run`` leaves no worker training on, or idling, behind
it.  The cell a worker held keeps its claim until the claim goes stale (at once on this host, since
its pid is dead; by heartbeat age elsewhere), and the next run resumes it from its checkpoint.  A
local Ray that ``ray.init()`` starts is fate-shared with its driver by Ray itself (its processes get
``PR_SET_PDEATHSIG`` and a reaper process; workers exit with their raylet); on a Ray cluster the tasks
of a dead driver's job are cancelled by Ray.

Only the parent writes to the terminal: workers send :class:`benchbed.progress.ProgressEvent` records
(their cell, training steps, the metric running, their printed lines) through a multiprocessing queue
(a Ray queue actor under Ray) to the parent's :class:`benchbed.progress.Display`.

Devices: with ``--jobs N`` and a suite device of ``cuda`` or ``auto`` where CUDA is available, pool
worker ``i`` runs on ``cuda:i mod <visible devices>`` (:func:`worker_devices`); Ray tasks ask Ray for
one GPU each (``num_gpus=1``) when the device is ``cuda`` or ``cuda:N``, and run on the GPU Ray gives
them.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbed import progress
from benchbed.errors import BenchbedError
from benchbed.grid import Cell, Plan, plan_run
from benchbed.plugins import load_plugins
from benchbed.progress import Display, EventStream, ProgressEvent
from benchbed.registry import Registry
from benchbed.runner import CellOutcome, CellRunner, RunOptions, wait_for_claims
from benchbed.store import FINISHED, Store
from benchbed.suite import Suite, SuiteSource, load_suite

EXECUTORS = ("serial", "pool", "ray")


@dataclass
class RunSummary:
    """Counts of outcomes and the notes of the plan."""

    outcomes: list[CellOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.status for o in self.outcomes)


# -- worker side (process pool and Ray) -------------------------------------------------------------

_WORKER: CellRunner | None = None

#: Seconds between the checks of a pool worker's parent (the portable fallback of PR_SET_PDEATHSIG).
PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """End this worker process when ``parent`` (the process that started it) dies, even by SIGKILL.

    On Linux the kernel sends SIGKILL when the parent goes (``PR_SET_PDEATHSIG``; strictly, when the
    parent's thread that spawned us exits, which for the pool is the parent's main thread).  Everywhere,
    a daemon thread also polls ``os.getppid()``: an orphan is re-parented (to init or a subreaper), so
    a changed parent pid means the parent is gone and the worker exits at once (``os._exit``).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the thread below still watches
            pass
    if os.getppid() != parent:  # the parent died before we got here (while this worker imported)
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="benchbed-parent-watch", daemon=True).start()


def worker_devices(device: str, jobs: int) -> list[str | None]:
    """The device each of ``jobs`` pool workers runs on: ``cuda:i mod k`` round-robin over the ``k``
    visible CUDA devices when ``device`` is ``cuda`` or ``auto`` and CUDA is available; else ``None``
    for every worker (each keeps ``device``: CPU, MPS, or an explicit ``cuda:N``)."""
    if device not in ("cuda", "auto") or not torch.cuda.is_available():
        return [None] * jobs
    count = torch.cuda.device_count()
    if count < 1:
        return [None] * jobs
    return [f"cuda:{i % count}" for i in range(jobs)]


def _source() -> str:
    """This process in progress events: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _init_worker(suite_path: str | SuiteSource, store_path: str, options: RunOptions, threads: int,
                 parent: int | None = None, events: Any = None, devices: tuple[str | None, ...] = (),
                 counter: Any = None) -> None:
    """Set a worker process up: parent watch, threads, progress events to ``events`` (a queue, with its
    stdout and stderr turned into events), and device ``devices[i mod len]`` for the ``i``-th worker
    started (``counter``: a shared integer), then its :class:`CellRunner`."""
    global _WORKER
    if parent is not None:
        _die_with_parent(parent)
    if events is not None:
        progress.install_sink(events.put_nowait, _source())
        sys.stdout = EventStream("output")
        sys.stderr = EventStream("output")
    if devices and counter is not None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if devices[index % len(devices)] is not None:
            options = dataclasses.replace(options, device=devices[index % len(devices)])
    torch.set_num_threads(threads)
    registry = load_plugins().registry
    _WORKER = CellRunner(load_suite(suite_path, registry), registry, Store(store_path), options)


def _run_in_worker(cell: Cell) -> CellOutcome:
    assert _WORKER is not None, "worker not initialised"
    with progress.cell(cell.title):
        return _WORKER.run(cell)


def _ray_run(suite_path: str | SuiteSource, store_path: str, options: RunOptions, threads: int, cell: Cell,
             events: Any = None) -> CellOutcome:
    if _WORKER is None:
        _init_worker(suite_path, store_path, options, threads)
    if events is not None:
        progress.install_sink(events.put_nowait, _source())
    return _run_in_worker(cell)


# -- parent side ------------------------------------------------------------------------------------


#: Seconds the parent waits on the event queue before it redraws the display anyway.
DRAIN_POLL_S = 0.5


class _Drain:
    """A parent thread that hands the events of a queue to the display until stopped (a context manager).

    ``get(timeout)`` returns the next event or raises :class:`queue.Empty`.  On exit the events still
    queued are rendered before the thread ends."""

    def __init__(self, get: Callable[[float], ProgressEvent], display: Display) -> None:
        self.get, self.display = get, display
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="benchbed-progress", daemon=True)

    def _loop(self) -> None:
        drawn = time.monotonic()
        while True:
            if time.monotonic() - drawn >= DRAIN_POLL_S:  # elapsed times move even while events stream in
                self.display.refresh()
                drawn = time.monotonic()
            try:
                self.display.handle(self.get(0.05 if self._stop.is_set() else DRAIN_POLL_S))
            except queue.Empty:
                if self._stop.is_set():
                    return
            except (EOFError, OSError, ValueError):  # the queue went away (interrupt): nothing left to show
                return
            except Exception:  # noqa: BLE001 - a malformed event must not stop the display
                continue

    def __enter__(self) -> _Drain:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)


def _serial(runner: CellRunner, cells: list[Cell]) -> Iterable[CellOutcome]:
    for cell in cells:
        with progress.cell(cell.title):
            outcome = runner.run(cell)
        yield outcome


def _pool(suite: Suite, store: Store, options: RunOptions, cells: list[Cell], jobs: int,
          display: Display) -> Iterable[CellOutcome]:
    if suite.path is None:
        raise BenchbedError("--jobs needs a suite file on disk")
    threads = options.engine.threads or max(1, (os.cpu_count() or 1) // jobs)
    ctx = mp.get_context("spawn")  # fork + torch threads is unsafe; spawn is the portable choice
    worker_opts = dataclasses.replace(options, bars=False)
    events: Any = ctx.Queue()
    devices = tuple(worker_devices(options.device or suite.device, jobs))
    initargs = (suite.source, str(store.path), worker_opts, threads, os.getpid(), events,
                devices if any(devices) else (), ctx.Value("i", 0))
    with _Drain(lambda timeout: events.get(True, timeout), display), \
            cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=initargs) as pool:
        futures = [pool.submit(_run_in_worker, c) for c in cells]
        try:
            for fut in cf.as_completed(futures):
                yield fut.result()
        except KeyboardInterrupt:
            _stop_pool(pool)
            raise


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Stop at once on an interrupt: cancel what has not started and end the workers.

    Leaving the ``with`` block would otherwise wait for every running cell, and for the ones already
    handed to the workers' call queue, to finish (minutes).  A killed worker loses nothing finished: its
    cell's claim is stale at once on this host (its pid is dead) and the next run resumes the cell from
    its last checkpoint, exactly as after a SIGKILL.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # CPython's pool: no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5.0)


def ray_gpus(device: str) -> int:
    """The GPUs one Ray task asks for (besides one CPU): one when ``device`` is ``cuda`` or ``cuda:N``."""
    return 1 if device == "cuda" or device.startswith("cuda:") else 0


def _ray(suite: Suite, store: Store, options: RunOptions, cells: list[Cell], jobs: int,
         display: Display) -> Iterable[CellOutcome]:
    try:
        import ray
        from ray.util.queue import Queue as RayQueue
    except ImportError as exc:
        raise BenchbedError("--executor ray needs Ray: pip install 'benchbed[ray]'") from exc
    if suite.path is None:
        raise BenchbedError("--executor ray needs a suite file on disk")
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
    gpus = ray_gpus(options.device or suite.device)
    # Ray makes the GPU it gives a task that task's only visible one: "cuda" is that GPU.
    worker_opts = dataclasses.replace(options, bars=False, device="cuda" if gpus else options.device)
    remote = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_run)
    threads = options.engine.threads or 1
    events = RayQueue()
    try:
        with _Drain(lambda timeout: events.get(True, timeout), display):
            pending = [remote.remote(suite.source, str(store.path.resolve()), worker_opts, threads, c, events)
                       for c in cells]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
    finally:
        events.shutdown()


def run_suite(
    suite: Suite,
    registry: Registry,
    store: Store,
    *,
    jobs: int = 1,
    executor: str = "auto",
    options: RunOptions | None = None,
    planned: Plan | None = None,
) -> RunSummary:
    """Run every cell of ``planned`` (default: :func:`benchbed.grid.plan_run` of ``suite``) not finished in
    ``store``, held-out trainings before the cells that need them, then wait for cells other live
    processes hold, so the store is complete when this returns."""
    options = options or RunOptions()
    if executor == "auto":
        executor = "pool" if jobs > 1 else "serial"
    if executor not in EXECUTORS:
        raise BenchbedError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    runner = CellRunner(suite, registry, store, options)
    if planned is None:
        planned = plan_run(suite, registry, lambda entry: runner.data(entry, suite.seeds[0]).info)
    # Held-out trainings only for suite cells that still need work (a fresh clone imports finished
    # suite cells, never their held-out trainings, and has nothing to do).
    cells: list[Cell] = []
    for cell in planned.cells:
        held_out = planned.variants.get(cell.run_id, ())
        if held_out and runner.needs_work(cell):
            cells.extend(held_out)
        cells.append(cell)
    notes = list(planned.notes)
    summary = RunSummary(notes=notes)
    with Display(len(cells), f"suite {suite.name}", bars=options.bars) as bar, progress.routed(bar.handle):
        for note in notes:
            bar.log(note)
        refs = runner.references()
        if refs:
            bar.log(f"stored {refs} reference row(s)")
        if executor == "serial":
            outcomes = _serial(runner, cells)
        elif executor == "pool":
            outcomes = _pool(suite, store, options, cells, jobs, bar)
        else:
            outcomes = _ray(suite, store, options, cells, jobs, bar)
        for outcome in outcomes:
            summary.outcomes.append(outcome)
            bar.update(1)
            extra = f": {outcome.message}" if outcome.message else ""
            bar.log(f"{outcome.status:9s} {outcome.title} ({outcome.seconds:.1f} s; {bar.n}/{len(cells)}){extra}")
        held = [o.run_id for o in summary.outcomes if o.status == "held"]
        wait_for_claims(store, held, stale_after=options.steal_stale,
                        on_wait=lambda n: bar.log(f"waiting for {n} cell(s) running in other processes"))
        # A holder that died while we waited left its cell unfinished: run it here.
        for cell in (c for c in cells if c.run_id in held and store.status(c.run_id) not in FINISHED):
            with progress.cell(cell.title):
                outcome = runner.run(cell)
            summary.outcomes.append(outcome)
            bar.log(f"{outcome.status:9s} {outcome.title} ({outcome.seconds:.1f} s) after its holder died")
    return summary


def default_store_path(suite: Suite) -> Path:
    """``<suite folder>/results.sqlite`` (or ``./results.sqlite`` for a suite without a file)."""
    return (suite.folder or Path.cwd()) / "results.sqlite"
