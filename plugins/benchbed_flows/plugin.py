"""Registers the flow models (the same entry-point path a third-party plugin uses)."""

from __future__ import annotations

from collections.abc import Callable

from benchbed import ModelSpec, hookimpl

# Tiny sizes for the conformance checks (benchbed.testing.check_model): a few seconds on one core.
_TINY_FLOW = {"transforms": 2, "hidden": (16,), "bins": 4}
_TINY_ENERGY = {"energy_hidden": (16,)}


@hookimpl
def benchbed_register_models(register: Callable[[ModelSpec], None]) -> None:
    """``flow``, ``fce`` and ``flow_ebm``."""
    from benchbed_flows.fce import FCE
    from benchbed_flows.flow import Flow
    from benchbed_flows.flow_ebm import FlowEBM

    register(
        ModelSpec(
            name="flow",
            factory=Flow,
            description="neural spline flow (zuko) trained by maximum likelihood: exact log-likelihood",
            tags=("flow", "exact-likelihood"),
            test_params=_TINY_FLOW,
        )
    )
    register(
        ModelSpec(
            name="fce",
            factory=FCE,
            description="flow contrastive estimation (Gao et al. 2020): EBM by NCE against an adversarial flow",
            tags=("flow", "ebm", "nce"),
            test_params={**_TINY_FLOW, **_TINY_ENERGY, "partition_samples": 1000},
        )
    )
    register(
        ModelSpec(
            name="flow_ebm",
            factory=FlowEBM,
            description="EBM tilting a flow, sampled by Langevin in the flow's latent space (neural transport MCMC)",
            tags=("flow", "ebm", "mcmc"),
            uses_sampler=True,
            default_sampler="langevin",
            sampler_roles=("latent",),
            test_params={**_TINY_FLOW, **_TINY_ENERGY},
        )
    )
