"""Bottom-up amortised inference for a multi-layer generator (the variational scheme of ``docs/models.md#hlebm``).

q(z_1..z_L | x) = q(z_1 | x) prod_{l<L} q(z_{l+1} | z_l), each a diagonal Gaussian, as Cui et al.'s
``_Cifar10_netI`` (x -> z_1) and ``_netIzi_mlp`` (z_l -> z_{l+1}) in ``nets.py``.  The joint code is
flat, ``cat(z_1, ..., z_L)``, matching :class:`benchbed_ebm.joint_prior.JointLatentPrior`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from benchbed.blocks.gaussian import normal_log_prob
from benchbed_ebm.gaussian import LOG_SIGMA_MAX, SIGMA_FLOOR, ConditionalGaussian
from benchbed_ebm.nets import Encoder


class BottomUpInference(nn.Module):
    """``x_m [B, *D]`` (model scale) -> q(z | x) over the flat joint code ``[B, sum(dims)]``."""

    def __init__(self, shape: Sequence[int], dims: Sequence[int], *, width: int, cond_width: int,
                 cond_layers: int, skip: bool = False, conv: bool | None = None) -> None:
        super().__init__()
        self.dims = tuple(dims)
        self.first = Encoder(shape, 2 * self.dims[0], width=width, conv=conv)
        self.ups = nn.ModuleList(
            ConditionalGaussian(self.dims[l], self.dims[l + 1], width=cond_width, n_layers=cond_layers, skip=skip)
            for l in range(len(self.dims) - 1)
        )

    def first_params(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of q(z_1 | x), each ``[B, d_1]``; sigma = exp(log sigma) + 0.01 as in the code."""
        mu, log_sigma = self.first(x_m).chunk(2, dim=-1)
        return mu, log_sigma.clamp(max=LOG_SIGMA_MAX).exp() + SIGMA_FLOOR

    def posterior(self, x_m: torch.Tensor) -> BottomUpPosterior:
        """The distribution q(z | x) with batch shape ``[B]`` and event shape ``[sum(dims)]``."""
        mu, sigma = self.first_params(x_m)
        return BottomUpPosterior(mu, sigma, self.ups, self.dims)

    def mean_code(self, x_m: torch.Tensor) -> torch.Tensor:
        """Greedy point estimate: the mean of each layer given the mean of the layer below, ``[B, Z]``."""
        z, _ = self.first_params(x_m)
        zs = [z]
        for up in self.ups:
            z, _ = up(z)
            zs.append(z)
        return torch.cat(zs, dim=-1)


class BottomUpPosterior(Distribution):
    """q(z | x) for a batch of ``x``: ancestral bottom-up sampling and its exact log density.

    ``rsample(S)`` returns ``[*S, B, Z]``; ``log_prob(z [..., B, Z]) -> [..., B]``.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = True

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor, ups: nn.ModuleList, dims: tuple[int, ...]) -> None:
        self.mu, self.sigma, self.ups, self.dims = mu, sigma, ups, dims
        super().__init__(batch_shape=mu.shape[:1], event_shape=torch.Size([sum(dims)]), validate_args=False)

    def rsample(self, sample_shape: torch.Size | Sequence[int] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.mu.shape
        z = self.mu + self.sigma * torch.randn(shape, device=self.mu.device, dtype=self.mu.dtype)
        zs = [z]
        for up in self.ups:
            m, s = up(z)
            z = m + s * torch.randn_like(m)
            zs.append(z)
        return torch.cat(zs, dim=-1)

    def sample(self, sample_shape: torch.Size | Sequence[int] = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        zs = torch.split(value, self.dims, dim=-1)
        total = normal_log_prob(zs[0], self.mu, self.sigma)
        for l, up in enumerate(self.ups):
            m, s = up(zs[l])
            total = total + normal_log_prob(zs[l + 1], m, s)
        return total
