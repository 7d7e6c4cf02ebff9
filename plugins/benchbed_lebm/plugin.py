"""Registers the lebm components (the same entry-point path a third-party plugin uses)."""

from __future__ import annotations

from collections.abc import Callable

from benchbed import ModelSpec, hookimpl


@hookimpl
def benchbed_register_models(register: Callable[[ModelSpec], None]) -> None:
    """LEBM: generator with a latent-space EBM prior (Pang et al., NeurIPS 2020)."""
    from benchbed_lebm.lebm import LEBM

    register(
        ModelSpec(
            name="lebm",
            factory=LEBM,
            test_params={"latent_dim": 2, "hidden": (16,), "ngf": 4, "energy_hidden": (16,), "prior_steps": 3,
                         "posterior_steps": 3, "partition_samples": 256},
            description="latent-space EBM prior (Pang et al. 2020): short-run prior and posterior dynamics",
            tags=("ebm", "generator", "mcmc"),
            uses_sampler=True,
            default_sampler="langevin",
            sampler_roles=("prior", "posterior"),
        )
    )
