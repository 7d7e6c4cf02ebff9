"""Checkpoints of cells: the model's state, its training history and the global RNG states.

A checkpoint is written atomically (a temporary file renamed over the old one), so a process killed
while writing leaves the previous checkpoint intact.  It holds the Python, NumPy, torch CPU and CUDA
RNG states, so a cell resumed from it draws the same random numbers as an uninterrupted run, and the
training seconds spent so far, so a resumed cell's training time is the whole run's.

A *snapshot* is the model after a given number of steps, kept beside the checkpoint for the suite's
``eval_at`` steps (``docs/results.md#metrics-over-training``): the model state and the cumulative
training seconds at that step, no RNG states (it is evaluated, never resumed).  Writing one reads no
random number, so a run's training is the same with and without snapshots.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbed.contracts import Model
from benchbed.training import History


class Checkpoints:
    """The checkpoints of one store: ``<folder>/<run id>.pt``.

    Args:
        folder: where the files go (per store, so that a second store in the same folder never finds,
            and skips training on, this one's checkpoints).
        device: where :meth:`load` maps tensors.
    """

    def __init__(self, folder: Path, device: torch.device) -> None:
        self.folder = folder
        self.device = device

    def path(self, run_id: str) -> Path:
        """The file of ``run_id``'s checkpoint (it may not exist)."""
        return self.folder / f"{run_id}.pt"

    def snapshot_path(self, run_id: str, steps: int) -> Path:
        """The file of ``run_id``'s snapshot after ``steps`` training steps (it may not exist)."""
        return self.folder / f"{run_id}.step{steps}.pt"

    def _write(self, path: Path, state: dict[str, Any]) -> None:
        """Write ``state`` to ``path`` atomically (a temporary file renamed over it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def save(self, run_id: str, model: Model, step: int, history: History, train_time: float = 0.0) -> None:
        """Write the state after ``step`` (0-based) with the current global RNG states and the training
        seconds spent up to it (``train_time``)."""
        self._write(self.path(run_id), {
            "step": step, "model": model.checkpoint(), "history": history.__dict__, "train_time": float(train_time),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    # models on a GPU draw noise from the CUDA generators
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}})

    def save_snapshot(self, run_id: str, model: Model, steps: int, train_time: float) -> None:
        """Write the model after ``steps`` training steps (1-based: the state once ``steps`` steps ran) and
        the cumulative training seconds up to then.  Draws no random number."""
        self._write(self.snapshot_path(run_id, steps),
                    {"steps": int(steps), "model": model.checkpoint(), "train_time": float(train_time)})

    def load_snapshot(self, run_id: str, steps: int) -> dict[str, Any] | None:
        """The snapshot of ``run_id`` after ``steps`` steps (keys ``steps``, ``model``, ``train_time``), or
        ``None`` when there is none or it cannot be read."""
        return self._read(self.snapshot_path(run_id, steps))

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The checkpoint of ``run_id``, or ``None`` when there is none or it cannot be read (a corrupt
        file means training starts over).  A checkpoint written before training seconds were kept has no
        ``train_time``."""
        return self._read(self.path(run_id))

    def _read(self, path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        try:
            state: dict[str, Any] = torch.load(path, map_location=self.device, weights_only=False)
        except Exception:  # noqa: BLE001 - unreadable: as if there were none
            return None
        return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global RNGs to the states a checkpoint saved (``state`` is a checkpoint's ``"rng"``)."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda"):
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
