"""Plugin independence: built-in plugins import only benchbed's public API, never one another, and the
core imports no plugin (docs/architecture.md).

* statically: import-linter's contracts in ``pyproject.toml`` hold, and a planted cross-plugin
  import (and a core-to-plugin import) in a copy of the source tree is caught;
* at run time: with any one built-in plugin disabled *and made unimportable*, every other plugin
  still loads in strict mode and registers everything it registers normally; and each plugin's
  models build, set up and take a training step on a small data set with *every* other plugin
  disabled and unimportable (which implies the one-at-a-time case at one fit per model).  Models
  that need a latent sampler cannot run without the ``samplers`` plugin (unless another plugin
  provides their sampler); they must fail with the registry's "unknown sampler" error, naming it,
  and run once ``samplers`` is back.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import math
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchbed.contracts import DataBundle
from benchbed.errors import SuiteError
from benchbed.plugins import BUILTIN_DISTRIBUTION, PluginSet, load_plugins
from benchbed.testing import bound_sampler, fit, load_dataset

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _builtin_plugins() -> dict[str, str]:
    """Entry-point name -> top-level package of every plugin of the benchbed distribution."""
    eps = [ep for ep in entry_points(group="benchbed") if ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION]
    return {ep.name: ep.value.split(".")[0] for ep in eps}


BUILTIN = _builtin_plugins()


def _lint_imports_command() -> list[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed (it is in the 'test' extra: pip install -e '.[test]')")
    return [found]


def _run_lint(config: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_lint_imports_command(), "--no-cache", "--no-logo", str(config)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


# ----------------------------------------------------------------------------------------------
# Static: import-linter


def test_importlinter_config_covers_every_builtin_plugin() -> None:
    """The contracts name exactly the installed built-in plugin packages (a new built-in plugin
    must be added to ``[tool.importlinter]``)."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    packages = set(BUILTIN.values())
    assert set(config["root_packages"]) == packages | {"benchbed"}
    by_type = {c["type"]: c for c in config["contracts"]}
    assert set(by_type["independence"]["modules"]) == packages
    assert by_type["forbidden"]["source_modules"] == ["benchbed"]
    assert set(by_type["forbidden"]["forbidden_modules"]) == packages


def test_lint_imports_passes() -> None:
    result = _run_lint(PYPROJECT, ROOT)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"unexpected value in [tool.importlinter]: {value!r}")


def _importlinter_toml(config: dict[str, Any]) -> str:
    """``[tool.importlinter]`` (strings, booleans and lists of them) written back as TOML."""
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in config.items() if k != "contracts"]
    for contract in config["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


def test_lint_imports_catches_a_planted_cross_plugin_import(tmp_path: Path) -> None:
    """A copy of the tree with ``benchbed_lebm`` importing ``benchbed_generators`` and the core
    importing ``benchbed_mmd`` breaks both contracts, and the report names both imports."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "benchbed", src / "benchbed", ignore=ignore)
    for package in BUILTIN.values():
        shutil.copytree(ROOT / "plugins" / package, src / package, ignore=ignore)
    with (src / "benchbed_lebm" / "__init__.py").open("a") as f:
        f.write("\nimport benchbed_generators  # planted\n")
    with (src / "benchbed" / "errors.py").open("a") as f:
        f.write("\nimport benchbed_mmd  # planted\n")
    config = tmp_path / "pyproject.toml"
    config.write_text(_importlinter_toml(tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]))
    env = {**os.environ, "PYTHONPATH": str(src)}  # the copies shadow the installed packages

    result = _run_lint(config, tmp_path, env)

    out = result.stdout
    assert result.returncode != 0, f"the planted imports were not caught:\n{out}\n{result.stderr}"
    assert "Built-in plugins do not import one another BROKEN" in out
    assert "The benchbed core imports no plugin BROKEN" in out
    assert "benchbed_lebm -> benchbed_generators" in out
    assert "benchbed.errors -> benchbed_mmd" in out


# ----------------------------------------------------------------------------------------------
# Run time: each plugin disabled in turn


class _Unimportable(importlib.abc.MetaPathFinder):
    """Makes some top-level packages (and their sub-modules) fail to import, as if not installed."""

    def __init__(self, packages: set[str]) -> None:
        self.packages = packages

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {fullname!r} (disabled by the test)", name=fullname)
        return None


def _load_builtins(monkeypatch: pytest.MonkeyPatch, disabled: set[str]) -> PluginSet:
    """Load the built-in plugins in strict mode, with the ``disabled`` ones switched off through
    ``BENCHBED_DISABLE_PLUGINS`` and made unimportable.

    Every plugin module is dropped from ``sys.modules`` first (``monkeypatch`` puts them back
    afterwards), so the remaining plugins are imported afresh: a hidden import of a disabled
    plugin, even a lazy one, fails here instead of finding a module imported earlier.
    """
    monkeypatch.setenv("BENCHBED_LOAD_PLUGINS", "")  # no third-party plugins
    if not disabled:
        monkeypatch.delenv("BENCHBED_DISABLE_PLUGINS", raising=False)
        return load_plugins(strict=True)
    monkeypatch.setenv("BENCHBED_DISABLE_PLUGINS", ",".join(sorted(disabled)))
    packages = set(BUILTIN.values())
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Unimportable({BUILTIN[d] for d in disabled}), *sys.meta_path])
    return load_plugins(strict=True)


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, dict[str, list[str]]], DataBundle]:
    """What every built-in plugin registers with all of them loaded, and a small gmm8."""
    with pytest.MonkeyPatch.context() as mp:
        full = _load_builtins(mp, set())
        bundle = load_dataset("gmm8", seed=0, registry=full.registry, n_train=256, n_val=64, n_test=64)
    assert {p.name for p in full.plugins} >= set(BUILTIN)
    return {p.name: p.components for p in full.plugins if p.name in BUILTIN}, bundle


def test_builtin_plugins_are_the_entry_points_of_pyproject() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["benchbed"]
    assert {name: value.split(".")[0] for name, value in declared.items()} == BUILTIN


@pytest.mark.parametrize("disabled", sorted(BUILTIN))
def test_other_plugins_register_everything_with_one_plugin_disabled(
    disabled: str, reference: tuple[dict[str, dict[str, list[str]]], DataBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    components, _ = reference
    loaded = _load_builtins(monkeypatch, {disabled})
    assert not loaded.failures
    assert {p.name for p in loaded.plugins} == set(BUILTIN) - {disabled}
    for plugin in loaded.plugins:
        assert plugin.components == components[plugin.name], f"plugin {plugin.name!r} registers differently"


def _fit_one_step(name: str, bundle: DataBundle, loaded: PluginSet, alone: str) -> None:
    spec = loaded.registry.model(name)
    _, history = fit(name, bundle, steps=1, batch_size=32, params=spec.test_params, registry=loaded.registry)
    assert history, f"model {name!r} recorded no loss with only {alone!r} loaded"
    assert all(math.isfinite(v) for v in history[-1].values()), f"model {name!r}: {history[-1]}"


@pytest.mark.parametrize("plugin", sorted(BUILTIN))
def test_models_work_with_every_other_plugin_disabled(
    plugin: str, reference: tuple[dict[str, dict[str, list[str]]], DataBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stronger than disabling one plugin at a time, at one model fit each: a plugin's models build,
    set up and take a training step with every other built-in plugin disabled and unimportable,
    except ``samplers`` for the models that need a latent sampler.  Without ``samplers`` those
    models fail with the registry's "unknown sampler" error, naming the sampler."""
    components, bundle = reference
    models = components[plugin].get("model", [])
    if not models:
        pytest.skip(f"plugin {plugin!r} registers no model")
    alone = _load_builtins(monkeypatch, set(BUILTIN) - {plugin})
    assert [p.name for p in alone.plugins] == [plugin] and not alone.failures
    samplers = set(alone.registry.names("sampler"))
    need_samplers = []
    for name in models:
        spec = alone.registry.model(name)
        if spec.uses_sampler and spec.default_sampler not in samplers:
            with pytest.raises(SuiteError, match=f"unknown sampler {spec.default_sampler!r}"):
                bound_sampler(name, None, registry=alone.registry)
            need_samplers.append(name)
        else:
            _fit_one_step(name, bundle, alone, plugin)
    if need_samplers:
        monkeypatch.undo()  # the samplers package importable again, the plugin modules restored
        with_samplers = _load_builtins(monkeypatch, set(BUILTIN) - {plugin, "samplers"})
        assert sorted(p.name for p in with_samplers.plugins) == sorted({plugin, "samplers"})
        for name in need_samplers:
            _fit_one_step(name, bundle, with_samplers, plugin)
