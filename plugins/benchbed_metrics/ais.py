"""Annealed importance sampling (Neal 2001) of a marginal likelihood with HMC transitions.

Path: the geometric bridge ``log pi_b(z) = (1 - b) log pi_0(z) + b log gamma(z)`` from a normalised
start ``pi_0`` that can be sampled exactly (the model's prior) to the unnormalised posterior
``gamma(z) = p(x, z)``; its normaliser is ``p(x)`` (Wu, Burda, Salakhutdinov, Grosse 2017, "On the
quantitative analysis of decoder-based generative models", §3).  The log weight of a chain is
``sum_t (b_t - b_{t-1}) (log gamma(z_{t-1}) - log pi_0(z_{t-1}))`` (Neal 2001, eq. 3), and
``log mean_k w_k`` is a stochastic lower bound on ``log p(x)`` in expectation.

Step sizes: a chain whose step size reacts to its own acceptances has a state-dependent kernel that no
longer leaves ``pi_b`` invariant (we measured a systematic *over*-estimate from it).  So a short pilot
run with per-chain adaptation first records a step-size schedule per example (geometric mean over the
pilot chains), and the real chains then use that fixed schedule: every transition is exact HMC.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchbed.blocks.transitions import hmc_transition
from benchbed.contracts import LogDensity


def schedule(n_steps: int, kind: str = "sigmoid", delta: float = 4.0) -> torch.Tensor:
    """``n_steps + 1`` inverse temperatures from 0 to 1.

    "sigmoid": denser at both ends (Grosse, Maddison, Salakhutdinov 2013; BDMC); "geometric": 0 then
    log-spaced from 1e-4, for posteriors much narrower than the prior; "linear".
    """
    if n_steps < 1:
        raise ValueError(f"AIS needs at least one step, got {n_steps}")
    if kind == "sigmoid":
        s = torch.sigmoid(delta * torch.linspace(-1.0, 1.0, n_steps + 1, dtype=torch.float64))
        return (s - s[0]) / (s[-1] - s[0])
    if kind == "geometric":
        return torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-4, 0, n_steps, dtype=torch.float64)])
    if kind == "linear":
        return torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
    raise ValueError(f"AIS schedule must be 'sigmoid', 'geometric' or 'linear', got {kind!r}")


@dataclass(frozen=True)
class AISConfig:
    """AIS settings: ``n_steps`` temperatures on ``schedule``, ``n_leapfrog`` per HMC transition; the
    pilot (``pilot_chains`` per example) adapts from ``step_size`` towards ``target_accept``."""

    n_steps: int = 500
    n_leapfrog: int = 10
    step_size: float = 0.05
    target_accept: float = 0.65
    adapt_rate: float = 0.3
    pilot_chains: int = 2
    schedule: str = "geometric"

    def density_evaluations(self, chains: int) -> int:
        """Evaluations of ``log gamma`` per example (pilot included; all but the weight updates with a gradient)."""
        return (chains + self.pilot_chains) * self.n_steps * (self.n_leapfrog + 2)


@dataclass(frozen=True)
class AISResult:
    """Per-chain log weights [B, K] and the mean HMC acceptance rate of the final run."""

    log_weights: torch.Tensor
    acceptance_rate: float

    def log_marginal(self) -> torch.Tensor:
        """``log mean_k exp(log_weights)`` [B]."""
        k = self.log_weights.shape[1]
        return torch.logsumexp(self.log_weights, dim=1) - math.log(k)


def run_chains(
    log_target: LogDensity,
    init_log_prob: LogDensity,
    z0: torch.Tensor,
    config: AISConfig,
    step_sizes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Run AIS chains from exact samples ``z0`` [N, *Z] of ``pi_0``.

    Args:
        step_sizes: fixed per-step, per-chain step sizes [T, N]; ``None`` adapts them per chain (pilot).

    Returns:
        ``(log_weights [N], step sizes used [T, N], mean acceptance rate)``.
    """
    betas = schedule(config.n_steps, config.schedule).tolist()
    z = z0.detach()
    log_w = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    eps = torch.full((z.shape[0],), config.step_size, dtype=z.dtype, device=z.device)
    used, accepted = [], 0.0
    for t, (b_prev, b) in enumerate(zip(betas[:-1], betas[1:], strict=True)):
        with torch.no_grad():
            log_w += (b - b_prev) * (log_target(z) - init_log_prob(z)).double()

        def log_bridge(u: torch.Tensor, b: float = b) -> torch.Tensor:
            return (1.0 - b) * init_log_prob(u) + b * log_target(u)

        step = eps if step_sizes is None else step_sizes[t]
        used.append(step)
        # The toolkit transition: leapfrog + Metropolis (Neal 2011, eqs. 5.18-5.20, §5.3.2),
        # exact for any fixed per-chain step size; non-finite proposals are rejected.
        z, prob = hmc_transition(log_bridge, z, step, config.n_leapfrog)
        if step_sizes is None:  # pilot only: log eps follows the acceptance probability to the target
            eps = eps * torch.exp(config.adapt_rate * (prob.to(eps.dtype) - config.target_accept))
        accepted += float(prob.float().mean())  # expected acceptance: lower variance than realised
    return log_w, torch.stack(used), accepted / config.n_steps


def ais(
    make_target: Callable[[int], LogDensity],
    init_log_prob: LogDensity,
    sample_init: Callable[[int], torch.Tensor],
    n_examples: int,
    chains: int,
    config: AISConfig,
) -> AISResult:
    """AIS estimate for ``n_examples`` data points with ``chains`` chains each.

    Args:
        make_target: ``r -> log_target`` where ``log_target(z [B*r, *Z]) -> [B*r]`` is ``log p(x_i, z)``
            with each example repeated r times consecutively (rows ``i*r .. i*r+r-1`` belong to x_i).
        init_log_prob: normalised ``log pi_0``; ``sample_init(m)`` draws m exact samples of it.
    """
    z0 = sample_init(n_examples * chains)
    if config.pilot_chains > 0:
        p = config.pilot_chains
        _, pilot_eps, _ = run_chains(make_target(p), init_log_prob, sample_init(n_examples * p), config)
        # One schedule per example: geometric mean over its pilot chains, repeated for its real chains.
        per_example = pilot_eps.log().view(config.n_steps, n_examples, p).mean(dim=2).exp()
        steps = per_example.repeat_interleave(chains, dim=1)
    else:  # no pilot: the initial step size throughout
        steps = torch.full((config.n_steps, n_examples * chains), config.step_size, dtype=z0.dtype, device=z0.device)
    log_w, _, acc = run_chains(make_target(chains), init_log_prob, z0, config, step_sizes=steps)
    return AISResult(log_weights=log_w.view(n_examples, chains), acceptance_rate=acc)
