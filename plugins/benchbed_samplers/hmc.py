"""Hamiltonian Monte Carlo with a per-chain Metropolis correction and dual-averaging step sizes.

One transition (:func:`benchbed.blocks.transitions.hmc_step`; Neal 2011, "MCMC using Hamiltonian
dynamics", eqs. 5.18-5.20 and §5.3.2.1): draw a momentum ``p ~ N(0, I)``, run ``n_leapfrog``
leapfrog steps of size ``eps`` on ``H(z, p) = -log p(z) + |p|^2 / 2`` and accept the end point
with probability ``min(1, exp(H_old - H_new))``, independently for each chain.  A proposal whose Hamiltonian is not
finite is rejected, so a diverging trajectory never leaves the chain.

Step-size adaptation (``adapt=True``): during the first ``adapt_steps`` transitions the log step
size follows Nesterov dual averaging as in Hoffman & Gelman 2014 (NUTS paper, Algorithm 5, with
their ``t0=10, kappa=0.75, mu=log(10 eps_0)`` but ``gamma=0.2`` instead of 0.05), driven by the
Metropolis acceptance probability toward ``target_accept``; afterwards the averaged iterate
``eps_bar`` is used.  Why ``gamma=0.2``: NUTS tunes for one noisy chain and ~1000 warm-up
iterations; here the signal is a mean over many chains and the warm-up is short, and with
``gamma=0.05`` a short adaptation oscillates and ends away from the target (the runs:
``docs/models-notes.md#hmc``).  Step sizes are also jittered per chain and transition (``jitter``,
see :func:`_jittered`).

By default one step size is shared by all chains and driven by their mean acceptance probability
(the chains of one call usually target one density or similar posteriors; averaging makes the
adaptation far less noisy).  ``adapt_per_chain=True`` gives every chain its own step size driven by
its own acceptance probability (posteriors of very different scales in one batch); one chain's
signal is noisy, so after a short adaptation its acceptance lands further from the target
(``docs/models-notes.md#hmc``).  Each call adapts afresh from ``step_size``: the sampler keeps no state.

Cost: ``n_leapfrog`` gradient evaluations per transition (the gradient at the current state is
carried over from the previous transition) plus one at the start.

The self-contained transition for other loops (e.g. annealed importance sampling) is
:func:`benchbed.blocks.transitions.hmc_transition`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt, Interval

from benchbed.blocks.transitions import check_finite, dynamics_mode, hmc_step, log_density_and_grad, start_chains
from benchbed.contracts import LogDensity, SampleResult
from benchbed_samplers._common import apply_overrides

_WHO = "hmc"


def _jittered(step: torch.Tensor, z: torch.Tensor, jitter: float, generator: torch.Generator | None) -> torch.Tensor:
    """Per-chain step sizes [B]: ``step`` ([1] or [B]) times ``U(1 - jitter, 1 + jitter)``.

    Drawn independently of the state, so every transition stays reversible (Neal 2011, §5.4.2.2).
    It breaks the resonances of a fixed trajectory length, which otherwise make the acceptance rate
    non-monotone in the step size and mislead the adaptation.
    """
    step = step.expand(z.shape[0])
    if jitter == 0.0:
        return step
    u = torch.rand(z.shape[0], generator=generator, device=z.device, dtype=z.dtype)
    return step * (1.0 + jitter * (2.0 * u - 1.0))


class DualAveraging:
    """Nesterov dual averaging of ``log eps`` toward a target acceptance (NUTS paper, Algorithm 5).

    Works on a tensor of step sizes of any shape (one per chain, or a single shared one).
    """

    def __init__(
        self, step0: torch.Tensor, target: float, gamma: float = 0.2, t0: float = 10.0, kappa: float = 0.75
    ) -> None:
        self.mu = torch.log(10.0 * step0)  # bias toward larger steps than the initial one
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.h_bar = torch.zeros_like(step0)
        self.log_step_bar = torch.log(step0)
        self.t = 0

    def update(self, accept_prob: torch.Tensor) -> torch.Tensor:
        """Feed one transition's acceptance probability; return the next step size to use."""
        self.t += 1
        t = self.t
        w = 1.0 / (t + self.t0)
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - accept_prob)
        log_step = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        eta = t ** (-self.kappa)
        self.log_step_bar = eta * log_step + (1.0 - eta) * self.log_step_bar
        return log_step.exp()

    def final(self) -> torch.Tensor:
        """The averaged step size ``eps_bar`` used after adaptation."""
        return self.log_step_bar.exp()


class HMC:
    """HMC sampler (module docstring: transition, adaptation and cost).

    Args:
        n_steps: HMC transitions per call (each costs ``n_leapfrog`` gradient evaluations).
        step_size: leapfrog step size, or the starting point of the adaptation.
        n_leapfrog: leapfrog steps per transition.
        target_accept: acceptance probability the adaptation aims at (0.65: Neal 2011, §4.4).
        adapt: adapt the step size during the first ``adapt_steps`` transitions; ``False`` runs
            ``n_steps`` transitions at the fixed ``step_size`` (an exact MCMC kernel).
        adapt_steps: transitions of adaptation; clipped to ``n_steps``.
        adapt_per_chain: one step size per chain instead of one shared by all chains.
        jitter: each transition uses ``step_size * U(1 - jitter, 1 + jitter)``, drawn per chain.
    """

    def __init__(
        self,
        *,
        n_steps: Annotated[int, Ge(0)] = 20,
        step_size: Annotated[float, Gt(0)] = 0.1,
        n_leapfrog: Annotated[int, Gt(0)] = 5,
        target_accept: Annotated[float, Interval(gt=0, lt=1)] = 0.65,
        adapt: bool = True,
        adapt_steps: Annotated[int, Ge(0)] = 10,
        adapt_per_chain: bool = False,
        jitter: Annotated[float, Interval(ge=0, lt=1)] = 0.2,
    ) -> None:
        if n_steps < 0 or n_leapfrog < 1 or adapt_steps < 0:
            raise ValueError(
                f"sampler 'hmc': need n_steps >= 0, n_leapfrog >= 1, adapt_steps >= 0; got "
                f"n_steps={n_steps}, n_leapfrog={n_leapfrog}, adapt_steps={adapt_steps}"
            )
        if not step_size > 0 or not 0.0 < target_accept < 1.0 or not 0.0 <= jitter < 1.0:
            raise ValueError(
                f"sampler 'hmc': need step_size > 0, 0 < target_accept < 1 and 0 <= jitter < 1; got "
                f"step_size={step_size}, target_accept={target_accept}, jitter={jitter}"
            )
        self.n_steps = n_steps
        self.step_size = step_size
        self.n_leapfrog = n_leapfrog
        self.target_accept = target_accept
        self.adapt = adapt
        self.adapt_steps = adapt_steps
        self.adapt_per_chain = adapt_per_chain
        self.jitter = jitter

    def __repr__(self) -> str:
        return (
            f"HMC(n_steps={self.n_steps}, step_size={self.step_size}, n_leapfrog={self.n_leapfrog}, "
            f"target_accept={self.target_accept}, adapt={self.adapt}, adapt_steps={self.adapt_steps})"
        )

    def sample(
        self,
        log_density: LogDensity,
        z0: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        **overrides: Any,
    ) -> SampleResult:
        """Run ``n_steps`` transitions from ``z0`` [B, *Z]; works under no_grad / inference_mode.

        Args:
            generator: optional ``torch.Generator`` for momenta and accept draws.
            **overrides: any constructor setting for this call only (e.g. ``adapt=False``).

        Returns:
            ``SampleResult`` with ``z`` [B, *Z] and diagnostics ``steps``, ``step_size`` (the step
            size in use at the end: the adapted ``eps_bar``, geometric mean over chains when
            per-chain), ``final_log_density``, ``acceptance_rate`` (mean Metropolis acceptance
            probability over the transitions after adaptation, or over all of them when every
            transition adapted) and ``grad_evals``.
        """
        cfg = apply_overrides({k: v for k, v in vars(self).items()}, overrides, _WHO)
        n_steps, n_leapfrog = int(cfg["n_steps"]), int(cfg["n_leapfrog"])
        n_adapt = min(int(cfg["adapt_steps"]), n_steps) if cfg["adapt"] else 0
        jitter = float(cfg["jitter"])
        with dynamics_mode():
            z = start_chains(z0, _WHO).requires_grad_(True)
            logp, grad = log_density_and_grad(log_density, z, _WHO)
            z = z.detach()
            shared = not cfg["adapt_per_chain"]
            step = torch.full((1 if shared else z.shape[0],), float(cfg["step_size"]), dtype=z.dtype, device=z.device)
            adapter = DualAveraging(step, float(cfg["target_accept"]))
            accepts: list[torch.Tensor] = []
            for t in range(n_steps):
                z, logp, grad, acc = hmc_step(
                    log_density, z, logp, grad, _jittered(step, z, jitter, generator), n_leapfrog, generator, who=_WHO
                )
                accepts.append(acc)
                if t < n_adapt:
                    step = adapter.update(acc.mean(0, keepdim=True) if shared else acc)
                    if t == n_adapt - 1:
                        step = adapter.final()
            check_finite(z, _WHO, float(step.log().mean().exp()), n_steps)
        kept = accepts[n_adapt:] if n_adapt < n_steps else accepts
        rate = float(torch.stack(kept).mean()) if kept else math.nan
        return SampleResult(
            z=z,
            diagnostics={
                "steps": float(n_steps),
                "step_size": float(step.log().mean().exp()),
                "final_log_density": float(logp.mean()),
                "acceptance_rate": rate,
                "grad_evals": float(1 + n_steps * n_leapfrog),
                "n_leapfrog": float(n_leapfrog),
            },
        )
