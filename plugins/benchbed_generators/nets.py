"""Network builders shared by the generator-family models (VAE, ABP, SRI, LEBM).

``arch="auto"`` picks an MLP for vector data and small images (8x8 digits) and a small DCGAN-style
conv net for images whose side is a multiple of 4 and at least 16 (MNIST 28, CIFAR/SVHN 32).
Generators end in ``tanh`` for images (working scale [-1, 1], see :mod:`.scale`) and are linear
for vector data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from benchbed.contracts import DatasetInfo

ARCHS = ("auto", "mlp", "conv")


def resolve_arch(info: DatasetInfo, arch: str, *, owner: str) -> str:
    """The concrete architecture ("mlp" or "conv") for ``info`` and the user's ``arch``.

    Raises:
        ValueError: ``arch`` is unknown, or "conv" is asked for data that are not suitable images.
    """
    if arch not in ARCHS:
        raise ValueError(f"{owner}: parameter 'arch' must be one of {ARCHS}, got {arch!r}")
    conv_ok = info.kind == "image" and len(info.shape) == 3 and info.shape[1] % 4 == 0 and info.shape[1] >= 16
    if arch == "auto":
        return "conv" if conv_ok else "mlp"
    if arch == "conv" and not conv_ok:
        raise ValueError(
            f"{owner}: arch='conv' needs images with side a multiple of 4 and >= 16; "
            f"data set {info.name!r} has shape {tuple(info.shape)}"
        )
    return arch


def mlp(sizes: Sequence[int], act: type[nn.Module] = nn.LeakyReLU, out_act: nn.Module | None = None) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``act`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act(0.2) if act is nn.LeakyReLU else act())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class Reshape(nn.Module):
    """Reshape the non-batch dimensions to ``shape``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


def _out_act(info: DatasetInfo) -> nn.Module | None:
    return nn.Tanh() if info.kind == "image" else None


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


def conv_generator(
    info: DatasetInfo,
    latent_dim: int,
    ngf: int,
    act: Callable[[], nn.Module] = _leaky,
    out: nn.Module | None = None,
) -> nn.Sequential:
    """[B, latent_dim] -> [B, *info.shape]: Linear to ``2ngf x H/4 x W/4``, then two stride-2 4x4
    transposed convolutions (2ngf -> ngf -> C), ``act()`` between the layers, ``out`` at the end."""
    c, h, w = info.shape
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, 2 * ngf * (h // 4) * (w // 4)),
        act(),
        Reshape(2 * ngf, h // 4, w // 4),
        nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1),
        act(),
        nn.ConvTranspose2d(ngf, c, 4, 2, 1),
    ]
    return nn.Sequential(*layers, *([out] if out is not None else []))


def conv_encoder(
    info: DatasetInfo,
    out_dim: int,
    ndf: int,
    act: Callable[[], nn.Module] = _leaky,
    out: nn.Module | None = None,
) -> nn.Sequential:
    """[B, *info.shape] -> [B, out_dim]: two stride-2 4x4 convolutions (C -> ndf -> 2ndf), ``act()``
    after each, then a Linear and ``out``."""
    c, h, w = info.shape
    layers: list[nn.Module] = [
        nn.Conv2d(c, ndf, 4, 2, 1),
        act(),
        nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
        act(),
        nn.Flatten(),
        nn.Linear(2 * ndf * (h // 4) * (w // 4), out_dim),
    ]
    return nn.Sequential(*layers, *([out] if out is not None else []))


def build_generator(info: DatasetInfo, latent_dim: int, arch: str, hidden: Sequence[int], ngf: int = 64) -> nn.Module:
    """g(z): [B, latent_dim] -> [B, *info.shape] in the working scale.

    MLP: ``latent_dim -> hidden... -> D``; conv: :func:`conv_generator` with LeakyReLU(0.2).
    """
    if arch == "mlp":
        return nn.Sequential(mlp([latent_dim, *hidden, info.dim], out_act=_out_act(info)), Reshape(*info.shape))
    return conv_generator(info, latent_dim, ngf, out=_out_act(info))


def build_encoder(info: DatasetInfo, out_dim: int, arch: str, hidden: Sequence[int], ndf: int = 64) -> nn.Module:
    """e(x): [B, *info.shape] (working scale) -> [B, out_dim].

    MLP: ``D -> reversed(hidden)... -> out_dim``; conv: :func:`conv_encoder` with LeakyReLU(0.2).
    """
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), mlp([info.dim, *reversed(tuple(hidden)), out_dim]))
    return conv_encoder(info, out_dim, ndf)
