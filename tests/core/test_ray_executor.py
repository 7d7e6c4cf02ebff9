"""The Ray executor on a local Ray instance the test starts: same records as the serial executor.

Ray is in the ``test`` extra (``ray`` alone: a local instance needs none of ``ray[default]``'s dashboard
packages), so in CI (``CI`` set) this test runs and a missing Ray is an error, never a skip; elsewhere it
skips without Ray.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from benchbed.contracts import EngineOptions
from benchbed.execute import run_suite
from benchbed.plugins import load_plugins
from benchbed.runner import RunOptions
from benchbed.store import Store
from benchbed.suite import load_suite

if os.environ.get("CI"):
    import ray  # the test extra installs it: in CI this test must run
else:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[test]')")

SUITE = """
name = "raytest"
seeds = [0, 1]
[budget]
steps = 60
batch_size = 64
[datasets.gmm8]
n_train = 256
[models.vae]
[metrics.recon_mse]
"""


def records(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """What must not depend on the executor: status, curves and metric values of every run."""
    out = {}
    for run_id in run_ids:
        run = store.run(run_id)
        assert run is not None
        out[run_id] = (run["status"], run["curves"], [(m["metric"], m["status"], m["value"]) for m in run["metrics"]])
    return out


def test_ray_executor_matches_the_serial_executor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = load_plugins(strict=True).registry
    (tmp_path / "serial").mkdir()
    (tmp_path / "ray").mkdir()
    (tmp_path / "suite.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "suite.toml", registry)
    options = RunOptions(bars=False, engine=EngineOptions(threads=1))
    threads = torch.get_num_threads()
    try:
        serial_store = Store(tmp_path / "serial" / "results.sqlite")
        serial = run_suite(suite, registry, serial_store, executor="serial", options=options)
    finally:
        torch.set_num_threads(threads)
    assert serial.counts == {"ok": 2}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_store = Store(tmp_path / "ray" / "results.sqlite")
        capsys.readouterr()
        remote = run_suite(suite, registry, ray_store, executor="ray", jobs=2, options=options)
    finally:
        ray.shutdown()
    assert remote.counts == {"ok": 2}
    run_ids = sorted(o.run_id for o in serial.outcomes)
    assert sorted(o.run_id for o in remote.outcomes) == run_ids
    assert records(ray_store, run_ids) == records(serial_store, run_ids)  # Ray workers wrote the store themselves
    # the workers' progress reached the parent's display through the Ray queue
    err = capsys.readouterr().err
    assert len(set(re.findall(r"\[benchbed\] (w\d) started vae · gmm8 · seed \d", err))) >= 1
    assert re.search(r"\[benchbed\] w\d vae · gmm8 · seed \d · metrics: recon_mse \(1/1\)", err)
