"""Registers the built-in latent samplers (the same entry-point path a third-party plugin uses)."""

from __future__ import annotations

from collections.abc import Callable

from benchbed import SamplerSpec, hookimpl


@hookimpl
def benchbed_register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    """Register ``langevin``, ``hmc`` and ``short_run``."""
    from benchbed_samplers.hmc import HMC
    from benchbed_samplers.langevin import Langevin
    from benchbed_samplers.short_run import ShortRun

    register(
        SamplerSpec(
            name="langevin",
            factory=Langevin,
            test_params={"n_steps": 5},
            description="Short-run Langevin dynamics z += s^2/2 grad log p + s eps (optionally persistent)",
            tags=("langevin", "gradient", "unadjusted"),
        )
    )
    register(
        SamplerSpec(
            name="hmc",
            factory=HMC,
            test_params={"n_steps": 5, "n_leapfrog": 3, "adapt_steps": 2},
            description="Metropolis-corrected HMC (leapfrog) with dual-averaging step-size adaptation",
            tags=("hmc", "gradient", "metropolis"),
        )
    )
    register(
        SamplerSpec(
            name="short_run",
            factory=ShortRun,
            test_params={"n_steps": 5},
            description="SRI short-run Langevin whose step size is learned by minimising KL(q_s || p(z|x))",
            tags=("langevin", "gradient", "learned"),
        )
    )
