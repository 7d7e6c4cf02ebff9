"""Splits, labels, parameters and the outlier variant of the generated data sets and of digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.errors import SuiteError
from benchbed.testing import load_dataset
from benchbed_datasets._base import ParameterError
from benchbed_datasets.digits import Digits
from benchbed_datasets.mixtures import GMM8, GMM25
from benchbed_datasets.pinwheel import Pinwheel
from benchbed_datasets.rings import Rings
from benchbed_datasets.splits import stratified_pick
from benchbed_datasets.swissroll import SwissRoll

SMALL = {"n_train": 300, "n_val": 60, "n_test": 90}


@pytest.mark.parametrize("name", ["gmm8", "gmm25", "rings", "swissroll", "pinwheel", "linear_gaussian"])
def test_same_seed_same_data_and_sizes(name: str) -> None:
    a, b = load_dataset(name, seed=5, **SMALL), load_dataset(name, seed=5, **SMALL)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split).x, getattr(b, split).x)
    assert (len(a.train), len(a.val), len(a.test)) == (300, 60, 90)
    assert a.info.kind == "vector" and a.info.has_density and a.log_prob is not None
    if name not in ("gmm8", "gmm25"):  # a mixture's only latent is its label
        latents = a.extras["latents"]
        assert len(latents["train"]) == 300 and len(latents["test"]) == 90


def test_labels_are_the_documented_latent_class() -> None:
    rings = load_dataset("rings", seed=0, **SMALL)
    s = rings.extras["latents"]["train"][:, 0]
    assert torch.allclose(rings.train.x.norm(dim=1), s.abs(), atol=1e-5)
    assert ((rings.train.x.norm(dim=1) - (rings.train.y + 1).float()).abs() < 0.5).all()
    roll = load_dataset("swissroll", seed=0, n_segments=4, **SMALL)
    t = roll.extras["latents"]["train"][:, 0]
    assert torch.equal(roll.train.y, ((t - 1.5 * math.pi) / (3 * math.pi) * 4).long().clamp_max(3))
    assert roll.info.n_classes == 4


def test_gmm8_outlier_variant_and_class_balance() -> None:
    bundle = load_dataset("gmm8", seed=0, n_train=4000, n_val=400, n_test=800)
    counts = torch.bincount(bundle.train.y, minlength=8).float()
    assert (counts / 4000 - 1 / 8).abs().max() < 0.03
    variant = bundle.hold_out((3,))
    assert not (variant.train.y == 3).any() and not (variant.val.y == 3).any()
    assert torch.equal(variant.test.x, bundle.test.x)
    assert variant.outlier_mask().sum() == (bundle.test.y == 3).sum()


def test_digits_scale_shape_and_stratified_partition() -> None:
    from sklearn.datasets import load_digits

    bundle = load_dataset("digits", seed=0)
    assert bundle.info.shape == (1, 8, 8) and bundle.info.n_classes == 10
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (1257, 180, 360)
    assert float(bundle.train.x.min()) == 0.0 and float(bundle.train.x.max()) == 1.0
    assert torch.bincount(bundle.val.y).tolist() == [18] * 10
    assert (torch.bincount(bundle.test.y) >= 35).all()
    # The three splits partition the 1797 images: same multiset of (label, pixel-sum) pairs.
    raw = load_digits()
    ours = torch.cat([s.x.flatten(1).sum(1) * 16 + 1000 * s.y for s in (bundle.train, bundle.val, bundle.test)])
    theirs = torch.from_numpy(raw.images.reshape(len(raw.images), -1).sum(1) + 1000 * raw.target)
    assert torch.equal(torch.sort(ours.round().long()).values, torch.sort(theirs.long()).values)
    other = load_dataset("digits", seed=1)
    assert other.test.content_hash() != bundle.test.content_hash()


def test_stratified_pick_properties() -> None:
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    picked, rest = stratified_pick(y, 20, seed=3)
    assert len(picked) == 20 and len(rest) == 80
    assert sorted(np.concatenate([picked, rest]).tolist()) == list(range(100))
    assert np.bincount(y[picked]).tolist() == [10, 6, 3, 1]
    again, _ = stratified_pick(y, 20, seed=3)
    other, _ = stratified_pick(y, 20, seed=4)
    assert np.array_equal(picked, again) and not np.array_equal(picked, other)
    with pytest.raises(ParameterError, match="cannot pick 101 examples out of 100"):
        stratified_pick(y, 101, seed=0)


@pytest.mark.parametrize(
    ("factory", "params", "message"),
    [
        (GMM8, {"std": -0.1}, "data set 'gmm8': parameter 'std' must be a finite number > 0, got -0.1"),
        (GMM8, {"n_train": 0}, "data set 'gmm8': parameter 'n_train' must be an integer >= 1, got 0"),
        (GMM25, {"spacing": float("nan")}, "parameter 'spacing' must be a finite number > 0, got nan"),
        (Rings, {"n_rings": 0}, "data set 'rings': parameter 'n_rings' must be an integer >= 1, got 0"),
        (SwissRoll, {"n_segments": 1.5}, "parameter 'n_segments' must be an integer >= 1, got 1.5"),
        (Pinwheel, {"tangential_std": 0}, "parameter 'tangential_std' must be a finite number > 0, got 0"),
        (Digits, {"n_test": 1700}, "n_val + n_test = 1880 leaves no training examples out of 1797"),
    ],
)
def test_bad_parameter_values(factory, params: dict, message: str) -> None:
    with pytest.raises(ParameterError) as info:
        factory(**params)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SuiteError)


def test_unknown_and_mistyped_parameters_through_the_registry() -> None:
    valid = "valid parameters: n_train, n_val, n_test, radius, std"
    with pytest.raises(SuiteError, match=f"unknown parameter 'sigma'.*{valid}"):
        load_dataset("gmm8", sigma=0.1)
    with pytest.raises(SuiteError, match="parameter 'size' must be int, got str"):
        load_dataset("shapes", size="28")


def test_seed_must_be_an_integer() -> None:
    with pytest.raises(ParameterError, match="seed must be an integer, got '0'"):
        GMM8().load(seed="0")  # type: ignore[arg-type]
