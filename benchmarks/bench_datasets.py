"""Data-set generation and loading speed (issue 3), single-threaded as on the shared 2-core machine.

Targets: ``shapes`` renders 60 000 28x28 images (with factors and splits) in under 5 s; ``digits``
loads and splits in under 1 s.  Each is reported as a ratio against a baseline measured in the same
process: for shapes, merely filling a tensor of the same size with uniform noise (the floor cost of
producing that many pixels); for digits, scikit-learn's ``load_digits`` alone.
"""

from __future__ import annotations

import time

import pytest
import torch

from benchbed.plugins import load_registry


@pytest.fixture(scope="module")
def registry():
    torch.set_num_threads(1)
    return load_registry(strict=True)


def _min_time(fn, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def test_shapes_60000_images(benchmark, registry) -> None:
    source = registry.dataset("shapes").factory(n_train=58_000, n_val=1_000, n_test=1_000, size=28)
    baseline_s = _min_time(lambda: torch.rand(60_000, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    bundle = benchmark.pedantic(lambda: source.load(seed=0), rounds=3, iterations=1)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 60_000
    shapes_s = benchmark.stats.stats.min
    benchmark.extra_info.update(shapes_s=shapes_s, baseline_rand_s=baseline_s, ratio=shapes_s / baseline_s)
    print(f"\nshapes: 60 000 28x28 images in {shapes_s:.3f} s (min of 3); torch.rand of the same size "
          f"{baseline_s:.3f} s; ratio {shapes_s / baseline_s:.1f}")
    assert shapes_s < 5.0


def test_digits_load(benchmark, registry) -> None:
    from sklearn.datasets import load_digits

    source = registry.dataset("digits").factory()
    baseline_s = _min_time(load_digits)
    bundle = benchmark.pedantic(lambda: source.load(seed=0), rounds=5, iterations=1)
    assert len(bundle.train) == 1257
    digits_s = benchmark.stats.stats.min
    benchmark.extra_info.update(digits_s=digits_s, baseline_load_digits_s=baseline_s, ratio=digits_s / baseline_s)
    print(f"\ndigits: load + split in {digits_s:.4f} s (min of 5); sklearn load_digits alone {baseline_s:.4f} s; "
          f"ratio {digits_s / baseline_s:.2f}")
    assert digits_s < 1.0
