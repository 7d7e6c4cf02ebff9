"""The progress display: plain timestamped lines off a terminal, and the worker event protocol."""

from __future__ import annotations

import io
import multiprocessing as mp
import re
import time

import pytest
import torch

from benchbed import execute, progress
from benchbed.progress import Display, EventStream, Progress, ProgressEvent, iterate

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[benchbed\] "


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def strip(line: str) -> str:
    assert re.match(STAMP, line), f"no time stamp: {line!r}"
    return re.sub("^" + STAMP, "", line)


def test_plain_progress_lines_are_timestamped_and_line_buffered() -> None:
    out = io.StringIO()  # not a TTY: plain lines
    with Progress(8, "vae · gmm8 · seed 0", stream=out) as bar:
        for _ in range(8):
            bar.update(1, loss=1.23456)
        bar.log("resuming")
    assert [strip(x) for x in lines(out)] == [
        "vae · gmm8 · seed 0: 1/8 loss=1.235", "vae · gmm8 · seed 0: 3/8 loss=1.235",
        "vae · gmm8 · seed 0: 5/8 loss=1.235", "vae · gmm8 · seed 0: 7/8 loss=1.235",
        "vae · gmm8 · seed 0: resuming"]


def test_iterate_announces_each_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(iterate(["recon_mse", "loglik"], 2, "metrics", stage=str)) == ["recon_mse", "loglik"]
    err = [strip(x) for x in capsys.readouterr().err.splitlines()]
    assert err[:2] == ["metrics: recon_mse (1/2)", "metrics: loglik (2/2)"]
    assert list(iterate([], 0, "metrics", stage=str)) == [] and capsys.readouterr().err == ""


def fake_worker(sink: progress.EventSink, source: str) -> None:
    """What a pool worker does for one cell: its events go to ``sink``, nothing to the terminal."""
    with progress.routed(sink, source):
        with progress.cell("vae · gmm8 · seed 0"):
            with Progress(4, "vae · gmm8 · seed 0") as bar:
                for _ in range(4):
                    bar.update(1, loss=0.5)
            for _ in iterate(["recon_mse", "loglik"], 2, "metrics", stage=str):
                pass
            print("a plugin's own line", file=EventStream("output"))


def test_worker_events_render_as_plain_lines() -> None:
    events: list[ProgressEvent] = []
    fake_worker(events.append, "host:123")
    assert progress.install_sink(None) == (None, "")  # routed restored the parent's state
    kinds = [e.kind for e in events]
    assert kinds[0] == "cell" and kinds[-1] == "cell_end" and kinds.count("start") == kinds.count("end") == 2
    assert {e.source for e in events} == {"host:123"}
    out = io.StringIO()
    display = Display(1, "suite t", bars=False, stream=out)
    for event in events:
        display.handle(event)
    display.update(1)
    display.log("ok        vae · gmm8 · seed 0 (1.0 s; 1/1)")
    got = [strip(x) for x in lines(out)]
    assert got[0] == "w1 started vae · gmm8 · seed 0"
    assert got[1] == "w1 vae · gmm8 · seed 0: 1/4 loss=0.5"  # the first update goes (later ones throttled)
    assert re.fullmatch(r"w1 vae · gmm8 · seed 0: 4/4 done in \d+\.\d s", got[-6])
    assert got[-5:] == ["w1 vae · gmm8 · seed 0 · metrics: recon_mse (1/2)",
                        "w1 vae · gmm8 · seed 0 · metrics: loglik (2/2)",
                        got[-3], "w1 vae · gmm8 · seed 0 · output: a plugin's own line",
                        "suite t: ok        vae · gmm8 · seed 0 (1.0 s; 1/1)"]
    assert re.fullmatch(r"w1 vae · gmm8 · seed 0 · metrics: 2/2 done in \d+\.\d s", got[-3])


def test_two_workers_get_their_own_labels_and_the_parent_none() -> None:
    out = io.StringIO()
    display = Display(2, "suite t", bars=False, stream=out)
    now = time.time()
    for source, title in (("a:1", "x"), ("b:2", "y"), ("", "z")):
        display.handle(ProgressEvent("cell", source, desc=title, time=now))
    assert [strip(x) for x in lines(out)] == ["w1 started x", "w2 started y", "started z"]


def test_bars_show_one_line_per_worker_with_its_cell_and_task() -> None:
    out = io.StringIO()
    display = Display(2, "suite t", bars=True, stream=out)
    events: list[ProgressEvent] = []
    fake_worker(events.append, "host:1")
    for event in events[:4]:  # cell, training start, first update, ...
        display.handle(event)
    screen = out.getvalue()
    assert "w1 vae · gmm8 · seed 0 · train" in screen and "loss=0.5" in screen
    for event in events[4:]:
        display.handle(event)
    assert "w1 vae · gmm8 · seed 0 · metrics" in out.getvalue() and "loglik" in out.getvalue()
    display.close()


def test_events_cross_a_process_queue() -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    q.put(ProgressEvent("stage", "h:1", task=3, desc="metrics", n=1, total=2, text="loglik"))
    event = q.get(timeout=30)
    assert event == ProgressEvent("stage", "h:1", task=3, desc="metrics", n=1, total=2, text="loglik", time=event.time)


@pytest.mark.parametrize(("device", "available", "count", "expected"), [
    ("cuda", True, 2, ["cuda:0", "cuda:1", "cuda:0"]),
    ("auto", True, 3, ["cuda:0", "cuda:1", "cuda:2"]),
    ("auto", False, 0, [None, None, None]),
    ("cuda:1", True, 2, [None, None, None]),  # an explicit device stays for every worker
    ("cpu", True, 2, [None, None, None]),
])
def test_pool_workers_get_cuda_devices_round_robin(monkeypatch: pytest.MonkeyPatch, device: str, available: bool,
                                                   count: int, expected: list[str | None]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert execute.worker_devices(device, 3) == expected


def test_ray_tasks_ask_for_a_gpu_only_on_cuda() -> None:
    assert [execute.ray_gpus(d) for d in ("cuda", "cuda:1", "auto", "cpu", "mps")] == [1, 1, 0, 0, 0]


def test_a_quiet_task_is_said_to_be_still_running() -> None:
    """Plain mode: a metric that sends nothing for ``quiet_after`` seconds (a long Parzen estimate) gets a
    line saying it is still running, once per quiet period, counted from the last line about it."""
    out = io.StringIO()
    display = Display(1, "suite t", bars=False, stream=out, quiet_after=600)
    t0 = time.time()
    display.handle(ProgressEvent("cell", "a:1", desc="vae · gmm8 · seed 0", time=t0))
    display.handle(ProgressEvent("start", "a:1", task=1, desc="metrics", total=9, time=t0))
    display.handle(ProgressEvent("stage", "a:1", task=1, desc="metrics", n=4, total=9, text="loglik", time=t0))
    shown = len(lines(out))
    display.quiet_lines(now=t0 + 599)
    assert len(lines(out)) == shown  # not quiet long enough
    display.quiet_lines(now=t0 + 720)
    assert strip(lines(out)[-1]) == ("w1 vae · gmm8 · seed 0 · metrics: loglik (5/9) still running, "
                                     "12 min since the last line")
    display.quiet_lines(now=t0 + 900)
    assert len(lines(out)) == shown + 1  # the next one is due 600 s after that line
    display.handle(ProgressEvent("end", "a:1", task=1, desc="metrics", n=9, total=9, time=t0 + 901))
    display.quiet_lines(now=t0 + 5000)
    assert "still running" not in lines(out)[-1]  # nothing is running any more
    display.close()


def test_the_quiet_watch_runs_on_its_own_thread() -> None:
    """The check needs no event: with the serial executor a long metric blocks the event handler."""
    out = io.StringIO()
    display = Display(1, "suite t", bars=False, stream=out, quiet_after=0.2)
    display.handle(ProgressEvent("cell", "a:1", desc="c", time=time.time()))
    display.handle(ProgressEvent("start", "a:1", task=1, desc="c", total=100, time=time.time()))
    deadline = time.time() + 10
    while "still running" not in out.getvalue() and time.time() < deadline:
        time.sleep(0.05)
    display.close()
    assert "w1 c: 0/100 still running" in out.getvalue()
