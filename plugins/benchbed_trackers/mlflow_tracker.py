"""The ``mlflow`` tracker: one MLflow run per cell, in an experiment named after the suite.

It talks to MLflow through an ``MlflowClient`` of its own (no global active run), so pool and Ray
workers can track cells side by side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbed.tracking import TrackedRun, missing_library

#: MLflow's limit on the length of a parameter value.
MAX_PARAM = 500


class MlflowTracker:
    """Logs params, metrics (with their steps), the sample grid (artifact ``samples.png``) and the status.

    Args:
        uri: MLflow tracking URI (``file:///...``, ``http://...``, ``sqlite:///...``); empty: the
            file store ``<tracking folder>/mlruns`` (MLflow 3 only writes file stores with
            ``MLFLOW_ALLOW_FILE_STORE=true``, which the tracker then sets unless it is set already).
        experiment: experiment name; empty: the suite's name.
    """

    def __init__(self, *, uri: str = "", experiment: str = "") -> None:
        self.uri = uri
        self.experiment = experiment
        self._client: Any = None
        self._run: str = ""

    def start(self, run: TrackedRun) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise missing_library("mlflow", "mlflow", "mlflow")(exc) from exc
        uri = self.uri
        if not uri:  # MLflow 3 keeps the file store behind a switch; it is the default here (no server, no DB)
            uri = (run.folder / "mlruns").as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._client = MlflowClient(tracking_uri=uri)
        experiment = self._experiment(self.experiment or run.suite)
        tags = {"benchbed.run_id": run.run_id, "benchbed.suite": run.suite}
        self._run = self._client.create_run(experiment, run_name=run.title, tags=tags).info.run_id
        for key, value in run.params.items():
            self._client.log_param(self._run, key, str(value)[:MAX_PARAM])

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``, created when missing (another worker may create it meanwhile)."""
        for _ in range(5):
            found = self._client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            try:
                return str(self._client.create_experiment(name))
            except Exception:  # noqa: BLE001 - created by another process between the two calls: look again
                time.sleep(0.2)
        raise RuntimeError(f"cannot create or find MLflow experiment {name!r}")

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key=k, value=float(v), timestamp=now, step=step) for k, v in values.items()]
        self._client.log_batch(self._run, metrics=metrics)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self._client.log_image(self._run, image, artifact_file=f"{tag}.png")

    def end(self, status: str) -> None:
        if self._run:
            self._client.set_tag(self._run, "benchbed.status", status)
            self._client.set_terminated(self._run, "FINISHED" if status == "ok" else "FAILED")
            self._run = ""
