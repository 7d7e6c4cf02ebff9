"""benchbed's built-in flow models: ``flow`` (exact-likelihood neural spline flow), ``fce`` (flow contrastive
estimation) and ``flow_ebm`` (an EBM with a flow backbone sampled by neural-transport MCMC).

Registered through the ``benchbed`` entry-point group (``flows = "benchbed_flows.plugin"``) exactly as a
third-party plugin; imports only ``benchbed`` and zuko.  Measurements: ``docs/flows.md``.
"""
