"""SVHN cropped digits (format 2) from ``train_32x32.mat`` and ``test_32x32.mat``.

Each file is a MATLAB file holding ``X`` (uint8 [32, 32, 3, N]: row, column, channel, example)
and ``y`` ([N, 1], labels 1..10 where **10 means the digit 0**); we map 10 -> 0 so labels are the
digits 0..9, and transpose to [N, 3, 32, 32].  Checksums are the official MD5s (as torchvision
lists them).  The ``extra_32x32.mat`` split is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchbed.errors import DataError
from benchbed_datasets.files import fetch_official, verify_md5
from benchbed_datasets.image_files import FileImageSource, RawSplits

_MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)  # base URLs, tried in turn
_MD5S = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
}


def read_mat(path: Path, dataset: str = "svhn") -> tuple[np.ndarray, np.ndarray]:
    """One ``*_32x32.mat`` -> ``(images uint8 [N, 3, 32, 32], labels int64 [N] in 0..9)``.

    Raises:
        DataError: naming ``path``, when it is not a readable MATLAB file or holds unexpected arrays.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError/TypeError/OSError on bad files
        raise DataError(f"data set {dataset!r}: cannot read {path}: {exc!r} (corrupt or truncated file)") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"data set {dataset!r}: {path} has no 'X' and 'y' arrays (not an SVHN format-2 file)")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(
            f"data set {dataset!r}: {path}: X is {x.dtype}{list(x.shape)} with {len(y)} labels; "
            "expected uint8 [32, 32, 3, N] and N labels"
        )
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"data set {dataset!r}: {path}: labels outside 1..10")
    y[y == 10] = 0  # SVHN writes the digit 0 as class 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


class SVHN(FileImageSource):
    __doc__ = "SVHN cropped digits, 3x32x32, labels 0..9.\n" + (FileImageSource.__doc__ or "").split("\n", 1)[1]

    name = "svhn"
    shape = (3, 32, 32)
    folders = ("svhn", ".")  # torchvision keeps the .mat files directly in its root
    required = (("train_32x32.mat",), ("test_32x32.mat",))
    label_names = tuple(str(d) for d in range(10))

    def fetch(self, folder: Path) -> None:
        for name, md5 in _MD5S.items():
            if not (folder / name).is_file():
                fetch_official(self.name, folder / name, [m + name for m in _MIRRORS], md5)

    def checksums(self) -> dict[str, str]:
        return dict(_MD5S)

    def _load(self, folder: Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.verify:
            verify_md5(folder / name, _MD5S[name], self.name)
        x, y = read_mat(folder / name, self.name)
        return torch.from_numpy(x), torch.from_numpy(y)

    def read(self, folder: Path) -> RawSplits:
        return (*self._load(folder, "train_32x32.mat"), *self._load(folder, "test_32x32.mat"))
