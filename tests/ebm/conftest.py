"""Shared helpers of the ebm plugin's tests: an exact Gaussian-kernel MMD and the learning scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from benchbed.contracts import Batch


def gaussian_mmd2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Biased (V-statistic) MMD^2 with one Gaussian kernel exp(-d^2 / h).

    ``h`` is the median squared distance within ``b`` (the reference sample), so the kernel is
    fixed by the data and never by the model under test.
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    d_bb = torch.cdist(b, b) ** 2
    h = d_bb[d_bb > 0].median()

    def k(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(torch.cdist(u, v) ** 2) / h)

    return float(k(a, a).mean() + k(b, b).mean() - 2.0 * k(a, b).mean())


@pytest.fixture
def mmd2() -> Callable[[torch.Tensor, torch.Tensor], float]:
    return gaussian_mmd2


def recon_and_sample_mmd(model: Any, bundle: Any, n: int = 300) -> tuple[float, float]:
    """(reconstruction MSE, sample MMD^2) of ``model`` on the first ``n`` test images (fixed seed)."""
    x = bundle.test.x[:n]
    torch.manual_seed(0)
    with torch.no_grad():
        rec = float(((model.reconstruct(x) - x) ** 2).mean())
        return rec, gaussian_mmd2(model.sample(n), x)


@pytest.fixture
def scores() -> Callable[[Any, Any], tuple[float, float]]:
    return recon_and_sample_mmd


def assert_same_training(fused: Any, plain: Any, batch: Batch, steps: int = 3) -> None:
    """Train ``fused`` and ``plain`` (the same model, engine paths fused and plain) in lockstep from the
    same seeds: their training statistics agree to 1e-4 and their weights to 1e-5 after ``steps``."""
    for step in range(steps):
        torch.manual_seed(100 + step)
        stats_fused = fused.train_step(batch, step)
        torch.manual_seed(100 + step)
        stats_plain = plain.train_step(batch, step)
        for k, v in stats_plain.items():
            assert stats_fused[k] == pytest.approx(v, rel=1e-4, abs=1e-4), (step, k)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), name
