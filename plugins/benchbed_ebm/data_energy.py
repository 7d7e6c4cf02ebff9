"""Scalar networks on data space for the data-space EBMs of this package (``short_run_ebm``).

``energy_net(info, ...)`` returns a network ``x_m [B, *D] -> [B]`` (working scale in):

* images of any side: the official short-run EBM's conv tower (``enijkamp/short_run``, class ``F``):
  a 3x3 stride-1 conv ``C -> n_f``, then 4x4 stride-2 convs doubling the channels while the side is
  even and larger than 4 (32 -> 16 -> 8 -> 4 as the official 32-px net; 8 -> 4 for 8x8 digits;
  28 -> 14 -> 7), LeakyReLU(0.2) after each, and a last conv whose kernel is the remaining side, to
  one output;
* vectors: an MLP ``D -> hidden -> hidden -> hidden -> 1`` with LeakyReLU(0.2) (the depth of the
  anatomy paper's 2-D "toy" net, ``point0bar1/ebm-anatomy/nets.py``).

No batch norm: the chains need per-example values that do not couple the examples of a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from benchbed.blocks.nets import mlp
from benchbed.contracts import DatasetInfo

__all__ = ["ScalarNet", "energy_net"]


class ScalarNet(nn.Module):
    """Wraps a trunk whose output has one element per example: ``[B, *D] -> [B]``."""

    def __init__(self, trunk: nn.Module, *, flatten: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1) if self.flatten else x
        return self.trunk(h).reshape(x.shape[0])


def conv_energy(channels: int, side: int, n_f: int) -> nn.Sequential:
    """The conv tower of the module docstring for ``[B, channels, side, side]`` inputs (output ``[B, 1, 1, 1]``)."""
    layers: list[nn.Module] = [nn.Conv2d(channels, n_f, 3, 1, 1), nn.LeakyReLU(0.2)]
    width = n_f
    while side % 2 == 0 and side > 4:
        layers += [nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2)]
        width, side = 2 * width, side // 2
    layers.append(nn.Conv2d(width, 1, side, 1, 0))
    return nn.Sequential(*layers)


def energy_net(info: DatasetInfo, *, n_f: int, hidden: int, conv: bool | None = None) -> ScalarNet:
    """A scalar network ``[B, *info.shape] -> [B]``: the conv tower for images (square ``(C, H, H)``),
    the MLP for vectors (module docstring); ``conv=False`` gives images the MLP on flattened pixels.

    Raises:
        ValueError: an image shape that is not ``(C, H, H)``.
    """
    if info.kind == "image" if conv is None else conv:
        if len(info.shape) != 3 or info.shape[1] != info.shape[2]:
            raise ValueError(f"energy_net: square images (C, H, H) expected, data set {info.name!r} has {info.shape}")
        return ScalarNet(conv_energy(info.shape[0], info.shape[1], n_f), flatten=False)
    return ScalarNet(mlp([info.dim, hidden, hidden, hidden, 1]), flatten=True)
