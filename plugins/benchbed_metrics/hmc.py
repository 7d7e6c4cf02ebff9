"""One Hamiltonian Monte Carlo transition (leapfrog + Metropolis-Hastings) on a batch of chains.

Used by AIS (:mod:`benchbed_metrics.ais`).  Each row of ``z`` is an independent chain with its own step
size, so one call moves the chains of many examples at once.  Written here (not borrowed from the
samplers plugin) so the metric does not depend on a sampler's settings or diagnostics.
Reference: Neal (2011), "MCMC using Hamiltonian dynamics", eqs. 5.18-5.20 (leapfrog) and §5.3.2 (MH).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LogDensity = Callable[[torch.Tensor], torch.Tensor]


def value_and_grad(log_density: LogDensity, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log_density(z)`` [B] and its gradient w.r.t. ``z`` [B, *Z] (works under ``no_grad``)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lp = log_density(z)
        (grad,) = torch.autograd.grad(lp.sum(), z)
    return lp.detach(), grad.detach()


def _per_chain(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-chain values [B] to broadcast against ``like`` [B, *Z]."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def hmc_transition(
    log_density: LogDensity,
    z: torch.Tensor,
    step_size: torch.Tensor,
    n_leapfrog: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One HMC step leaving ``exp(log_density)`` invariant for every chain.

    Args:
        log_density: ``z [B, *Z] -> [B]`` unnormalised log density (differentiable).
        z: current states [B, *Z].
        step_size: per-chain leapfrog step sizes [B].
        n_leapfrog: leapfrog steps L per transition.

    Returns:
        ``(z_next [B, *Z], accepted [B] bool, accept_prob [B])``; non-finite proposals are rejected
        (probability 0).
    """
    eps = _per_chain(step_size, z)
    p0 = torch.randn_like(z)
    lp0, g = value_and_grad(log_density, z)
    z_new = z.detach()
    p = p0 + 0.5 * eps * g  # half step in momentum (Neal eq. 5.18)
    lp_new = lp0
    for i in range(n_leapfrog):
        z_new = z_new + eps * p  # full step in position (eq. 5.19)
        lp_new, g = value_and_grad(log_density, z_new)
        p = p + (eps if i < n_leapfrog - 1 else 0.5 * eps) * g  # full steps, last one half (eq. 5.20)
    dims = tuple(range(1, z.dim()))
    h0 = -lp0 + 0.5 * p0.pow(2).sum(dim=dims)
    h1 = -lp_new + 0.5 * p.pow(2).sum(dim=dims)
    log_ratio = torch.nan_to_num(h0 - h1, nan=-torch.inf).clamp(max=0.0)
    accepted = torch.log(torch.rand_like(h0)) < log_ratio
    z_next = torch.where(_per_chain(accepted, z), z_new, z.detach())
    return z_next.detach(), accepted, log_ratio.exp()
