"""Targets with closed-form moments for the sampler tests (the independent references)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch


@dataclass(frozen=True)
class Gaussian:
    """N(mean, cov) in d dimensions; ``log_density`` is normalised."""

    mean: torch.Tensor
    cov: torch.Tensor

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        return torch.distributions.MultivariateNormal(self.mean, self.cov).log_prob(z)


@dataclass(frozen=True)
class Mixture:
    """sum_i w_i N(m_i, std^2 I); exact mean and covariance by the law of total (co)variance."""

    weights: torch.Tensor  # [M]
    means: torch.Tensor  # [M, d]
    std: float

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        d = z.shape[1]
        sq = ((z.unsqueeze(1) - self.means) ** 2).sum(-1)  # [B, M]
        comp = -0.5 * sq / self.std**2 - d * math.log(self.std) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(comp + self.weights.log(), dim=1)

    @property
    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    @property
    def cov(self) -> torch.Tensor:
        d = self.means.shape[1]
        second = (self.weights[:, None, None] * (self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second + self.std**2 * torch.eye(d) - torch.outer(self.mean, self.mean)


@pytest.fixture
def gaussian2d() -> Gaussian:
    """Strongly correlated 2-D Gaussian (correlation 0.8): precision eigenvalues 0.56 and 5."""
    return Gaussian(mean=torch.tensor([1.0, -0.5]), cov=torch.tensor([[1.0, 0.8], [0.8, 1.0]]))


@pytest.fixture
def mixture2d() -> Mixture:
    """Two unequal modes 3.2 std apart: bimodal, with a barrier of about 1.3 nats, so chains mix."""
    return Mixture(weights=torch.tensor([0.3, 0.7]), means=torch.tensor([[-1.0, -0.5], [1.0, 0.5]]), std=0.7)
