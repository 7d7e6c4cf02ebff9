"""benchbed.blocks.chains: frozen weights, sampler runs, generator detection, concurrency."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from benchbed.blocks.chains import accepts_generator, frozen, run_chains, run_concurrently
from benchbed.contracts import LogDensity, SampleResult


class _GradientStep:
    """A tiny sampler: ``steps`` gradient-ascent steps with optional noise from ``generator``."""

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps
        self.seen_requires_grad: list[bool] = []

    def sample(self, log_density: LogDensity, z0: torch.Tensor, generator: torch.Generator | None = None) -> Any:
        z = z0.clone().requires_grad_(True)
        for _ in range(self.steps):
            (g,) = torch.autograd.grad(log_density(z).sum(), z)
            noise = torch.randn(z.shape, generator=generator) if generator is not None else 0.0
            z = (z + 0.1 * g + 0.01 * noise).detach().requires_grad_(True)
        return SampleResult(z.detach(), {"steps": float(self.steps), "step_size": 0.1})


class _NoGenerator:
    def sample(self, log_density: LogDensity, z0: torch.Tensor) -> Any:
        return SampleResult(z0, {"steps": 0.0})


def test_frozen_restores_requires_grad_also_on_error() -> None:
    net = nn.Linear(3, 1)
    net.bias.requires_grad_(False)  # not trainable on entry: stays so
    with pytest.raises(RuntimeError), frozen(net):
        assert not any(p.requires_grad for p in net.parameters())
        raise RuntimeError
    assert net.weight.requires_grad and not net.bias.requires_grad


def test_run_chains_freezes_weights_and_restores_them() -> None:
    net = nn.Linear(2, 1)
    seen: list[bool] = []

    def log_density(z: torch.Tensor) -> torch.Tensor:
        seen.append(net.weight.requires_grad)
        return net(z).squeeze(1) - 0.5 * (z * z).sum(1)

    with torch.no_grad():  # chains get gradients for z even so
        result = run_chains(_GradientStep(3), log_density, torch.randn(4, 2), net, rounds=2)
    assert seen and not any(seen)
    assert all(p.requires_grad for p in net.parameters())
    assert net.weight.grad is None  # nothing accumulated on the weights
    assert result.z.shape == (4, 2) and not result.z.requires_grad
    assert result.diagnostics["steps"] == 6.0  # summed over the rounds
    with pytest.raises(ValueError, match="rounds"):
        run_chains(_GradientStep(), log_density, torch.randn(4, 2), rounds=0)


def test_run_chains_passes_the_generator_on() -> None:
    def log_density(z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(1)

    z0 = torch.randn(3, 2)
    a = run_chains(_GradientStep(), log_density, z0, generator=torch.Generator().manual_seed(4)).z
    b = run_chains(_GradientStep(), log_density, z0, generator=torch.Generator().manual_seed(4)).z
    c = run_chains(_GradientStep(), log_density, z0, generator=torch.Generator().manual_seed(5)).z
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_accepts_generator() -> None:
    assert accepts_generator(_GradientStep())  # type: ignore[arg-type]
    assert not accepts_generator(_NoGenerator())  # type: ignore[arg-type]


def test_run_concurrently_returns_both_results_and_restores_threads() -> None:
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = torch.randn(40, 40)
        with torch.no_grad():
            first, second = run_concurrently(lambda: (a @ a, torch.is_grad_enabled()),
                                             lambda: (a.t() @ a, torch.is_grad_enabled()))
        assert torch.allclose(first[0], a @ a) and torch.allclose(second[0], a.t() @ a)
        assert first[1] is False and second[1] is False  # the caller's grad mode in both threads
        assert torch.get_num_threads() == 2

        def boom() -> None:
            raise RuntimeError("chain failed")

        with pytest.raises(RuntimeError, match="chain failed"):
            run_concurrently(lambda: a.sum(), boom)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n_threads)
