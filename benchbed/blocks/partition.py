"""Importance-sampling estimates of a log-normaliser, with their effective sample size.

An EBM prior ``p(z) = exp(f(z)) p0(z) / Z`` over a normalised base ``p0`` has ``Z = E_{p0}[exp f(z)]``,
so ``log Zhat = logsumexp_j f(z_j) - log J`` with ``z_j ~ p0`` (``docs/models.md#log-likelihood-with-an-ebm-prior``);
more generally ``log w_j = log u(y_j) - log q(y_j)`` for draws of any normalised proposal ``q``.  Zhat is
unbiased for Z, ``log Zhat`` is biased low (Jensen), and how far it can be trusted depends on how evenly
the weights spread: the effective sample size ``ESS = (sum_j w_j)^2 / sum_j w_j^2`` (Kong 1992) is J for
a perfect proposal and near 1 when one draw carries all the weight.  A log-likelihood that subtracts
``log Zhat`` should be reported with both J and the ESS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["PartitionEstimate", "log_mean_weight", "log_partition_from_base"]


class PartitionEstimate(NamedTuple):
    """``log_partition``'s answer: ``(log Zhat, draws used, effective sample size)``."""

    log_z: float
    n: int
    ess: float


def log_mean_weight(log_w: torch.Tensor) -> tuple[float, float]:
    """``(log mean_j w_j, ESS)`` of log-weights ``log_w`` [J].

    ``log mean w`` is computed in ``log_w``'s own dtype (so callers keep their precision); the ESS
    ``exp(2 logsumexp(log w) - logsumexp(2 log w))`` in float64, where the squares cannot overflow.
    """
    if log_w.dim() != 1 or log_w.numel() == 0:
        raise ValueError(f"log_mean_weight: need log-weights of shape [J], J >= 1; got {tuple(log_w.shape)}")
    log_mean = float(torch.logsumexp(log_w, 0) - math.log(log_w.numel()))
    w = log_w.double()
    ess = float(torch.exp(2 * torch.logsumexp(w, 0) - torch.logsumexp(2 * w, 0)))
    return log_mean, ess


@torch.no_grad()
def log_partition_from_base(
    log_tilt: Callable[[torch.Tensor], torch.Tensor],
    sample_base: Callable[[int], torch.Tensor],
    n: int,
    *,
    chunk: int | None = None,
) -> PartitionEstimate:
    """``log Z = log E_{p0}[exp f(z)]`` from ``n`` base draws.

    Args:
        log_tilt: ``f``: ``[m, *Z] -> [m]`` (the EBM's negative energy, the base's log-density left out).
        sample_base: ``m -> [m, *Z]`` exact draws of ``p0``.
        n: draws (J >= 1).
        chunk: draws per batch (memory); ``None`` draws all ``n`` at once.
    """
    if n < 1:
        raise ValueError(f"log_partition_from_base: need n >= 1 base draws, got {n}")
    step = n if chunk is None else chunk
    if step < 1:
        raise ValueError(f"log_partition_from_base: chunk must be >= 1, got {chunk}")
    log_w = torch.cat([log_tilt(sample_base(min(step, n - i))) for i in range(0, n, step)])
    log_z, ess = log_mean_weight(log_w)
    return PartitionEstimate(log_z, n, ess)
