"""Binds a suite's sampler entry to a model: one sampler object per role (prior, posterior, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchbed.contracts import Sampler
from benchbed.params import resolve
from benchbed.specs import SamplerSpec


@dataclass
class BoundSampler:
    """Implements :class:`benchbed.contracts.SamplerProvider` for one suite sampler entry.

    Precedence of a role's settings: the model's defaults for that role < the suite's sampler
    parameters < the suite's table for that role.  The resolved settings of every role a model
    asked for are kept in ``resolved`` and stored with the result.
    """

    spec: SamplerSpec
    params: Mapping[str, Any] = field(default_factory=dict)
    roles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    resolved: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, role: str, **defaults: Any) -> Sampler:
        merged = {**defaults, **self.params, **self.roles.get(role, {})}
        # Model defaults may name settings this sampler lacks (e.g. a step-size target for HMC
        # only); drop those so that any sampler can drive any model.
        from benchbed.params import schema

        known = schema(self.spec.factory)
        own = {k: v for k, v in merged.items() if k in known or k in self.params or k in self.roles.get(role, {})}
        values = resolve(self.spec.factory, own, what=f"sampler {self.spec.name!r} (role {role!r})")
        self.resolved[role] = values
        return self.spec.factory(**values)
