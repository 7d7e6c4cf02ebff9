"""``benchbed.blocks.mmd`` as a public toolkit: the estimators against a brute-force reference, the
joint/single-view and dense/chunked identities, gradients through the chunked path, validation.

The detailed double-loop references of the GMMN use live in ``tests/mmd/test_mmd_estimator.py``;
here the reference is a plain [n, m] kernel matrix built with ``torch.cdist`` in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

from benchbed.blocks import mmd as blocks_mmd
from benchbed.blocks.mmd import (
    MultiScaleGaussian,
    as_kernel,
    joint_mmd2,
    kernel_sum,
    median_heuristic_variances,
    median_sq_dist,
    mmd2,
    sq_dists,
)

VARIANCES = (0.25, 1.0, 4.0)


def _k(a: torch.Tensor, b: torch.Tensor, variances: tuple[float, ...]) -> torch.Tensor:
    d2 = torch.cdist(a.flatten(1).double(), b.flatten(1).double()) ** 2
    return sum(torch.exp(-d2 / (2.0 * v)) for v in variances)  # type: ignore[return-value]


def _reference(x: torch.Tensor, y: torch.Tensor, variances: tuple[float, ...], unbiased: bool) -> float:
    n, m = len(x), len(y)
    kxx, kyy, kxy = _k(x, x, variances), _k(y, y, variances), _k(x, y, variances)
    if unbiased:
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        return float(sxx + syy - 2.0 * kxy.mean())
    return float(kxx.mean() + kyy.mean() - 2.0 * kxy.mean())


@pytest.fixture
def samples() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(23, 2, 3, generator=gen, dtype=torch.float64), \
        torch.randn(17, 2, 3, generator=gen, dtype=torch.float64) + 0.4


def test_public_names_are_exported() -> None:
    for name in blocks_mmd.__all__:
        assert hasattr(blocks_mmd, name), name


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("chunk_size", [None, 1, 5, 64])
def test_mmd2_matches_the_kernel_matrix_reference(samples, unbiased: bool, chunk_size: int | None) -> None:
    x, y = samples
    got = float(mmd2(x, y, VARIANCES, unbiased=unbiased, chunk_size=chunk_size))
    assert got == pytest.approx(_reference(x, y, VARIANCES, unbiased), rel=1e-10, abs=1e-12)


def test_single_view_joint_mmd_is_mmd_and_product_kernel_factorises(samples) -> None:
    x, y = samples
    assert float(joint_mmd2([x], [y], [VARIANCES])) == float(mmd2(x, y, VARIANCES))
    # Two views whose second kernel is constant-free: product kernel = elementwise product of Grams.
    xa, xb, ya, yb = x[:, 0], x[:, 1], y[:, 0], y[:, 1]
    kxx = _k(xa, xa, (1.0,)) * _k(xb, xb, (2.0,))
    kyy = _k(ya, ya, (1.0,)) * _k(yb, yb, (2.0,))
    kxy = _k(xa, ya, (1.0,)) * _k(xb, yb, (2.0,))
    ref = float(kxx.mean() + kyy.mean() - 2.0 * kxy.mean())
    assert float(joint_mmd2([xa, xb], [ya, yb], [1.0, (2.0,)], chunk_size=4)) == pytest.approx(ref, rel=1e-10)


def test_chunked_gradient_equals_dense_gradient(samples) -> None:
    x, y = samples
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    (g_dense,) = torch.autograd.grad(mmd2(xs[0], y, VARIANCES, unbiased=True), xs[0])
    (g_chunk,) = torch.autograd.grad(mmd2(xs[1], y, VARIANCES, unbiased=True, chunk_size=4), xs[1])
    torch.testing.assert_close(g_chunk, g_dense, rtol=1e-10, atol=1e-12)


def test_kernel_sum_and_sq_dists(samples) -> None:
    x, _ = samples
    flat = x.flatten(1)
    k = MultiScaleGaussian(VARIANCES)
    full = float(_k(flat, flat, VARIANCES).sum())
    for chunk in (None, 3):
        assert float(kernel_sum([flat], [flat], [k], same=True, chunk_size=chunk)) == pytest.approx(full, rel=1e-12)
    d2 = sq_dists(flat, flat, zero_diagonal=True)
    assert torch.equal(d2.diagonal(), torch.zeros(len(flat), dtype=d2.dtype)) and (d2 >= 0).all()
    torch.testing.assert_close(d2, torch.cdist(flat, flat) ** 2)


def test_median_heuristic_on_a_known_configuration() -> None:
    # Four corners of a unit square: squared distances 1,1,1,1,2,2 -> median 1.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert median_sq_dist(x) == pytest.approx(1.0)
    assert median_heuristic_variances(x, (1.0, 4.0)) == pytest.approx((0.5, 2.0))
    # With m = 1 the kernel is exp(-1) at the median distance.
    (v,) = median_heuristic_variances(x, (1.0,))
    assert float(MultiScaleGaussian((v,))(torch.tensor(1.0))) == pytest.approx(math.exp(-1.0))


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        MultiScaleGaussian(())
    with pytest.raises(ValueError, match="finite and > 0"):
        as_kernel((1.0, -2.0))
    with pytest.raises(ValueError, match="at least 2"):
        median_sq_dist(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="median squared distance is 0"):
        median_sq_dist(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="one kernel per view"):
        joint_mmd2([torch.zeros(3, 2)], [torch.zeros(3, 2)], [1.0, 2.0])
    with pytest.raises(ValueError, match="too few"):
        mmd2(torch.zeros(1, 2), torch.zeros(3, 2), 1.0, unbiased=True)
    with pytest.raises(TypeError):
        mmd2(torch.zeros(3, 2), torch.zeros(3, 2))  # type: ignore[call-arg]  # the kernel is required
