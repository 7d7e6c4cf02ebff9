"""Registers the ebm components (the same entry-point path a third-party plugin uses).

Models: ``hlebm`` (multi-layer generator with a joint latent EBM prior), ``svebm`` (symbol-vector
coupling latent EBM, semi-supervised), ``svebm_supervised`` (its classifier on the labels alone),
``triangle`` (divergence triangle), ``short_run_ebm`` (data-space
EBM learned with short-run MCMC from noise), ``vae_lebm`` (VAE jointly trained with an EBM on (x, z)).
Metric: ``accuracy``.
Model classes are imported inside the hooks so registering stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from benchbed import MetricSpec, ModelSpec, hookimpl


@hookimpl
def benchbed_register_models(register: Callable[[ModelSpec], None]) -> None:
    from benchbed_ebm.hlebm import HLEBM
    from benchbed_ebm.short_run_ebm import ShortRunEBM
    from benchbed_ebm.svebm import SVEBM
    from benchbed_ebm.svebm_supervised import SVEBMSupervised
    from benchbed_ebm.triangle import DivergenceTriangle
    from benchbed_ebm.vae_lebm import VAELEBM

    register(ModelSpec(
        name="hlebm", factory=HLEBM,
        test_params={"latent_dims": (2, 2), "hidden": 16, "channels": 4, "cond_width": 16, "cond_layers": 1,
                     "ebm_widths": (16,), "ebm_layers": (1,)},
        uses_sampler=True, default_sampler="langevin", tags=("ebm", "hierarchical"),
        sampler_roles=("prior", "posterior"),
        description="multi-layer generator with a joint latent-space EBM prior (Cui et al. 2023), MLE or variational",
    ))
    register(ModelSpec(
        name="svebm", factory=SVEBM,
        test_params={"latent_dim": 2, "hidden": 16, "channels": 4, "ebm_width": 16},
        uses_sampler=True, default_sampler="langevin", tags=("ebm", "semi-supervised"),
        sampler_roles=("prior",),
        description="latent EBM of symbol-vector coupling (Pang & Wu 2021), semi-supervised classifier",
    ))
    register(ModelSpec(
        name="svebm_supervised", factory=SVEBMSupervised,
        test_params={"latent_dim": 2, "hidden": 16, "channels": 4, "ebm_width": 16},
        tags=("baseline", "semi-supervised"),
        description="svebm's encoder and class head trained on its labels alone: a supervised-only baseline for svebm",
    ))
    register(ModelSpec(
        name="triangle", factory=DivergenceTriangle,
        test_params={"latent_dim": 2, "hidden": 16, "channels": 4},
        tags=("ebm", "vae"),
        description="divergence triangle (Han et al. 2019): generator + inference + data-space EBM, no MCMC",
    ))
    register(ModelSpec(
        name="short_run_ebm", factory=ShortRunEBM,
        test_params={"n_steps": 5, "n_f": 4, "hidden": 16, "bank_size": 64, "infer_steps": 2},
        uses_sampler=True, default_sampler="langevin", sampler_roles=("data",), tags=("ebm", "data-space"),
        description="data-space EBM learned by short-run MCMC from noise (Nijkamp et al. 2019, 2020); "
                    "the chain from noise is the generator",
    ))
    register(ModelSpec(
        name="vae_lebm", factory=VAELEBM,
        test_params={"latent_dim": 2, "hidden": 16, "channels": 4, "energy_width": 16},
        tags=("ebm", "vae"),
        description="VAE trained jointly with an EBM on (x, z) by a divergence triangle (Han et al. 2020)",
    ))


@hookimpl
def benchbed_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    from benchbed_ebm.accuracy import Accuracy

    register(MetricSpec(
        name="accuracy", factory=Accuracy, higher_is_better=True, requires=frozenset({"classify"}),
        needs_labels=True, label="Accuracy", tags=("classification",),
        description="test-split accuracy of classify(); reference row: logistic regression on the same labels",
    ))
