"""The three flow models pass benchbed's conformance checks on vector and image data, with their test_params."""

from __future__ import annotations

import pytest

from benchbed.testing import check_model, load_registry_strict

SMALL_GMM = {"n_train": 256, "n_val": 64, "n_test": 64}


@pytest.mark.parametrize("name", ["flow", "fce", "flow_ebm"])
@pytest.mark.parametrize(("dataset", "dataset_params"), [("gmm8", SMALL_GMM), ("digits", {})])
def test_check_model(name: str, dataset: str, dataset_params: dict) -> None:
    spec = load_registry_strict().model(name)
    assert spec.test_params, f"{name} declares no test_params"
    model = check_model(name, dataset=dataset, params=dict(spec.test_params), dataset_params=dataset_params)
    assert set(model.capabilities) >= {"sample", "anomaly_score"}


def test_declared_capabilities_are_honest() -> None:
    """Only the flow's density is exact; the EBMs expose their estimated likelihoods outside the table."""
    reg = load_registry_strict()
    assert "log_likelihood" in reg.model("flow").factory.capabilities
    assert "log_likelihood" in reg.model("fce").factory.capabilities  # the flow half's exact density
    assert "log_likelihood" not in reg.model("flow_ebm").factory.capabilities
    spec = reg.model("flow_ebm")
    assert spec.uses_sampler and spec.default_sampler == "langevin" and spec.sampler_roles == ("latent",)
