"""Experiment tracking: each trained cell's curves, metrics and sample grid sent to trackers.

A suite asks for trackers in its ``[tracking]`` table, the command line with ``--track NAME``
(both add up)::

    [tracking]
    backends = ["tensorboard", "mlflow"]
    folder = "tracking"                 # beside the suite file (default); file-based trackers write here
    [tracking.mlflow]                   # a backend's own parameters: its factory's keyword parameters
    uri = "file:///srv/mlruns"

A tracker is a component like any other: a plugin registers a :class:`benchbed.specs.TrackerSpec`
through ``benchbed_register_trackers`` (the built-in ``tensorboard`` and ``mlflow`` live in the
``benchbed_trackers`` plugin; W&B can be a third-party plugin).  Its factory, called with the
backend's parameters, returns one :class:`Tracker` per cell.

The runner calls :func:`track_cell` once per trained cell, when the cell is recorded in the store
(whatever its status): ``start`` with the cell's identity and parameters, ``log_scalars`` per curve
point (``train/<loss>`` at its step), then the metric values (``metrics/<label>`` at the last step),
``log_image`` with the sample grid (when the cell drew one), and ``end`` with the status.  A failing
tracker never fails a cell: its error is printed (once per tracker and process) and the others go on.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from benchbed.errors import SuiteError
from benchbed.params import resolve
from benchbed.progress import iterate
from benchbed.registry import Registry

#: Keys of the ``[tracking]`` table besides the per-backend tables.
TRACKING_KEYS = ("backends", "folder")


@dataclass(frozen=True)
class TrackingSettings:
    """What a suite's ``[tracking]`` table asks for (empty: no tracking).

    Attributes:
        backends: registered tracker names, in order.
        folder: where file-based trackers write, relative to the suite file's folder (or absolute).
        options: per backend, its factory's keyword parameters (checked against its signature).
    """

    backends: tuple[str, ...] = ()
    folder: str = "tracking"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackedRun:
    """One cell, as a tracker sees it.

    Attributes:
        suite: the suite's name (an experiment, a project).
        run_id: the cell's run id (stable across reruns).
        title: ``"vae · gmm8 · seed 0"``.
        folder: absolute folder file-based trackers write under (``TrackingSettings.folder``).
        params: flat ``{"model": "vae", "model.latent_dim": 2, "seed": 0, "steps": 400, ...}``.
    """

    suite: str
    run_id: str
    title: str
    folder: Path
    params: Mapping[str, Any]

    @property
    def slug(self) -> str:
        """``title`` and run id as one file-name-safe word."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.title)
        return "_".join(p for p in safe.split("_") if p) + f"-{self.run_id}"


@runtime_checkable
class Tracker(Protocol):
    """What a tracker factory returns: one instance per cell, used in this order by :func:`track_cell`."""

    def start(self, run: TrackedRun) -> None:
        """Open the run (a TensorBoard folder, an MLflow run) and record ``run.params``."""

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Record finite scalars (``train/loss``, ``metrics/recon_mse``) at training step ``step``."""

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Record an RGB image, ``uint8`` of shape (height, width, 3)."""

    def end(self, status: str) -> None:
        """Close the run: ``status`` is the cell's (ok, failed, diverged)."""


def parse_tracking(raw: object, registry: Registry, where: str) -> TrackingSettings:
    """The ``[tracking]`` table of a suite file, checked: ``backends`` registered tracker names,
    ``folder`` a string, one table per backend with its factory's parameters.

    Raises:
        SuiteError: naming the key at fault (``where`` starts the message).
    """
    if raw is None:
        return TrackingSettings()
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{where}: 'tracking' must be a table, got {type(raw).__name__}")
    backends = raw.get("backends", [])
    if not isinstance(backends, list) or not all(isinstance(b, str) for b in backends):
        raise SuiteError(f"{where}: tracking.backends must be a list of tracker names, got {backends!r}")
    folder = raw.get("folder", "tracking")
    if not isinstance(folder, str) or not folder:
        raise SuiteError(f"{where}: tracking.folder must be a folder name, got {folder!r}")
    options: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in TRACKING_KEYS:
            continue
        if not isinstance(value, Mapping):
            raise SuiteError(f"{where}: unknown key tracking.{key}; valid keys: {', '.join(TRACKING_KEYS)} and one "
                             "table per tracker (registered trackers: "
                             f"{', '.join(registry.names('tracker')) or 'none'})")
        options[key] = dict(value)
    for name in dict.fromkeys([*backends, *options]):
        try:
            spec = registry.get("tracker", name).spec
        except SuiteError as exc:  # unknown: close matches, and where it was asked for
            key = "tracking.backends" if name in backends else f"tracking.{name}"
            raise SuiteError(f"{where}: {key}: {exc}") from None
        options[name] = resolve(spec.factory, options.get(name, {}), what=f"{where}: tracker {name!r}")
    return TrackingSettings(tuple(dict.fromkeys(backends)), folder, options)


def cell_params(cell: Any) -> dict[str, Any]:
    """A cell's parameters, flat (``model``, ``model.<param>``, ``dataset``..., ``seed``, ``steps``,
    ``batch_size``, ``held_out``); values are str, int, float or bool (others as their ``repr``)."""
    out: dict[str, Any] = {}
    for axis, entry in (("model", cell.model), ("dataset", cell.dataset), ("sampler", cell.sampler)):
        if entry is None:
            continue
        out[axis] = entry.label if entry.label == entry.component else f"{entry.label} ({entry.component})"
        for key, value in dict(entry.params).items():
            out[f"{axis}.{key}"] = value if isinstance(value, str | int | float | bool) else repr(value)
    out.update(seed=cell.seed, steps=cell.budget.steps, batch_size=cell.budget.batch_size)
    if cell.held_out:
        out["held_out"] = repr(list(cell.held_out))
    return out


def sample_grid(title: str, payload: bytes | None) -> np.ndarray | None:
    """The cell's stored sample preview as an RGB ``uint8`` image (test data beside the samples, as the
    HTML leaderboard draws them); ``None`` without a preview (a model that cannot sample)."""
    if not payload:
        return None
    import base64

    import matplotlib.image

    from benchbed.html import samples_figure
    from benchbed.preview import Preview

    uri = samples_figure([(title, Preview.from_bytes(payload))])
    rgba = matplotlib.image.imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")
    rgb = rgba[..., :3] if rgba.ndim == 3 else np.repeat(rgba[..., None], 3, axis=2)
    return np.asarray(np.clip(rgb * 255.0 + 0.5, 0, 255), dtype=np.uint8)


_reported: set[str] = set()


def _report(name: str, exc: BaseException) -> None:
    """Print a tracker's failure once per tracker and process (a worker's print reaches the display)."""
    if name not in _reported:
        _reported.add(name)
        print(f"benchbed: tracker {name!r} failed (its records are incomplete; the cell is not affected): "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)


def active_backends(settings: TrackingSettings, extra: Sequence[str]) -> tuple[str, ...]:
    """The suite's backends and those of ``--track`` (``extra``), each once, in that order."""
    return tuple(dict.fromkeys([*settings.backends, *extra]))


def track_cell(settings: TrackingSettings, extra: Sequence[str], registry: Registry, *, suite: str,
               base: Path, cell: Any, status: str, curves: Sequence[Mapping[str, float]],
               metrics: Sequence[Mapping[str, Any]], preview: bytes | None) -> list[str]:
    """Send one recorded cell to every active tracker (:func:`active_backends`); returns the names of
    those that failed (each reported on stderr), never raises but an interrupt.

    ``base`` is the folder a relative ``settings.folder`` is taken from; ``metrics`` the store's
    records (only those with status ``ok`` and a finite value are sent); ``preview`` the stored
    preview payload.
    """
    names = active_backends(settings, extra)
    if not names:
        return []
    folder = Path(settings.folder)
    run = TrackedRun(suite=suite, run_id=cell.run_id, title=cell.title,
                     folder=(folder if folder.is_absolute() else base / folder).resolve(), params=cell_params(cell))
    last = max((int(p["step"]) for p in curves if "step" in p), default=0)
    values = {f"metrics/{m['metric']}": float(m["value"]) for m in metrics
              if m.get("status") == "ok" and m.get("value") is not None and math.isfinite(float(m["value"]))}
    image: list[np.ndarray | None] = []
    failed: list[str] = []
    for name in iterate(names, len(names), "tracking", stage=str):  # the display shows which tracker writes
        try:
            spec = registry.get("tracker", name).spec
            options = settings.options.get(name) or resolve(spec.factory, {}, what=f"tracker {name!r}")
            tracker = spec.factory(**options)
            tracker.start(run)
            try:
                for point in curves:
                    scalars = {f"train/{k}": float(v) for k, v in point.items()
                               if k != "step" and math.isfinite(float(v))}
                    if scalars:
                        tracker.log_scalars(scalars, int(point.get("step", 0)))
                if values:
                    tracker.log_scalars(values, last)
                if not image:
                    image.append(sample_grid(cell.title, preview))
                if image[0] is not None:
                    tracker.log_image("samples", image[0], last)
            finally:
                tracker.end(status)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - tracking is a record of the run, never its cause of failure
            _report(name, exc)
            failed.append(name)
    return failed


def missing_library(name: str, module: str, extra: str) -> Callable[[ImportError], ImportError]:
    """An ImportError naming the tracker and the extra that installs its library (for tracker plugins)."""

    def wrap(exc: ImportError) -> ImportError:
        return ImportError(f"tracker {name!r} needs the {module!r} package: pip install 'benchbed[{extra}]' "
                           f"({exc})")

    return wrap
