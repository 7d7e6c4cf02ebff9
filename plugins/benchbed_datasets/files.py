"""Files of the standard image data sets: where they live, checksums, downloads, clear errors.

Data root: the ``root`` parameter of a loader, else ``$BENCHBED_DATA``, else ``~/.cache/benchbed/data``.
Each data set has its own folder under the root (``mnist/``, ``fashion_mnist/``, ``cifar10/``, ``svhn/``);
torchvision's layout under the same root (``MNIST/raw/``, ``cifar-10-batches-py/``, ...) is accepted too,
so an existing torchvision download can be reused by pointing ``root`` at it.

Checksums are the official MD5s as torchvision 0.29 lists them (``torchvision/datasets/{mnist,cifar,
svhn}.py``).  Missing files are downloaded on first use (``download="auto"``, the default) unless
``$BENCHBED_OFFLINE`` is set; ``download=False`` never downloads (``True`` is the same as ``"auto"``).
Downloads go through :func:`benchbed.downloads.fetch`: mirrors in turn, MD5-verified, atomic.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from benchbed.downloads import OFFLINE_ENV, Checksum, fetch
from benchbed.errors import DataError

DEFAULT_ROOT = Path("~/.cache/benchbed/data")
ENV_VAR = "BENCHBED_DATA"


def data_root(root: str | None) -> Path:
    """The data root: ``root`` if given, else ``$BENCHBED_DATA``, else ``~/.cache/benchbed/data``."""
    chosen = root if root is not None else os.environ.get(ENV_VAR) or str(DEFAULT_ROOT)
    return Path(chosen).expanduser()


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_md5(path: Path, expected: str, dataset: str) -> None:
    """Raise :class:`DataError` naming ``path`` when its MD5 is not ``expected``."""
    actual = md5sum(path)
    if actual != expected:
        raise DataError(
            f"data set {dataset!r}: checksum mismatch for {path}: MD5 {actual}, expected {expected} "
            "(the file is corrupt, truncated or not the official one; delete it and fetch it again, or "
            "pass verify=False to skip the check)"
        )


def find_folder(root: Path, candidates: Sequence[str], required: Sequence[Sequence[str]]) -> Path | None:
    """The first ``root/candidate`` folder holding, for every group in ``required``, one of its names.

    A group lists alternative names of one file (e.g. ``("x.gz", "x")``).
    """
    for cand in candidates:
        folder = root / cand
        if all(any((folder / name).is_file() for name in group) for group in required):
            return folder
    return None


def missing_files_error(dataset: str, folder: Path, names: Sequence[str], extra: str = "") -> DataError:
    """The error for absent files: which files, and exactly where to put them."""
    listing = "\n".join(f"  {folder / name}" for name in names)
    return DataError(
        f"data set {dataset!r}: files not found. Put these files here:\n{listing}\n"
        f"(data root = the 'root' parameter, else ${ENV_VAR}, else {DEFAULT_ROOT}; or fetch them with "
        f"`benchbed download {dataset}` where a network is available: loaders also download on first use "
        f"unless built with download=False or ${OFFLINE_ENV} is set){extra}"
    )


def fetch_official(dataset: str, dest: Path, urls: Sequence[str], md5: str) -> Path:
    """Download one official file to ``dest`` from the first of ``urls`` that serves it with ``md5``.

    Raises:
        benchbed.downloads.DownloadError: offline, unreachable, or no mirror had the right bytes
            (a :class:`DataError` naming the file, each URL and why it failed, and the checksums).
    """
    return fetch(urls, dest, Checksum("md5", md5), what=f"data set {dataset!r}")
