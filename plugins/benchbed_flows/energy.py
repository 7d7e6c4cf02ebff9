"""The energy network shared by the two EBMs of this package, and log-partition estimation by importance sampling.

Both EBMs act on the flow coordinates y of :class:`~benchbed_flows.space.FlowSpace` (an elementwise
bijection of the data-scale x with a known Jacobian), so a density over y converts to data-scale nats by
adding ``log |det dy/dx|``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchbed.blocks.nets import mlp
from benchbed.blocks.partition import PartitionEstimate, log_mean_weight


def energy_mlp(dim: int, hidden: tuple[int, ...]) -> nn.Module:
    """Scalar network g: [B, dim] -> [B, 1] with SiLU units (smooth, so Langevin gradients are continuous)."""
    return mlp((dim, *hidden, 1), act=nn.SiLU)


@torch.no_grad()
def log_partition_is(
    log_unnormalised: Callable[[torch.Tensor], torch.Tensor],
    sample_proposal: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    n: int,
    *,
    batch: int = 10_000,
) -> PartitionEstimate:
    """Importance-sampling estimate of log Z = log ∫ exp(u(y)) dy with a normalised proposal q.

        log Ẑ = logsumexp_i [u(y_i) - log q(y_i)] - log n,     y_i ~ q,

    Ẑ is unbiased for Z, so log Ẑ is biased low for log Z (Jensen); the bias vanishes as n grows when
    the weights have finite variance (q must cover where exp(u) has mass).

    Args:
        log_unnormalised: u: [B, D] -> [B].
        sample_proposal: m -> (y [m, D], log q(y) [m]).
        n: proposal draws.
        batch: draws per chunk (memory).

    Returns:
        ``(log Ẑ, n, effective sample size)``, the ESS (sum w)^2 / sum w^2 saying how many draws the
        weights are worth (n for a perfect proposal).
    """
    logw = []
    done = 0
    while done < n:
        m = min(batch, n - done)
        y, log_q = sample_proposal(m)
        logw.append((log_unnormalised(y) - log_q).double())
        done += m
    log_z, ess = log_mean_weight(torch.cat(logw))
    return PartitionEstimate(log_z, n, ess)
