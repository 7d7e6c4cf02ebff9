"""Diagonal-Gaussian pieces: log densities, KL to N(0, I), and a conditional Gaussian layer.

Every log density here is *normalised* (the ``-0.5 log 2 pi`` terms included) and summed over the
last (latent) dimension, so shapes go ``[..., d] -> [...]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from benchbed_ebm.nets import mlp

LOG_2PI = math.log(2.0 * math.pi)

#: Cui et al. add 0.01 to every conditional standard deviation (``Normal`` in ``train_cifar10.py``)
#: so that p(z_l | z_{l+1}) never collapses to a point.
SIGMA_FLOOR = 0.01

#: Upper clamp on a log standard deviation, only to keep ``exp`` finite if a net runs away.
LOG_SIGMA_MAX = 5.0


def normal_log_prob(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``sum_i log N(z_i; mu_i, sigma_i^2)`` over the last dim; broadcasts ``[..., d] -> [...]``."""
    u = (z - mu) / sigma
    return (-0.5 * u * u - torch.log(sigma) - 0.5 * LOG_2PI).sum(dim=-1)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the last dim: ``[..., d] -> [...]``."""
    return (-0.5 * z * z - 0.5 * LOG_2PI).sum(dim=-1)


def kl_to_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the last dim (the VAE closed form)."""
    return 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=-1)


class ConditionalGaussian(nn.Module):
    """``N(mu(c), diag sigma(c)^2)`` with an MLP ``c [..., d_in] -> (mu, sigma) [..., d_out]``.

    Parameterised as in Cui et al.'s ``_netGzi_mlp``: the MLP outputs ``(mu, log sigma)`` and
    ``sigma = exp(log sigma) + 0.01``.  Used for the top-down prior p(z_l | z_{l+1}) and for the
    bottom-up inference q(z_{l+1} | z_l).

    With ``skip=True`` the mean gets a bias-free linear path, ``mu(c) = W c + mlp_mu(c)``, ``W``
    initialised (semi-)orthogonal: a residual top-down step in which the condition carries through
    (see ``benchbed_ebm.hlebm``, "Linear skip"); ``sigma`` is unchanged.
    """

    def __init__(self, d_in: int, d_out: int, *, width: int, n_layers: int, skip: bool = False) -> None:
        super().__init__()
        self.net = mlp([d_in] + [width] * n_layers + [2 * d_out])
        self.skip: nn.Linear | None = None
        if skip:
            self.skip = nn.Linear(d_in, d_out, bias=False)
            nn.init.orthogonal_(self.skip.weight)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma = self.net(c).chunk(2, dim=-1)
        if self.skip is not None:
            mu = mu + self.skip(c)
        return mu, log_sigma.clamp(max=LOG_SIGMA_MAX).exp() + SIGMA_FLOOR

    def log_prob(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``log N(z; mu(c), sigma(c)^2)`` summed over the last dim: ``[..., d_out] -> [...]``."""
        mu, sigma = self(c)
        return normal_log_prob(z, mu, sigma)
