"""CIFAR-10 from the official "python version" batches (``cifar-10-batches-py/``).

Each batch file is a (Python 2) pickle of a dict with ``data`` (uint8 [N, 3072]: 1024 red, then
1024 green, then 1024 blue values, rows in order) and ``labels`` (N ints 0..9).  Checksums are the
official MD5s of each batch (as torchvision lists them).  A download fetches the official archive
(MD5-checked) next to the batches' folder, unpacks it into a temporary folder and only then moves
the batches into place; the archive is kept, as torchvision does.

Pickle files can run code when loaded, so with ``verify=True`` (the default) a batch is only
unpickled after its MD5 matched the official file.
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbed.errors import DataError
from benchbed_datasets.files import fetch_official, verify_md5
from benchbed_datasets.image_files import FileImageSource, RawSplits

_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)  # mirrors, tried in turn
_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
_MD5S = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def _field(batch: dict[Any, Any], key: str) -> Any:
    # Python-2 pickles decode their keys as str with encoding="latin1"; accept bytes keys too.
    if key in batch:
        return batch[key]
    return batch.get(key.encode())


def read_batch(path: Path, dataset: str = "cifar10") -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``(images uint8 [N, 3, 32, 32], labels int64 [N])``.

    Raises:
        DataError: naming ``path``, when it cannot be unpickled or lacks/garbles ``data``/``labels``.
    """
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")  # noqa: S301 - official format; MD5-checked first
    except Exception as exc:  # noqa: BLE001 - EOFError, UnpicklingError, ValueError...: all mean corrupt
        raise DataError(f"data set {dataset!r}: cannot read {path}: {exc!r} (corrupt or truncated file)") from exc
    data = _field(batch, "data") if isinstance(batch, dict) else None
    labels = _field(batch, "labels") if isinstance(batch, dict) else None
    if data is None or labels is None:
        raise DataError(f"data set {dataset!r}: {path} is not a CIFAR-10 batch (no 'data'/'labels' entries)")
    data, labels = np.asarray(data), np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(
            f"data set {dataset!r}: {path} holds data {data.dtype}{list(data.shape)} and {len(labels)} labels; "
            "expected uint8 [N, 3072] and N labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"data set {dataset!r}: {path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10(FileImageSource):
    __doc__ = "CIFAR-10, 3x32x32 colour images, 10 classes.\n" + (FileImageSource.__doc__ or "").split("\n", 1)[1]

    name = "cifar10"
    shape = (3, 32, 32)
    folders = ("cifar10/cifar-10-batches-py", "cifar-10-batches-py")
    required = tuple((n,) for n in (*_TRAIN, "test_batch"))
    label_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def fetch(self, folder: Path) -> None:
        archive = folder.parent / "cifar-10-python.tar.gz"
        if not archive.is_file():
            fetch_official(self.name, archive, _URLS, _TGZ_MD5)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".unpack-"))
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")  # the archive holds cifar-10-batches-py/
            unpacked = staging / "cifar-10-batches-py"
            if not unpacked.is_dir():
                raise DataError(f"data set {self.name!r}: {archive} holds no cifar-10-batches-py/ folder")
            folder.mkdir(parents=True, exist_ok=True)
            for item in unpacked.iterdir():
                item.replace(folder / item.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"data set {self.name!r}: cannot unpack {archive}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def checksums(self) -> dict[str, str]:
        return dict(_MD5S)

    def _load(self, folder: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in names:
            if self.verify:
                verify_md5(folder / name, _MD5S[name], self.name)
            x, y = read_batch(folder / name, self.name)
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def read(self, folder: Path) -> RawSplits:
        return (*self._load(folder, _TRAIN), *self._load(folder, ("test_batch",)))
