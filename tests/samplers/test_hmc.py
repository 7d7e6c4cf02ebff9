"""HMC: exactness of the Metropolis-corrected kernel, adaptation to the target acceptance, the
function-level transition used by AIS, and its cost."""

from __future__ import annotations

import pytest
import torch

from benchbed.blocks.transitions import hmc_transition
from benchbed_samplers.hmc import HMC


def _exact_draws(target, n: int) -> torch.Tensor:
    return target.mean + torch.randn(n, 2) @ torch.linalg.cholesky(target.cov).T


def test_adapted_hmc_matches_gaussian_and_hits_target_acceptance(gaussian2d) -> None:
    """1000 chains from N(0, 4I), 100 adapting + 50 sampling transitions of 5 leapfrog steps.

    Tolerances: mean 0.1, covariance entries 0.12 (~3-4 standard errors); acceptance after
    adaptation within 0.1 of the 0.65 target.
    """
    torch.manual_seed(0)
    res = HMC(n_steps=150, step_size=0.3, n_leapfrog=5, adapt_steps=100).sample(
        gaussian2d.log_density, 2.0 * torch.randn(1000, 2)
    )
    assert (res.z.mean(0) - gaussian2d.mean).abs().max() < 0.1
    assert (torch.cov(res.z.T) - gaussian2d.cov).abs().max() < 0.12
    assert abs(res.diagnostics["acceptance_rate"] - 0.65) < 0.1
    assert res.diagnostics["step_size"] != pytest.approx(0.3, rel=0.1)  # it did adapt


def test_adapted_hmc_matches_two_mode_mixture(mixture2d) -> None:
    """Both modes with the right weights; acceptance within 0.1 of a 0.8 target (any target works)."""
    torch.manual_seed(1)
    res = HMC(n_steps=150, step_size=0.3, n_leapfrog=5, adapt_steps=100, target_accept=0.8).sample(
        mixture2d.log_density, 2.0 * torch.randn(1000, 2)
    )
    assert (res.z.mean(0) - mixture2d.mean).abs().max() < 0.1
    assert (torch.cov(res.z.T) - mixture2d.cov).abs().max() < 0.12
    assert abs(res.diagnostics["acceptance_rate"] - 0.8) < 0.1


def test_fixed_large_step_kernel_keeps_the_target_exactly(gaussian2d) -> None:
    """adapt=False with a step at which unadjusted leapfrog is strongly biased (eps^2 lambda_max / 4
    = 0.8; with the accept step disabled the narrow variance measured 0.95 instead of 0.2): the
    Metropolis correction keeps exact draws exact.  4000 chains, 20 transitions; tolerance 0.06."""
    torch.manual_seed(2)
    res = HMC(n_steps=20, step_size=0.8, n_leapfrog=3, adapt=False, jitter=0.0).sample(
        gaussian2d.log_density, _exact_draws(gaussian2d, 4000)
    )
    assert res.diagnostics["step_size"] == pytest.approx(0.8)
    assert res.diagnostics["acceptance_rate"] < 0.9  # the correction was active
    narrow = torch.tensor([1.0, -1.0]) / 2**0.5  # eigenvector of variance 0.2
    assert (res.z @ narrow).var() == pytest.approx(0.2, abs=0.06)
    assert (torch.cov(res.z.T) - gaussian2d.cov).abs().max() < 0.1


def test_hmc_transition_function_for_ais(gaussian2d) -> None:
    """Shapes, per-chain step sizes, acceptance in [0, 1], inference_mode callers, z not modified."""
    with torch.inference_mode():
        z = _exact_draws(gaussian2d, 64)
        z_copy = z.clone()
        new, acc = hmc_transition(gaussian2d.log_density, z, torch.full((64,), 0.05), 4)
        tiny, acc_tiny = hmc_transition(gaussian2d.log_density, z, 1e-4, 2)
    assert new.shape == (64, 2) and acc.shape == (64,)
    assert ((acc >= 0) & (acc <= 1)).all() and acc_tiny.min() > 0.999
    assert torch.equal(z, z_copy) and not torch.equal(new, z)
    torch.testing.assert_close(tiny, z, atol=1e-2, rtol=0)


def test_gradient_evaluations_and_diagnostics() -> None:
    """1 + n_steps * n_leapfrog evaluations (the current gradient is carried over); keys present."""
    calls = []

    def log_density(z: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return -0.5 * (z**2).sum((1, 2, 3))

    with torch.no_grad():
        res = HMC(n_steps=4, n_leapfrog=3, adapt=False).sample(log_density, torch.randn(5, 1, 2, 2))
    assert len(calls) == 1 + 4 * 3 == res.diagnostics["grad_evals"]
    assert res.z.shape == (5, 1, 2, 2)
    assert {"steps", "step_size", "final_log_density", "acceptance_rate"} <= set(res.diagnostics)


def test_per_chain_adaptation_gives_different_scales_different_steps(monkeypatch) -> None:
    """Chains on targets of std 0.1 and 3 (one log-density, per-row scales) adapt 5x+ apart."""
    import benchbed_samplers.hmc as hmc_module

    scale = torch.tensor([[0.1], [3.0]]).repeat(50, 1)  # rows alternate between the two scales

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((z / scale) ** 2).sum(1)

    captured: dict[str, torch.Tensor] = {}
    original = hmc_module.DualAveraging.final

    def spy(self: hmc_module.DualAveraging) -> torch.Tensor:
        captured["final"] = original(self)
        return captured["final"]

    monkeypatch.setattr(hmc_module.DualAveraging, "final", spy)
    torch.manual_seed(3)
    HMC(n_steps=60, step_size=0.3, n_leapfrog=3, adapt_steps=60, adapt_per_chain=True).sample(
        log_density, torch.randn(100, 2)
    )
    steps = captured["final"].view(50, 2)
    assert steps[:, 1].median() > 5 * steps[:, 0].median()
