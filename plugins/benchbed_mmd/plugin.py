"""Registers the mmd components (the same entry-point path a third-party plugin uses).

Models: ``gmmn``, ``gmmn_ae``, ``jgmmn`` (no dynamics: ``uses_sampler=False``).
Metric: ``mmd`` (MMD^2 of model samples against the test split, lower is better).
Claim: ``gmmn_ae_parzen`` (Li et al. 2015: GMMN+AE above GMMN in Parzen log-likelihood on digits).
Registering is cheap: the spec modules are imported here, but nothing is built.
"""

from __future__ import annotations

from collections.abc import Callable

from benchbed import MetricSpec, ModelSpec, hookimpl
from benchbed.specs import ClaimSpec


@hookimpl
def benchbed_register_models(register: Callable[[ModelSpec], None]) -> None:
    """The GMMN family."""
    from benchbed_mmd.gmmn import GMMN
    from benchbed_mmd.gmmn_ae import GMMNAE
    from benchbed_mmd.jgmmn import JGMMN

    register(ModelSpec(
        name="gmmn", factory=GMMN, test_params={"noise_dim": 2, "hidden": (16,)},
        tags=("mmd", "implicit"),
        description="GMMN (Li et al. 2015): uniform noise -> MLP, trained on sqrt(MMD^2), multi-scale kernel",
    ))
    register(ModelSpec(
        name="gmmn_ae", factory=GMMNAE,
        test_params={"code_dim": 2, "ae_hidden": (16,), "noise_dim": 2, "hidden": (16,)},
        tags=("mmd", "implicit", "autoencoder"),
        description="GMMN+AE (Li et al. 2015): GMMN in the code space of a frozen dropout auto-encoder",
    ))
    register(ModelSpec(
        name="jgmmn", factory=JGMMN, test_params={"latent_dim": 2, "hidden": (16,), "channels": 4},
        tags=("mmd", "inference"),
        description="JGMMN (IJCAI 2018, reconstructed): joint MMD of (G(z),z) vs (x,E(x)) + prior regulariser",
    ))


@hookimpl
def benchbed_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Sample MMD against the test split."""
    from benchbed_mmd.metric import SampleMMD

    register(MetricSpec(
        name="mmd", factory=SampleMMD, test_params={"n_samples": 64, "n_reference": 64},
        higher_is_better=False, requires=frozenset({"sample"}),
        label="MMD²", tags=("sample-quality",),
        description="MMD^2 (unbiased, multi-scale Gaussian kernel, median heuristic) of samples vs the test split",
    ))


@hookimpl
def benchbed_register_claims(register: Callable[[ClaimSpec], None]) -> None:
    """Li et al. 2015's comparison of its two models; it applies to every suite with rows ``gmmn`` and
    ``gmmn_ae``, the data set ``digits`` and a metric labelled ``loglik`` (``docs/results.md#claims``)."""
    register(ClaimSpec(
        id="gmmn_ae_parzen", paper="Li, Swersky and Zemel 2015", dataset="digits", metric="loglik",
        statement="GMMN+AE has a higher Parzen-window test log-likelihood than GMMN (MNIST in the paper)",
        better="gmmn_ae", worse="gmmn",
    ))
