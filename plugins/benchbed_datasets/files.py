"""Files of the standard image data sets: where they live, checksums, downloads, clear errors.

Data root: the ``root`` parameter of a loader, else ``$BENCHBED_DATA``, else ``~/.cache/benchbed/data``.
Each data set has its own folder under the root (``mnist/``, ``fashion_mnist/``, ``cifar10/``, ``svhn/``);
torchvision's layout under the same root (``MNIST/raw/``, ``cifar-10-batches-py/``, ...) is accepted too,
so an existing torchvision download can be reused by pointing ``root`` at it.

Checksums are the official MD5s as torchvision 0.29 lists them (``torchvision/datasets/{mnist,cifar,
svhn}.py``).  Nothing is ever downloaded unless a loader is built with ``download=True``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

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
        f"(data root = the 'root' parameter, else ${ENV_VAR}, else {DEFAULT_ROOT}; "
        f"or build the data set with download=True where a network is available){extra}"
    )


def download(url: str, dest: Path, md5: str | None, dataset: str) -> None:
    """Fetch ``url`` to ``dest`` (atomically, via a temporary file) and check its MD5.

    Raises:
        DataError: the download failed or the file has the wrong checksum.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            shutil.copyfileobj(response, out)
        actual = md5sum(tmp) if md5 is not None else None
        if actual != md5:
            raise DataError(
                f"data set {dataset!r}: checksum mismatch for {url} (downloaded for {dest}): MD5 {actual}, "
                f"expected {md5}; the file was not kept"
            )
        tmp.replace(dest)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - network errors of every kind become one DataError
        raise DataError(f"data set {dataset!r}: downloading {url} to {dest} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def download_first(urls: Sequence[str], dest: Path, md5: str | None, dataset: str) -> None:
    """Try each mirror in turn; raise the last mirror's error if all fail."""
    error: DataError | None = None
    for url in urls:
        try:
            download(url, dest, md5, dataset)
            return
        except DataError as exc:
            error = exc
    assert error is not None
    raise error
