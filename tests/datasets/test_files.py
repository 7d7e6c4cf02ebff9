"""MNIST, Fashion-MNIST, CIFAR-10, SVHN: read tiny files in the real formats; every error path."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbed.errors import DataError
from benchbed.testing import load_dataset
from benchbed_datasets._base import ParameterError
from benchbed_datasets.cifar import CIFAR10
from benchbed_datasets.files import md5sum
from benchbed_datasets.idx import MNIST, FashionMNIST
from benchbed_datasets.svhn import SVHN

TINY = {"verify": False, "n_val": 10}


def _all_rows(bundle) -> torch.Tensor:
    return torch.cat([bundle.train.x, bundle.val.x]).flatten(1)


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_gzipped_or_not(writers, tmp_path: Path, gz: bool) -> None:
    arrays = writers.idx(tmp_path / "mnist", gz=gz, n_train=40, n_test=20)
    bundle = load_dataset("mnist", root=str(tmp_path), **TINY)
    assert bundle.info.shape == (1, 28, 28) and bundle.info.n_classes == 10
    assert len(bundle.train) == 30 and len(bundle.val) == 10 and len(bundle.test) == 20
    # The test split is the official one, in order, scaled by 1/255.
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float().unsqueeze(1) / 255
    assert torch.equal(bundle.test.x, expected)
    assert torch.equal(bundle.test.y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)))
    # Train + val together are exactly the official training images (as a set of rows).
    official = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().flatten(1) / 255
    assert torch.equal(torch.sort(_all_rows(bundle).sum(1)).values, torch.sort(official.sum(1)).values)
    # Stratified: 10 validation examples of 10 classes = one of each.
    assert sorted(bundle.val.y.tolist()) == list(range(10))


def test_fashion_mnist_and_torchvision_layout(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "FashionMNIST" / "raw", gz=True)
    bundle = load_dataset("fashion_mnist", root=str(tmp_path), **TINY)
    assert bundle.info.label_names[9] == "Ankle boot"
    assert len(bundle.test) == 20


def test_cifar10_reads_python_batches(writers, tmp_path: Path) -> None:
    batches = writers.cifar(tmp_path / "cifar10" / "cifar-10-batches-py", per_batch=10)
    bundle = load_dataset("cifar10", root=str(tmp_path), **TINY)
    assert bundle.info.shape == (3, 32, 32)
    assert len(bundle.train) + len(bundle.val) == 50 and len(bundle.test) == 10
    data, labels = batches["test_batch"]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each 32x32 in row order.
    assert torch.equal(bundle.test.x[3, 1, 5, 7], torch.tensor(data[3, 1024 + 5 * 32 + 7] / 255, dtype=torch.float32))
    assert bundle.test.y.tolist() == labels.tolist()


def test_svhn_reads_mat_and_maps_label_10_to_0(writers, tmp_path: Path) -> None:
    files = writers.svhn(tmp_path / "svhn", n_train=30, n_test=20)
    bundle = load_dataset("svhn", root=str(tmp_path), **TINY)
    x, y = files["test_32x32.mat"]
    assert bundle.info.shape == (3, 32, 32)
    assert bundle.test.y.tolist() == [int(v) % 10 for v in y[:, 0]]
    assert 0 in bundle.test.y.tolist() and 10 not in bundle.test.y.tolist()
    # X is [row, column, channel, example]; ours is [example, channel, row, column].
    assert float(bundle.test.x[4, 2, 6, 9]) == pytest.approx(x[6, 9, 2, 4] / 255)


def test_root_from_environment_variable(writers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writers.svhn(tmp_path / "svhn")
    monkeypatch.setenv("BENCHBED_DATA", str(tmp_path))
    assert len(load_dataset("svhn", **TINY).test) == 20


def test_validation_split_depends_on_seed_test_split_does_not(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "mnist", n_train=60, n_test=30)
    a = load_dataset("mnist", seed=0, root=str(tmp_path), n_test=10, **TINY)
    b = load_dataset("mnist", seed=1, root=str(tmp_path), n_test=10, **TINY)
    a2 = load_dataset("mnist", seed=0, root=str(tmp_path), n_test=10, **TINY)
    assert a.content_hash() == a2.content_hash()
    assert a.val.content_hash() != b.val.content_hash()
    assert a.test.content_hash() == b.test.content_hash() and len(a.test) == 10
    c = load_dataset("mnist", seed=0, root=str(tmp_path), n_train=20, **TINY)
    assert len(c.train) == 20 and sorted(c.train.y.tolist()) == sorted(list(range(10)) * 2)


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("mnist", "mnist/train-images-idx3-ubyte.gz"),
        ("fashion_mnist", "fashion_mnist/t10k-labels-idx1-ubyte.gz"),
        ("cifar10", "cifar10/cifar-10-batches-py/data_batch_3"),
        ("svhn", "svhn/test_32x32.mat"),
    ],
)
def test_missing_files_say_what_to_put_where(tmp_path: Path, name: str, where: str) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(name, root=str(tmp_path))
    text = str(info.value)
    assert f"data set {name!r}: files not found" in text
    assert str(tmp_path / where) in text
    assert f"benchbed download {name}" in text and "download=False" in text and "BENCHBED_DATA" in text
    assert "$BENCHBED_OFFLINE is set, so" in text  # the suite runs offline (tests/conftest.py)


def test_one_missing_file_is_reported(writers, tmp_path: Path) -> None:
    writers.cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="files not found"):
        load_dataset("cifar10", root=str(tmp_path), **TINY)


def test_truncated_gzip_idx_names_the_file(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=f"cannot read {path}.*corrupt or truncated"):
        load_dataset("mnist", root=str(tmp_path), **TINY)


def test_truncated_plain_idx_names_the_file(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=f"{path} is truncated or corrupt: header declares shape"):
        load_dataset("mnist", root=str(tmp_path), **TINY)


def test_not_an_idx_file(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(DataError, match=f"{path} is not an unsigned-byte IDX file"):
        load_dataset("mnist", root=str(tmp_path), **TINY)


def test_idx_images_and_labels_disagree(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "mnist")
    labels = writers.idx_bytes(np.zeros(3, np.uint8))
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DataError, match="do not match labels of shape"):
        load_dataset("mnist", root=str(tmp_path), **TINY)


def test_corrupt_cifar_pickle_names_the_file(writers, tmp_path: Path) -> None:
    writers.cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    path = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=f"cannot read {path}.*corrupt or truncated"):
        load_dataset("cifar10", root=str(tmp_path), **TINY)


def test_cifar_pickle_with_wrong_content(writers, tmp_path: Path) -> None:
    writers.cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    path = tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}))
    with pytest.raises(DataError, match=f"{path} holds data uint8\\[4, 100\\]"):
        load_dataset("cifar10", root=str(tmp_path), **TINY)


def test_corrupt_svhn_mat_names_the_file(writers, tmp_path: Path) -> None:
    writers.svhn(tmp_path / "svhn")
    path = tmp_path / "svhn" / "train_32x32.mat"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=f"cannot read {path}"):
        load_dataset("svhn", root=str(tmp_path), **TINY)


def _md5_table(name: str) -> dict[str, str]:
    from benchbed_datasets import cifar, svhn

    return {"mnist": MNIST.md5s, "fashion_mnist": FashionMNIST.md5s, "cifar10": cifar._MD5S, "svhn": svhn._MD5S}[name]


@pytest.mark.parametrize(
    ("name", "folder", "victim", "writer"),
    [
        ("mnist", "mnist", "t10k-images-idx3-ubyte.gz", "idx"),
        ("fashion_mnist", "fashion_mnist", "train-labels-idx1-ubyte.gz", "idx"),
        ("cifar10", "cifar10/cifar-10-batches-py", "data_batch_4", "cifar"),
        ("svhn", "svhn", "test_32x32.mat", "svhn"),
    ],
)
def test_checksum_mismatch_names_the_file(
    writers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, folder: str, victim: str, writer: str
) -> None:
    """All files but ``victim`` are declared official (their MD5 patched into the table), so the
    error must single out ``victim``; first, with the real table, the tiny files all fail."""
    getattr(writers, writer)(tmp_path / folder)
    with pytest.raises(DataError, match="checksum mismatch for"):
        load_dataset(name, root=str(tmp_path), n_val=10)  # verify=True is the default
    table = _md5_table(name)
    official = table[victim]
    for file in table:
        if file != victim:
            monkeypatch.setitem(table, file, md5sum(tmp_path / folder / file))
    path = tmp_path / folder / victim
    with pytest.raises(DataError) as info:
        load_dataset(name, root=str(tmp_path), n_val=10)
    text = str(info.value)
    assert f"checksum mismatch for {path}: MD5 {md5sum(path)}, expected {official}" in text
    assert "verify=False" in text
    # And with the victim's checksum right too, verification passes and the data loads.
    monkeypatch.setitem(table, victim, md5sum(path))
    assert len(load_dataset(name, root=str(tmp_path), n_val=10).val) == 10


def test_official_md5s_are_the_published_ones() -> None:
    """The MD5 tables (copied from torchvision 0.29) for the files a user is most likely to have."""
    assert MNIST.md5s["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert FashionMNIST.md5s["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    from benchbed_datasets import cifar, svhn

    assert cifar._MD5S["test_batch"] == "40351d587109b95175f43aff81a1287e"
    assert svhn._MD5S["train_32x32.mat"] == "e26dedcc434d2e4c54c9b2d4a06d8373"


def test_md5sum_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 9000)  # > one 1 MiB read chunk
    assert md5sum(path) == hashlib.md5(path.read_bytes()).hexdigest()


def test_unpacked_idx_with_verify_checks_official_shape(writers, tmp_path: Path) -> None:
    writers.idx(tmp_path / "mnist", gz=False)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte has shape \(40, 28, 28\), the official file "
                                        r"has \(60000, 28, 28\)"):
        load_dataset("mnist", root=str(tmp_path), n_val=10)


@pytest.mark.parametrize(
    ("factory", "params", "message"),
    [
        (MNIST, {"n_val": 0}, "'n_val' must be an integer >= 1, got 0"),
        (CIFAR10, {"n_train": -3}, "'n_train' must be an integer >= 1, got -3"),
        (SVHN, {"verify": "no"}, "'verify' must be true or false"),
        (SVHN, {"download": "yes"}, "'download' must be true, false or 'auto', got 'yes'"),
        (FashionMNIST, {"root": 3}, "'root' must be a path string"),
    ],
)
def test_bad_parameters(factory, params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=factory.name) as info:
        factory(**params)
    assert message in str(info.value)


def test_n_val_too_large_for_the_file(writers, tmp_path: Path) -> None:
    writers.svhn(tmp_path / "svhn", n_train=30)
    with pytest.raises(ParameterError, match="n_val=30 leaves no training examples"):
        load_dataset("svhn", root=str(tmp_path), verify=False, n_val=30)


def test_an_idx_header_declaring_a_huge_shape_reports_its_true_size(tmp_path: Path) -> None:
    """4e9 x 4e9 x 4e9 bytes overflows int64: the message must give the size the header declares."""
    import struct

    from benchbed_datasets.idx import read_idx

    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 4_000_000_000, 4_000_000_000, 4_000_000_000) + b"x")
    with pytest.raises(DataError, match=r"declares shape \(4000000000, 4000000000, 4000000000\) "
                                        r"\(64000000000000000000000000000 bytes of data\)"):
        read_idx(path, "mnist")
