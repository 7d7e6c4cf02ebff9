"""Langevin steps per second on an LEBM-sized latent energy (``docs/models.md#lebm``: z 100-d, MLP
100-200-200-1 with GELU, batch 100), against two baselines measured in the same process:

* ``naive``: the common first implementation: weights with ``requires_grad``, ``loss.backward(
  retain_graph=True)`` to get ``z.grad`` (so every step also computes and accumulates the weight
  gradients and keeps the graph alive), ``zero_`` of both, out-of-place updates.
* ``minimal``: a hand-written loop with ``torch.autograd.grad`` (the LEBM code's pattern) on the
  same log-density, to show the sampler's plumbing (context switches, shape checks, the final
  log-density evaluation for the diagnostics) costs little.

The measurements alternate (sampler, naive, minimal) so that load on a shared machine hits all
three alike; a ratio is the median over rounds of the within-round ratio.  Run: ``tox -e bench`` or
``OMP_NUM_THREADS=1 pytest benchmarks/bench_samplers.py -p no:xdist --benchmark-only``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch
from torch import nn

from benchbed_samplers.langevin import Langevin

N_STEPS = 60  # LEBM prior chain length
STEP = 0.4
ROUNDS = 15


def _energy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(100, 200), nn.GELU(), nn.Linear(200, 200), nn.GELU(), nn.Linear(200, 1))


def _latent_ebm(energy: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """log p(z) = -E(z) + log N(z; 0, I) up to a constant, per chain [B] (the LEBM prior, ``docs/models.md#lebm``)."""

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -energy(z).squeeze(1) - 0.5 * (z**2).sum(1)

    return log_density


def _naive(log_density: Callable[[torch.Tensor], torch.Tensor], energy: nn.Module, z0: torch.Tensor) -> None:
    z = z0.clone().requires_grad_(True)
    for _ in range(N_STEPS):
        loss = -log_density(z).sum()
        loss.backward(retain_graph=True)
        z = (z - 0.5 * STEP**2 * z.grad + STEP * torch.randn_like(z)).detach().requires_grad_(True)
        energy.zero_grad()


def _minimal(log_density: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor) -> None:
    z = z0.clone()
    for _ in range(N_STEPS):
        z = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_density(z).sum(), z)
        z = z.detach() + 0.5 * STEP**2 * grad + STEP * torch.randn_like(z)


def _timed(fn: Callable[[], object], into: list[float]) -> None:
    t = time.perf_counter()
    fn()
    into.append(time.perf_counter() - t)


@pytest.fixture(scope="module")
def setting() -> tuple[nn.Module, torch.Tensor]:
    torch.set_num_threads(1)
    return _energy(), torch.randn(100, 100)


def test_langevin_steps_per_second(benchmark, setting) -> None:
    energy, z0 = setting
    sampler = Langevin(n_steps=N_STEPS, step_size=STEP)
    log_density = _latent_ebm(energy)

    times: dict[str, list[float]] = {"sampler": [], "naive": [], "minimal": []}

    def one_round() -> None:
        _timed(lambda: sampler.sample(log_density, z0), times["sampler"])
        _timed(lambda: _naive(log_density, energy, z0), times["naive"])
        _timed(lambda: _minimal(log_density, z0), times["minimal"])

    one_round()  # warm-up (allocator, first-call dispatch)
    for v in times.values():
        v.clear()
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    med = {k: statistics.median(v) for k, v in times.items()}

    def paired(baseline: str) -> float:
        """Median over rounds of baseline time / sampler time (one round sees one machine load)."""
        return statistics.median(b / a for a, b in zip(times["sampler"], times[baseline], strict=True))

    info = {
        "steps_per_s_sampler": N_STEPS / med["sampler"],
        "steps_per_s_naive": N_STEPS / med["naive"],
        "steps_per_s_minimal": N_STEPS / med["minimal"],
        "speedup_vs_naive": paired("naive"),
        "ratio_vs_minimal": paired("minimal"),
    }
    benchmark.extra_info.update(info)
    print(" ".join(f"{k}={v:.3g}" for k, v in info.items()))
    # Generous floors (a shared CI machine is noisy); the measured figures are in extra_info.
    assert info["speedup_vs_naive"] > 1.1
    assert info["ratio_vs_minimal"] > 0.85
