"""Plugin loading: the only module that calls ``pm.hook.benchbed_*``.

Built-in plugins (those of the ``benchbed`` distribution) load first, then every other entry point
of the ``benchbed`` group, each on its own: one that fails to import, registers an invalid spec or
misspells a hook is reported and unloaded, and the others still load.  In strict mode the first
such failure raises :class:`~benchbed.errors.PluginError` instead.

Environment switches:

* ``BENCHBED_DISABLE_PLUGINS=a,b``: never load these entry points (built-ins included).
* ``BENCHBED_LOAD_PLUGINS=a,b``: load only these third-party entry points (built-ins always load);
  an empty value loads no third-party plugin.
* ``BENCHBED_STRICT_PLUGINS=1``: strict mode (tests and CI use it).
* ``BENCHBED_TRACE_PLUGINS=1``: pluggy's hook-call tracing and each plugin's import time, written to
  stderr.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from benchbed import PROJECT_NAME, hookspecs
from benchbed.errors import PluginError
from benchbed.registry import Provenance, Registry
from benchbed.specs import SPEC_TYPES

BUILTIN_DISTRIBUTION = "benchbed"
HOOK_PREFIX = "benchbed_"


class PluginLoadWarning(UserWarning):
    """A plugin failed to load in non-strict mode."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: its name, provenance and what it registered (``kind -> names``)."""

    name: str
    provenance: Provenance
    components: dict[str, list[str]]
    import_seconds: float = 0.0  # its module's import (0 for an in-process plugin)


@dataclass
class PluginSet:
    """The result of loading: the plugin manager, the registry, and what failed."""

    pm: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def strict_from_env() -> bool:
    """Whether ``BENCHBED_STRICT_PLUGINS`` asks for strict loading."""
    return os.environ.get("BENCHBED_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


def get_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with benchbed's hook specs and nothing registered (no global state)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("BENCHBED_TRACE_PLUGINS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def _sorted_entry_points() -> list[EntryPoint]:
    eps = list(entry_points(group=PROJECT_NAME))

    def dist_name(ep: EntryPoint) -> str:
        return ep.dist.name if ep.dist is not None else ""

    # Built-ins first, then third parties by name, so registration order is stable.
    return sorted(eps, key=lambda ep: (dist_name(ep) != BUILTIN_DISTRIBUTION, ep.name))


class _Loader:
    """Registers plugins one by one, recording failures (or raising them in strict mode)."""

    def __init__(self, pm: pluggy.PluginManager, strict: bool) -> None:
        self.pm = pm
        self.strict = strict
        self.provenance: dict[str, Provenance] = {}
        self.failures: dict[str, str] = {}
        self.import_seconds: dict[str, float] = {}  # entry point -> seconds its import took

    def fail(self, name: str, message: str) -> None:
        if self.strict:
            raise PluginError(message)
        self.failures[name] = message
        warnings.warn(message, PluginLoadWarning, stacklevel=3)
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)

    def add(self, name: str, obj: Any, provenance: Provenance) -> None:
        if name in self.provenance:
            # Report the newcomer only: the plugin already loaded under this name stays loaded.
            message = (f"plugin name {name!r} is used twice ({self.provenance[name].distribution} and "
                       f"{provenance.distribution}); the second one is not loaded")
            if self.strict:
                raise PluginError(message)
            self.failures[f"{name} ({provenance.distribution})"] = message
            warnings.warn(message, PluginLoadWarning, stacklevel=2)
            return
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:  # noqa: BLE001 - any registration error is reported per plugin
            self.fail(name, f"plugin {name!r} ({provenance.distribution}) is invalid: {exc}")
            return
        self.provenance[name] = provenance

    def add_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist is not None else "(unknown)"
        version = ep.dist.version if ep.dist is not None else "0"
        start = time.perf_counter()
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
            self.fail(ep.name, f"plugin {ep.name!r} from {dist} {version} failed to import "
                               f"({ep.value}): {type(exc).__name__}: {exc}")
            return
        # Every command pays each plugin's import: `benchbed plugins` and the trace name a slow one.
        self.import_seconds[ep.name] = seconds = time.perf_counter() - start
        if os.environ.get("BENCHBED_TRACE_PLUGINS"):
            print(f"benchbed: plugin {ep.name!r} ({dist} {version}) imported in {seconds:.2f} s", file=sys.stderr)
        self.add(ep.name, module, Provenance(ep.name, dist, version))

    def check_pending(self) -> None:
        """A hook implementation with no matching spec (a misspelled hook) is an error."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                self.fail(name, f"plugin {name!r} implements an unknown hook: {exc}. "
                                f"Known hooks: {', '.join(_hook_names())}")
                self.provenance.pop(name, None)


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith(HOOK_PREFIX))


def load_plugins(
    *,
    strict: bool | None = None,
    extra: Iterable[tuple[str, ModuleType | object]] = (),
    entry_points_enabled: bool = True,
) -> PluginSet:
    """Load built-in and third-party plugins and collect their components.

    Args:
        strict: raise on the first failing plugin; ``None`` reads ``BENCHBED_STRICT_PLUGINS``.
        extra: in-process ``(name, plugin object)`` pairs registered after the entry points
            (tests, notebooks).
        entry_points_enabled: load the ``benchbed`` entry-point group (off for isolated tests).
    """
    strict = strict_from_env() if strict is None else strict
    pm = get_plugin_manager()
    loader = _Loader(pm, strict)
    disabled = set(_env_list("BENCHBED_DISABLE_PLUGINS") or [])
    allowed = _env_list("BENCHBED_LOAD_PLUGINS")
    excluded: dict[str, str] = {}  # entry point -> why it was not loaded (named in unknown-name errors)
    if entry_points_enabled:
        for ep in _sorted_entry_points():
            builtin = ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION
            if ep.name in disabled or (not builtin and allowed is not None and ep.name not in allowed):
                dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
                why = "in BENCHBED_DISABLE_PLUGINS" if ep.name in disabled else "not in BENCHBED_LOAD_PLUGINS"
                excluded[ep.name] = f"{dist}, {why}"
                continue
            loader.add_entry_point(ep)
    for name, obj in extra:
        if name not in disabled:
            loader.add(name, obj, Provenance(name, "(in-process)", "0"))
    loader.check_pending()
    registry, infos = _collect(pm, loader)
    registry.failures = dict(loader.failures)
    registry.excluded = excluded
    return PluginSet(pm=pm, registry=registry, plugins=infos, failures=loader.failures)


def _implementers(pm: pluggy.PluginManager, hook: str, loader: _Loader) -> list[tuple[str, object]]:
    """``(name, plugin)`` of each loaded plugin that implements ``hook``, once per plugin in pluggy's call
    order: a plugin may implement a hook several times (pluggy's ``specname``), and calling it through
    :meth:`pluggy.PluginManager.subset_hook_caller` already runs all of its implementations."""
    seen: dict[str, object] = {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin_name in loader.provenance and impl.plugin_name not in seen:
            seen[impl.plugin_name] = impl.plugin
    return list(seen.items())


def _collect(pm: pluggy.PluginManager, loader: _Loader) -> tuple[Registry, list[PluginInfo]]:
    """Call every plugin's register hooks with a ``register`` bound to that plugin's provenance."""
    registry = Registry()
    components: dict[str, dict[str, list[str]]] = {name: {} for name in loader.provenance}
    for kind in SPEC_TYPES:
        for name, plugin in _implementers(pm, f"benchbed_register_{kind}s", loader):
            prov = loader.provenance[name]
            before = set(registry.names(kind))
            try:
                # Through pluggy (not impl.function) so BENCHBED_TRACE_PLUGINS traces every call.
                others = [p for p in pm.get_plugins() if p is not plugin]
                pm.subset_hook_caller(f"benchbed_register_{kind}s", others)(
                    register=registry.register_fn(kind, prov))
            except Exception as exc:  # noqa: BLE001 - one plugin's error must not stop the rest
                for added in set(registry.names(kind)) - before:
                    del registry.entries[kind][added]
                loader.fail(name, f"plugin {name!r} ({prov.distribution} {prov.version}) failed in "
                                  f"benchbed_register_{kind}s: {type(exc).__name__}: {exc}")
                continue
            components[name][kind] = [n for n in registry.names(kind) if n not in before]
    _collect_claims(pm, loader, registry, components)
    for name in loader.failures:  # a plugin that failed in one hook contributes nothing at all
        for kind, names in components.get(name, {}).items():
            for added in names:
                if kind == "claim":
                    registry.claims.pop(added, None)
                else:
                    registry.entries[kind].pop(added, None)
    infos = [PluginInfo(n, p, components.get(n, {}), loader.import_seconds.get(n, 0.0))
             for n, p in loader.provenance.items()
             if n not in loader.failures]
    return registry, infos


def _collect_claims(pm: pluggy.PluginManager, loader: _Loader, registry: Registry,
                    components: dict[str, dict[str, list[str]]]) -> None:
    """Call every plugin's ``benchbed_register_claims`` (claims are not components: ``registry.claims``)."""
    hook = "benchbed_register_claims"
    for name, plugin in _implementers(pm, hook, loader):
        prov = loader.provenance[name]
        before = set(registry.claims)
        try:
            others = [p for p in pm.get_plugins() if p is not plugin]
            pm.subset_hook_caller(hook, others)(register=registry.claim_register_fn(prov))
        except Exception as exc:  # noqa: BLE001 - one plugin's error must not stop the rest
            for added in set(registry.claims) - before:
                del registry.claims[added]
            loader.fail(name, f"plugin {name!r} ({prov.distribution} {prov.version}) failed in {hook}: "
                              f"{type(exc).__name__}: {exc}")
            continue
        components[name]["claim"] = [i for i in registry.claims if i not in before]


def load_registry(strict: bool | None = None) -> Registry:
    """Shortcut: load all plugins and return the registry."""
    return load_plugins(strict=strict).registry
