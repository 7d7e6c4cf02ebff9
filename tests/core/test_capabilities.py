"""Typed capabilities: one protocol per capability, the check of declared methods, and metric
requirements with alternatives (``AnyOf``) as the grid reads them."""

from __future__ import annotations

import itertools

import pytest
import torch

from benchbed import MetricSpec
from benchbed.contracts import (
    CAPABILITY_PROTOCOLS,
    Capability,
    DatasetInfo,
    HasLogJoint,
    HasLogPartition,
    HasLogPrior,
    HasSample,
    missing_methods,
    protocol_methods,
)
from benchbed.errors import NotApplicable, PluginError
from benchbed.grid import incompatibility
from benchbed.plugins import load_registry
from benchbed.specs import AnyOf

VECTOR = DatasetInfo("toy", (2,), "vector", n_classes=3)
IMAGE = DatasetInfo("toy_img", (1, 4, 4), "image", n_classes=3)


class PriorModel:
    """Declares sample, log_joint and log_prior, and has every method they stand for."""

    capabilities = frozenset({"sample", "log_joint", "log_prior"})

    def sample(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 2)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0])

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0])

    def sample_prior_base(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 1)


class NoBase:
    """Declares log_prior but lacks the sample_prior_base it implies."""

    capabilities = frozenset({"log_prior", "log_partition"})

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0])

    def log_partition(self, n: int) -> tuple[float, int]:
        return 0.0, n


def test_every_capability_has_a_protocol_with_its_methods() -> None:
    assert set(CAPABILITY_PROTOCOLS) == set(Capability)
    for cap, proto in CAPABILITY_PROTOCOLS.items():
        assert cap.value in protocol_methods(proto), cap
    assert protocol_methods(HasLogPrior) == ("log_prior", "sample_prior_base")
    assert protocol_methods(HasLogPartition) == ("log_partition", "log_prior", "sample_prior_base")


def test_protocols_and_check_accept_a_conforming_model() -> None:
    model = PriorModel()
    assert isinstance(model, HasSample) and isinstance(model, HasLogJoint) and isinstance(model, HasLogPrior)
    assert missing_methods(model) == {}


def test_check_names_the_missing_methods() -> None:
    model = NoBase()
    assert not isinstance(model, HasLogPrior) and not isinstance(model, HasLogPartition)
    assert missing_methods(model) == {"log_prior": ["sample_prior_base"], "log_partition": ["sample_prior_base"]}

    class Liar:
        capabilities = frozenset({"sample", "telepathy"})  # unknown names are not this check's business

    assert missing_methods(Liar()) == {"sample": ["sample"]}
    assert missing_methods(object()) == {}


def test_registered_models_have_their_declared_methods() -> None:
    registry = load_registry(strict=True)
    for name in registry.names("model"):
        model = registry.model(name).factory()
        assert missing_methods(model) == {}, name


def _spec(requires: object) -> MetricSpec:
    return MetricSpec(name="m", factory=dict, higher_is_better=True, requires=requires)  # type: ignore[arg-type]


def test_plain_set_still_means_all_of() -> None:
    spec = _spec(frozenset({"sample", "reconstruct"}))
    assert spec.requires == frozenset({"sample", "reconstruct"}) and spec.alternatives == (spec.requires,)
    assert incompatibility(spec, {"sample", "reconstruct", "infer"}, VECTOR) is None
    assert incompatibility(spec, {"sample"}, VECTOR) == "model lacks reconstruct (required by m)"
    assert incompatibility(spec, set(), VECTOR) == "model lacks reconstruct, sample (required by m)"
    assert spec.requires_text == "reconstruct, sample"
    assert _spec(frozenset()).requires_text == "" and incompatibility(_spec(frozenset()), set(), VECTOR) is None


def test_any_of_alternatives() -> None:
    spec = _spec(AnyOf("log_likelihood", {"log_joint", "proposal"}, "sample"))
    assert incompatibility(spec, {"log_joint", "proposal"}, VECTOR) is None
    assert incompatibility(spec, {"sample"}, VECTOR) is None
    reason = incompatibility(spec, {"log_joint", "infer"}, VECTOR)
    assert reason == "model lacks log_likelihood, or log_joint+proposal, or sample (required by m)"
    assert spec.requires_text == "log_likelihood, or log_joint+proposal, or sample"
    # data reasons still apply once a capability alternative is met
    image_only = MetricSpec(name="m", factory=dict, higher_is_better=True, requires=AnyOf("sample"),
                            data_kinds=frozenset({"image"}))
    assert "applies to image data" in (incompatibility(image_only, {"sample"}, VECTOR) or "")


def test_unknown_or_malformed_requirements_are_plugin_errors() -> None:
    with pytest.raises(PluginError, match="telepathy"):
        _spec(AnyOf("sample", {"log_joint", "telepathy"}))
    with pytest.raises(PluginError, match="telepathy"):
        _spec(frozenset({"telepathy"}))
    with pytest.raises(PluginError):
        AnyOf()
    with pytest.raises(PluginError):
        AnyOf("sample", set())
    with pytest.raises(PluginError, match="requires must be"):
        _spec("sample")


def test_loglik_with_only_log_joint_and_proposal_is_compatible() -> None:
    registry = load_registry(strict=True)
    for name in ("loglik", "outlier_auroc"):
        assert incompatibility(registry.metric(name), {"log_joint", "proposal"}, VECTOR) is None
    reason = incompatibility(registry.metric("loglik"), set(), VECTOR)
    assert reason == ("model lacks log_likelihood, or log_joint+proposal, or log_joint+log_prior, or sample "
                      "(required by loglik)")
    assert incompatibility(registry.metric("loglik_bpd"), {"sample"}, IMAGE) is None
    assert "anomaly_score, or" in (incompatibility(registry.metric("outlier_auprc"), {"infer"}, VECTOR) or "")


def test_declared_alternatives_match_what_the_metrics_choose() -> None:
    """For every set of capabilities, the spec admits a model exactly when the metric's own "auto"
    choice finds an estimator/score, so the n/a verdicts are those of the choosers."""
    from benchbed_metrics.loglik import choose_estimator
    from benchbed_metrics.outlier import choose_score

    registry = load_registry(strict=True)
    names = [c.value for c in Capability]

    def chooses(choose: object, caps: set[str]) -> bool:
        try:
            choose(caps)  # type: ignore[operator]
        except NotApplicable:
            return False
        return True

    for r in range(len(names) + 1):
        for combo in itertools.combinations(names, r):
            caps = set(combo)
            for metric in ("loglik", "loglik_bpd"):
                admitted = incompatibility(registry.metric(metric), caps, IMAGE) is None
                assert admitted == chooses(lambda c: choose_estimator(frozenset(c), "auto"), caps), (metric, caps)
            for metric in ("outlier_auroc", "outlier_auprc"):
                admitted = incompatibility(registry.metric(metric), caps, IMAGE) is None
                assert admitted == chooses(lambda c: choose_score(c, "auto", "auto"), caps), (metric, caps)
