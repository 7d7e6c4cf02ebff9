"""The sampler contract, through the plugin interface: registration, conformance, role binding,
any latent shape, no_grad / inference_mode callers."""

from __future__ import annotations

import pytest
import torch

from benchbed.contracts import Sampler, SampleResult
from benchbed.errors import SuiteError
from benchbed.sampling import BoundSampler
from benchbed.testing import check_sampler, load_registry_strict

NAMES = ("langevin", "hmc", "short_run")


@pytest.fixture(scope="module")
def registry():  # noqa: ANN201 - benchbed.registry.Registry
    return load_registry_strict()


def test_registered_by_the_builtin_plugin(registry) -> None:
    assert set(NAMES) <= set(registry.names("sampler"))
    for name in NAMES:
        assert registry.get("sampler", name).provenance.plugin == "samplers"


@pytest.mark.parametrize("name", NAMES)
def test_conformance(name: str, registry) -> None:
    result = check_sampler(name, registry=registry)
    assert result.diagnostics["steps"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_role_binding_with_model_defaults(name: str, registry) -> None:
    """A model's role defaults (LEBM prior: 60 steps at 0.4) reach every sampler that has those
    settings; settings a sampler lacks are dropped; the suite's role table wins."""
    bound = BoundSampler(spec=registry.sampler(name), roles={"posterior": {"n_steps": 7}})
    prior = bound("prior", n_steps=60, step_size=0.4, persistent=False)
    posterior = bound("posterior", n_steps=20, step_size=0.1)
    assert isinstance(prior, Sampler)
    assert bound.resolved["prior"]["n_steps"] == 60 and bound.resolved["posterior"]["n_steps"] == 7
    assert prior.sample(lambda z: -(z**2).sum(1), torch.randn(3, 2)).diagnostics["step_size"] > 0
    assert posterior.n_steps == 7
    with pytest.raises(SuiteError, match="unknown parameter 'bogus'"):
        BoundSampler(spec=registry.sampler(name), params={"bogus": 1})("prior")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_image_shaped_latents_under_metric_callers(name: str, mode: str, registry) -> None:
    """z [B, C, H, W] in, same shape out, z0 untouched, detached, finite, diagnostics present."""
    spec = registry.sampler(name)
    sampler = spec.factory(n_steps=5)
    center = torch.linspace(-1, 1, 12).view(1, 3, 2, 2)

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((z - center) ** 2).sum((1, 2, 3))

    context = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with context():
        z0 = torch.randn(6, 3, 2, 2)
        before = z0.clone()
        result = sampler.sample(log_density, z0)
    assert isinstance(result, SampleResult)
    assert result.z.shape == z0.shape and torch.isfinite(result.z).all()
    assert not result.z.requires_grad and torch.equal(z0, before)
    assert {"steps", "step_size", "final_log_density"} <= set(result.diagnostics)
    assert all(isinstance(v, float) for v in result.diagnostics.values())
    if name == "hmc":
        assert 0.0 <= result.diagnostics["acceptance_rate"] <= 1.0
