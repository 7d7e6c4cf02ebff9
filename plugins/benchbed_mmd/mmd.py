"""The GMMN training loss on top of an MMD^2 estimate (:mod:`benchbed.blocks.mmd`)."""

from __future__ import annotations

import torch


def sqrt_loss(value: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The GMMN training loss ``sqrt(max(MMD^2, 0) + eps)`` (official ``SqrtGaussianKernelMmdLoss``).

    sqrt keeps the gradient from vanishing as MMD^2 -> 0 (Li et al. 2015, §3.3).  The estimate is
    clamped at 0 (a U-statistic can be negative) and ``eps`` keeps the gradient finite there.
    ``value`` is a 0-d tensor; so is the result.
    """
    return torch.sqrt(value.clamp_min(0.0) + eps)
