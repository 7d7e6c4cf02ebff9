"""Networks of the latent-space EBM prior model (methods.md §3, "Architectures for 32x32").

* :func:`energy_mlp`: the prior's MLP, ``nz -> 200 -> 200 -> 1`` with GELU by default; its Linear
  layers keep PyTorch's default init, as in the official code.  It outputs f(z) (negative energy).
* :func:`ref32_generator`: the reference 32x32 generator (ConvT, ngf=64, LeakyReLU(0.2), no BN,
  tanh), xavier-normal init on the transposed-convolution weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "lrelu": nn.LeakyReLU, "silu": nn.SiLU}


class EnergyMLP(nn.Module):
    """f_alpha(z): [B, nz] -> [B].  ``log p_alpha(z) = f(z) + log N(z; 0, I) - log Z``."""

    def __init__(self, nz: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model 'lebm': energy_activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        sizes = [nz, *hidden]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), act(0.2) if act is nn.LeakyReLU else act()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


class Ref32Generator(nn.Module):
    """g(z): [B, nz] -> [B, C, 32, 32] in [-1, 1] (the official ``_netG`` layout)."""

    def __init__(self, nz: int, channels: int, ngf: int = 64) -> None:
        super().__init__()
        self.nz = nz
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0),  # 1x1 -> 4x4
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1),  # -> 8x8
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1),  # -> 16x16
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 2, channels, 4, 2, 1),  # -> 32x32
            nn.Tanh(),
        )
        for m in self.net:
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.xavier_normal_(m.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.nz, 1, 1))
