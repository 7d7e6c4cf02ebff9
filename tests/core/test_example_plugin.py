"""The third-party example plugin: really pip-installed (into a temporary target) it runs in a suite, and its
latent EBM (``quad_lebm``, built from benchbed's public toolkit only) conforms, learns, and stays small."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.testing import check_model, evaluate_metric, fit, load_dataset, make_eval_context

EXAMPLE = Path(__file__).resolve().parents[1] / "example_plugin"
LATENT_EBM = EXAMPLE / "benchbed_example" / "latent_ebm.py"

#: The parts of benchbed a plugin may build a model from (docs/architecture.md: the public API).
PUBLIC = ("benchbed", "benchbed.contracts", "benchbed.model")


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
    assert "models: linear_ae, quad_lebm" in plugins.stdout

    run = subprocess.run([sys.executable, "-m", "benchbed", "run", str(EXAMPLE / "suite.toml"), "--store",
                          str(tmp_path / "s.sqlite"), "--out", str(tmp_path), "--strict"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    table = (tmp_path / "README.md").read_text()
    for model in ("linear_ae", "quad_lebm"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {model}"))
        assert "failed" not in row and "n/a" not in row, row


def test_without_the_plugin_its_model_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the example's entry point disabled (whether or not it is installed here, e.g. by
    ``tox -e plugin-e2e``), its suite names an unknown model."""
    from benchbed.errors import SuiteError
    from benchbed.suite import load_suite

    monkeypatch.setenv("BENCHBED_DISABLE_PLUGINS", "example")
    registry = load_plugins(strict=True).registry
    assert "linear_ae" not in registry.names("model")
    assert "quad_lebm" not in registry.names("model")
    with pytest.raises(SuiteError, match="unknown model 'linear_ae'"):
        load_suite(EXAMPLE / "suite.toml", registry)


# --------------------------------------------------------------------------------- the latent EBM, in process


@pytest.fixture(scope="module")
def example_registry() -> Registry:
    """The built-ins plus the example plugin *from this source tree*, registered in process.

    The entry point named ``example`` is disabled: the plugin may also be installed (``tox -e
    plugin-e2e``), and with the source folder on ``sys.path`` its build metadata would advertise it too.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXAMPLE))
        mp.setenv("BENCHBED_DISABLE_PLUGINS", "example")
        for name in [m for m in sys.modules if m == "benchbed_example" or m.startswith("benchbed_example.")]:
            mp.delitem(sys.modules, name)
        module = importlib.import_module("benchbed_example")
        assert Path(module.__file__ or "").resolve().parent == EXAMPLE / "benchbed_example"
        return load_plugins(strict=True, extra=[("example-src", module)]).registry


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The shared 2-core machine: one intra-op thread, restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("dataset", ["gmm8", "digits"])
def test_latent_ebm_passes_the_conformance_checks(example_registry: Registry, dataset: str) -> None:
    model = check_model("quad_lebm", dataset=dataset, registry=example_registry)
    assert {"sample", "infer", "reconstruct", "log_joint", "log_prior", "log_partition", "anomaly_score"} <= {
        str(c) for c in model.capabilities}


# Small networks and short chains, as tests/generators/test_learning.py gives the built-in LEBM.
LEARN: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "gmm8": ({"n_train": 2000, "n_val": 200, "n_test": 500},
             {"latent_dim": 2, "obs_std": 0.1, "posterior_step_size": 0.05}, 200),
    "digits": ({}, {"latent_dim": 8}, 150),
}
SMALL = {"hidden": (64, 64), "energy_hidden": (32, 32), "lr_g": 3e-3, "lr_e": 1e-3, "prior_steps": 20,
         "posterior_steps": 10}


@pytest.mark.parametrize("dataset", list(LEARN))
def test_latent_ebm_learns(example_registry: Registry, dataset: str) -> None:
    """After a short fit, the MMD^2 of its samples to the test split (the ``mmd`` metric) is well below the
    untrained model's (same seed, zero steps)."""
    data_params, params, steps = LEARN[dataset]
    bundle = load_dataset(dataset, seed=0, registry=example_registry, **data_params)
    scores = []
    for n in (0, steps):
        model, _ = fit("quad_lebm", bundle, steps=n, params={**SMALL, **params}, registry=example_registry)
        torch.manual_seed(123)
        ctx = make_eval_context(model, bundle, registry=example_registry)
        scores.append(evaluate_metric("mmd", ctx, registry=example_registry, n_samples=500, n_reference=500).value)
    print(f"quad_lebm/{dataset}: MMD^2 {scores[0]:.4f} -> {scores[1]:.4f} after {steps} steps")
    assert scores[1] < 0.3 * scores[0], f"quad_lebm on {dataset}: sample MMD^2 {scores[0]:.4g} -> {scores[1]:.4g}"


def test_latent_ebm_module_is_small_and_uses_the_public_api_only() -> None:
    """Under 80 non-blank lines for the whole file, and imports from torch, the standard library and
    benchbed's public API only: no built-in plugin (``benchbed_*``), no relative import."""
    source = LATENT_EBM.read_text()
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) < 80, f"{LATENT_EBM.name} has {len(lines)} non-blank lines"
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}"
            imported.append(node.module or "")
    assert imported, "no imports parsed"
    for name in imported:
        root = name.split(".")[0]
        assert not root.startswith("benchbed_"), f"{LATENT_EBM.name} imports the plugin package {name!r}"
        if root == "benchbed":
            assert name in PUBLIC or name.startswith("benchbed.blocks."), f"non-public benchbed import {name!r}"
        else:
            assert root in {"torch", "math", "__future__"}, f"unexpected import {name!r}"
