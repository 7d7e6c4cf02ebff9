"""Registers the built-in trackers (the same entry-point path a third-party plugin uses).

A W&B tracker would be a plugin of its own doing the same: ``register(TrackerSpec(name="wandb",
factory=...))`` with a factory whose product follows :class:`benchbed.tracking.Tracker`.
"""

from __future__ import annotations

from collections.abc import Callable

from benchbed import hookimpl
from benchbed.specs import TrackerSpec


@hookimpl
def benchbed_register_trackers(register: Callable[[TrackerSpec], None]) -> None:
    """``tensorboard`` and ``mlflow``."""
    from benchbed_trackers.mlflow_tracker import MlflowTracker
    from benchbed_trackers.tensorboard import TensorBoardTracker

    register(TrackerSpec(
        name="tensorboard", factory=TensorBoardTracker, tags=("tracking",),
        description="TensorBoard event files: <tracking folder>/tensorboard/<suite>/<cell>-<run id>",
    ))
    register(TrackerSpec(
        name="mlflow", factory=MlflowTracker, tags=("tracking",),
        description="MLflow: one run per cell in experiment <suite> (default store: <tracking folder>/mlruns)",
    ))
