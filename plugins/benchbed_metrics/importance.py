"""Importance-sampling estimates of log p(x): the IWAE bound with the encoder as proposal, and the
prior as proposal (the naive baseline AIS is compared against).

IWAE (Burda, Grosse, Salakhutdinov 2016, eq. 8):
``log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k | x)``, ``z_k ~ q(z | x)``; a lower bound in expectation
that tightens as K grows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

LogJoint = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _repeat(x: torch.Tensor, k: int) -> torch.Tensor:
    """[B, *D] -> [k*B, *D], sample-major (rows j*B .. j*B+B-1 are copy j)."""
    return x.repeat(k, *([1] * (x.dim() - 1)))


@torch.no_grad()
def iwae_log_marginal(
    x: torch.Tensor,
    log_joint: LogJoint,
    proposal: torch.distributions.Distribution,
    k: int,
    *,
    chunk: int = 100,
) -> torch.Tensor:
    """IWAE estimate [B] of ``log p(x)`` for x [B, *D] with ``proposal`` q(z|x) of batch shape [B]."""
    log_w: list[torch.Tensor] = []
    for start in range(0, k, chunk):
        kk = min(chunk, k - start)
        z = proposal.sample((kk,))  # [kk, B, *Z]
        lq = proposal.log_prob(z)  # [kk, B]
        b = x.shape[0]
        lj = log_joint(_repeat(x, kk), z.reshape(kk * b, *z.shape[2:])).view(kk, b)
        log_w.append((lj - lq).double())
    w = torch.cat(log_w, dim=0)
    return torch.logsumexp(w, dim=0) - math.log(k)


@torch.no_grad()
def prior_is_log_marginal(
    x: torch.Tensor,
    log_joint: LogJoint,
    log_prior: Callable[[torch.Tensor], torch.Tensor],
    sample_prior: Callable[[int], torch.Tensor],
    k: int,
    *,
    chunk: int = 100,
) -> torch.Tensor:
    """Importance sampling with the prior as proposal: ``log mean_k p(x | z_k)``, ``z_k ~ p(z)`` [B].

    The weight ``log_joint - log_prior`` is ``log p(x | z)``, so an unnormalised constant in
    ``log_prior`` cancels; ``sample_prior`` must draw the prior exactly (not an EBM prior).
    """
    b = x.shape[0]
    log_w: list[torch.Tensor] = []
    for start in range(0, k, chunk):
        kk = min(chunk, k - start)
        z = sample_prior(kk * b)
        log_w.append((log_joint(_repeat(x, kk), z) - log_prior(z)).double().view(kk, b))
    return torch.logsumexp(torch.cat(log_w, dim=0), dim=0) - math.log(k)
