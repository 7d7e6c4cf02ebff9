"""The structured (multi-modal) latent prior of JGMMN: an equal-weight isotropic Gaussian mixture.

    p(z) = 1/K sum_k N(z; mu_k, s^2 I)

Means: for K <= latent_dim, ``mu_k = r e_k`` (one mode per axis, pairwise distance r sqrt(2));
otherwise K directions drawn once from a generator with a fixed seed (0), normalised to length r.
The means are a function of (K, latent_dim, r) only, not of the run's seed, so the prior is a
property of the hyperparameters.
"""

from __future__ import annotations

import torch


def mixture_means(n_modes: int, latent_dim: int, radius: float) -> torch.Tensor:
    """Means [K, latent_dim] of the mixture prior (see module doc).

    Raises:
        ValueError: ``n_modes`` or ``latent_dim`` < 1, or ``radius`` <= 0.
    """
    if n_modes < 1 or latent_dim < 1 or not radius > 0:
        raise ValueError(
            f"mixture prior: need n_modes >= 1, latent_dim >= 1, radius > 0; got {n_modes}, {latent_dim}, {radius}"
        )
    if n_modes <= latent_dim:
        return radius * torch.eye(n_modes, latent_dim)
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(n_modes, latent_dim, generator=gen)
    return radius * dirs / dirs.norm(dim=1, keepdim=True)


def sample_mixture(means: torch.Tensor, std: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws [n, latent_dim] from the equal-weight mixture with ``means`` [K, latent_dim] and std ``std``."""
    k = torch.randint(0, means.shape[0], (n,), device=means.device, generator=generator)
    noise = torch.randn(n, means.shape[1], device=means.device, dtype=means.dtype, generator=generator)
    return means[k] + std * noise
