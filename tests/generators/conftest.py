"""Fixtures of the generator-family tests: small data bundles and an exact biased MMD."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from benchbed.contracts import DataBundle
from benchbed.testing import load_dataset


def mmd2_biased(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> float:
    """Exact biased (V-statistic) MMD^2 with a Gaussian kernel exp(-|u-v|^2 / (2 h^2)).

    ``a`` [N, ...], ``b`` [M, ...] are flattened to feature vectors; diagonal terms included.
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()

    def k(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(u, v).pow(2) / (2 * bandwidth**2)).mean()

    return float(k(a, a) + k(b, b) - 2 * k(a, b))


def median_distance(x: torch.Tensor) -> float:
    """Median pairwise Euclidean distance of the flattened rows of ``x`` (kernel bandwidth)."""
    d = torch.cdist(x.flatten(1).double(), x.flatten(1).double())
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())


@pytest.fixture(scope="session")
def mmd() -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``mmd(samples, data)``: biased MMD^2 with the data's median distance as bandwidth."""
    return lambda s, x: mmd2_biased(s, x, median_distance(x))


@pytest.fixture(scope="session")
def gmm8() -> DataBundle:
    return load_dataset("gmm8", seed=0, n_train=2000, n_val=200, n_test=500)


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return load_dataset("digits", seed=0)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """The shared 2-core machine: every test runs on one thread."""
    torch.set_num_threads(1)
