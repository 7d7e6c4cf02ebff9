"""Tracking: the [tracking] table, the tracker hook (a third-party tracker), and the built-in TensorBoard and
MLflow trackers read back with their own libraries.

TensorBoard is in the ``test`` extra, so its test runs in CI; MLflow is heavy (a server stack) and is not:
its test runs where ``pip install 'benchbed[mlflow]'`` was done and skips elsewhere, saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchbed import hookimpl
from benchbed.errors import SuiteError
from benchbed.execute import run_suite
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.runner import RunOptions
from benchbed.specs import TrackerSpec
from benchbed.store import Store
from benchbed.suite import load_suite, parse_suite
from benchbed.tracking import TrackedRun, TrackingSettings, sample_grid, track_cell

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None

CALLS: list[tuple[str, Any]] = []


class FakeTracker:
    """A third-party tracker: records what it is sent."""

    def __init__(self, *, project: str = "p") -> None:
        self.project = project

    def start(self, run: TrackedRun) -> None:
        CALLS.append(("start", run))

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        CALLS.append(("scalars", (dict(values), step)))

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        CALLS.append(("image", (tag, image, step)))

    def end(self, status: str) -> None:
        CALLS.append(("end", (status, self.project)))


class FakePlugin:
    @hookimpl
    def benchbed_register_trackers(self, register: Callable[[TrackerSpec], None]) -> None:
        register(TrackerSpec(name="fake", factory=FakeTracker))


SUITE = """
name = "tracked"
seeds = [0]
[budget]
steps = 40
batch_size = 64
[datasets.gmm8]
n_train = 256
[models.vae]
[metrics.recon_mse]
[tracking]
backends = {backends}
folder = "runs"
[tracking.fake]
project = "mine"
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_plugins(extra=[("fake", FakePlugin())]).registry


@pytest.fixture(scope="module")
def tracked(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, list[Any]]:
    """One tiny suite run serially with the fake tracker (and TensorBoard where installed)."""
    folder = tmp_path_factory.mktemp("tracked")
    backends = ["fake", "tensorboard"] if HAS_TENSORBOARD else ["fake"]
    (folder / "suite.toml").write_text(SUITE.format(backends=repr(backends).replace("'", '"')))
    suite = load_suite(folder / "suite.toml", registry)
    store = Store(folder / "results.sqlite")
    CALLS.clear()
    summary = run_suite(suite, registry, store, options=RunOptions(bars=False))
    assert summary.counts["ok"] == 1
    return folder, store, list(CALLS)


def test_tracking_table_is_checked_against_the_registry(registry: Registry) -> None:
    head = "name = 't'\nseeds = [0]\n[budget]\nsteps = 2\nbatch_size = 2\n[datasets.gmm8]\n[models.vae]\n"
    head += "[metrics.recon_mse]\n"
    with pytest.raises(SuiteError, match=r"line 9\): tracking.backends: unknown tracker 'tensorbord'; did you "
                                         "mean 'tensorboard'"):
        parse_suite(head + '[tracking]\nbackends = ["tensorbord"]\n', registry)
    with pytest.raises(SuiteError, match="tracker 'mlflow': unknown parameter 'url'.*parameters: uri, experiment"):
        parse_suite(head + '[tracking]\nbackends = ["mlflow"]\n[tracking.mlflow]\nurl = "x"\n', registry)
    with pytest.raises(SuiteError, match="tracking.backends must be a list"):
        parse_suite(head + '[tracking]\nbackends = "mlflow"\n', registry)
    suite = parse_suite(head + '[tracking]\nbackends = ["mlflow"]\n[tracking.mlflow]\nuri = "file:///x"\n', registry)
    assert suite.tracking.backends == ("mlflow",) and suite.tracking.options["mlflow"] == {"uri": "file:///x",
                                                                                          "experiment": ""}
    assert parse_suite(head, registry).tracking.backends == ()


def test_a_plugin_tracker_gets_params_curves_metrics_samples_and_status(tracked: tuple[Path, Store, list[Any]]) -> None:
    folder, store, calls = tracked
    kinds = [k for k, _ in calls]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("image") == 1
    run: TrackedRun = calls[0][1]
    row = store.run(run.run_id)
    assert row is not None and run.suite == "tracked" and run.folder == (folder / "runs").resolve()
    assert run.params["model"] == "vae" and run.params["dataset"] == "gmm8" and run.params["seed"] == 0
    assert run.params["steps"] == 40 and run.params["dataset.n_train"] == 256
    scalars = [v for k, v in calls if k == "scalars"]
    curve_steps = [step for values, step in scalars if "train/loss" in values]
    assert curve_steps == sorted(curve_steps) and curve_steps[0] == 0 and curve_steps[-1] == 39
    metrics = {k: v for values, _ in scalars for k, v in values.items() if k.startswith("metrics/")}
    (stored,) = row["metrics"]
    assert set(metrics) == {"metrics/recon_mse"} and metrics["metrics/recon_mse"] == pytest.approx(stored["value"])
    assert curve_steps == [int(p["step"]) for p in row["curves"]]  # the stored curve, point by point
    tag, image, step = next(v for k, v in calls if k == "image")
    assert tag == "samples" and step == 39 and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert calls[-1][1] == ("ok", "mine")  # the [tracking.fake] table reached the factory


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (pip install 'benchbed[tensorboard]')")
def test_tensorboard_event_files_read_back(tracked: tuple[Path, Store, list[Any]]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, store, calls = tracked
    run: TrackedRun = calls[0][1]
    logdir = folder / "runs" / "tensorboard" / "tracked" / run.slug
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "metrics/recon_mse"} <= set(tags["scalars"]) and tags["images"] == ["samples"]
    sent = [(step, values["train/loss"]) for k, (values, step) in
            ((k, v) for k, v in calls if k == "scalars") if "train/loss" in values]
    got = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in got] == [s for s, _ in sent]
    assert np.allclose([v for _, v in got], [v for _, v in sent], rtol=1e-6)
    (metric,) = events.Scalars("metrics/recon_mse")
    assert metric.step == 39 and metric.value > 0
    (image,) = events.Images("samples")
    assert image.width > 0 and image.height > 0 and image.encoded_image_string.startswith(b"\x89PNG")


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (pip install 'benchbed[mlflow]'; not in the "
                                           "test extra: it is heavy)")
def test_mlflow_file_store_runs_read_back(registry: Registry, tracked: tuple[Path, Store, list[Any]],
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind this switch
    folder, store, calls = tracked
    run: TrackedRun = calls[0][1]
    uri = (tmp_path / "mlruns").as_uri()
    settings = TrackingSettings(backends=("mlflow",), folder=str(tmp_path),
                                options={"mlflow": {"uri": uri, "experiment": "exp"}})
    cell = _Cell(run)
    curves = [{"step": 0.0, "loss": 3.0}, {"step": 10.0, "loss": 2.0}, {"step": 19.0, "loss": 1.5}]
    metrics = [{"metric": "recon_mse", "status": "ok", "value": 0.25}, {"metric": "loglik", "status": "n/a",
                                                                        "value": None}]
    payload = store.preview(run.run_id)
    assert track_cell(settings, (), registry, suite="tracked", base=tmp_path, cell=cell, status="ok", curves=curves,
                      metrics=metrics, preview=payload) == []
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        runs = mlflow.search_runs(experiment_names=["exp"])
        (found,) = runs.to_dict("records")
        assert found["tags.mlflow.runName"] == run.title and found["tags.benchbed.run_id"] == run.run_id
        assert found["status"] == "FINISHED" and found["tags.benchbed.status"] == "ok"
        assert found["metrics.train/loss"] == 1.5 and found["metrics.metrics/recon_mse"] == 0.25
        assert "metrics.metrics/loglik" not in found and found["params.model"] == "vae"
        history = mlflow.MlflowClient(uri).get_metric_history(found["run_id"], "train/loss")
        assert [(m.step, m.value) for m in history] == [(0, 3.0), (10, 2.0), (19, 1.5)]
        artifacts = [a.path for a in mlflow.MlflowClient(uri).list_artifacts(found["run_id"])]
        assert "samples.png" in artifacts
    finally:
        mlflow.set_tracking_uri(previous)


class _Cell:
    """The parts of a grid cell :func:`track_cell` reads, from a tracked run."""

    def __init__(self, run: TrackedRun) -> None:
        self.run_id, self.title = run.run_id, run.title
        self.model = _Entry("vae", {"latent_dim": 2})
        self.dataset = _Entry("gmm8", {})
        self.sampler = None
        self.seed, self.held_out = 0, ()
        self.budget = type("B", (), {"steps": 20, "batch_size": 8})()


class _Entry:
    def __init__(self, label: str, params: dict[str, Any]) -> None:
        self.label = self.component = label
        self.params = params


def test_a_failing_tracker_never_fails_the_cell(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    class Broken(FakeTracker):
        def log_scalars(self, values: Mapping[str, float], step: int) -> None:
            raise RuntimeError("server down")

    reg = load_plugins(extra=[("broken", type("P", (), {"benchbed_register_trackers": hookimpl(
        lambda self, register: register(TrackerSpec(name="broken", factory=Broken)))})())]).registry
    settings = TrackingSettings()
    run = TrackedRun("s", "abc", "vae · gmm8 · seed 0", tmp_path, {})
    failed = track_cell(settings, ("broken",), reg, suite="s", base=tmp_path, cell=_Cell(run), status="ok",
                        curves=[{"step": 0.0, "loss": 1.0}], metrics=[], preview=None)
    assert failed == ["broken"]
    assert "tracker 'broken' failed" in capsys.readouterr().err and ("end", ("ok", "p")) in CALLS
    assert sample_grid("x", None) is None


def test_cli_rejects_an_unknown_tracker_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchbed import cli

    (tmp_path / "suite.toml").write_text(SUITE.format(backends="[]").split("[tracking]")[0])
    assert cli.main(["run", str(tmp_path / "suite.toml"), "--track", "tensorbord", "--no-bars"]) != 0
    assert "--track tensorbord: unknown tracker 'tensorbord'; did you mean 'tensorboard'" in capsys.readouterr().err
    assert not (tmp_path / "results.sqlite").exists()
