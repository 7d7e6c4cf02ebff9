"""Network builders shared by the models of this package.

Rule (the task's scaling for CPU): MLPs for vector data and small images (8x8 digits), DCGAN-style
convolutional nets for 28x28 and 32x32 images.  All use LeakyReLU(0.2), as the official codes of
Cui et al. (``nets.py``), Pang & Wu (``semi_sup_classification.py``) and Han et al. (triangle) do.
No batch norm anywhere: the generators of LEBM and of Cui et al. use none, and it keeps the
per-example log densities that MCMC needs independent across the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from benchbed.blocks.nets import mlp

CONV_SIZES = (28, 32)
#: A model's ``arch`` parameter: ``"auto"`` follows the rule above, ``"mlp"`` forces MLPs on any data
#: (e.g. to fit 28x28 images into a CPU budget), ``"conv"`` asks for the conv nets (28/32-px only).
ARCHS = ("auto", "mlp", "conv")
Arch = Literal["auto", "mlp", "conv"]


def uses_conv(shape: Sequence[int], arch: str = "auto") -> bool:
    """Whether a data shape gets convolutional nets: square 28x28 or 32x32 images under ``"auto"``.

    Raises:
        ValueError: ``arch`` is not one of :data:`ARCHS`, or is ``"conv"`` for another shape.
    """
    if arch not in ARCHS:
        raise ValueError(f"parameter 'arch' must be one of {ARCHS}, got {arch!r}")
    fits = len(shape) == 3 and shape[1] == shape[2] and shape[1] in CONV_SIZES
    if arch == "conv" and not fits:
        raise ValueError(f"arch='conv' needs square 28x28 or 32x32 images; the data have shape {tuple(shape)}")
    return fits and arch != "mlp"


class Decoder(nn.Module):
    """``z [B, d] -> x_m [B, *shape]`` in model scale; tanh output for images (their model scale is
    [-1, 1]), linear output for vectors.  ``conv``: conv or MLP (``None``: :func:`uses_conv` of the shape)."""

    def __init__(self, latent_dim: int, shape: Sequence[int], *, width: int, image: bool,
                 conv: bool | None = None) -> None:
        super().__init__()
        self.shape = tuple(shape)
        out_act = nn.Tanh() if image else None
        if uses_conv(shape) if conv is None else conv:
            c, s = shape[0], shape[1]
            w = width
            head = [nn.ConvTranspose2d(latent_dim, 4 * w, 7 if s == 28 else 4, 1, 0), nn.LeakyReLU(0.2)]
            if s == 28:  # 7 -> 14 -> 28
                body = [nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
                        nn.ConvTranspose2d(2 * w, c, 4, 2, 1)]
            else:  # 4 -> 8 -> 16 -> 32, as LEBM's _netG for 32x32
                body = [nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
                        nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2),
                        nn.ConvTranspose2d(w, c, 4, 2, 1)]
            self.net: nn.Module = nn.Sequential(*head, *body, *([out_act] if out_act else []))
            self.conv = True
        else:
            dim = 1
            for v in shape:
                dim *= v
            self.net = mlp([latent_dim, width, width, dim], out_act=out_act)
            self.conv = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        z = z.reshape(-1, z.shape[-1])
        out = self.net(z[:, :, None, None] if self.conv else z)
        return out.reshape(*lead, *self.shape)


class Encoder(nn.Module):
    """``x_m [B, *shape] -> [B, out_dim]`` (model scale in); a conv trunk for 28/32-px images, an MLP
    on the flattened input otherwise (``conv`` overrides the rule, as for :class:`Decoder`)."""

    def __init__(self, shape: Sequence[int], out_dim: int, *, width: int, conv: bool | None = None,
                 dropout: float = 0.0) -> None:
        """``dropout``: ``nn.Dropout(dropout)`` after each hidden activation (none at 0); active in
        training mode only."""
        super().__init__()
        self.shape = tuple(shape)

        def act() -> list[nn.Module]:
            return [nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout > 0 else [])

        if uses_conv(shape) if conv is None else conv:
            c, s = shape[0], shape[1]
            w = width
            if s == 28:  # 28 -> 14 -> 7 -> 1
                layers = [nn.Conv2d(c, w, 4, 2, 1), *act(),
                          nn.Conv2d(w, 2 * w, 4, 2, 1), *act(),
                          nn.Conv2d(2 * w, out_dim, 7, 1, 0)]
            else:  # 32 -> 16 -> 8 -> 4 -> 1
                layers = [nn.Conv2d(c, w, 4, 2, 1), *act(),
                          nn.Conv2d(w, 2 * w, 4, 2, 1), *act(),
                          nn.Conv2d(2 * w, 4 * w, 4, 2, 1), *act(),
                          nn.Conv2d(4 * w, out_dim, 4, 1, 0)]
            self.net: nn.Module = nn.Sequential(*layers)
            self.conv = True
        else:
            dim = 1
            for v in shape:
                dim *= v
            # mlp's dropout[i] acts on Linear i's input: after the two hidden activations.
            self.net = mlp([dim, width, width, out_dim], dropout=(0.0, dropout, dropout))
            self.conv = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        out = self.net(x if self.conv else x.reshape(n, -1))
        return out.reshape(n, -1)
