"""Fixtures of the flow-model tests: small data bundles, a kernel two-sample statistic, mode bookkeeping."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from benchbed.contracts import DataBundle
from benchbed.testing import load_dataset

#: gmm8's defaults: 8 modes on a circle of radius 2, component std 0.1.
GMM8_RADIUS, GMM8_STD = 2.0, 0.1


def gaussian_mmd2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Biased MMD^2 (V-statistic) between the flattened rows of ``a`` and ``b``, Gaussian kernel with the
    median pairwise distance of ``b`` as bandwidth."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    d = torch.cdist(b, b)
    h = float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())

    def k(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(u, v).pow(2) / (2 * h * h)).mean()

    return float(k(a, a) + k(b, b) - 2 * k(a, b))


def _gmm8_means() -> torch.Tensor:
    angles = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
    return GMM8_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def _nearest_mode(x: torch.Tensor) -> torch.Tensor:
    dist, k = torch.cdist(x, _gmm8_means()).min(dim=1)
    k[dist > 3 * GMM8_STD] = -1
    return k


@pytest.fixture(scope="session")
def gmm8_means() -> torch.Tensor:
    """The eight component means [8, 2] of gmm8's defaults (mode k at angle 2 pi k / 8)."""
    return _gmm8_means()


@pytest.fixture(scope="session")
def nearest_mode() -> Callable[[torch.Tensor], torch.Tensor]:
    """x [N, 2] -> index [N] of the gmm8 mode within 3 component stds of each point, -1 where there is none."""
    return _nearest_mode


@pytest.fixture(scope="session")
def gmm8() -> DataBundle:
    return load_dataset("gmm8", seed=0, n_train=2000, n_val=500, n_test=1000)


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def mmd() -> Callable[[torch.Tensor, torch.Tensor], float]:
    return gaussian_mmd2


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """The shared 2-core machine: every test runs on one thread."""
    torch.set_num_threads(1)
