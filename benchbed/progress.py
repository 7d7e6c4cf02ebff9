"""Progress reporting: one display per run, owned by the process that started it.

Two halves:

* :class:`Progress` is what computing code uses (the runner's training loop, the metric loop of
  :func:`benchbed.evaluation.evaluate_metrics` through :func:`iterate`).  With no sink installed it
  draws a tqdm bar on a terminal, or writes plain timestamped lines; once :func:`install_sink` has
  installed a sink (every executor does, in every process that runs cells) it draws nothing and sends
  :class:`ProgressEvent` records to the sink instead.
* :class:`Display` is the terminal of ``benchbed run``: the grid bar and one line per busy worker, its
  cell and its innermost task (training steps, the metric running), on a terminal; plain, flushed,
  timestamped lines otherwise (a pipe, CI, ``--no-bars``).  Pool and Ray workers send their events to
  the parent through a queue (:mod:`benchbed.execute`); the serial executor hands them to
  :meth:`Display.handle` directly.  Only the parent writes to the terminal.

The event protocol (:class:`ProgressEvent`, all fields picklable), per ``source`` (one worker):
``cell`` (a cell begins; ``desc`` its title) ... ``cell_end``; inside it any number of tasks, possibly
nested, each ``start`` (``desc``, ``total``), ``update`` (``n``, ``text`` = formatted postfix),
``stage`` (``text`` = what begins now, ``n`` items done so far), ``log`` (``text`` a message) and
``end`` (final ``n``).  Updates are throttled in the sender to one per :data:`UPDATE_EVERY_S`
seconds per task (the last one always goes).  Every plain line reads
``2024-05-01 12:00:00 [benchbed] <who> <what>: <message>`` (:func:`log_line`).
"""

from __future__ import annotations

import io
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm.auto import tqdm

#: ``time.strftime`` format of the time stamp that starts every log line.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Seconds between two ``update`` events of one task sent by a worker (the last update always goes).
UPDATE_EVERY_S = 0.25

EVENT_KINDS = ("cell", "cell_end", "start", "update", "stage", "log", "end")
#: Plain mode: seconds without a line about a busy worker's task after which the display says it is
#: still running (a 10 000-sample Parzen estimate or a long training quarter sends nothing for minutes).
QUIET_AFTER_S = 600.0


def interactive(stream: TextIO | None = None) -> bool:
    """Whether to draw bars: a TTY on ``stream`` (default stderr)."""
    s = stream or sys.stderr
    return bool(getattr(s, "isatty", lambda: False)())


def log_line(message: str, when: float | None = None) -> str:
    """``"<local time> [benchbed] <message>"``: the form of every log line (``when``: epoch seconds, now
    by default)."""
    return f"{time.strftime(TIME_FORMAT, time.localtime(when))} [benchbed] {message}"


@dataclass(frozen=True)
class ProgressEvent:
    """One progress record a worker sends to the display (see the module's protocol).

    ``source`` names the worker (unique per process: host and pid; empty in the parent itself),
    ``task`` numbers the task within its source, ``time`` is when it happened (epoch seconds).
    """

    kind: str
    source: str = ""
    task: int = 0
    desc: str = ""
    n: int = 0
    total: int = 0
    text: str = ""
    time: float = field(default_factory=time.time)


EventSink = Callable[[ProgressEvent], None]

_sink: EventSink | None = None
_source = ""
_task_ids = itertools.count(1)


def install_sink(sink: EventSink | None, source: str = "") -> tuple[EventSink | None, str]:
    """Route every :class:`Progress` of this process to ``sink`` as events (``None``: draw and print
    again); ``source`` names this process in the events.  Returns the sink and source it replaces.

    An exception the sink raises is swallowed (progress never fails a cell)."""
    global _sink, _source
    previous = _sink, _source
    _sink, _source = sink, source
    return previous


@contextmanager
def routed(sink: EventSink | None, source: str = "") -> Iterator[None]:
    """:func:`install_sink` for the duration of the block, then the previous sink again."""
    previous = install_sink(sink, source)
    try:
        yield
    finally:
        install_sink(*previous)


def emit(kind: str, **fields: Any) -> None:
    """Send one event to the installed sink (nothing without one)."""
    sink = _sink
    if sink is None:
        return
    try:
        sink(ProgressEvent(kind, _source, **fields))
    except Exception:  # noqa: BLE001 - a full or closed queue loses a progress line, never a cell
        pass


@contextmanager
def cell(title: str) -> Iterator[None]:
    """Tell the display that this process works on cell ``title`` while the block runs."""
    emit("cell", desc=title)
    try:
        yield
    finally:
        emit("cell_end", desc=title)


class Progress:
    """One task's progress (a cell's training, a cell's metrics, the grid in a standalone use).

    With a sink installed (:func:`install_sink`) it sends events; otherwise, on a TTY (or ``bars=True``),
    it is a tqdm bar, and else it logs a timestamped line at the first update, about every 25%, at each
    :meth:`stage` and at the end.
    """

    def __init__(self, total: int, desc: str, *, bars: bool | None = None, leave: bool = True,
                 position: int = 0, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._n = 0
        self._next_log = 0
        self._last_sent = 0.0
        self._staged = False  # it announces its items: the stage lines replace the count lines
        self._events = _sink is not None
        self.bars = False if self._events else (interactive(self.stream) if bars is None else bars)
        self._bar = tqdm(total=self.total, desc=desc, leave=leave, position=position, file=self.stream,
                         dynamic_ncols=True) if self.bars else None
        self._task = next(_task_ids)
        if self._events:
            emit("start", task=self._task, desc=desc, total=self.total)

    @property
    def n(self) -> int:
        """Items done (settable: a resumed training starts at its checkpoint's step)."""
        return self._n

    @n.setter
    def n(self, value: int) -> None:
        self._n = int(value)
        if self._bar is not None:
            self._bar.n = self._n
            self._bar.refresh()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """``n`` more items done; ``postfix`` (losses) is shown beside the count."""
        self._n += n
        extra = " ".join(f"{k}={_fmt(v)}" for k, v in postfix.items())
        if self._events:
            now = time.perf_counter()
            if now - self._last_sent >= UPDATE_EVERY_S or self._n >= self.total:
                self._last_sent = now
                emit("update", task=self._task, desc=self.desc, n=self._n, total=self.total, text=extra)
        elif self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
        elif not self._staged and self._n >= self._next_log:
            self.log(f"{self._n}/{self.total} {extra}".rstrip())
            self._next_log = self._n + max(1, self.total // 4)

    def stage(self, text: str) -> None:
        """Say what begins now (the metric about to run): item ``n + 1`` of ``total``."""
        self._staged = True
        if self._events:
            emit("stage", task=self._task, desc=self.desc, n=self._n, total=self.total, text=text)
        elif self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
        else:
            self.log(f"{text} ({self._n + 1}/{self.total})")

    def log(self, message: str) -> None:
        """One timestamped line about this task."""
        if self._events:
            emit("log", task=self._task, desc=self.desc, text=message)
            return
        line = log_line(f"{self.desc}: {message}")
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """End the task (an ``end`` event, or the bar closed)."""
        if self._events:
            emit("end", task=self._task, desc=self.desc, n=self._n, total=self.total)
        elif self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def iterate(items: Iterable[Any], total: int, desc: str, bars: bool | None = None,
            stage: Callable[[Any], str] | None = None) -> Iterator[Any]:
    """Iterate with a :class:`Progress` around it; ``stage(item)``, when given, is announced before each
    item is handed out (:meth:`Progress.stage`), and the item counts as done when the next is asked for."""
    if total <= 0:  # nothing to show
        yield from items
        return
    with Progress(total, desc, bars=bars) as p:
        for item in items:
            if stage is not None:
                p.stage(stage(item))
            yield item
            p.update()


# -- the parent's display ---------------------------------------------------------------------------------


@dataclass
class _Task:
    desc: str
    total: int
    n: int = 0
    text: str = ""
    next_log: int = 0
    started: float = 0.0
    staged: bool = False  # it announces its items (metrics): its stage lines replace the count lines
    last_line: float = 0.0  # epoch seconds of the last plain line about it (or of its start)


@dataclass
class _Worker:
    label: str  # "" for the parent's own work, else "w1", "w2", ...
    position: int  # its bar's line below the grid bar
    cell: str = ""
    tasks: dict[int, _Task] = field(default_factory=dict)
    bar: Any = None
    shown: int = -1  # the task id the bar shows


class Display:
    """The terminal of one ``benchbed run``: the grid and the workers' events (thread-safe).

    ``bars`` (default: a TTY on ``stream``) draws a tqdm grid bar and one bar per worker below it,
    showing its cell and innermost task; without bars every event worth a line is printed as one
    flushed :func:`log_line` (a task's first update, about every 25%, its stages, logs and end).
    """

    def __init__(self, total: int, desc: str, *, bars: bool | None = None, stream: TextIO | None = None,
                 quiet_after: float = QUIET_AFTER_S) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream or sys.stderr
        self.bars = interactive(self.stream) if bars is None else bars
        self.n = 0
        self.quiet_after = quiet_after
        self._lock = threading.RLock()
        self._workers: dict[str, _Worker] = {}
        self._grid = tqdm(total=self.total, desc=desc, position=0, leave=True, file=self.stream,
                          dynamic_ncols=True) if self.bars else None
        # Plain mode: a thread of its own says when a busy task has been quiet for quiet_after seconds.
        # Not the event loop: with the serial executor a long metric blocks the thread that handles events.
        self._closed = threading.Event()
        if not self.bars and quiet_after > 0:
            threading.Thread(target=self._watch_quiet, name="benchbed-quiet", daemon=True).start()

    # -- the grid -------------------------------------------------------------------------------

    def update(self, n: int = 1) -> None:
        """``n`` more cells done (the bar moves; plain mode prints nothing: outcomes are logged)."""
        with self._lock:
            self.n += n
            if self._grid is not None:
                self._grid.update(n)

    def log(self, message: str, when: float | None = None) -> None:
        """A grid-level line: ``<time> [benchbed] <desc>: <message>``."""
        self._write(log_line(f"{self.desc}: {message}", when))

    def _write(self, line: str) -> None:
        with self._lock:
            if self._grid is not None:
                self._grid.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    # -- events -----------------------------------------------------------------------------------

    def handle(self, event: ProgressEvent) -> None:
        """Render one worker event (from any thread)."""
        with self._lock:
            worker = self._worker(event.source)
            kind = event.kind
            if kind == "cell":
                worker.cell, worker.tasks = event.desc, {}
                if not self.bars:
                    self._write(log_line(f"{self._who(worker)}started {event.desc}", event.time))
            elif kind == "cell_end":
                worker.cell, worker.tasks = "", {}
            elif kind == "start":
                worker.tasks[event.task] = _Task(event.desc, max(event.total, 1), started=event.time,
                                                 last_line=event.time)
            elif kind == "log" and event.task not in worker.tasks:  # a worker's own line (its stderr)
                what = f"{worker.cell} · {event.desc}" if worker.cell else event.desc
                self._write(log_line(f"{self._who(worker)}{what}: {event.text}", event.time))
            elif kind in ("update", "stage", "end", "log"):
                task = worker.tasks.get(event.task)
                if task is None:  # a task that began before its cell event, or a lost start
                    task = worker.tasks.setdefault(event.task, _Task(event.desc, max(event.total, 1),
                                                                     started=event.time, last_line=event.time))
                self._task_event(worker, task, event)
                if kind == "end":
                    worker.tasks.pop(event.task, None)
            if self.bars:
                self._draw(worker)

    def _task_event(self, worker: _Worker, task: _Task, event: ProgressEvent) -> None:
        task.n = event.n if event.kind != "log" else task.n
        what = self._what(worker, task)
        if event.kind == "update":
            task.text = event.text
            if not self.bars and not task.staged and task.n >= task.next_log:
                self._write(log_line(f"{what}: {task.n}/{task.total} {event.text}".rstrip(), event.time))
                task.next_log = task.n + max(1, task.total // 4)
                task.last_line = event.time
        elif event.kind == "stage":
            task.text, task.staged = event.text, True
            if not self.bars:
                self._write(log_line(f"{what}: {event.text} ({event.n + 1}/{task.total})", event.time))
                task.last_line = event.time
        elif event.kind == "log":
            self._write(log_line(f"{what}: {event.text}", event.time))
        elif not self.bars:  # end
            self._write(log_line(f"{what}: {task.n}/{task.total} done in {event.time - task.started:.1f} s",
                                 event.time))

    def _worker(self, source: str) -> _Worker:
        if source not in self._workers:
            label = "" if not source else f"w{sum(1 for s in self._workers if s) + 1}"
            self._workers[source] = _Worker(label, position=1 + len(self._workers))
        return self._workers[source]

    @staticmethod
    def _who(worker: _Worker) -> str:
        return f"{worker.label} " if worker.label else ""

    def _what(self, worker: _Worker, task: _Task) -> str:
        """``w1 <cell> · metrics``: who, and the task in the words of its cell."""
        desc = task.desc
        if worker.cell and not desc.startswith(worker.cell):
            desc = f"{worker.cell} · {desc}"
        return f"{self._who(worker)}{desc}"

    def _draw(self, worker: _Worker) -> None:
        if worker.bar is None:
            worker.bar = tqdm(total=1, position=worker.position, leave=False, file=self.stream, dynamic_ncols=True)
        bar = worker.bar
        current = next(reversed(worker.tasks), None)
        if current is None:
            if worker.shown != 0:
                bar.reset(total=1)
                bar.set_description_str(f"{self._who(worker)}{worker.cell} · working" if worker.cell else
                                        f"{self._who(worker)}idle", refresh=False)
                bar.set_postfix_str("", refresh=False)
                worker.shown = 0
            bar.refresh()
            return
        task = worker.tasks[current]
        if worker.shown != current:
            bar.reset(total=task.total)
            worker.shown = current
        what = task.desc
        if worker.cell and task.desc == worker.cell:
            what = "train"
        elif worker.cell and task.desc.startswith(worker.cell):
            what = task.desc[len(worker.cell):].lstrip(" ·")
        bar.set_description_str(f"{self._who(worker)}{worker.cell} · {what}" if worker.cell else
                                f"{self._who(worker)}{what}", refresh=False)
        bar.n = task.n
        bar.set_postfix_str(task.text, refresh=False)
        bar.refresh()

    def refresh(self) -> None:
        """Redraw (so the elapsed times move while a long metric sends nothing)."""
        with self._lock:
            for worker in self._workers.values():
                if worker.bar is not None:
                    worker.bar.refresh()
            if self._grid is not None:
                self._grid.refresh()

    def quiet_lines(self, now: float | None = None) -> None:
        """Plain mode: for each busy worker whose innermost task has had no line for ``quiet_after``
        seconds, one line saying what it is still doing (``... still running, 12 min since the last line``)."""
        now = time.time() if now is None else now
        with self._lock:
            for worker in self._workers.values():
                task = worker.tasks[next(reversed(worker.tasks))] if worker.tasks else None  # the innermost
                if task is None or now - task.last_line < self.quiet_after:
                    continue
                at = f"{task.text} ({task.n + 1}/{task.total})" if task.staged else f"{task.n}/{task.total}"
                self._write(log_line(f"{self._what(worker, task)}: {at} still running, "
                                     f"{(now - task.last_line) / 60:.0f} min since the last line", now))
                task.last_line = now

    def _watch_quiet(self) -> None:
        while not self._closed.wait(min(30.0, self.quiet_after / 4)):
            self.quiet_lines()

    def close(self) -> None:
        """Remove the worker lines and leave the grid bar."""
        self._closed.set()
        with self._lock:
            for worker in self._workers.values():
                if worker.bar is not None:
                    worker.bar.close()
                    worker.bar = None
            if self._grid is not None:
                self._grid.close()

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventStream(io.TextIOBase):
    """A text stream whose complete lines become ``log`` events (a worker's stdout and stderr, so that
    a plugin's print or a warning reaches the parent's display instead of the middle of a bar)."""

    def __init__(self, desc: str) -> None:
        super().__init__()
        self.desc = desc
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                emit("log", desc=self.desc, text=line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._buffer.strip():
            emit("log", desc=self.desc, text=self._buffer.rstrip())
        self._buffer = ""
