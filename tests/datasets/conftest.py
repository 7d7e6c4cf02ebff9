"""Tiny files in exactly the official formats (IDX, CIFAR-10 python pickles, SVHN .mat).

Each writer returns the arrays it wrote, so tests compare what the loaders read against them.
Labels are cycled through all ten classes so stratified splits have every class.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0, 0, 0x08, ndim, big-endian uint32 dims, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_set(folder: Path, *, n_train: int = 40, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict:
    """Write the four MNIST-format files; returns ``{name: array}``."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def write_cifar_set(folder: Path, *, per_batch: int = 10, seed: int = 0) -> dict:
    """Write ``cifar-10-batches-py``-style pickles (protocol 2, like the official Python-2 files)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate(CIFAR_NAMES):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int((j + i) % 10) for j in range(per_batch)]
        batch = {"batch_label": f"tiny {name}", "labels": labels, "data": data,
                 "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        out[name] = (data, np.asarray(labels))
    return out


def write_svhn_set(folder: Path, *, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict:
    """Write ``train_32x32.mat`` / ``test_32x32.mat``: X uint8 [32, 32, 3, N], y uint8 [N, 1] in 1..10."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]  # 1..10, 10 = digit 0
        savemat(folder / name, {"X": x, "y": y})
        out[name] = (x, y)
    return out


@pytest.fixture
def writers() -> SimpleNamespace:
    """The writers above, for test modules (conftest modules are not importable under importlib mode)."""
    return SimpleNamespace(idx=write_idx_set, cifar=write_cifar_set, svhn=write_svhn_set, idx_bytes=idx_bytes)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A data root holding tiny MNIST, Fashion-MNIST (unpacked), CIFAR-10 and SVHN files."""
    write_idx_set(tmp_path / "mnist", gz=True, seed=1)
    write_idx_set(tmp_path / "fashion_mnist", gz=False, seed=2)
    write_cifar_set(tmp_path / "cifar10" / "cifar-10-batches-py", seed=3)
    write_svhn_set(tmp_path / "svhn", seed=4)
    return tmp_path
