"""The conditional diagonal Gaussian layer of Cui et al.'s hierarchical latent EBM.

Its log density is normalised (the ``-0.5 log 2 pi`` terms included) and summed over the last
(latent) dimension, so shapes go ``[..., d] -> [...]`` (:func:`benchbed.blocks.gaussian.normal_log_prob`).
"""

from __future__ import annotations

import torch
from torch import nn

from benchbed.blocks.gaussian import normal_log_prob
from benchbed.blocks.nets import mlp

#: Cui et al. add 0.01 to every conditional standard deviation (``Normal`` in ``train_cifar10.py``)
#: so that p(z_l | z_{l+1}) never collapses to a point.
SIGMA_FLOOR = 0.01

#: Upper clamp on a log standard deviation, only to keep ``exp`` finite if a net runs away.
LOG_SIGMA_MAX = 5.0


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
