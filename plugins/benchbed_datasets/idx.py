"""MNIST and Fashion-MNIST from their IDX files (gzipped as distributed, or unpacked).

IDX format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (0x08 = unsigned
byte), the number of dimensions, then one big-endian uint32 per dimension, then the data in C order.
Images are ``[N, 28, 28]`` (magic 0x00000803), labels ``[N]`` (magic 0x00000801).

Checksums: the official MD5s of the four ``.gz`` files (as torchvision lists them).  No official
checksum exists for unpacked files; with ``verify=True`` those are checked structurally instead
(the official example counts 60000 / 10000 and the 28x28 size), and that is all.  Downloads fetch
the ``.gz`` files, trying the mirrors in turn.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from benchbed.errors import DataError
from benchbed_datasets.files import fetch_official, verify_md5
from benchbed_datasets.image_files import FileImageSource, RawSplits

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_COUNTS = {"train": 60000, "t10k": 10000}


def read_idx(path: Path, dataset: str) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` or plain) as a uint8 array of its declared shape.

    Raises:
        DataError: naming ``path``, when the file is not IDX, is truncated or the gzip stream is corrupt.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"data set {dataset!r}: cannot read {path}: {exc} (corrupt or truncated file)") from exc
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"data set {dataset!r}: {path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"data set {dataset!r}: {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(int(d) for d in dims)  # Python ints: a corrupt header must not overflow
    if len(data) - header != expected:
        raise DataError(
            f"data set {dataset!r}: {path} is truncated or corrupt: header declares shape {dims} "
            f"({expected} bytes of data) but the file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class IdxImageSource(FileImageSource):
    """MNIST-format data set; subclasses set the name, folders, MD5s, mirrors and class names."""

    md5s: dict[str, str] = {}
    mirrors: tuple[str, ...] = ()
    required = tuple((f"{name}.gz", name) for name in _FILES)
    files_note = "the .gz files may also be unpacked (same names without .gz)"

    def fetch(self, folder: Path) -> None:
        for name in _FILES:
            dest = folder / f"{name}.gz"
            if not dest.is_file() and not (folder / name).is_file():  # an unpacked copy counts as present
                fetch_official(self.name, dest, [m + dest.name for m in self.mirrors], self.md5s[dest.name])

    def checksums(self) -> dict[str, str]:
        return dict(self.md5s)

    def _read_one(self, folder: Path, name: str) -> np.ndarray:
        packed, plain = folder / f"{name}.gz", folder / name
        path = packed if packed.is_file() else plain
        if self.verify and path is packed:
            verify_md5(path, self.md5s[path.name], self.name)
        array = read_idx(path, self.name)
        if self.verify and path is plain:
            # No official MD5 of unpacked files: at least insist on the official shape.
            n = _COUNTS[name.split("-")[0]]
            want = (n, 28, 28) if "images" in name else (n,)
            if array.shape != want:
                raise DataError(
                    f"data set {self.name!r}: {path} has shape {array.shape}, the official file has {want} "
                    "(pass verify=False for a home-made file)"
                )
        return array

    def _pair(self, folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = self._read_one(folder, f"{prefix}-images-idx3-ubyte")
        labels = self._read_one(folder, f"{prefix}-labels-idx1-ubyte")
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"data set {self.name!r}: {folder}/{prefix}-*: images of shape {images.shape} do not "
                f"match labels of shape {labels.shape}"
            )
        if images.shape[1:] != (28, 28):
            raise DataError(
                f"data set {self.name!r}: {folder}/{prefix}-images: images are {images.shape[1:]}, not 28x28"
            )
        if len(labels) and labels.max() >= len(self.label_names):
            raise DataError(f"data set {self.name!r}: {folder}/{prefix}-labels: label {labels.max()} out of range")
        return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))

    def read(self, folder: Path) -> RawSplits:
        return (*self._pair(folder, "train"), *self._pair(folder, "t10k"))


class MNIST(IdxImageSource):
    __doc__ = "MNIST handwritten digits, 1x28x28, labels 0..9.\n" + (FileImageSource.__doc__ or "").split("\n", 1)[1]

    name = "mnist"
    folders = ("mnist", "MNIST/raw")
    label_names = tuple(str(d) for d in range(10))
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    md5s = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


class FashionMNIST(IdxImageSource):
    __doc__ = "Fashion-MNIST, 1x28x28, 10 clothing classes.\n" + (FileImageSource.__doc__ or "").split("\n", 1)[1]

    name = "fashion_mnist"
    folders = ("fashion_mnist", "FashionMNIST/raw")
    label_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    md5s = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
