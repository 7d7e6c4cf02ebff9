"""The public transition functions of ``benchbed.blocks.transitions`` against hand-computed references."""

from __future__ import annotations

import math

import pytest
import torch

from benchbed.blocks.transitions import (
    dynamics_mode,
    gradient_evaluator,
    hmc_step,
    hmc_transition,
    langevin_chain,
    langevin_update,
    start_chains,
)


def _std_normal(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z**2).sum(1)


def test_langevin_update_is_the_equation_in_place() -> None:
    """z + (s^2/2) g + s eps, with eps the generator's next normal draw; noise=False drops s eps."""
    z = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    g = torch.tensor([[0.3, 0.1], [-1.0, 2.0]])
    s = 0.4
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(7))
    expected = z + 0.5 * s * s * g + s * eps
    out = langevin_update(z.clone(), g, step_size=s, noise=True, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, expected)
    w = z.clone()
    returned = langevin_update(w, g, step_size=s, noise=False)
    assert returned is w
    torch.testing.assert_close(w, z + 0.5 * s * s * g)


def test_noiseless_langevin_chain_contracts_geometrically_on_a_gaussian() -> None:
    """On N(0, I) the drift is -z, so z_k = z_0 (1 - s^2/2)^k exactly; value/grad are at z_{K-1}."""
    z0 = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    s, k = 0.5, 6
    with dynamics_mode():
        z, grad, value = langevin_chain(_std_normal, start_chains(z0, "t"), n_steps=k, step_size=s, noise=False)
    factor = 1.0 - s * s / 2.0
    torch.testing.assert_close(z, z0 * factor**k)
    before_last = z0 * factor ** (k - 1)
    assert grad is not None and value is not None
    torch.testing.assert_close(grad, -before_last)
    torch.testing.assert_close(value, _std_normal(before_last))
    with dynamics_mode():
        same, none_grad, none_value = langevin_chain(_std_normal, start_chains(z0, "t"), n_steps=0, step_size=s,
                                                     noise=True)
    assert torch.equal(same, z0) and none_grad is None and none_value is None


def test_noisy_langevin_chain_reaches_the_discretised_stationary_variance() -> None:
    """ULA on N(0, 1): z' = a z + s eps with a = 1 - s^2/2, stationary variance s^2 / (1 - a^2)."""
    s = 0.5
    a = 1.0 - s * s / 2.0
    stationary = s * s / (1.0 - a * a)
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode(), dynamics_mode():
        z, _, _ = langevin_chain(_std_normal, torch.zeros(20000, 1), n_steps=60, step_size=s, noise=True,
                                 generator=gen)
    assert float(z.var()) == pytest.approx(stationary, rel=0.04)  # ~ 5 standard errors of a variance
    assert abs(float(z.mean())) < 0.04


def test_hmc_step_with_one_leapfrog_matches_the_hand_computed_proposal() -> None:
    """L = 1 on N(0, I): p1/2 = p0 - eps z/2, z1 = z + eps p1/2, p1 = p1/2 - eps z1/2, and the
    acceptance probability is min(1, exp(H0 - H1)) with H = |z|^2/2 + |p|^2/2."""
    z = torch.tensor([[1.0, -0.5], [0.2, 2.0], [-1.5, 0.3]])
    step = torch.tensor([0.3, 0.8, 1.9])
    seed = 11
    gen = torch.Generator().manual_seed(seed)
    p0 = torch.randn(z.shape, generator=gen)
    u = torch.rand(3, generator=gen)
    eps = step[:, None]
    p_half = p0 - 0.5 * eps * z
    z1 = z + eps * p_half
    p1 = p_half - 0.5 * eps * z1
    h0 = 0.5 * (z**2).sum(1) + 0.5 * (p0**2).sum(1)
    h1 = 0.5 * (z1**2).sum(1) + 0.5 * (p1**2).sum(1)
    prob = torch.exp(torch.clamp(h0 - h1, max=0.0))
    accept = u < prob
    with dynamics_mode():
        gen = torch.Generator().manual_seed(seed)
        new, logp, grad, acc = hmc_step(_std_normal, z, _std_normal(z), -z, step, 1, gen)
    torch.testing.assert_close(acc, prob)
    torch.testing.assert_close(new, torch.where(accept[:, None], z1, z))
    torch.testing.assert_close(logp, _std_normal(new))
    torch.testing.assert_close(grad, -new)


def test_hmc_step_rejects_non_finite_proposals() -> None:
    """A log-density that is NaN away from the start: acceptance 0, the chain stays put."""

    def cliff(z: torch.Tensor) -> torch.Tensor:
        value = -0.5 * (z**2).sum(1)
        return torch.where(z.abs().amax(1) > 0.05, torch.full_like(value, math.nan), value)

    z = torch.zeros(4, 2)
    with dynamics_mode():
        new, logp, _, acc = hmc_step(cliff, z, cliff(z), torch.zeros_like(z), torch.full((4,), 1.0), 2)
    assert torch.equal(acc, torch.zeros(4)) and torch.equal(new, z) and torch.equal(logp, cliff(z))


def test_hmc_transition_keeps_an_exact_gaussian_invariant() -> None:
    """Exact N(0, diag(1, 4)) draws stay N(0, diag(1, 4)) after 5 transitions at a fixed step size."""
    var = torch.tensor([1.0, 4.0])

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z**2 / var).sum(1)

    gen = torch.Generator().manual_seed(3)
    z = torch.randn(20000, 2, generator=gen) * var.sqrt()
    with torch.inference_mode():
        for _ in range(5):
            z, acc = hmc_transition(log_density, z, 0.7, 3, generator=gen)
    assert 0.3 < float(acc.mean()) < 1.0
    torch.testing.assert_close(z.var(0), var, rtol=0.05, atol=0.0)  # ~ 5 standard errors
    assert z.mean(0).abs().max() < 0.06


def test_gradient_evaluator_uses_value_and_grad_without_autograd() -> None:
    """A GradLogDensity is asked directly (the value only on request); a plain callable goes through autograd."""
    calls: list[bool] = []

    class Fast:
        def __call__(self, z: torch.Tensor) -> torch.Tensor:
            raise AssertionError("the fast path must not call the density")

        def value_and_grad(self, z: torch.Tensor, *, value: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
            calls.append(value)
            return (_std_normal(z) if value else None), -z

    z = torch.randn(5, 3)
    value, grad = gradient_evaluator(Fast(), "t")(z, False)
    assert value is None and torch.equal(grad, -z) and calls == [False] and not z.requires_grad
    with dynamics_mode():
        value, grad = gradient_evaluator(_std_normal, "t")(z, True)
    assert value is not None
    torch.testing.assert_close(value, _std_normal(z))
    torch.testing.assert_close(grad, -z)


def test_hmc_transition_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_leapfrog"):
        hmc_transition(_std_normal, torch.zeros(2, 2), 0.1, 0)
    with pytest.raises(ValueError, match="step_size"):
        hmc_transition(_std_normal, torch.zeros(2, 2), torch.ones(3), 1)
    with pytest.raises(ValueError, match="z0"):
        hmc_transition(_std_normal, torch.zeros(2), 0.1, 1)
