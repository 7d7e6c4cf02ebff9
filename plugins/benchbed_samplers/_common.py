"""Settings handling shared by the samplers.

The chain machinery (grad-enabled contexts, chain starts, gradient evaluation, the Langevin and HMC
transitions) is public toolkit code in :mod:`benchbed.blocks.transitions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply_overrides(settings: Mapping[str, Any], overrides: Mapping[str, Any], who: str) -> dict[str, Any]:
    """Per-call overrides of a sampler's settings (``sampler.sample(f, z0, n_steps=200)``).

    Returns ``settings`` updated with every override that is not ``None``.

    Raises:
        TypeError: an override names a setting the sampler does not have.
    """
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise TypeError(
            f"sampler {who!r}: unknown sample() option(s) {unknown}; valid: {sorted(settings)} and 'generator'"
        )
    return {**settings, **{k: v for k, v in overrides.items() if v is not None}}
