"""Every registered data set passes benchbed's conformance check, through the plugin interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbed.testing import check_dataset, load_dataset, load_registry_strict

FILE_SETS = {"mnist", "fashion_mnist", "cifar10", "svhn"}
# Small sizes keep the check fast; every parameter named here exists in the factory's schema.
SMALL = {
    "gmm8": {"n_train": 200, "n_val": 50, "n_test": 100},
    "gmm25": {"n_train": 200, "n_val": 50, "n_test": 100},
    "rings": {"n_train": 200, "n_val": 50, "n_test": 100},
    "swissroll": {"n_train": 200, "n_val": 50, "n_test": 100},
    "pinwheel": {"n_train": 200, "n_val": 50, "n_test": 100},
    "linear_gaussian": {"n_train": 200, "n_val": 50, "n_test": 100},
    "shapes": {"n_train": 300, "n_val": 30, "n_test": 60},
    "digits": {},
}
EXPECTED = sorted(FILE_SETS | set(SMALL))


def test_all_twelve_registered() -> None:
    names = load_registry_strict().names("dataset")
    assert sorted(n for n in names if n in EXPECTED) == EXPECTED


@pytest.mark.parametrize("name", sorted(SMALL))
def test_check_dataset_generated(name: str) -> None:
    bundle = check_dataset(name, **SMALL[name])
    assert bundle.info.name == name
    assert bundle.info.n_classes > 0 or name == "linear_gaussian"


@pytest.mark.parametrize("name", sorted(FILE_SETS))
def test_check_dataset_files(name: str, tiny_root: Path) -> None:
    bundle = check_dataset(name, root=str(tiny_root), verify=False, n_val=10)
    assert bundle.info.n_classes == 10
    assert len(bundle.val) == 10


@pytest.mark.parametrize("name", sorted(SMALL))
def test_different_seeds_give_different_splits(name: str) -> None:
    a = load_dataset(name, seed=0, **SMALL[name])
    b = load_dataset(name, seed=1, **SMALL[name])
    assert a.train.content_hash() != b.train.content_hash()
    assert a.val.content_hash() != b.val.content_hash()
