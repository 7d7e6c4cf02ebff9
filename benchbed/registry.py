"""The registry the host owns: validated specs, who supplied them, duplicate detection."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchbed.contracts import DataBundle
from benchbed.errors import DataContractError, PluginError, SuiteError
from benchbed.specs import SPEC_TYPES, ClaimSpec, ComponentSpec, DatasetSpec, MetricSpec, ModelSpec, SamplerSpec

_S = TypeVar("_S", bound=ComponentSpec)

@dataclass(frozen=True)
class Provenance:
    """Which plugin supplied a component: plugin name, distribution and its version."""

    plugin: str
    distribution: str
    version: str


@dataclass(frozen=True)
class Registered:
    """A registered component with its provenance (not to be confused with a suite's
    :class:`benchbed.suite.Entry`, an entry of a suite's axis)."""

    spec: ComponentSpec
    provenance: Provenance


@dataclass(frozen=True)
class RegisteredClaim:
    """A claim registered by a plugin (``benchbed_register_claims``), with its provenance."""

    spec: ClaimSpec
    provenance: Provenance


@dataclass
class Registry:
    """All registered components, per kind, in registration order, and the registered claims by id."""

    entries: dict[str, dict[str, Registered]] = field(default_factory=lambda: {k: {} for k in SPEC_TYPES})
    claims: dict[str, RegisteredClaim] = field(default_factory=dict)
    #: plugin name -> why it was not loaded (set by :func:`benchbed.plugins.load_plugins`): an unknown
    #: name may be one that plugin would have registered, so :meth:`get` says so.
    failures: dict[str, str] = field(default_factory=dict)
    #: installed plugins (entry points) left out by BENCHBED_DISABLE_PLUGINS / BENCHBED_LOAD_PLUGINS -> why
    excluded: dict[str, str] = field(default_factory=dict)

    def add(self, spec: ComponentSpec, provenance: Provenance) -> None:
        """Record ``spec``; a second component of the same kind and name is an error naming both plugins."""
        if not isinstance(spec, ComponentSpec) or spec.kind not in SPEC_TYPES:
            raise PluginError(
                f"plugin {provenance.plugin!r} registered {spec!r}: expected ModelSpec, SamplerSpec, "
                "DatasetSpec or MetricSpec"
            )
        table = self.entries[spec.kind]
        if spec.name in table:
            first = table[spec.name].provenance
            raise PluginError(
                f"duplicate {spec.kind} name {spec.name!r}: registered by plugin {first.plugin!r} "
                f"({first.distribution} {first.version}) and again by plugin {provenance.plugin!r} "
                f"({provenance.distribution} {provenance.version})"
            )
        table[spec.name] = Registered(spec, provenance)

    def register_fn(self, kind: str, provenance: Provenance) -> Callable[[ComponentSpec], None]:
        """The ``register`` callable handed to one plugin's hook of one kind."""
        expected = SPEC_TYPES[kind]

        def register(spec: ComponentSpec) -> None:
            if not isinstance(spec, expected):
                raise PluginError(
                    f"plugin {provenance.plugin!r}: benchbed_register_{kind}s got {type(spec).__name__}, "
                    f"expected {expected.__name__}"
                )
            self.add(spec, provenance)

        return register

    def add_claim(self, spec: ClaimSpec, provenance: Provenance) -> None:
        """Record a plugin's claim; a second claim with the same id is an error naming both plugins."""
        if not isinstance(spec, ClaimSpec):
            raise PluginError(f"plugin {provenance.plugin!r}: benchbed_register_claims got {type(spec).__name__}, "
                              "expected ClaimSpec")
        if spec.id in self.claims:
            first = self.claims[spec.id].provenance
            raise PluginError(
                f"duplicate claim id {spec.id!r}: registered by plugin {first.plugin!r} ({first.distribution} "
                f"{first.version}) and again by plugin {provenance.plugin!r} ({provenance.distribution} "
                f"{provenance.version})"
            )
        self.claims[spec.id] = RegisteredClaim(spec, provenance)

    def claim_register_fn(self, provenance: Provenance) -> Callable[[ClaimSpec], None]:
        """The ``register`` callable handed to one plugin's ``benchbed_register_claims``."""

        def register(spec: ClaimSpec) -> None:
            self.add_claim(spec, provenance)

        return register

    def get(self, kind: str, name: str) -> Registered:
        """Look a component up; an unknown name raises :class:`SuiteError` with close matches."""
        table = self.entries[kind]
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(table)) or "none"
            failed = "".join(f"; not loaded, so none of its components are registered: {why}"
                             for why in self.failures.values())
            if self.excluded:
                failed += "; installed plugins left out, whose components are not registered: " + ", ".join(
                    f"{ep!r} ({why})" for ep, why in sorted(self.excluded.items()))
            raise SuiteError(f"unknown {kind} {name!r}{hint} (registered {kind}s: {known}){failed}")
        return table[name]

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, in registration order."""
        return list(self.entries[kind])

    def __iter__(self) -> Iterator[Registered]:
        for table in self.entries.values():
            yield from table.values()

    # Typed accessors: the rest of benchbed never indexes ``entries`` by string kind.
    def _spec(self, kind: str, name: str, cls: type[_S]) -> _S:
        spec = self.get(kind, name).spec
        assert isinstance(spec, cls), f"{kind} {name!r} is registered with a {type(spec).__name__}"
        return spec

    def model(self, name: str) -> ModelSpec:
        return self._spec("model", name, ModelSpec)

    def sampler(self, name: str) -> SamplerSpec:
        return self._spec("sampler", name, SamplerSpec)

    def dataset(self, name: str) -> DatasetSpec:
        return self._spec("dataset", name, DatasetSpec)

    def metric(self, name: str) -> MetricSpec:
        return self._spec("metric", name, MetricSpec)

    def load_dataset(self, name: str, params: Mapping[str, Any], seed: int) -> DataBundle:
        """Load data set ``name`` with (already validated) ``params`` for ``seed``, and check what it
        returned against the data-set contract (:meth:`benchbed.contracts.DataBundle.problems`).

        Every load in benchbed goes through here (runs, ``validate``, ``plan``, ``benchbed.testing``),
        so a broken plugin data set is reported before anything trains on it.

        Raises:
            DataContractError: ``load`` returned something that is not a ``DataBundle``, or one that breaks
                the contract; the message names the data set, its plugin and every problem.
        """
        bundle = self.dataset(name).factory(**params).load(seed=seed)
        if isinstance(bundle, DataBundle):
            problems = bundle.problems()
        else:
            problems = [f"load(seed) returned a {type(bundle).__name__}, not a benchbed.contracts.DataBundle"]
        if problems:
            prov = self.get("dataset", name).provenance
            raise DataContractError(f"data set {name!r} (plugin {prov.plugin!r}, {prov.distribution} "
                                    f"{prov.version}) breaks the data-set contract: " + "; ".join(problems))
        return bundle
