"""Network builders for latent-variable models: MLPs, small conv generators/encoders, and the
architecture rule that picks between them.

``arch="auto"`` picks an MLP for vector data and small images (8x8 digits) and a small DCGAN-style
conv net for images whose side is a multiple of 4 and at least 16 (MNIST 28, CIFAR/SVHN 32).
:func:`build_generator` ends in ``tanh`` for images (working scale [-1, 1], see
:mod:`benchbed.blocks.scaling`) and is linear for vector data.

No builder uses batch normalisation: per-example log-densities (which MCMC needs) must not couple
the examples of a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from benchbed.contracts import DatasetInfo

__all__ = [
    "ARCHS",
    "Reshape",
    "build_encoder",
    "build_generator",
    "conv_encoder",
    "conv_generator",
    "mlp",
    "resolve_arch",
]

#: Values of a model's ``arch`` parameter understood by :func:`resolve_arch`.
ARCHS = ("auto", "mlp", "conv")


def resolve_arch(info: DatasetInfo, arch: str, *, owner: str) -> str:
    """The concrete architecture (``"mlp"`` or ``"conv"``) for ``info`` and the user's ``arch``.

    Args:
        info: the data set's metadata.
        arch: one of :data:`ARCHS`.
        owner: names the caller in error messages (e.g. ``"model 'abp'"``).

    Raises:
        ValueError: ``arch`` is unknown, or ``"conv"`` is asked for data that are not images whose
            side is a multiple of 4 and at least 16.
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


def mlp(
    sizes: Sequence[int],
    act: type[nn.Module] = nn.LeakyReLU,
    out_act: nn.Module | None = None,
    *,
    dropout: Sequence[float] = (),
) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with an activation between consecutive layers.

    Args:
        sizes: widths, input first; ``len(sizes) - 1`` Linear layers (PyTorch's default init).
        act: activation class, instantiated once per hidden layer: ``act(0.2)`` when it is
            ``nn.LeakyReLU`` (slope 0.2, the convention of the model codes), ``act()`` otherwise.
        out_act: module appended after the last Linear (e.g. ``nn.Tanh()``); none by default.
        dropout: ``dropout[i] > 0`` inserts ``nn.Dropout(dropout[i])`` before Linear layer ``i``
            (on its *input*); missing entries mean no dropout.

    Returns:
        ``nn.Sequential`` mapping ``[..., sizes[0]] -> [..., sizes[-1]]``.
    """
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        if i < len(dropout) and dropout[i] > 0:
            layers.append(nn.Dropout(dropout[i]))
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act(0.2) if act is nn.LeakyReLU else act())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class Reshape(nn.Module):
    """Reshape the non-batch dimensions to ``shape``: ``[B, ...] -> [B, *shape]``."""

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
    """``[B, latent_dim] -> [B, *info.shape]``: Linear to ``2 ngf x H/4 x W/4``, then two stride-2
    4x4 transposed convolutions (``2 ngf -> ngf -> C``), ``act()`` between the layers, ``out`` last.

    ``info.shape`` must be ``(C, H, W)`` with ``H`` and ``W`` multiples of 4.
    """
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
    """``[B, *info.shape] -> [B, out_dim]``: two stride-2 4x4 convolutions (``C -> ndf -> 2 ndf``),
    ``act()`` after each, then a Linear and ``out``.

    ``info.shape`` must be ``(C, H, W)`` with ``H`` and ``W`` multiples of 4.
    """
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
    """g(z): ``[B, latent_dim] -> [B, *info.shape]`` in the working scale.

    Args:
        arch: ``"mlp"`` or ``"conv"`` (resolve ``"auto"`` first with :func:`resolve_arch`).
        hidden: MLP hidden widths: ``latent_dim -> hidden... -> D`` then a reshape.
        ngf: width of the conv generator (:func:`conv_generator`, LeakyReLU(0.2)).

    Both end in ``tanh`` for images and are linear for vector data.
    """
    if arch == "mlp":
        return nn.Sequential(mlp([latent_dim, *hidden, info.dim], out_act=_out_act(info)), Reshape(*info.shape))
    return conv_generator(info, latent_dim, ngf, out=_out_act(info))


def build_encoder(info: DatasetInfo, out_dim: int, arch: str, hidden: Sequence[int], ndf: int = 64) -> nn.Module:
    """e(x): ``[B, *info.shape]`` (working scale) ``-> [B, out_dim]``.

    Args:
        arch: ``"mlp"`` (``D -> reversed(hidden)... -> out_dim`` on the flattened input) or
            ``"conv"`` (:func:`conv_encoder` with LeakyReLU(0.2) and width ``ndf``).
    """
    if arch == "mlp":
        return nn.Sequential(nn.Flatten(), mlp([info.dim, *reversed(tuple(hidden)), out_dim]))
    return conv_encoder(info, out_dim, ndf)
