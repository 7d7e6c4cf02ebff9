"""Model ``flow`` on the 8x8 digits (64-D, 17-level grid dequantised): samples approach the test data."""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchbed.contracts import DataBundle
from benchbed.testing import fit

PARAMS = {"transforms": 3, "hidden": (128,), "lr": 3e-3}


def test_digits_flow_learns(digits: DataBundle, mmd: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Sample MMD^2 to the test split falls well below the untrained flow's; log-likelihood rises."""
    values = []
    for steps in (1, 150):
        torch.manual_seed(0)
        model, _ = fit("flow", digits, steps=steps, batch_size=128, params=PARAMS)
        assert model.density.space.levels == 17
        with torch.no_grad():
            samples = model.sample(1000)
            ll = float(model.log_likelihood(digits.test.x).mean())
        assert samples.dtype == torch.float32 and samples.min() >= 0 and samples.max() <= 1
        values.append((mmd(samples, digits.test.x), ll))
    print(f"\nflow digits (mmd2, loglik): untrained {values[0]}, trained {values[1]}")
    assert values[1][0] < 0.5 * values[0][0], values
    assert values[1][1] > values[0][1] + 10, values
