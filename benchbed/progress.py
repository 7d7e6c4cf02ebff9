"""Progress reporting: tqdm bars on a terminal, plain log lines otherwise (CI, pools, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm


def interactive(stream: TextIO | None = None) -> bool:
    """Whether to draw bars: a TTY on stderr."""
    s = stream or sys.stderr
    return bool(getattr(s, "isatty", lambda: False)())


class Progress:
    """One task's progress (the grid, a cell's training, a metric).

    On a TTY it is a tqdm bar; otherwise it logs a line at the start, about every 25%, and at the end.
    """

    def __init__(self, total: int, desc: str, *, bars: bool | None = None, leave: bool = True,
                 position: int = 0, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream or sys.stderr
        self.bars = interactive(self.stream) if bars is None else bars
        self.n = 0
        self.t0 = time.perf_counter()
        self._next_log = 0
        self._bar = tqdm(total=self.total, desc=desc, leave=leave, position=position, file=self.stream,
                         dynamic_ncols=True) if self.bars else None

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
        elif self.n >= self._next_log:
            extra = " ".join(f"{k}={_fmt(v)}" for k, v in postfix.items())
            self.log(f"{self.n}/{self.total} {extra}".rstrip())
            self._next_log = self.n + max(1, self.total // 4)

    def log(self, message: str) -> None:
        line = f"[benchbed] {self.desc}: {message}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def iterate(items: Iterable[Any], total: int, desc: str, bars: bool | None = None) -> Iterable[Any]:
    """Iterate with a :class:`Progress` around it."""
    with Progress(total, desc, bars=bars) as p:
        for item in items:
            yield item
            p.update()
