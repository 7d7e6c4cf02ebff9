"""Registers the generators components (the same entry-point path a third-party plugin uses)."""

from __future__ import annotations

from collections.abc import Callable

from benchbed import ModelSpec, hookimpl


@hookimpl
def benchbed_register_models(register: Callable[[ModelSpec], None]) -> None:
    """VAE (encoder, no dynamics), ABP (persistent posterior Langevin) and SRI (short-run inference)."""
    from benchbed_generators.abp import ABP
    from benchbed_generators.sri import SRI
    from benchbed_generators.vae import VAE

    register(
        ModelSpec(
            name="vae",
            factory=VAE,
            test_params={"latent_dim": 2, "hidden": (16,)},
            description="Gaussian VAE (Kingma & Welling 2014): amortised encoder, Gaussian decoder",
            tags=("vae", "generator", "encoder"),
        )
    )
    register(
        ModelSpec(
            name="abp",
            factory=ABP,
            test_params={"latent_dim": 2, "hidden": (16,), "n_steps": 3},
            description="alternating back-propagation (Han et al. 2017): persistent posterior Langevin + learning step",
            tags=("generator", "mcmc"),
            uses_sampler=True,
            default_sampler="langevin",
            sampler_roles=("posterior",),
        )
    )
    register(
        ModelSpec(
            name="sri",
            factory=SRI,
            test_params={"latent_dims": (2,), "hidden": (16,), "n_steps": 3, "learn_batch": 4},
            description="short-run inference (Nijkamp et al. 2019): Langevin from the prior, step size learned by KL",
            tags=("generator", "mcmc", "multilayer"),
            uses_sampler=True,
            default_sampler="short_run",
            samplers=("short_run",),
            sampler_roles=("posterior",),
        )
    )
