"""SRI short-run inference: the KL estimate against the closed form on a linear-Gaussian posterior,
learning the step size, and the learn/sample API contract."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from benchbed.blocks.transitions import dynamics_mode
from benchbed_samplers.short_run import ShortRun


@dataclass(frozen=True)
class LinearGaussian:
    """z ~ N(0, I_d), x = W z + sigma n: the posterior is N(mu, P^-1) with P = I + W^T W / sigma^2.

    Langevin on it is linear: z_{k+1} - mu = A (z_k - mu) + s eps, A = I - (s^2/2) P, so q_s is
    Gaussian and its KL to the posterior has a closed form, computed in P's eigenbasis (A shares
    it), which stays exact even when A^K underflows.
    """

    w: torch.Tensor
    x: torch.Tensor
    sigma: float

    @property
    def precision(self) -> torch.Tensor:
        d = self.w.shape[1]
        return torch.eye(d, dtype=torch.float64) + self.w.T.double() @ self.w.double() / self.sigma**2

    @property
    def mu(self) -> torch.Tensor:
        return torch.linalg.solve(self.precision, self.w.T.double() @ self.x.double() / self.sigma**2)

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) [B] for z [B, d], normalised (so F + log p(x) = KL)."""
        n, d = self.w.shape
        resid = self.x - z @ self.w.T
        const = -0.5 * n * math.log(2 * math.pi * self.sigma**2) - 0.5 * d * math.log(2 * math.pi)
        return -0.5 * (z**2).sum(1) - 0.5 * (resid**2).sum(1) / self.sigma**2 + const

    def log_evidence(self) -> float:
        n = self.w.shape[0]
        cov = self.w @ self.w.T + self.sigma**2 * torch.eye(n)
        return float(torch.distributions.MultivariateNormal(torch.zeros(n), cov).log_prob(self.x))

    def exact_kl(self, s: float, n_steps: int, noise: bool = True) -> float:
        """KL(q_s || p(z|x)) after n_steps from z0 ~ N(0, I)."""
        lam, u = torch.linalg.eigh(self.precision)
        alpha = 1.0 - 0.5 * s**2 * lam  # eigenvalues of A
        var = alpha ** (2 * n_steps)  # C_K in the eigenbasis (C_0 = I)
        if noise:
            var = var + s**2 * sum(alpha ** (2 * j) for j in range(n_steps))
        gap = u.T @ self.mu * alpha**n_steps  # u^T (mu - m_K), with m_K - mu = A^K (0 - mu)
        return float(0.5 * ((lam * var).sum() + (lam * gap**2).sum() - len(lam) - (lam * var).log().sum()))

    def gaussian_fit_kl(self, z: torch.Tensor) -> float:
        """KL(N(mean(z), cov(z)) || posterior): how far samples z [N, d] are from the posterior."""
        c, diff = torch.cov(z.double().T), self.mu - z.double().mean(0)
        p = self.precision
        return float(0.5 * (torch.trace(p @ c) + diff @ p @ diff - len(diff) - torch.logdet(p @ c)))


@pytest.fixture
def problem() -> LinearGaussian:
    """d = 4 latents, n = 6 observations; posterior precision eigenvalues ~2.8 to ~51."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, generator=gen)
    x = w @ torch.randn(4, generator=gen) + 0.5 * torch.randn(6, generator=gen)
    return LinearGaussian(w=w, x=x, sigma=0.5)


@pytest.mark.parametrize("noise", [True, False])
@pytest.mark.parametrize("step", [0.1, 0.18])
def test_free_energy_matches_closed_form_kl(problem: LinearGaussian, noise: bool, step: float) -> None:
    """F(s) + log p(x) estimates KL(q_s || p) without bias here: 6000 chains, K = 10.

    Tolerance: 4 standard errors of the Monte Carlo mean + 0.01 (0.06 to 0.27 nats here).
    """
    torch.manual_seed(0)
    sampler = ShortRun(n_steps=10, step_size=step, noise=noise)
    with dynamics_mode():
        free = sampler.free_energy(problem.log_joint, torch.randn(6000, 4)).detach()
    estimate = float(free.mean()) + problem.log_evidence()
    std_err = float(free.std()) / math.sqrt(len(free))
    assert std_err < 0.07  # keeps the tolerance meaningful
    assert estimate == pytest.approx(problem.exact_kl(step, 10, noise), abs=4 * std_err + 0.01)


def test_learned_step_settles_at_the_kl_minimiser(problem: LinearGaussian) -> None:
    """From a bad step (0.02), 100 learn() calls (32 chains each) bring s to the grid minimiser of the
    exact KL within 8%, the last 30 values vary by < 3% (relative std), and its samples are much
    closer to the exact posterior than the bad step's (Gaussian-fit KL, 4000 chains)."""
    torch.manual_seed(0)
    sampler = ShortRun(n_steps=10, step_size=0.02, lr=0.1)
    history = []
    for _ in range(100):
        value = sampler.learn(problem.log_joint, torch.randn(32, 4))
        assert math.isfinite(value)
        history.append(sampler.step_size)
    grid = torch.linspace(0.02, 0.28, 261).tolist()
    best = min(grid, key=lambda s: problem.exact_kl(s, 10))
    assert sampler.step_size == pytest.approx(best, rel=0.08)
    tail = torch.tensor(history[-30:])
    assert float(tail.std() / tail.mean()) < 0.03
    assert problem.exact_kl(sampler.step_size, 10) < 0.1 * problem.exact_kl(0.02, 10)

    z0 = torch.randn(4000, 4)
    learned = sampler.sample(problem.log_joint, z0)
    bad = ShortRun(n_steps=10, step_size=0.02).sample(problem.log_joint, z0)
    assert learned.diagnostics["step_size"] == pytest.approx(sampler.step_size)
    assert problem.gaussian_fit_kl(learned.z) < 0.1 * problem.gaussian_fit_kl(bad.z)
    assert problem.gaussian_fit_kl(learned.z) < 1.0


def test_learn_touches_only_the_step_size_under_any_caller() -> None:
    """learn() under no_grad / inference_mode: log_step_size moves, the decoder's weights get no .grad."""
    decoder = nn.Linear(3, 5)
    x = torch.randn(4, 5)

    def log_joint(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z**2).sum(1) - ((x - decoder(z)) ** 2).sum(1)

    sampler = ShortRun(n_steps=3, step_size=0.1, lr=0.05)
    before = sampler.step_size
    with torch.no_grad():
        sampler.learn(log_joint, torch.randn(4, 3))
    with torch.inference_mode():
        sampler.learn(log_joint, torch.randn(4, 3))
        res = sampler.sample(log_joint, torch.randn(4, 3))
    assert sampler.step_size != before
    assert all(p.grad is None for p in decoder.parameters())
    assert res.z.shape == (4, 3) and not res.z.requires_grad
    assert {"steps", "step_size", "final_log_density"} <= set(res.diagnostics)


def test_module_state_and_guards() -> None:
    """The step size is a parameter in state_dict; too-large latents and blown-up chains are handled."""
    sampler = ShortRun(step_size=0.05, max_learn_dim=8)
    assert set(sampler.state_dict()) == {"log_step_size"}
    assert sum(p.numel() for p in sampler.parameters()) == 1
    with pytest.raises(ValueError, match="short_run.*latent size 9 exceeds max_learn_dim=8"):
        sampler.learn(lambda z: -(z**2).sum((1, 2)), torch.randn(2, 3, 3))

    blown = ShortRun(n_steps=20, step_size=5.0)
    value = blown.learn(lambda z: -(z**4).sum(1), torch.randn(4, 2))
    assert not math.isfinite(value)
    assert blown.step_size == pytest.approx(2.5)  # halved instead of an optimiser step


def test_checkpoint_roundtrip_continues_identically(problem: LinearGaussian) -> None:
    """state_dict + optimizer state (what a model's checkpoint holds) restore the learning exactly."""
    first = ShortRun(n_steps=5, step_size=0.05, lr=0.1)
    for _ in range(3):
        first.learn(problem.log_joint, torch.randn(8, 4))
    second = ShortRun(n_steps=5, step_size=0.3, lr=0.1)
    # deepcopy: as after torch.save/load (Adam would otherwise share its moment tensors).
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    second.optimizer.load_state_dict(copy.deepcopy(first.optimizer.state_dict()))
    assert second.step_size == first.step_size
    z0 = torch.randn(8, 4)
    for sampler in (first, second):
        sampler.learn(problem.log_joint, z0, generator=torch.Generator().manual_seed(5))
    assert second.step_size == pytest.approx(first.step_size, rel=1e-6)
