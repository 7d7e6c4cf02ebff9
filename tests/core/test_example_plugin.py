"""The third-party example plugin, really pip-installed (into a temporary target), runs in a suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "example_plugin"


def test_pip_installed_example_plugin_appears_and_runs_in_a_suite(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
           "BENCHBED_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    plugins = subprocess.run([sys.executable, "-m", "benchbed", "plugins"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert plugins.returncode == 0, plugins.stderr
    assert "example  (benchbed-example 0.2.0)" in plugins.stdout
    assert "models: linear_ae" in plugins.stdout

    run = subprocess.run([sys.executable, "-m", "benchbed", "run", str(EXAMPLE / "suite.toml"), "--store",
                          str(tmp_path / "s.sqlite"), "--out", str(tmp_path), "--strict"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    table = (tmp_path / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| linear_ae"))
    assert "failed" not in row and "n/a" not in row


def test_without_the_plugin_its_model_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the example's entry point disabled (whether or not it is installed here, e.g. by
    ``tox -e plugin-e2e``), its suite names an unknown model."""
    from benchbed.errors import SuiteError
    from benchbed.plugins import load_plugins
    from benchbed.suite import load_suite

    monkeypatch.setenv("BENCHBED_DISABLE_PLUGINS", "example")
    registry = load_plugins(strict=True).registry
    assert "linear_ae" not in registry.names("model")
    with pytest.raises(SuiteError, match="unknown model 'linear_ae'"):
        load_suite(EXAMPLE / "suite.toml", registry)
