"""The Ray executor on a local Ray instance (runs where Ray is installed: ``pip install -e ".[ray]"``,
``tox -e ray``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

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


def test_ray_executor_runs_every_cell_and_workers_write_the_store(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCHBED_STRICT_PLUGINS": "1"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "benchbed", "run", str(suite), "--executor", "ray", "--jobs", "2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 cells (2 ok)" in out.stdout
    assert "| vae |" in (tmp_path / "README.md").read_text()
