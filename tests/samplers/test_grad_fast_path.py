"""The ``value_and_grad`` fast path (benchbed.contracts.GradLogDensity): samplers use it, it changes no
numbers, and a wrong implementation gets an error that names the sampler."""

from __future__ import annotations

import pytest
import torch

from benchbed.contracts import GradLogDensity
from benchbed_samplers.hmc import HMC
from benchbed_samplers.langevin import Langevin


class QuadraticWithFastPath:
    """log p(z) = -0.5 (z - m)^T A (z - m) with a hand-written gradient; counts the calls of each path."""

    def __init__(self, dim: int = 3, *, bad_grad: bool = False) -> None:
        gen = torch.Generator().manual_seed(0)
        q = torch.randn(dim, dim, generator=gen)
        self.a = q @ q.T / dim + torch.eye(dim)
        self.m = torch.randn(dim, generator=gen)
        self.bad_grad = bad_grad
        self.calls = {"call": 0, "value_and_grad": 0, "value": 0}

    def _value(self, z: torch.Tensor) -> torch.Tensor:
        d = z - self.m
        return -0.5 * ((d @ self.a) * d).sum(1)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.calls["call"] += 1
        return self._value(z)

    def value_and_grad(self, z: torch.Tensor, *, value: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        self.calls["value_and_grad"] += 1
        self.calls["value"] += int(value)
        grad = -(z - self.m) @ self.a
        if self.bad_grad:
            grad = grad[:, :-1]
        return (self._value(z) if value else None), grad


def test_the_test_density_satisfies_the_protocol() -> None:
    assert isinstance(QuadraticWithFastPath(), GradLogDensity)


def test_langevin_uses_the_fast_path_and_asks_for_one_value() -> None:
    target = QuadraticWithFastPath()
    z0 = torch.randn(16, 3)
    fast = Langevin(n_steps=9, step_size=0.3).sample(target, z0, generator=torch.Generator().manual_seed(1))
    assert target.calls == {"call": 0, "value_and_grad": 9, "value": 1}
    # The autograd path (a plain function) gives the same chain and the same diagnostics.
    slow = Langevin(n_steps=9, step_size=0.3).sample(target._value, z0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fast.z, slow.z)
    assert fast.diagnostics["final_log_density"] == pytest.approx(slow.diagnostics["final_log_density"], rel=1e-6)
    assert fast.diagnostics["grad_norm"] == pytest.approx(slow.diagnostics["grad_norm"], rel=1e-6)


def test_hmc_asks_for_the_value_only_at_the_end_of_each_trajectory() -> None:
    target = QuadraticWithFastPath()
    z0 = torch.randn(16, 3)
    sampler = HMC(n_steps=4, n_leapfrog=5, step_size=0.2, adapt=False)
    fast = sampler.sample(target, z0, generator=torch.Generator().manual_seed(1))
    # The autograd start evaluation goes through __call__; then 4 transitions x 5 leapfrog steps.
    assert target.calls["value_and_grad"] == 20 and target.calls["value"] == 4
    slow = sampler.sample(target._value, z0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fast.z, slow.z)
    assert fast.diagnostics["acceptance_rate"] == pytest.approx(slow.diagnostics["acceptance_rate"], rel=1e-6)


def test_a_gradient_of_the_wrong_shape_names_the_sampler() -> None:
    with pytest.raises(ValueError, match=r"sampler 'langevin': log_density.value_and_grad\(z\) must return"):
        Langevin(n_steps=2).sample(QuadraticWithFastPath(bad_grad=True), torch.randn(4, 3))
