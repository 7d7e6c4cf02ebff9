"""Equal-weight isotropic Gaussian mixtures in 2-D: ``gmm8`` (ring) and ``gmm25`` (grid).

Density (exact):  p(x) = (1/K) sum_k N(x; mu_k, std^2 I), so
``log p(x) = logsumexp_k log N(x; mu_k, std^2 I) - log K``.  The label of a point is the index
``k`` of the component it was drawn from, so ``hold_out((k,))`` removes one mode.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Gt

from benchbed_datasets._base import SyntheticVectorSource, check_float, gaussian_log_density


class IsotropicMixture(SyntheticVectorSource):
    """An equal-weight mixture of ``std``-isotropic Gaussians with means ``self.means`` [K, 2]."""

    means: torch.Tensor
    std: float

    @property
    def n_classes(self) -> int:
        return int(self.means.shape[0])

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, None]:
        k = torch.randint(0, self.n_classes, (n,), generator=gen)
        noise = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        x = self.means.to(torch.float64)[k] + self.std * noise
        return x.float(), k, None  # the component index (the label) is the only latent

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log density at ``x`` [B, 2] -> [B] (nats), in ``x``'s dtype and device."""
        means = self.means.to(device=x.device, dtype=x.dtype)
        comp = gaussian_log_density(x[:, None, :], means[None], self.std)  # [B, K]
        return torch.logsumexp(comp, dim=1) - math.log(self.n_classes)


class GMM8(IsotropicMixture):
    """Eight Gaussians evenly spaced on a circle of ``radius`` (mode k at angle 2*pi*k/8).

    Args:
        n_train, n_val, n_test: split sizes.
        radius: distance of each mean from the origin.
        std: standard deviation of each component (isotropic).
    """

    name = "gmm8"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 4000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2000,
        radius: Annotated[float, Gt(0)] = 2.0,
        std: Annotated[float, Gt(0)] = 0.1,
    ) -> None:
        self._init_sizes(n_train, n_val, n_test)
        self.radius = check_float(self.name, "radius", radius)
        self.std = check_float(self.name, "std", std)
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        self.means = self.radius * torch.stack([angles.cos(), angles.sin()], dim=1)


class GMM25(IsotropicMixture):
    """Twenty-five Gaussians on a 5x5 grid with means at ``spacing * {-2,-1,0,1,2}^2``.

    Mode ``k = 5 * i + j`` sits at ``(spacing * (i - 2), spacing * (j - 2))``.

    Args:
        n_train, n_val, n_test: split sizes.
        spacing: distance between neighbouring means.
        std: standard deviation of each component (isotropic).
    """

    name = "gmm25"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 5000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2500,
        spacing: Annotated[float, Gt(0)] = 2.0,
        std: Annotated[float, Gt(0)] = 0.1,
    ) -> None:
        self._init_sizes(n_train, n_val, n_test)
        self.spacing = check_float(self.name, "spacing", spacing)
        self.std = check_float(self.name, "std", std)
        grid = torch.arange(-2, 3, dtype=torch.float64) * self.spacing
        self.means = torch.cartesian_prod(grid, grid)  # row 5*i + j = (grid[i], grid[j])


__all__ = ["GMM8", "GMM25", "IsotropicMixture"]
