"""The plugin layer: isolation of broken plugins, strict mode, hook validation, env switches."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import benchbed
from benchbed import DatasetSpec, MetricSpec, ModelSpec, SamplerSpec, hookimpl, hookspecs
from benchbed.errors import PluginError, SuiteError
from benchbed.plugins import PluginLoadWarning, get_plugin_manager, load_plugins
from benchbed.registry import Provenance, Registry

GOOD_MODULE = """
from benchbed import ModelSpec, hookimpl
from torch import nn

class Third(nn.Module):
    def __init__(self, *, width: int = 3) -> None:
        super().__init__()
        self.width = width

@hookimpl
def benchbed_register_models(register):
    register(ModelSpec(name="third_model", factory=Third, description="a third-party model"))
"""

BROKEN_MODULE = """
raise ImportError("kaboom: the 'frobnicate' dependency is missing")
"""


def _load(*plugins: tuple[str, object], strict: bool) -> object:
    return load_plugins(extra=list(plugins), entry_points_enabled=False, strict=strict)


def _model_plugin(name: str, *model_names: str, fail: Exception | None = None) -> object:
    """A plugin object registering ``model_names`` (then raising ``fail`` if given)."""

    class P:
        @hookimpl
        def benchbed_register_models(self, register):  # noqa: ANN001, ANN202
            for n in model_names:
                register(ModelSpec(name=n, factory=dict))
            if fail is not None:
                raise fail

    P.__name__ = f"Plugin_{name}"
    return P()


# -- a plugin that fails to import -------------------------------------------------------------------


def test_plugin_failing_to_import_warns_and_others_still_load(third_party) -> None:
    third_party({"bbt_good": GOOD_MODULE, "bbt_broken": BROKEN_MODULE},
                {"good": "bbt_good", "broken": "bbt_broken"})
    with pytest.warns(PluginLoadWarning, match=r"plugin 'broken' from bbthird 1\.2\.3 failed to import") as rec:
        loaded = load_plugins(strict=False)
    msg = str(rec[0].message)
    assert "(bbt_broken)" in msg and "ImportError: kaboom: the 'frobnicate' dependency is missing" in msg
    assert set(loaded.failures) == {"broken"}
    assert "third_model" in loaded.registry.names("model")  # the other third-party plugin
    assert "gmm8" in loaded.registry.names("dataset")  # and the built-ins
    good = next(p for p in loaded.plugins if p.name == "good")
    assert good.provenance == Provenance("good", "bbthird", "1.2.3")
    assert good.components == {"model": ["third_model"]}
    assert loaded.registry.get("model", "third_model").provenance.version == "1.2.3"


def test_the_cli_reports_a_failed_plugin_in_one_line_and_with_the_unknown_name_it_causes(
        third_party, tmp_path, monkeypatch, capsys) -> None:
    """The name a suite asks for may belong to the plugin that failed: the error must say so, and the
    warning is one ``benchbed: warning:`` line, not Python's file-and-source-line format."""
    from benchbed import cli

    third_party({"bbt_broken3": BROKEN_MODULE}, {"broken": "bbt_broken3"})
    monkeypatch.delenv("BENCHBED_STRICT_PLUGINS", raising=False)
    (tmp_path / "s.toml").write_text('name = "s"\nseeds = [0]\n[budget]\nsteps = 2\nbatch_size = 8\n'
                                     '[datasets.gmm8]\n[models.their_model]\n[metrics.mmd]\n')
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", "s.toml"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("benchbed: warning: plugin 'broken' from bbthird 1.2.3 failed to import"), err
    assert err[1].startswith("benchbed: error: ") and "unknown model 'their_model'" in err[1], err
    assert "not loaded, so none of its components are registered: plugin 'broken'" in err[1], err
    assert len(err) == 2, err


def test_plugin_failing_to_import_raises_in_strict_mode(third_party) -> None:
    third_party({"bbt_broken2": BROKEN_MODULE}, {"broken": "bbt_broken2"})
    with pytest.raises(PluginError, match=r"plugin 'broken' from bbthird 1\.2\.3 failed to import .*kaboom"):
        load_plugins(strict=True)


def test_strict_env_switch(third_party, monkeypatch: pytest.MonkeyPatch) -> None:
    third_party({"bbt_broken3": BROKEN_MODULE}, {"broken": "bbt_broken3"})
    monkeypatch.setenv("BENCHBED_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'broken'"):
        load_plugins()
    monkeypatch.setenv("BENCHBED_STRICT_PLUGINS", "0")
    with pytest.warns(PluginLoadWarning, match="'broken'"):
        assert "broken" in load_plugins().failures


def test_load_plugins_env_switch_filters_third_party_only(third_party, monkeypatch: pytest.MonkeyPatch) -> None:
    third_party({"bbt_good4": GOOD_MODULE, "bbt_broken4": BROKEN_MODULE},
                {"good": "bbt_good4", "broken": "bbt_broken4"})
    monkeypatch.setenv("BENCHBED_LOAD_PLUGINS", "good")
    loaded = load_plugins(strict=False)
    names = {p.name for p in loaded.plugins}
    assert "good" in names and "broken" not in names and "broken" not in loaded.failures  # never imported
    assert {"datasets", "metrics"} <= names  # built-ins always load
    # a name the left-out plugin would have registered: the error says which installed plugin was left out
    with pytest.raises(SuiteError, match=r"installed plugins left out, whose components are not registered: "
                                         r"'broken' \(bbthird 1\.2\.3, not in BENCHBED_LOAD_PLUGINS\)"):
        loaded.registry.get("model", "nosuch")
    monkeypatch.setenv("BENCHBED_LOAD_PLUGINS", "")
    loaded = load_plugins(strict=False)
    assert not {"good", "broken"} & {p.name for p in loaded.plugins}
    assert "gmm8" in loaded.registry.names("dataset")


def test_disable_plugins_env_switch_blocks_builtins_and_in_process(monkeypatch: pytest.MonkeyPatch, helpers) -> None:
    monkeypatch.setenv("BENCHBED_DISABLE_PLUGINS", "datasets, fake")
    loaded = load_plugins(strict=False, extra=[("fake", helpers.FakePlugin())])
    assert "gmm8" not in loaded.registry.names("dataset")
    with pytest.raises(SuiteError, match=r"unknown dataset 'gmm8'.*left out.*'datasets' \(benchbed .*, in "
                                         r"BENCHBED_DISABLE_PLUGINS\)"):
        loaded.registry.get("dataset", "gmm8")
    assert "datasets" not in {p.name for p in loaded.plugins}
    assert "toy" not in loaded.registry.names("dataset")
    assert "vae" in loaded.registry.names("model")  # the rest still load
    monkeypatch.delenv("BENCHBED_DISABLE_PLUGINS")
    assert "gmm8" in load_plugins(strict=False).registry.names("dataset")


def test_trace_env_switch_writes_hook_calls_to_stderr(monkeypatch: pytest.MonkeyPatch, capsys, helpers) -> None:
    monkeypatch.setenv("BENCHBED_TRACE_PLUGINS", "1")
    helpers.fake_plugin_set()
    err = capsys.readouterr().err
    assert "benchbed_register_models" in err, f"BENCHBED_TRACE_PLUGINS=1 traced nothing: {err!r}"


# -- a plugin whose hook raises -----------------------------------------------------------------------


class _MetricsFail:
    """Registers a model fine, then fails half-way through registering metrics."""

    @hookimpl
    def benchbed_register_models(self, register):  # noqa: ANN001, ANN201
        register(ModelSpec(name="half_model", factory=dict))

    @hookimpl
    def benchbed_register_metrics(self, register):  # noqa: ANN001, ANN201
        register(MetricSpec(name="half_metric", factory=dict, higher_is_better=True))
        raise RuntimeError("no GPU found")


def test_hook_raising_unloads_whole_plugin_and_keeps_others(helpers) -> None:
    with pytest.warns(PluginLoadWarning) as rec:
        loaded = _load(("fake", helpers.FakePlugin()), ("halfway", _MetricsFail()), strict=False)
    assert [str(w.message) for w in rec] == [
        "plugin 'halfway' ((in-process) 0) failed in benchbed_register_metrics: RuntimeError: no GPU found"]
    assert loaded.failures == {"halfway": str(rec[0].message)}
    reg = loaded.registry
    assert "half_model" not in reg.names("model") and "half_metric" not in reg.names("metric")
    assert {"linear", "dyn"} <= set(reg.names("model")) and "fake_mse" in reg.names("metric")
    assert [p.name for p in loaded.plugins] == ["fake"]


def test_hook_raising_is_an_error_in_strict_mode(helpers) -> None:
    with pytest.raises(PluginError, match=r"^plugin 'halfway' .* failed in benchbed_register_metrics: "
                                          r"RuntimeError: no GPU found$"):
        _load(("fake", helpers.FakePlugin()), ("halfway", _MetricsFail()), strict=True)


class _TwoImplementations:
    """One plugin implementing a hook twice, as pluggy allows (``specname``); also registers a claim twice."""

    @hookimpl
    def benchbed_register_models(self, register):  # noqa: ANN001, ANN201
        register(ModelSpec(name="first_model", factory=dict))

    @hookimpl(specname="benchbed_register_models")
    def more_models(self, register):  # noqa: ANN001, ANN201
        register(ModelSpec(name="second_model", factory=dict))


def test_a_plugin_may_implement_a_hook_twice(helpers) -> None:
    """Each implementation runs once: calling the plugin once per implementation ran both every time and
    registered each name twice, which unloaded the plugin as a duplicate of itself."""
    loaded = _load(("fake", helpers.FakePlugin()), ("twice", _TwoImplementations()), strict=True)
    assert {"first_model", "second_model"} <= set(loaded.registry.names("model"))
    info = next(p for p in loaded.plugins if p.name == "twice")
    assert sorted(info.components["model"]) == ["first_model", "second_model"]


# -- misspelled hooks ---------------------------------------------------------------------------------


class _Misspelled:
    @hookimpl
    def benchbed_register_model(self, register):  # noqa: ANN001, ANN201 - the typo under test
        register(ModelSpec(name="typo_model", factory=dict))

    @hookimpl
    def benchbed_register_datasets(self, register):  # noqa: ANN001, ANN201
        register(DatasetSpec(name="typo_data", factory=dict))


def test_misspelled_hook_is_an_error_naming_the_plugin_in_strict_mode() -> None:
    with pytest.raises(PluginError) as exc:
        _load(("typo", _Misspelled()), strict=True)
    msg = str(exc.value)
    assert msg.startswith("plugin 'typo' implements an unknown hook:")
    assert "benchbed_register_model" in msg
    # the list comes from hookspecs (new hooks extend it); the four component hooks are always among it
    known = msg.split("Known hooks: ", 1)[1].split(", ")
    assert known == sorted(known) and {"benchbed_register_datasets", "benchbed_register_metrics",
                                       "benchbed_register_models", "benchbed_register_samplers"} <= set(known)


def test_misspelled_hook_unloads_plugin_in_lenient_mode(helpers) -> None:
    with pytest.warns(PluginLoadWarning, match="plugin 'typo' implements an unknown hook"):
        loaded = _load(("fake", helpers.FakePlugin()), ("typo", _Misspelled()), strict=False)
    assert set(loaded.failures) == {"typo"}
    assert "typo_data" not in loaded.registry.names("dataset")  # its valid hook is unloaded with it
    assert "toy" in loaded.registry.names("dataset")
    assert [p.name for p in loaded.plugins] == ["fake"]


def test_hookimpl_with_wrong_argument_name_is_an_error() -> None:
    class WrongArg:
        @hookimpl
        def benchbed_register_models(self, registry):  # noqa: ANN001, ANN201
            pass

    with pytest.raises(PluginError, match=r"(?s)plugin 'wrongarg' \(\(in-process\)\) is invalid: .*'registry'"):
        _load(("wrongarg", WrongArg()), strict=True)


# -- duplicates, invalid specs -----------------------------------------------------------------------


def test_duplicate_component_is_an_error_naming_both_plugins() -> None:
    with pytest.raises(PluginError) as exc:
        _load(("alpha", _model_plugin("alpha", "twin")), ("beta", _model_plugin("beta", "twin")), strict=True)
    assert "duplicate model name 'twin': registered by plugin 'alpha' ((in-process) 0) and again by plugin " \
           "'beta' ((in-process) 0)" in str(exc.value)


def test_duplicate_component_lenient_keeps_first_plugin_and_drops_second() -> None:
    with pytest.warns(PluginLoadWarning, match="duplicate model name 'twin'.*'alpha'.*'beta'"):
        loaded = _load(("alpha", _model_plugin("alpha", "twin", "a_only")),
                       ("beta", _model_plugin("beta", "b_only", "twin")), strict=False)
    reg = loaded.registry
    assert reg.get("model", "twin").provenance.plugin == "alpha"
    assert "a_only" in reg.names("model") and "b_only" not in reg.names("model")
    assert set(loaded.failures) == {"beta"}


def test_duplicate_plugin_name_does_not_unload_the_first_plugin(helpers) -> None:
    """A third party whose entry point reuses a taken name (e.g. 'metrics') must not take the
    already-loaded plugin of that name down with it (docs/architecture.md#the-plugin-layer: one broken
    plugin never stops the rest)."""
    with pytest.warns(PluginLoadWarning, match="plugin name 'fake' is used twice"):
        loaded = _load(("fake", helpers.FakePlugin()), ("fake", _model_plugin("fake2", "intruder")), strict=False)
    assert "linear" in loaded.registry.names("model")
    assert "intruder" not in loaded.registry.names("model")
    assert "fake" in {p.name for p in loaded.plugins}


@pytest.mark.parametrize("bad", ["VAE", "2vae", "my-model", "", "a b", "é"])
def test_invalid_spec_name_is_rejected(bad: str) -> None:
    with pytest.raises(PluginError, match=re.escape(f"model name {bad!r} is invalid: use lower-case letters, "
                                                    "digits and '_', starting with a letter")):
        ModelSpec(name=bad, factory=dict)


def test_invalid_spec_inside_a_plugin_names_the_plugin() -> None:
    class BadName:
        @hookimpl
        def benchbed_register_samplers(self, register):  # noqa: ANN001, ANN201
            register(SamplerSpec(name="Langevin-2", factory=dict))

    with pytest.raises(PluginError, match=r"plugin 'badname' .*failed in benchbed_register_samplers: PluginError: "
                                          r"sampler name 'Langevin-2' is invalid"):
        _load(("badname", BadName()), strict=True)


def test_other_spec_validation() -> None:
    with pytest.raises(PluginError, match="model 'dyn' uses a sampler but names no default_sampler"):
        ModelSpec(name="dyn", factory=dict, uses_sampler=True)
    with pytest.raises(PluginError, match=r"metric 'm' requires unknown capabilities \['telepathy'\]; known: "):
        MetricSpec(name="m", factory=dict, higher_is_better=True, requires=frozenset({"telepathy"}))
    with pytest.raises(PluginError, match="dataset 'd': factory 3 is not callable"):
        DatasetSpec(name="d", factory=3)
    with pytest.raises(PluginError, match="model 'm': tags must be a tuple, got list"):
        ModelSpec(name="m", factory=dict, tags=["x"])
    with pytest.raises(TypeError):
        ModelSpec("m", dict)  # keyword-only
    spec = MetricSpec(name="m", factory=dict, higher_is_better=False)
    assert spec.title == "m" and MetricSpec(name="m", factory=dict, higher_is_better=False, label="M").title == "M"
    with pytest.raises(AttributeError):
        spec.name = "other"  # frozen


@pytest.mark.parametrize("wrong", [MetricSpec(name="oops", factory=dict, higher_is_better=True), "vae"])
def test_wrong_spec_type_given_to_register(wrong: object) -> None:
    class Wrong:
        @hookimpl
        def benchbed_register_models(self, register):  # noqa: ANN001, ANN201
            register(wrong)

    with pytest.raises(PluginError, match=rf"plugin 'wrong': benchbed_register_models got {type(wrong).__name__}, "
                                          r"expected ModelSpec"):
        _load(("wrong", Wrong()), strict=True)
    with pytest.raises(PluginError, match="plugin 'p' registered 'vae': expected ModelSpec, SamplerSpec"):
        Registry().add("vae", Provenance("p", "d", "1"))  # type: ignore[arg-type]


# -- the hook specifications are the contract ----------------------------------------------------------


def _hook_names() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("benchbed_")]


def test_every_hookspec_is_documented_and_implemented_by_a_builtin() -> None:
    names = _hook_names()
    assert set(names) >= {"benchbed_register_models", "benchbed_register_samplers", "benchbed_register_datasets",
                          "benchbed_register_metrics"}
    loaded = load_plugins(strict=False)
    builtin = {p.name for p in loaded.plugins if p.provenance.distribution == "benchbed"}
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 20, f"hookspec {name} has no docstring"
        impls = getattr(loaded.pm.hook, name).get_hookimpls()
        assert {i.plugin_name for i in impls} & builtin, f"no built-in plugin implements {name}"


def test_only_plugins_module_calls_hooks() -> None:
    """docs/architecture.md#the-plugin-layer: only one module calls ``pm.hook.benchbed_*``."""
    root = Path(benchbed.__file__).parent
    callers = sorted(p.name for p in root.glob("*.py")
                     if any(isinstance(node, ast.Attribute) and node.attr == "hook"
                            for node in ast.walk(ast.parse(p.read_text()))))
    assert callers == ["plugins.py"], callers


def test_plugin_manager_factory_has_no_global_state(helpers) -> None:
    a, b = get_plugin_manager(), get_plugin_manager()
    assert a is not b and not a.get_plugins() and not b.get_plugins()
    first = helpers.fake_plugin_set()
    second = load_plugins(entry_points_enabled=False, strict=True)
    assert "linear" in first.registry.names("model") and not second.registry.names("model")


def test_registry_lookup_suggests_close_matches(fake_registry: Registry) -> None:
    with pytest.raises(Exception, match=re.escape("unknown model 'lineer'; did you mean 'linear'? "
                                                  "(registered models: dyn, dyn_any, linear)")):
        fake_registry.model("lineer")
    with pytest.raises(Exception, match=re.escape("unknown sampler 'zzz' (registered samplers: other_walk, walk)")):
        fake_registry.sampler("zzz")
    assert fake_registry.model("linear").name == "linear"
    assert [e.spec.name for e in fake_registry][:1] == ["linear"]


def test_a_slow_plugin_import_is_named(third_party, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Every command pays each plugin's import: `benchbed plugins` shows a slow one's seconds, and
    BENCHBED_TRACE_PLUGINS=1 prints every plugin's."""
    from benchbed import cli

    third_party({"bbt_slow": "import time\ntime.sleep(0.6)\n" + GOOD_MODULE}, {"slow": "bbt_slow"})
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("slow "))
    assert re.fullmatch(r"slow  \(bbthird 1\.2\.3, imported in 0\.[6-9]\d s\)", line), line
    monkeypatch.setenv("BENCHBED_TRACE_PLUGINS", "1")
    load_plugins(strict=True)
    assert re.search(r"plugin 'slow' \(bbthird 1\.2\.3\) imported in \d+\.\d\d s", capsys.readouterr().err)
