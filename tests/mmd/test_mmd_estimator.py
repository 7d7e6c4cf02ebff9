"""MMD estimators against independent double-loop references (pure Python + numpy, no torch).

The references evaluate the kernel pair by pair from its definition ``sum_q exp(-d^2 / (2 v_q))``
and sum with Python loops, so they share nothing with the matmul / blockwise implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.blocks.mmd import MultiScaleGaussian, joint_mmd2, median_heuristic_variances, median_sq_dist, mmd2
from benchbed_mmd.kernels import GMMN_MNIST_VARIANCES
from benchbed_mmd.mmd import sqrt_loss

VARIANCES = (0.5, 2.0, 8.0)


def k_ref(a: np.ndarray, b: np.ndarray, variances: tuple[float, ...]) -> float:
    d2 = float(sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))
    return sum(math.exp(-d2 / (2.0 * v)) for v in variances)


def mmd2_ref(x: np.ndarray, y: np.ndarray, variances: tuple[float, ...], unbiased: bool = False) -> float:
    """Gretton et al. (2012) eq. 3 (biased) / eq. 5 (unbiased), by double loops."""
    n, m = len(x), len(y)
    sxx = sum(k_ref(x[i], x[j], variances) for i in range(n) for j in range(n) if not (unbiased and i == j))
    syy = sum(k_ref(y[i], y[j], variances) for i in range(m) for j in range(m) if not (unbiased and i == j))
    sxy = sum(k_ref(x[i], y[j], variances) for i in range(n) for j in range(m))
    if unbiased:
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)
    return sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)


def jmmd2_ref(xs: list[np.ndarray], ys: list[np.ndarray], variances: list[tuple[float, ...]]) -> float:
    """Biased joint MMD^2 with the product kernel prod_v k_v, by double loops."""

    def k(a: list[np.ndarray], i: int, b: list[np.ndarray], j: int) -> float:
        return math.prod(k_ref(a[v][i], b[v][j], variances[v]) for v in range(len(a)))

    n, m = len(xs[0]), len(ys[0])
    sxx = sum(k(xs, i, xs, j) for i in range(n) for j in range(n))
    syy = sum(k(ys, i, ys, j) for i in range(m) for j in range(m))
    sxy = sum(k(xs, i, ys, j) for i in range(n) for j in range(m))
    return sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)


def sets(seed: int, n: int = 23, m: int = 17, d: int = 4, shift: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.3 + shift
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_biased_matches_double_loop(seed: int) -> None:
    x, y = sets(seed)
    ref = mmd2_ref(x.numpy(), y.numpy(), VARIANCES)
    got = float(mmd2(x, y, VARIANCES))
    assert got == pytest.approx(ref, rel=1e-6)
    # float32 inputs agree too (to float32 accuracy)
    assert float(mmd2(x.float(), y.float(), VARIANCES)) == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_unbiased_matches_double_loop(seed: int) -> None:
    x, y = sets(seed)
    ref = mmd2_ref(x.numpy(), y.numpy(), VARIANCES, unbiased=True)
    assert float(mmd2(x, y, VARIANCES, unbiased=True)) == pytest.approx(ref, rel=1e-6)
    assert float(mmd2(x, y, VARIANCES, unbiased=True, chunk_size=5)) == pytest.approx(ref, rel=1e-6)


def test_image_shaped_inputs_are_flattened() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(9, 1, 3, 3, generator=g, dtype=torch.float64)
    y = torch.rand(7, 1, 3, 3, generator=g, dtype=torch.float64)
    ref = mmd2_ref(x.reshape(9, -1).numpy(), y.reshape(7, -1).numpy(), (2.0, 5.0))
    assert float(mmd2(x, y, (2.0, 5.0))) == pytest.approx(ref, rel=1e-6)


def test_gmmn_variances_are_the_official_set_as_variances() -> None:
    # exp(-d^2 / (2 v)) with v the official "sigma" values: a single pair at distance^2 = 4
    x = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    k_xy = sum(math.exp(-4.0 / (2 * v)) for v in (2, 5, 10, 20, 40, 80))
    assert float(mmd2(x, y, GMMN_MNIST_VARIANCES)) == pytest.approx(2 * 6 - 2 * k_xy, rel=1e-12)


def test_zero_for_identical_sets() -> None:
    x, _ = sets(4)
    assert float(mmd2(x, x.clone(), VARIANCES)) == pytest.approx(0.0, abs=1e-12)
    assert float(mmd2(x, x.clone(), VARIANCES, chunk_size=6)) == pytest.approx(0.0, abs=1e-12)


def test_grows_monotonically_with_shift() -> None:
    g = torch.Generator().manual_seed(5)
    base = torch.randn(300, 2, generator=g, dtype=torch.float64)
    other = torch.randn(300, 2, generator=g, dtype=torch.float64)
    values = [float(mmd2(base, other + torch.tensor([s, 0.0], dtype=torch.float64), VARIANCES))
              for s in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] < 0.02 and values[-1] > 1.0


@pytest.mark.parametrize("chunk", [1, 4, 7, 16, 100])
@pytest.mark.parametrize("unbiased", [False, True])
def test_chunked_equals_dense(chunk: int, unbiased: bool) -> None:
    x, y = sets(6, n=31, m=19)
    dense = float(mmd2(x, y, VARIANCES, unbiased=unbiased))
    assert float(mmd2(x, y, VARIANCES, unbiased=unbiased, chunk_size=chunk)) == pytest.approx(dense, rel=1e-12)


def test_chunked_gradients_equal_dense() -> None:
    x, y = sets(7, n=20, m=13)
    x.requires_grad_(True)
    (g_dense,) = torch.autograd.grad(mmd2(x, y, VARIANCES), x)
    (g_chunk,) = torch.autograd.grad(mmd2(x, y, VARIANCES, chunk_size=6), x)
    torch.testing.assert_close(g_chunk, g_dense, rtol=1e-10, atol=1e-12)


def test_joint_mmd_product_kernel_matches_double_loop() -> None:
    g = torch.Generator().manual_seed(8)
    xa, xb = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randn(12, 2, generator=g, dtype=torch.float64)
    ya, yb = torch.randn(10, 3, generator=g, dtype=torch.float64) + 0.4, torch.randn(10, 2, generator=g,
                                                                                     dtype=torch.float64)
    kv = [(1.0, 4.0), (0.25, 1.0)]
    ref = jmmd2_ref([xa.numpy(), xb.numpy()], [ya.numpy(), yb.numpy()], kv)
    assert float(joint_mmd2([xa, xb], [ya, yb], kv)) == pytest.approx(ref, rel=1e-6)
    assert float(joint_mmd2([xa, xb], [ya, yb], kv, chunk_size=5)) == pytest.approx(ref, rel=1e-6)
    # The product kernel sees a change of the *pairing* that the marginals cannot: shuffle yb.
    perm = torch.randperm(12, generator=g)
    assert float(joint_mmd2([xa, xb], [xa, xb[perm]], kv)) > 1e-3
    assert float(mmd2(xb, xb[perm], kv[1])) == pytest.approx(0.0, abs=1e-12)


def test_sqrt_loss_is_finite_at_zero_and_negative() -> None:
    v = torch.tensor([0.0, -1e-4, 0.25], requires_grad=True)
    out = sqrt_loss(v)
    assert torch.allclose(out[2], torch.tensor(0.5))
    out.sum().backward()
    assert torch.isfinite(v.grad).all()


def test_median_heuristic_on_known_points() -> None:
    # Points 0, 1, 3 on a line: squared distances 1, 9, 4 -> median 4.
    x = torch.tensor([[0.0], [1.0], [3.0]])
    assert median_sq_dist(x) == pytest.approx(4.0)
    assert median_heuristic_variances(x, (0.5, 1.0, 2.0)) == pytest.approx((1.0, 2.0, 4.0))


def test_invalid_arguments_name_the_problem() -> None:
    x, y = sets(9)
    with pytest.raises(ValueError, match="variances"):
        MultiScaleGaussian((1.0, -2.0))
    with pytest.raises(ValueError, match="features"):
        mmd2(x, y[:, :2], VARIANCES)
    with pytest.raises(ValueError, match="chunk_size"):
        mmd2(x, y, VARIANCES, chunk_size=0)
    with pytest.raises(ValueError, match="unbiased"):
        mmd2(x[:1], y, VARIANCES, unbiased=True)
