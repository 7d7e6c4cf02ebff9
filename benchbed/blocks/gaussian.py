"""Gaussian log-densities and the Gaussian KL used by latent-variable models.

Every density is normalised (the ``-0.5 log 2 pi`` terms included) and in nats:

    log N(z; 0, I)          = sum_i [-z_i^2 / 2 - log(2 pi) / 2]
    log N(z; mu, diag s^2)  = sum_i [-(z_i - mu_i)^2 / (2 s_i^2) - log s_i - log(2 pi) / 2]
    KL(N(mu, diag e^v) || N(0, I)) = 1/2 sum_i [mu_i^2 + e^{v_i} - 1 - v_i]
        (Kingma & Welling 2014, Appendix B)
"""

from __future__ import annotations

import math

import torch

__all__ = ["LOG_2PI", "gaussian_log_lik", "kl_to_std_normal", "normal_log_prob", "std_normal_log_prob"]

#: log(2 pi).
LOG_2PI = math.log(2.0 * math.pi)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the last (latent) dimension: ``[..., d] -> [...]``."""
    return (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(dim=-1)


def normal_log_prob(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``sum_i log N(z_i; mu_i, sigma_i^2)`` over the last dimension; broadcasts ``[..., d] -> [...]``."""
    u = (z - mu) / sigma
    return (-0.5 * u * u - torch.log(sigma) - 0.5 * LOG_2PI).sum(dim=-1)


def kl_to_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` summed over the last dimension: ``[..., d] -> [...]``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def gaussian_log_lik(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor | float) -> torch.Tensor:
    """``log N(x; mean, std^2 I)`` with one ``log std`` (or one per coordinate), summed over all
    non-batch dimensions: the observation log-likelihood of a Gaussian decoder.

    Args:
        x, mean: ``[B, *D]``.
        log_std: a float, a 0-dim tensor, or a tensor broadcastable to ``[B, *D]``.

    Returns:
        ``[B]``; a 1-D ``x`` (``[B]``, no event dimensions) gives the per-example terms ``[B]``.
    """
    log_std_t = torch.as_tensor(log_std, dtype=x.dtype, device=x.device)
    sq = ((x - mean) * torch.exp(-log_std_t)).pow(2)
    per = -0.5 * sq - log_std_t - 0.5 * LOG_2PI
    return per.flatten(1).sum(1) if per.dim() > 1 else per
