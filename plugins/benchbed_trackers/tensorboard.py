"""The ``tensorboard`` tracker: one event-file folder per cell, written by torch's ``SummaryWriter``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.tracking import TrackedRun, missing_library


class TensorBoardTracker:
    """Writes ``<folder>/<suite>/<cell title>-<run id>/events.out.tfevents.*``.

    Scalars keep their tags (``train/loss``, ``metrics/recon_mse``); the cell's parameters go in as a
    text summary ``params`` (a markdown table), the sample grid as image ``samples``.

    Args:
        folder: the event-file root; empty: ``<tracking folder>/tensorboard``; relative: under the
            tracking folder.
    """

    def __init__(self, *, folder: str = "") -> None:
        self.folder = folder
        self._writer: Any = None

    def start(self, run: TrackedRun) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise missing_library("tensorboard", "tensorboard", "tensorboard")(exc) from exc
        root = Path(self.folder) if self.folder else Path("tensorboard")
        root = root if root.is_absolute() else run.folder / root
        self._writer = SummaryWriter(log_dir=str(root / run.suite / run.slug))
        rows = "\n".join(f"| {k} | {v} |" for k, v in run.params.items())
        self._writer.add_text("params", f"| parameter | value |\n|---|---|\n{rows}\n\nrun id `{run.run_id}`", 0)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self._writer.add_image(tag, image, step, dataformats="HWC")

    def end(self, status: str) -> None:
        if self._writer is not None:
            self._writer.add_text("status", status, 0)
            self._writer.close()
            self._writer = None
