"""Checkpoints of cells: the model's state, its training history and the global RNG states.

A checkpoint is written atomically (a temporary file renamed over the old one), so a process killed
while writing leaves the previous checkpoint intact.  It holds the Python, NumPy, torch CPU and CUDA
RNG states, so a cell resumed from it draws the same random numbers as an uninterrupted run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

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

    def save(self, run_id: str, model: Any, step: int, history: History) -> None:
        """Write the state after ``step`` (0-based) with the current global RNG states."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(run_id)
        tmp = path.with_suffix(".tmp")
        torch.save({"step": step, "model": model.checkpoint(), "history": history.__dict__,
                    "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                            "python": random.getstate(),
                            # models on a GPU draw noise from the CUDA generators
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}, tmp)
        tmp.replace(path)

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The checkpoint of ``run_id``, or ``None`` when there is none or it cannot be read (a corrupt
        file means training starts over)."""
        path = self.path(run_id)
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
