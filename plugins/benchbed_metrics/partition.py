"""The normaliser of a latent EBM prior, estimated from samples of its Gaussian base.

For ``p(z) = exp(f(z)) p0(z) / Z`` with a normalised base p0, ``Z = E_{p0}[exp f(z)]``, so
``log Zhat = logsumexp_j f(z_j) - log J`` with ``z_j ~ p0``
(``docs/models.md#log-likelihood-with-an-ebm-prior``).  Zhat is unbiased for Z, but ``log Zhat`` is
biased low (Jensen), so a log-likelihood that subtracts it is biased high; the sample count J is
always reported with it.  Models call this from their ``log_partition(n)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


@torch.no_grad()
def log_partition_from_base(
    log_tilt: Callable[[torch.Tensor], torch.Tensor],
    sample_base: Callable[[int], torch.Tensor],
    n: int,
    *,
    chunk: int = 10_000,
) -> tuple[float, int]:
    """``(log Zhat, n)``: ``log_tilt`` is f(z) [B] (the EBM's negative energy), ``sample_base(m)`` draws p0."""
    if n < 1:
        raise ValueError(f"log_partition_from_base: need n >= 1 samples, got {n}")
    parts = []
    done = 0
    while done < n:
        m = min(chunk, n - done)
        parts.append(torch.logsumexp(log_tilt(sample_base(m)).double(), dim=0))
        done += m
    return float(torch.logsumexp(torch.stack(parts), dim=0)) - math.log(n), n
