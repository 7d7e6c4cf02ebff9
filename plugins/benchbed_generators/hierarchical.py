"""Multi-layer generator with whitened latents, for SRI with L > 1 (Nijkamp et al. 2019's L=5 model).

The official SRI code feeds each lower latent layer through a "Stochastic" layer: the features of
the layers above give a mean and log-variance, and the layer's latent is ``mean + exp(logvar/2) * z_l``
with ``z_l ~ N(0, I)``.  Every ``z_l`` is therefore a standard normal, the joint prior over the
concatenation ``z = [z_1 (top), ..., z_L]`` is N(0, I), and the whole hierarchy is one deterministic
map ``g(z)``: short-run inference runs on the concatenated vector with the plain Gaussian prior.

Layout (top first, ``latent_dims = (d_1, ..., d_L)``, width ``H = hidden[-1]``):

    h_1 = MLP(z_1)                                     [B, H]
    for l = 2..L:  (m_l, log s_l) = Linear(h_{l-1});   u_l = m_l + s_l * z_l
                   h_l = MLP([h_{l-1}, u_l])            [B, H]     (skip: the top features flow down)
    x_m = head(h_L)                                    (the shared MLP/conv generator on H inputs)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchbed.blocks.nets import build_generator, mlp
from benchbed.contracts import DatasetInfo


class HierarchicalGenerator(nn.Module):
    """g(z): [B, sum(latent_dims)] -> [B, *info.shape] (working scale)."""

    def __init__(self, info: DatasetInfo, latent_dims: Sequence[int], arch: str, hidden: Sequence[int]) -> None:
        super().__init__()
        if len(latent_dims) < 2:
            raise ValueError(f"HierarchicalGenerator needs >= 2 latent layers, got latent_dims={tuple(latent_dims)}")
        width = hidden[-1]
        self.latent_dims = tuple(latent_dims)
        self.top = nn.Sequential(mlp([latent_dims[0], width, width]), nn.LeakyReLU(0.2))
        self.stochastic = nn.ModuleList(nn.Linear(width, 2 * d) for d in latent_dims[1:])
        self.deterministic = nn.ModuleList(
            nn.Sequential(mlp([width + d, width, width]), nn.LeakyReLU(0.2)) for d in latent_dims[1:]
        )
        self.head = build_generator(info, width, arch, hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        parts = torch.split(z, self.latent_dims, dim=1)
        h = self.top(parts[0])
        for z_l, stoch, det in zip(parts[1:], self.stochastic, self.deterministic, strict=True):
            mean, log_std = stoch(h).chunk(2, dim=1)
            # Clamp keeps the reparameterised scale in a sane range early in training.
            u = mean + log_std.clamp(-5.0, 2.0).exp() * z_l
            h = det(torch.cat([h, u], dim=1))
        return self.head(h)
