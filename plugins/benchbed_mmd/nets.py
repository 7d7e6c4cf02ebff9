"""Pieces shared by the GMMN family: the uniform noise, output layers, kernel scales, the SGD schedule,
flat conv nets (the MLPs are :func:`benchbed.blocks.nets.mlp`).

Conventions (official ``yujiali/gmmn``):

* noise z ~ Uniform[-1, 1]^{noise_dim} (``sample_hiddens``: ``2 * rand - 1``), noise_dim = 10;
* generator MLP ``10 -> 64 -> 256 -> 256 -> 1024`` with ReLU, then a sigmoid output for [0, 1]
  images.  Synthetic vector data are not confined to [0, 1], so their output is linear;
* SGD with momentum; at 1/4 of training (iteration 10,000 of 40,000) the learning rate is divided by
  10 and the momentum m becomes 1 - (1 - m) / 10 (0.9 -> 0.99).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from benchbed.blocks.mmd import median_heuristic_variances
from benchbed.blocks.nets import Reshape, conv_encoder, conv_generator
from benchbed.contracts import DatasetInfo
from benchbed_mmd.kernels import dim_scaled_gmmn_variances

OUTPUTS = ("auto", "sigmoid", "linear")
OPTIMIZERS = ("sgd", "adam")


def check_choice(owner: str, key: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError naming the model and parameter."""
    if value not in choices:
        raise ValueError(f"{owner}: parameter {key!r} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_positive(owner: str, key: str, value: float) -> float:
    """``value`` if > 0, else a ValueError naming the model and parameter."""
    if not value > 0:
        raise ValueError(f"{owner}: parameter {key!r} must be > 0, got {value!r}")
    return value


def uniform_noise(n: int, dim: int, device: torch.device) -> torch.Tensor:
    """z ~ U[-1, 1]^dim, [n, dim] (the official GMMN noise)."""
    return 2.0 * torch.rand(n, dim, device=device) - 1.0


def output_layer(info: DatasetInfo, output: str) -> nn.Module | None:
    """Sigmoid for [0, 1] images, identity (None) for vector data, unless forced."""
    if output == "auto":
        output = "sigmoid" if info.kind == "image" else "linear"
    return nn.Sigmoid() if output == "sigmoid" else None


def resolve_variances(
    variances: Sequence[float] | None, data: torch.Tensor, info: DatasetInfo, *, seed: int
) -> tuple[float, ...]:
    """The kernel variances a model trains with.

    ``None`` ("auto"): images get the official MNIST set scaled by ``D / 784`` (exactly the
    official values for MNIST); vector data get the median heuristic on ``data`` (times
    :data:`~benchbed.blocks.mmd.MEDIAN_MULTIPLIERS`), since synthetic sets have arbitrary scales.
    """
    if variances is not None:
        return tuple(float(v) for v in variances)
    if info.kind == "image":
        return dim_scaled_gmmn_variances(info.dim)
    return median_heuristic_variances(data, seed=seed)


def make_optimizer(kind: str, params: Iterable[nn.Parameter], lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with momentum (official) or Adam (beta1 = momentum) for short budgets."""
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999))


def set_schedule(opt: torch.optim.Optimizer, kind: str, lr: float, momentum: float, decayed: bool) -> None:
    """The official step schedule: after the decay point lr / 10, and for SGD momentum 1 - (1 - m) / 10.

    Stateless (a function of ``decayed`` only), so a run resumed from a checkpoint behaves the same.
    """
    for group in opt.param_groups:
        group["lr"] = lr / 10.0 if decayed else lr
        if kind == "sgd":
            group["momentum"] = 1.0 - (1.0 - momentum) / 10.0 if decayed else momentum


def flat_conv_generator(info: DatasetInfo, in_dim: int, channels: int, out: nn.Module | None = None) -> nn.Sequential:
    """[B, in_dim] -> [B, D] flat images (the MMD models work with flat vectors): the generator
    family's conv generator (:func:`benchbed.blocks.nets.conv_generator`, ``channels`` maps)
    with ReLU as in the GMMN nets, ``out`` (the sigmoid for [0, 1] images) and a flatten."""
    return nn.Sequential(conv_generator(info, in_dim, channels, act=nn.ReLU, out=out), nn.Flatten())


def flat_conv_encoder(info: DatasetInfo, out_dim: int, channels: int, out: nn.Module | None = None) -> nn.Sequential:
    """[B, D] flat images -> [B, out_dim]: unflatten, then the generator family's conv encoder
    (:func:`benchbed.blocks.nets.conv_encoder`) with ReLU and ``out``."""
    return nn.Sequential(Reshape(*info.shape), conv_encoder(info, out_dim, channels, act=nn.ReLU, out=out))
