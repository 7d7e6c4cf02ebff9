"""Short-run Langevin: the update formula, convergence to known targets, cost, and error paths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbed.errors import Diverged
from benchbed_samplers.langevin import Langevin


def test_update_is_langevin_with_half_squared_step() -> None:
    """One step equals z + s^2/2 grad + s eps with the same noise draw (the update of ``docs/models.md#lebm``)."""
    prec = torch.tensor([[2.0, 0.5], [0.5, 1.0]])

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((z @ prec) * z).sum(1)

    z0 = torch.randn(5, 2)
    s = 0.3
    got = Langevin(n_steps=1, step_size=s).sample(log_density, z0, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(7))
    expected = z0 - 0.5 * s**2 * z0 @ prec + s * eps
    torch.testing.assert_close(got.z, expected)
    # noise=False: plain gradient ascent with learning rate s^2/2, three steps.
    got = Langevin(n_steps=3, step_size=s, noise=False).sample(log_density, z0).z
    step = torch.eye(2) - 0.5 * s**2 * prec
    torch.testing.assert_close(got, z0 @ step @ step @ step)


def test_matches_correlated_gaussian(gaussian2d) -> None:
    """2000 chains from an overdispersed N(0, 4I) reach N(m, S) (correlation 0.8).

    s = 0.15: the slowest direction relaxes in ~160 steps, 1000 steps leave e^-6 of the start;
    the discretisation inflates the narrow variance by ~3%.  Tolerances: 0.1 on the mean (~4.5
    standard errors), 0.1 on covariance entries (~3 standard errors).
    """
    torch.manual_seed(0)
    z0 = 2.0 * torch.randn(2000, 2)
    res = Langevin(n_steps=1000, step_size=0.15).sample(gaussian2d.log_density, z0)
    assert (res.z.mean(0) - gaussian2d.mean).abs().max() < 0.1
    assert (torch.cov(res.z.T) - gaussian2d.cov).abs().max() < 0.1
    # The start was far off, so this is not a test that passes by doing nothing.
    assert (torch.cov(z0.T) - gaussian2d.cov).abs().max() > 2.0


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_matches_two_mode_mixture(mixture2d) -> None:
    """Chains find both modes in the right proportions (0.3/0.7): mean and covariance of the mixture.

    Tolerances: 0.1 on the mean, 0.1 on covariance entries (2000 chains).
    """
    torch.manual_seed(1)
    z0 = 2.0 * torch.randn(2000, 2)
    res = Langevin(n_steps=1000, step_size=0.15).sample(mixture2d.log_density, z0, generator=_gen(2))
    assert (res.z.mean(0) - mixture2d.mean).abs().max() < 0.1
    assert (torch.cov(res.z.T) - mixture2d.cov).abs().max() < 0.1
    # final_log_density comes with the last gradient: at the state before the last update, which
    # is where the same chain stops after 999 steps.
    before = Langevin(n_steps=999, step_size=0.15).sample(mixture2d.log_density, z0, generator=_gen(2))
    expected = float(mixture2d.log_density(before.z).mean())
    assert res.diagnostics["final_log_density"] == pytest.approx(expected, rel=1e-5)
    assert float(mixture2d.log_density(res.z).mean()) != pytest.approx(expected, rel=1e-5)


def test_one_gradient_per_step_and_no_weight_gradients() -> None:
    """Exactly n_steps grad-enabled evaluations and nothing else; weights get no .grad."""
    energy = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    grad_modes: list[bool] = []

    def log_density(z: torch.Tensor) -> torch.Tensor:
        grad_modes.append(torch.is_grad_enabled())
        return -energy(z).squeeze(1)

    res = Langevin(n_steps=7, step_size=0.1).sample(log_density, torch.randn(4, 3))
    assert grad_modes == [True] * 7
    assert all(p.grad is None for p in energy.parameters())
    assert res.diagnostics["steps"] == 7 and res.diagnostics["grad_norm"] > 0


def test_persistent_chains_continue_exactly() -> None:
    """The sampler is stateless: a model's chain bank passed back in continues the same chain.

    Two calls of 5 steps (storing the result back, as ABP does) equal one call of 10 steps.
    """

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z**2).sum((1, 2))

    sampler = Langevin(n_steps=5, step_size=0.2, persistent=True)
    bank = torch.randn(6, 2, 2)
    start = bank.clone()
    gen = torch.Generator().manual_seed(3)
    for _ in range(2):
        bank[:] = sampler.sample(log_density, bank, generator=gen).z
    once = sampler.sample(log_density, start, n_steps=10, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(bank, once.z)
    assert once.diagnostics["persistent"] == 1.0


def test_inference_mode_caller_and_captured_tensors() -> None:
    """Under inference_mode the chain runs; an inference tensor saved for backward gets a clear hint."""
    with torch.inference_mode():
        target = torch.tensor([1.0, 2.0])
        z0 = torch.zeros(3, 2)
        ok = Langevin(n_steps=200, step_size=0.3, noise=False).sample(lambda z: -((z - target) ** 2).sum(1), z0)
        with pytest.raises(RuntimeError, match="inference_mode"):
            Langevin(n_steps=2).sample(lambda z: -(target * z**2).sum(1), z0)
    torch.testing.assert_close(ok.z, target.expand(3, 2), atol=1e-3, rtol=0)
    assert not ok.z.requires_grad and torch.equal(z0, torch.zeros(3, 2))


def test_errors_name_the_sampler() -> None:
    z0 = torch.randn(4, 2)
    with pytest.raises(ValueError, match="langevin.*shape \\[B\\]"):
        Langevin(n_steps=1).sample(lambda z: -(z**2).sum(), z0)
    with pytest.raises(ValueError, match="does not depend on z"):
        Langevin(n_steps=1).sample(lambda z: torch.zeros(4), z0)
    with pytest.raises(Diverged, match="langevin.*step_size=30"):
        Langevin(n_steps=50, step_size=30.0).sample(lambda z: -(z**4).sum(1), z0)
    with pytest.raises(TypeError, match="unknown sample\\(\\) option.*'n_leapfrog'"):
        Langevin().sample(lambda z: -(z**2).sum(1), z0, n_leapfrog=3)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        Langevin(step_size=0.0)
