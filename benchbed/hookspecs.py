"""The hook specifications: the whole contract between benchbed and its plugins.

A plugin implements any of these with ``@benchbed.hookimpl`` and calls ``register(spec)`` once per
component.  Registering must be cheap: build the spec, do no torch work and touch no files.
Only :mod:`benchbed.plugins` calls ``pm.hook.benchbed_*``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from benchbed import PROJECT_NAME
from benchbed.specs import ClaimSpec, DatasetSpec, MetricSpec, ModelSpec, SamplerSpec, TrackerSpec

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def benchbed_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register latent-variable models: call ``register(ModelSpec(...))`` once per model."""


@hookspec
def benchbed_register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    """Register latent samplers (Langevin, HMC, ...): ``register(SamplerSpec(...))`` per sampler."""


@hookspec
def benchbed_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register data sets: ``register(DatasetSpec(...))`` per data set."""


@hookspec
def benchbed_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register evaluation metrics: ``register(MetricSpec(...))`` per metric."""


@hookspec
def benchbed_register_claims(register: Callable[[ClaimSpec], None]) -> None:
    """Register published claims: ``register(ClaimSpec(...))`` per claim.  A claim applies to every suite
    that has its data set, its metric and both entries; a suite's ``claims.toml`` overrides it by id."""


@hookspec
def benchbed_register_trackers(register: Callable[[TrackerSpec], None]) -> None:
    """Register experiment trackers: ``register(TrackerSpec(...))`` per tracker (see :mod:`benchbed.tracking`)."""
